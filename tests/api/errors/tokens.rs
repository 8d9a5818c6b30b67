//! Tokens refused at `/api/token/refresh/`, `/api/token/verify/` and
//! `/api/me/`: garbage, expired, of the wrong type, missing claims, and
//! users disabled, deleted or unknown.

use std::time::Duration;

use jwtd::clock::Clock;
use jwtd::testing::Deployment;
use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use super::{bad_credentials, expect_401, token_not_valid};
use crate::crypto::{ActiveKey, random_jti};
use crate::db::Database;
use crate::helpers::{
    TestApp, access_token_not_valid, expect_json, poll_until, spawn_app, spawn_app_with,
};

const ACCESS_LIFETIME: Duration = Duration::from_secs(5 * 60);
const REFRESH_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
const ONE_SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- refresh and verify

#[tokio::test]
async fn refresh_refuses_garbage_expired_and_access_tokens() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;

    for garbage in garbage_tokens(&pair.refresh) {
        let response = app.refresh(&garbage).await;
        expect_401(response, token_not_valid("Token is invalid")).await;
    }
    let response = app.refresh(&pair.access).await;
    expect_401(response, token_not_valid("Token has wrong type")).await;

    // A refresh token lives one day: valid one second before, expired at
    // `exp`. (Another pair of the same age is used for the first check, so
    // that rotation never gets in the way.)
    let twin = app.login_ok("alice", "pw").await;
    app.advance(REFRESH_LIFETIME - ONE_SECOND);
    let fresh = app.login_ok("alice", "pw").await;
    expect_json(app.refresh(&twin.refresh).await, StatusCode::OK).await;
    app.advance(ONE_SECOND);
    let response = app.refresh(&pair.refresh).await;
    expect_401(response, token_not_valid("Token is expired")).await;
    // Expiry is checked before the type.
    app.advance(ACCESS_LIFETIME);
    let response = app.refresh(&fresh.access).await;
    expect_401(response, token_not_valid("Token is expired")).await;
}

#[tokio::test]
async fn verify_refuses_garbage_and_expired_tokens_of_any_type() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;

    for garbage in garbage_tokens(&pair.access) {
        let response = app.verify(&garbage).await;
        expect_401(response, token_not_valid("Token is invalid")).await;
    }
    // Both types verify while they are fresh.
    assert_eq!(
        expect_json(app.verify(&pair.access).await, StatusCode::OK).await,
        json!({})
    );
    assert_eq!(
        expect_json(app.verify(&pair.refresh).await, StatusCode::OK).await,
        json!({})
    );

    // An access token lives five minutes: valid one second before, expired at `exp`.
    app.advance(ACCESS_LIFETIME - ONE_SECOND);
    expect_json(app.verify(&pair.access).await, StatusCode::OK).await;
    app.advance(ONE_SECOND);
    let response = app.verify(&pair.access).await;
    expect_401(response, token_not_valid("Token is expired")).await;
    expect_json(app.verify(&pair.refresh).await, StatusCode::OK).await;

    app.advance(REFRESH_LIFETIME);
    let response = app.verify(&pair.refresh).await;
    expect_401(response, token_not_valid("Token is expired")).await;
}

#[tokio::test]
async fn an_access_token_seen_before_gets_the_same_answers_as_a_new_one() {
    // The server answers a token it has verified before from memory; every
    // answer must still be the one a full verification gives.
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    for _ in 0..3 {
        expect_json(app.verify(&pair.access).await, StatusCode::OK).await;
        expect_json(app.me(&pair.access).await, StatusCode::OK).await;
    }
    // Where another type is expected, it is still the wrong type.
    let response = app.refresh(&pair.access).await;
    expect_401(response, token_not_valid("Token has wrong type")).await;
    let response = app
        .post_json("/api/token/blacklist/", &json!({"refresh": pair.access}))
        .await;
    expect_401(response, token_not_valid("Token has wrong type")).await;
    // One character more or less is another token.
    let mut altered = pair.access.clone();
    altered.pop();
    let response = app.verify(&altered).await;
    expect_401(response, token_not_valid("Token is invalid")).await;
    // Expired at `exp`, as a token never seen before.
    app.advance(ACCESS_LIFETIME);
    let response = app.verify(&pair.access).await;
    expect_401(response, token_not_valid("Token is expired")).await;
    let response = app.me(&pair.access).await;
    expect_401(response, access_token_not_valid("Token is expired")).await;
}

#[tokio::test]
async fn leeway_moves_expiry_by_exactly_its_length() {
    let app = spawn_app_with(|config| config.leeway = Duration::from_secs(10)).await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;

    // Expired when exp <= now - leeway: fine until exp + 9s, expired at exp + 10s.
    app.advance(ACCESS_LIFETIME + Duration::from_secs(9));
    expect_json(app.verify(&pair.access).await, StatusCode::OK).await;
    expect_json(app.me(&pair.access).await, StatusCode::OK).await;
    app.advance(ONE_SECOND);
    let response = app.verify(&pair.access).await;
    expect_401(response, token_not_valid("Token is expired")).await;
    let response = app.me(&pair.access).await;
    expect_401(response, access_token_not_valid("Token is expired")).await;
}

#[tokio::test]
async fn refresh_for_a_user_made_inactive_after_login_is_refused() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;

    // Made inactive behind jwtd's back: the token is not blacklisted, the
    // account check refuses it.
    let db = Database::connect(&app.config.database_url).await;
    db.execute(
        "UPDATE users SET is_active = FALSE WHERE username = 'alice'",
        None,
    )
    .await;
    db.close().await;
    let response = app.refresh(&pair.refresh).await;
    expect_401(
        response,
        json!({"detail": "No active account found for the given token."}),
    )
    .await;
    // Login says the same as for a wrong password.
    expect_401(app.login("alice", "pw").await, bad_credentials()).await;

    set_active(&app, "alice", true).await;
    let pair = app.login_ok("alice", "pw").await;
    let rotated = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    let current = rotated["refresh"].as_str().unwrap();
    // Disabled through jwtd, the user's sessions end for good.
    set_active(&app, "alice", false).await;
    set_active(&app, "alice", true).await;
    let response = app.refresh(current).await;
    expect_401(response, token_not_valid("Token is blacklisted")).await;
}

#[tokio::test]
async fn refresh_for_a_user_that_was_deleted_is_refused() {
    let app = spawn_app().await;
    let id = app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    let db = Database::connect(&app.config.database_url).await;
    db.execute("DELETE FROM users WHERE id = $1", Some(id))
        .await;
    db.close().await;
    let response = app.refresh(&pair.refresh).await;
    expect_401(
        response,
        json!({"detail": "No active account found for the given token."}),
    )
    .await;
}

#[tokio::test]
async fn tokens_without_a_type_an_id_or_an_expiry_get_simplejwts_messages() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", "pw").await.to_string();
    let key = ActiveKey::of(&app).await;
    let now = now(&app);
    let claims = |token_type: &str| {
        json!({
            "token_type": token_type,
            "exp": now + 300,
            "iat": now,
            "jti": random_jti(),
            "user_id": alice,
        })
    };
    let without = |token_type: &str, claim: &str| {
        let mut claims = claims(token_type);
        claims.as_object_mut().unwrap().remove(claim);
        claims
    };

    // The crafted tokens are otherwise good: the server takes the full set.
    let access = key.sign(&claims("access"));
    expect_json(app.me(&access).await, StatusCode::OK).await;
    expect_json(app.verify(&access).await, StatusCode::OK).await;

    let no_type = key.sign(&without("refresh", "token_type"));
    let no_id = key.sign(&without("refresh", "jti"));
    let no_exp = key.sign(&without("refresh", "exp"));
    let unknown_type = key.sign(&claims("sideways"));
    for (token, message) in [
        (&no_type, "Token has no type"),
        (&no_id, "Token has no id"),
        (&no_exp, "Token has no 'exp' claim"),
        (&unknown_type, "Token has wrong type"),
    ] {
        let response = app.refresh(token).await;
        expect_401(response, token_not_valid(message)).await;
        let response = app.verify(token).await;
        expect_401(response, token_not_valid(message)).await;
    }

    let no_type = key.sign(&without("access", "token_type"));
    let no_id = key.sign(&without("access", "jti"));
    for (token, message) in [(&no_type, "Token has no type"), (&no_id, "Token has no id")] {
        let response = app.me(token).await;
        expect_401(response, access_token_not_valid(message)).await;
    }
}

// ---------------------------------------------------------------- /api/me/

#[tokio::test]
async fn me_without_credentials_is_not_authenticated() {
    let app = spawn_app().await;
    let response = app.get("/api/me/").await;
    expect_401(response, not_authenticated()).await;
    // Another scheme is someone else's credentials: none for us.
    for value in [
        "",
        "   ",
        "Basic xyz",
        "Basic",
        "bearer abc",
        "Token abc",
        "JWT abc",
    ] {
        let response = me_with_header(&app, value.as_bytes()).await;
        expect_401(response, not_authenticated()).await;
    }
}

#[tokio::test]
async fn me_takes_every_configured_header_type_and_only_those() {
    let app = spawn_app_with(|config| {
        config.auth_header_types = vec!["Bearer".to_owned(), "JWT".to_owned()];
    })
    .await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    for scheme in ["Bearer", "JWT"] {
        let value = format!("{scheme} {}", pair.access);
        let response = me_with_header(&app, value.as_bytes()).await;
        expect_json(response, StatusCode::OK).await;
        let response = me_with_header(&app, scheme.as_bytes()).await;
        expect_401(response, bad_authorization_header()).await;
    }
    let value = format!("Token {}", pair.access);
    let response = me_with_header(&app, value.as_bytes()).await;
    expect_401(response, not_authenticated()).await;
}

#[tokio::test]
async fn me_with_a_malformed_authorization_header_is_a_bad_header() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    let with_extra = format!("Bearer {} extra", pair.access);
    for value in ["Bearer", "Bearer   ", "Bearer a b", with_extra.as_str()] {
        let response = me_with_header(&app, value.as_bytes()).await;
        expect_401(response, bad_authorization_header()).await;
    }
}

#[tokio::test]
async fn me_refuses_garbage_expired_and_refresh_tokens() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;

    for garbage in garbage_tokens(&pair.access) {
        let response = app.me(&garbage).await;
        expect_401(response, access_token_not_valid("Token is invalid")).await;
    }
    // A token that is not even UTF-8 is invalid, not a crash.
    let response = me_with_header(&app, b"Bearer \xff\xfe.\x80.\x81").await;
    expect_401(response, access_token_not_valid("Token is invalid")).await;

    let response = app.me(&pair.refresh).await;
    expect_401(response, access_token_not_valid("Token has wrong type")).await;

    app.advance(ACCESS_LIFETIME - ONE_SECOND);
    expect_json(app.me(&pair.access).await, StatusCode::OK).await;
    app.advance(ONE_SECOND);
    let response = app.me(&pair.access).await;
    expect_401(response, access_token_not_valid("Token is expired")).await;
}

#[tokio::test]
async fn me_for_a_disabled_or_unknown_user_is_refused() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    // The server now holds alice in its account cache.
    expect_json(app.me(&pair.access).await, StatusCode::OK).await;

    // Disabled through another connection, as the CLI does: the server
    // notices within its poll interval (250 ms).
    set_active(&app, "alice", false).await;
    let response = me_until(&app, &pair.access, StatusCode::UNAUTHORIZED).await;
    expect_401(
        response,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    )
    .await;
    set_active(&app, "alice", true).await;
    me_until(&app, &pair.access, StatusCode::OK).await;

    let now = now(&app);
    let ghost = ActiveKey::of(&app).await.sign(&json!({
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": random_jti(),
        "user_id": "999999",
    }));
    let response = app.me(&ghost).await;
    expect_401(
        response,
        json!({"detail": "User not found", "code": "user_not_found"}),
    )
    .await;

    // Deleted (there is no command for it; straight SQL): not found either.
    let db = Database::connect(&app.config.database_url).await;
    db.execute("DELETE FROM users WHERE username = 'alice'", None)
        .await;
    db.close().await;
    let response = me_until(&app, &pair.access, StatusCode::UNAUTHORIZED).await;
    expect_401(
        response,
        json!({"detail": "User not found", "code": "user_not_found"}),
    )
    .await;
}

// ---------------------------------------------------------------- helpers

fn not_authenticated() -> Value {
    json!({"detail": "Authentication credentials were not provided."})
}

fn bad_authorization_header() -> Value {
    json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header",
    })
}

/// `GET /api/me/` with this exact `Authorization` value.
async fn me_with_header(app: &TestApp, value: &[u8]) -> Response {
    app.client
        .get(app.url("/api/me/"))
        .header(
            header::AUTHORIZATION,
            header::HeaderValue::from_bytes(value).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

/// Tokens that are not tokens, or are `good` with a part broken.
fn garbage_tokens(good: &str) -> Vec<String> {
    let parts: Vec<&str> = good.split('.').collect();
    let flip_last = |part: &str| {
        let mut part = part.to_owned();
        let last = if part.ends_with('A') { "B" } else { "A" };
        part.pop();
        part.push_str(last);
        part
    };
    vec![
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        "...".to_owned(),
        format!("{good}.{}", parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.{}", parts[0], parts[1], flip_last(parts[2])),
        format!("{}.{}.{}", parts[0], flip_last(parts[1]), parts[2]),
        format!("{}.{}.{}", flip_last(parts[0]), parts[1], parts[2]),
        "x".repeat(9_000),
    ]
}

fn now(app: &TestApp) -> i64 {
    app.clock.now()
}

/// `GET /api/me/` until it answers `status`, for at most 5 s (the server
/// polls for user changes every 250 ms).
async fn me_until(app: &TestApp, access: &str, status: StatusCode) -> Response {
    let what = format!("GET /api/me/ to answer {status}");
    poll_until(Duration::from_secs(5), &what, async || {
        let response = app.me(access).await;
        (response.status() == status).then_some(response)
    })
    .await
    .0
}

/// Enables or disables a user, as `jwtd users enable|disable` does.
async fn set_active(app: &TestApp, username: &str, active: bool) {
    let deployment = Deployment::open(&app.config).await.unwrap();
    deployment
        .set_user_active(username, active, app.clock.now())
        .await
        .unwrap();
    deployment.close().await;
}
