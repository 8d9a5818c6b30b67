//! Running the real `jwtd` binary: short commands in a session of their
//! own (no terminal, bounded time) and `jwtd serve` as a child process that
//! is killed when dropped. Shared by the CLI, session and audit tests.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a short-lived command may run before the test gives up on it.
pub(crate) const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long `serve` may take to log its listen address.
pub(crate) const LISTEN_DEADLINE: Duration = Duration::from_secs(20);

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

    /// Every line it printed, stdout then stderr.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .map(str::to_owned)
            .collect()
    }

    /// Panics unless the command failed with exactly one line on stderr
    /// that contains every one of `needles` and no trace of a panic.
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
        for forbidden in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(
                !line.to_lowercase().contains(&forbidden.to_lowercase()),
                "stderr line {line:?} contains {forbidden:?}"
            );
        }
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

pub(crate) fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Removes ANSI colour sequences from a log line.
pub(crate) fn strip_ansi(line: &str) -> String {
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

/// A child started by [`spawn_logged`].
pub(crate) struct Logged {
    pub(crate) child: Child,
    /// Every line of its stderr so far, colours removed.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    /// The thread reading stderr; it ends when the child does.
    pub(crate) reader: JoinHandle<()>,
}

/// Spawns `command` (a `jwtd serve`) with stdin and stdout closed and its
/// stderr read line by line, on a thread, into a shared log.
pub(crate) fn spawn_logged(mut command: Command) -> Logged {
    command
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
    Logged { child, log, reader }
}

/// Waits until `log` has jwtd's "listening" line (its address), `child`
/// exits, or `deadline` passes.
pub(crate) fn wait_listening(
    child: &mut Child,
    log: &Mutex<Vec<String>>,
    deadline: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let found = log.lock().unwrap().iter().find_map(|line| {
            line.contains("jwtd listening").then(|| {
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix("addr="))
                    .map(str::to_owned)
            })
        });
        if let Some(addr) = found {
            return addr.ok_or_else(|| "no addr= in the listening line".to_owned());
        }
        if let Some(status) = child.try_wait().expect("waiting for jwtd serve") {
            return Err(format!("jwtd serve exited ({status}) before listening"));
        }
        if started.elapsed() > deadline {
            return Err(format!("jwtd serve did not listen within {deadline:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `jwtd serve` child process, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `jwtd serve` on 127.0.0.1:0 in `dir` and waits (bounded) for
    /// it to log its address.
    pub(crate) fn start(dir: &Path, envs: &[(&str, &str)]) -> Server {
        Self::start_command(jwtd_command(dir, ["serve"]), envs)
    }

    /// Starts `jwtd serve` with its open-file limit set to `nofile`
    /// (`SOFT:HARD`, as util-linux's `prlimit` takes it).
    pub(crate) fn start_limited(dir: &Path, nofile: &str, envs: &[(&str, &str)]) -> Server {
        let mut command = jwtd_command(dir, ["serve"]);
        let jwtd = command.get_program().to_owned();
        let mut limited = Command::new("prlimit");
        limited
            .arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(jwtd)
            .args(command.get_args())
            .current_dir(dir);
        for (name, value) in command.get_envs() {
            match value {
                Some(value) => limited.env(name, value),
                None => limited.env_remove(name),
            };
        }
        command = limited;
        Self::start_command(command, envs)
    }

    fn start_command(mut command: Command, envs: &[(&str, &str)]) -> Server {
        command
            .env("JWTD_BIND", "127.0.0.1:0")
            .envs(envs.iter().copied());
        let Logged { mut child, log, .. } = spawn_logged(command);
        match wait_listening(&mut child, &log, LISTEN_DEADLINE) {
            Ok(addr) => Server { child, addr, log },
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{why}: {:?}", log.lock().unwrap())
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

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

    /// Kills the server and waits for it.
    pub(crate) fn stop(mut self) {
        self.kill();
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
