//! Reading the SQLite file directly, as an operator would after a fault:
//! the tests' own reader, independent of jwtd's store.

use std::path::Path;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// One signing-key row.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub(crate) kid: String,
    pub(crate) state: String,
    pub(crate) public_jwk: String,
    pub(crate) sealed_private: Option<Vec<u8>>,
    pub(crate) created_at: i64,
    pub(crate) activated_at: Option<i64>,
    pub(crate) deactivated_at: Option<i64>,
    pub(crate) retired_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

/// A small pool on an existing database file (never created here).
pub(crate) async fn open(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|err| panic!("opening {}: {err}", path.display()))
}

/// `PRAGMA integrity_check`'s answer, one string.
pub(crate) async fn integrity_check(pool: &SqlitePool) -> String {
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(pool)
        .await
        .expect("integrity_check runs");
    rows.iter()
        .map(|row| row.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every signing key.
pub(crate) async fn keys(pool: &SqlitePool) -> Vec<KeyRow> {
    let rows = sqlx::query(
        "SELECT kid, state, public_jwk, sealed_private, created_at, activated_at, \
         deactivated_at, retired_at, revoked_at FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(pool)
    .await
    .expect("signing keys readable");
    rows.iter()
        .map(|row| KeyRow {
            kid: row.get("kid"),
            state: row.get("state"),
            public_jwk: row.get("public_jwk"),
            sealed_private: row.get("sealed_private"),
            created_at: row.get("created_at"),
            activated_at: row.get("activated_at"),
            deactivated_at: row.get("deactivated_at"),
            retired_at: row.get("retired_at"),
            revoked_at: row.get("revoked_at"),
        })
        .collect()
}

/// One integer from a query.
pub(crate) async fn count(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Every recorded outstanding token id.
pub(crate) async fn outstanding_jtis(pool: &SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT jti FROM outstanding_tokens")
        .fetch_all(pool)
        .await
        .expect("outstanding tokens readable")
}
