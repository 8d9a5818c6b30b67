//! The PostgreSQL store, for any number of replicas on one database.
//! Statements run in PostgreSQL's default READ COMMITTED isolation; where
//! a decision rests on what was read, the rows read are locked (`FOR
//! UPDATE`) until the transaction ends, so replicas deciding at once take
//! turns instead of failing.

mod copy;
mod keys;
mod throttle;
mod tokens;
mod users;

pub use keys::KeyTransaction;
pub use tokens::{RefreshBatch, RefreshConnection};

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::StoreError;

/// A handle to a PostgreSQL database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects to the database at `url` and applies the embedded
    /// migrations (sqlx takes an advisory lock: replicas starting at once
    /// apply each migration once).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions =
            url.parse().map_err(|err: sqlx::Error| StoreError::Open {
                path: redacted(url),
                reason: err.to_string(),
            })?;
        let pool = PgPoolOptions::new()
            // Requests are short; the refresh writer holds one more of its own.
            .max_connections(8)
            // A dead database answers 503 soon rather than holding requests.
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(|err| StoreError::Open {
                path: redacted(url),
                reason: err.to_string(),
            })?;
        let db = Self { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies any migration not yet applied. sqlx takes a session-level
    /// advisory lock to do so, which a transaction-pooling PgBouncer may
    /// leave held on a pooled connection: when every migration is already
    /// applied (every start but the first after an upgrade), nothing is
    /// locked.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = sqlx::migrate!("./migrations/postgres");
        let latest = migrator.iter().map(|migration| migration.version).max();
        // No table yet reads as nothing applied.
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .unwrap_or(None);
        if applied.is_some() && applied >= latest {
            return Ok(());
        }
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Fails unless the database can be written (a read-only replica or a
    /// role without the right answers here, not at the first login).
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE key_set_version SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(())
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The channel the version triggers notify (see the migration).
const CHANGES_CHANNEL: &str = "jwtd_changes";

/// Notifications that another process changed keys or users, on a
/// connection of its own (outside the pool).
pub struct ChangeFeed {
    listener: PgListener,
}

impl Db {
    /// Listens for changes.
    pub async fn change_feed(&self) -> Result<ChangeFeed, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(ChangeFeed { listener })
    }
}

impl ChangeFeed {
    /// Waits for the next change. After an error the listener reconnects
    /// at the next call (notifications sent meanwhile are lost: polling
    /// catches up).
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        self.listener.recv().await?;
        Ok(())
    }
}

/// `url` without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redacted("postgres://jwtd:s3cret@db:5432/jwtd"),
            "postgres://jwtd@db:5432/jwtd"
        );
        assert_eq!(redacted("postgres://db/jwtd"), "postgres://db/jwtd");
    }
}
