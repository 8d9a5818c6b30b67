//! `GET /.well-known/jwks.json`: the published public keys, served from the
//! body and ETag the key ring built when the key set last changed.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::clock::UnixTime;

/// The JWKS, or 304 when `If-None-Match` names its current ETag. (The
/// request is taken whole: a `HeaderMap` extractor would copy its headers.)
pub async fn jwks(State(app): State<AppState>, request: Request) -> Response {
    let keys = app.keys.current();
    let document = &keys.jwks;
    let not_modified = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| etag_matches(value.as_bytes(), &document.etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            document.body.clone(),
        )
            .into_response()
    };
    let max_age = max_age(
        app.config.jwks_max_age.as_secs(),
        keys.next_change,
        app.clock.now(),
    );
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_maybe_shared(document.etag.clone()) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(cache) = HeaderValue::try_from(format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, cache);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// `OPTIONS /.well-known/jwks.json`: a CORS preflight (a browser's fetch
/// that sends `If-None-Match`) gets 204 and what it may send.
pub async fn preflight() -> Response {
    let headers = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, "If-None-Match"),
        (header::ACCESS_CONTROL_MAX_AGE, "86400"),
    ];
    (
        StatusCode::NO_CONTENT,
        headers.map(|(name, value)| (name, HeaderValue::from_static(value))),
    )
        .into_response()
}

/// The configured `max-age`, shortened so that no cache keeps the JWKS
/// past the next scheduled change of the published keys.
fn max_age(configured: u64, next_change: Option<UnixTime>, now: UnixTime) -> u64 {
    let until_change = next_change.map(|at| u64::try_from(at - now).unwrap_or(0));
    until_change.map_or(configured, |secs| secs.min(configured))
}

/// Whether an `If-None-Match` value (a list of tags, or `*`) names `etag`.
/// Weak comparison, as RFC 9110 §13.1.2 asks for this header.
fn etag_matches(header: &[u8], etag: &[u8]) -> bool {
    let Ok(header) = std::str::from_utf8(header) else {
        return false;
    };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate).as_bytes() == etag
    })
}

#[cfg(test)]
mod tests {
    use super::{etag_matches, max_age};

    #[test]
    fn max_age_never_outlives_the_next_change() {
        assert_eq!(max_age(300, None, 1_000), 300);
        assert_eq!(max_age(300, Some(1_100), 1_000), 100);
        assert_eq!(max_age(300, Some(5_000), 1_000), 300);
        assert_eq!(max_age(300, Some(900), 1_000), 0);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        assert!(etag_matches(br#""a""#, br#""a""#));
        assert!(etag_matches(br#""x", W/"a""#, br#""a""#));
        assert!(etag_matches(b"*", br#""a""#));
        assert!(!etag_matches(br#""b""#, br#""a""#));
        assert!(!etag_matches(b"a", br#""a""#));
    }
}
