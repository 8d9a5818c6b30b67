//! Outstanding refresh and sliding tokens, their families and the
//! blacklist, as stored, and the front door to them. Tokens are known by
//! `jti`; the token text is never stored.

use std::collections::{HashMap, HashSet};

use super::{Db, Store, StoreError, dispatch, postgres, sqlite};
use crate::clock::UnixTime;

/// What the store records of an issued refresh or sliding token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    /// The user it was issued to.
    pub user_id: i64,
    /// The login it belongs to (refresh tokens only).
    pub family_id: Option<String>,
    /// On the blacklist.
    pub blacklisted: bool,
    /// Its family was revoked (reuse detected).
    pub family_revoked: bool,
    /// When its family began: the login (refresh tokens only).
    pub family_created_at: Option<UnixTime>,
    /// When a refresh replaced it.
    pub rotated_at: Option<UnixTime>,
    /// The token that replaced it.
    pub replaced_by: Option<String>,
}

impl TokenRecord {
    /// Whether the token may no longer be used at all.
    pub fn is_blacklisted(&self) -> bool {
        self.blacklisted || self.family_revoked
    }
}

/// The kinds of token the store records as outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedType {
    /// A refresh token, in a family.
    Refresh,
    /// A sliding token.
    Sliding,
}

impl RecordedType {
    /// The name stored in `outstanding_tokens.token_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Sliding => "sliding",
        }
    }
}

/// A token to record as outstanding.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// Its `jti`: the token is known by it, never by its text.
    pub jti: &'a str,
    /// The user it was issued to; kept when the user is deleted.
    pub user_id: i64,
    /// `refresh` or `sliding`.
    pub token_type: RecordedType,
    /// Its family (refresh tokens).
    pub family_id: Option<&'a str>,
    /// When it stops being usable: `exp`, or `refresh_exp` for sliding tokens.
    pub expires_at: UnixTime,
}

/// What the store knows of a batch's presented tokens, read in its
/// transaction.
#[derive(Debug, Default)]
pub struct BatchRead {
    /// Each recorded token, by id.
    pub records: HashMap<String, TokenRecord>,
    /// Which of their users exist and are active.
    pub active_users: HashSet<i64>,
}

/// A rotated refresh token, recorded by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedToken {
    /// Its `jti`.
    pub jti: String,
    /// The user of the token it replaced.
    pub user_id: i64,
    /// The family of the token it replaced.
    pub family_id: Option<String>,
    /// Its `exp`.
    pub expires_at: UnixTime,
}

/// What a batch of refreshes changes, written in this order: new tokens,
/// rotations, blacklist, revoked families.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchWrites {
    /// New outstanding refresh tokens.
    pub new_tokens: Vec<RotatedToken>,
    /// `(old, new)`, one per old token: the last replacement wins. The
    /// grace runs from the first rotation: a later one keeps `rotated_at`.
    pub replaced: Vec<(String, String)>,
    /// Tokens to blacklist.
    pub blacklisted: Vec<String>,
    /// Families to revoke: every token of each is blacklisted, including
    /// the new ones above.
    pub revoked_families: Vec<String>,
}

impl Store {
    /// Records a login: its new family and its refresh token, and the
    /// user's `last_login` when `touch_last_login`; one transaction.
    pub async fn record_login(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        dispatch!(&self.db, db => db.record_login(token, now, touch_last_login).await)
    }

    /// Records a sliding token, and the user's `last_login` when
    /// `touch_last_login`; one transaction.
    pub async fn record_sliding(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        dispatch!(&self.db, db => db.record_sliding(token, now, touch_last_login).await)
    }

    /// What is recorded of the token `jti`, if anything.
    pub async fn token_record(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(&self.db, db => db.token_record(jti).await)
    }

    /// Blacklists `jti`; false if it already was.
    pub async fn blacklist(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        dispatch!(&self.db, db => db.blacklist(jti, now).await)
    }

    /// Ends every session of `user_id`: blacklists its outstanding tokens
    /// not expired by `now` and revokes its families; returns how many
    /// tokens were newly blacklisted.
    pub async fn logout_all(&self, user_id: i64, now: UnixTime) -> Result<u64, StoreError> {
        dispatch!(&self.db, db => db.logout_all(user_id, now).await)
    }

    /// Deletes the records of tokens expired by `now` (and their blacklist
    /// entries and finished families); returns how many tokens.
    pub async fn flush_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        dispatch!(&self.db, db => db.flush_expired(now).await)
    }

    /// The refresh writer's own connection, taken (for good) at its first
    /// batch.
    pub fn refresh_connection(&self) -> RefreshConnection {
        RefreshConnection(match &self.db {
            Db::Sqlite(db) => Connection::Sqlite(db.refresh_connection()),
            Db::Postgres(db) => Connection::Postgres(db.refresh_connection()),
        })
    }
}

/// A connection that only writes batches of refreshes: each batch is one
/// transaction that reads what is known of its tokens, locked until it
/// commits, then writes every change at once.
pub struct RefreshConnection(Connection);

enum Connection {
    Sqlite(sqlite::RefreshConnection),
    Postgres(postgres::RefreshConnection),
}

/// An open batch; dropped without [`commit`](Self::commit), it changes
/// nothing.
pub struct RefreshBatch<'c>(Batch<'c>);

enum Batch<'c> {
    Sqlite(sqlite::RefreshBatch<'c>),
    Postgres(postgres::RefreshBatch<'c>),
}

impl RefreshConnection {
    /// Begins a batch and reads what is known of the tokens with these ids
    /// (locked: what it reads stays true until the batch commits, whatever
    /// other processes do).
    pub async fn begin(
        &mut self,
        jtis: &[&str],
    ) -> Result<(RefreshBatch<'_>, BatchRead), StoreError> {
        Ok(match &mut self.0 {
            Connection::Sqlite(connection) => {
                let (batch, read) = connection.begin(jtis).await?;
                (RefreshBatch(Batch::Sqlite(batch)), read)
            }
            Connection::Postgres(connection) => {
                let (batch, read) = connection.begin(jtis).await?;
                (RefreshBatch(Batch::Postgres(batch)), read)
            }
        })
    }
}

impl RefreshBatch<'_> {
    /// Writes `writes`, dated `now`, and commits: every change of the
    /// batch is durable at once.
    pub async fn commit(self, writes: &BatchWrites, now: UnixTime) -> Result<(), StoreError> {
        match self.0 {
            Batch::Sqlite(batch) => batch.commit(writes, now).await,
            Batch::Postgres(batch) => batch.commit(writes, now).await,
        }
    }
}
