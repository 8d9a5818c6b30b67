//! A whole deployment's rows, for moving it to another database (`jwtd
//! copy-store`): read from SQLite in one snapshot, written into an empty
//! PostgreSQL database in one transaction. Keys move still sealed.

use serde::Serialize;

use super::keys::KeyRow;
use super::{Db, Store, StoreError};
use crate::clock::UnixTime;

/// Every row of a deployment.
#[derive(Default)]
pub struct Contents {
    pub(super) users: Vec<UserRow>,
    pub(super) keys: Vec<KeyRow>,
    pub(super) families: Vec<FamilyRow>,
    pub(super) tokens: Vec<TokenRow>,
    pub(super) blacklist: Vec<BlacklistRow>,
    pub(super) login_failures: Vec<FailureRow>,
}

impl Contents {
    /// What it holds, in one line: `2 users, 3 signing keys, …`.
    pub fn summary(&self) -> String {
        format!(
            "{} user(s), {} signing key(s), {} token famil(ies), {} outstanding token(s) \
             ({} blacklisted), {} login-failure counter(s)",
            self.users.len(),
            self.keys.len(),
            self.families.len(),
            self.tokens.len(),
            self.blacklist.len(),
            self.login_failures.len()
        )
    }
}

/// A `users` row, password hash included.
#[derive(sqlx::FromRow, Serialize)]
pub(super) struct UserRow {
    pub(super) id: i64,
    pub(super) username: String,
    pub(super) password_hash: String,
    pub(super) is_active: bool,
    pub(super) date_joined: UnixTime,
    pub(super) last_login: Option<UnixTime>,
}

/// A `token_families` row.
#[derive(sqlx::FromRow, Serialize)]
pub(super) struct FamilyRow {
    pub(super) id: String,
    pub(super) user_id: i64,
    pub(super) created_at: UnixTime,
    pub(super) revoked_at: Option<UnixTime>,
}

/// An `outstanding_tokens` row.
#[derive(sqlx::FromRow, Serialize)]
pub(super) struct TokenRow {
    pub(super) jti: String,
    pub(super) user_id: i64,
    pub(super) token_type: String,
    pub(super) family_id: Option<String>,
    pub(super) created_at: UnixTime,
    pub(super) expires_at: UnixTime,
    pub(super) rotated_at: Option<UnixTime>,
    pub(super) replaced_by: Option<String>,
}

/// A `blacklisted_tokens` row.
#[derive(sqlx::FromRow, Serialize)]
pub(super) struct BlacklistRow {
    pub(super) jti: String,
    pub(super) blacklisted_at: UnixTime,
}

/// A `login_failures` row.
#[derive(sqlx::FromRow, Serialize)]
pub(super) struct FailureRow {
    pub(super) counter: String,
    pub(super) subject: String,
    pub(super) window_start: UnixTime,
    pub(super) failures: i64,
}

impl Store {
    /// Every row of this SQLite deployment, read in one snapshot.
    pub async fn contents(&self) -> Result<Contents, StoreError> {
        match &self.db {
            Db::Sqlite(db) => db.contents().await,
            Db::Postgres(_) => Err(StoreError::Unsupported(
                "copy-store copies a SQLite deployment (database_url = \"sqlite://…\")",
            )),
        }
    }

    /// Writes `contents` into this PostgreSQL database, in one
    /// transaction; refuses a database that already holds users, keys or
    /// tokens.
    pub async fn load(&self, contents: &Contents) -> Result<(), StoreError> {
        match &self.db {
            Db::Postgres(db) => db.load(contents).await,
            Db::Sqlite(_) => Err(StoreError::Unsupported(
                "copy-store copies into PostgreSQL (--to postgres://…)",
            )),
        }
    }
}
