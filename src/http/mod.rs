//! The HTTP API (SPEC §3): one router, one state, one error type.

mod auth;
mod body;
mod client;
mod connections;
mod discovery;
mod error;
mod jwks;
mod me;
mod observe;
mod openapi;
mod token_views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

pub use auth::Authenticated;
pub use body::MAX_BODY_BYTES;
pub(crate) use body::{Fields, Trim};
pub use client::ClientAddress;
pub use connections::{ConnectionLimits, raise_open_file_limit, serve};
pub use error::ApiError;
pub use observe::HttpMetrics;

use crate::clock::Clock;
use crate::config::Config;
use crate::health::{self, Health};
use crate::keys::{KeyRing, KeySet};
use crate::store::Store;
use crate::tokens::refresh::RefreshPolicy;
use crate::tokens::{RefreshWriter, Sessions, TokenService};
use crate::users::{AccountCache, LoginThrottle, PasswordHasher};

/// What every handler can reach: [`AppServices`] behind one `Arc`, so the
/// clones axum makes per request (one per route call and per `State`
/// extractor) cost one atomic increment each instead of one per field,
/// on counters every core shares.
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl AppState {
    /// The state holding `services`.
    pub fn new(services: AppServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// The services themselves, reached through [`AppState`].
pub struct AppServices {
    /// Users, keys and token records; also read by the background task.
    pub store: Store,
    /// Current keys, decrypted and parsed once.
    pub keys: Arc<KeyRing>,
    /// Issues and verifies tokens.
    pub tokens: Arc<TokenService>,
    /// Hashes and checks passwords off the reactor.
    pub passwords: PasswordHasher,
    /// The one clock; read once per request.
    pub clock: Arc<dyn Clock>,
    /// The settings the server started with; fixed for its life.
    pub config: Arc<Config>,
    /// Failed-login counters.
    pub throttle: Arc<LoginThrottle>,
    /// The accounts access tokens name, kept in step with the store.
    pub accounts: Arc<AccountCache>,
    /// Writes refreshes, many per transaction.
    pub refresh_writer: RefreshWriter,
    /// Whether this process may take traffic.
    pub health: Arc<Health>,
}

impl AppServices {
    /// The refresh-token lifecycle, with the key set of one request.
    pub fn sessions<'a>(&'a self, keys: &'a KeySet) -> Sessions<'a> {
        Sessions {
            store: &self.store,
            tokens: &self.tokens,
            keys,
            policy: RefreshPolicy::new(&self.config),
            writer: &self.refresh_writer,
            update_last_login: self.config.update_last_login,
        }
    }
}

/// The routers of a process: the API's on `bind`, and, when
/// `metrics_bind` is set, the metrics listener's.
pub struct Routers {
    /// Every endpoint of SPEC §3 and §8, under both path spellings.
    pub api: Router,
    /// `/metrics` and the probes; `None` when metrics are off.
    pub metrics: Option<Router>,
    /// Where the API's connections count and time their requests; `None`
    /// when metrics are off.
    pub observed: Option<Arc<HttpMetrics>>,
}

/// The routers with their state. With metrics on, every API request is
/// counted and timed by its connection; with them off, nothing is.
pub fn routers(state: AppState) -> Routers {
    let table = route_table();
    let templates: Vec<&'static str> = table.iter().map(|route| route.path).collect();
    let mut router = Router::new();
    for Route {
        path,
        handlers,
        doc,
    } in table
    {
        let allow = openapi::allowed_methods(&doc);
        let handlers = handlers.fallback(move |method: Method| async move {
            (
                [(header::ALLOW, allow)],
                ApiError::MethodNotAllowed(method.to_string()),
            )
        });
        let other_form = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        router = router
            .route(path, handlers.clone())
            .route(&other_form, handlers);
    }
    let api = router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    if state.config.metrics_bind.is_none() {
        return Routers {
            api,
            metrics: None,
            observed: None,
        };
    }
    let http = Arc::new(HttpMetrics::new(&templates));
    Routers {
        api,
        metrics: Some(observe::metrics_router(state, Arc::clone(&http))),
        observed: Some(http),
    }
}

/// One endpoint: its path (the other spelling, with or without the
/// trailing slash, answers too), its handlers, and what the OpenAPI
/// document says of them.
struct Route {
    path: &'static str,
    handlers: MethodRouter<AppState>,
    doc: utoipa::openapi::PathItem,
}

/// Every endpoint of SPEC §3 and §8: the one list the router and the
/// OpenAPI document are both built from.
fn route_table() -> Vec<Route> {
    let route = |path, handlers, doc| Route {
        path,
        handlers,
        doc,
    };
    vec![
        route(
            "/api/token/",
            post(token_views::obtain_pair),
            openapi::obtain_pair(),
        ),
        route(
            "/api/token/refresh/",
            post(token_views::refresh),
            openapi::refresh(),
        ),
        route(
            "/api/token/verify/",
            post(token_views::verify),
            openapi::verify(),
        ),
        route(
            "/api/token/blacklist/",
            post(token_views::blacklist),
            openapi::blacklist(),
        ),
        route(
            "/api/token/logout-all/",
            post(token_views::logout_all),
            openapi::logout_all(),
        ),
        route(
            "/api/token/sliding/",
            post(token_views::obtain_sliding),
            openapi::obtain_sliding(),
        ),
        route(
            "/api/token/sliding/refresh/",
            post(token_views::refresh_sliding),
            openapi::refresh_sliding(),
        ),
        route("/api/me/", get(me::me), openapi::me()),
        route(
            "/.well-known/jwks.json",
            get(jwks::jwks).options(jwks::preflight),
            openapi::jwks(),
        ),
        route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
            openapi::openid_configuration(),
        ),
        route("/healthz", get(livez), openapi::livez("healthz")),
        route("/livez", get(livez), openapi::livez("livez")),
        route("/readyz", get(readyz), openapi::readyz()),
        route("/openapi.json", get(openapi::serve), openapi::openapi()),
    ]
}

/// `GET /livez` and `/healthz`: the process serves; no database check.
async fn livez() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when this process may take traffic, else 503 with
/// the reason on one line.
async fn readyz(State(app): State<AppState>) -> Response {
    let signer_loaded = app.keys.current().signer_at(app.clock.now()).is_some();
    let verdict = health::readiness(
        app.health.store_silent_for(),
        signer_loaded,
        app.health.stopping(),
    );
    let (status, body) = match verdict {
        Ok(()) => (StatusCode::OK, serde_json::json!({"status": "ready"})),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "reason": reason.to_string()}),
        ),
    };
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (status, no_store, axum::Json(body)).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}
