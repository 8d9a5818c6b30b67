//! Accounts and sessions against a careful attacker: client addresses as a
//! dual-stack listener sees them, lockouts that cost more than a few
//! requests, look-alike names, usernames in logs, sessions that end, hash
//! costs that converge, and the files that hold password hashes.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use jwtd::config::HashCost;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, spawn_app_with, spawn_sqlite_app_with};
use crate::process::{Server, jwtd};

/// A login to `app` from the source address `source` (a 127.x address),
/// to `target` (the server's address as the client dials it).
async fn login_from(target: &str, source: &str, username: &str, password: &str) -> StatusCode {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    client
        .post(format!("http://{target}/api/token/"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("the server answers")
        .status()
}

fn ipv4_target(app: &TestApp) -> String {
    format!("127.0.0.1:{}", app.addr.port())
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_are_counted_one_by_one() {
    let app = spawn_app_with(|config| {
        config.bind = "[::]:0".parse().unwrap();
        config.login_failures_per_address = 3;
    })
    .await;
    app.add_user("alice", "right").await;
    let target = ipv4_target(&app);
    for i in 2..=4 {
        let status = login_from(&target, &format!("127.0.0.{i}"), &format!("u{i}"), "x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Three failures from three addresses: none of them, nor a fourth
    // address, has used up its own three.
    assert_eq!(
        login_from(&target, "127.0.0.5", "alice", "right").await,
        StatusCode::OK
    );
    for _ in 0..3 {
        login_from(&target, "127.0.0.6", "nobody", "x").await;
    }
    assert_eq!(
        login_from(&target, "127.0.0.6", "alice", "right").await,
        StatusCode::TOO_MANY_REQUESTS,
        "one address is still counted"
    );
}

#[tokio::test]
async fn a_user_locked_out_from_one_address_logs_in_from_another() {
    let app = spawn_app_with(|config| {
        config.login_failures_per_user = 3;
        config.login_failures_per_account = 5;
    })
    .await;
    app.add_user("alice", "right").await;
    let target = ipv4_target(&app);
    for _ in 0..3 {
        login_from(&target, "127.0.0.2", "alice", "wrong").await;
    }
    assert_eq!(
        login_from(&target, "127.0.0.2", "alice", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&target, "127.0.0.3", "alice", "right").await,
        StatusCode::OK,
        "failures from one address do not lock the user out elsewhere"
    );
    // Distributed guessing: five failures in all, from several addresses,
    // stop the account everywhere until the window ends.
    for source in ["127.0.0.4", "127.0.0.5"] {
        login_from(&target, source, "alice", "wrong").await;
    }
    assert_eq!(
        login_from(&target, "127.0.0.6", "alice", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        login_from(&target, "127.0.0.6", "alice", "right").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn look_alike_names_are_one_account() {
    let app = spawn_app_with(|_| {}).await;
    app.jwtd(&["users", "add", "alice", "--password-stdin"], Some("pw\n"))
        .await
        .ok();
    for look_alike in ["ａｌｉｃｅ", "ＡＬＩＣＥ"] {
        let name = look_alike.to_owned();
        let run = app
            .jwtd(&["users", "add", &name, "--password-stdin"], Some("pw\n"))
            .await;
        if name == "ａｌｉｃｅ" {
            run.one_line_error(&["alice", "already exists"]);
        } else {
            run.ok();
        }
    }
    app.jwtd(&["users", "add", "ﬁ", "--password-stdin"], Some("pw\n"))
        .await
        .ok();
    let listed = app.jwtd(&["users", "list"], None).await.ok().stdout;
    let names: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(names, ["alice", "ALICE", "fi"], "{listed}");
    app.login_ok("ａｌｉｃｅ", "pw").await;
    app.login_ok("ﬁ", "pw").await;
}

#[tokio::test]
async fn long_usernames_are_refused_unchecked_and_logged_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("JWTD_LOGIN_FAILURES_PER_USER", "1")]);
    let client = reqwest::Client::new();
    let long = "a".repeat(64_000);
    let forged =
        "x\n2026-12-03T00:00:00Z  INFO jwtd: event=\"login_succeeded\" user_id=1 \u{1b}[0m";
    for name in [long.as_str(), long.as_str(), forged] {
        let response = client
            .post(server.url("/api/token/"))
            .json(&json!({"username": name, "password": "pw"}))
            .send()
            .await
            .unwrap();
        let body = expect_json(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            body,
            json!({"detail": "No active account found with the given credentials"}),
            "an invalid username is a failed login, never throttled per user"
        );
    }
    let log = server
        .wait_for_lines(
            "login_failed",
            3,
            Duration::from_secs(10),
            "three failed logins",
        )
        .await;
    assert!(
        !log.iter()
            .any(|line| line.starts_with("2026-12-03T00:00:00Z")),
        "a forged entry: {log:?}"
    );
    for line in log.iter().filter(|l| l.contains("login_failed")) {
        assert!(line.len() < 600, "a log line of {} bytes", line.len());
        assert!(!line.contains('\u{1b}'), "{line:?}");
        assert!(
            !line.contains(r#"event="login_succeeded""#),
            "a field of the username's own: {line:?}"
        );
    }
    assert!(
        log.iter()
            .any(|line| line.contains("login_failed") && line.contains("username=\"x\\u{a}2026")),
        "{log:?}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_database_files_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    jwtd(d, &["migrate"], None).ok();
    assert_eq!(mode(&d.join("jwtd.db")), 0o600);
    let server = Server::start(d, &[]);
    let response = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for name in ["jwtd.db", "jwtd.db-wal", "jwtd.db-shm"] {
        assert_eq!(mode(&d.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&d.join("keys/master.key")), 0o600);
    server.kill9();

    // A master key file others may read is named at start.
    let key = d.join("keys/master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(d, &[]);
    assert!(
        server
            .log()
            .iter()
            .any(|line| line.contains("WARN") && line.contains("master.key")),
        "{:?}",
        server.log()
    );
}

#[tokio::test]
async fn a_new_password_or_a_disabled_user_ends_every_session() {
    let app = spawn_app_with(|_| {}).await;
    app.add_user("alice", "old").await;
    app.add_user("bob", "pw").await;
    let alice = app.login_ok("alice", "old").await;
    let sliding = sliding_token(&app, "alice", "old").await;
    let bob = app.login_ok("bob", "pw").await;

    let changed = app
        .jwtd(
            &["users", "set-password", "alice", "--password-stdin"],
            Some("new\n"),
        )
        .await
        .ok();
    assert!(
        changed
            .stdout
            .contains("blacklisted 2 outstanding token(s)"),
        "{}",
        changed.stdout
    );
    let blacklisted = json!({"detail": "Token is blacklisted", "code": "token_not_valid"});
    let refused = expect_json(app.refresh(&alice.refresh).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused, blacklisted);
    let refused = app
        .post_json("/api/token/sliding/refresh/", &json!({"token": sliding}))
        .await;
    assert_eq!(
        expect_json(refused, StatusCode::UNAUTHORIZED).await,
        blacklisted
    );
    expect_json(app.refresh(&bob.refresh).await, StatusCode::OK).await;
    let alice = app.login_ok("alice", "new").await;
    expect_json(app.refresh(&alice.refresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_retry_within_the_grace_cannot_bring_an_ended_session_back() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.add_user("alice", "old").await;
    let first = app.login_ok("alice", "old").await.refresh;
    expect_json(app.refresh(&first).await, StatusCode::OK).await;
    app.jwtd(
        &["users", "set-password", "alice", "--password-stdin"],
        Some("new\n"),
    )
    .await
    .ok();
    // Within the grace, the rotated-away token would be taken as a retry
    // and get a fresh pair: not once the session has ended.
    let body = expect_json(app.refresh(&first).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        body,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
    );
}

#[tokio::test]
async fn a_user_stored_under_a_name_that_is_not_nfkc_can_still_be_managed() {
    let app = spawn_app_with(|_| {}).await;
    // Added before names were normalised (straight into the store).
    app.add_user("ｂｏｂ", "pw").await;
    let run = app.jwtd(&["users", "disable", "ｂｏｂ"], None).await.ok();
    assert!(
        run.stdout.contains("disabled user ｂｏｂ"),
        "{}",
        run.stdout
    );
}

async fn sliding_token(app: &TestApp, username: &str, password: &str) -> String {
    let response = app
        .post_json(
            "/api/token/sliding/",
            &json!({"username": username, "password": password}),
        )
        .await;
    let body = expect_json(response, StatusCode::OK).await;
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_refresh_family_ends_at_its_lifetime_however_often_rotated() {
    const DAY: Duration = Duration::from_secs(86_400);
    let app = spawn_app_with(|config| config.refresh_family_lifetime = 3 * DAY).await;
    app.add_user("alice", "pw").await;
    let mut refresh = app.login_ok("alice", "pw").await.refresh;
    // Rotated every 20 hours: each token is fresh, the family is not.
    for _ in 0..3 {
        app.advance(Duration::from_secs(20 * 3_600));
        let body = expect_json(app.refresh(&refresh).await, StatusCode::OK).await;
        refresh = body["refresh"].as_str().unwrap().to_owned();
    }
    app.advance(Duration::from_secs(12 * 3_600));
    let body = expect_json(app.refresh(&refresh).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        body,
        json!({"detail": "Token is expired", "code": "token_not_valid"})
    );
    let fresh = app.login_ok("alice", "pw").await;
    expect_json(app.refresh(&fresh.refresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_password_hashed_at_another_cost_is_rehashed_at_login() {
    let cost = HashCost {
        memory_kib: 1_024,
        iterations: 1,
        parallelism: 1,
    };
    let app = spawn_app_with(|config| config.password_hash = cost).await;
    // Stored at the default cost, not the configured one.
    app.add_user("alice", "pw").await;
    let stored = || async {
        let store = jwtd::testing::Deployment::open(&app.config).await.unwrap();
        let user = store.user("alice").await.unwrap().unwrap();
        store.close().await;
        user.password_hash
    };
    let before = stored().await;
    assert!(before.contains("m=12288,t=3,p=1"), "{before}");
    expect_json(app.login("alice", "wrong").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(stored().await, before, "a wrong password changes nothing");
    let pair = app.login_ok("alice", "pw").await;
    let after = stored().await;
    assert!(after.contains("m=1024,t=1,p=1"), "{after}");
    // Checked by the argon2 crate itself: the new hash is of the same password.
    let parsed = argon2::PasswordHash::new(&after).expect("a PHC string");
    assert!(
        argon2::PasswordVerifier::verify_password(&argon2::Argon2::default(), b"pw", &parsed)
            .is_ok()
    );
    // The session goes on, and the password still works.
    expect_json(app.refresh(&pair.refresh).await, StatusCode::OK).await;
    app.login_ok("alice", "pw").await;
}

#[tokio::test]
async fn token_responses_are_never_cached() {
    let app = spawn_app_with(|_| {}).await;
    app.add_user("alice", "pw").await;
    let login = app.login("alice", "pw").await;
    let headers = login.headers().clone();
    let pair: Value = login.json().await.unwrap();
    let refresh = app.refresh(pair["refresh"].as_str().unwrap()).await;
    let sliding = app
        .post_json(
            "/api/token/sliding/",
            &json!({"username": "alice", "password": "pw"}),
        )
        .await;
    let sliding_headers = sliding.headers().clone();
    let token: Value = sliding.json().await.unwrap();
    let sliding_refresh = app
        .post_json(
            "/api/token/sliding/refresh/",
            &json!({"token": token["token"]}),
        )
        .await;
    for (what, headers) in [
        ("login", &headers),
        ("refresh", refresh.headers()),
        ("sliding", &sliding_headers),
        ("sliding refresh", sliding_refresh.headers()),
    ] {
        assert_eq!(headers["cache-control"], "no-store", "{what}");
        assert_eq!(headers["pragma"], "no-cache", "{what}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_a_malformed_header() {
    let app = spawn_app_with(|_| {}).await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    let bearer = format!("Bearer {}", pair.access);
    let response = app
        .client
        .get(app.url("/api/me/"))
        .header("authorization", &bearer)
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="api""#
    );
    assert_eq!(
        expect_json(response, StatusCode::UNAUTHORIZED).await,
        json!({
            "detail": "Authorization header must contain two space-delimited values",
            "code": "bad_authorization_header"
        })
    );
}

#[tokio::test]
async fn a_cors_preflight_for_the_jwks_is_answered() {
    let app = spawn_app_with(|_| {}).await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/.well-known/jwks.json"))
        .header("origin", "https://partner.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "if-none-match")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("if-none-match")
    );
}

#[tokio::test]
async fn a_locked_database_answers_503_with_retry_after() {
    let app = spawn_sqlite_app_with(|_| {}).await;
    app.add_user("alice", "pw").await;
    // Another program holds SQLite's write lock longer than jwtd waits.
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             time.sleep(60)\n",
        )
        .arg(app.database_path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let response = app.login("alice", "pw").await;
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await,
        json!({"detail": "Service temporarily unavailable, try again later."})
    );
    app.login_ok("alice", "pw").await;
}
