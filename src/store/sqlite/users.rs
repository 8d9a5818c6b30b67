//! Queries on the `users` table.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection};

use super::tokens::blacklist_outstanding;
use super::{Db, WriteTransaction, flag};
use crate::clock::UnixTime;
use crate::store::{Account, StoreError, User};

impl Db {
    /// Adds a user; fails with [`StoreError::UsernameTaken`] if the name is used.
    pub async fn add_user(
        &self,
        username: &str,
        password_hash: &str,
        is_active: bool,
        now: UnixTime,
    ) -> Result<User, StoreError> {
        let _turn = self.write_turn().await;
        let result = sqlx::query(
            "INSERT INTO users (username, password_hash, is_active, date_joined) VALUES (?, ?, ?, ?)",
        )
        .bind(username)
        .bind(password_hash)
        .bind(is_active)
        .bind(now)
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(User {
                id: done.last_insert_rowid(),
                username: username.to_owned(),
                password_hash: password_hash.to_owned(),
                is_active,
                date_joined: now,
                last_login: None,
            }),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(StoreError::UsernameTaken(username.to_owned()))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The user with this username, if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, password_hash, is_active, date_joined, last_login FROM users WHERE username = ?",
        )
        .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(user_from_row).transpose()
    }

    /// The account with this id, if any: what authenticating a request
    /// needs.
    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, username, is_active FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Account {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                is_active: flag(row.try_get("is_active")?),
            })
        })
        .transpose()
    }

    /// The users version: it moves whenever a user's name, password or
    /// active flag changes or a user is deleted.
    pub async fn users_version(&self) -> Result<i64, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM users_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, username, password_hash, is_active, date_joined, last_login FROM users ORDER BY id",
        )
        .fetch_all(&self.pool).await?;
        rows.into_iter().map(user_from_row).collect()
    }

    /// Enables or disables a user. Disabling also blacklists every
    /// outstanding token of the user that has not expired by `now`, in the
    /// same transaction; returns how many.
    pub async fn set_user_active(
        &self,
        username: &str,
        active: bool,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        let user = update_user(
            &mut tx,
            "UPDATE users SET is_active = ?1 WHERE username = ?2 RETURNING id",
            active,
            username,
        )
        .await?;
        let ended = if active {
            0
        } else {
            blacklist_outstanding(&mut tx, user, now).await?
        };
        tx.commit().await?;
        Ok(ended)
    }

    /// Replaces a user's password hash and blacklists every outstanding
    /// token of the user that has not expired by `now`, in one
    /// transaction: a new password ends the old sessions. Returns how many
    /// tokens were blacklisted.
    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        let user = update_user(
            &mut tx,
            "UPDATE users SET password_hash = ?1 WHERE username = ?2 RETURNING id",
            hash,
            username,
        )
        .await?;
        let ended = blacklist_outstanding(&mut tx, user, now).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Replaces a user's hash of the same password by one of another cost;
    /// sessions go on. Changes nothing, and returns `false`, if the hash is
    /// no longer `old` (the password was changed meanwhile).
    pub async fn upgrade_password_hash(
        &self,
        user_id: i64,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done =
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?")
                .bind(new)
                .bind(user_id)
                .bind(old)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Runs `sql`, an `UPDATE users SET … = ?1 WHERE username = ?2 RETURNING
/// id`, in the caller's write transaction; the changed user's id, or
/// [`StoreError::NoSuchUser`].
async fn update_user<'q, T>(
    tx: &mut SqliteConnection,
    sql: &'static str,
    value: T,
    username: &'q str,
) -> Result<i64, StoreError>
where
    T: 'q + Send + sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
{
    let user: Option<i64> = sqlx::query_scalar(sql)
        .bind(value)
        .bind(username)
        .fetch_optional(tx)
        .await?;
    user.ok_or_else(|| StoreError::NoSuchUser(username.to_owned()))
}

fn user_from_row(row: SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        is_active: flag(row.try_get("is_active")?),
        date_joined: row.try_get("date_joined")?,
        last_login: row.try_get("last_login")?,
    })
}
