//! The `Authorization: Bearer <access token>` extractor, with simplejwt's
//! `JWTAuthentication` rules: only access tokens authenticate. Header
//! parsing and the 401 bodies are the partner verifier's, so issuer and
//! partners answer alike.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::store::Account;
use crate::tokens::{Expect, TokenType};
use crate::verifier::{AuthError, bearer_token};

/// The active user an access token authenticates.
#[derive(Debug)]
pub struct Authenticated {
    /// The active user the token names.
    pub user: Account,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token =
            bearer_token(&parts.headers, &app.config.auth_header_types).map_err(ApiError::Auth)?;
        let now = app.clock.now();
        let claims = app
            .tokens
            .verify_cached(
                &app.keys.current(),
                token,
                Expect::Type(TokenType::Access),
                now,
            )
            .map_err(|err| ApiError::Auth(AuthError::Token(err)))?;
        let id = claims
            .user_id
            .parse::<i64>()
            .map_err(|_| ApiError::UserNotFound)?;
        let user = app
            .accounts
            .get(&app.store, id)
            .await?
            .ok_or(ApiError::UserNotFound)?;
        if !user.is_active {
            return Err(ApiError::UserInactive);
        }
        Ok(Self { user })
    }
}
