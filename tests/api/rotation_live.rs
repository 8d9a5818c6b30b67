//! Key rotation in real time and across real processes (SPEC §5–§6):
//! the schedule on the wall clock over HTTP, two `jwtd serve` processes on
//! one database file, offline verification with exported keys (checked by
//! jwt-simple too), and the exit codes and messages of `jwtd token verify`
//! and `jwtd keys …`.
//!
//! Every wait is a bounded poll; every process runs in its own temporary
//! directory on an ephemeral port, so these tests can run next to others.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey, JWTClaims, RS256PublicKey,
    RSAPublicKeyLike, VerificationOptions,
};
use jwtd::clock::{SystemClock, format_rfc3339};
use jwtd::config::{Config, MasterKeySource};
use jwtd::keys::MasterKey;
use jwtd::server::Issuer;
use jwtd::store::KeyState;
use jwtd::store::Store;
use jwtd::store::StoredKey;
use jwtd::users::{Password, PasswordHasher};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinSet;

use crate::helpers::{claims_of, header_of, kid_of};
use crate::process::{Logged, drain, spawn_logged, wait_listening};

// --- the short schedule every live test runs ---------------------------------

/// Settings for the real-time runs: a key signs for 4 s after 1 s of
/// pre-publication, and stays published 4 s after it stops signing.
const LIVE_SETTINGS: [(&str, &str); 8] = [
    ("key_rotation_interval", "4s"),
    ("key_prepublish", "1s"),
    ("jwks_max_age", "1s"),
    ("access_token_lifetime", "3s"),
    ("refresh_token_lifetime", "4s"),
    ("sliding_token_lifetime", "3s"),
    ("sliding_token_refresh_lifetime", "4s"),
    ("leeway", "0"),
];
/// `key_rotation_interval`, seconds.
const ROTATION: i64 = 4;
/// `key_prepublish`, seconds.
const PREPUBLISH: i64 = 1;
/// The longest token lifetime plus leeway, plus the margin for processes
/// that have not yet seen a forced handover, seconds: how long a key stays
/// published after it stops signing.
const RETIRE_AFTER: i64 = 4 + jwtd::keys::schedule::PROPAGATION_MARGIN;
/// SPEC §5: each step happens within a second of falling due, and running
/// servers see a change within a second.
const WITHIN: f64 = 1.0;
/// What the observer adds on top: its own polling gap and scheduling noise
/// on a busy machine.
const SLACK: f64 = 0.5;
/// How long the live runs watch.
const RUN_FOR: Duration = Duration::from_secs(15);
/// How often they look.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often they log in (spread over the servers).
const LOGIN_EVERY: Duration = Duration::from_millis(600);

/// How long a short command may run before the test gives up on it.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);
/// How long `serve` may take to log its listen address.
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// The wall clock, in fractional seconds since the epoch.
fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

// --- running the binary ---------------------------------------------------------

/// What a finished command left behind.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics unless the command exited 0.
    #[track_caller]
    fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "expected success, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command failed (with `code`, if given) leaving
    /// exactly one line on stderr that mentions every one of `needles` and
    /// shows no panic; returns that line.
    #[track_caller]
    fn one_line_error(self, code: Option<i32>, needles: &[&str]) -> String {
        assert!(
            !self.status.success(),
            "expected failure, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        if let Some(code) = code {
            assert_eq!(
                self.status.code(),
                Some(code),
                "exit code; stderr: {}",
                self.stderr
            );
        }
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr, got {}: {:?}",
            lines.len(),
            self.stderr
        );
        let line = lines[0].to_owned();
        for needle in needles {
            assert!(
                line.to_lowercase().contains(&needle.to_lowercase()),
                "stderr line {line:?} does not mention {needle:?}"
            );
        }
        for forbidden in ["panicked", "backtrace"] {
            assert!(
                !line.to_lowercase().contains(forbidden),
                "stderr line {line:?} contains {forbidden:?}"
            );
        }
        assert!(
            self.stdout.trim().is_empty(),
            "nothing on stdout when refusing: {:?}",
            self.stdout
        );
        line
    }
}

/// A temporary jwtd home: its database and master key file (absolute
/// paths, passed through `JWTD_*` variables) and extra settings. Every
/// command runs in it with no inherited `JWTD_*`, `RUST_LOG` or backtrace
/// variables.
struct Home {
    dir: TempDir,
    envs: Vec<(String, String)>,
}

impl Home {
    fn new(settings: &[(&str, &str)]) -> Home {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut envs = vec![
            (
                "JWTD_DATABASE_URL".to_owned(),
                format!("sqlite://{}", dir.path().join("jwtd.db").display()),
            ),
            (
                "JWTD_MASTER_KEY_FILE".to_owned(),
                dir.path().join("master.key").display().to_string(),
            ),
        ];
        for (key, value) in settings {
            envs.push((format!("JWTD_{}", key.to_uppercase()), (*value).to_owned()));
        }
        Home { dir, envs }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn database(&self) -> PathBuf {
        self.path().join("jwtd.db")
    }

    fn master_key(&self) -> PathBuf {
        self.path().join("master.key")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jwtd"));
        command.current_dir(self.path()).args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("JWTD_") {
                command.env_remove(name);
            }
        }
        for name in ["RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"] {
            command.env_remove(name);
        }
        command.envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// `jwtd ARGS` with `stdin` fed to it (or `/dev/null`), bounded in time.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = self.command(args);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("jwtd starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(text.as_bytes()).expect("stdin written");
        }
        let stdout = drain(child.stdout.take().expect("stdout pipe"));
        let stderr = drain(child.stderr.take().expect("stderr pipe"));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for jwtd") {
                break status;
            }
            if started.elapsed() > COMMAND_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("jwtd {args:?} still running after {COMMAND_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Run {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// `jwtd keys list --json`.
    fn keys(&self) -> Vec<Value> {
        let run = self.run(&["keys", "list", "--json"], None).ok();
        let value: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|err| panic!("keys list --json is not JSON ({err}): {}", run.stdout));
        value.as_array().expect("a JSON array of keys").clone()
    }

    /// The kid of the only key in `state`; panics unless there is exactly one.
    #[track_caller]
    fn only(&self, state: &str) -> String {
        only_in(&self.keys(), state)
    }

    fn add_user(&self, name: &str, password: &str) {
        self.run(
            &["users", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .ok();
    }

    /// Starts `jwtd serve` on 127.0.0.1:0 without waiting for it.
    fn spawn_server(&self) -> Server {
        let mut command = self.command(&["serve"]);
        command.env("JWTD_BIND", "127.0.0.1:0");
        let Logged { child, log, .. } = spawn_logged(command);
        Server {
            child,
            addr: String::new(),
            log,
        }
    }

    /// Starts `jwtd serve` and waits (bounded) until it listens.
    fn serve(&self) -> Server {
        let mut server = self.spawn_server();
        server.wait_listening();
        server
    }
}

/// A `jwtd serve` child process, killed (by its PID) when dropped.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Waits until the server logs its listen address.
    fn wait_listening(&mut self) {
        match wait_listening(&mut self.child, &self.log, LISTEN_DEADLINE) {
            Ok(addr) => self.addr = addr,
            Err(why) => panic!("{why}: {:?}", self.log()),
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn only_in(keys: &[Value], state: &str) -> String {
    let found: Vec<&Value> = keys.iter().filter(|k| k["state"] == state).collect();
    assert_eq!(found.len(), 1, "exactly one {state} key: {keys:#?}");
    found[0]["kid"].as_str().expect("a kid").to_owned()
}

fn key_by_kid<'a>(keys: &'a [Value], kid: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("no key {kid} in {keys:#?}"))
}

// --- HTTP ------------------------------------------------------------------------

/// Logs in at `base`; returns (access, refresh).
async fn login(client: &reqwest::Client, base: &str, user: &str, pw: &str) -> (String, String) {
    let response = client
        .post(format!("{base}/api/token/"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .expect("login request sent");
    let status = response.status();
    let body: Value = response.json().await.expect("login answers JSON");
    assert_eq!(status, StatusCode::OK, "login at {base}: {body}");
    (
        body["access"].as_str().expect("access").to_owned(),
        body["refresh"].as_str().expect("refresh").to_owned(),
    )
}

async fn verify_at(client: &reqwest::Client, base: &str, token: &str) -> (StatusCode, String) {
    let response = client
        .post(format!("{base}/api/token/verify/"))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("verify request sent");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// The kids a server publishes and its `max-age`.
async fn jwks_at(client: &reqwest::Client, base: &str) -> (BTreeSet<String>, Option<u64>) {
    let response = client
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("JWKS request sent");
    assert_eq!(response.status(), StatusCode::OK);
    let max_age = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("max-age=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok());
    let body: Value = response.json().await.expect("JWKS is JSON");
    (kids_of(&body), max_age)
}

fn kids_of(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

// --- watching a live deployment ---------------------------------------------------

/// One key as the database had it.
#[derive(Debug, Clone, PartialEq)]
struct KeyRow {
    kid: String,
    state: KeyState,
    created_at: i64,
    activated_at: Option<i64>,
    deactivated_at: Option<i64>,
    retired_at: Option<i64>,
    has_private: bool,
}

impl From<&StoredKey> for KeyRow {
    fn from(key: &StoredKey) -> Self {
        KeyRow {
            kid: key.kid.clone(),
            state: key.state,
            created_at: key.created_at,
            activated_at: key.activated_at,
            deactivated_at: key.deactivated_at,
            retired_at: key.retired_at,
            has_private: key.sealed_private.is_some(),
        }
    }
}

fn rank(state: KeyState) -> u8 {
    match state {
        KeyState::Next => 0,
        KeyState::Active => 1,
        KeyState::Retiring => 2,
        KeyState::Retired => 3,
        KeyState::Revoked => 4,
    }
}

/// The database and every server's JWKS, read between `before` and `after`
/// (wall-clock seconds).
#[derive(Debug)]
struct Sample {
    before: f64,
    after: f64,
    keys: Vec<KeyRow>,
    jwks: Vec<BTreeSet<String>>,
}

impl Sample {
    fn key(&self, kid: &str) -> Option<&KeyRow> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    fn in_state(&self, state: KeyState) -> Vec<&KeyRow> {
        self.keys.iter().filter(|k| k.state == state).collect()
    }

    fn published(&self) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(|k| k.kid.clone())
            .collect()
    }
}

/// A token a server issued during the run.
#[derive(Debug)]
struct Issued {
    token: String,
    kind: &'static str,
    kid: String,
    iat: i64,
    exp: i64,
    by: usize,
    expiry_checked: bool,
}

/// Everything a live run saw.
struct Observed {
    samples: Vec<Sample>,
    tokens: Vec<Issued>,
    /// Answers that broke a rule while the run went on.
    violations: Vec<String>,
    verified: usize,
}

/// Watches the deployment for `RUN_FOR`: every `POLL_EVERY`, reads the
/// keys from the database and the JWKS of every server; every
/// `LOGIN_EVERY`, logs in at the next server in turn; every live token is
/// verified at every server until its `exp`, and once after it.
async fn watch(store: &Store, bases: &[String], user: &str, pw: &str) -> Observed {
    let client = client();
    let mut seen = Observed {
        samples: Vec::new(),
        tokens: Vec::new(),
        violations: Vec::new(),
        verified: 0,
    };
    let started = Instant::now();
    let mut next_login = started;
    let mut turn = 0;
    while started.elapsed() < RUN_FOR {
        let tick = Instant::now();
        let before = wall();
        let (_, stored) = store.keys_with_version().await.expect("read the keys");
        let mut jwks = Vec::new();
        for base in bases {
            let (kids, max_age) = jwks_at(&client, base).await;
            match max_age {
                Some(age) if age <= 1 => {}
                other => seen.violations.push(format!(
                    "{base}: JWKS max-age {other:?} is not at most jwks_max_age (1s)"
                )),
            }
            jwks.push(kids);
        }
        let after = wall();
        seen.samples.push(Sample {
            before,
            after,
            keys: stored.iter().map(KeyRow::from).collect(),
            jwks,
        });

        if Instant::now() >= next_login {
            let by = turn % bases.len();
            turn += 1;
            let (access, refresh) = login(&client, &bases[by], user, pw).await;
            for (kind, token) in [("access", access), ("refresh", refresh)] {
                let claims = claims_of(&token);
                seen.tokens.push(Issued {
                    kid: kid_of(&token),
                    iat: claims["iat"].as_i64().expect("iat"),
                    exp: claims["exp"].as_i64().expect("exp"),
                    token,
                    kind,
                    by,
                    expiry_checked: false,
                });
            }
            next_login += LOGIN_EVERY;
        }

        verify_live_tokens(&client, bases, &mut seen).await;

        let spent = tick.elapsed();
        if spent < POLL_EVERY {
            tokio::time::sleep(POLL_EVERY - spent).await;
        }
    }
    seen
}

/// Verifies, at every server at once, each token that has more than a
/// moment left (it must pass) and, once, each token a moment past its
/// `exp` (it must fail).
async fn verify_live_tokens(client: &reqwest::Client, bases: &[String], seen: &mut Observed) {
    let now = wall();
    let mut checks = JoinSet::new();
    for (index, issued) in seen.tokens.iter().enumerate() {
        let exp = issued.exp as f64;
        let alive = exp - now > 0.4;
        let dead = now - exp > 0.3 && !issued.expiry_checked;
        if !alive && !dead {
            continue;
        }
        for (server, base) in bases.iter().enumerate() {
            let client = client.clone();
            let base = base.clone();
            let token = issued.token.clone();
            checks.spawn(async move {
                let sent = wall();
                let (status, body) = verify_at(&client, &base, &token).await;
                (index, server, alive, sent, wall(), status, body)
            });
        }
    }
    while let Some(done) = checks.join_next().await {
        let (index, server, alive, sent, answered, status, body) = done.expect("verify task");
        let issued = &mut seen.tokens[index];
        let exp = issued.exp as f64;
        if alive {
            seen.verified += 1;
            // The server reads its clock between `sent` and `answered`.
            if status != StatusCode::OK && answered < exp {
                seen.violations.push(format!(
                    "{} token signed by {} (issued by server {} at iat={}, exp={}) got {status} \
                     {body} from server {server} at wall {sent:.2}..{answered:.2}, before its exp",
                    issued.kind, issued.kid, issued.by, issued.iat, issued.exp
                ));
            }
        } else {
            issued.expiry_checked = true;
            if status != StatusCode::UNAUTHORIZED && sent >= exp {
                seen.violations.push(format!(
                    "{} token (exp={}) got {status} {body} from server {server} at wall {sent:.2}, \
                     after its exp",
                    issued.kind, issued.exp
                ));
            }
        }
    }
}

/// Longest stretch, in seconds, over which `differs` was seen continuously
/// true: from the end of the first sample that saw it to the start of the
/// last one, so polling gaps never count against the server.
fn longest_stretch(samples: &[Sample], differs: impl Fn(&Sample) -> bool) -> (f64, f64) {
    let mut longest = (0.0, 0.0);
    let mut since: Option<f64> = None;
    for sample in samples {
        if differs(sample) {
            let from = *since.get_or_insert(sample.after);
            if sample.before - from > longest.1 - longest.0 {
                longest = (from, sample.before);
            }
        } else {
            since = None;
        }
    }
    longest
}

/// The wall-clock window of the first sample where `holds`.
fn first_seen(samples: &[Sample], holds: impl Fn(&Sample) -> bool) -> Option<(f64, f64)> {
    samples.iter().find(|s| holds(s)).map(|s| {
        (
            (s.before * 100.0).round() / 100.0,
            (s.after * 100.0).round() / 100.0,
        )
    })
}

/// Checks every rule of SPEC §5 against what a live run saw; returns the
/// broken ones, with evidence.
fn rotation_violations(seen: &Observed, servers: usize) -> Vec<String> {
    let mut bad = seen.violations.clone();
    let samples = &seen.samples;
    let first = samples.first().expect("at least one sample");
    let last = samples.last().expect("at least one sample");

    // Exactly one active and one next key at every instant.
    for sample in samples {
        let active = sample.in_state(KeyState::Active);
        let next = sample.in_state(KeyState::Next);
        if active.len() != 1 || next.len() != 1 {
            bad.push(format!(
                "at {:.2}: {} active and {} next keys: {:?}",
                sample.before,
                active.len(),
                next.len(),
                sample.keys
            ));
        }
    }

    // Each key goes next → active → retiring → retired, one step at a time;
    // a key first seen after the start is first seen as next.
    let mut history: BTreeMap<&str, Vec<(f64, KeyState)>> = BTreeMap::new();
    for sample in samples {
        for key in &sample.keys {
            let states = history.entry(key.kid.as_str()).or_default();
            if states.last().map(|(_, s)| *s) != Some(key.state) {
                states.push((sample.before, key.state));
            }
        }
    }
    for (kid, states) in &history {
        let initial = first.key(kid).is_some();
        if !initial && states[0].1 != KeyState::Next {
            bad.push(format!("key {kid} appeared as {:?}, not next", states[0].1));
        }
        for pair in states.windows(2) {
            let (from, to) = (rank(pair[0].1), rank(pair[1].1));
            if to != from + 1 || pair[1].1 == KeyState::Revoked {
                bad.push(format!(
                    "key {kid} went {:?} -> {:?} at {:.2} (history {states:?})",
                    pair[0].1, pair[1].1, pair[1].0
                ));
            }
        }
    }

    // The dates in the database tell the same story.
    let keys = &last.keys;
    for key in keys {
        let kid = &key.kid;
        let initial = first.key(kid).is_some();
        if let Some(activated) = key.activated_at
            && !initial
            && activated - key.created_at < PREPUBLISH
        {
            bad.push(format!(
                "key {kid} signed {}s after it was published, before key_prepublish",
                activated - key.created_at
            ));
        }
        if matches!(key.state, KeyState::Retiring | KeyState::Retired) {
            match (key.activated_at, key.deactivated_at) {
                (Some(on), Some(off)) if off - on >= ROTATION => {}
                other => bad.push(format!(
                    "key {kid} stopped signing with (activated, deactivated) = {other:?}: {key:?}"
                )),
            }
        }
        if key.state == KeyState::Retired {
            match (key.deactivated_at, key.retired_at) {
                (Some(off), Some(gone)) if gone - off >= RETIRE_AFTER => {
                    if gone - off > RETIRE_AFTER + 1 {
                        bad.push(format!(
                            "key {kid} retired {}s after it stopped signing, due after {RETIRE_AFTER}s",
                            gone - off
                        ));
                    }
                }
                other => bad.push(format!(
                    "key {kid} retired with (deactivated, retired) = {other:?}: {key:?}"
                )),
            }
            if key.has_private {
                bad.push(format!("retired key {kid} still has its private key"));
            }
        }
        if key.state == KeyState::Revoked {
            bad.push(format!("key {kid} was revoked during a plain run"));
        }
    }

    // Handovers: each activation is the previous key's deactivation, no
    // earlier than due and within a second of it.
    let mut chain: Vec<&KeyRow> = keys.iter().filter(|k| k.activated_at.is_some()).collect();
    chain.sort_by_key(|k| k.activated_at);
    for pair in chain.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let on = next.activated_at.expect("activated");
        if prev.deactivated_at != Some(on) {
            bad.push(format!(
                "key {} activated at {on} but {} stopped signing at {:?}",
                next.kid, prev.kid, prev.deactivated_at
            ));
        }
        let due =
            (prev.activated_at.expect("activated") + ROTATION).max(next.created_at + PREPUBLISH);
        if on < due || on > due + 1 {
            bad.push(format!(
                "key {} activated at {on}, due at {due} (previous active since {:?}, created at {})",
                next.kid, prev.activated_at, next.created_at
            ));
        }
        for sample in samples {
            if sample.after < due as f64
                && sample.key(&next.kid).is_some_and(|k| rank(k.state) >= 1)
            {
                bad.push(format!(
                    "key {} seen active at wall {:.2}, before it was due at {due}",
                    next.kid, sample.after
                ));
            }
        }
    }
    // Overdue: a sample taken well after a step fell due that still shows
    // it undone.
    for sample in samples {
        let active = sample.in_state(KeyState::Active);
        let next = sample.in_state(KeyState::Next);
        if let ([active], [next]) = (&active[..], &next[..])
            && let Some(on) = active.activated_at
        {
            let due = (on + ROTATION).max(next.created_at + PREPUBLISH) as f64;
            if sample.before >= due + WITHIN + SLACK {
                bad.push(format!(
                    "at wall {:.2}, key {} still waits to sign though due at {due}",
                    sample.before, next.kid
                ));
            }
        }
        for retiring in sample.in_state(KeyState::Retiring) {
            let Some(off) = retiring.deactivated_at else {
                continue;
            };
            let due = (off + RETIRE_AFTER) as f64;
            if sample.before >= due + WITHIN + SLACK {
                bad.push(format!(
                    "at wall {:.2}, key {} still retiring though due to retire at {due}",
                    sample.before, retiring.kid
                ));
            }
        }
    }

    // Every server's JWKS follows the database within a second, and the
    // servers agree with each other.
    for server in 0..servers {
        let (from, to) = longest_stretch(samples, |s| s.jwks[server] != s.published());
        if to - from > WITHIN + SLACK {
            bad.push(format!(
                "server {server}'s JWKS differed from the published keys from wall {from:.2} to {to:.2}"
            ));
        }
    }
    for server in 1..servers {
        let (from, to) = longest_stretch(samples, |s| s.jwks[server] != s.jwks[0]);
        if to - from > WITHIN + SLACK {
            bad.push(format!(
                "servers 0 and {server} served different JWKS from wall {from:.2} to {to:.2}"
            ));
        }
    }
    // Every server publishes a key within a second of its created_at,
    // keeps it until its tokens have expired, then drops it within a second.
    for key in keys {
        let gone_at = key.deactivated_at.map(|off| (off + RETIRE_AFTER) as f64);
        for server in 0..servers {
            let mut listed_since: Option<f64> = None;
            let mut reported = BTreeSet::new();
            for sample in samples {
                let listed = sample.jwks[server].contains(&key.kid);
                let before_gone = gone_at.is_none_or(|at| sample.after < at);
                if listed {
                    listed_since.get_or_insert(sample.after);
                }
                let problem =
                    if listed && gone_at.is_some_and(|at| sample.before >= at + WITHIN + SLACK) {
                        Some("still published, though its tokens have all expired")
                    } else if !listed && listed_since.is_some() && before_gone {
                        Some("unpublished while its tokens may still be valid")
                    } else if !listed
                        && listed_since.is_none()
                        && before_gone
                        && sample.before >= key.created_at as f64 + WITHIN + SLACK
                    {
                        Some("not published yet, though created_at says it was")
                    } else {
                        None
                    };
                if let Some(problem) = problem
                    && reported.insert(problem)
                {
                    bad.push(format!(
                        "server {server}, key {} (created_at {}, deactivated_at {:?}, tokens expired by {gone_at:?}): \
                         {problem} at wall {:.2}..{:.2}; first seen in the database at wall {:?}",
                        key.kid,
                        key.created_at,
                        key.deactivated_at,
                        sample.before,
                        sample.after,
                        first_seen(samples, |s| s.key(&key.kid).is_some()),
                    ));
                }
            }
        }
    }

    // Every token was signed by the key active at its iat, published in
    // every JWKS before it, and that key stays published until the token's
    // exp (else the token fails early).
    for issued in &seen.tokens {
        let Some(key) = keys.iter().find(|k| k.kid == issued.kid) else {
            bad.push(format!("token signed by unknown key {}", issued.kid));
            continue;
        };
        let signing = key.activated_at.is_some_and(|on| on <= issued.iat)
            && key.deactivated_at.is_none_or(|off| issued.iat <= off);
        if !signing {
            bad.push(format!(
                "{} token issued by server {} at iat={} signed by {} which signed only from {:?} to {:?}",
                issued.kind, issued.by, issued.iat, key.kid, key.activated_at, key.deactivated_at
            ));
        }
        if let Some(off) = key.deactivated_at
            && issued.exp > off + RETIRE_AFTER
        {
            bad.push(format!(
                "{} token issued by server {} (iat={}, exp={}) outlives its key {}, which the \
                 database says stopped signing at {off} (a change first seen at wall {:?}) and \
                 which is unpublished at {}",
                issued.kind,
                issued.by,
                issued.iat,
                issued.exp,
                key.kid,
                first_seen(samples, |s| s
                    .key(&key.kid)
                    .is_some_and(|k| k.deactivated_at.is_some())),
                off + RETIRE_AFTER
            ));
        }
    }
    let mut first_token: BTreeMap<&str, i64> = BTreeMap::new();
    for issued in &seen.tokens {
        let at = first_token.entry(issued.kid.as_str()).or_insert(issued.iat);
        *at = (*at).min(issued.iat);
    }
    for (kid, iat) in first_token {
        if first.key(kid).is_some() {
            continue;
        }
        for server in 0..servers {
            let shown = samples
                .iter()
                .find(|s| s.jwks[server].contains(kid))
                .map(|s| s.after);
            if shown.is_none_or(|at| at >= (iat + 1) as f64) {
                bad.push(format!(
                    "key {kid} signed a token at {iat} but server {server} published it only at {shown:?}"
                ));
            }
        }
    }
    bad
}

/// How many keys took over, and how many were retired, during the run.
fn rotations_seen(seen: &Observed) -> (usize, usize) {
    let first = seen.samples.first().expect("a sample");
    let last = seen.samples.last().expect("a sample");
    let activated = last
        .keys
        .iter()
        .filter(|k| first.key(&k.kid).is_none_or(|f| f.state == KeyState::Next))
        .filter(|k| k.activated_at.is_some())
        .count();
    let retired = last
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Retired)
        .count();
    (activated, retired)
}

/// Panics unless the run broke no rule and saw enough happen; `logs` (the
/// servers' key events) go into the message as evidence.
#[track_caller]
fn assert_healthy_run(seen: &Observed, servers: usize, logs: &[String]) {
    let (activated, retired) = rotations_seen(seen);
    let kids: BTreeSet<&str> = seen.tokens.iter().map(|t| t.kid.as_str()).collect();
    let bad = rotation_violations(seen, servers);
    assert!(
        bad.is_empty(),
        "{} rule(s) broken over {} samples and {} tokens:\n{}\n\nkeys at the end: {:#?}\n\nkey events:\n{}",
        bad.len(),
        seen.samples.len(),
        seen.tokens.len(),
        bad.join("\n"),
        seen.samples.last().map(|s| &s.keys),
        logs.join("\n")
    );
    assert!(
        activated >= 2,
        "saw {activated} rotations, wanted 2 or more"
    );
    assert!(retired >= 1, "saw {retired} retirements, wanted 1 or more");
    assert!(
        kids.len() >= 3,
        "tokens were signed by {} keys, wanted 3 or more: {kids:?}",
        kids.len()
    );
    assert!(seen.verified > 50, "only {} verifications", seen.verified);
}

// --- 1. real time over HTTP -----------------------------------------------------------

fn live_config(dir: &Path) -> Config {
    let mut config = Config {
        database_url: format!("sqlite://{}", dir.join("jwtd.db").display()),
        bind: "127.0.0.1:0".parse().unwrap(),
        master_key: MasterKeySource::File(dir.join("master.key")),
        ..Config::default()
    };
    for (key, value) in LIVE_SETTINGS {
        config.set(key, value, "test").expect("valid setting");
    }
    config.check().expect("valid configuration");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_the_wall_clock_and_tokens_verify_until_exp() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = live_config(dir.path());
    let issuer = Issuer::open(config.clone(), Arc::new(SystemClock))
        .await
        .expect("issuer starts");
    let listener = issuer.bind().await.expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(issuer.serve(listener, async {
        let _ = stopped.await;
    }));

    let store = Store::open(&config.database_path()).await.expect("store");
    let hash = PasswordHasher::new()
        .await
        .hash(&Password::new("pw".to_owned()))
        .await
        .expect("hash");
    store
        .add_user("alice", &hash, true, wall() as i64)
        .await
        .expect("user added");

    let seen = watch(&store, std::slice::from_ref(&base), "alice", "pw").await;

    let _ = stop.send(());
    server.await.expect("server stops cleanly");
    store.close().await;
    assert_healthy_run(&seen, 1, &[]);
}

// --- 2. two processes, one database -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_database_rotate_as_one() {
    let home = Home::new(&LIVE_SETTINGS);
    home.run(&["migrate"], None).ok();
    // The master key exists before the servers start; then both start at
    // once on an empty key table.
    MasterKey::load(&MasterKeySource::File(home.master_key())).expect("master key created");
    let mut a = home.spawn_server();
    let mut b = home.spawn_server();
    a.wait_listening();
    b.wait_listening();
    home.add_user("alice", "pw");

    let store = Store::open(&home.database()).await.expect("store");
    let bases = [a.base(), b.base()];
    let seen = watch(&store, &bases, "alice", "pw").await;
    store.close().await;

    // Tokens from each process were checked at the other one.
    for by in 0..2 {
        assert!(
            seen.tokens.iter().filter(|t| t.by == by).count() >= 4,
            "server {by} issued too few tokens"
        );
    }
    let key_events: Vec<String> = [&a, &b]
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.log()
                .into_iter()
                .filter(|l| l.contains("key_") || l.contains("signing keys"))
                .map(move |l| format!("server {i}: {l}"))
        })
        .collect();
    let errors: Vec<String> = [&a, &b]
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.log()
                .into_iter()
                .filter(|l| l.contains("ERROR"))
                .map(move |l| format!("server {i}: {l}"))
        })
        .collect();
    drop(a);
    drop(b);
    assert_healthy_run(&seen, 2, &key_events);
    assert!(
        errors.is_empty(),
        "the servers logged errors:\n{}",
        errors.join("\n")
    );
}

// --- 3. offline verification ---------------------------------------------------------------

/// Claims as jwt-simple returns them (the custom ones as a map).
type Claims = JWTClaims<serde_json::Map<String, Value>>;

fn verify_with_jwt_simple(pem: &str, token: &str, kid: &str) -> Claims {
    let options = VerificationOptions {
        required_key_id: Some(kid.to_owned()),
        ..VerificationOptions::default()
    };
    match header_of(token)["alg"].as_str() {
        Some("RS256") => RS256PublicKey::from_pem(pem)
            .expect("jwt-simple reads the exported RSA PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        Some("ES256") => ES256PublicKey::from_pem(pem)
            .expect("jwt-simple reads the exported P-256 PEM")
            .with_key_id(kid)
            .verify_token(token, Some(options))
            .expect("jwt-simple verifies the token"),
        other => panic!("unexpected alg {other:?}"),
    }
}

/// `token verify` with `how`; panics unless it exits 0 printing `token`'s
/// claims as JSON.
#[track_caller]
fn assert_cli_accepts(home: &Home, token: &str, how: &[&str]) {
    let mut args = vec!["token", "verify", token];
    args.extend_from_slice(how);
    let run = home.run(&args, None).ok();
    let printed: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("{how:?}: stdout is not JSON ({err}): {}", run.stdout));
    assert_eq!(printed, claims_of(token), "{how:?} prints the claims");
    assert_eq!(run.status.code(), Some(0));
    assert!(
        run.stderr.trim().is_empty(),
        "{how:?}: stderr {}",
        run.stderr
    );
}

async fn exported_keys_verify_offline(algorithm: &str) {
    let home = Home::new(&[("algorithm", algorithm)]);
    let server = home.serve();
    home.add_user("alice", "pw");
    let client = client();
    let (access, refresh) = login(&client, &server.base(), "alice", "pw").await;
    assert_eq!(header_of(&access)["alg"], algorithm);
    let active = home.only("active");
    assert_eq!(kid_of(&access), active);

    let out = home.path().join("exported");
    let out_arg = out.display().to_string();
    home.run(&["keys", "export", "--out", &out_arg], None).ok();

    // jwks.json is what the server serves, and there is one PEM per
    // published key and nothing else.
    let served: Value = client
        .get(format!("{}/.well-known/jwks.json", server.base()))
        .send()
        .await
        .expect("JWKS")
        .json()
        .await
        .expect("JSON");
    let exported: Value =
        serde_json::from_slice(&std::fs::read(out.join("jwks.json")).expect("jwks.json written"))
            .expect("jwks.json is JSON");
    assert_eq!(exported, served, "the exported JWKS is the served one");
    let kids = kids_of(&served);
    assert_eq!(kids.len(), 2, "active and next are published: {served}");
    let mut files: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.remove("jwks.json"));
    let pems: BTreeSet<String> = kids.iter().map(|kid| format!("{kid}.pem")).collect();
    assert_eq!(files, pems, "one <kid>.pem per published key");
    for file in &pems {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            text.starts_with("-----BEGIN PUBLIC KEY-----"),
            "{file}: {text}"
        );
        assert!(!text.contains("PRIVATE"), "{file} holds only a public key");
    }

    let active_pem = out.join(format!("{active}.pem"));
    let active_pem_arg = active_pem.display().to_string();
    let jwks_file = out.join("jwks.json").display().to_string();
    let jwks_url = format!("{}/.well-known/jwks.json", server.base());
    for token in [&access, &refresh] {
        assert_cli_accepts(&home, token, &["--key", &active_pem_arg]);
        assert_cli_accepts(&home, token, &["--jwks", &jwks_file]);
        assert_cli_accepts(&home, token, &["--jwks", &jwks_url]);
    }

    // An independent JOSE implementation accepts the exported PEM.
    let pem = std::fs::read_to_string(&active_pem).unwrap();
    for token in [&access, &refresh] {
        let claims = verify_with_jwt_simple(&pem, token, &active);
        let expected = claims_of(token);
        assert_eq!(
            claims.expires_at.map(|t| t.as_secs()),
            expected["exp"].as_u64()
        );
        assert_eq!(
            claims.custom.get("token_type"),
            Some(&expected["token_type"])
        );
        assert_eq!(claims.custom.get("user_id"), Some(&expected["user_id"]));
    }

    // Without --out, the keys go to keys/ under the working directory.
    home.run(&["keys", "export"], None).ok();
    let default_jwks: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("keys/jwks.json")).expect("keys/jwks.json written"),
    )
    .unwrap();
    assert_eq!(default_jwks, served);
    assert!(home.path().join(format!("keys/{active}.pem")).is_file());
}

#[tokio::test]
async fn rs256_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("RS256").await;
}

#[tokio::test]
async fn es256_exported_keys_verify_offline_and_with_jwt_simple() {
    exported_keys_verify_offline("ES256").await;
}

// --- 4. exit codes and messages ----------------------------------------------------------------

/// Replaces one character in the middle of the signature.
fn tamper(token: &str) -> String {
    let cut = token.rfind('.').expect("three parts") + 1;
    let middle = cut + (token.len() - cut) / 2;
    let old = token.as_bytes()[middle];
    let new = if old == b'A' { 'B' } else { 'A' };
    format!("{}{new}{}", &token[..middle], &token[middle + 1..])
}

#[tokio::test]
async fn token_verify_names_why_a_token_is_refused_and_bad_input_changes_nothing() {
    let home = Home::new(&[("access_token_lifetime", "1s")]);
    let server = home.serve();
    home.add_user("alice", "pw");
    let client = client();
    let (access, refresh) = login(&client, &server.base(), "alice", "pw").await;
    let access_exp = claims_of(&access)["exp"].as_f64().expect("exp");
    let active = home.only("active");
    let next = home.only("next");

    let out = home.path().join("exported");
    let out_arg = out.display().to_string();
    home.run(&["keys", "export", "--out", &out_arg], None).ok();
    let jwks_file = out.join("jwks.json").display().to_string();
    let jwks_url = format!("{}/.well-known/jwks.json", server.base());
    let active_pem = out.join(format!("{active}.pem")).display().to_string();
    let next_pem = out.join(format!("{next}.pem")).display().to_string();
    // The refresh token lives a day: the control case.
    assert_cli_accepts(&home, &refresh, &["--jwks", &jwks_file]);

    let before = home.keys();
    let refused = |token: &str, how: &[&str], reason: &str| {
        let mut args = vec!["token", "verify", token];
        args.extend_from_slice(how);
        home.run(&args, None).one_line_error(Some(1), &[reason])
    };

    // Bad signature, through a JWKS and through a PEM.
    let tampered = tamper(&refresh);
    refused(&tampered, &["--jwks", &jwks_file], "bad signature");
    refused(&tampered, &["--key", &active_pem], "bad signature");
    // With --key the kid is not consulted: another key's PEM is a bad signature.
    refused(&refresh, &["--key", &next_pem], "bad signature");

    // Unknown kid: a JWKS without the key that signed.
    let mut without_active: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("jwks.json")).unwrap()).unwrap();
    without_active["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != active.as_str());
    let other_jwks = home.path().join("other-jwks.json");
    std::fs::write(&other_jwks, without_active.to_string()).unwrap();
    let other_jwks = other_jwks.display().to_string();
    refused(&refresh, &["--jwks", &other_jwks], "unknown key id");

    // Wrong audience: the token has no aud.
    refused(
        &refresh,
        &["--jwks", &jwks_url, "--audience", "other"],
        "wrong audience",
    );
    refused(
        &refresh,
        &["--key", &active_pem, "--audience", "other"],
        "wrong audience",
    );

    // Not a JWT at all.
    let unsigned = &refresh[..refresh.rfind('.').unwrap()];
    for junk in ["hello", "a.b.c", "", unsigned] {
        refused(junk, &["--jwks", &jwks_file], "not a well-formed JWS");
    }

    // Bad input to the commands: one line, non-zero, nothing changed.
    let line = home
        .run(&["keys", "revoke", "no-such-kid"], None)
        .one_line_error(None, &[]);
    assert!(line.contains("no-such-kid"), "names the kid: {line}");

    let not_json = home.path().join("not-json.json");
    std::fs::write(&not_json, "this is not JSON {").unwrap();
    let not_json = not_json.display().to_string();
    home.run(&["token", "verify", &refresh, "--jwks", &not_json], None)
        .one_line_error(None, &["not-json.json"]);
    let empty_jwks = home.path().join("empty-jwks.json");
    std::fs::write(&empty_jwks, r#"{"keys":[]}"#).unwrap();
    let empty_jwks = empty_jwks.display().to_string();
    home.run(&["token", "verify", &refresh, "--jwks", &empty_jwks], None)
        .one_line_error(None, &[]);
    let missing = home.path().join("missing.json").display().to_string();
    home.run(&["token", "verify", &refresh, "--jwks", &missing], None)
        .one_line_error(None, &["missing.json"]);

    let master = home.master_key().display().to_string();
    home.run(&["token", "verify", &refresh, "--key", &master], None)
        .one_line_error(None, &["master.key"]);
    let private_pem = home.path().join("private.pem");
    std::fs::write(&private_pem, ES256KeyPair::generate().to_pem().unwrap()).unwrap();
    let private_pem = private_pem.display().to_string();
    home.run(&["token", "verify", &refresh, "--key", &private_pem], None)
        .one_line_error(None, &["PRIVATE KEY"]);
    home.run(&["token", "verify", &refresh, "--key", &jwks_file], None)
        .one_line_error(None, &[]);

    home.run(&["token", "verify", &refresh], None)
        .one_line_error(None, &["--jwks"]);
    home.run(
        &[
            "token",
            "verify",
            &refresh,
            "--jwks",
            &jwks_file,
            "--key",
            &active_pem,
        ],
        None,
    )
    .one_line_error(None, &[]);

    assert_eq!(home.keys(), before, "no key was created or changed");
    assert!(
        !home.path().join("keys").exists(),
        "nothing was exported by a failed command"
    );

    // Expired: wait (bounded) until the 1 s access token is past its exp.
    let deadline = Instant::now() + Duration::from_secs(5);
    while wall() < access_exp + 0.05 {
        assert!(Instant::now() < deadline, "the clock does not move");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused(&access, &["--jwks", &jwks_file], "expired");
    refused(&access, &["--key", &active_pem], "expired");
    drop(server);
}

/// Polls `check` every 25 ms until it returns true or `within` passes;
/// returns how long it took.
async fn poll_until<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn revoking_the_active_key_takes_effect_in_a_running_server_within_a_second() {
    let home = Home::new(&[]);
    let server = home.serve();
    let base = server.base();
    home.add_user("alice", "pw");
    let client = client();
    let (access, refresh) = login(&client, &base, "alice", "pw").await;
    let before = home.keys();
    let revoked = only_in(&before, "active");
    let old_next = only_in(&before, "next");
    assert_eq!(kid_of(&access), revoked);
    assert_eq!(verify_at(&client, &base, &refresh).await.0, StatusCode::OK);

    let run = home.run(&["keys", "revoke", &revoked], None).ok();
    assert!(run.stdout.contains(&revoked), "{}", run.stdout);
    let took = poll_until(Duration::from_millis(1500), "revocation seen", || {
        let client = client.clone();
        let (base, revoked, access, refresh) = (&base, &revoked, &access, &refresh);
        async move {
            let (kids, _) = jwks_at(&client, base).await;
            !kids.contains(revoked)
                && verify_at(&client, base, access).await.0 == StatusCode::UNAUTHORIZED
                && verify_at(&client, base, refresh).await.0 == StatusCode::UNAUTHORIZED
        }
    })
    .await;
    assert!(
        took <= Duration::from_millis(1000 + 250),
        "revocation took {took:?}"
    );

    // The next key signs now, and a new next key is published.
    let keys = home.keys();
    let revoked_row = key_by_kid(&keys, &revoked);
    assert_eq!(revoked_row["state"], "revoked", "{keys:#?}");
    assert!(revoked_row["revoked_at"].is_i64());
    assert_eq!(only_in(&keys, "active"), old_next, "the next key took over");
    let old_next_ref = &old_next;
    poll_until(Duration::from_millis(1500), "a new next key", || {
        let keys = home.keys();
        let old_next = old_next_ref;
        async move {
            let next: Vec<&Value> = keys.iter().filter(|k| k["state"] == "next").collect();
            next.len() == 1 && next[0]["kid"] != old_next.as_str()
        }
    })
    .await;
    let keys = home.keys();
    let new_next = only_in(&keys, "next");
    assert!(before.iter().all(|k| k["kid"] != new_next.as_str()));
    let (fresh, _) = login(&client, &base, "alice", "pw").await;
    assert_eq!(
        kid_of(&fresh),
        old_next,
        "the server signs with the new key"
    );
    assert_eq!(verify_at(&client, &base, &fresh).await.0, StatusCode::OK);
    let (kids, _) = jwks_at(&client, &base).await;
    assert_eq!(
        kids,
        BTreeSet::from([old_next.clone(), new_next.clone()]),
        "JWKS"
    );
    // Offline too: the served JWKS no longer knows the revoked kid.
    let jwks_url = format!("{base}/.well-known/jwks.json");
    home.run(&["token", "verify", &refresh, "--jwks", &jwks_url], None)
        .one_line_error(Some(1), &["unknown key id"]);
    // Revoking it again is an error and changes nothing.
    home.run(&["keys", "revoke", &revoked], None)
        .one_line_error(None, &[&revoked]);
    assert_eq!(home.keys(), keys);

    // `keys rotate` says when the next key takes over: once it has been
    // published for key_prepublish (1 day by default).
    let created = key_by_kid(&keys, &new_next)["created_at"]
        .as_i64()
        .expect("created_at");
    let run = home.run(&["keys", "rotate"], None).ok();
    let when = format_rfc3339(created + 86_400);
    assert!(
        run.stdout.contains(&when),
        "rotate names {when}: {}",
        run.stdout
    );
    let after_rotate = home.keys();
    assert_eq!(only_in(&after_rotate, "active"), old_next);
    assert_eq!(only_in(&after_rotate, "next"), new_next);

    // `keys rotate --now` switches at once.
    let run = home.run(&["keys", "rotate", "--now"], None).ok();
    assert!(
        run.stdout.to_lowercase().contains("now active"),
        "{}",
        run.stdout
    );
    let rotated = home.keys();
    assert_eq!(only_in(&rotated, "active"), new_next, "{rotated:#?}");
    assert_eq!(key_by_kid(&rotated, &old_next)["state"], "retiring");
    let newest = only_in(&rotated, "next");
    assert!(![&revoked, &old_next, &new_next].contains(&&newest));
    poll_until(
        Duration::from_millis(1500),
        "the server signs with the rotated key",
        || {
            let client = client.clone();
            let base = &base;
            let new_next = &new_next;
            async move {
                let (token, _) = login(&client, base, "alice", "pw").await;
                kid_of(&token) == *new_next
            }
        },
    )
    .await;
    let (kids, _) = jwks_at(&client, &base).await;
    assert_eq!(kids, BTreeSet::from([old_next, new_next, newest]));
    // Tokens of the key that stopped signing still verify.
    assert_eq!(verify_at(&client, &base, &fresh).await.0, StatusCode::OK);
    drop(server);
}

#[test]
fn revoking_the_active_key_without_a_server_promotes_next_and_makes_a_new_one() {
    let home = Home::new(&[]);
    drop(home.serve());
    let before = home.keys();
    let active = only_in(&before, "active");
    let next = only_in(&before, "next");

    home.run(&["keys", "revoke", &active], None).ok();
    let after = home.keys();
    assert_eq!(key_by_kid(&after, &active)["state"], "revoked");
    assert_eq!(
        only_in(&after, "active"),
        next,
        "the next key becomes active at once: {after:#?}"
    );
    let new_next = after
        .iter()
        .filter(|k| k["state"] == "next")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        new_next.len(),
        1,
        "SPEC §5: revoking the active key makes a new next key at once: {after:#?}"
    );
    assert!(before.iter().all(|k| k["kid"] != new_next[0].as_str()));
}
