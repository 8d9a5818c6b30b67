//! Brute-force throttling over HTTP: per username and per address, 429 with
//! `Retry-After`, the password not even checked past the limit.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, spawn_app_with};

#[tokio::test]
async fn a_username_past_its_failures_gets_429_even_with_the_right_password() {
    let app = spawn_app_with(|c| c.login_failures_per_user = 3).await;
    app.add_user("alice", "right").await;
    for _ in 0..3 {
        expect_json(app.login("alice", "wrong").await, StatusCode::UNAUTHORIZED).await;
    }
    let response = app.login("alice", "right").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "900");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail": "Request was throttled. Expected available in 900 seconds."})
    );
    let sliding = app
        .post_json(
            "/api/token/sliding/",
            &json!({"username": "alice", "password": "right"}),
        )
        .await;
    assert_eq!(
        sliding.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "sliding login too"
    );

    app.advance(Duration::from_secs(15 * 60));
    app.login_ok("alice", "right").await;
}

#[tokio::test]
async fn unknown_usernames_are_counted_and_answered_like_known_ones() {
    let app = spawn_app_with(|c| c.login_failures_per_user = 2).await;
    app.add_user("alice", "right").await;
    for name in ["alice", "ghost"] {
        for _ in 0..2 {
            let body = expect_json(app.login(name, "wrong").await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(
                body,
                json!({"detail": "No active account found with the given credentials"})
            );
        }
        assert_eq!(
            app.login(name, "wrong").await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[tokio::test]
async fn an_address_rotating_usernames_is_throttled() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_user = 0;
        c.login_failures_per_address = 5;
    })
    .await;
    app.add_user("alice", "right").await;
    for i in 0..5 {
        expect_json(
            app.login(&format!("guess{i}"), "x").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_eq!(
        app.login("alice", "right").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn zero_turns_throttling_off() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_user = 0;
        c.login_failures_per_address = 0;
    })
    .await;
    app.add_user("alice", "right").await;
    for _ in 0..12 {
        expect_json(app.login("alice", "wrong").await, StatusCode::UNAUTHORIZED).await;
    }
    app.login_ok("alice", "right").await;
}
