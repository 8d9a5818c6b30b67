//! Queries on the `signing_keys` table and its version counter.

use sqlx::{PgConnection, Postgres, Transaction};

use super::Db;
use crate::clock::UnixTime;
use crate::store::keys::{KEYS_SQL, KeyRow, expect_one};
use crate::store::{StoreError, StoredKey};

impl Db {
    pub async fn key_set_version(&self) -> Result<i64, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM key_set_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    /// One snapshot: REPEATABLE READ, so the version and the keys agree.
    pub async fn keys_with_version(&self) -> Result<(i64, Vec<StoredKey>), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let version = sqlx::query_scalar("SELECT version FROM key_set_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let keys = read_keys(&mut tx).await?;
        tx.commit().await?;
        Ok((version, keys))
    }

    /// Locks the version row first: replicas take their key transactions
    /// one at a time, and each reads the keys as the previous one left
    /// them.
    pub async fn key_transaction(&self) -> Result<KeyTransaction, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT version FROM key_set_version WHERE id = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        Ok(KeyTransaction { tx })
    }
}

/// A write transaction on the keys, holding the keys' lock.
pub struct KeyTransaction {
    tx: Transaction<'static, Postgres>,
}

impl KeyTransaction {
    pub async fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        read_keys(&mut self.tx).await
    }

    pub async fn insert(&mut self, key: &StoredKey) -> Result<(), StoreError> {
        let public_jwk = serde_json::to_string(&key.public)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, \
             activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(key.rotate_requested_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn deactivate(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let sql = "UPDATE signing_keys SET state = 'retiring', deactivated_at = $1 \
                   WHERE kid = $2 AND state = 'active'";
        update_one(&mut self.tx, sql, kid, now).await
    }

    pub async fn activate(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let sql = "UPDATE signing_keys SET state = 'active', activated_at = $1 \
                   WHERE kid = $2 AND state = 'next'";
        update_one(&mut self.tx, sql, kid, now).await
    }

    pub async fn retire(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let sql = "UPDATE signing_keys SET state = 'retired', retired_at = $1, sealed_private = NULL \
                   WHERE kid = $2 AND state IN ('retiring', 'next')";
        update_one(&mut self.tx, sql, kid, now).await
    }

    pub async fn revoke(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let sql = "UPDATE signing_keys SET state = 'revoked', revoked_at = $1, sealed_private = NULL, \
                   deactivated_at = CASE WHEN state = 'active' THEN $1 ELSE deactivated_at END \
                   WHERE kid = $2 AND state <> 'revoked'";
        update_one(&mut self.tx, sql, kid, now).await
    }

    pub async fn request_rotation(&mut self, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET rotate_requested_at = $1 WHERE state = 'active'")
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Replaces the sealed private key of `kid` with `resealed` if it still
    /// holds `read`; returns whether it did. Writers of keys hold the
    /// version row's lock, as this transaction does; should one not, the
    /// UPDATE waits for its row lock and checks the comparison again on the
    /// committed row, so a private key erased (retired, revoked) or
    /// replaced meanwhile is not overwritten.
    pub async fn replace_sealed(
        &mut self,
        kid: &str,
        read: &[u8],
        resealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET sealed_private = $1 WHERE kid = $2 AND sealed_private = $3",
        )
        .bind(resealed)
        .bind(kid)
        .bind(read)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Runs `sql` (`$1` the time, `$2` the kid), which must change exactly
/// the one key it names.
async fn update_one(
    tx: &mut PgConnection,
    sql: &'static str,
    kid: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    let done = sqlx::query(sql).bind(now).bind(kid).execute(tx).await?;
    expect_one(done.rows_affected(), kid)
}

async fn read_keys(tx: &mut PgConnection) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(KEYS_SQL).fetch_all(tx).await?;
    rows.into_iter().map(StoredKey::try_from).collect()
}
