//! Every error of SPEC §3 over real HTTP: its status, its exact body (the
//! bodies of simplejwt 5.5 and Django REST Framework) and, for every 401,
//! the `WWW-Authenticate: Bearer realm="api"` challenge.
//!
//! `requests`: login fields, request bodies, paths, methods and the JWKS;
//! `tokens`: refresh, verify and `/api/me/` refusing tokens and accounts.

mod requests;
mod tokens;

use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::expect_json;

const CHALLENGE: &str = r#"Bearer realm="api""#;

/// A refused login.
fn bad_credentials() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

/// A refresh, verify or blacklist token refused with `message`.
fn token_not_valid(message: &str) -> Value {
    json!({"detail": message, "code": "token_not_valid"})
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

/// The value of header `name`, or empty.
fn header_text(response: &Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(&name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default()
}
