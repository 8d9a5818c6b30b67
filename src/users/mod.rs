//! Users and their passwords: argon2id hashes, computed off the async
//! reactor, and a login check that costs the same for unknown users.

mod cache;
mod password;
mod throttle;

pub use cache::AccountCache;
pub use password::{HashCost, Password, PasswordHasher};
pub use throttle::{LoginThrottle, Throttled};

use crate::clock::UnixTime;
use crate::store::{Store, StoreError};

/// A user as stored.
#[derive(Clone)]
pub struct User {
    /// Database id; appears in tokens as a string.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Inactive users cannot log in or refresh.
    pub is_active: bool,
    /// When the user was added.
    pub date_joined: UnixTime,
    /// Last successful login, when `update_last_login` is on.
    pub last_login: Option<UnixTime>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// What requests need of the user a token names (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Database id; appears in tokens as a string.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Inactive users are refused.
    pub is_active: bool,
}

/// Why a username is refused.
#[derive(Debug, thiserror::Error)]
#[error("username must be 1 to 150 characters: letters, digits and @ . + - _")]
pub struct BadUsername;

/// Checks a username against Django's default rules (150 characters of
/// letters, digits and `@.+-_`).
pub fn check_username(name: &str) -> Result<(), BadUsername> {
    let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
    if name.is_empty() || name.chars().count() > 150 || !name.chars().all(allowed) {
        return Err(BadUsername);
    }
    Ok(())
}

/// Returns the active user whose password matches, or `None`. An unknown
/// username is checked against a dummy hash so that it takes as long as a
/// wrong password.
pub async fn authenticate(
    store: &Store,
    hasher: &PasswordHasher,
    username: &str,
    password: Password,
) -> Result<Option<User>, StoreError> {
    let user = store.user_by_name(username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = hasher.verify(password, hash).await;
    Ok(user.filter(|user| matches && user.is_active))
}
