//! The `jwtd` command line (SPEC §2 and §6), run as a real process in a
//! fresh temporary directory with no inherited `JWTD_*` variables.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::process::{Server, jwtd, jwtd_with, keys_list};
use crate::tools::present;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// The `users list` row of `name`, split on whitespace, if any.
fn user_row(dir: &Path, name: &str) -> Option<Vec<String>> {
    let run = jwtd(dir, &["users", "list"], None).ok();
    run.stdout
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|cols| cols.get(1).map(String::as_str) == Some(name))
}

/// Whether `name` is shown as active by `users list`.
#[track_caller]
fn listed_active(dir: &Path, name: &str) -> String {
    let row = user_row(dir, name).unwrap_or_else(|| panic!("{name} is not listed"));
    row.get(2).cloned().expect("an active column")
}

async fn login(client: &reqwest::Client, server: &Server, user: &str, pass: &str) -> StatusCode {
    client
        .post(server.url("/api/token/"))
        .json(&json!({"username": user, "password": pass}))
        .send()
        .await
        .expect("login request sent")
        .status()
}

// --- migrate and users ----------------------------------------------------

#[test]
fn migrate_creates_the_database() {
    let dir = tempdir();
    jwtd(dir.path(), &["migrate"], None).ok();
    assert!(dir.path().join("jwtd.db").is_file(), "jwtd.db was created");
    // Running it again is harmless.
    jwtd(dir.path(), &["migrate"], None).ok();
}

#[test]
fn users_add_list_disable_enable_set_password() {
    let dir = tempdir();
    let d = dir.path();
    jwtd(d, &["migrate"], None).ok();

    jwtd(
        d,
        &["users", "add", "alice", "--password-stdin"],
        Some("pw\n"),
    )
    .ok();
    assert_eq!(listed_active(d, "alice"), "yes");

    let line = jwtd(
        d,
        &["users", "add", "alice", "--password-stdin"],
        Some("pw\n"),
    )
    .one_line_error(&[]);
    assert!(line.contains("alice"), "names the user: {line}");

    jwtd(d, &["users", "disable", "alice"], None).ok();
    assert_eq!(listed_active(d, "alice"), "no");
    jwtd(d, &["users", "enable", "alice"], None).ok();
    assert_eq!(listed_active(d, "alice"), "yes");

    jwtd(
        d,
        &["users", "set-password", "alice", "--password-stdin"],
        Some("new password\n"),
    )
    .ok();

    jwtd(
        d,
        &["users", "add", "bob", "--password-stdin", "--inactive"],
        Some("pw\n"),
    )
    .ok();
    assert_eq!(listed_active(d, "bob"), "no");
}

#[test]
fn users_add_refuses_bad_input() {
    let dir = tempdir();
    let d = dir.path();
    jwtd(d, &["migrate"], None).ok();

    jwtd(
        d,
        &["users", "add", "bad name", "--password-stdin"],
        Some("pw\n"),
    )
    .one_line_error(&[]);
    assert!(user_row(d, "bad").is_none());

    jwtd(d, &["users", "add", "carol", "--password-stdin"], Some("")).one_line_error(&[]);
    jwtd(
        d,
        &["users", "add", "carol", "--password-stdin"],
        Some("\n"),
    )
    .one_line_error(&[]);
    assert!(user_row(d, "carol").is_none(), "no user without a password");

    // No --password-stdin and no terminal to prompt on.
    jwtd(d, &["users", "add", "carol"], None).one_line_error(&["--password-stdin"]);
    assert!(user_row(d, "carol").is_none());
}

#[test]
fn unknown_users_are_one_line_errors() {
    let dir = tempdir();
    let d = dir.path();
    jwtd(d, &["migrate"], None).ok();
    jwtd(d, &["users", "disable", "ghost"], None).one_line_error(&["ghost"]);
    jwtd(d, &["users", "enable", "ghost"], None).one_line_error(&["ghost"]);
    jwtd(
        d,
        &["users", "set-password", "ghost", "--password-stdin"],
        Some("pw\n"),
    )
    .one_line_error(&["ghost"]);
    assert!(user_row(d, "ghost").is_none());
}

// --- configuration ----------------------------------------------------------

#[test]
fn config_flag_before_or_after_the_subcommand() {
    for args in [
        ["--config", "jwtd.toml", "migrate"],
        ["migrate", "--config", "jwtd.toml"],
    ] {
        let dir = tempdir();
        let d = dir.path();
        std::fs::write(
            d.join("jwtd.toml"),
            "database_url = \"sqlite://other.db\"\n",
        )
        .unwrap();
        jwtd(d, &args, None).ok();
        assert!(d.join("other.db").is_file(), "{args:?} created other.db");
        assert!(!d.join("jwtd.db").exists(), "{args:?} left jwtd.db alone");
    }

    // After a nested subcommand too, and every command honours it.
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(
        d.join("jwtd.toml"),
        "database_url = \"sqlite://other.db\"\n",
    )
    .unwrap();
    jwtd(
        d,
        &[
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--config",
            "jwtd.toml",
        ],
        Some("pw\n"),
    )
    .ok();
    assert!(d.join("other.db").is_file());
    let listed = jwtd(d, &["users", "list", "--config", "jwtd.toml"], None).ok();
    assert!(listed.stdout.contains("alice"), "{}", listed.stdout);
}

#[test]
fn jwtd_config_variable_names_the_file() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(
        d.join("conf.toml"),
        "database_url = \"sqlite://from-env.db\"\n",
    )
    .unwrap();
    jwtd_with(d, &["migrate"], &[("JWTD_CONFIG", "conf.toml")], None).ok();
    assert!(d.join("from-env.db").is_file());
    assert!(!d.join("jwtd.db").exists());

    // Variables override the file.
    jwtd_with(
        d,
        &["migrate"],
        &[
            ("JWTD_CONFIG", "conf.toml"),
            ("JWTD_DATABASE_URL", "sqlite://override.db"),
        ],
        None,
    )
    .ok();
    assert!(d.join("override.db").is_file());
}

/// Runs `migrate` with a config file (if any) and variables, and expects a
/// one-line error naming `needles`, before anything is created.
#[track_caller]
fn expect_config_error(toml: Option<&str>, envs: &[(&str, &str)], needles: &[&str]) {
    let dir = tempdir();
    let d = dir.path();
    let mut args = vec!["migrate"];
    if let Some(text) = toml {
        std::fs::write(d.join("jwtd.toml"), text).unwrap();
        args.extend(["--config", "jwtd.toml"]);
    }
    jwtd_with(d, &args, envs, None).one_line_error(needles);
    assert!(
        !d.join("jwtd.db").exists(),
        "a bad configuration stops before the database is created"
    );
}

#[test]
fn unknown_key_in_the_config_file() {
    expect_config_error(
        Some("acces_token_lifetime = \"5m\"\n"),
        &[],
        &["acces_token_lifetime"],
    );
}

#[test]
fn unknown_jwtd_variable() {
    expect_config_error(None, &[("JWTD_FOO", "1")], &["JWTD_FOO"]);
}

#[test]
fn bad_rsa_bits() {
    expect_config_error(None, &[("JWTD_RSA_BITS", "1024")], &["rsa_bits"]);
    expect_config_error(Some("rsa_bits = 1024\n"), &[], &["rsa_bits"]);
}

#[test]
fn bad_duration() {
    expect_config_error(
        None,
        &[("JWTD_ACCESS_TOKEN_LIFETIME", "5 minutes")],
        &["access_token_lifetime"],
    );
}

#[test]
fn jwks_max_age_longer_than_key_prepublish() {
    expect_config_error(None, &[("JWTD_JWKS_MAX_AGE", "2d")], &["jwks_max_age"]);
    expect_config_error(
        Some("key_prepublish = \"1m\"\njwks_max_age = \"5m\"\n"),
        &[],
        &["jwks_max_age"],
    );
}

#[test]
fn config_file_that_is_not_toml() {
    expect_config_error(Some("this is not [toml\n= at all\n"), &[], &["jwtd.toml"]);
}

#[test]
fn missing_config_file() {
    let dir = tempdir();
    let d = dir.path();
    jwtd(d, &["--config", "nope.toml", "migrate"], None).one_line_error(&["nope.toml"]);
    jwtd_with(d, &["migrate"], &[("JWTD_CONFIG", "nope.toml")], None)
        .one_line_error(&["nope.toml"]);
    assert!(!d.join("jwtd.db").exists());
}

#[test]
fn every_command_checks_the_configuration() {
    let dir = tempdir();
    let d = dir.path();
    let envs = [("JWTD_RSA_BITS", "1024")];
    for args in [
        &["serve"][..],
        &["users", "list"],
        &["keys", "list"],
        &["users", "disable", "alice"],
    ] {
        jwtd_with(d, args, &envs, None).one_line_error(&["rsa_bits"]);
    }
    assert!(!d.join("jwtd.db").exists());
    assert!(!d.join("keys/master.key").exists());
}

// --- bad arguments ------------------------------------------------------------

#[test]
fn bad_arguments_are_one_line_errors() {
    let dir = tempdir();
    let d = dir.path();
    for args in [
        &["frobnicate"][..],
        &["users", "add"],
        &["users", "add", "alice", "--bogus"],
        &["keys", "list", "extra"],
        &[],
    ] {
        jwtd(d, args, None).one_line_error(&[]);
    }
    assert!(!d.join("jwtd.db").exists());
}

// --- serve, keys --------------------------------------------------------------

#[tokio::test]
async fn serve_creates_keys_and_the_cli_manages_users_live() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempdir();
    let d = dir.path();
    let server = Server::start(d, &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let health = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz request sent");
    assert_eq!(health.status(), StatusCode::OK);

    let master = d.join("keys/master.key");
    let mode = std::fs::metadata(&master)
        .expect("keys/master.key exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "master key mode is {:o}", mode & 0o777);
    assert!(d.join("jwtd.db").is_file());

    // Users made by the CLI can log in to the running server.
    jwtd(
        d,
        &["users", "add", "alice", "--password-stdin"],
        Some("pw\n"),
    )
    .ok();
    assert_eq!(login(&client, &server, "alice", "pw").await, StatusCode::OK);
    assert_eq!(
        login(&client, &server, "alice", "pw\n").await,
        StatusCode::UNAUTHORIZED,
        "the trailing newline is not part of the password"
    );

    // Only one trailing newline is stripped.
    jwtd(
        d,
        &["users", "add", "bob", "--password-stdin"],
        Some("two\n\n"),
    )
    .ok();
    assert_eq!(
        login(&client, &server, "bob", "two\n").await,
        StatusCode::OK
    );
    assert_eq!(
        login(&client, &server, "bob", "two").await,
        StatusCode::UNAUTHORIZED
    );

    jwtd(
        d,
        &["users", "set-password", "alice", "--password-stdin"],
        Some("pw2\n"),
    )
    .ok();
    assert_eq!(
        login(&client, &server, "alice", "pw").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&client, &server, "alice", "pw2").await,
        StatusCode::OK
    );

    jwtd(d, &["users", "disable", "alice"], None).ok();
    assert_eq!(
        login(&client, &server, "alice", "pw2").await,
        StatusCode::UNAUTHORIZED
    );
    jwtd(d, &["users", "enable", "alice"], None).ok();
    assert_eq!(
        login(&client, &server, "alice", "pw2").await,
        StatusCode::OK
    );

    server.kill9();

    let keys = keys_list(d, &[]);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let mut states: Vec<&str> = keys.iter().map(|k| k["state"].as_str().unwrap()).collect();
    states.sort_unstable();
    assert_eq!(states, ["active", "next"]);
    for key in &keys {
        assert_eq!(key["alg"], "RS256", "{key}");
    }

    let table = jwtd(d, &["keys", "list"], None).ok();
    for key in &keys {
        let kid = key["kid"].as_str().expect("a kid");
        assert!(!kid.is_empty());
        assert!(table.stdout.contains(kid), "{kid} in {}", table.stdout);
    }
}

#[test]
fn serve_refuses_a_different_master_key() {
    let dir = tempdir();
    let d = dir.path();
    Server::start(d, &[]).kill9();
    let before = keys_list(d, &[]);
    assert_eq!(before.len(), 2, "{before:?}");

    // A valid key, but not the one the private keys were sealed with.
    let other = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="; // 32 bytes
    let line = jwtd_with(
        d,
        &["serve"],
        &[("JWTD_BIND", "127.0.0.1:0"), ("JWTD_MASTER_KEY", other)],
        None,
    )
    .one_line_error(&[]);
    assert!(
        line.to_lowercase().contains("master key"),
        "mentions the master key: {line}"
    );

    let after = keys_list(d, &[]);
    assert_eq!(before, after, "no key was created or changed");
}

#[test]
fn a_closed_standard_output_ends_a_command_quietly() {
    let dir = tempdir();
    let d = dir.path();
    for name in ["alice", "bob"] {
        jwtd(d, &["users", "add", name, "--password-stdin"], Some("pw\n")).ok();
    }
    // The reading end is closed before jwtd writes: every write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = crate::process::jwtd_command(d, ["users", "list"]);
    let output = command
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn keys_rotate_promotes_the_published_next_key_whatever_its_algorithm() {
    let dir = tempdir();
    let d = dir.path();
    Server::start(d, &[("JWTD_ALGORITHM", "ES256")]).kill9();
    let next_of = |keys: &[Value]| {
        keys.iter()
            .find(|key| key["state"] == "next")
            .map(|key| (key["kid"].clone(), key["alg"].clone()))
            .expect("a next key")
    };
    let (next, alg) = next_of(&keys_list(d, &[]));
    assert_eq!(alg, "ES256");
    // Run without JWTD_ALGORITHM: its configuration says RS256.
    jwtd(d, &["keys", "rotate"], None).ok();
    assert_eq!(
        next_of(&keys_list(d, &[])),
        (next.clone(), alg.clone()),
        "the published next key is kept"
    );
    jwtd(d, &["keys", "rotate", "--now"], None).ok();
    let keys = keys_list(d, &[]);
    let active = keys.iter().find(|key| key["state"] == "active").unwrap();
    assert_eq!(active["kid"], next, "the next key took over");
    assert_eq!(next_of(&keys).1, "ES256", "its successor has its algorithm");
}

/// What bash's completion offers for `words`, the last one being completed,
/// with the script `jwtd completions bash` printed.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; _jwtd jwtd \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_offers_the_subcommands_without_any_configuration() {
    let dir = tempdir();
    // A broken configuration does not matter: completions read none.
    let run = jwtd_with(
        dir.path(),
        &["completions", "bash"],
        &[("JWTD_BIND", "nonsense")],
        None,
    )
    .ok();
    let script = dir.path().join("jwtd.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    let top = bash_completes(&script, &["jwtd", ""]);
    for command in [
        "serve",
        "migrate",
        "users",
        "keys",
        "token",
        "flush-expired",
        "copy-store",
        "completions",
        "man",
    ] {
        assert!(
            top.contains(&command.to_owned()),
            "`jwtd <TAB>` offers {command}: {top:?}"
        );
    }
    let keys = bash_completes(&script, &["jwtd", "keys", "re"]);
    assert_eq!(keys, ["revoke", "rewrap"], "`jwtd keys re<TAB>`");
    let shells = bash_completes(&script, &["jwtd", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            shells.contains(&shell.to_owned()),
            "`jwtd completions <TAB>`: {shells:?}"
        );
    }
    assert!(
        dir.path().read_dir().unwrap().count() == 1,
        "no database or key was created"
    );
}

#[test]
fn zsh_and_fish_completion_scripts_parse_in_their_shells() {
    let dir = tempdir();
    for (shell, check) in [
        ("zsh", vec!["zsh", "-n"]),
        ("fish", vec!["fish", "--no-execute"]),
    ] {
        if !present(
            "cli::zsh_and_fish_completion_scripts_parse_in_their_shells",
            &[shell],
        ) {
            continue;
        }
        let run = jwtd(dir.path(), &["completions", shell], None).ok();
        assert!(
            run.stdout.contains("rewrap"),
            "{shell} script knows `keys rewrap`"
        );
        let script = dir.path().join(format!("jwtd.{shell}"));
        std::fs::write(&script, &run.stdout).unwrap();
        let out = std::process::Command::new(check[0])
            .args(&check[1..])
            .arg(&script)
            .output()
            .expect("the shell runs");
        assert!(
            out.status.success(),
            "{shell} refuses the script: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completions_for_an_unknown_shell_are_one_line_of_error() {
    let dir = tempdir();
    jwtd(dir.path(), &["completions", "powershell"], None)
        .exits_with(2)
        .one_line_error(&["powershell"]);
}

#[test]
fn man_pages_cover_every_subcommand_and_render_without_warnings() {
    const TEST: &str = "cli::man_pages_cover_every_subcommand_and_render_without_warnings";
    if !present(TEST, &["groff"]) {
        return;
    }
    let dir = tempdir();
    let pages = dir.path().join("man/man1");
    // A broken configuration does not matter: the pages read none.
    jwtd_with(
        dir.path(),
        &["man", pages.to_str().unwrap()],
        &[("JWTD_BIND", "nonsense")],
        None,
    )
    .ok();
    let written: Vec<String> = (pages.read_dir().unwrap())
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "jwtd.1",
        "jwtd-serve.1",
        "jwtd-users-add.1",
        "jwtd-keys-rotate.1",
        "jwtd-keys-rewrap.1",
        "jwtd-token-verify.1",
        "jwtd-copy-store.1",
        "jwtd-completions.1",
        "jwtd-man.1",
    ] {
        assert!(written.contains(&page.to_owned()), "{page} in {written:?}");
    }
    for page in &written {
        // -k: UTF-8 input, as man(1) reads it; -ww: every warning; -z: no
        // output but the warnings.
        let out = std::process::Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(pages.join(page))
            .output()
            .expect("groff runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new("groff")
        .args(["-man", "-Tutf8"])
        .arg(pages.join("jwtd-users-add.1"))
        .output()
        .expect("groff runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--password-stdin"), "{text}");
}

#[test]
fn man_pages_into_a_path_that_cannot_be_a_directory_are_one_line_of_error() {
    let dir = tempdir();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    jwtd(
        dir.path(),
        &["man", file.join("man1").to_str().unwrap()],
        None,
    )
    .exits_with(1)
    .one_line_error(&["manual pages", "man1"]);
}
