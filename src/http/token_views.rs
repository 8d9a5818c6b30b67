//! The token endpoints: obtain a pair, refresh, verify.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::body::{Fields, Trim};
use super::{ApiError, AppState};
use crate::tokens::{Expect, TokenType};
use crate::users::{self, Password};

/// `POST /api/token/`: username and password for an access and a refresh token.
pub async fn obtain_pair(
    State(app): State<AppState>,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let [username, password] = fields.strings([("username", Trim::Yes), ("password", Trim::No)])?;
    let user = users::authenticate(
        &app.store,
        &app.passwords,
        &username,
        Password::new(password),
    )
    .await?
    .ok_or(ApiError::BadCredentials)?;
    let now = app.clock.now();
    let keys = app.keys.current();
    let user_id = user.id.to_string();
    let (refresh, _) = app.tokens.issue(&keys, TokenType::Refresh, &user_id, now)?;
    let (access, _) = app.tokens.issue(&keys, TokenType::Access, &user_id, now)?;
    if app.config.update_last_login {
        app.store.record_login(user.id, now).await?;
    }
    Ok(Json(json!({"refresh": refresh, "access": access})))
}

/// `POST /api/token/refresh/`: a refresh token for a new access token, and
/// a new refresh token when `rotate_refresh_tokens` is on.
pub async fn refresh(State(app): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let [token] = fields.strings([("refresh", Trim::Yes)])?;
    let now = app.clock.now();
    let keys = app.keys.current();
    let claims = app
        .tokens
        .verify(&keys, &token, Expect::Type(TokenType::Refresh), now)
        .map_err(ApiError::Token)?;
    let user = match claims.user_id.parse::<i64>() {
        Ok(id) => app.store.user_by_id(id).await?,
        Err(_) => None,
    };
    if !user.is_some_and(|user| user.is_active) {
        return Err(ApiError::NoActiveAccountForToken);
    }
    let mut body = Map::new();
    let (access, _) = app
        .tokens
        .issue(&keys, TokenType::Access, &claims.user_id, now)?;
    body.insert("access".into(), access.into());
    if app.config.rotate_refresh_tokens {
        let (refresh, _) = app
            .tokens
            .issue(&keys, TokenType::Refresh, &claims.user_id, now)?;
        body.insert("refresh".into(), refresh.into());
    }
    Ok(Json(Value::Object(body)))
}

/// `POST /api/token/verify/`: 200 `{}` for any valid token jwtd issued.
pub async fn verify(State(app): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let [token] = fields.strings([("token", Trim::Yes)])?;
    let now = app.clock.now();
    app.tokens
        .verify(&app.keys.current(), &token, Expect::AnyType, now)
        .map_err(ApiError::Token)?;
    Ok(Json(json!({})))
}
