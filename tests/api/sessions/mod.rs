//! The refresh-token lifecycle over real HTTP (SPEC §3–§4):
//! outstanding tokens recorded by jti, the blacklist, simplejwt's rotation
//! settings, families with reuse detection and a retry grace, logging out
//! everywhere (HTTP and CLI), disabled users, sliding tokens, last login,
//! flushing expired records (CLI and `serve`), and a `kill -9` in the
//! middle of a burst of refreshes against a real `jwtd serve` process.
//!
//! Every wait is a bounded poll; nothing sleeps for a fixed time.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jwtd::clock::Clock;
use jwtd::testing::Deployment;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinSet;

use crate::db::{Database, on_pool};
use crate::helpers::{
    Pair, TestApp, access_token_not_valid, claims_of, expect_json, poll_until, spawn_app,
    spawn_app_with, spawn_sqlite_app_with,
};
use crate::process::{Home, Server};

pub(crate) const PASSWORD: &str = "correct horse";
pub(crate) const BLACKLISTED: &str = "Token is blacklisted";
pub(crate) const WRONG_TYPE: &str = "Token has wrong type";
pub(crate) const CHALLENGE: &str = r#"Bearer realm="api""#;
/// How long a bounded poll waits for the server to do something by itself.
pub(crate) const POLL_DEADLINE: Duration = Duration::from_secs(20);
// --- request helpers ----------------------------------------------------------

/// `POST /api/token/blacklist/`.
pub(crate) async fn blacklist(app: &TestApp, refresh: &str) -> Response {
    app.post_json("/api/token/blacklist/", &json!({"refresh": refresh}))
        .await
}

/// `POST /api/token/sliding/`.
pub(crate) async fn sliding_login(app: &TestApp, username: &str, password: &str) -> Response {
    app.post_json(
        "/api/token/sliding/",
        &json!({"username": username, "password": password}),
    )
    .await
}

/// Obtains a sliding token; panics unless 200 `{"token"}`.
pub(crate) async fn sliding_ok(app: &TestApp, username: &str) -> String {
    let body = expect_json(sliding_login(app, username, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["token"], "{body}");
    body["token"].as_str().expect("a sliding token").to_owned()
}

/// `POST /api/token/sliding/refresh/`.
pub(crate) async fn sliding_refresh(app: &TestApp, token: &str) -> Response {
    app.post_json("/api/token/sliding/refresh/", &json!({"token": token}))
        .await
}

/// `POST /api/token/logout-all/` with this `Authorization` header, if any.
pub(crate) async fn logout_all(app: &TestApp, path: &str, authorization: Option<&str>) -> Response {
    let mut request = app.client.post(app.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("request sent")
}

/// Refreshes with rotation on; returns the new refresh token.
pub(crate) async fn rotate(app: &TestApp, refresh: &str) -> String {
    let body = expect_json(app.refresh(refresh).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["access", "refresh"], "{body}");
    body["refresh"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// Logs `username` in; returns the pair.
pub(crate) async fn login(app: &TestApp, username: &str) -> Pair {
    app.login_ok(username, PASSWORD).await
}

/// `POST /api/token/refresh/` with each token, all sent at once (a barrier
/// releases them together); the statuses and bodies in `tokens`' order.
pub(crate) async fn refresh_all_at_once(
    app: &TestApp,
    tokens: Vec<String>,
) -> Vec<(StatusCode, Value)> {
    let start = Arc::new(Barrier::new(tokens.len()));
    let mut requests = JoinSet::new();
    for (index, token) in tokens.into_iter().enumerate() {
        let (client, start) = (app.client.clone(), start.clone());
        let url = app.url("/api/token/refresh/");
        requests.spawn(async move {
            start.wait().await;
            let response = client
                .post(url)
                .json(&json!({"refresh": token}))
                .send()
                .await
                .expect("request sent");
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON body");
            (index, status, body)
        });
    }
    let mut outcomes = requests.join_all().await;
    outcomes.sort_by_key(|(index, _, _)| *index);
    outcomes
        .into_iter()
        .map(|(_, status, body)| (status, body))
        .collect()
}

/// Asserts a 401 with exactly `body` and the `WWW-Authenticate` challenge.
pub(crate) async fn assert_401(response: Response, body: Value) {
    let url = response.url().clone();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    let got = expect_json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(got, body, "body of {url}");
    assert_eq!(challenge.as_deref(), Some(CHALLENGE), "challenge of {url}");
}

/// Asserts simplejwt's 401 for a refused token at refresh, verify or
/// blacklist.
pub(crate) async fn assert_token_error(response: Response, message: &str) {
    assert_401(
        response,
        json!({"detail": message, "code": "token_not_valid"}),
    )
    .await;
}

/// Asserts the 401 of a protected view given a token other than a valid
/// access token.
pub(crate) async fn assert_not_an_access_token(response: Response, message: &str) {
    assert_401(response, access_token_not_valid(message)).await;
}

/// Asserts 200 `{}`.
pub(crate) async fn assert_empty_ok(response: Response) {
    assert_eq!(expect_json(response, StatusCode::OK).await, json!({}));
}

/// The keys of a JSON object, sorted.
pub(crate) fn object_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// A token's `jti`.
pub(crate) fn jti(token: &str) -> String {
    claims_of(token)["jti"]
        .as_str()
        .expect("a jti claim")
        .to_owned()
}

/// A token's numeric claim.
pub(crate) fn claim(token: &str, name: &str) -> i64 {
    claims_of(token)[name]
        .as_i64()
        .unwrap_or_else(|| panic!("a numeric {name} claim"))
}

/// The whole numbers in a line of output.
pub(crate) fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().expect("a number"))
        .collect()
}

// --- database helpers -----------------------------------------------------------

/// A pool on the app's database.
pub(crate) async fn open_db(app: &TestApp) -> Database {
    Database::connect(&app.config.database_url).await
}

/// An `outstanding_tokens` row, with whether it is blacklisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outstanding {
    pub(crate) user_id: i64,
    pub(crate) token_type: String,
    pub(crate) family_id: Option<String>,
    pub(crate) expires_at: i64,
    pub(crate) rotated_at: Option<i64>,
    pub(crate) replaced_by: Option<String>,
    pub(crate) blacklisted: bool,
}

pub(crate) async fn outstanding(db: &Database, jti: &str) -> Option<Outstanding> {
    const SQL: &str = "SELECT o.user_id, o.token_type, o.family_id, o.expires_at, \
         o.rotated_at, o.replaced_by, \
         EXISTS (SELECT 1 FROM blacklisted_tokens b WHERE b.jti = o.jti) AS blacklisted \
         FROM outstanding_tokens o WHERE o.jti = $1";
    on_pool!(db, pool => {
        let row = sqlx::query(SQL)
            .bind(jti)
            .fetch_optional(pool)
            .await
            .expect("outstanding_tokens query")?;
        Some(Outstanding {
            user_id: row.get("user_id"),
            token_type: row.get("token_type"),
            family_id: row.get("family_id"),
            expires_at: row.get("expires_at"),
            rotated_at: row.get("rotated_at"),
            replaced_by: row.get("replaced_by"),
            blacklisted: row.get("blacklisted"),
        })
    })
}

/// The recorded row of `token`; panics if there is none.
pub(crate) async fn recorded(db: &Database, token: &str) -> Outstanding {
    let id = jti(token);
    outstanding(db, &id)
        .await
        .unwrap_or_else(|| panic!("token {id} is not recorded"))
}

pub(crate) async fn count(db: &Database, sql: &'static str) -> i64 {
    db.count(sql).await
}

/// Every `table.column` holding a text or byte value that contains
/// `needle`, over every table of the database; also returns how many text
/// and byte values were looked at.
pub(crate) async fn columns_containing(db: &Database, needle: &str) -> (Vec<String>, i64) {
    let mut found = Vec::new();
    let mut scanned = 0;
    for (table, column, bytes) in db.text_columns().await {
        let (values, hits) = db.scan_column(&table, &column, bytes, needle).await;
        scanned += values;
        if hits > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    (found, scanned)
}

/// Waits (bounded) until the token with this jti is no longer recorded.
pub(crate) async fn wait_until_flushed(pool: &Database, jti: &str) {
    let what = format!("token {jti} flushed");
    poll_until(POLL_DEADLINE, &what, async || {
        outstanding(pool, jti).await.is_none().then_some(())
    })
    .await;
}

mod accounts;
mod crash;
mod flush;
mod records;
mod reuse;
