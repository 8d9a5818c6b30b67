//! The SQLite store: one file in WAL mode, shared by every process that
//! opens it. Writers of one process queue on a turn of their own before
//! taking SQLite's write lock.

mod copy;
mod keys;
mod throttle;
mod tokens;
mod users;

pub use keys::KeyTransaction;
pub use tokens::{RefreshBatch, RefreshConnection};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::StoreError;

/// Creates the database file, if absent, readable by its owner only: it
/// holds password hashes, and SQLite gives its `-wal` and `-shm` files the
/// database file's mode. An existing file that others may read is named in
/// a warning. Any other failure is left for SQLite to report.
fn create_private(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    if created.is_err()
        && let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", metadata.permissions().mode() & 0o777),
            "the database (password hashes) is readable by group or others; chmod 600 it"
        );
    }
}

/// A handle to a SQLite database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: SqlitePool,
    /// Held by every write, so this process's writers queue here, in
    /// order, instead of contending for SQLite's lock, whose busy handler
    /// sleeps in growing steps (tens of milliseconds of tail latency).
    writer: Arc<Mutex<()>>,
}

/// A write transaction with this process's writer turn held.
struct WriteTransaction {
    tx: Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl Db {
    /// Opens (creating if absent) the SQLite file at `path` in WAL mode and
    /// applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed transaction survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // Reads are short and most requests need none (accounts and
            // keys are cached; refreshes share one writer, which holds one
            // more connection outside the pool). Each connection
            // keeps its own page cache (up to 2 MiB), so more cost memory.
            .max_connections(4)
            // Connections stay open: reopening one needs a descriptor, and
            // a flood of connections may have taken them all.
            .idle_timeout(None)
            .max_lifetime(None)
            // A COMMIT that failed on a full or read-only disk leaves sqlx
            // believing the connection is still in a transaction. sqlx pings
            // every connection it takes back, which runs any rollback queued
            // on it; one still in a transaction after that is dropped here
            // rather than reused. sqlx's own test before an acquire would
            // add a ping to every use: a trip to SQLite's thread, which
            // costs a login two context switches on each core.
            .test_before_acquire(false)
            .before_acquire(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect_with(options)
            .await
            .map_err(|err| StoreError::Open {
                path: path.display().to_string(),
                reason: err.to_string(),
            })?;
        let store = Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies any migration not yet applied. Two processes starting at
    /// once on a new database race here; the loser's migration fails and
    /// rolls back, and its retry finds the work done.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Takes this process's writer turn, then SQLite's write lock
    /// (`BEGIN IMMEDIATE`): what the transaction reads stays true until it
    /// commits, whatever other processes do.
    async fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let turn = Arc::clone(&self.writer).lock_owned().await;
        Ok(WriteTransaction {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
        })
    }

    /// Runs `statements`, which open with `BEGIN IMMEDIATE` and end with
    /// `COMMIT`, in one trip to SQLite's thread, holding this process's
    /// writer turn. sqlx does not know of a transaction begun inside a
    /// query: one left open by a failed statement, or by a caller that
    /// stopped waiting (SQLite's thread then stops at the next statement),
    /// would go back to the pool holding the write lock. So the connection
    /// goes back only once the query has run to its end; otherwise it is
    /// closed, and SQLite rolls back what it left.
    async fn write_in_one_trip(
        &self,
        statements: Query<'_, Sqlite, SqliteArguments>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut connection = ClosedUnlessFinished(Some(self.pool.acquire().await?));
        statements.execute(connection.get()).await?;
        connection.finished();
        Ok(())
    }

    /// Waits for this process's writer turn, for a single-statement write.
    async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Fails unless the database can be written (SQLite opens a file it
    /// cannot write read-only, without complaint).
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let mut write = self.begin_write().await?;
        sqlx::query("UPDATE key_set_version SET version = version WHERE id = 1")
            .execute(&mut *write.tx)
            .await?;
        write.tx.rollback().await?;
        Ok(())
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pooled connection that is closed when dropped, unless
/// [`finished`](Self::finished) hands it back to the pool first.
struct ClosedUnlessFinished(Option<PoolConnection<Sqlite>>);

impl ClosedUnlessFinished {
    fn get(&mut self) -> &mut SqliteConnection {
        self.0
            .as_mut()
            .expect("only `finished` and drop take the connection")
    }

    fn finished(mut self) {
        drop(self.0.take());
    }
}

impl Drop for ClosedUnlessFinished {
    fn drop(&mut self) {
        if let Some(pooled) = self.0.take() {
            drop(pooled.detach());
        }
    }
}

/// Reads an optional integer column as a bool (SQLite has no bool type).
fn flag(value: i64) -> bool {
    value != 0
}
