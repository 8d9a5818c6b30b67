//! Queries on the `signing_keys` table and its version counter.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError};
use crate::keys::ring::StoredKey;

impl Store {
    /// The key-set version: changes whenever any process changes a key.
    pub async fn key_set_version(&self) -> Result<i64, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM key_set_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    /// Every key with the key-set version they were read at, in one
    /// consistent snapshot.
    pub async fn keys_with_version(&self) -> Result<(i64, Vec<StoredKey>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let version = sqlx::query_scalar("SELECT version FROM key_set_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT kid, alg, state, public_jwk, sealed_private, created_at, activated_at, \
             deactivated_at, retired_at, revoked_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let keys = rows
            .into_iter()
            .map(key_from_row)
            .collect::<Result<_, _>>()?;
        Ok((version, keys))
    }

    /// Inserts a key. Returns `false`, changing nothing, when its state is
    /// `active` or `next` and another key already holds that state (another
    /// process got there first).
    pub async fn insert_key(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let public_jwk = serde_json::to_string(&key.public)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, \
             activated_at, deactivated_at, retired_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(key.state.as_str())
        .bind(public_jwk)
        .bind(key.sealed_private.as_deref())
        .bind(key.created_at)
        .bind(key.activated_at)
        .bind(key.deactivated_at)
        .bind(key.retired_at)
        .bind(key.revoked_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

fn key_from_row(row: SqliteRow) -> Result<StoredKey, StoreError> {
    let kid: String = row.try_get("kid")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("signing key {kid}: {what}"));
    let alg: String = row.try_get("alg")?;
    let state: String = row.try_get("state")?;
    let public_jwk: String = row.try_get("public_jwk")?;
    Ok(StoredKey {
        alg: alg.parse().map_err(corrupt)?,
        state: state.parse().map_err(corrupt)?,
        public: serde_json::from_str(&public_jwk).map_err(|err| corrupt(err.to_string()))?,
        sealed_private: row.try_get("sealed_private")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        deactivated_at: row.try_get("deactivated_at")?,
        retired_at: row.try_get("retired_at")?,
        revoked_at: row.try_get("revoked_at")?,
        kid,
    })
}
