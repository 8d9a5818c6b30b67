//! Upgrading a SQLite deployment made before ES384, PS256 and EdDSA: the
//! migration that widens the keys table keeps every key, its state and its
//! private half, the table's indexes and triggers, and the tokens already
//! issued; afterwards the operator may switch `algorithm` to a new one.

use jwtd::verifier::Algorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};

use std::time::Duration;

use crate::db;
use crate::helpers::{TestApp, expect_json, header_of, poll_until, spawn_sqlite_app_with};
use crate::process::only_in;

/// `signing_keys` as migrations 0001 and 0002 left it, before the table
/// was rebuilt to accept the new algorithms.
const OLD_SCHEMA: &str = "
ALTER TABLE signing_keys RENAME TO signing_keys_current;
CREATE TABLE signing_keys (
    kid            TEXT    PRIMARY KEY,
    alg            TEXT    NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    state          TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired', 'revoked')),
    public_jwk     TEXT    NOT NULL,
    sealed_private BLOB,
    created_at     INTEGER NOT NULL,
    activated_at   INTEGER,
    deactivated_at INTEGER,
    retired_at     INTEGER,
    revoked_at     INTEGER,
    rotate_requested_at INTEGER
);
INSERT INTO signing_keys SELECT * FROM signing_keys_current;
DROP TABLE signing_keys_current;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
CREATE TRIGGER signing_keys_insert AFTER INSERT ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_update AFTER UPDATE ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_delete AFTER DELETE ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
DELETE FROM _sqlx_migrations WHERE version = 6;
";

/// Every key row, in kid order, every column as SQL text (`NULL`, blobs as
/// `X'…'`), so a column moved or lost by the rebuild shows.
async fn key_rows(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT quote(kid) || ',' || quote(alg) || ',' || quote(state) || ',' || quote(public_jwk) \
         || ',' || quote(sealed_private) || ',' || quote(created_at) || ',' || quote(activated_at) \
         || ',' || quote(deactivated_at) || ',' || quote(retired_at) || ',' || quote(revoked_at) \
         || ',' || quote(rotate_requested_at) FROM signing_keys ORDER BY kid",
    )
    .fetch_all(pool)
    .await
    .expect("signing_keys")
}

/// `jwtd keys list --json` on the app's database: every key.
async fn listed_keys(app: &TestApp) -> Vec<Value> {
    let listed = app.jwtd(&["keys", "list", "--json"], None).await.ok();
    serde_json::from_str(&listed.stdout).expect("keys list --json")
}

/// The kid of the one key in `state`.
async fn kid_in(app: &TestApp, state: &str) -> String {
    only_in(&listed_keys(app).await, state)
}

/// Keys in every state: retired, revoked, active and next.
async fn seed_every_key_state(app: &TestApp) {
    let first = kid_in(app, "active").await;
    app.jwtd(&["keys", "rotate", "--now"], None).await.ok();
    // Past the longest token lifetime (a day) and the margin: retired.
    app.advance(Duration::from_secs(2 * 86_400));
    poll_until(
        Duration::from_secs(3),
        "the first key to retire",
        async || {
            (listed_keys(app).await.iter())
                .any(|k| k["kid"] == first.as_str() && k["state"] == "retired")
                .then_some(())
        },
    )
    .await;
    let second = kid_in(app, "active").await;
    app.jwtd(&["keys", "rotate", "--now"], None).await.ok();
    app.jwtd(&["keys", "revoke", &second], None).await.ok();
    // The server sees the CLI's changes and makes the next key on its own
    // schedule: wait until it publishes exactly the active and next keys.
    poll_until(
        Duration::from_secs(5),
        "the active and next keys published",
        async || {
            let keys = listed_keys(app).await;
            let mut expected: Vec<&str> = (keys.iter())
                .filter(|k| k["state"] == "active" || k["state"] == "next")
                .filter_map(|k| k["kid"].as_str())
                .collect();
            let jwks = app.jwks().await;
            let mut published: Vec<&str> = (jwks["keys"].as_array().expect("keys").iter())
                .filter_map(|k| k["kid"].as_str())
                .collect();
            expected.sort_unstable();
            published.sort_unstable();
            (expected.len() == 2 && published == expected).then_some(())
        },
    )
    .await;
}

/// The names of the keys table's indexes and triggers.
async fn schema_objects(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT type || ' ' || name FROM sqlite_master \
         WHERE tbl_name = 'signing_keys' AND type IN ('index', 'trigger') AND sql IS NOT NULL \
         ORDER BY type, name",
    )
    .fetch_all(pool)
    .await
    .expect("sqlite_master")
}

#[tokio::test]
async fn an_upgraded_sqlite_deployment_keeps_its_keys_and_tokens_and_may_switch_to_eddsa() {
    let mut app = spawn_sqlite_app_with(|_| {}).await;
    app.add_user("alice", "pw").await;
    seed_every_key_state(&app).await;
    let pair = app.login_ok("alice", "pw").await;
    let jwks_before = app.jwks().await;
    app.stop().await;

    let pool = db::open(&app.database_path()).await;
    let rows_before = key_rows(&pool).await;
    for state in ["retired", "revoked", "active", "next"] {
        let state = format!(",'{state}',");
        assert!(
            rows_before.iter().any(|row| row.contains(&state)),
            "a key {state}: {rows_before:#?}"
        );
    }
    let objects = schema_objects(&pool).await;
    assert_eq!(
        objects,
        [
            "index signing_keys_one_active",
            "index signing_keys_one_next",
            "trigger signing_keys_delete",
            "trigger signing_keys_insert",
            "trigger signing_keys_update",
        ]
    );
    sqlx::raw_sql(OLD_SCHEMA)
        .execute(&pool)
        .await
        .expect("the old schema");
    let refused = sqlx::query("UPDATE signing_keys SET alg = 'EdDSA' WHERE state = 'next'")
        .execute(&pool)
        .await;
    assert!(
        refused.is_err(),
        "the old table accepts RS256 and ES256 only"
    );
    pool.close().await;

    // The upgrade: the same deployment started by this version, which
    // migrates first, then with `algorithm = EdDSA`.
    let mut app = app.restart().await;
    assert_eq!(app.jwks().await, jwks_before, "the same keys are published");
    let verified = expect_json(app.verify(&pair.refresh).await, StatusCode::OK).await;
    assert_eq!(
        verified,
        json!({}),
        "a token issued before the upgrade verifies"
    );
    let pool = db::open(&app.database_path()).await;
    assert_eq!(
        key_rows(&pool).await,
        rows_before,
        "every key row is kept as it was"
    );
    assert_eq!(schema_objects(&pool).await, objects);
    pool.close().await;

    app.config.algorithm = Algorithm::EdDsa;
    let app = app.restart().await;
    let jwks = app.jwks().await;
    let algorithms: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["alg"])
        .collect();
    assert_eq!(
        algorithms,
        [&json!("RS256"), &json!("EdDSA")],
        "active RS256, next EdDSA"
    );
    let refreshed = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    let access = refreshed["access"].as_str().unwrap();
    assert_eq!(
        header_of(access)["alg"],
        "RS256",
        "RS256 signs until the rotation"
    );
}
