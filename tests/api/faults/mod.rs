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
//!
//! `storage` holds (a) and (b), `crash` (c), `startup` (d); `ledger` is
//! what the server acknowledged during a fault, checked against the
//! database after it.

mod crash;
mod ledger;
mod startup;
mod storage;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
const PASSWORD: &str = "faults-Pa55word";

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

/// The server never panicked.
fn assert_no_panic(log: &[String], what: &str) {
    for line in log {
        assert!(
            !line.contains("panicked"),
            "{what}: the server panicked: {line}\n{log:#?}"
        );
    }
}
