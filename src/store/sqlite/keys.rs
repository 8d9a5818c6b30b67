//! Queries on the `signing_keys` table and its version counter.

use sqlx::{Sqlite, Transaction};

use super::{Db, WriteTransaction};
use crate::clock::UnixTime;
use crate::store::keys::{KEYS_SQL, KeyRow, expect_one};
use crate::store::{StoreError, StoredKey};

impl Db {
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
        let keys = read_keys(&mut tx).await?;
        tx.commit().await?;
        Ok((version, keys))
    }

    /// Starts a write transaction on the keys. It takes SQLite's write lock
    /// at once (`BEGIN IMMEDIATE`), so what it reads stays true until it
    /// commits, whatever other processes do.
    pub async fn key_transaction(&self) -> Result<KeyTransaction, StoreError> {
        Ok(KeyTransaction {
            write: self.begin_write().await?,
        })
    }
}

/// A write transaction on the keys; dropped without [`commit`](Self::commit),
/// it rolls back.
pub struct KeyTransaction {
    write: WriteTransaction,
}

impl KeyTransaction {
    /// Every key, as of this transaction.
    pub async fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        read_keys(&mut self.write.tx).await
    }

    /// Inserts a key.
    pub async fn insert(&mut self, key: &StoredKey) -> Result<(), StoreError> {
        let public_jwk = serde_json::to_string(&key.public)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, \
             activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// `active` → `retiring`: the key stops signing at `now`.
    pub async fn deactivate(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'retiring', deactivated_at = ? \
             WHERE kid = ? AND state = 'active'",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *self.write.tx)
        .await?;
        expect_one(done.rows_affected(), kid)
    }

    /// `next` → `active`: the key signs from `now`.
    pub async fn activate(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'active', activated_at = ? WHERE kid = ? AND state = 'next'",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *self.write.tx)
        .await?;
        expect_one(done.rows_affected(), kid)
    }

    /// `retiring` or `next` → `retired`: unpublished, private key erased.
    pub async fn retire(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = ?, sealed_private = NULL \
             WHERE kid = ? AND state IN ('retiring', 'next')",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *self.write.tx)
        .await?;
        expect_one(done.rows_affected(), kid)
    }

    /// Any state → `revoked`: unpublished at once, private key erased. An
    /// active key also stops signing at `now`.
    pub async fn revoke(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'revoked', revoked_at = ?, sealed_private = NULL, \
             deactivated_at = CASE WHEN state = 'active' THEN ? ELSE deactivated_at END \
             WHERE kid = ? AND state <> 'revoked'",
        )
        .bind(now)
        .bind(now)
        .bind(kid)
        .execute(&mut *self.write.tx)
        .await?;
        expect_one(done.rows_affected(), kid)
    }

    /// Asks for the active key to be replaced as soon as the next key may sign.
    pub async fn request_rotation(&mut self, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET rotate_requested_at = ? WHERE state = 'active'")
            .bind(now)
            .execute(&mut *self.write.tx)
            .await?;
        Ok(())
    }

    /// Replaces the sealed private key of `kid` with `resealed` if it still
    /// holds `read`; returns whether it did. Under the transaction's write
    /// lock no other process changes the row meanwhile; the comparison
    /// keeps the statement right on its own all the same: a row whose
    /// private key was erased (retired, revoked) or replaced is not touched.
    pub async fn replace_sealed(
        &mut self,
        kid: &str,
        read: &[u8],
        resealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET sealed_private = ? WHERE kid = ? AND sealed_private = ?",
        )
        .bind(resealed)
        .bind(kid)
        .bind(read)
        .execute(&mut *self.write.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes every change of this transaction durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.write.tx.commit().await?;
        Ok(())
    }
}

async fn read_keys(tx: &mut Transaction<'static, Sqlite>) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(KEYS_SQL).fetch_all(&mut **tx).await?;
    rows.into_iter().map(StoredKey::try_from).collect()
}
