//! The audit log, checked on a real `jwtd serve` child
//! at `RUST_LOG=debug` and at `RUST_LOG=trace`, with all of its stderr and
//! all the output of every CLI command captured. Every audited action (each
//! login success, failure and throttling, a refresh-token reuse and the
//! family it revokes, each key created, activated, retired and revoked, each
//! logout-all) must leave exactly one structured event, named by its
//! `event=` field; and no captured line may carry a token issued during the
//! run (nor its payload or signature part), a password, the master key, any
//! 40-character base64 (or hex) window of a private key, or `PRIVATE KEY`.
//!
//! The `child` and `db` modules below are shared with `faults.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use jwtd::config::MasterKeySource;
use jwtd::keys::MasterKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use self::child::{Serve, run_jwtd};

/// Running the `jwtd` binary as a child process: one-shot commands and a
/// `serve` guard that captures every line of its stderr and kills it when
/// dropped.
pub(crate) mod child {
    use std::path::Path;
    use std::process::{Child, ExitStatus};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// How long a graceful stop may take before the child is killed.
    const STOP_DEADLINE: Duration = Duration::from_secs(15);

    pub(crate) const SIGINT: i32 = 2;
    pub(crate) const SIGKILL: i32 = 9;
    pub(crate) const SIGTERM: i32 = 15;

    unsafe extern "C" {
        /// POSIX `kill(2)`, from the C library std already links.
        fn kill(pid: i32, sig: i32) -> i32;
    }

    /// Sends `sig` to the process `pid` (a child this test started).
    pub(crate) fn signal(pid: u32, sig: i32) {
        let pid = i32::try_from(pid).expect("a pid fits in i32");
        // SAFETY: kill(2) only reads its two integer arguments.
        unsafe {
            kill(pid, sig);
        }
    }

    use crate::process::{Logged, spawn_logged, wait_listening};
    pub(crate) use crate::process::{Run as Output, jwtd_with as run_jwtd};

    /// A `jwtd serve` child. Every line of its stderr is kept; it is killed
    /// (SIGKILL) and reaped when dropped.
    pub(crate) struct Serve {
        child: Child,
        addr: Option<String>,
        log: Arc<Mutex<Vec<String>>>,
        reader: Option<JoinHandle<()>>,
    }

    impl Serve {
        /// Starts `jwtd serve` on 127.0.0.1:0 in `dir` without waiting.
        pub(crate) fn spawn(dir: &Path, envs: &[(&str, &str)]) -> Serve {
            let mut command = crate::process::jwtd_command(dir, ["serve"]);
            command
                .env("JWTD_BIND", "127.0.0.1:0")
                .envs(envs.iter().copied());
            let Logged { child, log, reader } = spawn_logged(command);
            Serve {
                child,
                addr: None,
                log,
                reader: Some(reader),
            }
        }

        /// Starts `jwtd serve` and waits (bounded) until it listens.
        pub(crate) fn start(dir: &Path, envs: &[(&str, &str)], deadline: Duration) -> Serve {
            let mut serve = Serve::spawn(dir, envs);
            if let Err(why) = serve.wait_listening(deadline) {
                panic!("{why}; stderr: {:#?}", serve.log());
            }
            serve
        }

        /// Waits until the server logs its address, it exits, or `deadline`.
        pub(crate) fn wait_listening(&mut self, deadline: Duration) -> Result<String, String> {
            let addr = wait_listening(&mut self.child, &self.log, deadline)?;
            self.addr = Some(addr.clone());
            Ok(addr)
        }

        /// `http://ADDR{path}`.
        pub(crate) fn url(&self, path: &str) -> String {
            format!(
                "http://{}{}",
                self.addr.as_deref().expect("the server listens"),
                path
            )
        }

        pub(crate) fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Every stderr line so far.
        pub(crate) fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }

        /// Waits (bounded) for a stderr line that satisfies `pred`.
        pub(crate) fn wait_for_line(
            &self,
            timeout: Duration,
            pred: impl Fn(&str) -> bool,
        ) -> Option<String> {
            let started = Instant::now();
            loop {
                if let Some(line) = self.log().into_iter().find(|line| pred(line)) {
                    return Some(line);
                }
                if started.elapsed() > timeout {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Waits up to `timeout` for the child to exit.
        pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
            let started = Instant::now();
            loop {
                if let Some(status) = self.child.try_wait().expect("waiting for jwtd serve") {
                    return Some(status);
                }
                if started.elapsed() > timeout {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// SIGTERM, then waits for a graceful exit (SIGKILL past a deadline)
        /// and for the last stderr line; returns the exit status and the
        /// whole stderr.
        pub(crate) fn stop(mut self) -> (ExitStatus, Vec<String>) {
            signal(self.pid(), SIGTERM);
            let status = match self.wait_exit(STOP_DEADLINE) {
                Some(status) => status,
                None => {
                    let _ = self.child.kill();
                    let status = self.child.wait().expect("reaping jwtd serve");
                    panic!(
                        "jwtd serve ignored SIGTERM for {STOP_DEADLINE:?} ({status}); stderr: {:#?}",
                        self.log()
                    );
                }
            };
            self.finish_reading();
            (status, self.log())
        }

        /// SIGKILL now; returns the whole stderr.
        pub(crate) fn kill9(mut self) -> Vec<String> {
            signal(self.pid(), SIGKILL);
            let _ = self.child.wait();
            self.finish_reading();
            self.log()
        }

        fn finish_reading(&mut self) {
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
    }

    impl Drop for Serve {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reading the SQLite file directly, as an operator would after a fault.
pub(crate) mod db {
    use std::path::Path;
    use std::time::Duration;

    use sqlx::Row;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

    /// One signing-key row.
    #[derive(Debug, Clone)]
    pub(crate) struct KeyRow {
        pub(crate) kid: String,
        pub(crate) state: String,
        pub(crate) public_jwk: String,
        pub(crate) sealed_private: Option<Vec<u8>>,
        pub(crate) created_at: i64,
        pub(crate) activated_at: Option<i64>,
        pub(crate) deactivated_at: Option<i64>,
        pub(crate) retired_at: Option<i64>,
        pub(crate) revoked_at: Option<i64>,
    }

    /// A small pool on an existing database file (never created here).
    pub(crate) async fn open(path: &Path) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10));
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap_or_else(|err| panic!("opening {}: {err}", path.display()))
    }

    /// `PRAGMA integrity_check`'s answer, one string.
    pub(crate) async fn integrity_check(pool: &SqlitePool) -> String {
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(pool)
            .await
            .expect("integrity_check runs");
        rows.iter()
            .map(|row| row.get::<String, _>(0))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every signing key.
    pub(crate) async fn keys(pool: &SqlitePool) -> Vec<KeyRow> {
        let rows = sqlx::query(
            "SELECT kid, state, public_jwk, sealed_private, created_at, activated_at, \
             deactivated_at, retired_at, revoked_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(pool)
        .await
        .expect("signing keys readable");
        rows.iter()
            .map(|row| KeyRow {
                kid: row.get("kid"),
                state: row.get("state"),
                public_jwk: row.get("public_jwk"),
                sealed_private: row.get("sealed_private"),
                created_at: row.get("created_at"),
                activated_at: row.get("activated_at"),
                deactivated_at: row.get("deactivated_at"),
                retired_at: row.get("retired_at"),
                revoked_at: row.get("revoked_at"),
            })
            .collect()
    }

    /// One integer from a query.
    pub(crate) async fn count(pool: &SqlitePool, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// Every recorded outstanding token id.
    pub(crate) async fn outstanding_jtis(pool: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT jti FROM outstanding_tokens")
            .fetch_all(pool)
            .await
            .expect("outstanding tokens readable")
    }
}

// --- log lines and events ----------------------------------------------------

/// One structured event: its `event=` name, every `key=value` field of the
/// line (values unquoted) and where it was captured.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    fields: BTreeMap<String, String>,
    source: String,
    line: String,
}

impl Event {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The `key=value` fields of a tracing-subscriber `fmt` line. Quoted values
/// (`event="login_failed"`) are unescaped; bare values end at a space.
fn fields_of(line: &str) -> BTreeMap<String, String> {
    let bytes = line.as_bytes();
    let mut fields = BTreeMap::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_.".contains(&bytes[i])) {
            i += 1;
        }
        if i > start && i < bytes.len() && bytes[i] == b'=' {
            let key = line[start..i].to_owned();
            i += 1;
            let mut value = Vec::new();
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if i + 1 < bytes.len() => {
                            value.push(bytes[i + 1]);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        byte => {
                            value.push(byte);
                            i += 1;
                        }
                    }
                }
            } else {
                while i < bytes.len() && bytes[i] != b' ' {
                    value.push(bytes[i]);
                    i += 1;
                }
            }
            fields
                .entry(key)
                .or_insert_with(|| String::from_utf8_lossy(&value).into_owned());
        } else {
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
        }
    }
    fields
}

/// Every event in `lines`.
fn events_in(source: &str, lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter_map(|line| {
            let fields = fields_of(line);
            let name = fields.get("event")?.clone();
            Some(Event {
                name,
                fields,
                source: source.to_owned(),
                line: line.clone(),
            })
        })
        .collect()
}

#[test]
fn the_field_parser_reads_tracing_fmt_lines() {
    let line = r#"2026-01-01T00:00:00.000000Z  WARN jwtd::keys::lifecycle: event="key_revoked" kid="a\"b" replaces=Some("x") tokens=3"#;
    let fields = fields_of(line);
    assert_eq!(fields["event"], "key_revoked");
    assert_eq!(fields["kid"], "a\"b");
    assert_eq!(fields["replaces"], "Some(\"x\")");
    assert_eq!(fields["tokens"], "3");
    assert!(fields_of("INFO jwtd::cli: jwtd listening addr=127.0.0.1:1").contains_key("addr"));
}

// --- secrets -----------------------------------------------------------------

/// What must never appear in a log line, each with a label to report.
#[derive(Default)]
struct Secrets {
    /// Needles of any length, searched with `contains`.
    plain: Vec<(String, String)>,
    /// 40-character windows of key material, looked up by window.
    windows: HashMap<String, String>,
}

/// The length of a key-material window, in characters.
const WINDOW: usize = 40;

impl Secrets {
    fn add(&mut self, label: impl Into<String>, needle: impl Into<String>) {
        let needle = needle.into();
        assert!(needle.len() >= 8, "needle too short to search for");
        self.plain.push((label.into(), needle));
    }

    /// A token, its payload part and its signature part.
    fn add_token(&mut self, what: &str, token: &str) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{what} is a compact JWS");
        self.add(format!("{what} (whole token)"), token);
        self.add(format!("{what} (payload part)"), parts[1]);
        self.add(format!("{what} (signature part)"), parts[2]);
    }

    /// Every 30-byte window of a PKCS#8 private key, in standard and
    /// URL-safe base64 (40 characters) and hex (40 characters of 20
    /// bytes), at every byte offset, except windows that lie wholly inside
    /// the published public values (an RSA modulus, an EC point), which may
    /// be logged.
    fn add_private_key(&mut self, kid: &str, pkcs8: &[u8], public: &[Vec<u8>]) {
        let public_ranges: Vec<(usize, usize)> = public
            .iter()
            .filter(|part| part.len() >= 16)
            .filter_map(|part| {
                pkcs8
                    .windows(part.len())
                    .position(|w| w == part.as_slice())
                    .map(|at| (at, at + part.len()))
            })
            .collect();
        let public_only = |from: usize, to: usize| {
            public_ranges
                .iter()
                .any(|&(start, end)| start <= from && to <= end)
        };
        let label = format!("private key {kid}");
        for from in 0..pkcs8.len() {
            if from + 30 <= pkcs8.len() && !public_only(from, from + 30) {
                let bytes = &pkcs8[from..from + 30];
                for text in [STANDARD.encode(bytes), URL_SAFE.encode(bytes)] {
                    self.windows.insert(text, label.clone());
                }
            }
            if from + 20 <= pkcs8.len() && !public_only(from, from + 20) {
                let hex: String = pkcs8[from..from + 20]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                self.windows.insert(hex.to_uppercase(), label.clone());
                self.windows.insert(hex, label.clone());
            }
        }
    }

    /// Every (label, line) where a secret appears.
    fn leaks(&self, lines: &[(String, String)]) -> Vec<String> {
        let mut found = Vec::new();
        for (source, line) in lines {
            for (label, needle) in &self.plain {
                if line.contains(needle.as_str()) {
                    found.push(format!("{label} in {source}: {line}"));
                }
            }
            if line.contains("PRIVATE KEY") {
                found.push(format!("\"PRIVATE KEY\" in {source}: {line}"));
            }
            let bytes = line.as_bytes();
            let mut reported = HashSet::new();
            for start in 0..bytes.len().saturating_sub(WINDOW - 1) {
                let Some(window) = line.get(start..start + WINDOW) else {
                    continue;
                };
                if let Some(label) = self.windows.get(window)
                    && reported.insert(label.clone())
                {
                    found.push(format!(
                        "{label} (a {WINDOW}-char window) in {source}: {line}"
                    ));
                }
            }
        }
        found
    }
}

/// The public values of a stored key, as bytes, from its `public_jwk`.
fn public_parts(public_jwk: &str) -> Vec<Vec<u8>> {
    let jwk: Value = serde_json::from_str(public_jwk).expect("public_jwk is JSON");
    ["n", "e", "x", "y"]
        .iter()
        .filter_map(|member| jwk[member].as_str())
        .map(|text| URL_SAFE_NO_PAD.decode(text).expect("base64url member"))
        .collect()
}

/// kid → (sealed private key, public JWK), as first seen.
type SealedKeys = HashMap<String, (Vec<u8>, String)>;

/// Copies every sealed private key it sees, every 100 ms, until stopped, so
/// keys can be checked even after retirement or revocation erased them.
struct KeySnapshots {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<SealedKeys>>,
}

impl KeySnapshots {
    fn start(database: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let (task_stop, task_seen, path) = (stop.clone(), seen.clone(), database.to_owned());
        let task = tokio::spawn(async move {
            let pool = db::open(&path).await;
            loop {
                // One last look after the stop: the server has exited by then.
                let stopping = task_stop.load(Ordering::SeqCst);
                for key in db::keys(&pool).await {
                    if let Some(sealed) = key.sealed_private {
                        task_seen
                            .lock()
                            .unwrap()
                            .entry(key.kid)
                            .or_insert((sealed, key.public_jwk));
                    }
                }
                if stopping {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            pool.close().await;
        });
        Self { stop, task, seen }
    }

    /// Takes a last look and stops; returns kid → (sealed private key,
    /// public JWK).
    async fn finish(self) -> SealedKeys {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("key snapshots task");
        self.seen.lock().unwrap().clone()
    }
}

// --- the scenario ------------------------------------------------------------

const ALICE_PASSWORD: &str = "alice-Pa55word-Qx7v-audit";
const CAROL_PASSWORD: &str = "carol-Pa55word-Zr4m-audit";
const WRONG_PASSWORD: &str = "wrong-Pa55word-Hk2p-audit";
const GUESS_PASSWORD: &str = "guess-Pa55word-Lw9d-audit";
const CAROL_WRONG: &str = "carol-wrong-Nq3s-audit";

/// Counts of what the scenario did, to compare with the events.
#[derive(Debug, Default)]
struct Done {
    logins_ok: usize,
    logins_failed: usize,
    logins_throttled: usize,
    reuses: usize,
}

struct Scenario {
    dir: tempfile::TempDir,
    envs: Vec<(&'static str, String)>,
    client: reqwest::Client,
    /// (source, line) of every CLI command's output.
    cli_lines: Vec<(String, String)>,
    secrets: Secrets,
    done: Done,
}

impl Scenario {
    fn envs(&self) -> Vec<(&str, &str)> {
        self.envs.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// Runs a CLI command with the scenario's settings; keeps its output.
    fn cli(&mut self, args: &[&str], stdin: Option<&str>) -> child::Output {
        let envs = self.envs();
        let output = run_jwtd(self.dir.path(), args, &envs, stdin).ok();
        let source = format!("`jwtd {}`", args.join(" "));
        for line in output.lines() {
            self.cli_lines.push((source.clone(), line));
        }
        output
    }

    async fn post(&self, serve: &Serve, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(serve.url(path))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Logs in; counts the outcome; keeps the tokens as secrets.
    async fn login(&mut self, serve: &Serve, path: &str, user: &str, password: &str) -> Value {
        let (status, body) = self
            .post(serve, path, json!({"username": user, "password": password}))
            .await;
        match status {
            StatusCode::OK => {
                self.done.logins_ok += 1;
                for (name, token) in body.as_object().expect("token object") {
                    self.secrets
                        .add_token(&format!("{name} token"), token.as_str().expect("a token"));
                }
            }
            StatusCode::UNAUTHORIZED => self.done.logins_failed += 1,
            StatusCode::TOO_MANY_REQUESTS => self.done.logins_throttled += 1,
            other => panic!("login {user}: unexpected {other}: {body}"),
        }
        body
    }

    /// POSTs and expects `status`; keeps any token in the answer.
    async fn expect(&mut self, serve: &Serve, path: &str, body: Value, want: StatusCode) -> Value {
        let (status, body) = self.post(serve, path, body).await;
        assert_eq!(status, want, "POST {path}: {body}");
        if let Some(fields) = body.as_object() {
            for (name, value) in fields {
                if let Some(token) = value.as_str().filter(|t| t.split('.').count() == 3) {
                    self.secrets.add_token(&format!("{name} token"), token);
                }
            }
        }
        body
    }
}

/// Runs every audited action against a `jwtd serve` child logging at
/// `level`, then checks the events and greps every captured line.
async fn audit_scenario(level: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = dir.path().join("jwtd.db");
    let envs = vec![
        ("RUST_LOG", level.to_owned()),
        ("JWTD_KEY_ROTATION_INTERVAL", "3s".to_owned()),
        ("JWTD_KEY_PREPUBLISH", "1s".to_owned()),
        ("JWTD_JWKS_MAX_AGE", "1s".to_owned()),
        ("JWTD_ACCESS_TOKEN_LIFETIME", "2s".to_owned()),
        ("JWTD_REFRESH_TOKEN_LIFETIME", "2s".to_owned()),
        ("JWTD_SLIDING_TOKEN_LIFETIME", "2s".to_owned()),
        ("JWTD_SLIDING_TOKEN_REFRESH_LIFETIME", "2s".to_owned()),
        ("JWTD_LOGIN_FAILURES_PER_USER", "2".to_owned()),
    ];
    let mut s = Scenario {
        dir,
        envs,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        cli_lines: Vec::new(),
        secrets: Secrets::default(),
        done: Done::default(),
    };
    let serve = Serve::start(s.dir.path(), &s.envs(), Duration::from_secs(30));
    let snapshots = KeySnapshots::start(&database);

    // Users, through the CLI (the password on stdin).
    s.cli(
        &["users", "add", "alice", "--password-stdin"],
        Some(&format!("{ALICE_PASSWORD}\n")),
    );
    s.cli(
        &["users", "add", "carol", "--password-stdin"],
        Some(&format!("{CAROL_PASSWORD}\n")),
    );

    // Failed logins: an unknown user, a wrong password; then a success.
    s.login(&serve, "/api/token/", "nobody-here", GUESS_PASSWORD)
        .await;
    s.login(&serve, "/api/token/", "alice", WRONG_PASSWORD)
        .await;
    let first = s
        .login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    let first_refresh = first["refresh"].as_str().expect("refresh").to_owned();

    // Refresh, then reuse of the rotated-away token: the family is revoked.
    let refreshed = s
        .expect(
            &serve,
            "/api/token/refresh/",
            json!({"refresh": first_refresh}),
            StatusCode::OK,
        )
        .await;
    assert!(refreshed["refresh"].is_string(), "rotation is on");
    let reuse = s
        .expect(
            &serve,
            "/api/token/refresh/",
            json!({"refresh": first_refresh}),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(reuse["detail"], "Token is blacklisted");
    s.done.reuses += 1;

    // Blacklist.
    let pair = s
        .login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    s.expect(
        &serve,
        "/api/token/blacklist/",
        json!({"refresh": pair["refresh"]}),
        StatusCode::OK,
    )
    .await;

    // Logout-all over HTTP, then through the CLI.
    let pair = s
        .login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    let access = pair["access"].as_str().expect("access").to_owned();
    let response = s
        .client
        .post(serve.url("/api/token/logout-all/"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("logout-all sent");
    assert_eq!(response.status(), StatusCode::OK, "logout-all over HTTP");
    s.cli(&["users", "logout-all", "alice"], None);

    // Sliding login and refresh.
    let sliding = s
        .login(&serve, "/api/token/sliding/", "alice", ALICE_PASSWORD)
        .await;
    s.expect(
        &serve,
        "/api/token/sliding/refresh/",
        json!({"token": sliding["token"]}),
        StatusCode::OK,
    )
    .await;

    // Throttling: two failures for carol, then a 429.
    s.login(&serve, "/api/token/", "carol", CAROL_WRONG).await;
    s.login(&serve, "/api/token/", "carol", CAROL_WRONG).await;
    s.login(&serve, "/api/token/", "carol", CAROL_PASSWORD)
        .await;
    assert_eq!(
        s.done.logins_throttled, 1,
        "carol's third login is throttled"
    );

    // Keys: a forced rotation, then the revocation of the active key.
    s.cli(&["keys", "rotate", "--now"], None);
    let listed: Value =
        serde_json::from_str(&s.cli(&["keys", "list", "--json"], None).stdout).expect("JSON");
    let active = listed
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["state"] == "active")
        .expect("an active key")["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    s.cli(&["keys", "revoke", &active], None);

    // A login signed by the key that took over, then the retirement of the
    // key `rotate --now` retired (its tokens live 2 s, plus a 2 s margin).
    s.login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    let retired = serve.wait_for_line(Duration::from_secs(20), |line| {
        fields_of(line).get("event").map(String::as_str) == Some("key_retired")
    });
    assert!(
        retired.is_some(),
        "no key_retired event within 20 s; stderr: {:#?}",
        serve.log()
    );

    // Close the client's idle connections so the graceful stop is quick.
    s.client = reqwest::Client::new();
    let (status, server_lines) = serve.stop();
    assert!(status.success(), "jwtd serve exits 0 on SIGTERM: {status}");
    let sealed = snapshots.finish().await;

    // Everything captured, and the final key set.
    let pool = db::open(&database).await;
    let keys = db::keys(&pool).await;
    pool.close().await;
    let mut captured: Vec<(String, String)> = server_lines
        .iter()
        .map(|line| ("`jwtd serve`".to_owned(), line.clone()))
        .collect();
    captured.extend(s.cli_lines.iter().cloned());

    let mut problems = Vec::new();
    check_events(&server_lines, &s.cli_lines, &keys, &s.done, &mut problems);

    // Secrets: passwords, the master key, every private key seen.
    for password in [
        ALICE_PASSWORD,
        CAROL_PASSWORD,
        WRONG_PASSWORD,
        GUESS_PASSWORD,
        CAROL_WRONG,
    ] {
        s.secrets.add(format!("password {password:?}"), password);
    }
    let master_path = s.dir.path().join("keys/master.key");
    let master_text = std::fs::read_to_string(&master_path).expect("keys/master.key");
    let master_text = master_text.trim();
    let master_bytes = STANDARD.decode(master_text).expect("master key is base64");
    s.secrets.add("master key (base64)", master_text);
    s.secrets
        .add("master key (base64url)", URL_SAFE.encode(&master_bytes));
    let master_hex: String = master_bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.secrets.add("master key (hex)", master_hex);
    let master = MasterKey::load(&MasterKeySource::File(master_path)).expect("master key loads");
    for key in &keys {
        if !sealed.contains_key(&key.kid) {
            problems.push(format!(
                "key {} ({}) was never seen with its private key: the leak check would miss it",
                key.kid, key.state
            ));
        }
    }
    for (kid, (sealed, public_jwk)) in &sealed {
        let pkcs8 = master.open(kid, sealed).expect("stored key decrypts");
        s.secrets
            .add_private_key(kid, &pkcs8, &public_parts(public_jwk));
    }
    // The check itself must bite: a token, and a private key as PEM lines.
    let (kid, (sealed_key, _)) = sealed.iter().next().expect("a private key was seen");
    let pem_body = STANDARD.encode(master.open(kid, sealed_key).expect("decrypts").as_slice());
    let planted: Vec<(String, String)> = pem_body
        .as_bytes()
        .chunks(64)
        .map(|line| {
            (
                "planted".to_owned(),
                String::from_utf8_lossy(line).into_owned(),
            )
        })
        .chain([("planted".to_owned(), format!("token={first_refresh}"))])
        .collect();
    let caught = s.secrets.leaks(&planted);
    assert!(
        caught.iter().any(|l| l.contains("private key"))
            && caught.iter().any(|l| l.contains("refresh token")),
        "the leak check misses planted secrets: {caught:#?}"
    );
    let leaks = s.secrets.leaks(&captured);
    for leak in leaks.iter().take(20) {
        problems.push(format!("LEAK: {leak}"));
    }

    eprintln!(
        "audit at {level}: {} server lines, {} CLI lines, {} keys, {} secret needles + {} key windows",
        server_lines.len(),
        s.cli_lines.len(),
        keys.len(),
        s.secrets.plain.len(),
        s.secrets.windows.len()
    );
    assert!(
        problems.is_empty(),
        "audit log at RUST_LOG={level}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Exactly one event per audited action.
fn check_events(
    server_lines: &[String],
    cli_lines: &[(String, String)],
    keys: &[db::KeyRow],
    done: &Done,
    problems: &mut Vec<String>,
) {
    let mut events = events_in("`jwtd serve`", server_lines);
    for (source, line) in cli_lines {
        events.extend(events_in(source, std::slice::from_ref(line)));
    }
    let named = |name: &str| -> Vec<&Event> { events.iter().filter(|e| e.name == name).collect() };
    let mut expect_count = |name: &str, want: usize| {
        let got = named(name);
        if got.len() != want {
            problems.push(format!(
                "{want} `{name}` event(s) expected, {} found: {:#?}",
                got.len(),
                got.iter().map(|e| &e.line).collect::<Vec<_>>()
            ));
        }
    };
    expect_count("login_succeeded", done.logins_ok);
    expect_count("login_failed", done.logins_failed);
    expect_count("login_throttled", done.logins_throttled);
    expect_count("refresh_reuse_detected", done.reuses);
    expect_count("family_revoked", done.reuses);
    expect_count("logout_all", 2);

    for event in named("login_succeeded") {
        for field in ["user_id", "username"] {
            if event.field(field).is_none() {
                problems.push(format!("login_succeeded without `{field}`: {}", event.line));
            }
        }
    }
    for event in named("login_failed")
        .into_iter()
        .chain(named("login_throttled"))
    {
        if event.field("username").is_none() {
            problems.push(format!("{} without `username`: {}", event.name, event.line));
        }
    }
    let reuse_families: Vec<_> = named("refresh_reuse_detected")
        .iter()
        .filter_map(|e| e.field("family"))
        .collect();
    let revoked_families: Vec<_> = named("family_revoked")
        .iter()
        .filter_map(|e| e.field("family"))
        .collect();
    if reuse_families.is_empty() || reuse_families != revoked_families {
        problems.push(format!(
            "refresh_reuse_detected and family_revoked name different families: {reuse_families:?} / {revoked_families:?}"
        ));
    }
    let mut vias: Vec<_> = named("logout_all")
        .iter()
        .map(|e| {
            (
                e.field("via"),
                e.field("user_id").is_some(),
                e.source.clone(),
            )
        })
        .collect();
    vias.sort();
    let want_vias = vec![
        (
            Some("cli"),
            true,
            "`jwtd users logout-all alice`".to_owned(),
        ),
        (Some("http"), true, "`jwtd serve`".to_owned()),
    ];
    if vias != want_vias {
        problems.push(format!(
            "logout_all events: {vias:?}, expected {want_vias:?}"
        ));
    }

    // Keys: the database is the record of what happened to each key.
    let created = named("key_created");
    if created.len() != keys.len() {
        problems.push(format!(
            "{} keys exist but {} `key_created` events were logged",
            keys.len(),
            created.len()
        ));
    }
    let created_kids: Vec<_> = created.iter().filter_map(|e| e.field("kid")).collect();
    if created_kids.len() != created.len() {
        problems.push(format!(
            "`key_created` events do not name the key (no `kid` field), so no audit record says which key was made: {:#?}",
            created.iter().map(|e| &e.line).collect::<Vec<_>>()
        ));
    } else {
        per_kid(
            problems,
            "key_created",
            &created,
            keys.iter().map(|k| &k.kid),
        );
    }
    // A key created active (the very first one) has its `key_created`
    // event; every other key that ever signed has one `key_activated`.
    let first = keys.iter().find(|k| k.activated_at == Some(k.created_at));
    let created_active: Vec<String> = created
        .iter()
        .filter(|e| e.field("state") == Some("active"))
        .filter_map(|e| {
            e.field("kid")
                .map(str::to_owned)
                .or_else(|| first.map(|k| k.kid.clone()))
        })
        .collect();
    let want_activated: Vec<&String> = keys
        .iter()
        .filter(|k| k.activated_at.is_some() && !created_active.contains(&k.kid))
        .map(|k| &k.kid)
        .collect();
    per_kid(
        problems,
        "key_activated",
        &named("key_activated"),
        want_activated.into_iter(),
    );
    per_kid(
        problems,
        "key_retired",
        &named("key_retired"),
        keys.iter().filter(|k| k.state == "retired").map(|k| &k.kid),
    );
    per_kid(
        problems,
        "key_revoked",
        &named("key_revoked"),
        keys.iter().filter(|k| k.state == "revoked").map(|k| &k.kid),
    );
    for (name, at_least) in [("key_activated", 2), ("key_retired", 1), ("key_revoked", 1)] {
        if named(name).len() < at_least {
            problems.push(format!(
                "the scenario should have produced at least {at_least} `{name}` event(s)"
            ));
        }
    }
}

/// Exactly one `name` event for each kid of `want`, and none for others.
fn per_kid<'a>(
    problems: &mut Vec<String>,
    name: &str,
    events: &[&Event],
    want: impl Iterator<Item = &'a String>,
) {
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for event in events {
        match event.field("kid") {
            Some(kid) => *got.entry(kid.to_owned()).or_default() += 1,
            None => problems.push(format!("`{name}` without `kid`: {}", event.line)),
        }
    }
    let want: BTreeMap<String, usize> = want.map(|kid| (kid.clone(), 1)).collect();
    if got != want {
        problems.push(format!(
            "`{name}` events per kid {got:?}, expected one for each of {:?}",
            want.keys().collect::<Vec<_>>()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_at_debug_has_every_event_and_no_secret() {
    audit_scenario("debug").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_at_trace_has_every_event_and_no_secret() {
    audit_scenario("trace").await;
}

/// An operator who runs `jwtd users logout-all` or `jwtd keys …` without
/// setting `RUST_LOG` still leaves the audit events on stderr.
#[test]
fn cli_audit_events_are_logged_without_rust_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let quick = [("JWTD_ALGORITHM", "ES256")];
    Serve::start(d, &quick, Duration::from_secs(30)).stop();
    run_jwtd(
        d,
        &["users", "add", "dave", "--password-stdin"],
        &quick,
        Some("dave-Pa55word-audit\n"),
    )
    .ok();
    let mut missing = Vec::new();
    for (args, want) in [
        (vec!["users", "logout-all", "dave"], vec!["logout_all"]),
        (
            vec!["keys", "rotate", "--now"],
            vec!["key_activated", "key_created"],
        ),
    ] {
        let output = run_jwtd(d, &args, &quick, None).ok();
        let events: Vec<String> = events_in("cli", &output.lines())
            .into_iter()
            .map(|e| e.name)
            .collect();
        for name in want {
            if !events.iter().any(|e| e == name) {
                missing.push(format!(
                    "`jwtd {}` without RUST_LOG logs no `{name}` event (stderr: {:?})",
                    args.join(" "),
                    output.stderr
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn leak_check_finds_a_window_of_a_key_and_skips_public_values() {
    let mut secrets = Secrets::default();
    let key: Vec<u8> = (0..200u8).collect();
    let public = key[100..160].to_vec();
    secrets.add_private_key("k", &key, std::slice::from_ref(&public));
    let leaked = STANDARD.encode(&key[7..80]);
    let published = URL_SAFE_NO_PAD.encode(&public);
    let lines = vec![
        ("a".to_owned(), format!("x={leaked} y")),
        ("b".to_owned(), format!("jwks n={published}")),
    ];
    let leaks = secrets.leaks(&lines);
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    assert!(leaks[0].contains(" in a: "));
}
