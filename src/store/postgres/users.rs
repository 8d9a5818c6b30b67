//! Queries on the `users` table.

use super::Db;
use super::tokens::blacklist_outstanding;
use crate::clock::UnixTime;
use crate::store::{Account, StoreError, User};

impl Db {
    pub async fn add_user(
        &self,
        username: &str,
        password_hash: &str,
        is_active: bool,
        now: UnixTime,
    ) -> Result<User, StoreError> {
        let result = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, is_active, date_joined) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(is_active)
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(id) => Ok(User {
                id,
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

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let user = sqlx::query_as(
            "SELECT id, username, password_hash, is_active, date_joined, last_login \
             FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(user)
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let account = sqlx::query_as("SELECT id, username, is_active FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(account)
    }

    pub async fn users_version(&self) -> Result<i64, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM users_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let users = sqlx::query_as(
            "SELECT id, username, password_hash, is_active, date_joined, last_login \
             FROM users ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(users)
    }

    pub async fn set_user_active(
        &self,
        username: &str,
        active: bool,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let user: Option<i64> =
            sqlx::query_scalar("UPDATE users SET is_active = $1 WHERE username = $2 RETURNING id")
                .bind(active)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let user = user.ok_or_else(|| StoreError::NoSuchUser(username.to_owned()))?;
        let ended = if active {
            0
        } else {
            blacklist_outstanding(&mut tx, user, now).await?
        };
        tx.commit().await?;
        Ok(ended)
    }

    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let user: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1 WHERE username = $2 RETURNING id",
        )
        .bind(hash)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let user = user.ok_or_else(|| StoreError::NoSuchUser(username.to_owned()))?;
        let ended = blacklist_outstanding(&mut tx, user, now).await?;
        tx.commit().await?;
        Ok(ended)
    }

    pub async fn upgrade_password_hash(
        &self,
        user_id: i64,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
                .bind(new)
                .bind(user_id)
                .bind(old)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
