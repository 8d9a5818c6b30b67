//! Every error a request can end in, and the one place where each becomes
//! simplejwt's status code and body.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::keys::KeyError;
use crate::store::StoreError;
use crate::tokens::{IssueError, SessionError, TokenError};
use crate::users::Throttled;
use crate::verifier::AuthError;

/// The `WWW-Authenticate` challenge sent with every 401.
const CHALLENGE: &str = r#"Bearer realm="api""#;

/// `Retry-After` of a 503: a lock held by another writer is usually let go
/// within a second.
const RETRY_UNAVAILABLE: i64 = 1;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Wrong username or password, or an inactive user, at login.
    #[error("bad credentials")]
    BadCredentials,
    /// A refresh, verify or blacklist token that is refused.
    #[error("token refused: {0}")]
    Token(TokenError),
    /// A refresh token whose user is now inactive or deleted.
    #[error("no active account for the token")]
    NoActiveAccountForToken,
    /// Field errors, DRF-style: field name to messages.
    #[error("invalid fields")]
    Fields(BTreeMap<String, Vec<String>>),
    /// A JSON body that is not JSON.
    #[error("JSON parse error")]
    JsonParse(String),
    /// A body of a media type jwtd doesn't read.
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    /// A body over the size limit.
    #[error("request body too large")]
    TooLarge,
    /// A body that could not be read.
    #[error("unreadable request body")]
    UnreadableBody,
    /// A body that had not fully arrived by its deadline; the connection
    /// is closed after the answer.
    #[error("request timed out")]
    RequestTimeout,
    /// A protected view without valid credentials: the partner
    /// verifier's [`AuthError`] and its bodies.
    #[error(transparent)]
    Auth(AuthError),
    /// An access token for a user that no longer exists.
    #[error("user not found")]
    UserNotFound,
    /// An access token for a disabled user.
    #[error("user inactive")]
    UserInactive,
    /// No route for the path.
    #[error("not found")]
    NotFound,
    /// A method the path doesn't answer.
    #[error("method not allowed")]
    MethodNotAllowed(String),
    /// Too many failed logins for this username or address.
    #[error("throttled")]
    Throttled(Throttled),
    /// The database is busy or out of reach for now: 503 with
    /// `Retry-After`; logged.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A fault on our side; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Busy(_) | StoreError::Interrupted(_) => Self::Unavailable(err.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Token(err) => Self::Token(err),
            SessionError::NoActiveAccount => Self::NoActiveAccountForToken,
            SessionError::Store(err) => err.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<IssueError> for ApiError {
    fn from(err: IssueError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl ApiError {
    /// The status and simplejwt's body of this error (also the OpenAPI
    /// document's examples).
    pub(super) fn status_and_body(&self) -> (StatusCode, Value) {
        use StatusCode as S;
        match self {
            Self::BadCredentials => (
                S::UNAUTHORIZED,
                json!({"detail": "No active account found with the given credentials"}),
            ),
            Self::Token(err) => (
                S::UNAUTHORIZED,
                json!({"detail": err.to_string(), "code": "token_not_valid"}),
            ),
            Self::NoActiveAccountForToken => (
                S::UNAUTHORIZED,
                json!({"detail": "No active account found for the given token."}),
            ),
            Self::Fields(errors) => (S::BAD_REQUEST, json!(errors)),
            Self::JsonParse(reason) => (
                S::BAD_REQUEST,
                json!({"detail": format!("JSON parse error - {reason}")}),
            ),
            Self::UnsupportedMediaType(media) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                json!({"detail": format!("Unsupported media type \"{media}\" in request.")}),
            ),
            Self::TooLarge => (
                S::PAYLOAD_TOO_LARGE,
                json!({"detail": "Request body is larger than 65536 bytes."}),
            ),
            Self::UnreadableBody => (
                S::BAD_REQUEST,
                json!({"detail": "Request body could not be read."}),
            ),
            Self::RequestTimeout => (S::REQUEST_TIMEOUT, json!({"detail": "Request timed out."})),
            Self::Auth(err) => (S::UNAUTHORIZED, err.body()),
            Self::UserNotFound => (
                S::UNAUTHORIZED,
                json!({"detail": "User not found", "code": "user_not_found"}),
            ),
            Self::UserInactive => (
                S::UNAUTHORIZED,
                json!({"detail": "User is inactive", "code": "user_inactive"}),
            ),
            Self::NotFound => (S::NOT_FOUND, json!({"detail": "Not found."})),
            Self::MethodNotAllowed(method) => (
                S::METHOD_NOT_ALLOWED,
                json!({"detail": format!("Method \"{method}\" not allowed.")}),
            ),
            Self::Throttled(throttled) => (
                S::TOO_MANY_REQUESTS,
                json!({"detail": format!(
                    "Request was throttled. Expected available in {} seconds.",
                    throttled.retry_after
                )}),
            ),
            Self::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                json!({"detail": "Service temporarily unavailable, try again later."}),
            ),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                json!({"detail": "Internal server error."}),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(reason) => tracing::error!(%reason, "request failed"),
            Self::Unavailable(reason) => tracing::warn!(%reason, "request refused for now"),
            _ => {}
        }
        let (status, body) = self.status_and_body();
        let mut response = (status, axum::Json(body)).into_response();
        let retry_after = match &self {
            Self::Throttled(throttled) => Some(throttled.retry_after),
            Self::Unavailable(_) => Some(RETRY_UNAVAILABLE),
            _ => None,
        };
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: the connection cannot
            // carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        response
    }
}
