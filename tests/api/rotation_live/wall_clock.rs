//! The schedule on the wall clock: one in-process issuer, and three
//! `jwtd serve` replicas sharing one database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jwtd::clock::SystemClock;
use jwtd::config::{Config, MasterKeySource};
use jwtd::server::Issuer;
use jwtd::testing::{Deployment, MasterKey};

use super::rules::assert_healthy_run;
use super::watch::watch;
use super::{LIVE_SETTINGS, wall};
use crate::helpers::test_config;
use crate::process::Home;

/// The live schedule, with the master key in `dir` where a [`Home`] keeps
/// it, and the database at `database_url` (a fresh one when `None`).
fn live_config(dir: &Path, database_url: Option<&str>) -> Config {
    let mut config = test_config(dir);
    if let Some(url) = database_url {
        config.database_url = url.to_owned();
    }
    for (key, value) in LIVE_SETTINGS {
        config.set(key, value, "test").expect("valid setting");
    }
    config.check().expect("valid configuration");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_the_wall_clock_and_tokens_verify_until_exp() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = live_config(dir.path(), None);
    let issuer = Issuer::open(config.clone(), Arc::new(SystemClock))
        .await
        .expect("issuer starts");
    let listener = issuer.bind().await.expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(issuer.serve(listener, async {
        let _ = stopped.await;
    }));

    let deployment = Deployment::open(&config)
        .await
        .expect("the deployment opens");
    deployment
        .add_user("alice", "pw", true, wall() as i64)
        .await
        .expect("user added");

    let seen = watch(
        &deployment,
        std::slice::from_ref(&base),
        ("alice", "pw"),
        Duration::from_secs(15),
    )
    .await;

    let _ = stop.send(());
    server.await.expect("server stops cleanly");
    deployment.close().await;
    assert_healthy_run(&seen, 1, &[]);
}

/// Three replicas on one database for thirty seconds of rotation every
/// four seconds, logins spread over them in turn: one signer at a time,
/// each step taken once, every token verifiable at every replica until it
/// expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database_rotate_as_one() {
    let home = Home::new(&LIVE_SETTINGS);
    home.run(&["migrate"], None).ok();
    // The master key exists before the servers start; then they all start
    // at once on an empty key table.
    MasterKey::load(&MasterKeySource::File(home.master_key())).expect("master key created");
    let servers = home.serve_replicas();
    home.add_user("alice", "pw");

    let deployment = Deployment::open(&live_config(home.path(), Some(home.database_url())))
        .await
        .expect("the deployment opens");
    let bases: Vec<String> = servers.iter().map(|server| server.url("")).collect();
    let seen = watch(
        &deployment,
        &bases,
        ("alice", "pw"),
        Duration::from_secs(30),
    )
    .await;
    deployment.close().await;

    // Tokens from each replica were checked at the others.
    for by in 0..servers.len() {
        assert!(
            seen.tokens.iter().filter(|t| t.by == by).count() >= 8,
            "server {by} issued too few tokens"
        );
    }
    let lines_with = |needles: &[&str]| -> Vec<String> {
        servers
            .iter()
            .enumerate()
            .flat_map(|(i, server)| {
                server
                    .log()
                    .into_iter()
                    .filter(|line| needles.iter().any(|needle| line.contains(needle)))
                    .map(move |line| format!("server {i}: {line}"))
            })
            .collect()
    };
    let key_events = lines_with(&["key_", "signing keys"]);
    let errors = lines_with(&["ERROR"]);
    let count = servers.len();
    drop(servers);
    assert_healthy_run(&seen, count, &key_events);
    assert!(
        errors.is_empty(),
        "the servers logged errors:\n{}",
        errors.join("\n")
    );
}
