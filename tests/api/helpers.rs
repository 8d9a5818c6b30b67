//! `TestApp`: a real jwtd on 127.0.0.1:0 with a temporary SQLite file and a
//! manual clock, plus typed request helpers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jwtd::clock::{Clock, ManualClock};
use jwtd::config::{Config, MasterKeySource};
use jwtd::server::Issuer;
use jwtd::testing::Deployment;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::process::{Run, jwtd_with};

/// An access and a refresh token.
#[derive(Debug, Clone)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// A server with the default configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server whose configuration `configure` adjusts.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let mut config = test_config(dir.path());
    configure(&mut config);
    start(config, dir, Arc::new(ManualClock::starting_now())).await
}

/// A server on a SQLite file whatever the run selects (for the tests of
/// SQLite's own behaviour), whose configuration `configure` adjusts.
pub async fn spawn_sqlite_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let mut config = test_config(dir.path());
    config.database_url = format!("sqlite://{}", dir.path().join("jwtd.db").display());
    configure(&mut config);
    start(config, dir, Arc::new(ManualClock::starting_now())).await
}

/// The default configuration, pointed at files inside `dir` (and at a
/// fresh PostgreSQL database when the run selects PostgreSQL).
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        database_url: crate::postgres::database_url_for(dir),
        bind: "127.0.0.1:0".parse().unwrap(),
        master_key: MasterKeySource::File(dir.join("master.key")),
        ..Config::default()
    }
}

async fn start(config: Config, dir: Arc<TempDir>, clock: Arc<ManualClock>) -> TestApp {
    let issuer = Issuer::open(config.clone(), clock.clone() as Arc<dyn Clock>)
        .await
        .expect("issuer starts");
    let listener = issuer.bind().await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        issuer
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        clock,
        config,
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task ends cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database, master
    /// key and clock.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        config.bind = "127.0.0.1:0".parse().unwrap();
        start(config, self.dir.clone(), self.clock.clone()).await
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Adds an active user straight into the database; returns its id.
    pub async fn add_user(&self, username: &str, password: &str) -> i64 {
        self.add_user_with(username, password, true).await
    }

    /// Adds a user, active or not; returns its id.
    pub async fn add_user_with(&self, username: &str, password: &str, active: bool) -> i64 {
        let deployment = Deployment::open(&self.config).await.unwrap();
        let id = deployment
            .add_user(username, password, active, self.clock.now())
            .await
            .unwrap();
        deployment.close().await;
        id
    }

    /// POSTs a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs raw bytes with an optional content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("request sent")
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /api/token/`.
    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/token/",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Logs in and returns the pair; panics unless it is a 200.
    pub async fn login_ok(&self, username: &str, password: &str) -> Pair {
        let body = expect_json(self.login(username, password).await, StatusCode::OK).await;
        Pair {
            access: body["access"].as_str().expect("access token").to_owned(),
            refresh: body["refresh"].as_str().expect("refresh token").to_owned(),
        }
    }

    /// `POST /api/token/refresh/`.
    pub async fn refresh(&self, refresh: &str) -> Response {
        self.post_json("/api/token/refresh/", &json!({"refresh": refresh}))
            .await
    }

    /// `POST /api/token/verify/`.
    pub async fn verify(&self, token: &str) -> Response {
        self.post_json("/api/token/verify/", &json!({"token": token}))
            .await
    }

    /// `GET /api/me/` with `Authorization: Bearer <token>`.
    pub async fn me(&self, token: &str) -> Response {
        self.client
            .get(self.url("/api/me/"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /.well-known/jwks.json`, as JSON; panics unless 200.
    pub async fn jwks(&self) -> Value {
        expect_json(self.get("/.well-known/jwks.json").await, StatusCode::OK).await
    }

    /// Runs `jwtd ARGS` against this server's database and master key,
    /// from a fresh temporary directory, off the async runtime.
    pub async fn jwtd(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let database_url = self.config.database_url.clone();
        let master_key = self.dir.path().join("master.key").display().to_string();
        let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let cwd = tempfile::tempdir().expect("temporary directory");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            jwtd_with(
                cwd.path(),
                &args,
                &[
                    ("JWTD_DATABASE_URL", &database_url),
                    ("JWTD_MASTER_KEY_FILE", &master_key),
                ],
                stdin.as_deref(),
            )
        })
        .await
        .expect("the jwtd runner")
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.config.database_path()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts the status and returns the JSON body.
#[track_caller]
pub fn assert_status(response: &Response, status: StatusCode) {
    assert_eq!(
        response.status(),
        status,
        "unexpected status for {}",
        response.url()
    );
}

/// Asserts the status and returns the body as JSON.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let url = response.url().clone();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status for {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("body of {url} is not JSON: {text}"))
}

/// Decodes a token's payload without verifying it (to inspect claims).
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// Decodes a token's header without verifying it.
pub fn header_of(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// The `kid` of a token's header.
pub fn kid_of(token: &str) -> String {
    header_of(token)["kid"]
        .as_str()
        .expect("a kid in the header")
        .to_owned()
}

/// Asks `probe` every 20 ms until it finds something; panics with `what`
/// after `within`. Returns what it found and how long that took.
pub async fn poll_until<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> (T, Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = probe().await {
            return (found, started.elapsed());
        }
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// simplejwt's 401 body for a token a protected view refuses, carrying
/// `message` ("Token is expired", "Token has wrong type"…).
pub fn access_token_not_valid(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}
