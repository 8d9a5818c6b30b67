//! The pieces operations are made of: the answers every body-reading,
//! login or protected operation shares, with `ApiError`'s own bodies as
//! their examples.

use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    Content, ContentBuilder, Ref, RefOr, Required, Response as Answer, ResponseBuilder, Schema,
};

use super::BEARER;
use super::described::*;
use crate::http::error::ApiError;
use crate::users::Throttled;
use crate::verifier::{AuthError, TokenError};

/// The two media types every request body may come in (DRF's parsers).
const REQUEST_MEDIA_TYPES: [&str; 2] = ["application/json", "application/x-www-form-urlencoded"];

pub(super) fn get(operation: OperationBuilder) -> PathItem {
    PathItem::new(HttpMethod::Get, with_slash_note(operation))
}

pub(super) fn post(operation: OperationBuilder) -> PathItem {
    PathItem::new(HttpMethod::Post, with_slash_note(operation))
}

/// The operation, with the note on the other spelling of its path.
pub(super) fn with_slash_note(operation: OperationBuilder) -> Operation {
    let mut operation = operation.build();
    let note = "The path answers with and without its trailing slash.";
    operation.description = Some(match operation.description.take() {
        Some(text) => format!("{text}\n\n{note}"),
        None => note.to_owned(),
    });
    operation
}

/// A login endpoint: username and password, throttled.
pub(super) fn login(id: &str, summary: &str) -> OperationBuilder {
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
        ResponseBuilder::new()
            .description("Wrong username or password, or an inactive user.")
            .content(
                "application/json",
                example_content(&ApiError::BadCredentials),
            )
            .header("WWW-Authenticate", challenge_header())
            .build(),
    )
    .response("429", retry)
}

/// An operation with a request body of `T` whose `fields` are required.
pub(super) fn with_body<T: ToSchema>(
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
pub(super) fn protected(id: &str, summary: &str, description: &str) -> OperationBuilder {
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
pub(super) fn body_errors(operation: OperationBuilder, fields: &[&str]) -> OperationBuilder {
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
pub(super) fn token_refused(err: TokenError) -> Answer {
    unauthorized(
        "The token is refused: invalid, expired, blacklisted, of the wrong type, or \
         without a type or id.",
        [token_not_valid(err)],
    )
}

pub(super) fn token_not_valid(err: TokenError) -> (String, Value) {
    example(&ApiError::Token(err))
}

pub(super) fn unauthorized<const N: usize>(
    description: &str,
    examples: [(String, Value); N],
) -> Answer {
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

pub(super) fn unavailable() -> Answer {
    let err = ApiError::Unavailable(String::new());
    ResponseBuilder::new()
        .description("The database is out of reach or, on SQLite, locked by another writer past jwtd's wait; retry.")
        .content("application/json", example_content(&err))
        .header("Retry-After", seconds_header())
        .build()
}

pub(super) fn method_not_allowed() -> Answer {
    let err = ApiError::MethodNotAllowed("DELETE".to_owned());
    ResponseBuilder::new()
        .description("The path does not answer this method; `Allow` lists those it does.")
        .content("application/json", example_content(&err))
        .header("Allow", string_header("The methods the path answers."))
        .build()
}

/// A `{"detail"}` answer whose example is `err`'s body.
pub(super) fn detail(description: &str, err: &ApiError) -> Answer {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", example_content(err))
        .build()
}

/// `{"detail"}` content with `err`'s body as its example.
pub(super) fn example_content(err: &ApiError) -> Content {
    let (_, body) = example(err);
    ContentBuilder::new()
        .schema(Some(schema::<Detail>()))
        .example(Some(body))
        .build()
}

pub(super) fn examples_content<const N: usize>(
    schema: RefOr<Schema>,
    examples: [(String, Value); N],
) -> Content {
    let examples = examples
        .into_iter()
        .map(|(name, value)| (name, ExampleBuilder::new().value(Some(value)).build()));
    ContentBuilder::new()
        .schema(Some(schema))
        .examples_from_iter(examples)
        .build()
}

/// The body jwtd answers `err` with, named by its status and its message.
pub(super) fn example(err: &ApiError) -> (String, Value) {
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
pub(super) fn tokens<T: ToSchema>(description: &str) -> Answer {
    ResponseBuilder::new()
        .description(format!(
            "{description} Sent with `Cache-Control: no-store`."
        ))
        .content("application/json", content(schema::<T>()))
        .header("Cache-Control", string_header("`no-store`."))
        .build()
}

pub(super) fn json<T: ToSchema>(description: &str) -> Answer {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content(schema::<T>()))
        .build()
}

pub(super) fn content(schema: RefOr<Schema>) -> Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

pub(super) fn request_body<T: ToSchema>() -> RequestBody {
    let mut body = RequestBodyBuilder::new().required(Some(Required::True));
    for media_type in REQUEST_MEDIA_TYPES {
        body = body.content(media_type, content(schema::<T>()));
    }
    body.build()
}

pub(super) fn schema<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

pub(super) fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

pub(super) fn challenge_header() -> Header {
    string_header("`Bearer realm=\"api\"`.")
}

pub(super) fn seconds_header() -> Header {
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
