//! Users as stored, and the front door to reading and changing them.

use super::{Store, StoreError, dispatch};
use crate::clock::UnixTime;

/// A user as stored.
#[derive(Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Account {
    /// Database id; appears in tokens as a string.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Inactive users are refused.
    pub is_active: bool,
}

impl Store {
    /// Adds a user; fails with [`StoreError::UsernameTaken`] if the name is used.
    pub async fn add_user(
        &self,
        username: &str,
        password_hash: &str,
        is_active: bool,
        now: UnixTime,
    ) -> Result<User, StoreError> {
        dispatch!(&self.db, db => db.add_user(username, password_hash, is_active, now).await)
    }

    /// The user with this username, if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        dispatch!(&self.db, db => db.user_by_name(username).await)
    }

    /// The account with this id, if any: what authenticating a request
    /// needs.
    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        dispatch!(&self.db, db => db.account_by_id(id).await)
    }

    /// The users version: changes whenever a user's name, password or
    /// active flag changes or a user is deleted.
    pub async fn users_version(&self) -> Result<i64, StoreError> {
        dispatch!(&self.db, db => db.users_version().await)
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        dispatch!(&self.db, db => db.list_users().await)
    }

    /// Enables or disables a user. Disabling also ends every session of
    /// the user (see [`set_password_hash`](Self::set_password_hash)), in
    /// the same transaction; returns how many tokens were blacklisted.
    pub async fn set_user_active(
        &self,
        username: &str,
        active: bool,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        dispatch!(&self.db, db => db.set_user_active(username, active, now).await)
    }

    /// Sets a user's password hash and ends every session of the user: its
    /// outstanding tokens not expired by `now` are blacklisted and its
    /// refresh families revoked, in the same transaction; returns how many
    /// tokens were blacklisted.
    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        dispatch!(&self.db, db => db.set_password_hash(username, hash, now).await)
    }

    /// Replaces user `user_id`'s hash `old` by `new` (the same password at
    /// the configured cost), unless the hash changed meanwhile; true when
    /// replaced. Sessions go on.
    pub async fn upgrade_password_hash(
        &self,
        user_id: i64,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.db, db => db.upgrade_password_hash(user_id, old, new).await)
    }
}
