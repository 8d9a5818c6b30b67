//! Signing keys as stored, and the front door to reading and changing
//! them.

use std::fmt;
use std::str::FromStr;

use super::{Db, Store, StoreError, dispatch, postgres, sqlite};
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

/// A `signing_keys` row as both databases return it.
#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    pub(super) kid: String,
    pub(super) alg: String,
    pub(super) state: String,
    pub(super) public_jwk: String,
    pub(super) sealed_private: Option<Vec<u8>>,
    pub(super) created_at: UnixTime,
    pub(super) activated_at: Option<UnixTime>,
    pub(super) deactivated_at: Option<UnixTime>,
    pub(super) retired_at: Option<UnixTime>,
    pub(super) revoked_at: Option<UnixTime>,
    pub(super) rotate_requested_at: Option<UnixTime>,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let kid = row.kid;
        let corrupt = |what: String| StoreError::Corrupt(format!("signing key {kid}: {what}"));
        Ok(StoredKey {
            alg: row.alg.parse().map_err(corrupt)?,
            state: row.state.parse().map_err(corrupt)?,
            public: serde_json::from_str(&row.public_jwk)
                .map_err(|err| corrupt(err.to_string()))?,
            sealed_private: row.sealed_private,
            created_at: row.created_at,
            activated_at: row.activated_at,
            deactivated_at: row.deactivated_at,
            retired_at: row.retired_at,
            revoked_at: row.revoked_at,
            rotate_requested_at: row.rotate_requested_at,
            kid,
        })
    }
}

/// Every key, oldest first: the same statement on both databases.
pub(super) const KEYS_SQL: &str = "SELECT kid, alg, state, public_jwk, sealed_private, created_at, \
     activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at \
     FROM signing_keys ORDER BY created_at, kid";

impl Store {
    /// The key-set version: changes whenever any process changes a key.
    pub async fn key_set_version(&self) -> Result<i64, StoreError> {
        dispatch!(&self.db, db => db.key_set_version().await)
    }

    /// Every key with the key-set version they were read at, in one
    /// consistent snapshot.
    pub async fn keys_with_version(&self) -> Result<(i64, Vec<StoredKey>), StoreError> {
        dispatch!(&self.db, db => db.keys_with_version().await)
    }

    /// Starts a write transaction on the keys that holds the keys' lock
    /// until it ends: what it reads stays true until it commits, whatever
    /// other processes do, and two processes never plan the same rotation
    /// step.
    pub async fn key_transaction(&self) -> Result<KeyTransaction, StoreError> {
        Ok(KeyTransaction(match &self.db {
            Db::Sqlite(db) => Transaction::Sqlite(db.key_transaction().await?),
            Db::Postgres(db) => Transaction::Postgres(db.key_transaction().await?),
        }))
    }
}

/// A write transaction on the keys; dropped without [`commit`](Self::commit),
/// it rolls back.
pub struct KeyTransaction(Transaction);

enum Transaction {
    Sqlite(sqlite::KeyTransaction),
    Postgres(postgres::KeyTransaction),
}

/// Runs `$call` on whichever transaction `$tx` is, named `$t` inside.
macro_rules! on_transaction {
    ($tx:expr, $t:ident => $call:expr) => {
        match $tx {
            Transaction::Sqlite($t) => $call,
            Transaction::Postgres($t) => $call,
        }
    };
}

impl KeyTransaction {
    /// Every key, as of this transaction.
    pub async fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        on_transaction!(&mut self.0, tx => tx.keys().await)
    }

    /// Inserts a key.
    pub async fn insert(&mut self, key: &StoredKey) -> Result<(), StoreError> {
        on_transaction!(&mut self.0, tx => tx.insert(key).await)
    }

    /// `active` → `retiring`: the key stops signing at `now`.
    pub async fn deactivate(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        on_transaction!(&mut self.0, tx => tx.deactivate(kid, now).await)
    }

    /// `next` → `active`: the key signs from `now`.
    pub async fn activate(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        on_transaction!(&mut self.0, tx => tx.activate(kid, now).await)
    }

    /// `retiring` or `next` → `retired`: unpublished, private key erased.
    pub async fn retire(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        on_transaction!(&mut self.0, tx => tx.retire(kid, now).await)
    }

    /// Any state → `revoked`: unpublished at once, private key erased. An
    /// active key also stops signing at `now`.
    pub async fn revoke(&mut self, kid: &str, now: UnixTime) -> Result<(), StoreError> {
        on_transaction!(&mut self.0, tx => tx.revoke(kid, now).await)
    }

    /// Asks for the active key to be replaced as soon as the next key may sign.
    pub async fn request_rotation(&mut self, now: UnixTime) -> Result<(), StoreError> {
        on_transaction!(&mut self.0, tx => tx.request_rotation(now).await)
    }

    /// Replaces the sealed private key of `kid` with `resealed`, only if it
    /// still holds `read` (compare-and-set): a key retired or revoked since
    /// it was read keeps its erased private key. Returns whether it did.
    pub async fn replace_sealed(
        &mut self,
        kid: &str,
        read: &[u8],
        resealed: &[u8],
    ) -> Result<bool, StoreError> {
        on_transaction!(&mut self.0, tx => tx.replace_sealed(kid, read, resealed).await)
    }

    /// Makes every change of this transaction durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        on_transaction!(self.0, tx => tx.commit().await)
    }
}

/// A key update must touch exactly the one row it names; anything else
/// means the plan was made on stale data, and the transaction must not commit.
pub(super) fn expect_one(rows: u64, kid: &str) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::NoSuchKey(kid.to_owned()))
    }
}
