//! Users and their passwords: argon2id hashes, computed off the async
//! reactor, and a login check that costs the same for unknown users.

mod cache;
mod password;
mod throttle;
mod username;

pub use cache::AccountCache;
pub use password::{Password, PasswordHasher};
pub use throttle::{LoginThrottle, ThrottleLimits, Throttled};
pub use username::{ForLog, normalize_username};

use crate::store::{Store, StoreError, User};

/// Returns the active user whose password matches, or `None`. An unknown
/// username is checked against a dummy hash so that it takes as long as a
/// wrong password. A match whose hash was made with another cost than the
/// configured one is re-hashed at the configured cost, so that every
/// user's password ends up costing the same to check.
pub async fn authenticate(
    store: &Store,
    hasher: &PasswordHasher,
    username: &str,
    password: Password,
) -> Result<Option<User>, StoreError> {
    let user = store.user_by_name(username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let outdated = hash.as_deref().is_some_and(|hash| !hasher.is_current(hash));
    let kept = outdated.then(|| password.clone());
    let matches = hasher.verify(password, hash).await;
    let Some(user) = user.filter(|user| matches && user.is_active) else {
        return Ok(None);
    };
    if let Some(password) = kept {
        rehash(store, hasher, &user, &password).await;
    }
    Ok(Some(user))
}

/// Replaces `user`'s hash with one at the configured cost. A failure only
/// leaves the old hash in place: the login goes ahead.
async fn rehash(store: &Store, hasher: &PasswordHasher, user: &User, password: &Password) {
    let rehashed = match hasher.hash(password).await {
        Ok(hash) => store
            .upgrade_password_hash(user.id, &user.password_hash, &hash)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match rehashed {
        Ok(true) => tracing::info!(event = "password_rehashed", user_id = user.id),
        Ok(false) => {}
        Err(reason) => tracing::warn!(user_id = user.id, %reason, "could not re-hash a password"),
    }
}
