//! Upgrading a PostgreSQL deployment made before ES384, PS256 and EdDSA:
//! the migration that widens the keys table's check keeps every key, user
//! and session of a deployment in use, and afterwards the operator may
//! switch `algorithm` to a new one.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::header_of;
use crate::postgres::fresh_database;
use crate::process::{Home, Server};

/// The keys table's check as the first migration made it, and that
/// migration recorded as the last one applied.
const OLD_SCHEMA: &str = "
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_alg_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_alg_check CHECK (alg IN ('RS256', 'ES256'));
DELETE FROM _sqlx_migrations WHERE version = 2;
";

/// Every row of the tables a deployment fills, in a fixed order, as text.
async fn rows(pool: &PgPool) -> Vec<String> {
    let mut rows = Vec::new();
    for table in [
        "signing_keys ORDER BY kid",
        "users ORDER BY id",
        "token_families ORDER BY id",
        "outstanding_tokens ORDER BY jti",
        "blacklisted_tokens ORDER BY jti",
    ] {
        let query = format!("SELECT row_to_json(t)::text FROM (SELECT * FROM {table}) t");
        let table_rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        rows.extend(table_rows);
    }
    rows
}

async fn jwks(client: &Client, server: &Server) -> Value {
    (client
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await)
        .expect("JWKS")
        .json()
        .await
        .expect("JSON")
}

/// `POST /api/token/refresh/` with the refresh token of `pair`.
async fn refresh(client: &Client, server: &Server, pair: &Value) -> (StatusCode, Value) {
    let body = json!({"refresh": token(pair, "refresh")});
    server.post_json(client, "/api/token/refresh/", body).await
}

fn token(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_postgres_deployment_keeps_its_keys_and_sessions_and_may_switch_to_eddsa() {
    if !crate::postgres::available(
        "replicas::an_upgraded_postgres_deployment_keeps_its_keys_and_sessions_and_may_switch_to_eddsa",
        &[],
    ) {
        return;
    }
    let client = Client::new();
    let url = fresh_database();
    let mut home = Home::on(&url, &[("algorithm", "RS256")]);
    home.add_user("alice", "pw");
    home.add_user("bob", "pw");
    let login = |name: &str| json!({"username": name, "password": "pw"});

    // A deployment in use: sessions rotated, blacklisted and untouched.
    let server = home.serve();
    let (_, alice) = server
        .post_json(&client, "/api/token/", login("alice"))
        .await;
    let (status, rotated) = refresh(&client, &server, &alice).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (_, bob) = server.post_json(&client, "/api/token/", login("bob")).await;
    let (status, _) = (server)
        .post_json(
            &client,
            "/api/token/blacklist/",
            json!({"refresh": token(&bob, "refresh")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, untouched) = server
        .post_json(&client, "/api/token/", login("alice"))
        .await;
    let jwks_before = jwks(&client, &server).await;
    drop(server);

    let pool = PgPool::connect(&url).await.expect("the database opens");
    let before = rows(&pool).await;
    sqlx::raw_sql(OLD_SCHEMA)
        .execute(&pool)
        .await
        .expect("the old schema");
    let refused = sqlx::query("UPDATE signing_keys SET alg = 'EdDSA' WHERE state = 'next'")
        .execute(&pool)
        .await;
    assert!(
        refused.is_err(),
        "the old check accepts RS256 and ES256 only"
    );

    // The upgrade: this version migrates when it starts.
    let server = home.serve();
    assert_eq!(
        jwks(&client, &server).await,
        jwks_before,
        "the same keys are published"
    );
    assert_eq!(rows(&pool).await, before, "every row is kept as it was");
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("migrations");
    assert_eq!(applied, [1, 2]);
    let (status, body) = refresh(&client, &server, &rotated).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the rotated session carries on: {body}"
    );
    let (status, body) = refresh(&client, &server, &bob).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "blacklisted before: {body}"
    );
    // Presented again after its rotation: a reuse, refused.
    let (status, body) = refresh(&client, &server, &alice).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "rotated away before: {body}"
    );
    drop(server);

    home.set("algorithm", "EdDSA");
    let server = home.serve();
    let switched = jwks(&client, &server).await;
    let algorithms: Vec<&Value> = (switched["keys"].as_array().expect("keys").iter())
        .map(|k| &k["alg"])
        .collect();
    assert_eq!(
        algorithms,
        [&json!("RS256"), &json!("EdDSA")],
        "active RS256, next EdDSA"
    );
    let (status, body) = refresh(&client, &server, &untouched).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        header_of(&token(&body, "access"))["alg"],
        "RS256",
        "RS256 signs until the rotation"
    );
    pool.close().await;
}
