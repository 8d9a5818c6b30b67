//! An axum extractor for partner services: `Authenticated<C>` verifies the
//! `Authorization: Bearer` token with the host's [`Verifier`] (found through
//! `FromRef`) and answers failures with simplejwt's 401 bodies.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::service::Verifier;
use super::{Invalid, TokenError};

/// The `WWW-Authenticate` challenge sent with every 401.
const CHALLENGE: &str = r#"Bearer realm="api""#;

/// The claims of a verified access token, deserialised into `C`.
#[derive(Debug, Clone)]
pub struct Authenticated<C = Map<String, Value>>(pub C);

impl<S, C> FromRequestParts<S> for Authenticated<C>
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
    C: DeserializeOwned,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        let verifier = Arc::<Verifier>::from_ref(state);
        let token = bearer_token(&parts.headers, verifier.auth_header_types())?;
        let claims = verifier.verify(token).await.map_err(AuthError::Token)?;
        let claims = serde_json::from_value(Value::Object(claims))
            .map_err(|_| AuthError::Token(TokenError::Invalid(Invalid::BadClaim)))?;
        Ok(Self(claims))
    }
}

/// Why a request is not authenticated, answered as simplejwt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials (or another scheme's).
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    /// The right scheme, but not exactly one token after it.
    #[error("Authorization header must contain two space-delimited values")]
    BadHeader,
    /// The token is refused.
    #[error("Given token not valid for any token type")]
    Token(TokenError),
}

impl AuthError {
    /// simplejwt's JSON body for this error (sent with status 401).
    pub fn body(&self) -> Value {
        match self {
            Self::NotAuthenticated => json!({"detail": self.to_string()}),
            Self::BadHeader => {
                json!({"detail": self.to_string(), "code": "bad_authorization_header"})
            }
            Self::Token(err) => json!({
                "detail": self.to_string(),
                "code": "token_not_valid",
                "messages": [{
                    "token_class": "AccessToken",
                    "token_type": "access",
                    "message": err.to_string(),
                }],
            }),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, Json(self.body())).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
        response
    }
}

/// The token of the `Authorization` header `<type> <token>`, split on
/// whitespace like simplejwt. No header or another scheme counts as no
/// credentials; the right scheme with other than exactly one token, or
/// more than one `Authorization` header (which one would a proxy have
/// checked?), is malformed.
pub fn bearer_token<'a>(headers: &'a HeaderMap, types: &[String]) -> Result<&'a str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let header = values.next().ok_or(AuthError::NotAuthenticated)?;
    if values.next().is_some() {
        return Err(AuthError::BadHeader);
    }
    let mut parts = header
        .as_bytes()
        .split(u8::is_ascii_whitespace)
        .filter(|part| !part.is_empty());
    let scheme = parts.next().ok_or(AuthError::NotAuthenticated)?;
    if !types.iter().any(|t| t.as_bytes() == scheme) {
        return Err(AuthError::NotAuthenticated);
    }
    let (Some(token), None) = (parts.next(), parts.next()) else {
        return Err(AuthError::BadHeader);
    };
    std::str::from_utf8(token)
        .map_err(|_| AuthError::Token(TokenError::Invalid(Invalid::Malformed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(header: &str) -> Result<String, AuthError> {
        let mut headers = HeaderMap::new();
        if !header.is_empty() {
            headers.insert(header::AUTHORIZATION, header.parse().unwrap());
        }
        bearer_token(&headers, &["Bearer".to_owned()]).map(str::to_owned)
    }

    #[test]
    fn splits_like_simplejwt() {
        assert_eq!(bearer("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer("  Bearer   abc ").unwrap(), "abc");
        assert_eq!(bearer(""), Err(AuthError::NotAuthenticated));
        assert_eq!(bearer("Basic abc"), Err(AuthError::NotAuthenticated));
        assert_eq!(bearer("Bearer"), Err(AuthError::BadHeader));
        assert_eq!(bearer("Bearer a b"), Err(AuthError::BadHeader));
    }

    #[test]
    fn two_authorization_headers_are_malformed() {
        let mut headers = HeaderMap::new();
        headers.append(header::AUTHORIZATION, "Bearer a".parse().unwrap());
        headers.append(header::AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(
            bearer_token(&headers, &["Bearer".to_owned()]),
            Err(AuthError::BadHeader)
        );
    }
}
