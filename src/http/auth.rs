//! The `Authorization: Bearer <access token>` extractor, with simplejwt's
//! `JWTAuthentication` rules: only access tokens authenticate.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::tokens::{Claims, Expect, TokenType};
use crate::users::User;

/// The user an access token authenticates, with the token's claims.
#[derive(Debug)]
pub struct Authenticated {
    /// The active user the token names.
    pub user: User,
    /// The verified claims.
    pub claims: Claims,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::NotAuthenticated)?;
        let token = bearer_token(header.as_bytes(), &app.config.auth_header_types)?;
        let now = app.clock.now();
        let claims = app
            .tokens
            .verify(
                &app.keys.current(),
                token,
                Expect::Type(TokenType::Access),
                now,
            )
            .map_err(ApiError::AccessToken)?;
        let id = claims
            .user_id
            .parse::<i64>()
            .map_err(|_| ApiError::UserNotFound)?;
        let user = app
            .store
            .user_by_id(id)
            .await?
            .ok_or(ApiError::UserNotFound)?;
        if !user.is_active {
            return Err(ApiError::UserInactive);
        }
        Ok(Self { user, claims })
    }
}

/// The token of `<type> <token>`. A header of another scheme counts as no
/// credentials (another authenticator's); the right scheme with other than
/// exactly one token is malformed.
fn bearer_token<'a>(header: &'a [u8], types: &[String]) -> Result<&'a str, ApiError> {
    let mut parts = header
        .split(u8::is_ascii_whitespace)
        .filter(|part| !part.is_empty());
    let scheme = parts.next().ok_or(ApiError::NotAuthenticated)?;
    if !types.iter().any(|t| t.as_bytes() == scheme) {
        return Err(ApiError::NotAuthenticated);
    }
    let (Some(token), None) = (parts.next(), parts.next()) else {
        return Err(ApiError::BadAuthorizationHeader);
    };
    std::str::from_utf8(token).map_err(|_| {
        ApiError::AccessToken(crate::tokens::TokenError::Invalid(
            crate::tokens::Invalid::Malformed,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(header: &str) -> Result<&str, ApiError> {
        bearer_token(header.as_bytes(), &["Bearer".to_owned()])
    }

    #[test]
    fn splits_like_simplejwt() {
        assert_eq!(bearer("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer("  Bearer   abc ").unwrap(), "abc");
        assert!(matches!(bearer(""), Err(ApiError::NotAuthenticated)));
        assert!(matches!(
            bearer("Basic abc"),
            Err(ApiError::NotAuthenticated)
        ));
        assert!(matches!(
            bearer("Bearer"),
            Err(ApiError::BadAuthorizationHeader)
        ));
        assert!(matches!(
            bearer("Bearer a b"),
            Err(ApiError::BadAuthorizationHeader)
        ));
    }
}
