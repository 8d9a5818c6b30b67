//! Storage faults and crashes, on real `jwtd serve`
//! children:
//!
//! - (a) the database's filesystem turns read-only while the server runs;
//! - (b) the disk holding the database fills up while the server runs;
//! - (c) `kill -9` at random moments while keys rotate;
//! - (d) start-up with the database in a missing or read-only place.
//!
//! During a fault, logins and refreshes must get a clear 5xx JSON answer
//! within the busy timeout (never a panic or a hang), nothing half-written
//! may be left behind, and once the fault ends the same server process
//! must work again, with `PRAGMA integrity_check` ok.
//!
//! How (a) is made: the tests run as root, for whom `chmod` does not stop
//! writes, and the kernel refuses to remount a filesystem read-only while a
//! process holds a file on it open for writing (`mount -o remount,ro` and a
//! read-only bind remount both fail with EBUSY while `serve` has the
//! database open). So the fault is made where a read-only filesystem shows
//! itself to SQLite: `strace` attaches to the running server and makes every
//! write, sync, truncate and unlink on the database files fail with EROFS,
//! exactly the error a read-only filesystem returns; detaching ends the
//! fault. Without `strace` (or without the right to trace), (a) is skipped
//! with a message. (b) and (d) use real tmpfs mounts; where mounting is not
//! permitted they are skipped with a message. Under `CI` (which `.ci/run`
//! sets) a skip is a failure: CI installs strace and runs as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jwtd::config::MasterKeySource;
use jwtd::keys::MasterKey;
use jwtd::verifier::PublicJwk;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audit::child::{SIGINT, Serve, run_jwtd, signal};
use crate::audit::db;

/// The store's SQLite busy timeout (src/store/mod.rs).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest any request may take during a fault.
const ANSWER_DEADLINE: Duration = Duration::from_secs(15);
const PASSWORD: &str = "faults-Pa55word";

/// Reports a check that cannot run on this machine. Under `CI` it fails
/// instead: there, a missing tool means the check was never made.
fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run: {why} (CI is set, so this fails instead of skipping)"
    );
    eprintln!("SKIPPED {test}: {why}");
}

// --- guards ------------------------------------------------------------------

/// A tmpfs mounted on a directory; unmounted when dropped (lazily if busy).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|err| err.to_string())?;
        let path_text = path.to_str().expect("UTF-8 path");
        run_tool(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path_text,
            ],
        )?;
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }

    /// `mount -o remount,OPTIONS`.
    fn remount(&self, options: &str) -> Result<(), String> {
        let path = self.path.to_str().expect("UTF-8 path");
        run_tool("mount", &["-o", &format!("remount,{options}"), path])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.path.to_str().expect("UTF-8 path");
        if run_tool("umount", &[path]).is_err() {
            let _ = run_tool("umount", &["-l", path]);
        }
    }
}

/// Runs a system tool; its stderr on failure.
fn run_tool(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("{program}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {} {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `strace` attached to a process, failing every write-side system call on
/// some paths with an errno; detaches (ending the fault) when dropped.
struct Injector {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

/// The system calls that write, sync, truncate or remove a file.
const WRITE_CALLS: &str =
    "write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,ftruncate,fallocate,unlink,unlinkat";

impl Injector {
    fn attach(pid: u32, paths: &[PathBuf], errno: &str) -> Result<Injector, String> {
        let mut command = Command::new("strace");
        command.args([
            "-f",
            "-o",
            "/dev/null",
            "-e",
            &format!("trace={WRITE_CALLS}"),
            "-e",
            &format!("inject={WRITE_CALLS}:error={errno}"),
        ]);
        for path in paths {
            command.arg("-P").arg(path);
        }
        command
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|err| format!("strace: {err}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buffer = [0u8; 1024];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let mut injector = Injector { child, stderr };
        let started = Instant::now();
        loop {
            // strace reports the process attached once all its threads are.
            if injector.stderr.lock().unwrap().contains("attached") {
                return Ok(injector);
            }
            if let Some(status) = injector.child.try_wait().expect("waiting for strace") {
                return Err(format!(
                    "strace exited ({status}): {}",
                    injector.stderr.lock().unwrap().trim()
                ));
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("strace did not attach within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Detaches: the fault ends.
    fn detach(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        signal(self.child.id(), SIGINT);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

// --- talking to the server ---------------------------------------------------

/// What the server acknowledged, to compare with the database afterwards.
#[derive(Debug, Default)]
struct Ledger {
    /// Logins answered 200 (each opens a family and records a token).
    logins: i64,
    /// Refreshes answered 200 (each records the new refresh token).
    refreshes: i64,
    /// Every refresh token answered 200.
    refresh_tokens: Vec<String>,
    /// Requests answered 5xx during a fault.
    failures: usize,
    /// The slowest answer during a fault.
    slowest: Duration,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(serve: &Serve) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap(),
            base: serve.url(""),
        }
    }

    /// POSTs JSON; the status, the body and how long the answer took.
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value, Duration) {
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

    async fn login(&self, user: &str) -> (StatusCode, Value, Duration) {
        self.post(
            "/api/token/",
            json!({"username": user, "password": PASSWORD}),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> (StatusCode, Value, Duration) {
        self.post("/api/token/refresh/", json!({"refresh": token}))
            .await
    }

    async fn healthz(&self) -> StatusCode {
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
    async fn login_ok(&mut self, client: &Client, user: &str) -> String {
        let (status, body, _) = client.login(user).await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        self.logins += 1;
        let token = body["refresh"].as_str().expect("refresh token").to_owned();
        self.refresh_tokens.push(token.clone());
        token
    }

    /// A refresh that must succeed; returns the new refresh token.
    async fn refresh_ok(&mut self, client: &Client, token: &str) -> String {
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
    async fn login_during_fault(&mut self, client: &Client, user: &str, what: &str) {
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
    async fn refresh_during_fault(&mut self, client: &Client, current: &mut String, what: &str) {
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
async fn assert_recovers(
    ledger: &mut Ledger,
    serve: &Serve,
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
async fn assert_database_matches(database: &Path, ledger: &Ledger, what: &str) {
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

/// The server never panicked.
fn assert_no_panic(log: &[String], what: &str) {
    for line in log {
        assert!(
            !line.contains("panicked"),
            "{what}: the server panicked: {line}\n{log:#?}"
        );
    }
}

fn fast_keys() -> Vec<(&'static str, String)> {
    vec![("JWTD_ALGORITHM", "ES256".to_owned())]
}

fn as_envs<'a>(envs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    envs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

// --- (a) read-only filesystem ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_filesystem_fails_cleanly_and_the_server_recovers() {
    const TEST: &str = "faults::a_read_only_filesystem_fails_cleanly_and_the_server_recovers";
    if !strace_available() {
        skip(TEST, "strace is not installed (apt-get install strace)");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let database = d.join("jwtd.db");
    let envs = fast_keys();
    let envs = as_envs(&envs);
    run_jwtd(d, &["migrate"], &envs, None).ok();
    run_jwtd(
        d,
        &["users", "add", "erin", "--password-stdin"],
        &envs,
        Some(PASSWORD),
    )
    .ok();
    let serve = Serve::start(d, &envs, Duration::from_secs(30));
    let client = Client::new(&serve);
    let mut ledger = Ledger::default();
    let first = ledger.login_ok(&client, "erin").await;
    let mut current = ledger.refresh_ok(&client, &first).await;

    let files: Vec<PathBuf> = ["", "-wal", "-journal"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", database.display())))
        .collect();
    let fault = match Injector::attach(serve.pid(), &files, "EROFS") {
        Ok(fault) => fault,
        Err(why) => {
            skip(TEST, &format!("cannot trace the server: {why}"));
            return;
        }
    };
    for round in 0..4 {
        let what = format!("read-only filesystem, round {round}");
        ledger.login_during_fault(&client, "erin", &what).await;
        ledger
            .refresh_during_fault(&client, &mut current, &what)
            .await;
        assert_eq!(client.healthz().await, StatusCode::OK, "{what}: healthz");
    }
    assert!(
        ledger.failures >= 8,
        "every login and refresh fails while the database cannot be written ({} failed)",
        ledger.failures
    );
    fault.detach();
    eprintln!(
        "read-only filesystem: {} of 8 requests failed cleanly, slowest answer {:?}",
        ledger.failures, ledger.slowest
    );

    assert_recovers(
        &mut ledger,
        &serve,
        &client,
        "erin",
        &mut current,
        "read-only filesystem",
    )
    .await;
    drop(client);
    let (status, log) = serve.stop();
    assert_no_panic(&log, "read-only filesystem");
    assert!(status.success(), "serve stops cleanly: {status}");
    assert_database_matches(&database, &ledger, "read-only filesystem").await;
}

// --- (b) disk full -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_the_server_recovers() {
    const TEST: &str = "faults::a_full_disk_fails_cleanly_and_the_server_recovers";
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let mount = match Tmpfs::mount(&d.join("disk"), "2m") {
        Ok(mount) => mount,
        Err(why) => {
            skip(TEST, &format!("cannot mount a tmpfs here: {why}"));
            return;
        }
    };
    let database = mount.path.join("jwtd.db");
    let mut envs = fast_keys();
    envs.push((
        "JWTD_DATABASE_URL",
        format!("sqlite://{}", database.display()),
    ));
    let envs = as_envs(&envs);
    run_jwtd(d, &["migrate"], &envs, None).ok();
    run_jwtd(
        d,
        &["users", "add", "erin", "--password-stdin"],
        &envs,
        Some(PASSWORD),
    )
    .ok();
    let serve = Serve::start(d, &envs, Duration::from_secs(30));
    let client = Client::new(&serve);
    let mut ledger = Ledger::default();
    let first = ledger.login_ok(&client, "erin").await;
    let mut current = ledger.refresh_ok(&client, &first).await;

    // Fill the disk.
    let filler = mount.path.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).expect("filler created");
        let chunk = vec![0x5a_u8; 16 * 1024];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_data())
            .is_ok()
        {}
        // Whatever a last partial chunk left.
        while file.write_all(&[0x5a]).is_ok() {}
    }
    let mut attempts = 0;
    while ledger.failures < 6 && attempts < 60 {
        let what = format!("disk full, attempt {attempts}");
        ledger
            .refresh_during_fault(&client, &mut current, &what)
            .await;
        if attempts % 4 == 0 {
            ledger.login_during_fault(&client, "erin", &what).await;
        }
        attempts += 1;
    }
    assert!(
        ledger.failures > 0,
        "no request failed while the disk was full: the fault did not take ({attempts} attempts)"
    );
    assert_eq!(client.healthz().await, StatusCode::OK, "healthz while full");
    std::fs::remove_file(&filler).expect("filler removed");

    assert_recovers(
        &mut ledger,
        &serve,
        &client,
        "erin",
        &mut current,
        "disk full",
    )
    .await;
    drop(client);
    let (status, log) = serve.stop();
    assert_no_panic(&log, "disk full");
    assert!(status.success(), "serve stops cleanly: {status}");
    assert_database_matches(&database, &ledger, "disk full").await;
    eprintln!(
        "disk full: {} requests failed cleanly in {attempts} rounds, slowest answer {:?}",
        ledger.failures, ledger.slowest
    );
    drop(mount);
}

// --- (c) kill -9 during key rotation -------------------------------------------

/// A small xorshift generator: the kill times, reproducible from the seed
/// printed on failure (`FAULTS_SEED=…` to replay).
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn millis_between(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

/// What the database says about the keys after a crash; panics on any
/// inconsistency. Returns (kid, state) pairs.
async fn assert_consistent_keys(
    database: &Path,
    master: &MasterKey,
    what: &str,
) -> Vec<(String, String)> {
    let pool = db::open(database).await;
    let integrity = db::integrity_check(&pool).await;
    let keys = db::keys(&pool).await;
    pool.close().await;
    assert_eq!(integrity, "ok", "{what}: integrity_check");
    let count = |state: &str| keys.iter().filter(|k| k.state == state).count();
    assert_eq!(
        count("active"),
        1,
        "{what}: exactly one active key: {keys:#?}"
    );
    assert!(
        count("next") <= 1,
        "{what}: at most one next key: {keys:#?}"
    );
    for key in &keys {
        let at = |field: &str, value: Option<i64>| -> i64 {
            value.unwrap_or_else(|| panic!("{what}: {} key {} has no {field}", key.state, key.kid))
        };
        let none = |field: &str, value: Option<i64>| {
            assert!(
                value.is_none(),
                "{what}: {} key {} has a {field}: {key:?}",
                key.state,
                key.kid
            );
        };
        let public: PublicJwk = serde_json::from_str(&key.public_jwk).expect("public_jwk parses");
        assert_eq!(
            public.thumbprint(),
            key.kid,
            "{what}: kid is the thumbprint"
        );
        if let Some(activated) = key.activated_at {
            assert!(
                key.created_at <= activated,
                "{what}: key {} activated before it was created",
                key.kid
            );
        }
        if let (Some(from), Some(to)) = (key.activated_at, key.deactivated_at) {
            assert!(
                from <= to,
                "{what}: key {} deactivated before activated",
                key.kid
            );
        }
        if let (Some(from), Some(to)) = (key.deactivated_at, key.retired_at) {
            assert!(
                from <= to,
                "{what}: key {} retired before deactivated",
                key.kid
            );
        }
        let published = matches!(key.state.as_str(), "next" | "active" | "retiring");
        if published {
            let sealed = key.sealed_private.as_deref().unwrap_or_else(|| {
                panic!("{what}: {} key {} lost its private key", key.state, key.kid)
            });
            master
                .open(&key.kid, sealed)
                .unwrap_or_else(|err| panic!("{what}: key {}: {err}", key.kid));
            none("retired_at", key.retired_at);
            none("revoked_at", key.revoked_at);
        } else {
            assert!(
                key.sealed_private.is_none(),
                "{what}: {} key {} still holds its private key",
                key.state,
                key.kid
            );
        }
        match key.state.as_str() {
            "next" => {
                none("activated_at", key.activated_at);
                none("deactivated_at", key.deactivated_at);
            }
            "active" => {
                at("activated_at", key.activated_at);
                none("deactivated_at", key.deactivated_at);
            }
            "retiring" => {
                at("activated_at", key.activated_at);
                at("deactivated_at", key.deactivated_at);
            }
            "retired" => {
                at("retired_at", key.retired_at);
                none("revoked_at", key.revoked_at);
                if key.activated_at.is_some() {
                    at("deactivated_at", key.deactivated_at);
                }
            }
            "revoked" => {
                at("revoked_at", key.revoked_at);
            }
            other => panic!("{what}: unknown state {other}"),
        }
    }
    keys.into_iter().map(|k| (k.kid, k.state)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_key_rotation_leaves_a_consistent_key_set() {
    const KILLS: usize = 10;
    let started = Instant::now();
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.0;
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let database = d.join("jwtd.db");
    // 4096-bit RSA keys take seconds to make: a wide window for the kill.
    let envs = [
        ("JWTD_RSA_BITS", "4096"),
        ("JWTD_KEY_ROTATION_INTERVAL", "1s"),
        ("JWTD_KEY_PREPUBLISH", "1s"),
        ("JWTD_JWKS_MAX_AGE", "1s"),
        ("JWTD_ACCESS_TOKEN_LIFETIME", "1s"),
        ("JWTD_REFRESH_TOKEN_LIFETIME", "1s"),
        ("JWTD_SLIDING_TOKEN_LIFETIME", "1s"),
        ("JWTD_SLIDING_TOKEN_REFRESH_LIFETIME", "1s"),
    ];
    run_jwtd(d, &["migrate"], &envs, None).ok();
    run_jwtd(
        d,
        &["users", "add", "erin", "--password-stdin"],
        &envs,
        Some(PASSWORD),
    )
    .ok();
    let serve = Serve::start(d, &envs, Duration::from_secs(60));
    let master =
        MasterKey::load(&MasterKeySource::File(d.join("keys/master.key"))).expect("master key");
    std::thread::sleep(rng.millis_between(200, 2500));
    serve.kill9();
    let mut before = assert_consistent_keys(&database, &master, "first kill").await;
    // Kill times are drawn up to `longest`, which grows while no rotation
    // step survives a round (a loaded machine makes 4096-bit keys slowly),
    // so the kills spread over key generation, the write and just after it.
    let mut changed = 0;
    let mut longest = 2500;
    for round in 1..=KILLS {
        let what = format!("kill {round} of {KILLS} (FAULTS_SEED={seed})");
        let serve = Serve::spawn(d, &envs);
        std::thread::sleep(rng.millis_between(150, longest));
        let log = serve.kill9();
        assert_no_panic(&log, &what);
        let after = assert_consistent_keys(&database, &master, &what).await;
        if after == before {
            longest = (longest + 1000).min(6000);
        } else {
            changed += 1;
            longest = 2500;
        }
        before = after;
    }
    assert!(
        changed >= 1,
        "the key set never changed in {KILLS} rounds: no kill landed after a rotation step"
    );

    // A restart works and issues tokens that verify (long-lived ones, so a
    // loaded machine has time to check them).
    let mut envs = envs.to_vec();
    envs.retain(|(name, _)| !name.ends_with("_LIFETIME"));
    envs.push(("JWTD_ACCESS_TOKEN_LIFETIME", "60s"));
    let serve = Serve::start(d, &envs, Duration::from_secs(60));
    let client = Client::new(&serve);
    let (status, body, _) = client.login("erin").await;
    assert_eq!(status, StatusCode::OK, "login after the crashes: {body}");
    let access = body["access"].as_str().expect("access").to_owned();
    let (status, body, _) = client
        .post("/api/token/verify/", json!({"token": access}))
        .await;
    assert_eq!(status, StatusCode::OK, "verify after the crashes: {body}");
    let jwks = serve.url("/.well-known/jwks.json");
    let offline = run_jwtd(d, &["token", "verify", &access, "--jwks", &jwks], &[], None);
    assert!(
        offline.status.success(),
        "offline verification against the live JWKS: {}",
        offline.stderr
    );
    drop(client);
    let (_, log) = serve.stop();
    assert_no_panic(&log, "restart after the crashes");
    assert_consistent_keys(&database, &master, "after the restart").await;
    eprintln!(
        "kill -9: {KILLS} kills, key set changed in {changed}, seed {seed}, {:?}",
        started.elapsed()
    );
}

// --- (d) start-up in an unusable place -----------------------------------------

/// `jwtd serve` with the database at `path` fails with one stderr line that
/// names the path, and a non-zero exit.
fn assert_startup_refused(dir: &Path, path: &Path, what: &str) {
    let url = format!("sqlite://{}", path.display());
    let mut serve = Serve::spawn(
        dir,
        &[
            ("JWTD_DATABASE_URL", url.as_str()),
            ("JWTD_ALGORITHM", "ES256"),
        ],
    );
    let listened = serve.wait_listening(Duration::from_secs(20));
    let status = serve.wait_exit(Duration::from_millis(100));
    let log = serve.kill9();
    assert!(
        listened.is_err(),
        "{what}: serve started on a database it cannot write (every login would fail): {log:#?}"
    );
    let status = status
        .unwrap_or_else(|| panic!("{what}: serve neither started nor exited in 20 s: {log:#?}"));
    assert!(!status.success(), "{what}: serve must fail: {log:#?}");
    assert_eq!(
        log.len(),
        1,
        "{what}: exactly one line on stderr, got {log:#?}"
    );
    let path_text = path.display().to_string();
    assert!(
        log[0].contains(&path_text),
        "{what}: the error names the database path {path_text}: {:?}",
        log[0]
    );
    assert!(
        !log[0].contains("panicked"),
        "{what}: no panic: {:?}",
        log[0]
    );
}

#[test]
fn startup_with_the_database_in_a_missing_or_read_only_place_is_one_clear_line() {
    const TEST: &str =
        "faults::startup_with_the_database_in_a_missing_or_read_only_place_is_one_clear_line";
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    assert_startup_refused(d, &d.join("no/such/folder/jwtd.db"), "missing directory");

    let mount = match Tmpfs::mount(&d.join("ro"), "2m") {
        Ok(mount) => mount,
        Err(why) => {
            skip(
                TEST,
                &format!("read-only part: cannot mount a tmpfs here: {why}"),
            );
            return;
        }
    };
    std::fs::create_dir(mount.path.join("empty")).expect("mkdir");
    // A database closed cleanly (serve stopped), and one left by a crash
    // (serve killed: its -wal and -shm files remain).
    let mut databases = Vec::new();
    for name in ["clean", "crashed"] {
        let database = mount.path.join(name).join("jwtd.db");
        std::fs::create_dir(database.parent().unwrap()).expect("mkdir");
        let url = format!("sqlite://{}", database.display());
        let envs = [
            ("JWTD_DATABASE_URL", url.as_str()),
            ("JWTD_ALGORITHM", "ES256"),
        ];
        if name == "clean" {
            let serve = Serve::start(d, &envs, Duration::from_secs(30));
            assert!(serve.stop().0.success(), "serve stops cleanly");
        } else {
            let leftovers = ["-wal", "-shm"]
                .map(|suffix| PathBuf::from(format!("{}{suffix}", database.display())));
            let mut tries = 0;
            while !leftovers.iter().all(|file| file.exists()) {
                tries += 1;
                assert!(
                    tries <= 3,
                    "a killed server leaves its -wal and -shm behind"
                );
                Serve::start(d, &envs, Duration::from_secs(30)).kill9();
            }
        }
        databases.push((name, database));
    }
    mount
        .remount("ro")
        .expect("a tmpfs nobody writes to remounts read-only");
    assert_startup_refused(
        d,
        &mount.path.join("empty/jwtd.db"),
        "read-only directory, no database yet",
    );
    for (name, database) in &databases {
        assert_startup_refused(
            d,
            database,
            &format!("read-only directory, database closed {name}"),
        );
    }
    drop(mount);
}
