//! (d) Start-up with the database in a missing or read-only place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Tmpfs;
use crate::process::Server;
use crate::tools::skip;

/// `jwtd serve` with the database at `path` fails with one stderr line that
/// names the path, and a non-zero exit.
fn assert_startup_refused(dir: &Path, path: &Path, what: &str) {
    let url = format!("sqlite://{}", path.display());
    let mut serve = Server::spawn(
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
    const TEST: &str = "faults::startup::startup_with_the_database_in_a_missing_or_read_only_place_is_one_clear_line";
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
            let (status, _) = Server::start(d, &envs).terminate();
            assert!(status.success(), "serve stops cleanly: {status}");
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
                Server::start(d, &envs).kill9();
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
