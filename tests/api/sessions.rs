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
use sqlx::{AssertSqlSafe, Row, SqlitePool};
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinSet;

use crate::helpers::{
    Pair, TestApp, claims_of, expect_json, poll_until, spawn_app, spawn_app_with,
};
use crate::process::{Server, jwtd_with};

const PASSWORD: &str = "correct horse";
const BLACKLISTED: &str = "Token is blacklisted";
const WRONG_TYPE: &str = "Token has wrong type";
const CHALLENGE: &str = r#"Bearer realm="api""#;
/// How long a bounded poll waits for the server to do something by itself.
const POLL_DEADLINE: Duration = Duration::from_secs(20);

// --- request helpers ----------------------------------------------------------

/// `POST /api/token/blacklist/`.
async fn blacklist(app: &TestApp, refresh: &str) -> Response {
    app.post_json("/api/token/blacklist/", &json!({"refresh": refresh}))
        .await
}

/// `POST /api/token/sliding/`.
async fn sliding_login(app: &TestApp, username: &str, password: &str) -> Response {
    app.post_json(
        "/api/token/sliding/",
        &json!({"username": username, "password": password}),
    )
    .await
}

/// Obtains a sliding token; panics unless 200 `{"token"}`.
async fn sliding_ok(app: &TestApp, username: &str) -> String {
    let body = expect_json(sliding_login(app, username, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["token"], "{body}");
    body["token"].as_str().expect("a sliding token").to_owned()
}

/// `POST /api/token/sliding/refresh/`.
async fn sliding_refresh(app: &TestApp, token: &str) -> Response {
    app.post_json("/api/token/sliding/refresh/", &json!({"token": token}))
        .await
}

/// `POST /api/token/logout-all/` with this `Authorization` header, if any.
async fn logout_all(app: &TestApp, path: &str, authorization: Option<&str>) -> Response {
    let mut request = app.client.post(app.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("request sent")
}

/// Refreshes with rotation on; returns the new refresh token.
async fn rotate(app: &TestApp, refresh: &str) -> String {
    let body = expect_json(app.refresh(refresh).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["access", "refresh"], "{body}");
    body["refresh"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// Logs `username` in; returns the pair.
async fn login(app: &TestApp, username: &str) -> Pair {
    app.login_ok(username, PASSWORD).await
}

/// `POST /api/token/refresh/` with each token, all sent at once (a barrier
/// releases them together); the statuses and bodies in `tokens`' order.
async fn refresh_all_at_once(app: &TestApp, tokens: Vec<String>) -> Vec<(StatusCode, Value)> {
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
async fn assert_401(response: Response, body: Value) {
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
async fn assert_token_error(response: Response, message: &str) {
    assert_401(
        response,
        json!({"detail": message, "code": "token_not_valid"}),
    )
    .await;
}

/// Asserts the 401 of a protected view given a token other than a valid
/// access token.
async fn assert_not_an_access_token(response: Response, message: &str) {
    assert_401(
        response,
        json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{
                "token_class": "AccessToken",
                "token_type": "access",
                "message": message,
            }],
        }),
    )
    .await;
}

/// Asserts 200 `{}`.
async fn assert_empty_ok(response: Response) {
    assert_eq!(expect_json(response, StatusCode::OK).await, json!({}));
}

/// The keys of a JSON object, sorted.
fn object_keys(value: &Value) -> Vec<String> {
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
fn jti(token: &str) -> String {
    claims_of(token)["jti"]
        .as_str()
        .expect("a jti claim")
        .to_owned()
}

/// A token's numeric claim.
fn claim(token: &str, name: &str) -> i64 {
    claims_of(token)[name]
        .as_i64()
        .unwrap_or_else(|| panic!("a numeric {name} claim"))
}

/// The whole numbers in a line of output.
fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().expect("a number"))
        .collect()
}

// --- database helpers -----------------------------------------------------------

/// A pool on the app's SQLite file.
async fn open_db(app: &TestApp) -> SqlitePool {
    SqlitePool::connect(&app.config.database_url)
        .await
        .expect("the database opens")
}

/// An `outstanding_tokens` row, with whether it is blacklisted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outstanding {
    user_id: i64,
    token_type: String,
    family_id: Option<String>,
    expires_at: i64,
    rotated_at: Option<i64>,
    replaced_by: Option<String>,
    blacklisted: bool,
}

async fn outstanding(pool: &SqlitePool, jti: &str) -> Option<Outstanding> {
    let row = sqlx::query(
        "SELECT o.user_id, o.token_type, o.family_id, o.expires_at, o.rotated_at, o.replaced_by, \
         EXISTS (SELECT 1 FROM blacklisted_tokens b WHERE b.jti = o.jti) AS blacklisted \
         FROM outstanding_tokens o WHERE o.jti = ?",
    )
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
}

/// The recorded row of `token`; panics if there is none.
async fn recorded(pool: &SqlitePool, token: &str) -> Outstanding {
    let id = jti(token);
    outstanding(pool, &id)
        .await
        .unwrap_or_else(|| panic!("token {id} is not recorded"))
}

async fn count(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Every `table.column` holding a text or blob value that contains
/// `needle`, over every table of the database; also returns how many text
/// and blob values were looked at.
async fn columns_containing(pool: &SqlitePool, needle: &str) -> (Vec<String>, i64) {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(pool)
            .await
            .expect("sqlite_master");
    let mut found = Vec::new();
    let mut scanned = 0;
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(&table)
            .fetch_all(pool)
            .await
            .expect("pragma_table_info");
        assert!(!columns.is_empty(), "{table} has columns");
        for column in columns {
            let textual = format!("typeof(\"{column}\") IN ('text', 'blob')");
            let (values, hits): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT count(*), \
                 coalesce(sum(instr(CAST(\"{column}\" AS TEXT), ?1) > 0), 0) \
                 FROM \"{table}\" WHERE {textual}"
            )))
            .bind(needle)
            .fetch_one(pool)
            .await
            .expect("column scan");
            scanned += values;
            if hits > 0 {
                found.push(format!("{table}.{column}"));
            }
        }
    }
    (found, scanned)
}

/// Waits (bounded) until the token with this jti is no longer recorded.
async fn wait_until_flushed(pool: &SqlitePool, jti: &str) {
    let what = format!("token {jti} flushed");
    poll_until(POLL_DEADLINE, &what, async || {
        outstanding(pool, jti).await.is_none().then_some(())
    })
    .await;
}

// --- running the jwtd binary ---------------------------------------------------

// --- 1. outstanding tokens ------------------------------------------------------

#[tokio::test]
async fn outstanding_tokens_are_recorded_by_jti_with_user_and_expiry_never_by_text() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", PASSWORD).await;
    let bob = app.add_user("bob", PASSWORD).await;

    let first = login(&app, "alice").await;
    let second = login(&app, "alice").await;
    app.advance(Duration::from_secs(5));
    let refreshed = expect_json(app.refresh(&first.refresh).await, StatusCode::OK).await;
    let rotated = refreshed["refresh"].as_str().unwrap().to_owned();
    let rotated_access = refreshed["access"].as_str().unwrap().to_owned();
    let bobs = login(&app, "bob").await;
    let sliding = sliding_ok(&app, "alice").await;

    let pool = open_db(&app).await;
    for (token, user) in [
        (&first.refresh, alice),
        (&second.refresh, alice),
        (&rotated, alice),
        (&bobs.refresh, bob),
    ] {
        let row = recorded(&pool, token).await;
        assert_eq!(row.user_id, user, "{row:?}");
        assert_eq!(row.token_type, "refresh");
        assert_eq!(row.expires_at, claim(token, "exp"), "expires_at is exp");
        assert!(row.family_id.is_some(), "a refresh token has a family");
    }
    let family = |row: &Outstanding| row.family_id.clone().unwrap();
    let first_row = recorded(&pool, &first.refresh).await;
    assert_eq!(
        family(&first_row),
        family(&recorded(&pool, &rotated).await),
        "a rotation stays in its login's family"
    );
    let mut family_ids = HashSet::new();
    for token in [&first.refresh, &second.refresh, &bobs.refresh] {
        family_ids.insert(family(&recorded(&pool, token).await));
    }
    assert_eq!(family_ids.len(), 3, "each login opens its own family");
    assert_eq!(first_row.rotated_at, Some(app.clock.now()));
    assert_eq!(first_row.replaced_by, Some(jti(&rotated)));
    assert!(first_row.blacklisted, "rotated away and blacklisted");

    let sliding_row = recorded(&pool, &sliding).await;
    assert_eq!(
        sliding_row,
        Outstanding {
            user_id: alice,
            token_type: "sliding".into(),
            family_id: None,
            expires_at: claim(&sliding, "refresh_exp"),
            rotated_at: None,
            replaced_by: None,
            blacklisted: false,
        }
    );

    let access_tokens = [&first.access, &second.access, &rotated_access, &bobs.access];
    for access in access_tokens {
        assert!(
            outstanding(&pool, &jti(access)).await.is_none(),
            "access tokens are not recorded"
        );
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        5
    );

    // The scan does find what is stored (the jti), so finding nothing of
    // the token text means something.
    let (where_jti, scanned) = columns_containing(&pool, &jti(&rotated)).await;
    assert!(
        where_jti.contains(&"outstanding_tokens.jti".to_owned()),
        "{where_jti:?}"
    );
    assert!(scanned >= 10, "the scan saw {scanned} text values");
    let every_token = [
        &first.refresh,
        &first.access,
        &second.refresh,
        &second.access,
        &rotated,
        &rotated_access,
        &bobs.refresh,
        &bobs.access,
        &sliding,
    ];
    for token in every_token {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        // The whole token, its payload and its signature.
        for needle in [token.as_str(), parts[1], parts[2]] {
            let (found, _) = columns_containing(&pool, needle).await;
            assert!(
                found.is_empty(),
                "token text of {} is stored in {found:?}",
                jti(token)
            );
        }
    }
    pool.close().await;
}

// --- 2. the blacklist endpoint -----------------------------------------------------

#[tokio::test]
async fn blacklist_endpoint_blacklists_a_refresh_token() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let one = login(&app, "alice").await;
    let two = login(&app, "alice").await;
    let untouched = login(&app, "alice").await;

    for (path, pair) in [
        ("/api/token/blacklist/", &one),
        ("/api/token/blacklist", &two),
    ] {
        assert_empty_ok(app.post_json(path, &json!({"refresh": pair.refresh})).await).await;
        assert_token_error(app.verify(&pair.refresh).await, BLACKLISTED).await;
        assert_token_error(app.refresh(&pair.refresh).await, BLACKLISTED).await;
        // Blacklisting it again: the same 401.
        assert_token_error(
            app.post_json(path, &json!({"refresh": pair.refresh})).await,
            BLACKLISTED,
        )
        .await;
    }

    // Other logins are not affected.
    assert_empty_ok(app.verify(&untouched.refresh).await).await;
    let next = rotate(&app, &untouched.refresh).await;
    assert_empty_ok(app.verify(&next).await).await;

    // Only refresh tokens can be blacklisted.
    assert_token_error(blacklist(&app, &untouched.access).await, WRONG_TYPE).await;
    let sliding = sliding_ok(&app, "alice").await;
    assert_token_error(blacklist(&app, &sliding).await, WRONG_TYPE).await;
    assert_empty_ok(app.verify(&sliding).await).await;
    assert_token_error(blacklist(&app, "not.a.token").await, "Token is invalid").await;

    let missing = expect_json(
        app.post_json("/api/token/blacklist/", &json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(missing, json!({"refresh": ["This field is required."]}));
}

// --- 3. rotation settings -----------------------------------------------------------

#[tokio::test]
async fn default_rotation_returns_a_pair_and_blacklists_the_old_token() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let pair = login(&app, "alice").await;

    let body = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["access", "refresh"]);
    let access = body["access"].as_str().unwrap();
    let new = body["refresh"].as_str().unwrap();
    assert_eq!(claims_of(access)["token_type"], "access");
    assert_eq!(claims_of(new)["token_type"], "refresh");
    assert_ne!(jti(new), jti(&pair.refresh));
    assert_eq!(
        expect_json(app.me(access).await, StatusCode::OK).await["username"],
        "alice"
    );

    assert_empty_ok(app.verify(new).await).await;
    assert_token_error(app.verify(&pair.refresh).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&pair.refresh).await, BLACKLISTED).await;
}

#[tokio::test]
async fn without_rotation_refresh_returns_only_an_access_token() {
    let app = spawn_app_with(|config| config.rotate_refresh_tokens = false).await;
    app.add_user("alice", PASSWORD).await;
    let pair = login(&app, "alice").await;

    for _ in 0..3 {
        app.advance(Duration::from_secs(10));
        let body = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
        assert_eq!(object_keys(&body), ["access"], "{body}");
        let access = body["access"].as_str().unwrap();
        assert_eq!(claim(access, "iat"), app.clock.now());
        assert_eq!(
            expect_json(app.me(access).await, StatusCode::OK).await["username"],
            "alice"
        );
    }
    assert_empty_ok(app.verify(&pair.refresh).await).await;

    let pool = open_db(&app).await;
    let row = recorded(&pool, &pair.refresh).await;
    assert_eq!((row.rotated_at, row.blacklisted), (None, false), "{row:?}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        1
    );
    pool.close().await;
}

#[tokio::test]
async fn rotation_without_blacklisting_keeps_old_tokens_working() {
    let app = spawn_app_with(|config| {
        config.rotate_refresh_tokens = true;
        config.blacklist_after_rotation = false;
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    let a = login(&app, "alice").await.refresh;

    let b = rotate(&app, &a).await;
    app.advance(Duration::from_secs(60));
    // No reuse detection: the old token still refreshes, as often as wanted.
    let c = rotate(&app, &a).await;
    let d = rotate(&app, &b).await;
    let e = rotate(&app, &a).await;
    let ids: HashSet<String> = [&a, &b, &c, &d, &e].into_iter().map(|t| jti(t)).collect();
    assert_eq!(ids.len(), 5, "a new refresh token each time");
    for token in [&a, &b, &c, &d, &e] {
        assert_empty_ok(app.verify(token).await).await;
    }
    rotate(&app, &c).await;
}

// --- 4. reuse detection -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_of_one_token_give_exactly_one_success() {
    const N: usize = 50;
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let pair = login(&app, "alice").await;

    let outcomes = refresh_all_at_once(&app, vec![pair.refresh.clone(); N]).await;

    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one success: {outcomes:?}");
    let refused = json!({"detail": BLACKLISTED, "code": "token_not_valid"});
    for (status, body) in outcomes.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, body),
            (StatusCode::UNAUTHORIZED, &refused),
            "every other refresh is refused as blacklisted"
        );
    }
    // The 49 replays of a rotated-away token revoked the family, the
    // winner's new token included.
    let winner = winners[0]["refresh"].as_str().expect("a new refresh token");
    assert_token_error(app.verify(winner).await, BLACKLISTED).await;
}

/// Refreshes sent at once, so they share the writer's batches: every
/// fresh token rotates, every replay of a rotated-away token revokes only
/// its own family, and each answer is its own.
#[tokio::test]
async fn concurrent_refreshes_of_many_sessions_each_get_their_own_outcome() {
    const FRESH: usize = 24;
    const REPLAYED: usize = 8;
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let mut fresh = Vec::new();
    for _ in 0..FRESH {
        fresh.push(login(&app, "alice").await.refresh);
    }
    // Rotated once, before the burst: presenting them again is reuse. Their
    // successors must die with their families.
    let mut replayed = Vec::new();
    for _ in 0..REPLAYED {
        let old = login(&app, "alice").await.refresh;
        let successor = rotate(&app, &old).await;
        replayed.push((old, successor));
    }

    let tokens = fresh
        .iter()
        .chain(replayed.iter().map(|(old, _)| old))
        .cloned()
        .collect();
    let outcomes = refresh_all_at_once(&app, tokens).await;

    let refused = json!({"detail": BLACKLISTED, "code": "token_not_valid"});
    for (index, (status, body)) in outcomes.iter().enumerate() {
        if index < FRESH {
            assert_eq!(*status, StatusCode::OK, "fresh token {index}: {body}");
        } else {
            assert_eq!(
                (*status, body),
                (StatusCode::UNAUTHORIZED, &refused),
                "replay {index}"
            );
        }
    }
    // Every rotated token works once more; the presented ones are spent.
    for ((_, body), presented) in outcomes.iter().zip(&fresh) {
        let rotated = body["refresh"].as_str().expect("a new refresh token");
        rotate(&app, rotated).await;
        assert_token_error(app.refresh(presented).await, BLACKLISTED).await;
    }
    // The replays' families are revoked, successors included.
    for (_, successor) in &replayed {
        assert_token_error(app.refresh(successor).await, BLACKLISTED).await;
    }
}

#[tokio::test]
async fn a_thiefs_replay_revokes_the_victims_newer_token_too() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    let stolen = login(&app, "alice").await.refresh;
    let other_login = login(&app, "alice").await.refresh;

    // The victim refreshes A → B; the thief replays A.
    let victims = rotate(&app, &stolen).await;
    app.advance(Duration::from_secs(1));
    assert_token_error(app.refresh(&stolen).await, BLACKLISTED).await;
    // The victim's newer token died with the family.
    assert_token_error(app.refresh(&victims).await, BLACKLISTED).await;
    assert_token_error(app.verify(&victims).await, BLACKLISTED).await;

    // Another login's family is unaffected.
    let next = rotate(&app, &other_login).await;
    assert_empty_ok(app.verify(&next).await).await;

    // The other way round: the thief refreshes first, the victim's
    // (now rotated-away) token comes back and kills the thief's.
    let victims = login(&app, "alice").await.refresh;
    let thiefs = rotate(&app, &victims).await;
    assert_token_error(app.refresh(&victims).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&thiefs).await, BLACKLISTED).await;
    // Still nothing for the other login, and a new login works.
    let next = rotate(&app, &next).await;
    assert_empty_ok(app.verify(&next).await).await;
    let fresh = login(&app, "alice").await.refresh;
    rotate(&app, &fresh).await;
}

#[tokio::test]
async fn a_retry_within_the_grace_gets_a_fresh_pair_and_the_family_survives() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.add_user("alice", PASSWORD).await;
    let a = login(&app, "alice").await.refresh;

    // The first attempt's answer (B) is lost; the client retries A.
    let b = rotate(&app, &a).await;
    app.advance(Duration::from_secs(10));
    let retry = expect_json(app.refresh(&a).await, StatusCode::OK).await;
    assert_eq!(object_keys(&retry), ["access", "refresh"]);
    let c = retry["refresh"].as_str().unwrap().to_owned();
    assert_ne!(jti(&c), jti(&b), "a fresh pair");
    assert_eq!(claim(&c, "iat"), app.clock.now());
    let access = retry["access"].as_str().unwrap();
    assert_eq!(
        expect_json(app.me(access).await, StatusCode::OK).await["username"],
        "alice"
    );

    let pool = open_db(&app).await;
    assert_eq!(
        recorded(&pool, &c).await.family_id,
        recorded(&pool, &a).await.family_id,
        "the retry stays in the family"
    );
    pool.close().await;

    // The family survives: the retry's token refreshes.
    let d = rotate(&app, &c).await;
    assert_empty_ok(app.verify(&d).await).await;
    // B, superseded by the retry, is blacklisted.
    assert_token_error(app.verify(&b).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&b).await, BLACKLISTED).await;
}

#[tokio::test]
async fn a_replay_after_the_grace_revokes_the_family() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.add_user("alice", PASSWORD).await;
    let a = login(&app, "alice").await.refresh;
    let other_login = login(&app, "alice").await.refresh;

    let b = rotate(&app, &a).await;
    app.advance(Duration::from_secs(31));
    assert_token_error(app.refresh(&a).await, BLACKLISTED).await;
    assert_token_error(app.verify(&b).await, BLACKLISTED).await;
    assert_token_error(app.refresh(&b).await, BLACKLISTED).await;

    // Another login's family is unaffected.
    let next = rotate(&app, &other_login).await;
    assert_empty_ok(app.verify(&next).await).await;
}

// --- 5. logging out everywhere ----------------------------------------------------------

/// Alice's refresh tokens from three logins (one rotated once) and two
/// sliding tokens; bob's login and sliding token.
struct Sessions {
    alice_access: String,
    alice_refresh: Vec<String>,
    alice_sliding: Vec<String>,
    bob: Pair,
    bob_sliding: String,
}

async fn open_sessions(app: &TestApp) -> Sessions {
    app.add_user("alice", PASSWORD).await;
    app.add_user("bob", PASSWORD).await;
    let first = login(app, "alice").await;
    let rotated = rotate(app, &first.refresh).await;
    let mut alice_refresh = vec![rotated];
    for _ in 0..2 {
        alice_refresh.push(login(app, "alice").await.refresh);
    }
    let alice_sliding = vec![
        sliding_ok(app, "alice").await,
        sliding_ok(app, "alice").await,
    ];
    Sessions {
        alice_access: first.access,
        alice_refresh,
        alice_sliding,
        bob: login(app, "bob").await,
        bob_sliding: sliding_ok(app, "bob").await,
    }
}

/// Every refresh and sliding token of alice is blacklisted; bob's work.
async fn assert_alice_logged_out_everywhere(app: &TestApp, sessions: &Sessions) {
    for token in &sessions.alice_refresh {
        assert_token_error(app.verify(token).await, BLACKLISTED).await;
        assert_token_error(app.refresh(token).await, BLACKLISTED).await;
    }
    for token in &sessions.alice_sliding {
        assert_token_error(app.verify(token).await, BLACKLISTED).await;
        assert_token_error(sliding_refresh(app, token).await, BLACKLISTED).await;
    }
    rotate(app, &sessions.bob.refresh).await;
    expect_json(
        sliding_refresh(app, &sessions.bob_sliding).await,
        StatusCode::OK,
    )
    .await;
    // Alice can log in again.
    let again = login(app, "alice").await;
    rotate(app, &again.refresh).await;
    let sliding = sliding_ok(app, "alice").await;
    expect_json(sliding_refresh(app, &sliding).await, StatusCode::OK).await;
}

#[tokio::test]
async fn logout_all_over_http_blacklists_every_token_of_the_user() {
    let app = spawn_app().await;
    let sessions = open_sessions(&app).await;

    // Without credentials, or with a token that is not an access token.
    assert_401(
        logout_all(&app, "/api/token/logout-all/", None).await,
        json!({"detail": "Authentication credentials were not provided."}),
    )
    .await;
    for token in [&sessions.alice_refresh[0], &sessions.alice_sliding[0]] {
        let bearer = format!("Bearer {token}");
        assert_not_an_access_token(
            logout_all(&app, "/api/token/logout-all/", Some(&bearer)).await,
            WRONG_TYPE,
        )
        .await;
    }
    // Those changed nothing.
    for token in sessions.alice_refresh.iter().chain(&sessions.alice_sliding) {
        assert_empty_ok(app.verify(token).await).await;
    }

    let bearer = format!("Bearer {}", sessions.alice_access);
    assert_empty_ok(logout_all(&app, "/api/token/logout-all/", Some(&bearer)).await).await;
    assert_alice_logged_out_everywhere(&app, &sessions).await;
    // Without the trailing slash too, and again is harmless.
    assert_empty_ok(logout_all(&app, "/api/token/logout-all", Some(&bearer)).await).await;
}

#[tokio::test]
async fn logout_all_from_the_cli_against_a_running_server() {
    let app = spawn_app().await;
    let sessions = open_sessions(&app).await;

    let run = app.jwtd(&["users", "logout-all", "alice"], None).await.ok();
    // Three refresh tokens (the rotated-away one was already blacklisted)
    // and two sliding tokens.
    assert_eq!(numbers_in(&run.stdout), [5], "stdout: {}", run.stdout);
    assert_alice_logged_out_everywhere(&app, &sessions).await;

    let again = app.jwtd(&["users", "logout-all", "bob"], None).await.ok();
    // Bob's rotated token and his sliding token (refreshed, same jti).
    assert_eq!(numbers_in(&again.stdout), [2], "stdout: {}", again.stdout);

    app.jwtd(&["users", "logout-all", "ghost"], None)
        .await
        .one_line_error(&["ghost"]);
}

// --- 6. disabled users ------------------------------------------------------------------

#[tokio::test]
async fn a_disabled_users_refresh_and_sliding_tokens_are_refused() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    app.add_user("bob", PASSWORD).await;
    let alice = login(&app, "alice").await;
    let alice_sliding = sliding_ok(&app, "alice").await;
    let bob = login(&app, "bob").await;
    let bob_sliding = sliding_ok(&app, "bob").await;

    let store = Deployment::open(&app.config).await.unwrap();
    store
        .set_user_active("alice", false, app.clock.now())
        .await
        .unwrap();
    // Disabling a user ends its sessions: its tokens are blacklisted.
    assert_token_error(app.refresh(&alice.refresh).await, BLACKLISTED).await;
    assert_token_error(sliding_refresh(&app, &alice_sliding).await, BLACKLISTED).await;
    assert_401(
        app.login("alice", PASSWORD).await,
        json!({"detail": "No active account found with the given credentials"}),
    )
    .await;

    // Enabled again, the old tokens stay refused; a new login works.
    store
        .set_user_active("alice", true, app.clock.now())
        .await
        .unwrap();
    store.close().await;
    assert_token_error(app.refresh(&alice.refresh).await, BLACKLISTED).await;
    assert_token_error(sliding_refresh(&app, &alice_sliding).await, BLACKLISTED).await;
    let again = login(&app, "alice").await;
    rotate(&app, &again.refresh).await;

    // `jwtd users disable` does the same to a running server.
    app.jwtd(&["users", "disable", "bob"], None).await.ok();
    assert_token_error(app.refresh(&bob.refresh).await, BLACKLISTED).await;
    assert_token_error(sliding_refresh(&app, &bob_sliding).await, BLACKLISTED).await;
}

// --- 7. sliding tokens --------------------------------------------------------------------

#[tokio::test]
async fn sliding_tokens_keep_their_id_and_refresh_exp_and_expire() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", PASSWORD).await;
    app.add_user("bob", PASSWORD).await;

    let token = sliding_ok(&app, "alice").await;
    let claims = claims_of(&token);
    let iat = claim(&token, "iat");
    assert_eq!(iat, app.clock.now());
    assert_eq!(claims["token_type"], "sliding");
    assert_eq!(claims["user_id"], alice.to_string());
    assert_eq!(claim(&token, "exp"), iat + 300);
    assert_eq!(claim(&token, "refresh_exp"), iat + 86_400);
    let id = jti(&token);
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "jti {id}"
    );
    assert_empty_ok(app.verify(&token).await).await;
    // Only access tokens authenticate.
    assert_not_an_access_token(app.me(&token).await, WRONG_TYPE).await;

    app.advance(Duration::from_secs(100));
    let body = expect_json(sliding_refresh(&app, &token).await, StatusCode::OK).await;
    assert_eq!(object_keys(&body), ["token"]);
    let renewed = body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&renewed)["token_type"], "sliding");
    assert_eq!(jti(&renewed), id, "same jti");
    assert_eq!(
        claim(&renewed, "refresh_exp"),
        iat + 86_400,
        "same refresh_exp"
    );
    assert_eq!(claim(&renewed, "iat"), app.clock.now());
    assert_eq!(claim(&renewed, "exp"), app.clock.now() + 300);
    assert!(claim(&renewed, "exp") > claim(&token, "exp"));
    assert_eq!(claims_of(&renewed)["user_id"], alice.to_string());
    assert_empty_ok(app.verify(&renewed).await).await;
    // The no-slash path too.
    let again = app
        .post_json("/api/token/sliding/refresh", &json!({"token": renewed}))
        .await;
    expect_json(again, StatusCode::OK).await;

    // Wrong token types, both ways.
    let pair = login(&app, "bob").await;
    assert_token_error(sliding_refresh(&app, &pair.refresh).await, WRONG_TYPE).await;
    assert_token_error(sliding_refresh(&app, &pair.access).await, WRONG_TYPE).await;
    assert_token_error(app.refresh(&renewed).await, WRONG_TYPE).await;

    // Past its exp.
    app.advance(Duration::from_secs(301));
    assert_token_error(sliding_refresh(&app, &renewed).await, "Token is expired").await;
    assert_token_error(app.verify(&renewed).await, "Token is expired").await;
}

#[tokio::test]
async fn sliding_refresh_stops_at_refresh_exp() {
    let app = spawn_app_with(|config| {
        config.sliding_token_lifetime = Duration::from_secs(86_400);
        config.sliding_token_refresh_lifetime = Duration::from_secs(3_600);
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    let token = sliding_ok(&app, "alice").await;
    let iat = claim(&token, "iat");
    assert_eq!(claim(&token, "exp"), iat + 86_400);
    assert_eq!(claim(&token, "refresh_exp"), iat + 3_600);

    app.advance(Duration::from_secs(3_599));
    let renewed = expect_json(sliding_refresh(&app, &token).await, StatusCode::OK).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claim(&renewed, "refresh_exp"), iat + 3_600);

    app.advance(Duration::from_secs(1));
    for presented in [&token, &renewed] {
        assert_token_error(
            sliding_refresh(&app, presented).await,
            "Token 'refresh_exp' claim has expired",
        )
        .await;
    }
}

#[tokio::test]
async fn sliding_login_and_refresh_errors() {
    let app = spawn_app().await;
    app.add_user("alice", PASSWORD).await;
    app.add_user_with("carol", PASSWORD, false).await;
    let bad_credentials = json!({"detail": "No active account found with the given credentials"});
    for (username, password) in [
        ("alice", "wrong"),
        ("nobody", PASSWORD),
        ("carol", PASSWORD),
    ] {
        assert_401(
            sliding_login(&app, username, password).await,
            bad_credentials.clone(),
        )
        .await;
    }
    let required = || json!(["This field is required."]);
    for (body, expected) in [
        (
            json!({}),
            json!({"username": required(), "password": required()}),
        ),
        (
            json!({"username": "alice"}),
            json!({"password": required()}),
        ),
        (
            json!({"password": PASSWORD}),
            json!({"username": required()}),
        ),
    ] {
        let response = app.post_json("/api/token/sliding/", &body).await;
        assert_eq!(
            expect_json(response, StatusCode::BAD_REQUEST).await,
            expected,
            "{body}"
        );
    }
    let response = app
        .post_json("/api/token/sliding/refresh/", &json!({}))
        .await;
    assert_eq!(
        expect_json(response, StatusCode::BAD_REQUEST).await,
        json!({"token": required()})
    );
    assert_token_error(
        sliding_refresh(&app, "not.a.token").await,
        "Token is invalid",
    )
    .await;

    // The no-slash path answers too.
    let response = app
        .post_json(
            "/api/token/sliding",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    expect_json(response, StatusCode::OK).await;
}

// --- 8. last login ---------------------------------------------------------------------------

#[tokio::test]
async fn update_last_login_records_the_login_time_only_when_on() {
    for enabled in [true, false] {
        let app = spawn_app_with(|config| config.update_last_login = enabled).await;
        app.add_user("alice", PASSWORD).await;
        app.add_user("bob", PASSWORD).await;

        app.advance(Duration::from_secs(60));
        let alice_login = app.clock.now();
        let pair = login(&app, "alice").await;
        app.advance(Duration::from_secs(30));
        assert_eq!(
            app.login("bob", "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
        app.advance(Duration::from_secs(30));
        let bob_login = app.clock.now();
        sliding_ok(&app, "bob").await;
        // A refresh is not a login.
        app.advance(Duration::from_secs(30));
        rotate(&app, &pair.refresh).await;

        let store = Deployment::open(&app.config).await.unwrap();
        let mut users = Vec::new();
        for name in ["alice", "bob"] {
            users.push(store.user(name).await.unwrap().expect("the user exists"));
        }
        store.close().await;
        let last_login = |name: &str| {
            users
                .iter()
                .find(|user| user.username == name)
                .unwrap_or_else(|| panic!("{name} is listed"))
                .last_login
        };
        let expected = |at| enabled.then_some(at);
        assert_eq!(
            last_login("alice"),
            expected(alice_login),
            "enabled={enabled}"
        );
        assert_eq!(last_login("bob"), expected(bob_login), "enabled={enabled}");
    }
}

// --- 9. flushing expired records ------------------------------------------------------------

#[tokio::test]
async fn flush_expired_cli_deletes_expired_records_and_their_blacklist_entries() {
    // The CLI flushes by the wall clock: issue from a clock three days
    // back, so refresh tokens (1 day) are expired by now and sliding tokens
    // (10 days to refresh_exp) are not.
    let app = spawn_app_with(|config| {
        config.refresh_token_lifetime = Duration::from_secs(86_400);
        config.sliding_token_refresh_lifetime = Duration::from_secs(10 * 86_400);
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    app.add_user("bob", PASSWORD).await;
    app.clock.set(app.clock.now() - 3 * 86_400);

    let plain = login(&app, "alice").await.refresh;
    let rotated_away = login(&app, "alice").await.refresh;
    let rotated = rotate(&app, &rotated_away).await;
    let blacklisted = login(&app, "alice").await.refresh;
    assert_empty_ok(blacklist(&app, &blacklisted).await).await;
    let kept = sliding_ok(&app, "alice").await;
    let bob = login(&app, "bob").await;
    let kept_blacklisted = sliding_ok(&app, "bob").await;
    let bearer = format!("Bearer {}", bob.access);
    assert_empty_ok(logout_all(&app, "/api/token/logout-all/", Some(&bearer)).await).await;

    let expired = [&plain, &rotated_away, &rotated, &blacklisted, &bob.refresh];
    let pool = open_db(&app).await;
    for token in expired {
        assert!(claim(token, "exp") < jwtd::clock::SystemClock.now());
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        7
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM blacklisted_tokens").await,
        4
    );

    let run = app.jwtd(&["flush-expired"], None).await.ok();
    assert_eq!(numbers_in(&run.stdout), [5], "stdout: {}", run.stdout);

    for token in expired {
        assert!(outstanding(&pool, &jti(token)).await.is_none(), "flushed");
    }
    assert!(!recorded(&pool, &kept).await.blacklisted);
    assert!(recorded(&pool, &kept_blacklisted).await.blacklisted);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        2
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM blacklisted_tokens").await,
        1,
        "the expired tokens' blacklist entries went with them"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM token_families").await,
        0,
        "families left empty are gone"
    );
    pool.close().await;

    // The unexpired tokens behave as before.
    expect_json(sliding_refresh(&app, &kept).await, StatusCode::OK).await;
    assert_token_error(sliding_refresh(&app, &kept_blacklisted).await, BLACKLISTED).await;

    let again = app.jwtd(&["flush-expired"], None).await.ok();
    assert_eq!(numbers_in(&again.stdout), [0], "stdout: {}", again.stdout);
}

#[tokio::test]
async fn serve_flushes_expired_records_at_start_and_daily() {
    let app = spawn_app_with(|config| {
        config.refresh_token_lifetime = Duration::from_secs(60);
    })
    .await;
    app.add_user("alice", PASSWORD).await;
    let expired = login(&app, "alice").await.refresh;
    assert_empty_ok(blacklist(&app, &expired).await).await;
    app.advance(Duration::from_secs(61));
    let fresh = login(&app, "alice").await.refresh;

    let pool = open_db(&app).await;
    // The running server flushed when it started, not since.
    assert!(recorded(&pool, &expired).await.blacklisted);
    pool.close().await;

    let app = app.restart().await;
    let pool = open_db(&app).await;
    wait_until_flushed(&pool, &jti(&expired)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM blacklisted_tokens").await,
        0
    );
    assert!(
        outstanding(&pool, &jti(&fresh)).await.is_some(),
        "unexpired rows stay"
    );
    rotate(&app, &fresh).await;

    // A day later the running server flushes again by itself.
    let last = login(&app, "alice").await.refresh;
    app.advance(Duration::from_secs(86_400));
    wait_until_flushed(&pool, &jti(&last)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await,
        0
    );
    pool.close().await;
}

// --- 10. kill -9 in the middle of a burst -------------------------------------------------------

/// How many refresh chains run at once.
const CHAINS: usize = 40;
/// How many successful refreshes before the server is killed.
const KILL_AFTER: usize = 120;
/// A bound on each chain's length, far beyond what the kill allows.
const MAX_STEPS: usize = 10_000;

/// What one chain of refreshes saw: each answered refresh (the token
/// presented, the refresh token returned), and the token whose request got
/// no answer.
#[derive(Debug, Default)]
struct Chain {
    answered: Vec<(String, String)>,
    unanswered: Option<String>,
    refused: Vec<(String, StatusCode, String)>,
    last: String,
}

/// Refreshes `token`, then the token returned, and so on, until the server
/// stops answering.
async fn refresh_chain(
    client: reqwest::Client,
    url: String,
    token: String,
    successes: Arc<AtomicUsize>,
    enough: Arc<Notify>,
) -> Chain {
    let mut chain = Chain {
        last: token.clone(),
        ..Chain::default()
    };
    let mut current = token;
    for _ in 0..MAX_STEPS {
        let sent = client
            .post(&url)
            .json(&json!({"refresh": current}))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(_) => {
                chain.unanswered = Some(current);
                return chain;
            }
        };
        let status = response.status();
        let Ok(text) = response.text().await else {
            // The status line came but the body did not: no answer either.
            chain.unanswered = Some(current);
            return chain;
        };
        if status != StatusCode::OK {
            chain.refused.push((current, status, text));
            return chain;
        }
        let body: Value = serde_json::from_str(&text).expect("a JSON body");
        let new = body["refresh"]
            .as_str()
            .expect("a new refresh token")
            .to_owned();
        chain.answered.push((current, new.clone()));
        chain.last = new.clone();
        current = new;
        if successes.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
            enough.notify_one();
        }
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_a_burst_of_refreshes_leaves_the_database_consistent() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let mut server = Server::start(d, &[]);
    jwtd_with(
        d,
        &["users", "add", "alice", "--password-stdin"],
        &[],
        Some("pw\n"),
    )
    .ok();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut logins = JoinSet::new();
    for _ in 0..CHAINS {
        let client = client.clone();
        let url = server.url("/api/token/");
        logins.spawn(async move {
            let response = client
                .post(url)
                .json(&json!({"username": "alice", "password": "pw"}))
                .send()
                .await
                .expect("login request sent");
            let body = expect_json(response, StatusCode::OK).await;
            body["refresh"].as_str().unwrap().to_owned()
        });
    }
    let tokens = logins.join_all().await;

    let successes = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut burst = JoinSet::new();
    for token in tokens.iter().cloned() {
        burst.spawn(refresh_chain(
            client.clone(),
            server.url("/api/token/refresh/"),
            token,
            successes.clone(),
            enough.clone(),
        ));
    }
    tokio::time::timeout(Duration::from_secs(120), enough.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} refreshes in 120 s; log: {:?}",
                successes.load(Ordering::SeqCst),
                server.log()
            )
        });
    // Then kill at once, preferably while the database holds a rotation
    // whose answer has not arrived yet (a commit racing its response).
    let url = format!("sqlite://{}", d.join("jwtd.db").display());
    let watcher = SqlitePool::connect(&url).await.expect("the database opens");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let committed = count(
            &watcher,
            "SELECT count(*) FROM outstanding_tokens WHERE rotated_at IS NOT NULL",
        )
        .await;
        if committed as usize > successes.load(Ordering::SeqCst) {
            break;
        }
    }
    server.kill();
    watcher.close().await;
    let chains = tokio::time::timeout(Duration::from_secs(120), burst.join_all())
        .await
        .expect("every chain stops once the server is gone");

    let refused: Vec<_> = chains.iter().flat_map(|chain| &chain.refused).collect();
    assert!(refused.is_empty(), "answered refusals: {refused:?}");
    let answered: usize = chains.iter().map(|chain| chain.answered.len()).sum();
    assert!(answered >= KILL_AFTER, "{answered} answered refreshes");
    let unanswered: Vec<&String> = chains
        .iter()
        .filter_map(|chain| chain.unanswered.as_ref())
        .collect();
    assert!(!unanswered.is_empty(), "the kill interrupted the burst");

    // The database after the crash.
    let pool = SqlitePool::connect(&url).await.expect("the database opens");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        dangling.is_empty(),
        "{} foreign key violations",
        dangling.len()
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outstanding_tokens o WHERE o.rotated_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM outstanding_tokens r WHERE r.jti = o.replaced_by \
              AND r.family_id = o.family_id AND r.user_id = o.user_id)"
        )
        .await,
        0,
        "every rotated token's replacement is recorded, in its family"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outstanding_tokens o WHERE o.rotated_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM blacklisted_tokens b WHERE b.jti = o.jti)"
        )
        .await,
        0,
        "every rotated token is blacklisted"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM blacklisted_tokens b JOIN outstanding_tokens o USING (jti) \
             WHERE o.rotated_at IS NULL"
        )
        .await,
        0,
        "no token is blacklisted without having been rotated (no logout here)"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM token_families WHERE revoked_at IS NOT NULL"
        )
        .await,
        0,
        "no family was revoked"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM token_families").await,
        CHAINS as i64
    );

    // Every answered refresh is on disk: the presented token rotated to
    // the returned one.
    for (presented, returned) in chains.iter().flat_map(|chain| &chain.answered) {
        let old = recorded(&pool, presented).await;
        assert_eq!(old.replaced_by, Some(jti(returned)), "{old:?}");
        assert!(old.blacklisted);
        recorded(&pool, returned).await;
    }
    // A token whose request got no answer is either rotated (and
    // blacklisted) or untouched.
    let mut rotated_unanswered = 0;
    let mut untouched = Vec::new();
    for chain in &chains {
        let row = recorded(&pool, &chain.last).await;
        match (&chain.unanswered, row.rotated_at) {
            (Some(_), Some(_)) => {
                assert!(row.blacklisted, "{row:?}");
                assert!(row.replaced_by.is_some(), "{row:?}");
                rotated_unanswered += 1;
            }
            (_, None) => {
                assert!(!row.blacklisted, "{row:?}");
                assert!(row.replaced_by.is_none(), "{row:?}");
                untouched.push(chain.last.clone());
            }
            (None, Some(_)) => panic!("a returned token that was never presented is rotated"),
        }
    }
    let rotations = count(
        &pool,
        "SELECT count(*) FROM outstanding_tokens WHERE rotated_at IS NOT NULL",
    )
    .await;
    assert_eq!(
        rotations as usize,
        answered + rotated_unanswered,
        "every committed rotation is an answered one or a cut-off one"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outstanding_tokens").await as usize,
        CHAINS + answered + rotated_unanswered
    );
    pool.close().await;
    eprintln!(
        "kill -9 after {answered} answered refreshes; {} chains cut off, {rotated_unanswered} of them committed",
        unanswered.len()
    );

    // A new server on the same database carries on.
    let server = Server::start(d, &[]);
    for token in &untouched {
        let response = client
            .post(server.url("/api/token/refresh/"))
            .json(&json!({"refresh": token}))
            .send()
            .await
            .expect("request sent");
        expect_json(response, StatusCode::OK).await;
    }
    for chain in chains
        .iter()
        .filter(|chain| !untouched.contains(&chain.last))
    {
        let response = client
            .post(server.url("/api/token/verify/"))
            .json(&json!({"token": chain.last}))
            .send()
            .await
            .expect("request sent");
        assert_token_error(response, BLACKLISTED).await;
    }
}

/// The refresh writer's commits checkpoint the WAL as they go (SQLite's
/// default, every 1000 pages): a long run of refreshes leaves a small
/// `-wal` file (a 1500-refresh run without checkpoints grows it to 28 MB).
#[tokio::test]
async fn a_long_run_of_refreshes_keeps_the_wal_file_small() {
    const REFRESHES: usize = 1_500;
    const LIMIT: u64 = 8 << 20;
    let app = spawn_app_with(|c| c.algorithm = jwtd::verifier::Algorithm::Es256).await;
    app.add_user("alice", PASSWORD).await;
    let mut refresh = login(&app, "alice").await.refresh;
    let wal = app.database_path().with_extension("db-wal");
    let mut largest = 0;
    for _ in 0..REFRESHES {
        refresh = rotate(&app, &refresh).await;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        largest < LIMIT,
        "after {REFRESHES} refreshes the WAL reached {largest} bytes"
    );
}
