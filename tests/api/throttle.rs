//! Brute-force throttling over HTTP: per username and per address, 429 with
//! `Retry-After`, the password not even checked past the limit, counted in
//! the database across processes and restarts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, spawn_app_with};
use crate::process::Home;

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

#[tokio::test]
async fn replicas_on_one_database_share_the_count_and_a_restart_keeps_it() {
    let home = Home::new(&[
        ("login_failures_per_user", "4"),
        ("login_failures_per_address", "0"),
        ("login_failures_per_account", "0"),
    ]);
    home.add_user("alice", "right");
    let servers = home.serve_replicas();
    let client = reqwest::Client::new();
    let login = async |server: &crate::process::Server, password: &str| {
        client
            .post(server.url("/api/token/"))
            .json(&json!({"username": "alice", "password": password}))
            .send()
            .await
            .expect("the server answers")
            .status()
    };
    // Four failures, spread over the processes: none saw more than two.
    for server in servers.iter().cycle().take(4) {
        assert_eq!(login(server, "wrong").await, StatusCode::UNAUTHORIZED);
    }
    for server in &servers {
        assert_eq!(
            login(server, "right").await,
            StatusCode::TOO_MANY_REQUESTS,
            "the fifth attempt is refused by every process, even with the right password"
        );
    }
    drop(servers);
    let restarted = home.serve();
    assert_eq!(
        login(&restarted, "right").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a restart forgets nothing"
    );
}
