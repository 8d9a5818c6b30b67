//! `GET /api/me/`: who the access token belongs to.

use axum::Json;
use serde_json::{Value, json};

use super::Authenticated;

/// The authenticated user's id (a string, as in the token) and username.
pub async fn me(auth: Authenticated) -> Json<Value> {
    Json(json!({"user_id": auth.user.id.to_string(), "username": auth.user.username}))
}
