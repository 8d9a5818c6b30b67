//! Tests that need a program from outside the project (strace, zsh,
//! PostgreSQL…): under `CI` a missing one fails the test, since the check
//! would never be made; elsewhere the test says SKIPPED and returns.

use std::process::{Command, Stdio};

/// Reports a check that cannot run on this machine; fails under `CI`.
pub(crate) fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run: {why} (CI is set, so this fails instead of skipping)"
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// Those of `tools` that are not on the `PATH`.
pub(crate) fn missing<'a>(tools: &[&'a str]) -> Vec<&'a str> {
    (tools.iter().copied())
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .collect()
}

/// Whether every one of `tools` is installed (package names as apt knows
/// them); if not, `skip`s `test`.
pub(crate) fn present(test: &str, tools: &[&str]) -> bool {
    let missing = missing(tools);
    if !missing.is_empty() {
        skip(
            test,
            &format!("apt-get install {} first", missing.join(" ")),
        );
    }
    missing.is_empty()
}
