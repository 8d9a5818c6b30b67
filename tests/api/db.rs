//! Reading the database directly, as an operator would after a fault:
//! the tests' own reader, independent of jwtd's store.

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row};

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
pub(crate) async fn keys(db: &Database) -> Vec<KeyRow> {
    const SQL: &str = "SELECT kid, state, public_jwk, sealed_private, created_at, activated_at, \
         deactivated_at, retired_at, revoked_at FROM signing_keys ORDER BY created_at, kid";
    on_pool!(db, pool => {
        let rows = sqlx::query(SQL)
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
    })
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

/// A pool on a deployment's database, SQLite or PostgreSQL, for the tests
/// that read or change rows behind jwtd's back. Statements use `$1`-style
/// placeholders, which both accept.
pub(crate) enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Database {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub(crate) async fn connect(url: &str) -> Database {
        if url.starts_with("postgres") {
            Database::Postgres(PgPool::connect(url).await.expect("the database opens"))
        } else {
            Database::Sqlite(SqlitePool::connect(url).await.expect("the database opens"))
        }
    }

    /// Runs one statement; `id` is bound to `$1` when the statement has it.
    pub(crate) async fn execute(&self, sql: &'static str, id: Option<i64>) {
        on_pool!(self, pool => {
            let mut query = sqlx::query(sql);
            if let Some(id) = id {
                query = query.bind(id);
            }
            query.execute(pool).await.unwrap_or_else(|err| panic!("{sql}: {err}"));
        })
    }

    /// One integer from a query.
    pub(crate) async fn count(&self, sql: &'static str) -> i64 {
        on_pool!(self, pool => sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}")))
    }

    /// Every table of the database with the columns holding text, as
    /// (table, column, whether it holds bytes).
    pub(crate) async fn text_columns(&self) -> Vec<(String, String, bool)> {
        match self {
            Database::Sqlite(pool) => {
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(pool)
                        .await
                        .expect("sqlite_master");
                let mut columns = Vec::new();
                for table in tables {
                    let names: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                            .bind(&table)
                            .fetch_all(pool)
                            .await
                            .expect("pragma_table_info");
                    assert!(!names.is_empty(), "{table} has columns");
                    // SQLite's columns hold any type: every one is looked at.
                    columns.extend(names.into_iter().map(|name| (table.clone(), name, false)));
                }
                columns
            }
            Database::Postgres(pool) => {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT table_name::text, column_name::text, data_type::text \
                     FROM information_schema.columns WHERE table_schema = 'public' \
                     AND data_type IN ('text', 'bytea', 'jsonb', 'character varying')",
                )
                .fetch_all(pool)
                .await
                .expect("information_schema");
                rows.into_iter()
                    .map(|(table, column, kind)| (table, column, kind == "bytea"))
                    .collect()
            }
        }
    }

    /// How many text or byte values `table.column` holds, and how many of
    /// them contain `needle`.
    pub(crate) async fn scan_column(
        &self,
        table: &str,
        column: &str,
        bytes: bool,
        needle: &str,
    ) -> (i64, i64) {
        let sql = match self {
            Database::Sqlite(_) => format!(
                "SELECT count(*), coalesce(sum(instr(CAST(\"{column}\" AS TEXT), $1) > 0), 0) \
                 FROM \"{table}\" WHERE typeof(\"{column}\") IN ('text', 'blob')"
            ),
            Database::Postgres(_) => {
                let text = if bytes {
                    format!("encode(\"{column}\", 'escape')")
                } else {
                    format!("\"{column}\"::text")
                };
                format!(
                    "SELECT count(\"{column}\")::bigint, \
                     count(*) FILTER (WHERE position($1 in {text}) > 0)::bigint \
                     FROM \"{table}\""
                )
            }
        };
        on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql))
            .bind(needle)
            .fetch_one(pool)
            .await
            .expect("column scan"))
    }

    pub(crate) async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
