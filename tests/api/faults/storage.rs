//! Faults of the disk under a running server: (a) its filesystem turns
//! read-only, (b) it fills up.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::ledger::{Client, Ledger, assert_database_matches, assert_recovers};
use super::{PASSWORD, Tmpfs, assert_no_panic};
use crate::process::{Home, SIGINT, signal};
use crate::tools::skip;

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

// --- (a) read-only filesystem ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_filesystem_fails_cleanly_and_the_server_recovers() {
    const TEST: &str =
        "faults::storage::a_read_only_filesystem_fails_cleanly_and_the_server_recovers";
    if !strace_available() {
        skip(TEST, "strace is not installed (apt-get install strace)");
        return;
    }
    let home = Home::sqlite(&[("algorithm", "ES256")]);
    let database = home.database();
    home.run(&["migrate"], None).ok();
    home.add_user("erin", PASSWORD);
    let serve = home.serve();
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
    let (status, log) = serve.terminate();
    assert_no_panic(&log, "read-only filesystem");
    assert!(status.success(), "serve stops cleanly: {status}");
    assert_database_matches(&database, &ledger, "read-only filesystem").await;
}

// --- (b) disk full -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_the_server_recovers() {
    const TEST: &str = "faults::storage::a_full_disk_fails_cleanly_and_the_server_recovers";
    let mut home = Home::sqlite(&[("algorithm", "ES256")]);
    let mount = match Tmpfs::mount(&home.path().join("disk"), "2m") {
        Ok(mount) => mount,
        Err(why) => {
            skip(TEST, &format!("cannot mount a tmpfs here: {why}"));
            return;
        }
    };
    let database = mount.path.join("jwtd.db");
    home.set("database_url", &format!("sqlite://{}", database.display()));
    home.run(&["migrate"], None).ok();
    home.add_user("erin", PASSWORD);
    let serve = home.serve();
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
    let (status, log) = serve.terminate();
    assert_no_panic(&log, "disk full");
    assert!(status.success(), "serve stops cleanly: {status}");
    assert_database_matches(&database, &ledger, "disk full").await;
    eprintln!(
        "disk full: {} requests failed cleanly in {attempts} rounds, slowest answer {:?}",
        ledger.failures, ledger.slowest
    );
    drop(mount);
}
