//! What the document says of each route: one function per row of the
//! route table.

use utoipa::openapi::ResponseBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::described::*;
use super::parts::*;
use crate::http::error::ApiError;
use crate::http::me::Me;
use crate::http::token_views::{Refreshed, SlidingToken, TokenPair};
use crate::verifier::TokenError;

/// `POST /api/token/`.
pub fn obtain_pair() -> PathItem {
    post(
        login("obtainTokenPair", "Log in: an access and a refresh token")
            .response("200", tokens::<TokenPair>("The pair.")),
    )
}

/// `POST /api/token/sliding/`.
pub fn obtain_sliding() -> PathItem {
    post(
        login("obtainSlidingToken", "Log in: a sliding token")
            .response("200", tokens::<SlidingToken>("The sliding token.")),
    )
}

/// `POST /api/token/refresh/`.
pub fn refresh() -> PathItem {
    let refused = unauthorized(
        "The refresh token is refused, or its user is no longer active.",
        [
            token_not_valid(TokenError::Expired),
            example(&ApiError::NoActiveAccountForToken),
        ],
    );
    post(
        with_body::<RefreshRequest>(
            "refreshToken",
            "A refresh token for a new access token",
            "A new refresh token comes too when `rotate_refresh_tokens` is on; the \
             presented one is then blacklisted when `blacklist_after_rotation` is on.",
            &["refresh"],
        )
        .response("200", tokens::<Refreshed>("The new access token."))
        .response("401", refused),
    )
}

/// `POST /api/token/verify/`.
pub fn verify() -> PathItem {
    post(
        with_body::<TokenRequest>(
            "verifyToken",
            "Whether a token is valid",
            "Any token type jwtd issued; blacklisted refresh and sliding tokens fail.",
            &["token"],
        )
        .response("200", json::<Empty>("The token is valid."))
        .response("401", token_refused(TokenError::Expired)),
    )
}

/// `POST /api/token/blacklist/`.
pub fn blacklist() -> PathItem {
    post(
        with_body::<RefreshRequest>(
            "blacklistToken",
            "Blacklist a refresh token",
            "The token stops refreshing.",
            &["refresh"],
        )
        .response("200", json::<Empty>("Blacklisted."))
        .response("401", token_refused(TokenError::Blacklisted)),
    )
}

/// `POST /api/token/sliding/refresh/`.
pub fn refresh_sliding() -> PathItem {
    post(
        with_body::<TokenRequest>(
            "refreshSlidingToken",
            "A sliding token for one with a later expiry",
            "Before its `exp` and `refresh_exp`; the new token keeps `jti` and `refresh_exp`.",
            &["token"],
        )
        .response("200", tokens::<SlidingToken>("The new sliding token."))
        .response("401", token_refused(TokenError::RefreshExpired)),
    )
}

/// `POST /api/token/logout-all/`.
pub fn logout_all() -> PathItem {
    post(
        protected(
            "logoutAll",
            "Log out everywhere",
            "Blacklists every outstanding refresh and sliding token of the access token's user. \
             No body is read.",
        )
        .response("200", json::<Empty>("Done.")),
    )
}

/// `GET /api/me/`.
pub fn me() -> PathItem {
    get(protected(
        "me",
        "Who the access token belongs to",
        "`user_id` is a string, as in the token.",
    )
    .response("200", json::<Me>("The user.")))
}

/// `GET /.well-known/jwks.json` and its CORS preflight.
pub fn jwks() -> PathItem {
    let keys = ResponseBuilder::new()
        .description(
            "The published public keys (RFC 7517), with `Cache-Control: public, max-age=N` \
             (never past the next key change), an `ETag` and `Access-Control-Allow-Origin: *`.",
        )
        .content("application/json", content(schema::<Jwks>()))
        .header("ETag", string_header("The key set's tag."))
        .header("Cache-Control", string_header("`public, max-age=N`."))
        .build();
    let read = OperationBuilder::new()
        .operation_id(Some("jwks"))
        .summary(Some("The public keys partner services verify tokens with"))
        .response("200", keys)
        .response(
            "304",
            ResponseBuilder::new()
                .description("`If-None-Match` names the current ETag.")
                .build(),
        );
    let preflight = OperationBuilder::new()
        .operation_id(Some("jwksPreflight"))
        .summary(Some("CORS preflight of the JWKS"))
        .response(
            "204",
            ResponseBuilder::new()
                .description("What a browser may send: GET with `If-None-Match`, from any origin.")
                .header(
                    "Access-Control-Allow-Methods",
                    string_header("`GET, HEAD, OPTIONS`."),
                )
                .build(),
        );
    let mut item = PathItem::new(HttpMethod::Get, with_slash_note(read));
    item.merge_operations(PathItem::new(
        HttpMethod::Options,
        with_slash_note(preflight),
    ));
    item
}

/// `GET /.well-known/openid-configuration`.
pub fn openid_configuration() -> PathItem {
    get(OperationBuilder::new()
        .operation_id(Some("openidConfiguration"))
        .summary(Some("OIDC discovery metadata"))
        .description(Some(
            "Served when `issuer` is an http(s) URL, since every address in it is built from \
             the issuer; otherwise 404.",
        ))
        .response("200", json::<Discovery>("The provider metadata."))
        .response(
            "404",
            detail("`issuer` is unset or not a URL.", &ApiError::NotFound),
        ))
}

/// `GET /livez` (and `/healthz`, the same probe under another name).
pub fn livez(name: &str) -> PathItem {
    get(OperationBuilder::new()
        .operation_id(Some(name))
        .summary(Some("The process serves (no database check)"))
        .response("200", json::<Status>("`{\"status\":\"ok\"}`.")))
}

/// `GET /readyz`.
pub fn readyz() -> PathItem {
    get(OperationBuilder::new()
        .operation_id(Some("readyz"))
        .summary(Some("Whether this process may take traffic"))
        .response("200", json::<Readiness>("`{\"status\":\"ready\"}`."))
        .response(
            "503",
            json::<Readiness>(
                "Not ready: the database is out of reach, no signing key is \
                               loaded, or the process is stopping; `reason` says which.",
            ),
        ))
}

/// `GET /openapi.json`.
pub fn openapi() -> PathItem {
    let any_object = ObjectBuilder::new().schema_type(Type::Object).build();
    get(OperationBuilder::new()
        .operation_id(Some("openapi"))
        .summary(Some("This document (OpenAPI 3.1)"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The document, readable from any origin.")
                .content("application/json", content(any_object.into()))
                .header(
                    "Access-Control-Allow-Origin",
                    string_header("`*`: a Swagger UI served elsewhere may read it."),
                )
                .build(),
        ))
}
