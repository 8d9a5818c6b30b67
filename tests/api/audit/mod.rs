//! The audit log, checked on a real `jwtd serve` child
//! at `RUST_LOG=debug` and at `RUST_LOG=trace`, with all of its stderr and
//! all the output of every CLI command captured. Every audited action (each
//! login success, failure and throttling, a refresh-token reuse and the
//! family it revokes, each key created, activated, retired and revoked, each
//! logout-all) must leave exactly one structured event, named by its
//! `event=` field; and no captured line may carry a token issued during the
//! run (nor its payload or signature part), a password, the master key, any
//! 40-character base64 (or hex) window of a private key, or `PRIVATE KEY`.
//!
//! `events` reads the events and counts them; `secrets` knows what must
//! never leak and finds it.

mod events;
mod secrets;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use jwtd::config::MasterKeySource;
use jwtd::testing::MasterKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use self::events::{Done, check_events, events_in, fields_of};
use self::secrets::{KeySnapshots, Secrets, public_parts};
use crate::db;
use crate::process::{Home, Run, Server};

// --- the scenario ------------------------------------------------------------

const ALICE_PASSWORD: &str = "alice-Pa55word-Qx7v-audit";
const CAROL_PASSWORD: &str = "carol-Pa55word-Zr4m-audit";
const WRONG_PASSWORD: &str = "wrong-Pa55word-Hk2p-audit";
const GUESS_PASSWORD: &str = "guess-Pa55word-Lw9d-audit";
const CAROL_WRONG: &str = "carol-wrong-Nq3s-audit";

struct Scenario {
    home: Home,
    client: reqwest::Client,
    /// (source, line) of every CLI command's output.
    cli_lines: Vec<(String, String)>,
    secrets: Secrets,
    done: Done,
    /// Every CLI command's stderr lines (its log), for the format check.
    cli_log: Vec<(String, String)>,
}

impl Scenario {
    /// Runs a CLI command with the scenario's settings; keeps its output.
    fn cli(&mut self, args: &[&str], stdin: Option<&str>) -> Run {
        let output = self.home.run(args, stdin).ok();
        let source = format!("`jwtd {}`", args.join(" "));
        for line in output.lines() {
            self.cli_lines.push((source.clone(), line));
        }
        for line in output.stderr.lines() {
            self.cli_log.push((source.clone(), line.to_owned()));
        }
        output
    }

    async fn post(&self, serve: &Server, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(serve.url(path))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Logs in; counts the outcome; keeps the tokens as secrets.
    async fn login(&mut self, serve: &Server, path: &str, user: &str, password: &str) -> Value {
        let (status, body) = self
            .post(serve, path, json!({"username": user, "password": password}))
            .await;
        match status {
            StatusCode::OK => {
                self.done.logins_ok += 1;
                for (name, token) in body.as_object().expect("token object") {
                    self.secrets
                        .add_token(&format!("{name} token"), token.as_str().expect("a token"));
                }
            }
            StatusCode::UNAUTHORIZED => self.done.logins_failed += 1,
            StatusCode::TOO_MANY_REQUESTS => self.done.logins_throttled += 1,
            other => panic!("login {user}: unexpected {other}: {body}"),
        }
        body
    }

    /// POSTs and expects `status`; keeps any token in the answer.
    async fn expect(&mut self, serve: &Server, path: &str, body: Value, want: StatusCode) -> Value {
        let (status, body) = self.post(serve, path, body).await;
        assert_eq!(status, want, "POST {path}: {body}");
        if let Some(fields) = body.as_object() {
            for (name, value) in fields {
                if let Some(token) = value.as_str().filter(|t| t.split('.').count() == 3) {
                    self.secrets.add_token(&format!("{name} token"), token);
                }
            }
        }
        body
    }
}

/// Runs every audited action against a `jwtd serve` child logging at
/// `level`, then checks the events and greps every captured line.
async fn audit_scenario(level: &str, log_format: &str) {
    let mut home = Home::new(&[
        ("key_rotation_interval", "3s"),
        ("key_prepublish", "1s"),
        ("jwks_max_age", "1s"),
        ("access_token_lifetime", "2s"),
        ("refresh_token_lifetime", "2s"),
        ("sliding_token_lifetime", "2s"),
        ("sliding_token_refresh_lifetime", "2s"),
        ("login_failures_per_user", "2"),
        ("log_format", log_format),
    ]);
    home.set_env("RUST_LOG", level);
    let database = home.database_url().to_owned();
    let mut s = Scenario {
        home,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        cli_lines: Vec::new(),
        secrets: Secrets::default(),
        done: Done::default(),
        cli_log: Vec::new(),
    };
    let serve = s.home.serve();
    let snapshots = KeySnapshots::start(&database);

    // Users, through the CLI (the password on stdin).
    s.cli(
        &["users", "add", "alice", "--password-stdin"],
        Some(&format!("{ALICE_PASSWORD}\n")),
    );
    s.cli(
        &["users", "add", "carol", "--password-stdin"],
        Some(&format!("{CAROL_PASSWORD}\n")),
    );

    // Failed logins: an unknown user, a wrong password; then a success.
    s.login(&serve, "/api/token/", "nobody-here", GUESS_PASSWORD)
        .await;
    s.login(&serve, "/api/token/", "alice", WRONG_PASSWORD)
        .await;
    let first = s
        .login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    let first_refresh = first["refresh"].as_str().expect("refresh").to_owned();

    // Refresh, then reuse of the rotated-away token: the family is revoked.
    let refreshed = s
        .expect(
            &serve,
            "/api/token/refresh/",
            json!({"refresh": first_refresh}),
            StatusCode::OK,
        )
        .await;
    assert!(refreshed["refresh"].is_string(), "rotation is on");
    let reuse = s
        .expect(
            &serve,
            "/api/token/refresh/",
            json!({"refresh": first_refresh}),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(reuse["detail"], "Token is blacklisted");
    s.done.reuses += 1;

    // Blacklist.
    let pair = s
        .login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    s.expect(
        &serve,
        "/api/token/blacklist/",
        json!({"refresh": pair["refresh"]}),
        StatusCode::OK,
    )
    .await;

    // Logout-all over HTTP, then through the CLI.
    let pair = s
        .login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    let access = pair["access"].as_str().expect("access").to_owned();
    let response = s
        .client
        .post(serve.url("/api/token/logout-all/"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("logout-all sent");
    assert_eq!(response.status(), StatusCode::OK, "logout-all over HTTP");
    s.cli(&["users", "logout-all", "alice"], None);

    // Sliding login and refresh.
    let sliding = s
        .login(&serve, "/api/token/sliding/", "alice", ALICE_PASSWORD)
        .await;
    s.expect(
        &serve,
        "/api/token/sliding/refresh/",
        json!({"token": sliding["token"]}),
        StatusCode::OK,
    )
    .await;

    // Throttling: two failures for carol, then a 429.
    s.login(&serve, "/api/token/", "carol", CAROL_WRONG).await;
    s.login(&serve, "/api/token/", "carol", CAROL_WRONG).await;
    s.login(&serve, "/api/token/", "carol", CAROL_PASSWORD)
        .await;
    assert_eq!(
        s.done.logins_throttled, 1,
        "carol's third login is throttled"
    );

    // Keys: a forced rotation, then the revocation of the active key.
    s.cli(&["keys", "rotate", "--now"], None);
    let listed: Value =
        serde_json::from_str(&s.cli(&["keys", "list", "--json"], None).stdout).expect("JSON");
    let active = listed
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["state"] == "active")
        .expect("an active key")["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    s.cli(&["keys", "revoke", &active], None);

    // A login signed by the key that took over, then the retirement of the
    // key `rotate --now` retired (its tokens live 2 s, plus a 2 s margin).
    s.login(&serve, "/api/token/", "alice", ALICE_PASSWORD)
        .await;
    serve.wait_for_line(Duration::from_secs(20), "a key_retired event", |line| {
        fields_of(line).get("event").map(String::as_str) == Some("key_retired")
    });

    // Close the client's idle connections so the graceful stop is quick.
    s.client = reqwest::Client::new();
    let (status, server_lines) = serve.terminate();
    assert!(status.success(), "jwtd serve exits 0 on SIGTERM: {status}");
    let sealed = snapshots.finish().await;

    // Everything captured, and the final key set.
    let pool = db::Database::connect(&database).await;
    let keys = db::keys(&pool).await;
    pool.close().await;
    let mut captured: Vec<(String, String)> = server_lines
        .iter()
        .map(|line| ("`jwtd serve`".to_owned(), line.clone()))
        .collect();
    captured.extend(s.cli_lines.iter().cloned());

    let mut problems = Vec::new();
    if log_format == "json" {
        let server_log = server_lines
            .iter()
            .map(|line| ("`jwtd serve`".to_owned(), line.clone()));
        for (source, line) in server_log.chain(s.cli_log.iter().cloned()) {
            if !serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|v| v.is_object()) {
                problems.push(format!("{source}: not a JSON object: {line}"));
            }
        }
    }
    check_events(&server_lines, &s.cli_lines, &keys, &s.done, &mut problems);

    // Secrets: passwords, the master key, every private key seen.
    for password in [
        ALICE_PASSWORD,
        CAROL_PASSWORD,
        WRONG_PASSWORD,
        GUESS_PASSWORD,
        CAROL_WRONG,
    ] {
        s.secrets.add(format!("password {password:?}"), password);
    }
    let master_path = s.home.master_key();
    let master_text = std::fs::read_to_string(&master_path).expect("the master key file");
    let master_text = master_text.trim();
    let master_bytes = STANDARD.decode(master_text).expect("master key is base64");
    s.secrets.add("master key (base64)", master_text);
    s.secrets
        .add("master key (base64url)", URL_SAFE.encode(&master_bytes));
    let master_hex: String = master_bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.secrets.add("master key (hex)", master_hex);
    let master = MasterKey::load(&MasterKeySource::File(master_path)).expect("master key loads");
    for key in &keys {
        if !sealed.contains_key(&key.kid) {
            problems.push(format!(
                "key {} ({}) was never seen with its private key: the leak check would miss it",
                key.kid, key.state
            ));
        }
    }
    for (kid, (sealed, public_jwk)) in &sealed {
        let pkcs8 = master.open(kid, sealed).expect("stored key decrypts");
        s.secrets
            .add_private_key(kid, &pkcs8, &public_parts(public_jwk));
    }
    // The check itself must bite: a token, and a private key as PEM lines.
    let (kid, (sealed_key, _)) = sealed.iter().next().expect("a private key was seen");
    let pem_body = STANDARD.encode(master.open(kid, sealed_key).expect("decrypts").as_slice());
    let planted: Vec<(String, String)> = pem_body
        .as_bytes()
        .chunks(64)
        .map(|line| {
            (
                "planted".to_owned(),
                String::from_utf8_lossy(line).into_owned(),
            )
        })
        .chain([("planted".to_owned(), format!("token={first_refresh}"))])
        .collect();
    let caught = s.secrets.leaks(&planted);
    assert!(
        caught.iter().any(|l| l.contains("private key"))
            && caught.iter().any(|l| l.contains("refresh token")),
        "the leak check misses planted secrets: {caught:#?}"
    );
    let leaks = s.secrets.leaks(&captured);
    for leak in leaks.iter().take(20) {
        problems.push(format!("LEAK: {leak}"));
    }

    eprintln!(
        "audit at {level}: {} server lines, {} CLI lines, {} keys, {} secret needles + {} key windows",
        server_lines.len(),
        s.cli_lines.len(),
        keys.len(),
        s.secrets.plain.len(),
        s.secrets.windows.len()
    );
    assert!(
        problems.is_empty(),
        "audit log at RUST_LOG={level}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_at_debug_has_every_event_and_no_secret() {
    audit_scenario("debug", "text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_at_trace_has_every_event_and_no_secret() {
    audit_scenario("trace", "text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_audit_log_at_debug_has_every_event_and_no_secret() {
    audit_scenario("debug", "json").await;
}

/// An operator who runs `jwtd users logout-all` or `jwtd keys …` without
/// setting `RUST_LOG` still leaves the audit events on stderr.
#[test]
fn cli_audit_events_are_logged_without_rust_log() {
    let home = Home::new(&[("algorithm", "ES256")]);
    let (status, _) = home.serve().terminate();
    assert!(status.success(), "jwtd serve exits 0 on SIGTERM: {status}");
    home.add_user("dave", "dave-Pa55word-audit");
    let mut missing = Vec::new();
    for (args, want) in [
        (vec!["users", "logout-all", "dave"], vec!["logout_all"]),
        (
            vec!["keys", "rotate", "--now"],
            vec!["key_activated", "key_created"],
        ),
    ] {
        let output = home.run(&args, None).ok();
        let events: Vec<String> = events_in("cli", &output.lines())
            .into_iter()
            .map(|e| e.name)
            .collect();
        for name in want {
            if !events.iter().any(|e| e == name) {
                missing.push(format!(
                    "`jwtd {}` without RUST_LOG logs no `{name}` event (stderr: {:?})",
                    args.join(" "),
                    output.stderr
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
