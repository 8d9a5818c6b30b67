//! Every error of SPEC §3 over real HTTP: its status, its exact body (the
//! bodies of simplejwt 5.5 and Django REST Framework) and, for every 401,
//! the `WWW-Authenticate: Bearer realm="api"` challenge.

use std::time::Duration;

use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, spawn_app, spawn_app_with};

const ACCESS_LIFETIME: Duration = Duration::from_secs(5 * 60);
const REFRESH_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
const ONE_SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- login

#[tokio::test]
async fn login_with_a_wrong_password_an_unknown_user_or_an_inactive_account_looks_the_same() {
    let app = spawn_app().await;
    app.add_user("alice", "correct horse").await;
    app.add_user_with("mallory", "correct horse", false).await;

    for (username, password) in [
        ("alice", "wrong horse"),
        ("alice", "correct horse "),
        ("nobody", "correct horse"),
        ("mallory", "correct horse"),
    ] {
        let response = app.login(username, password).await;
        expect_401(response, bad_credentials()).await;
    }
    // A password of spaces is not blank (passwords are never trimmed), just wrong.
    expect_401(app.login("alice", "   ").await, bad_credentials()).await;
    // A number is a valid string for DRF's CharField, so this is a wrong user.
    let response = app
        .post_json("/api/token/", &json!({"username": 12, "password": 34}))
        .await;
    expect_401(response, bad_credentials()).await;
}

#[tokio::test]
async fn login_reports_every_missing_or_ill_typed_field_at_once() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({}),
            json!({"username": [REQUIRED], "password": [REQUIRED]}),
        ),
        (
            json!({"username": "alice"}),
            json!({"password": [REQUIRED]}),
        ),
        (json!({"password": "pw"}), json!({"username": [REQUIRED]})),
        (
            json!({"username": "", "password": ""}),
            json!({"username": [BLANK], "password": [BLANK]}),
        ),
        // The username is trimmed like any CharField; the password is not.
        (
            json!({"username": "  \t ", "password": "pw"}),
            json!({"username": [BLANK]}),
        ),
        (
            json!({"username": null, "password": null}),
            json!({"username": [NULL], "password": [NULL]}),
        ),
        (
            json!({"username": ["alice"], "password": {"pw": 1}}),
            json!({"username": [NOT_A_STRING], "password": [NOT_A_STRING]}),
        ),
        (
            json!({"username": true, "password": "pw"}),
            json!({"username": [NOT_A_STRING]}),
        ),
        (
            json!({"username": null, "password": []}),
            json!({"username": [NULL], "password": [NOT_A_STRING]}),
        ),
    ];
    for (body, errors) in cases {
        let response = app.post_json("/api/token/", &body).await;
        expect_error(response, StatusCode::BAD_REQUEST, errors).await;
    }
}

#[tokio::test]
async fn refresh_and_verify_require_their_one_field() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/api/token/refresh/", "refresh"),
        ("/api/token/verify/", "token"),
    ] {
        for (value, message) in [
            (None, REQUIRED),
            (Some(json!("")), BLANK),
            (Some(json!("   ")), BLANK),
            (Some(json!(null)), NULL),
            (Some(json!(["a.b.c"])), NOT_A_STRING),
            (Some(json!({"token": "a.b.c"})), NOT_A_STRING),
        ] {
            let body = match value {
                // Another field does not stand in for the missing one.
                None => json!({"access": "a.b.c"}),
                Some(value) => json!({ field: value }),
            };
            let response = app.post_json(path, &body).await;
            expect_error(
                response,
                StatusCode::BAD_REQUEST,
                json!({ field: [message] }),
            )
            .await;
        }
    }
}

// ---------------------------------------------------------------- request bodies

#[tokio::test]
async fn malformed_json_is_a_400_json_parse_error() {
    let app = spawn_app().await;
    let deeply_nested = "[".repeat(60_000);
    let bodies: [&[u8]; 7] = [
        b"{",
        b"{\"username\": \"alice\", \"password\": }",
        b"{\"username\": \"alice\"} trailing",
        b"not json at all",
        b"{'username': 'alice'}",
        b"{\"username\": \"\xff\xfe\"}",
        deeply_nested.as_bytes(),
    ];
    for path in ["/api/token/", "/api/token/refresh/", "/api/token/verify/"] {
        for body in bodies {
            let response = app
                .post_raw(path, Some("application/json"), body.to_vec())
                .await;
            let body = expect_json(response, StatusCode::BAD_REQUEST).await;
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(
                detail.starts_with("JSON parse error - "),
                "{path}: unexpected body {body}"
            );
            assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
        }
    }
}

#[tokio::test]
async fn json_that_is_not_an_object_is_refused_like_drf() {
    let app = spawn_app().await;
    for (body, python_type) in [
        ("[]", "list"),
        (r#"[{"username": "alice", "password": "pw"}]"#, "list"),
        (r#""alice""#, "str"),
        ("42", "int"),
        ("4.2", "float"),
        ("true", "bool"),
    ] {
        let response = app
            .post_raw("/api/token/", Some("application/json"), body)
            .await;
        let message = format!("Invalid data. Expected a dictionary, but got {python_type}.");
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": [message]}),
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_of_an_unsupported_media_type_is_415() {
    let app = spawn_app().await;
    for content_type in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/xml",
        "application/octet-stream",
    ] {
        for path in ["/api/token/", "/api/token/refresh/", "/api/token/verify/"] {
            let response = app
                .post_raw(path, Some(content_type), "username=alice&password=pw")
                .await;
            let detail = format!("Unsupported media type \"{content_type}\" in request.");
            expect_error(
                response,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({ "detail": detail }),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn form_encoded_bodies_work_for_login_refresh_and_verify() {
    let app = spawn_app().await;
    app.add_user("alice", "correct horse & battery").await;

    let response = app
        .post_raw(
            "/api/token/",
            Some(FORM),
            "username=alice&password=correct+horse+%26+battery",
        )
        .await;
    let pair = expect_json(response, StatusCode::OK).await;
    let refresh = pair["refresh"].as_str().expect("refresh token");
    let access = pair["access"].as_str().expect("access token");

    let response = app
        .post_raw(
            "/api/token/refresh/",
            Some(FORM),
            format!("refresh={refresh}"),
        )
        .await;
    let refreshed = expect_json(response, StatusCode::OK).await;
    assert!(refreshed["access"].is_string(), "{refreshed}");

    let response = app
        .post_raw(
            "/api/token/verify/",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            format!("token={access}"),
        )
        .await;
    assert_eq!(expect_json(response, StatusCode::OK).await, json!({}));

    // Form bodies get the same field errors as JSON ones.
    let response = app
        .post_raw("/api/token/", Some(FORM), "username=&password=pw")
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        json!({"username": [BLANK]}),
    )
    .await;
    let response = app
        .post_raw("/api/token/", Some(FORM), "username=alice&password=nope")
        .await;
    expect_401(response, bad_credentials()).await;
    let response = app
        .post_raw("/api/token/verify/", Some(FORM), "token=not-a-token")
        .await;
    expect_401(response, token_not_valid("Token is invalid")).await;
}

#[tokio::test]
async fn a_body_without_a_content_type_or_an_empty_body_has_no_fields() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let login_body = r#"{"username": "alice", "password": "pw"}"#;
    let required = json!({"username": [REQUIRED], "password": [REQUIRED]});

    let response = app.post_raw("/api/token/", None, login_body).await;
    expect_error(response, StatusCode::BAD_REQUEST, required.clone()).await;
    let response = app
        .post_raw("/api/token/", Some("application/json"), "")
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, required).await;
    let response = app
        .post_raw("/api/token/refresh/", None, r#"{"refresh": "a.b.c"}"#)
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        json!({"refresh": [REQUIRED]}),
    )
    .await;
    let response = app.post_raw("/api/token/verify/", None, "").await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        json!({"token": [REQUIRED]}),
    )
    .await;
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413_and_64_kib_is_fine() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;

    for path in ["/api/token/", "/api/token/refresh/", "/api/token/verify/"] {
        for content_type in [
            Some("application/json"),
            Some(FORM),
            Some("text/plain"),
            None,
        ] {
            let response = app
                .post_raw(path, content_type, vec![b' '; MAX_BODY + 1])
                .await;
            expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, too_large()).await;
        }
    }
    let response = app
        .post_raw(
            "/api/token/",
            Some("application/json"),
            padded_login_body("alice", "pw", MAX_BODY + 1),
        )
        .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, too_large()).await;

    // Exactly at the limit the request is read and answered as usual.
    let response = app
        .post_raw(
            "/api/token/",
            Some("application/json"),
            padded_login_body("alice", "pw", MAX_BODY),
        )
        .await;
    let pair = expect_json(response, StatusCode::OK).await;
    assert!(pair["access"].is_string() && pair["refresh"].is_string());
    let response = app
        .post_raw(
            "/api/token/",
            Some("application/json"),
            padded_login_body("alice", "wrong", MAX_BODY),
        )
        .await;
    expect_401(response, bad_credentials()).await;
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_is_refused_with_413_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let body = padded_login_body("alice", "pw", MAX_BODY + 1);
    let mut request = format!(
        "POST /api/token/ HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    )
    .into_bytes();
    // Several chunks, none over the limit on its own.
    for chunk in body.chunks(16 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");

    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 413 "),
        "unexpected response: {response}"
    );
}

// ---------------------------------------------------------------- paths and methods

#[tokio::test]
async fn every_path_answers_directly_with_and_without_its_trailing_slash() {
    let app = spawn_app().await;
    app.add_user("alice", "pw").await;
    let pair = app.login_ok("alice", "pw").await;
    // A client that would show a redirect instead of following it.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = json!({"username": "alice", "password": "pw"}).to_string();
    let verify = json!({"token": pair.access}).to_string();

    for (slashed, bare) in [
        ("/api/token/", "/api/token"),
        ("/api/token/refresh/", "/api/token/refresh"),
        ("/api/token/verify/", "/api/token/verify"),
        ("/api/me/", "/api/me"),
        ("/.well-known/jwks.json/", "/.well-known/jwks.json"),
        ("/healthz/", "/healthz"),
    ] {
        for path in [slashed, bare] {
            let request = match slashed {
                "/api/token/" => client.post(app.url(path)).body(login.clone()),
                "/api/token/refresh/" => {
                    // A refresh token of its own each time: reuse is another story.
                    let refresh = app.login_ok("alice", "pw").await.refresh;
                    client
                        .post(app.url(path))
                        .body(json!({ "refresh": refresh }).to_string())
                }
                "/api/token/verify/" => client.post(app.url(path)).body(verify.clone()),
                _ => client.get(app.url(path)),
            };
            let response = request
                .header(header::CONTENT_TYPE, "application/json")
                .bearer_auth(&pair.access)
                .send()
                .await
                .unwrap();
            let body = expect_json(response, StatusCode::OK).await;
            assert!(body.is_object(), "{path}: {body}");

            // And errors come straight from the handler, too.
            let response = match slashed {
                "/api/token/" | "/api/token/refresh/" | "/api/token/verify/" => {
                    client.post(app.url(path)).body("[]")
                }
                "/api/me/" => client.get(app.url(path)).bearer_auth("garbage"),
                _ => continue,
            }
            .header(header::CONTENT_TYPE, "application/json")
            .send()
            .await
            .unwrap();
            let status = response.status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
                "{path}: {status}"
            );
        }
    }
    let health = expect_json(app.get("/healthz").await, StatusCode::OK).await;
    assert_eq!(health, json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_are_405_in_json() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/api/",
        "/api/token/nope/",
        "/api/token//",
        "/api/me/extra",
        "/.well-known/",
        "/jwks.json",
        "/API/TOKEN/",
    ] {
        let response = app.get(path).await;
        expect_error(
            response,
            StatusCode::NOT_FOUND,
            json!({"detail": "Not found."}),
        )
        .await;
        let response = app.post_json(path, &json!({})).await;
        expect_error(
            response,
            StatusCode::NOT_FOUND,
            json!({"detail": "Not found."}),
        )
        .await;
    }

    for (method, path, allowed) in [
        (reqwest::Method::GET, "/api/token/", "POST"),
        (reqwest::Method::GET, "/api/token/refresh", "POST"),
        (reqwest::Method::PUT, "/api/token/verify/", "POST"),
        (reqwest::Method::DELETE, "/api/token/", "POST"),
        (reqwest::Method::POST, "/api/me/", "GET"),
        (reqwest::Method::POST, "/.well-known/jwks.json", "GET"),
        (reqwest::Method::PATCH, "/healthz", "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        let allow = header_text(&response, header::ALLOW);
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow is {allow:?}"
        );
        let detail = format!("Method \"{method}\" not allowed.");
        expect_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "detail": detail }),
        )
        .await;
    }
}

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
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET is_active = 0 WHERE username = 'alice'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
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
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
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
    let now = now(&app);
    let claims = |token_type: &str| {
        json!({
            "token_type": token_type,
            "exp": now + 300,
            "iat": now,
            "jti": jti(),
            "user_id": alice,
        })
    };
    let without = |token_type: &str, claim: &str| {
        let mut claims = claims(token_type);
        claims.as_object_mut().unwrap().remove(claim);
        claims
    };

    // The crafted tokens are otherwise good: the server takes the full set.
    let access = sign_with_active_key(&app, claims("access")).await;
    expect_json(app.me(&access).await, StatusCode::OK).await;
    expect_json(app.verify(&access).await, StatusCode::OK).await;

    let no_type = sign_with_active_key(&app, without("refresh", "token_type")).await;
    let no_id = sign_with_active_key(&app, without("refresh", "jti")).await;
    let no_exp = sign_with_active_key(&app, without("refresh", "exp")).await;
    let unknown_type = sign_with_active_key(&app, claims("sideways")).await;
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

    let no_type = sign_with_active_key(&app, without("access", "token_type")).await;
    let no_id = sign_with_active_key(&app, without("access", "jti")).await;
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
    let ghost = sign_with_active_key(
        &app,
        json!({
            "token_type": "access",
            "exp": now + 300,
            "iat": now,
            "jti": jti(),
            "user_id": "999999",
        }),
    )
    .await;
    let response = app.me(&ghost).await;
    expect_401(
        response,
        json!({"detail": "User not found", "code": "user_not_found"}),
    )
    .await;

    // Deleted (there is no command for it; straight SQL): not found either.
    let pool = sqlx::SqlitePool::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("DELETE FROM users WHERE username = 'alice'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let response = me_until(&app, &pair.access, StatusCode::UNAUTHORIZED).await;
    expect_401(
        response,
        json!({"detail": "User not found", "code": "user_not_found"}),
    )
    .await;
}

// ---------------------------------------------------------------- JWKS

#[tokio::test]
async fn jwks_is_cacheable_conditional_and_open_to_every_origin() {
    let app = spawn_app().await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_text(&response, header::CACHE_CONTROL),
        "public, max-age=300"
    );
    assert_eq!(
        header_text(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "*"
    );
    let content_type = header_text(&response, header::CONTENT_TYPE);
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let etag = header_text(&response, header::ETAG);
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "ETag {etag:?} is not a quoted strong tag"
    );
    let jwks: Value = response.json().await.unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty(), "{jwks}");

    for if_none_match in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let response = jwks_request(&app, &if_none_match).await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {if_none_match}"
        );
        assert_eq!(header_text(&response, header::ETAG), etag);
        assert_eq!(
            header_text(&response, header::CACHE_CONTROL),
            "public, max-age=300"
        );
        assert_eq!(
            header_text(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "*"
        );
        assert!(response.bytes().await.unwrap().is_empty());
    }

    let response = jwks_request(&app, "\"some-other-tag\"").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), jwks);
}

// ---------------------------------------------------------------- helpers

const REQUIRED: &str = "This field is required.";
const BLANK: &str = "This field may not be blank.";
const NULL: &str = "This field may not be null.";
const NOT_A_STRING: &str = "Not a valid string.";
const FORM: &str = "application/x-www-form-urlencoded";
const MAX_BODY: usize = 65_536;
const CHALLENGE: &str = r#"Bearer realm="api""#;

fn bad_credentials() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

fn not_authenticated() -> Value {
    json!({"detail": "Authentication credentials were not provided."})
}

fn bad_authorization_header() -> Value {
    json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header",
    })
}

fn too_large() -> Value {
    json!({"detail": "Request body is larger than 65536 bytes."})
}

/// A refresh, verify or blacklist token refused with `message`.
fn token_not_valid(message: &str) -> Value {
    json!({"detail": message, "code": "token_not_valid"})
}

/// An access token refused by a protected view with `message`.
fn access_token_not_valid(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{
            "token_class": "AccessToken",
            "token_type": "access",
            "message": message,
        }],
    })
}

/// Asserts a 401 with the Bearer challenge and exactly `body`.
async fn expect_401(response: Response, body: Value) {
    expect_error(response, StatusCode::UNAUTHORIZED, body).await;
}

/// Asserts `status` and exactly `body`; every 401 must carry the challenge.
async fn expect_error(response: Response, status: StatusCode, body: Value) {
    let url = response.url().clone();
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            header_text(&response, header::WWW_AUTHENTICATE),
            CHALLENGE,
            "401 from {url} without the challenge"
        );
    }
    let content_type = header_text(&response, header::CONTENT_TYPE);
    let actual = expect_json(response, status).await;
    assert_eq!(actual, body, "body of {url}");
    assert!(
        content_type.starts_with("application/json"),
        "{url}: content type {content_type:?}"
    );
}

fn header_text(response: &Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(&name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default()
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

async fn jwks_request(app: &TestApp, if_none_match: &str) -> Response {
    app.client
        .get(app.url("/.well-known/jwks.json"))
        .header(header::IF_NONE_MATCH, if_none_match)
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

/// Pads a login body with an extra field to exactly `len` bytes.
fn padded_login_body(username: &str, password: &str, len: usize) -> Vec<u8> {
    let empty = json!({"username": username, "password": password, "pad": ""}).to_string();
    let padding = "x".repeat(len - empty.len());
    let body = json!({"username": username, "password": password, "pad": padding}).to_string();
    assert_eq!(body.len(), len);
    body.into_bytes()
}

fn now(app: &TestApp) -> i64 {
    jwtd::clock::Clock::now(app.clock.as_ref())
}

/// A fresh 32-hex-character token id (its time part does not matter here).
fn jti() -> String {
    jwtd::tokens::new_jti(0)
}

/// `GET /api/me/` until it answers `status`, for at most 5 s (the server
/// polls for user changes every 250 ms).
async fn me_until(app: &TestApp, access: &str, status: StatusCode) -> Response {
    for _ in 0..50 {
        let response = app.me(access).await;
        if response.status() == status {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET /api/me/ did not answer {status} within 5 s");
}

async fn set_active(app: &TestApp, username: &str, active: bool) {
    let store = jwtd::store::Store::open(&app.database_path())
        .await
        .unwrap();
    store
        .set_user_active(
            username,
            active,
            jwtd::clock::Clock::now(app.clock.as_ref()),
        )
        .await
        .unwrap();
    store.close().await;
}

/// Signs `claims` (any JSON, as is) with the server's active key, giving a
/// compact JWS with the server's own header: a token the server could have
/// issued, whatever its claims say.
pub(crate) async fn sign_with_active_key(app: &TestApp, claims: Value) -> String {
    let store = jwtd::store::Store::open(&app.database_path())
        .await
        .unwrap();
    let (_, keys) = store.keys_with_version().await.unwrap();
    store.close().await;
    let key = keys
        .into_iter()
        .find(|key| key.state == jwtd::store::KeyState::Active)
        .expect("an active key");
    let master = jwtd::keys::MasterKey::load(&app.config.master_key).unwrap();
    let sealed = key.sealed_private.as_deref().expect("a private key");
    let pkcs8 = master.open(&key.kid, sealed).unwrap();
    let signer = jwtd::keys::SigningKey::from_pkcs8(&key.kid, key.alg, &pkcs8).unwrap();
    signer.sign(claims.to_string().as_bytes()).unwrap()
}
