//! `GET /api/me/`: who the access token belongs to.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::Authenticated;

/// The authenticated user's id (a string, as in the token) and username.
pub async fn me(auth: Authenticated) -> Json<Me> {
    Json(Me {
        user_id: auth.user.id.to_string(),
        username: auth.user.username,
    })
}

/// A user, as `GET /api/me/` names it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The `user_id` claim: the user's id as a string.
    pub user_id: String,
    /// The (NFKC-normalised) username.
    pub username: String,
}
