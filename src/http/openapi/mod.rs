//! `GET /openapi.json` (SPEC §9): the OpenAPI 3.1 description of the API.
//!
//! Nothing here lists routes: each row of the route table in
//! [`super::route_table`] carries its path, its handlers and the
//! [`PathItem`] a function of `operations` describes it with, and the
//! document is the table's rows put together. Bodies are described by the
//! types the handlers serialise (`ToSchema` beside `Serialize`), and every
//! error example is the body `ApiError` itself answers with, so neither
//! can drift from what jwtd sends.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Components, ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
};

mod described;
mod operations;
mod parts;

use super::me::Me;
use super::token_views::{Refreshed, SlidingToken, TokenPair};
use described::*;
pub use operations::*;
use parts::method_not_allowed;

/// The name of the bearer security scheme in the document.
const BEARER: &str = "bearer";

/// The document, serialised once on first use.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    let table = super::route_table();
    let rows = table.iter().map(|route| (route.path, route.doc.clone()));
    // A document of plain strings and JSON values always serialises.
    Bytes::from(serde_json::to_vec(&document(rows)).unwrap_or_default())
});

/// `GET /openapi.json`. Any origin may read it, so that a Swagger UI
/// served elsewhere can show it (it holds nothing secret, like the JWKS).
pub async fn serve() -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
    ];
    (headers, DOCUMENT.clone()).into_response()
}

/// The document of the given rows: path template and what it answers.
pub fn document(rows: impl IntoIterator<Item = (&'static str, PathItem)>) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (path, item) in rows {
        paths = paths.path(path, item);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("jwtd")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(INFO))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .build()
}

const INFO: &str = "A JSON Web Token issuer with djangorestframework-simplejwt's endpoints, \
bodies and errors, signing with asymmetric keys published at /.well-known/jwks.json.\n\n\
Every path answers with and without its trailing slash (no redirect); the document names \
one spelling. Request bodies are JSON or form-encoded; a body over 65,536 bytes gets 413, \
and one that has not arrived within `request_timeout` gets 408. A method a path does not \
answer gets 405 (`#/components/responses/MethodNotAllowed`), an unknown path 404. Every \
401 carries `WWW-Authenticate: Bearer realm=\"api\"`.";

fn components() -> Components {
    ComponentsBuilder::new()
        .schema_from::<Credentials>()
        .schema_from::<RefreshRequest>()
        .schema_from::<TokenRequest>()
        .schema_from::<TokenPair>()
        .schema_from::<Refreshed>()
        .schema_from::<SlidingToken>()
        .schema_from::<Me>()
        .schema_from::<Empty>()
        .schema_from::<Status>()
        .schema_from::<Readiness>()
        .schema_from::<Jwks>()
        .schema_from::<Discovery>()
        .schema_from::<Detail>()
        .schema_from::<TokenNotValid>()
        .schema_from::<AuthenticationFailed>()
        .schema_from::<TokenMessage>()
        .schema_from::<FieldErrors>()
        .response("MethodNotAllowed", method_not_allowed())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/token/ (refresh and sliding tokens \
                         do not authenticate).",
                    ))
                    .build(),
            ),
        )
        .build()
}

/// The methods a path item answers, for the `Allow` header of its 405s. A
/// GET answers HEAD too.
pub fn allowed_methods(item: &PathItem) -> HeaderValue {
    let methods = [
        ("GET, HEAD", item.get.is_some()),
        ("POST", item.post.is_some()),
        ("PUT", item.put.is_some()),
        ("PATCH", item.patch.is_some()),
        ("DELETE", item.delete.is_some()),
        ("OPTIONS", item.options.is_some()),
    ];
    let allow: Vec<&str> = methods
        .iter()
        .filter(|(_, answered)| *answered)
        .map(|(name, _)| *name)
        .collect();
    HeaderValue::from_str(&allow.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}
