//! Replacing the master key (SPEC §8) with real `jwtd serve` processes:
//! put a new key first, restart, `jwtd keys rewrap` while the server
//! serves, remove the old key, restart, and every token issued before
//! still works; and start-up refuses a key file that opens none of the
//! stored private keys, naming the key.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::poll_until;
use crate::process::{Home, Server, jwtd_with};
use crate::rotation_live::{client, login, verify_at};

/// Requests the load makes before `keys rewrap` starts, and again after
/// it ends, so the re-sealing happens in the middle of a stream.
const LOAD_AROUND_REWRAP: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_is_replaced_under_load_and_every_earlier_token_still_works() {
    let home = Home::new(&[("algorithm", "ES256")]);
    home.add_user("alice", "pw");
    let server = home.serve();
    let old_key = read_key_file(&home);
    let client = client();
    let (access, refresh) = login(&client, &server.url(""), "alice", "pw").await;
    let old = sealed_with_all(&home.keys());
    stop(server);

    let new_key = fresh_key();
    write_key_file(&home, &[&new_key, &old_key]);
    let server = home.serve();
    assert_eq!(
        sealed_with_all(&home.keys()),
        old,
        "a restart alone changes no sealed key"
    );
    let load = Load::start(server.url(""));
    load.wait_for(LOAD_AROUND_REWRAP).await;
    let rewrap = run_blocking(&home, &["keys", "rewrap"]).await;
    let counted = load.count();
    load.wait_for(counted + LOAD_AROUND_REWRAP).await;
    let requests = load.stop().await;
    let line = rewrap.stdout.trim();
    assert_eq!(rewrap.stdout.lines().count(), 1, "{}", rewrap.stdout);
    assert!(line.starts_with("re-sealed 2 private key(s)"), "{line}");
    let new = sealed_with_all(&home.keys());
    assert_ne!(new, old, "every key is sealed under another master key");
    assert!(line.contains(&new), "{line} names {new}");
    assert!(
        requests >= 2 * LOAD_AROUND_REWRAP,
        "logins and refreshes kept being answered ({requests})"
    );
    stop(server);

    write_key_file(&home, &[&new_key]);
    let server = home.serve();
    let base = server.url("");
    for token in [&access, &refresh] {
        let (status, body) = verify_at(&client, &base, token).await;
        assert_eq!(status, StatusCode::OK, "a token issued before: {body}");
    }
    let (status, body) = refresh_at(&client, &base, &refresh).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old refresh token refreshes: {body}"
    );
    login(&client, &base, "alice", "pw").await;
    let again = home.run(&["keys", "rewrap"], None).ok();
    assert!(
        again.stdout.contains(&format!(
            "re-sealed 0 private key(s) under master key {new}"
        )),
        "{}",
        again.stdout
    );
}

#[test]
fn a_key_file_that_opens_no_stored_key_refuses_to_start_and_rewrap_changes_nothing() {
    let home = Home::new(&[("algorithm", "ES256")]);
    stop(home.serve());
    let before = home.keys();
    let fingerprint = sealed_with_all(&before);
    write_key_file(&home, &[&fresh_key()]);

    let line = serve_once(&home).one_line_error(&[
        "opens with none of the configured master keys",
        &fingerprint,
    ]);
    assert!(names_a_kid(&line, &before), "{line}");
    let line = home
        .run(&["keys", "rewrap"], None)
        .one_line_error(&["opens with none of the configured master keys"]);
    assert!(names_a_kid(&line, &before), "{line}");
    assert_eq!(home.keys(), before, "nothing changed");
}

/// Start-up opens every stored private key, not only those that sign or
/// are about to: retiring keys sealed under a master key since removed
/// are named.
#[test]
fn start_up_checks_keys_that_no_longer_sign() {
    let home = Home::new(&[("algorithm", "ES256")]);
    stop(home.serve());
    let old_key = read_key_file(&home);
    let old = sealed_with_all(&home.keys());

    // With a new key first, three rotations a second apart (dates are
    // whole seconds) leave the two keys sealed under the old one retiring
    // behind a third, and every key that signs or waits sealed anew.
    write_key_file(&home, &[&fresh_key(), &old_key]);
    for round in 0..3 {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
        home.run(&["keys", "rotate", "--now"], None).ok();
    }
    let keys = home.keys();
    let under_old: Vec<&str> = keys
        .iter()
        .filter(|key| key["sealed_with"] == old.as_str())
        .map(|key| key["kid"].as_str().expect("a kid"))
        .collect();
    assert_eq!(under_old.len(), 2, "{keys:#?}");
    for key in keys.iter().filter(|key| key["sealed_with"] == old.as_str()) {
        assert_eq!(key["state"], "retiring", "{keys:#?}");
    }

    write_key_file(&home, &[&read_key_file(&home)]);
    let line = serve_once(&home).one_line_error(&[&old]);
    assert!(
        under_old.iter().any(|kid| line.contains(kid)),
        "names a key sealed under the removed master key: {line}"
    );
}

// --- helpers -----------------------------------------------------------------------

/// A stream of logins, each followed by a refresh, against one server;
/// every answer must be 200.
struct Load {
    done: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(base: String) -> Load {
        let done = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (counter, stop) = (done.clone(), stopping.clone());
        let task = tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                let (_, refresh) = login(&client, &base, "alice", "pw").await;
                let (status, body) = refresh_at(&client, &base, &refresh).await;
                assert_eq!(status, StatusCode::OK, "refresh under load: {body}");
                counter.fetch_add(2, Ordering::Relaxed);
            }
        });
        Load {
            done,
            stopping,
            task,
        }
    }

    fn count(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `count` requests have been answered.
    async fn wait_for(&self, count: usize) {
        poll_until(Duration::from_secs(30), "the load to go on", async || {
            assert!(!self.task.is_finished(), "the load stopped early");
            (self.count() >= count).then_some(())
        })
        .await;
    }

    /// Stops the load; panics if a request failed. Returns how many were
    /// answered.
    async fn stop(self) -> usize {
        self.stopping.store(true, Ordering::Relaxed);
        let finished = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the load stops");
        if let Err(err) = finished {
            std::panic::resume_unwind(err.into_panic());
        }
        self.done.load(Ordering::Relaxed)
    }
}

async fn refresh_at(client: &reqwest::Client, base: &str, refresh: &str) -> (StatusCode, Value) {
    let response = client
        .post(format!("{base}/api/token/refresh/"))
        .json(&json!({"refresh": refresh}))
        .send()
        .await
        .expect("refresh request sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `jwtd ARGS` off the async runtime, so the load keeps running; it must
/// succeed.
async fn run_blocking(home: &Home, args: &[&str]) -> crate::process::Run {
    let (dir, envs) = (home.path().to_owned(), owned(&home.envs()));
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        jwtd_with(&dir, &args, &envs, None).ok()
    })
    .await
    .expect("the command ran")
}

fn owned(envs: &[(&str, &str)]) -> Vec<(String, String)> {
    envs.iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// `jwtd serve` here, on an ephemeral port, expected to refuse.
fn serve_once(home: &Home) -> crate::process::Run {
    let mut envs = home.envs();
    envs.push(("JWTD_BIND", "127.0.0.1:0"));
    jwtd_with(home.path(), &["serve"], &envs, None)
}

/// Stops a server gracefully; it must exit 0.
fn stop(server: Server) {
    let (status, log) = server.terminate();
    assert!(status.success(), "{status}: {log:#?}");
}

/// The one fingerprint every key that holds a private key was sealed with.
#[track_caller]
fn sealed_with_all(keys: &[Value]) -> String {
    let sealed: Vec<&str> = keys
        .iter()
        .filter_map(|key| key["sealed_with"].as_str())
        .collect();
    assert!(!sealed.is_empty(), "keys with a private key: {keys:#?}");
    assert!(
        sealed.iter().all(|fingerprint| *fingerprint == sealed[0]),
        "one master key sealed them all: {keys:#?}"
    );
    assert_eq!(sealed[0].len(), 16, "16 hex digits: {}", sealed[0]);
    sealed[0].to_owned()
}

fn names_a_kid(line: &str, keys: &[Value]) -> bool {
    keys.iter()
        .filter_map(|key| key["kid"].as_str())
        .any(|kid| line.contains(kid))
}

fn fresh_key() -> String {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .expect("random bytes");
    STANDARD.encode(bytes)
}

/// The first key of the master key file.
fn read_key_file(home: &Home) -> String {
    let text = std::fs::read_to_string(home.master_key()).expect("the master key file");
    text.lines().next().expect("a key").trim().to_owned()
}

/// Writes the master key file, one key a line, readable by its owner only.
fn write_key_file(home: &Home, keys: &[&str]) {
    let path = home.master_key();
    std::fs::write(&path, format!("{}\n", keys.join("\n"))).expect("key file written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}
