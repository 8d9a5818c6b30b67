//! The request bodies are read field by field (`Fields`), and the error
//! bodies are built by `ApiError`: these types only describe them.

#![allow(dead_code)] // Never built: only their schemas are used.

use serde_json::{Map, Value};
use utoipa::ToSchema;

// "Not blank" is a character outside Unicode White_Space, which the server
// trims; spelled out, since `\s` differs between regex dialects (U+0085).

/// Username and password.
#[derive(ToSchema)]
pub struct Credentials {
    /// Not blank once surrounding whitespace is removed.
    #[schema(
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    username: String,
    /// Taken as sent, whitespace included; not empty.
    #[schema(min_length = 1)]
    password: String,
}

/// A refresh token.
#[derive(ToSchema)]
pub struct RefreshRequest {
    /// Not blank once surrounding whitespace is removed.
    #[schema(
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    refresh: String,
}

/// A token of any type (verify), or a sliding token (sliding refresh).
#[derive(ToSchema)]
pub struct TokenRequest {
    /// Not blank once surrounding whitespace is removed.
    #[schema(
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    token: String,
}

/// `{}`.
#[derive(ToSchema)]
pub struct Empty {}

/// `{"status":"ok"}`.
#[derive(ToSchema)]
pub struct Status {
    status: String,
}

/// `{"status":"ready"}`, or not ready with the reason.
#[derive(ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    /// Why not ready.
    reason: Option<String>,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(ToSchema)]
pub struct Jwks {
    /// Public JWKs: `kty`, `kid`, `alg`, `use` and the key's members.
    keys: Vec<Map<String, Value>>,
}

/// OpenID Connect discovery metadata (the members jwtd fills).
#[derive(ToSchema)]
pub struct Discovery {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    id_token_signing_alg_values_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    response_types_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    claims_supported: Vec<String>,
}

/// `{"detail"}`: most errors.
#[derive(ToSchema)]
pub struct Detail {
    detail: String,
}

/// simplejwt's refused token: `{"detail":M,"code":"token_not_valid"}`.
#[derive(ToSchema)]
pub struct TokenNotValid {
    detail: String,
    code: String,
}

/// A protected view's 401: `detail`, and for a refused token or user a
/// `code` (`token_not_valid`, `bad_authorization_header`,
/// `user_not_found`, `user_inactive`) and for a refused token `messages`.
#[derive(ToSchema)]
pub struct AuthenticationFailed {
    detail: String,
    code: Option<String>,
    messages: Option<Vec<TokenMessage>>,
}

/// Why an access token was refused.
#[derive(ToSchema)]
pub struct TokenMessage {
    token_class: String,
    token_type: String,
    message: String,
}

/// DRF's field errors: field name (or `non_field_errors`) to messages.
#[derive(ToSchema)]
pub struct FieldErrors(std::collections::BTreeMap<String, Vec<String>>);
