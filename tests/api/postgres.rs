//! A throwaway PostgreSQL cluster for the suite, from Debian's binaries
//! (`apt-get install postgresql`): initdb into a temporary folder, a free
//! port on 127.0.0.1, run as the `postgres` user when the tests run as root
//! (PostgreSQL refuses root). It starts on first use and is stopped and
//! deleted when the test process exits; each deployment gets a fresh
//! database on it.
//!
//! `JWTD_TEST_DATABASE=postgres` runs every test that touches the store on
//! PostgreSQL instead of SQLite; the replica tests use the cluster always.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Whether `test` can run: PostgreSQL's server is installed, and each of
/// `tools` too. Without them it fails under `CI`, and elsewhere says
/// SKIPPED and returns false.
pub(crate) fn available(test: &str, tools: &[&str]) -> bool {
    let mut missing = crate::tools::missing(tools);
    if find_server_binaries().is_none() {
        missing.push("postgresql");
    }
    if !missing.is_empty() {
        let why = format!("apt-get install {} first", missing.join(" "));
        crate::tools::skip(test, &why);
    }
    missing.is_empty()
}

/// Whether this run puts the deployments on PostgreSQL.
pub(crate) fn selected() -> bool {
    std::env::var("JWTD_TEST_DATABASE").is_ok_and(|db| db == "postgres")
}

/// The database URL for a deployment living in `dir`: a fresh PostgreSQL
/// database when the run selects PostgreSQL, else `dir/jwtd.db`.
pub(crate) fn database_url_for(dir: &Path) -> String {
    if selected() {
        fresh_database()
    } else {
        format!("sqlite://{}", dir.join("jwtd.db").display())
    }
}

/// A new, empty database on the suite's cluster; its URL.
pub(crate) fn fresh_database() -> String {
    shared().create_database()
}

/// The suite's cluster, shared by every test (started on first use,
/// stopped and deleted when the test process exits).
fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let cluster = Cluster::private();
        // SAFETY: registering a plain `extern "C"` function.
        unsafe { libc::atexit(stop_shared) };
        cluster
    })
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

/// Stops the shared cluster and deletes its folder, at exit.
extern "C" fn stop_shared() {
    if let Some(cluster) = SHARED.get() {
        cluster.stop();
        let _ = std::fs::remove_dir_all(&cluster.root);
    }
}

/// A PostgreSQL server this test process started, on 127.0.0.1.
pub(crate) struct Cluster {
    bin: PathBuf,
    /// The folder holding the data directory and the server's log.
    root: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
    /// `-c NAME=VALUE` settings beyond the suite's own.
    settings: Vec<String>,
    /// The running server's pid.
    pid: Mutex<Option<libc::pid_t>>,
}

/// The superuser initdb creates; the cluster trusts local TCP connections.
const SUPERUSER: &str = "jwtd";

impl Cluster {
    /// A cluster of the test's own, which it may stop and start again;
    /// stopped and deleted when dropped.
    pub(crate) fn private() -> Cluster {
        let cluster = Cluster::initialised();
        cluster.start();
        cluster
    }

    /// A private cluster that accepts only TLS connections, with a
    /// certificate for 127.0.0.1 from a throwaway authority; also returns
    /// the authority's certificate (for `sslrootcert`).
    pub(crate) fn private_tls_only() -> (Cluster, PathBuf) {
        let mut cluster = Cluster::initialised();
        let dir = cluster.root.join("tls");
        std::fs::create_dir(&dir).expect("a folder for the certificates");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &[
                    "req",
                    "-x509",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=jwtd test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                ][..],
                &ec,
            ]
            .concat(),
        );
        openssl(
            &[
                &[
                    "req",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                ][..],
                &ec,
            ]
            .concat(),
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").expect("extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        if let Some((uid, gid)) = cluster.owner {
            for file in ["server.key", "server.crt"] {
                chown(&dir.join(file), uid, gid);
            }
            chown(&dir, uid, gid);
        }
        std::fs::write(
            cluster.root.join("data/pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        cluster.settings = vec![
            "ssl=on".into(),
            format!("ssl_cert_file={}", dir.join("server.crt").display()),
            format!("ssl_key_file={}", dir.join("server.key").display()),
        ];
        cluster.start();
        (cluster, dir.join("ca.crt"))
    }

    fn initialised() -> Cluster {
        let bin = server_binaries();
        let root = tempfile::Builder::new()
            .prefix("jwtd-pg-")
            .tempdir()
            .expect("a folder for the cluster")
            .keep();
        let owner = unprivileged_owner();
        if let Some((uid, gid)) = owner {
            chown(&root, uid, gid);
        }
        let init = Command::new(bin.join("initdb"))
            .args(["--no-sync", "--auth=trust", "--encoding=UTF8", "--locale=C"])
            .arg(format!("--username={SUPERUSER}"))
            .arg("-D")
            .arg(root.join("data"))
            .current_dir(&root)
            .as_user(owner)
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        Cluster {
            bin,
            root,
            owner,
            port: free_port(),
            settings: Vec::new(),
            pid: Mutex::new(None),
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub(crate) fn start(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("server.log"))
            .expect("server log");
        if let Some((uid, gid)) = self.owner {
            chown(&self.root.join("server.log"), uid, gid);
        }
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=500"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(self.settings.iter().flat_map(|setting| ["-c", setting]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .as_user(self.owner)
            .dies_with_parent();
        let (sender, receiver) = std::sync::mpsc::channel();
        // Spawned from a thread that lives as long as the process, so the
        // parent-death signal fires only when the process ends (even by
        // SIGKILL), never when a test's thread does.
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || {
                let _ = sender.send(command.spawn().map(|child| child.id()));
                loop {
                    std::thread::park();
                }
            })
            .expect("a thread for the server");
        let pid = receiver
            .recv()
            .expect("the server thread answers")
            .expect("postgres starts") as libc::pid_t;
        *self.pid.lock().unwrap() = Some(pid);
        self.wait_until_ready();
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing that
    /// committed is lost) and waits until it has exited.
    pub(crate) fn stop(&self) {
        let Some(pid) = self.pid.lock().unwrap().take() else {
            return;
        };
        // SAFETY: signalling and reaping the server this process spawned.
        unsafe {
            libc::kill(pid, libc::SIGINT);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
    }

    /// A new, empty database on this cluster; its URL.
    pub(crate) fn create_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("jwtd_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let created = self
            .client("createdb")
            .arg(&name)
            .output()
            .expect("createdb runs");
        assert!(
            created.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        self.url(&name)
    }

    /// The URL of database `name` on this cluster.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// A client program (`createdb`, `pg_isready`) aimed at this cluster.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
        ]);
        command
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .client("pg_isready")
                .args(["-d", "postgres"])
                .output()
                .expect("pg_isready runs");
            if ready.status.success() {
                return;
            }
            let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start within a minute: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

trait CommandOptions {
    fn as_user(&mut self, owner: Option<(u32, u32)>) -> &mut Self;
    fn dies_with_parent(&mut self) -> &mut Self;
}

impl CommandOptions for Command {
    fn as_user(&mut self, owner: Option<(u32, u32)>) -> &mut Self {
        if let Some((uid, gid)) = owner {
            self.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        self
    }

    fn dies_with_parent(&mut self) -> &mut Self {
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        unsafe {
            self.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            })
        }
    }
}

/// The newest installed PostgreSQL's server binaries.
fn server_binaries() -> PathBuf {
    find_server_binaries()
        .expect("PostgreSQL's server is not installed: apt-get install postgresql")
}

fn find_server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The `postgres` user's uid and gid when the tests run as root (the
/// server refuses to run as root); `None` otherwise.
fn unprivileged_owner() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; getpwnam's result is read before any other call.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "running as root and there is no `postgres` user to run PostgreSQL as"
        );
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|err| panic!("chown {}: {err}", path.display()));
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
