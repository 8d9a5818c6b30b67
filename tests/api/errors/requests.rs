//! Requests refused before any token is looked at: login fields, bodies,
//! paths and methods; and the JWKS's caching headers.

use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use super::{bad_credentials, expect_401, expect_error, header_text, token_not_valid};
use crate::helpers::{TestApp, expect_json, spawn_app};

const REQUIRED: &str = "This field is required.";
const BLANK: &str = "This field may not be blank.";
const NULL: &str = "This field may not be null.";
const NOT_A_STRING: &str = "Not a valid string.";
const FORM: &str = "application/x-www-form-urlencoded";
const MAX_BODY: usize = 65_536;

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

async fn jwks_request(app: &TestApp, if_none_match: &str) -> Response {
    app.client
        .get(app.url("/.well-known/jwks.json"))
        .header(header::IF_NONE_MATCH, if_none_match)
        .send()
        .await
        .unwrap()
}

/// Pads a login body with an extra field to exactly `len` bytes.
fn padded_login_body(username: &str, password: &str, len: usize) -> Vec<u8> {
    let empty = json!({"username": username, "password": password, "pad": ""}).to_string();
    let padding = "x".repeat(len - empty.len());
    let body = json!({"username": username, "password": password, "pad": padding}).to_string();
    assert_eq!(body.len(), len);
    body.into_bytes()
}

fn too_large() -> Value {
    json!({"detail": "Request body is larger than 65536 bytes."})
}
