//! The database, behind one front door: SQLite, the embedded default
//! (`sqlite://PATH`), or PostgreSQL for several replicas
//! (`postgres://…`). Every SQL statement jwtd runs lives in [`sqlite`] or
//! [`postgres`]; the rest of jwtd sees [`Store`] and the plain records it
//! reads and writes.

mod copy;
mod keys;
mod postgres;
mod sqlite;
mod throttle;
mod tokens;
mod users;

pub use keys::{KeyState, KeyTransaction, StoredKey};
pub(crate) use postgres::redacted;
pub use throttle::{FailureCounter, FailureWindow};
pub use tokens::{
    BatchRead, BatchWrites, NewToken, RecordedType, RefreshConnection, RotatedToken, TokenRecord,
};
pub use users::{Account, User};

use std::path::PathBuf;
use std::time::Duration;

use sqlx::postgres::PgDatabaseError;

/// Runs `$call` on whichever database `$store` is, named `$db` inside,
/// again when the database interrupted it (see [`pause_before_retry`]).
/// Every call is one whole transaction, so running it again is safe.
macro_rules! dispatch {
    ($store:expr, $db:ident => $call:expr) => {{
        let mut attempts = 0;
        loop {
            let result = match $store {
                $crate::store::Db::Sqlite($db) => $call,
                $crate::store::Db::Postgres($db) => $call,
            };
            match $crate::store::pause_before_retry(&result, attempts) {
                Some(pause) => {
                    attempts += 1;
                    tokio::time::sleep(pause).await;
                }
                None => break result.map_err($crate::store::StoreError::interrupted_is_busy),
            }
        }
    }};
}
pub(crate) use dispatch;

/// Pauses before each new attempt of an interrupted transaction: a
/// deadlock or serialization failure clears at once, a dropped connection
/// is replaced by the pool within them, and a database that keeps
/// interrupting for about a second is answered as busy.
const RETRY_PAUSES: [Duration; 5] = [
    Duration::from_millis(5),
    Duration::from_millis(25),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
];

/// How long to wait before running again a transaction that gave `result`
/// after `attempts` retries: `None` unless it was
/// [`StoreError::Interrupted`] and retries remain. Still interrupted at
/// the end, the error is answered as [`StoreError::Busy`] (503).
pub(crate) fn pause_before_retry<T>(
    result: &Result<T, StoreError>,
    attempts: usize,
) -> Option<Duration> {
    match result {
        Err(StoreError::Interrupted(reason)) => {
            let pause = RETRY_PAUSES.get(attempts).copied();
            if pause.is_some() {
                tracing::debug!(%reason, "transaction interrupted; running it again");
            }
            pause
        }
        _ => None,
    }
}

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, created or reached.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The SQLite file, or the PostgreSQL server and database (never
        /// its password).
        path: String,
        /// Why, on one line.
        reason: String,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(sqlx::Error),
    /// A username that is already taken.
    #[error("user `{0}` already exists")]
    UsernameTaken(String),
    /// No key by that kid in the state a change expected.
    #[error("no signing key `{0}` in the expected state")]
    NoSuchKey(String),
    /// No user by that name.
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    /// A row that does not decode into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store was shut down while a write waited for it.
    #[error("the store is closed")]
    Closed,
    /// The database stayed locked by another writer, or every connection
    /// stayed busy, past the wait allowed: worth retrying shortly.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database aborted the transaction (a serialization failure or a
    /// deadlock) or the connection was lost: the whole transaction is
    /// worth running again at once. Rolled back, or (a connection lost
    /// during COMMIT) committed: every write jwtd makes can be run twice.
    #[error("transaction interrupted: {0}")]
    Interrupted(String),
    /// The database a deployment is copied into already holds one.
    #[error("the target database is not empty: it holds {0}")]
    NotEmpty(String),
    /// What this database cannot do.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// [`Interrupted`](Self::Interrupted) as [`Busy`](Self::Busy), once
    /// retrying is over.
    pub fn interrupted_is_busy(self) -> Self {
        match self {
            Self::Interrupted(reason) => Self::Busy(reason),
            other => other,
        }
    }
}

// Not `#[from]`: the message already includes the cause, and a chained
// source would print it again in one-line CLI errors.
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match transience(&err) {
            Some(Transience::Interrupted) => Self::Interrupted(err.to_string()),
            Some(Transience::Busy) => Self::Busy(err.to_string()),
            None => Self::Query(err),
        }
    }
}

/// How an error that may clear by itself clears.
enum Transience {
    /// At once: run the transaction again.
    Interrupted,
    /// After a while: answer 503 and let the client retry.
    Busy,
}

/// Interrupted: PostgreSQL's serialization failures and deadlocks (SQLSTATE
/// 40001, 40P01), a connection terminated by the server (57P01, class 08)
/// or lost on the way. Busy: SQLite's SQLITE_BUSY and SQLITE_LOCKED (with
/// their extended codes, after the busy timeout), PostgreSQL's lock
/// timeouts, a server starting up or out of connections (55P03, 57P03,
/// 53300), and a pool with no connection free in time.
fn transience(err: &sqlx::Error) -> Option<Transience> {
    match err {
        sqlx::Error::Io(_) => Some(Transience::Interrupted),
        sqlx::Error::PoolTimedOut => Some(Transience::Busy),
        sqlx::Error::Database(err) => match err.try_downcast_ref::<PgDatabaseError>() {
            Some(postgres) => match postgres.code() {
                "40001" | "40P01" | "57P01" => Some(Transience::Interrupted),
                code if code.starts_with("08") => Some(Transience::Interrupted),
                "55P03" | "57P03" | "53300" => Some(Transience::Busy),
                _ => None,
            },
            None => err
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6))
                .then_some(Transience::Busy),
        },
        _ => None,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(err)
    }
}

/// Where the database is, as `database_url` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// Reads `sqlite://PATH` or `postgres://…` (`postgresql://…`).
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains('?') {
                return Err(format!(
                    "`{url}` must be sqlite://PATH (a file path, no options)"
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(format!(
            "`{url}` is not supported: use sqlite://PATH or postgres://…"
        ))
    }
}

/// Notifications of changes to keys or users; see [`Store::change_feed`].
pub struct ChangeFeed(postgres::ChangeFeed);

impl ChangeFeed {
    /// Waits until another change is committed.
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        self.0.changed().await
    }
}

/// A handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(sqlite::Db),
    Postgres(postgres::Db),
}

impl Store {
    /// Opens the database `database_url` names (creating a SQLite file if
    /// absent) and applies the migrations not yet applied.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let location = Location::parse(database_url).map_err(|reason| StoreError::Open {
            path: postgres::redacted(database_url),
            reason,
        })?;
        let db = match &location {
            Location::Sqlite(path) => Db::Sqlite(sqlite::Db::open(path).await?),
            Location::Postgres(url) => Db::Postgres(postgres::Db::open(url).await?),
        };
        Ok(Self { db })
    }

    /// Wake-ups when any process commits a change to keys or users, where
    /// the database can send them (PostgreSQL's LISTEN/NOTIFY); `None` on
    /// SQLite. They only shorten the wait: polling the versions stays the
    /// rule, and the fallback behind a transaction-pooling PgBouncer.
    pub async fn change_feed(&self) -> Option<Result<ChangeFeed, StoreError>> {
        match &self.db {
            Db::Sqlite(_) => None,
            Db::Postgres(db) => Some(db.change_feed().await.map(ChangeFeed)),
        }
    }

    /// Fails unless the database can be written.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        dispatch!(&self.db, db => db.check_writable().await)
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(db) => db.close().await,
            Db::Postgres(db) => db.close().await,
        }
    }
}
