//! `GET /openapi.json` (SPEC §9): the OpenAPI 3.1 description of the API.
//!
//! Nothing here lists routes: each row of the route table in
//! [`super::route_table`] carries its path, its handlers and the
//! [`PathItem`] one of the functions below describes it with, and the
//! document is the table's rows put together. Bodies are described by the
//! types the handlers serialise (`ToSchema` beside `Serialize`), and every
//! error example is the body [`ApiError`] itself answers with, so neither
//! can drift from what jwtd sends.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    RefOr, Required, Response as Answer, ResponseBuilder, Schema,
};

use super::error::ApiError;
use super::me::Me;
use super::token_views::{Refreshed, SlidingToken, TokenPair};
use crate::users::Throttled;
use crate::verifier::{AuthError, TokenError};

/// The name of the bearer security scheme in the document.
const BEARER: &str = "bearer";

/// The two media types every request body may come in (DRF's parsers).
const REQUEST_MEDIA_TYPES: [&str; 2] = ["application/json", "application/x-www-form-urlencoded"];

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

fn components() -> utoipa::openapi::Components {
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

// --- The routes -------------------------------------------------------------

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
    let mut item = PathItem::new(HttpMethod::Get, described(read));
    item.merge_operations(PathItem::new(HttpMethod::Options, described(preflight)));
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

/// `GET /livez` (and `/healthz`, its older name).
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

// --- Building blocks ---------------------------------------------------------

fn get(operation: OperationBuilder) -> PathItem {
    PathItem::new(HttpMethod::Get, described(operation))
}

fn post(operation: OperationBuilder) -> PathItem {
    PathItem::new(HttpMethod::Post, described(operation))
}

/// The operation, with the note on the other spelling of its path.
fn described(operation: OperationBuilder) -> Operation {
    let mut operation = operation.build();
    let note = "The path answers with and without its trailing slash.";
    operation.description = Some(match operation.description.take() {
        Some(text) => format!("{text}\n\n{note}"),
        None => note.to_owned(),
    });
    operation
}

/// A login endpoint: username and password, throttled.
fn login(id: &str, summary: &str) -> OperationBuilder {
    let throttled = ApiError::Throttled(Throttled { retry_after: 42 });
    let retry = ResponseBuilder::new()
        .description(
            "Too many failed logins for this username or address (the password is not \
             checked); `Retry-After` says when to try again.",
        )
        .content("application/json", example_content(&throttled))
        .header("Retry-After", seconds_header())
        .build();
    with_body::<Credentials>(
        id,
        summary,
        "Usernames are compared after Unicode NFKC normalisation.",
        &["username", "password"],
    )
    .response(
        "401",
        detail(
            "Wrong username or password, or an inactive user.",
            &ApiError::BadCredentials,
        ),
    )
    .response("429", retry)
}

/// An operation with a request body of `T` whose `fields` are required.
fn with_body<T: ToSchema>(
    id: &str,
    summary: &str,
    description: &str,
    fields: &[&str],
) -> OperationBuilder {
    body_errors(
        OperationBuilder::new()
            .operation_id(Some(id))
            .summary(Some(summary))
            .description(Some(description))
            .request_body(Some(request_body::<T>())),
        fields,
    )
}

/// An operation behind the bearer scheme.
fn protected(id: &str, summary: &str, description: &str) -> OperationBuilder {
    let examples = [
        example(&ApiError::Auth(AuthError::NotAuthenticated)),
        example(&ApiError::Auth(AuthError::BadHeader)),
        example(&ApiError::Auth(AuthError::Token(TokenError::Expired))),
        example(&ApiError::UserNotFound),
        example(&ApiError::UserInactive),
    ];
    let refused = ResponseBuilder::new()
        .description(
            "No credentials, a malformed `Authorization` header, a refused access token, \
             or a deleted or disabled user.",
        )
        .content(
            "application/json",
            examples_content(schema::<AuthenticationFailed>(), examples),
        )
        .header("WWW-Authenticate", challenge_header())
        .build();
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .response("401", refused)
        .response("503", unavailable())
}

/// The answers of every operation that reads a body: DRF's field errors,
/// unreadable bodies, sizes, media types and timeouts, and a busy store.
fn body_errors(operation: OperationBuilder, fields: &[&str]) -> OperationBuilder {
    let mut missing = std::collections::BTreeMap::new();
    for field in fields {
        missing.insert(
            (*field).to_owned(),
            vec!["This field is required.".to_owned()],
        );
    }
    let bad_request = [
        example(&ApiError::Fields(missing)),
        example(&ApiError::JsonParse(
            "expected value at line 1 column 1".to_owned(),
        )),
        example(&ApiError::Fields(
            [(
                "non_field_errors".to_owned(),
                vec!["Invalid data. Expected a dictionary, but got list.".to_owned()],
            )]
            .into(),
        )),
    ];
    let either = RefOr::T(Schema::AnyOf(
        AnyOfBuilder::new()
            .item(schema::<FieldErrors>())
            .item(schema::<Detail>())
            .build(),
    ));
    operation
        .response(
            "400",
            ResponseBuilder::new()
                .description(
                    "A missing, blank, null or non-string field (DRF's field errors), malformed \
                     JSON, JSON that is not an object, or a body that could not be read.",
                )
                .content("application/json", examples_content(either, bad_request))
                .build(),
        )
        .response(
            "408",
            detail(
                "The body had not arrived within `request_timeout`; the connection is closed.",
                &ApiError::RequestTimeout,
            ),
        )
        .response(
            "413",
            detail("The body is over 65,536 bytes.", &ApiError::TooLarge),
        )
        .response(
            "415",
            detail(
                "A body of another media type than JSON or form-encoded.",
                &ApiError::UnsupportedMediaType("text/plain".to_owned()),
            ),
        )
        .response("503", unavailable())
}

/// 401 with simplejwt's `token_not_valid` body, `err` as the example.
fn token_refused(err: TokenError) -> Answer {
    unauthorized(
        "The token is refused: invalid, expired, blacklisted, of the wrong type, or \
         without a type or id.",
        [token_not_valid(err)],
    )
}

fn token_not_valid(err: TokenError) -> (String, Value) {
    example(&ApiError::Token(err))
}

fn unauthorized<const N: usize>(description: &str, examples: [(String, Value); N]) -> Answer {
    let either = RefOr::T(Schema::AnyOf(
        AnyOfBuilder::new()
            .item(schema::<TokenNotValid>())
            .item(schema::<Detail>())
            .build(),
    ));
    ResponseBuilder::new()
        .description(description)
        .content("application/json", examples_content(either, examples))
        .header("WWW-Authenticate", challenge_header())
        .build()
}

fn unavailable() -> Answer {
    let err = ApiError::Unavailable(String::new());
    ResponseBuilder::new()
        .description("The database is locked by another writer past jwtd's wait; retry.")
        .content("application/json", example_content(&err))
        .header("Retry-After", seconds_header())
        .build()
}

fn method_not_allowed() -> Answer {
    let err = ApiError::MethodNotAllowed("DELETE".to_owned());
    ResponseBuilder::new()
        .description("The path does not answer this method; `Allow` lists those it does.")
        .content("application/json", example_content(&err))
        .header("Allow", string_header("The methods the path answers."))
        .build()
}

/// A `{"detail"}` answer whose example is `err`'s body.
fn detail(description: &str, err: &ApiError) -> Answer {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", example_content(err))
        .build()
}

/// `{"detail"}` content with `err`'s body as its example.
fn example_content(err: &ApiError) -> utoipa::openapi::Content {
    let (_, body) = example(err);
    ContentBuilder::new()
        .schema(Some(schema::<Detail>()))
        .example(Some(body))
        .build()
}

fn examples_content<const N: usize>(
    schema: RefOr<Schema>,
    examples: [(String, Value); N],
) -> utoipa::openapi::Content {
    let examples = examples
        .into_iter()
        .map(|(name, value)| (name, ExampleBuilder::new().value(Some(value)).build()));
    ContentBuilder::new()
        .schema(Some(schema))
        .examples_from_iter(examples)
        .build()
}

/// The body jwtd answers `err` with, named by its status and its message.
fn example(err: &ApiError) -> (String, Value) {
    let (status, body) = err.status_and_body();
    let name = body
        .get("code")
        .or_else(|| body.get("detail"))
        .and_then(Value::as_str)
        .map_or_else(|| err.to_string(), str::to_owned);
    let name = match body.get("messages") {
        Some(_) => format!("{} {name} (protected view)", status.as_u16()),
        None => format!("{} {name}", status.as_u16()),
    };
    (name, body)
}

/// 200 JSON of `T` with the headers of a token answer.
fn tokens<T: ToSchema>(description: &str) -> Answer {
    ResponseBuilder::new()
        .description(format!(
            "{description} Sent with `Cache-Control: no-store`."
        ))
        .content("application/json", content(schema::<T>()))
        .header("Cache-Control", string_header("`no-store`."))
        .build()
}

fn json<T: ToSchema>(description: &str) -> Answer {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content(schema::<T>()))
        .build()
}

fn content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn request_body<T: ToSchema>() -> RequestBody {
    let mut body = RequestBodyBuilder::new().required(Some(Required::True));
    for media_type in REQUEST_MEDIA_TYPES {
        body = body.content(media_type, content(schema::<T>()));
    }
    body.build()
}

fn schema<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

fn challenge_header() -> utoipa::openapi::header::Header {
    string_header("`Bearer realm=\"api\"`.")
}

fn seconds_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait."))
        .build()
}

// --- Bodies jwtd reads, and error bodies ---------------------------------------

use described::*;

/// The request bodies are read field by field (`Fields`), and the error
/// bodies are built by `ApiError`: these types only describe them.
mod described {
    #![allow(dead_code)] // Never built: only their schemas are used.

    use serde_json::{Map, Value};
    use utoipa::ToSchema;

    /// Username and password.
    #[derive(ToSchema)]
    pub struct Credentials {
        /// Not blank once surrounding whitespace is removed.
        #[schema(pattern = r"\S")]
        username: String,
        /// Taken as sent, whitespace included; not empty.
        #[schema(min_length = 1)]
        password: String,
    }

    /// A refresh token.
    #[derive(ToSchema)]
    pub struct RefreshRequest {
        /// Not blank once surrounding whitespace is removed.
        #[schema(pattern = r"\S")]
        refresh: String,
    }

    /// A token of any type (verify), or a sliding token (sliding refresh).
    #[derive(ToSchema)]
    pub struct TokenRequest {
        /// Not blank once surrounding whitespace is removed.
        #[schema(pattern = r"\S")]
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
        /// `ready` or `not ready`.
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
}
