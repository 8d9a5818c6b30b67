//! The token endpoints: obtain a pair, refresh, verify, blacklist, log out
//! everywhere, and the sliding-token pair of endpoints.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::body::{Fields, Trim};
use super::{ApiError, AppState, Authenticated, ClientAddress};
use crate::clock::UnixTime;
use crate::keys::KeySet;
use crate::metrics::{self, Login, METRICS};
use crate::store::User;
use crate::tokens::{Claims, Expect, TokenType};
use crate::users::{self, ForLog, Password};

/// `POST /api/token/`: username and password for an access and a refresh token.
pub async fn obtain_pair(
    State(app): State<AppState>,
    ClientAddress(address): ClientAddress,
    fields: Fields,
) -> Result<Tokens<TokenPair>, ApiError> {
    let user = authenticate(&app, address, &fields).await?;
    let now = app.clock.now();
    let keys = app.keys.current();
    let (access, refresh) = app.sessions(&keys).login(user.id, now).await?;
    Ok(Tokens(TokenPair { access, refresh }))
}

/// `POST /api/token/refresh/`: a refresh token for a new access token, and
/// a new refresh token when `rotate_refresh_tokens` is on.
pub async fn refresh(
    State(app): State<AppState>,
    fields: Fields,
) -> Result<Tokens<Refreshed>, ApiError> {
    let Presented { claims, keys, now } =
        presented(&app, &fields, "refresh", Expect::Type(TokenType::Refresh))
            .inspect_err(|_| METRICS.refresh(metrics::Refresh::Invalid))?;
    let refreshed = app.sessions(&keys).refresh(&claims, now).await?;
    Ok(Tokens(Refreshed {
        access: refreshed.access,
        refresh: refreshed.refresh,
    }))
}

/// `POST /api/token/verify/`: 200 `{}` for any valid token jwtd issued that
/// is not blacklisted.
pub async fn verify(State(app): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let Presented { claims, keys, .. } = presented(&app, &fields, "token", Expect::AnyType)?;
    app.sessions(&keys).check_not_blacklisted(&claims).await?;
    Ok(Json(json!({})))
}

/// `POST /api/token/blacklist/`: blacklists a refresh token.
pub async fn blacklist(
    State(app): State<AppState>,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let Presented { claims, keys, now } =
        presented(&app, &fields, "refresh", Expect::Type(TokenType::Refresh))?;
    app.sessions(&keys).blacklist(&claims, now).await?;
    Ok(Json(json!({})))
}

/// `POST /api/token/logout-all/`: blacklists every outstanding refresh and
/// sliding token of the access token's user.
pub async fn logout_all(
    State(app): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let now = app.clock.now();
    let keys = app.keys.current();
    let count = app.sessions(&keys).logout_all(auth.user.id, now).await?;
    tracing::info!(
        event = "logout_all",
        user_id = auth.user.id,
        tokens = count,
        via = "http"
    );
    Ok(Json(json!({})))
}

/// `POST /api/token/sliding/`: username and password for a sliding token.
pub async fn obtain_sliding(
    State(app): State<AppState>,
    ClientAddress(address): ClientAddress,
    fields: Fields,
) -> Result<Tokens<SlidingToken>, ApiError> {
    let user = authenticate(&app, address, &fields).await?;
    let now = app.clock.now();
    let keys = app.keys.current();
    let token = app.sessions(&keys).login_sliding(user.id, now).await?;
    Ok(Tokens(SlidingToken { token }))
}

/// `POST /api/token/sliding/refresh/`: a sliding token, before its `exp`
/// and `refresh_exp`, for a new one with a later `exp`.
pub async fn refresh_sliding(
    State(app): State<AppState>,
    fields: Fields,
) -> Result<Tokens<SlidingToken>, ApiError> {
    let Presented { claims, keys, now } =
        presented(&app, &fields, "token", Expect::Type(TokenType::Sliding))?;
    let token = app.sessions(&keys).refresh_sliding(&claims, now).await?;
    Ok(Tokens(SlidingToken { token }))
}

/// An access and a refresh token.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

/// A refreshed access token, and the next refresh token when
/// `rotate_refresh_tokens` is on.
#[derive(Serialize, ToSchema)]
pub struct Refreshed {
    /// The new access token.
    pub access: String,
    /// The refresh token that replaces the presented one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

/// A sliding token.
#[derive(Serialize, ToSchema)]
pub struct SlidingToken {
    /// The sliding token.
    pub token: String,
}

/// A body that holds tokens: never stored by a cache on the way (RFC 6749
/// §5.1).
pub struct Tokens<T>(T);

impl<T: Serialize> IntoResponse for Tokens<T> {
    fn into_response(self) -> Response {
        let headers = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ];
        (headers, Json(self.0)).into_response()
    }
}

/// A token from the body, verified, with the key set and time it was
/// verified at (read once per request).
struct Presented {
    claims: Claims,
    keys: Arc<KeySet>,
    now: UnixTime,
}

fn presented(
    app: &AppState,
    fields: &Fields,
    field: &str,
    expect: Expect,
) -> Result<Presented, ApiError> {
    let [token] = fields.strings([(field, Trim::Yes)])?;
    let now = app.clock.now();
    let keys = app.keys.current();
    let claims = app
        .tokens
        .verify_cached(&keys, &token, expect, now)
        .map_err(ApiError::Token)?;
    Ok(Presented { claims, keys, now })
}

/// The active user named by the body's username and password. Refused
/// without checking the password when the username is not valid (only its
/// address is counted then) or when one of its counters has used up its
/// failed attempts.
async fn authenticate(
    app: &AppState,
    address: Option<IpAddr>,
    fields: &Fields,
) -> Result<User, ApiError> {
    let [raw, password] = fields.strings([("username", Trim::Yes), ("password", Trim::No)])?;
    let now = app.clock.now();
    let username = users::normalize_username(&raw).ok();
    let name = username.as_deref();
    if let Some(throttled) = app.throttle.check(name, address, now).await? {
        tracing::warn!(event = "login_throttled", username = ?ForLog(&raw), ?address);
        METRICS.login(Login::Throttled);
        return Err(ApiError::Throttled(throttled));
    }
    let user = match name {
        Some(name) => {
            users::authenticate(&app.store, &app.passwords, name, Password::new(password)).await?
        }
        None => None,
    };
    match (user, name) {
        (Some(user), Some(name)) => {
            app.throttle.record_success(name, address).await?;
            tracing::info!(event = "login_succeeded", user_id = user.id, username = ?ForLog(name));
            METRICS.login(Login::Success);
            Ok(user)
        }
        _ => {
            app.throttle.record_failure(name, address, now).await?;
            tracing::info!(event = "login_failed", username = ?ForLog(&raw), ?address);
            METRICS.login(Login::BadCredentials);
            Err(ApiError::BadCredentials)
        }
    }
}
