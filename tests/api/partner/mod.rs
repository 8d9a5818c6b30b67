//! Issuer and partner together, on real sockets: a jwtd issuer from the
//! `TestApp` and, in the same process, a partner service on 127.0.0.1:0
//! that trusts it through `Verifier::from_jwks_url` and the
//! `Authenticated<C>` extractor, exactly as `examples/partner.rs` does.
//!
//! The partner's verifier reads the issuer's manual clock: a test moves
//! time past a cache lifetime or a cooldown with `app.advance`, never by
//! sleeping. A JWKS proxy in front of the issuer counts and records the
//! partner's requests and can hold them, to show what does not wait.
//!
//! - `cache`: rotation, the issuer stopped, unknown kids, held fetches;
//! - `revocation`: a revoked key, and `If-None-Match` revalidation;
//! - `extractor`: the extractor's 401s against the issuer's;
//! - `options`: PEM and JWKS verifiers, refusals, each verify option.

mod cache;
mod extractor;
mod options;
mod revocation;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::config::Config;
use jwtd::testing::{Deployment, SigningKey};
use jwtd::verifier::{Authenticated, RemoteOptions, Verifier, VerifyOptions};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::helpers::{
    Pair, TestApp, access_token_not_valid, header_of, kid_of, poll_until, spawn_app_with,
};

const PASSWORD: &str = "correct horse";
/// How long a wait on an observable condition may last before the test
/// fails (a guard against hanging, not a timing claim).
const WITHIN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The partner service under test, as examples/partner.rs builds it.
// ---------------------------------------------------------------------------

/// The partner's state; the extractor finds the verifier through `FromRef`.
#[derive(Clone)]
struct PartnerState {
    verifier: Arc<Verifier>,
}

impl FromRef<PartnerState> for Arc<Verifier> {
    fn from_ref(state: &PartnerState) -> Self {
        Arc::clone(&state.verifier)
    }
}

/// The claims the partner reads.
#[derive(Deserialize)]
struct Claims {
    user_id: String,
}

async fn hello(Authenticated(claims): Authenticated<Claims>) -> Json<Value> {
    Json(json!({"user_id": claims.user_id}))
}

/// A partner service on 127.0.0.1:0, stopped when dropped.
struct Partner {
    addr: SocketAddr,
    verifier: Arc<Verifier>,
    client: reqwest::Client,
    server: JoinHandle<()>,
}

impl Partner {
    /// A partner trusting `app`'s live JWKS, on `app`'s clock.
    async fn start(app: &TestApp, remote: RemoteOptions) -> Partner {
        let url = app.url("/.well-known/jwks.json");
        Self::serve(Arc::new(remote_verifier(app, &url, remote).await)).await
    }

    async fn serve(verifier: Arc<Verifier>) -> Partner {
        let router = Router::new()
            .route("/hello", get(hello))
            .with_state(PartnerState {
                verifier: verifier.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("partner serves");
        });
        Partner {
            addr,
            verifier,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            server,
        }
    }

    /// `GET /hello` with this `Authorization` header: status, JSON body and
    /// `WWW-Authenticate`.
    async fn hello(&self, authorization: Option<&str>) -> (StatusCode, Value, Option<String>) {
        hello_with(&self.client, self.addr, authorization).await
    }

    /// Panics unless `/hello` accepts `token` as `user_id`'s.
    async fn expect_hello(&self, token: &str, user_id: &str) {
        let (status, body, _) = self.hello(Some(&format!("Bearer {token}"))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the partner refused the token: {body}"
        );
        assert_eq!(body, json!({"user_id": user_id}));
    }

    /// Panics unless `/hello` refuses `token` with simplejwt's "Token is
    /// invalid".
    async fn expect_invalid(&self, token: &str) {
        let (status, body, _) = self.hello(Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body, access_token_not_valid("Token is invalid"));
    }

    /// `GET /hello` for every token, 25 requests at a time.
    async fn hello_all(&self, tokens: Vec<String>) -> Vec<(StatusCode, Value)> {
        let queue = Arc::new(Mutex::new(tokens));
        let mut workers = JoinSet::new();
        for _ in 0..25 {
            let (queue, client, addr) = (queue.clone(), self.client.clone(), self.addr);
            workers.spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let Some(token) = queue.lock().unwrap().pop() else {
                        break answers;
                    };
                    let (status, body, _) =
                        hello_with(&client, addr, Some(&format!("Bearer {token}"))).await;
                    answers.push((status, body));
                }
            });
        }
        let mut all = Vec::new();
        while let Some(answers) = workers.join_next().await {
            all.extend(answers.unwrap());
        }
        all
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hello_with(
    client: &reqwest::Client,
    addr: SocketAddr,
    authorization: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = client.get(format!("http://{addr}/hello"));
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let response = request.send().await.expect("the partner answers");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body, challenge)
}

/// The partner's default options, on the issuer's manual clock.
fn on_clock_of(app: &TestApp) -> VerifyOptions {
    VerifyOptions {
        clock: app.clock.clone(),
        ..VerifyOptions::default()
    }
}

/// A verifier of the JWKS at `url`, on `app`'s clock.
async fn remote_verifier(app: &TestApp, url: &str, remote: RemoteOptions) -> Verifier {
    Verifier::from_jwks_url(url, on_clock_of(app), remote)
        .await
        .expect("the partner fetches the JWKS")
}

/// Verifies `token` `n` times concurrently; all must pass, within [`WITHIN`].
async fn verify_concurrently(verifier: &Arc<Verifier>, token: &str, n: usize) {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (verifier, token) = (verifier.clone(), token.to_owned());
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    let all = async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap().expect("a known kid verifies");
        }
    };
    tokio::time::timeout(WITHIN, all)
        .await
        .expect("known-kid verifications finish without any fetch");
}

// ---------------------------------------------------------------------------
// A JWKS server of our own in front of the issuer: counts requests, records
// the revalidation headers and statuses, and holds requests when told to.
// ---------------------------------------------------------------------------

/// One answered request.
#[derive(Debug, Clone)]
struct Exchange {
    if_none_match: Option<String>,
    status: u16,
    etag: Option<String>,
}

struct ProxyShared {
    upstream: String,
    client: reqwest::Client,
    /// `true` while requests wait for [`JwksProxy::release`].
    held: watch::Sender<bool>,
    requests: AtomicU64,
    exchanges: Mutex<Vec<Exchange>>,
}

struct JwksProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    server: JoinHandle<()>,
}

impl JwksProxy {
    async fn start(app: &TestApp) -> JwksProxy {
        let shared = Arc::new(ProxyShared {
            upstream: app.url("/.well-known/jwks.json"),
            client: reqwest::Client::new(),
            held: watch::Sender::new(false),
            requests: AtomicU64::new(0),
            exchanges: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/jwks.json", get(proxy_jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("proxy serves");
        });
        JwksProxy {
            addr,
            shared,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// From now on, requests wait (unanswered) until [`Self::release`].
    fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Lets held and later requests through.
    fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// Requests received so far, answered or held.
    fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Answered requests, in order.
    fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().unwrap().clone()
    }

    /// Waits until `n` requests have been received.
    async fn wait_for_requests(&self, n: u64) {
        poll_until(WITHIN, &format!("JWKS request #{n}"), async || {
            (self.requests() >= n).then_some(())
        })
        .await;
    }
}

impl Drop for JwksProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Forwards to the issuer once released; a 502 when the issuer is down.
async fn proxy_jwks(State(shared): State<Arc<ProxyShared>>, headers: HeaderMap) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let mut held = shared.held.subscribe();
    let _ = held.wait_for(|held| !*held).await;
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .map(|v| v.to_str().unwrap().to_owned());
    let mut request = shared.client.get(&shared.upstream);
    if let Some(tag) = &if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let (response, etag) = match request.send().await {
        Ok(upstream) => forwarded(upstream).await,
        Err(_) => (AxumStatus::BAD_GATEWAY.into_response(), None),
    };
    shared.exchanges.lock().unwrap().push(Exchange {
        if_none_match,
        status: response.status().as_u16(),
        etag,
    });
    response
}

/// The issuer's answer as the proxy's, and its ETag.
async fn forwarded(upstream: reqwest::Response) -> (Response, Option<String>) {
    let status = AxumStatus::from_u16(upstream.status().as_u16()).unwrap();
    let mut response = status.into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::CONTENT_TYPE] {
        if let Some(value) = upstream.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    let etag = upstream
        .headers()
        .get(header::ETAG)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = upstream.bytes().await.unwrap();
    *response.body_mut() = axum::body::Body::from(body);
    (response, etag)
}

// ---------------------------------------------------------------------------
// The issuer's side, through jwtd::testing and HTTP.
// ---------------------------------------------------------------------------

/// An issuer configured by `configure`, with user alice; returns her id.
async fn issuer_with_alice(configure: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let app = spawn_app_with(configure).await;
    let id = app.add_user("alice", PASSWORD).await;
    (app, id.to_string())
}

/// `keys rotate --now` on the issuer; returns the kid that signs now.
async fn rotate_now(app: &TestApp) -> String {
    let deployment = Deployment::open(&app.config).await.unwrap();
    let kid = deployment
        .rotate_now(app.clock.as_ref())
        .await
        .expect("rotate");
    deployment.close().await;
    kid
}

/// The issuer's active key, to sign tokens with whatever claims.
async fn issuer_signer(app: &TestApp) -> SigningKey {
    let deployment = Deployment::open(&app.config).await.unwrap();
    let signer = deployment.active_signer().await.expect("an active key");
    deployment.close().await;
    signer
}

/// `claims` signed by the issuer's active key, with its header.
async fn signed_by_issuer(app: &TestApp, claims: &Value) -> String {
    let signer = issuer_signer(app).await;
    signer.sign(claims.to_string().as_bytes()).expect("signed")
}

/// Logs alice in until the running issuer signs with `kid` (it reloads its
/// keys within a second).
async fn login_signed_by(app: &TestApp, kid: &str) -> Pair {
    let what = format!("the issuer to sign with {kid}");
    let (pair, _) = poll_until(WITHIN, &what, async || {
        let pair = app.login_ok("alice", PASSWORD).await;
        (kid_of(&pair.access) == kid).then_some(pair)
    })
    .await;
    pair
}

// ---------------------------------------------------------------------------
// Tokens.
// ---------------------------------------------------------------------------

/// 32 random hex digits: a token id, or a kid no key has.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `token` with its header replaced by `header` (signature kept).
fn with_header(token: &str, header: Value) -> String {
    let (_, rest) = token.split_once('.').expect("a JWS");
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// `token` with another kid in its header (signature kept).
fn with_kid(token: &str, kid: &str) -> String {
    let mut header = header_of(token);
    header["kid"] = json!(kid);
    with_header(token, header)
}

/// `token` naming a random kid no key has (signature kept).
fn with_unknown_kid(token: &str) -> String {
    with_kid(token, &random_hex())
}

/// `token` with one payload claim changed (signature kept).
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["user_id"] = json!("999999");
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}
