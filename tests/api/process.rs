//! Running the real `jwtd` binary: short commands in a session of their
//! own (no terminal, bounded time), `jwtd serve` as a child process whose
//! stderr is kept line by line and which is killed when dropped, and a
//! [`Home`]: a temporary deployment that both run in. Every test that runs
//! the binary goes through here.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a short-lived command may run before the test gives up on it.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long `serve` may take to log its listen address (it may first make
/// a 4096-bit RSA key on a loaded machine).
const LISTEN_DEADLINE: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the child is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

pub(crate) const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
pub(crate) const SIGTERM: i32 = 15;

// --- one-shot commands ----------------------------------------------------------

/// What a finished command left behind.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Panics unless the command exited 0.
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "expected success, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command exited with `code`.
    #[track_caller]
    pub(crate) fn exits_with(self, code: i32) -> Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Every line it printed, stdout then stderr.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .map(str::to_owned)
            .collect()
    }

    /// Panics unless the command failed with nothing on stdout and exactly
    /// one line on stderr that contains every one of `needles` (as
    /// written) and no trace of a panic; returns that line.
    #[track_caller]
    pub(crate) fn one_line_error(self, needles: &[&str]) -> String {
        assert!(
            !self.status.success(),
            "expected failure, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr, got {}: {:?}",
            lines.len(),
            self.stderr
        );
        let line = lines[0].to_owned();
        assert!(!line.trim().is_empty(), "the error line is blank");
        for needle in needles {
            assert!(
                line.contains(needle),
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
            self.stdout.is_empty(),
            "nothing on stdout when refusing: {:?}",
            self.stdout
        );
        line
    }
}

/// `jwtd ARGS` in `dir`, with no `JWTD_*`, `RUST_LOG` or backtrace variables
/// inherited.
pub(crate) fn jwtd_command<I, S>(dir: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_jwtd"));
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JWTD_") {
            command.env_remove(name);
        }
    }
    for name in ["RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"] {
        command.env_remove(name);
    }
    command
}

unsafe extern "C" {
    /// POSIX `setsid(2)`, from the C library std already links.
    fn setsid() -> i32;
    /// POSIX `kill(2)`.
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

/// Runs `jwtd ARGS` in `dir` with `envs` set and `stdin` fed to it (or
/// `/dev/null`), in a session of its own so it has no controlling terminal
/// (a password prompt fails instead of waiting on the developer's tty).
pub(crate) fn jwtd_with(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&str>,
) -> Run {
    let mut command = jwtd_command(dir, args);
    command.envs(envs.iter().copied());
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            if setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
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
        // A command that fails before reading stdin closes it: not an error here.
        if let Err(err) = pipe.write_all(text.as_bytes()) {
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::BrokenPipe,
                "stdin written: {err}"
            );
        }
        // Dropping the pipe closes it: the command sees end of file.
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
            panic!(
                "jwtd {args:?} still running after {COMMAND_DEADLINE:?}; stderr: {}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// `jwtd ARGS` in `dir` with the given standard input.
pub(crate) fn jwtd(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    jwtd_with(dir, args, &[], stdin)
}

/// `jwtd keys list --json` in `dir` with `envs`: every key, as JSON.
pub(crate) fn keys_list(dir: &Path, envs: &[(&str, &str)]) -> Vec<Value> {
    let run = jwtd_with(dir, &["keys", "list", "--json"], envs, None).ok();
    let value: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("keys list --json is not JSON ({err}): {}", run.stdout));
    value.as_array().expect("a JSON array of keys").clone()
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// --- jwtd serve -------------------------------------------------------------------

/// A `jwtd serve` child. Every line of its stderr is kept, colours removed;
/// it is killed (SIGKILL, by its PID) and reaped when dropped.
pub(crate) struct Server {
    child: Child,
    addr: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `jwtd serve` on 127.0.0.1:0 in `dir` without waiting for it.
    pub(crate) fn spawn(dir: &Path, envs: &[(&str, &str)]) -> Server {
        Self::spawn_command(jwtd_command(dir, ["serve"]), envs)
    }

    /// Starts `jwtd serve` and waits (bounded) for it to log its address.
    pub(crate) fn start(dir: &Path, envs: &[(&str, &str)]) -> Server {
        Self::spawn(dir, envs).ready()
    }

    /// Starts `jwtd serve` with its open-file limit set to `nofile`
    /// (`SOFT:HARD`, as util-linux's `prlimit` takes it), and waits for it.
    pub(crate) fn start_limited(dir: &Path, nofile: &str, envs: &[(&str, &str)]) -> Server {
        let nofile = format!("--nofile={nofile}");
        Self::spawn_under(dir, &["prlimit", &nofile, "--"], envs).ready()
    }

    /// Starts `jwtd serve` under `wrapper`, a program (with its arguments)
    /// that execs the command given after them (`prlimit --nofile=… --`),
    /// without waiting for it.
    fn spawn_under(dir: &Path, wrapper: &[&str], envs: &[(&str, &str)]) -> Server {
        let command = jwtd_command(dir, ["serve"]);
        let mut wrapped = Command::new(wrapper[0]);
        wrapped
            .args(&wrapper[1..])
            .arg(command.get_program())
            .args(command.get_args())
            .current_dir(dir);
        for (name, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(name, value),
                None => wrapped.env_remove(name),
            };
        }
        Self::spawn_command(wrapped, envs)
    }

    /// Waits (bounded) until the server listens; panics with its log if
    /// it exits or takes too long.
    pub(crate) fn ready(mut self) -> Server {
        if let Err(why) = self.wait_listening(LISTEN_DEADLINE) {
            panic!("{why}; stderr: {:#?}", self.log());
        }
        self
    }

    /// Spawns `command` with stdin and stdout closed and its stderr read
    /// line by line, on a thread, into the log.
    fn spawn_command(mut command: Command, envs: &[(&str, &str)]) -> Server {
        command
            .env("JWTD_BIND", "127.0.0.1:0")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("jwtd serve starts");
        let stderr = child.stderr.take().expect("stderr pipe");
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader_log = log.clone();
        let reader = std::thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut line = Vec::new();
            // Bytes, not `lines()`: a line that is not UTF-8 must not end the log.
            while matches!(stderr.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line);
                let text = strip_ansi(text.trim_end_matches(['\n', '\r']));
                reader_log.lock().unwrap().push(text);
                line.clear();
            }
        });
        Server {
            child,
            addr: None,
            log,
            reader: Some(reader),
        }
    }

    /// Waits until the server logs its "listening" line (and returns its
    /// address), it exits, or `deadline` passes.
    pub(crate) fn wait_listening(&mut self, deadline: Duration) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let found = self
                .log()
                .iter()
                .find_map(|line| line.contains("jwtd listening").then(|| field(line, "addr")));
            if let Some(addr) = found {
                let addr = addr.ok_or_else(|| "no addr= in the listening line".to_owned())?;
                self.addr = Some(addr.clone());
                return Ok(addr);
            }
            if let Some(status) = self.child.try_wait().expect("waiting for jwtd serve") {
                return Err(format!("jwtd serve exited ({status}) before listening"));
            }
            if started.elapsed() > deadline {
                return Err(format!("jwtd serve did not listen within {deadline:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://METRICS_ADDR{path}`: the `metrics_bind` listener, as the
    /// "listening" line gives it.
    pub(crate) fn metrics_url(&self, path: &str) -> String {
        let log = self.log();
        let line = log
            .iter()
            .find(|line| line.contains("jwtd listening"))
            .expect("the server listens");
        let addr = field(line, "metrics").expect("metrics_bind is set");
        format!("http://{addr}{path}")
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> &str {
        self.addr.as_deref().expect("the server listens")
    }

    /// `http://ADDR{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `POST path` with a JSON body; the status and the JSON answer
    /// (`null` when the answer is not JSON).
    pub(crate) async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        let response = client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every stderr line so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits, without blocking the async runtime, until the log has
    /// `count` lines that contain `needle`, and returns the log; panics
    /// with `what` and the log after `within`.
    pub(crate) async fn wait_for_lines(
        &self,
        needle: &str,
        count: usize,
        within: Duration,
        what: &str,
    ) -> Vec<String> {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.iter().filter(|line| line.contains(needle)).count() >= count {
                return log;
            }
            assert!(started.elapsed() < within, "{what}: {log:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, blocking the thread, for a stderr line that satisfies
    /// `pred`, and returns it; panics with `what` and the log after
    /// `within`.
    pub(crate) fn wait_for_line(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.iter().find(|line| pred(line)) {
                return line.clone();
            }
            assert!(
                started.elapsed() < within,
                "not within {within:?}: {what}; stderr: {log:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `within` for the child to exit.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for jwtd serve") {
                return Some(status);
            }
            if started.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for a graceful exit (panicking, after a SIGKILL,
    /// past a deadline) and for the last stderr line; returns the exit
    /// status and the whole stderr.
    pub(crate) fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        signal(self.pid(), SIGTERM);
        let Some(status) = self.wait_exit(STOP_DEADLINE) else {
            self.kill();
            panic!(
                "jwtd serve ignored SIGTERM for {STOP_DEADLINE:?}; stderr: {:#?}",
                self.log()
            );
        };
        self.finish_reading();
        (status, self.log())
    }

    /// SIGKILL now; returns the whole stderr.
    pub(crate) fn kill9(mut self) -> Vec<String> {
        self.kill();
        self.finish_reading();
        self.log()
    }

    /// SIGKILL now and reap the child; the log stays readable.
    pub(crate) fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.pid(), SIGKILL);
        }
        let _ = self.child.wait();
    }

    fn finish_reading(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes ANSI colour sequences from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// --- a temporary deployment -------------------------------------------------------

/// How many `jwtd serve` processes the replica tests run on one database.
pub(crate) const REPLICAS: usize = 3;

/// The value of field `name` in a log line, text (`name=value`) or JSON
/// (`"name":"value"`).
fn field(line: &str, name: &str) -> Option<String> {
    if line.starts_with('{') {
        let value: Value = serde_json::from_str(line).ok()?;
        return value[name].as_str().map(str::to_owned);
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

/// A temporary jwtd home: a directory holding the database and master key
/// (`jwtd.db` and `master.key`, passed as absolute paths through `JWTD_*`
/// variables; the database is a fresh PostgreSQL one when the run selects
/// PostgreSQL) and the variables every command and server run with there.
pub(crate) struct Home {
    dir: TempDir,
    envs: Vec<(String, String)>,
}

impl Home {
    /// A fresh home with `settings` (configuration keys, as in
    /// `jwtd.toml`: `("algorithm", "ES256")`).
    pub(crate) fn new(settings: &[(&str, &str)]) -> Home {
        Home::with_database(settings, crate::postgres::database_url_for)
    }

    /// A fresh home on a SQLite file whatever the run selects, for the
    /// tests of SQLite's own faults.
    pub(crate) fn sqlite(settings: &[(&str, &str)]) -> Home {
        Home::with_database(settings, |dir| {
            format!("sqlite://{}", dir.join("jwtd.db").display())
        })
    }

    /// A fresh home on the database at `database_url`, whatever the run
    /// selects.
    pub(crate) fn on(database_url: &str, settings: &[(&str, &str)]) -> Home {
        Home::with_database(settings, |_| database_url.to_owned())
    }

    fn with_database(settings: &[(&str, &str)], database_url: impl Fn(&Path) -> String) -> Home {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut home = Home {
            dir,
            envs: Vec::new(),
        };
        let database = database_url(home.path());
        let master_key = home.master_key().display().to_string();
        home.set("database_url", &database);
        home.set("master_key_file", &master_key);
        for (key, value) in settings {
            home.set(key, value);
        }
        home
    }

    /// Sets the configuration key `key` (through `JWTD_KEY`).
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.set_env(&format!("JWTD_{}", key.to_uppercase()), value);
    }

    /// Sets the environment variable `name` (`RUST_LOG`, say) for every
    /// command and server.
    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        self.envs.retain(|(existing, _)| existing != name);
        self.envs.push((name.to_owned(), value.to_owned()));
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database's URL (`sqlite://…/jwtd.db` or `postgres://…`).
    pub(crate) fn database_url(&self) -> &str {
        self.envs
            .iter()
            .find(|(name, _)| name == "JWTD_DATABASE_URL")
            .map(|(_, url)| url.as_str())
            .expect("every home has a database")
    }

    /// The database file (SQLite).
    pub(crate) fn database(&self) -> PathBuf {
        self.path().join("jwtd.db")
    }

    /// The master key file.
    pub(crate) fn master_key(&self) -> PathBuf {
        self.path().join("master.key")
    }

    /// The variables commands and servers run with.
    pub(crate) fn envs(&self) -> Vec<(&str, &str)> {
        self.envs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    /// `jwtd ARGS` here, with `stdin` fed to it (or `/dev/null`).
    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        jwtd_with(self.path(), args, &self.envs(), stdin)
    }

    /// `jwtd keys list --json`.
    pub(crate) fn keys(&self) -> Vec<Value> {
        keys_list(self.path(), &self.envs())
    }

    /// The kid of the only key in `state`; panics unless there is exactly one.
    #[track_caller]
    pub(crate) fn only(&self, state: &str) -> String {
        only_in(&self.keys(), state)
    }

    /// `jwtd users add NAME --password-stdin`.
    pub(crate) fn add_user(&self, name: &str, password: &str) {
        self.run(
            &["users", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .ok();
    }

    /// Starts `jwtd serve` here without waiting for it.
    pub(crate) fn spawn_server(&self) -> Server {
        Server::spawn(self.path(), &self.envs())
    }

    /// Starts [`REPLICAS`] `jwtd serve` processes here at once and waits
    /// (bounded) until each listens.
    pub(crate) fn serve_replicas(&self) -> Vec<Server> {
        let spawned: Vec<Server> = (0..REPLICAS).map(|_| self.spawn_server()).collect();
        spawned.into_iter().map(Server::ready).collect()
    }

    /// Starts `jwtd serve` here and waits (bounded) until it listens.
    pub(crate) fn serve(&self) -> Server {
        Server::start(self.path(), &self.envs())
    }
}

/// The kid of the only key of `keys` (as `keys list --json` prints them)
/// in `state`; panics unless there is exactly one.
#[track_caller]
pub(crate) fn only_in(keys: &[Value], state: &str) -> String {
    let found: Vec<&Value> = keys.iter().filter(|k| k["state"] == state).collect();
    assert_eq!(found.len(), 1, "exactly one {state} key: {keys:#?}");
    found[0]["kid"].as_str().expect("a kid").to_owned()
}
