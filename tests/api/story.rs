//! The README's walkthrough, as a new user lives it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{claims_of, expect_json, header_of, spawn_app};

#[tokio::test]
async fn login_me_refresh_verify_jwks() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", "correct horse").await;

    let pair = app.login_ok("alice", "correct horse").await;
    let me = expect_json(app.me(&pair.access).await, StatusCode::OK).await;
    assert_eq!(
        me,
        json!({"user_id": alice.to_string(), "username": "alice"})
    );

    let refreshed = expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    assert!(refreshed["access"].is_string());
    assert!(
        refreshed["refresh"].is_string(),
        "rotation is on by default"
    );

    let verified = expect_json(app.verify(&pair.access).await, StatusCode::OK).await;
    assert_eq!(verified, json!({}));

    let jwks = app.jwks().await;
    let kid = header_of(&pair.access)["kid"].as_str().unwrap().to_owned();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    );
}

#[tokio::test]
async fn claims_are_simplejwts() {
    let app = spawn_app().await;
    let id = app.add_user("bob", "pw").await;
    let pair = app.login_ok("bob", "pw").await;
    let now = jwtd::clock::Clock::now(app.clock.as_ref());

    let access = claims_of(&pair.access);
    assert_eq!(access["token_type"], "access");
    assert_eq!(access["user_id"], id.to_string());
    assert_eq!(access["iat"], now);
    assert_eq!(access["exp"], now + 300);
    let jti = access["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 32);
    assert!(jti.chars().all(|c| c.is_ascii_hexdigit()));

    let refresh = claims_of(&pair.refresh);
    assert_eq!(refresh["token_type"], "refresh");
    assert_eq!(refresh["exp"], now + 86_400);
    assert_ne!(refresh["jti"], access["jti"]);

    let header = header_of(&pair.access);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
}
