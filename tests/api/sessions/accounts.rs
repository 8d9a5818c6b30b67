//! Ending sessions: logging out everywhere (HTTP and CLI), disabled
//! users, sliding tokens and last login.

use super::*;

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

/// Three `jwtd serve` processes on one database: a user disabled from the
/// CLI is refused by every one within a second, access tokens included
/// (each process caches accounts and learns of the change), logout-all
/// from the CLI ends the refresh tokens issued by all, and logout-all at
/// one replica ends the sessions the others issued.
#[tokio::test]
async fn changes_from_the_cli_reach_every_process_within_a_second() {
    let home = Home::new(&[]);
    home.add_user("alice", PASSWORD);
    home.add_user("bob", PASSWORD);
    home.add_user("carol", PASSWORD);
    let servers = home.serve_replicas();
    let client = reqwest::Client::new();
    let login_at = async |server: &Server, name: &str| -> Pair {
        let response = client
            .post(server.url("/api/token/"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .expect("the server answers");
        let body: Value = response.json().await.expect("a JSON body");
        Pair {
            access: body["access"].as_str().expect("an access token").to_owned(),
            refresh: body["refresh"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
        }
    };
    let status_of = async |request: reqwest::RequestBuilder| {
        request.send().await.expect("the server answers").status()
    };
    let mut alice = Vec::new();
    let mut bob = Vec::new();
    for server in &servers {
        alice.push(login_at(server, "alice").await);
        bob.push(login_at(server, "bob").await);
        // Each process now holds alice in its account cache.
        let me = client
            .get(server.url("/api/me/"))
            .bearer_auth(&alice[0].access);
        assert_eq!(status_of(me).await, StatusCode::OK);
    }

    home.run(&["users", "disable", "alice"], None).ok();
    let (_, took) = poll_until(
        Duration::from_millis(1500),
        "alice refused everywhere",
        async || {
            for server in &servers {
                for pair in &alice {
                    let me = client.get(server.url("/api/me/")).bearer_auth(&pair.access);
                    if status_of(me).await != StatusCode::UNAUTHORIZED {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;
    assert!(took <= Duration::from_millis(1000 + 250), "took {took:?}");

    let assert_all_ended = async |pairs: &[Pair], what: &str| {
        for server in &servers {
            for pair in pairs {
                let refresh = client
                    .post(server.url("/api/token/refresh/"))
                    .json(&json!({"refresh": pair.refresh}));
                assert_eq!(status_of(refresh).await, StatusCode::UNAUTHORIZED, "{what}");
            }
        }
    };
    home.run(&["users", "logout-all", "bob"], None).ok();
    assert_all_ended(&bob, "bob's sessions from every process ended, seen by all").await;

    let carol: Vec<Pair> = {
        let mut pairs = Vec::new();
        for server in &servers {
            pairs.push(login_at(server, "carol").await);
        }
        pairs
    };
    let logout = client
        .post(servers[0].url("/api/token/logout-all/"))
        .bearer_auth(&carol[0].access);
    assert_eq!(status_of(logout).await, StatusCode::OK);
    assert_all_ended(
        &carol,
        "logout-all at one replica ends the sessions every replica issued",
    )
    .await;
}
