//! Queries on the `signing_keys` table and its version counter.

use std::fmt;
use std::str::FromStr;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{Store, StoreError, WriteTransaction};
use crate::clock::UnixTime;
use crate::verifier::{Algorithm, PublicJwk};

/// A key as stored: public half in the clear, private half sealed.
#[derive(Clone)]
pub struct StoredKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The only algorithm this key verifies and signs with.
    pub alg: Algorithm,
    /// Where it is in its life.
    pub state: KeyState,
    /// Public half.
    pub public: PublicJwk,
    /// Private half sealed under the master key; `None` once retired.
    pub sealed_private: Option<Vec<u8>>,
    /// When it was created and published.
    pub created_at: UnixTime,
    /// When it started signing.
    pub activated_at: Option<UnixTime>,
    /// When it stopped signing.
    pub deactivated_at: Option<UnixTime>,
    /// When it was unpublished after its tokens expired.
    pub retired_at: Option<UnixTime>,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
    /// Active key only: when `jwtd keys rotate` asked for an early rotation.
    pub rotate_requested_at: Option<UnixTime>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field(
                "sealed_private",
                &self.sealed_private.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// Where a key is in its life (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing; exactly one at any instant.
    Active,
    /// Published, no longer signing, until its tokens have expired.
    Retiring,
    /// Unpublished; private key erased.
    Retired,
    /// Unpublished at once after a compromise; its tokens fail.
    Revoked,
}

impl KeyState {
    /// The name stored in the database and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    /// Whether keys in this state appear in the JWKS and verify tokens.
    pub fn is_published(self) -> bool {
        matches!(self, Self::Next | Self::Active | Self::Retiring)
    }
}

impl FromStr for KeyState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "next" => Ok(Self::Next),
            "active" => Ok(Self::Active),
            "retiring" => Ok(Self::Retiring),
            "retired" => Ok(Self::Retired),
            "revoked" => Ok(Self::Revoked),
            other => Err(format!("unknown key state `{other}`")),
        }
    }
}

const KEY_COLUMNS_SQL: &str = "SELECT kid, alg, state, public_jwk, sealed_private, created_at, \
     activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at \
     FROM signing_keys ORDER BY created_at, kid";

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

    /// Makes every change of this transaction durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.write.tx.commit().await?;
        Ok(())
    }
}

/// A key update must touch exactly the one row it names; anything else
/// means the plan was made on stale data, and the transaction must not commit.
fn expect_one(rows: u64, kid: &str) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::NoSuchKey(kid.to_owned()))
    }
}

async fn read_keys(tx: &mut Transaction<'static, Sqlite>) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query(KEY_COLUMNS_SQL).fetch_all(&mut **tx).await?;
    rows.into_iter().map(key_from_row).collect()
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
        rotate_requested_at: row.try_get("rotate_requested_at")?,
        kid,
    })
}
