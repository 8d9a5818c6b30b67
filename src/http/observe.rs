//! Request counts and times per route and status, and the `/metrics`
//! listener's router (SPEC §8). A request is labelled with the template of
//! the route serving it, from the router's own list, or `unmatched`: never
//! with its raw path. Each connection records its requests (see
//! `connections.rs`), where the time of arrival is already taken.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::clock::UnixTime;
use crate::metrics::{self, Histogram, METRICS, REQUEST_BUCKETS};

/// The statuses jwtd answers with; any other is counted as `other`.
const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503];

/// The label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// Counts and times of one route.
struct RouteStats {
    label: &'static str,
    statuses: [AtomicU64; STATUSES.len() + 1],
    duration: Histogram<{ REQUEST_BUCKETS.len() }>,
}

/// Counts and times of every route, and of unmatched requests (last).
pub struct HttpMetrics {
    routes: Vec<RouteStats>,
}

impl HttpMetrics {
    /// Stats for each of `routes` (the router's templates) and `unmatched`.
    pub fn new(routes: &[&'static str]) -> Self {
        let stats = |label| RouteStats {
            label,
            statuses: [const { AtomicU64::new(0) }; STATUSES.len() + 1],
            duration: Histogram::new(&REQUEST_BUCKETS),
        };
        let mut all: Vec<RouteStats> = routes.iter().copied().map(stats).collect();
        all.push(stats(UNMATCHED));
        Self { routes: all }
    }

    /// The index of the route serving `path`: its template, with or
    /// without the trailing slash (the router takes both); else the last,
    /// `unmatched`.
    pub fn route_of(&self, path: &str) -> usize {
        let path = path.strip_suffix('/').unwrap_or(path);
        let templates = &self.routes[..self.routes.len() - 1];
        templates
            .iter()
            .position(|route| route.label.strip_suffix('/').unwrap_or(route.label) == path)
            .unwrap_or(templates.len())
    }

    /// Counts a request to route `route` answered with `status` after `took`.
    pub fn record(&self, route: usize, status: u16, took: Duration) {
        let route = &self.routes[route];
        let slot = STATUSES
            .iter()
            .position(|&known| known == status)
            .unwrap_or(STATUSES.len());
        route.statuses[slot].fetch_add(1, Ordering::Relaxed);
        route.duration.observe(took);
    }

    fn render(&self, out: &mut String) {
        metrics::family(
            out,
            "jwtd_http_requests_total",
            "counter",
            "HTTP requests by route template and status.",
        );
        for route in &self.routes {
            for (i, count) in route.statuses.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let status = STATUSES.get(i).map_or("other".to_owned(), u16::to_string);
                let _ = writeln!(
                    out,
                    "jwtd_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                    route.label
                );
            }
        }
        metrics::family(
            out,
            "jwtd_http_request_duration_seconds",
            "histogram",
            "Time from a request's head to its response, by route template.",
        );
        for route in &self.routes {
            let labels = format!("route=\"{}\",", route.label);
            route
                .duration
                .render(out, "jwtd_http_request_duration_seconds", &labels);
        }
    }
}

/// The router of the `metrics_bind` listener: `GET /metrics`, and the
/// probes, which stay reachable there while the API listener drains.
pub fn metrics_router(app: AppState, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/livez", get(super::livez))
        .route("/healthz", get(super::livez))
        .route("/readyz", get(super::readyz))
        .fallback(super::not_found)
        .layer(Extension(http))
        .with_state(app)
}

async fn scrape(
    State(app): State<AppState>,
    Extension(http): Extension<Arc<HttpMetrics>>,
) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    METRICS.render(&mut out);
    http.render(&mut out);
    render_gauges(&app, app.clock.now(), &mut out);
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], out).into_response()
}

/// The values read at scrape time: keys, store freshness, build.
fn render_gauges(app: &AppState, now: UnixTime, out: &mut String) {
    let keys = app.keys.current();
    let census = keys.census(now);
    metrics::family(out, "jwtd_keys", "gauge", "Published keys by state.");
    for (state, count) in [
        ("next", census.next),
        ("active", census.active),
        ("retiring", census.retiring),
    ] {
        let _ = writeln!(out, "jwtd_keys{{state=\"{state}\"}} {count}");
    }
    metrics::family(
        out,
        "jwtd_signing_key_age_seconds",
        "gauge",
        "How long the key signing now has been signing.",
    );
    let age = census.signing_since.map_or(0, |since| (now - since).max(0));
    let _ = writeln!(out, "jwtd_signing_key_age_seconds {age}");
    metrics::family(
        out,
        "jwtd_next_key_published_seconds",
        "gauge",
        "How long the next key has been in the JWKS (0: no next key).",
    );
    let lead = census.next_published_at.map_or(0, |at| (now - at).max(0));
    let _ = writeln!(out, "jwtd_next_key_published_seconds {lead}");
    metrics::family(
        out,
        "jwtd_store_sync_age_seconds",
        "gauge",
        "Seconds since the database last answered the background work.",
    );
    match app.health.store_silent_for() {
        Some(silence) => {
            let _ = writeln!(
                out,
                "jwtd_store_sync_age_seconds {:.3}",
                silence.as_secs_f64()
            );
        }
        None => {
            let _ = writeln!(out, "jwtd_store_sync_age_seconds +Inf");
        }
    }
    metrics::family(out, "jwtd_build_info", "gauge", "The running version.");
    let _ = writeln!(
        out,
        "jwtd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}
