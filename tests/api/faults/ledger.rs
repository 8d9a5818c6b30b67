//! Talking to a server during and after a fault, and what it acknowledged,
//! to compare with the database afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::PASSWORD;
use crate::db;
use crate::process::Server;

/// The store's SQLite busy timeout (src/store/mod.rs).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest any request may take during a fault.
const ANSWER_DEADLINE: Duration = Duration::from_secs(15);

/// What the server acknowledged, to compare with the database afterwards.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Logins answered 200 (each opens a family and records a token).
    logins: i64,
    /// Refreshes answered 200 (each records the new refresh token).
    refreshes: i64,
    /// Every refresh token answered 200.
    refresh_tokens: Vec<String>,
    /// Requests answered 5xx during a fault.
    pub(super) failures: usize,
    /// The slowest answer during a fault.
    pub(super) slowest: Duration,
}

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub(super) fn new(serve: &Server) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap(),
            base: serve.url(""),
        }
    }

    /// POSTs JSON; the status, the body and how long the answer took.
    pub(super) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value, Duration) {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: no answer: {err}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!("POST {path} answered {status} with a non-JSON body: {text:?}")
        });
        (status, body, started.elapsed())
    }

    pub(super) async fn login(&self, user: &str) -> (StatusCode, Value, Duration) {
        self.post(
            "/api/token/",
            json!({"username": user, "password": PASSWORD}),
        )
        .await
    }

    pub(super) async fn refresh(&self, token: &str) -> (StatusCode, Value, Duration) {
        self.post("/api/token/refresh/", json!({"refresh": token}))
            .await
    }

    pub(super) async fn healthz(&self) -> StatusCode {
        self.http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("healthz answered")
            .status()
    }
}

impl Ledger {
    /// A login that must succeed; returns its refresh token.
    pub(super) async fn login_ok(&mut self, client: &Client, user: &str) -> String {
        let (status, body, _) = client.login(user).await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        self.logins += 1;
        let token = body["refresh"].as_str().expect("refresh token").to_owned();
        self.refresh_tokens.push(token.clone());
        token
    }

    /// A refresh that must succeed; returns the new refresh token.
    pub(super) async fn refresh_ok(&mut self, client: &Client, token: &str) -> String {
        let (status, body, _) = client.refresh(token).await;
        assert_eq!(status, StatusCode::OK, "refresh: {body}");
        self.record_refresh(&body)
    }

    fn record_refresh(&mut self, body: &Value) -> String {
        self.refreshes += 1;
        let token = body["refresh"].as_str().expect("rotated token").to_owned();
        self.refresh_tokens.push(token.clone());
        token
    }

    /// During a fault: a login answered 200 (counted) or a clear 5xx.
    pub(super) async fn login_during_fault(&mut self, client: &Client, user: &str, what: &str) {
        let (status, body, took) = client.login(user).await;
        self.check_fault_answer(what, "login", status, &body, took);
        if status == StatusCode::OK {
            self.logins += 1;
            let token = body["refresh"].as_str().expect("refresh token").to_owned();
            self.refresh_tokens.push(token);
        }
    }

    /// During a fault: a refresh of `current`, which moves on when answered
    /// 200 and stays otherwise.
    pub(super) async fn refresh_during_fault(
        &mut self,
        client: &Client,
        current: &mut String,
        what: &str,
    ) {
        let (status, body, took) = client.refresh(current).await;
        self.check_fault_answer(what, "refresh", status, &body, took);
        if status == StatusCode::OK {
            *current = self.record_refresh(&body);
        }
    }

    #[track_caller]
    fn check_fault_answer(
        &mut self,
        what: &str,
        request: &str,
        status: StatusCode,
        body: &Value,
        took: Duration,
    ) {
        self.slowest = self.slowest.max(took);
        assert!(
            took <= ANSWER_DEADLINE,
            "{what}: a {request} took {took:?}, beyond the busy timeout ({BUSY_TIMEOUT:?})"
        );
        if status.is_server_error() {
            self.failures += 1;
            assert_eq!(
                body,
                &json!({"detail": "Internal server error."}),
                "{what}: a failed {request} answers a clear JSON error"
            );
        } else {
            assert_eq!(
                status,
                StatusCode::OK,
                "{what}: a {request} either works or fails with a 5xx: {body}"
            );
        }
    }
}

/// After a fault: the token whose refreshes failed still refreshes (they
/// left nothing half-written), within 10 s of the fault's end; then many
/// logins and refreshes in a row all work, in the same server process.
pub(super) async fn assert_recovers(
    ledger: &mut Ledger,
    serve: &Server,
    client: &Client,
    user: &str,
    current: &mut String,
    what: &str,
) {
    let started = Instant::now();
    let mut failures = Vec::new();
    loop {
        let (status, body, _) = client.refresh(current).await;
        match status {
            StatusCode::OK => {
                *current = ledger.record_refresh(&body);
                break;
            }
            StatusCode::UNAUTHORIZED => panic!(
                "{what}: after the fault the refresh token whose refreshes failed is refused \
                 ({body}): a failed refresh left a partial write (the token was rotated)"
            ),
            _ => failures.push(format!("{status} {body}")),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: no refresh works within 10 s of the fault's end: {} failed, the last {:?}; \
             server errors since the fault: {:#?}",
            failures.len(),
            failures.last(),
            errors_in(&serve.log())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut broken = Vec::new();
    for i in 0..12 {
        let (status, body, _) = client.login(user).await;
        if status == StatusCode::OK {
            ledger.logins += 1;
            ledger
                .refresh_tokens
                .push(body["refresh"].as_str().expect("refresh").to_owned());
        } else {
            broken.push(format!("login #{i}: {status} {body}"));
        }
        let (status, body, _) = client.refresh(current).await;
        if status == StatusCode::OK {
            *current = ledger.record_refresh(&body);
        } else {
            broken.push(format!("refresh #{i}: {status} {body}"));
        }
    }
    assert!(
        broken.is_empty(),
        "{what}: the server did not recover after the fault ended ({} of 24 requests failed): \
         {broken:#?}; server errors: {:#?}",
        broken.len(),
        errors_in(&serve.log())
    );
}

/// The distinct error lines of a server log, without their timestamps.
fn errors_in(log: &[String]) -> Vec<String> {
    let mut errors: Vec<String> = Vec::new();
    for line in log
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
    {
        let text = line
            .split_once("Z ")
            .map_or(line.as_str(), |(_, rest)| rest.trim());
        if !errors.iter().any(|e| e == text) {
            errors.push(text.to_owned());
        }
    }
    errors
}

/// The database after a fault: intact, and holding exactly what was
/// acknowledged: one family and one token per login, one token per refresh.
pub(super) async fn assert_database_matches(database: &Path, ledger: &Ledger, what: &str) {
    let pool = db::open(database).await;
    assert_eq!(
        db::integrity_check(&pool).await,
        "ok",
        "{what}: integrity_check"
    );
    let families = db::count(&pool, "SELECT COUNT(*) FROM token_families").await;
    let outstanding = db::count(&pool, "SELECT COUNT(*) FROM outstanding_tokens").await;
    let jtis: std::collections::HashSet<String> =
        db::outstanding_jtis(&pool).await.into_iter().collect();
    pool.close().await;
    assert_eq!(
        families, ledger.logins,
        "{what}: one family per login answered 200 and none for a failed one"
    );
    assert_eq!(
        outstanding,
        ledger.logins + ledger.refreshes,
        "{what}: one recorded token per login and per refresh answered 200, none for a failed one"
    );
    for token in &ledger.refresh_tokens {
        let jti = crate::helpers::claims_of(token)["jti"]
            .as_str()
            .expect("jti")
            .to_owned();
        assert!(
            jtis.contains(&jti),
            "{what}: refresh token {jti} was answered 200 but is not recorded"
        );
    }
}
