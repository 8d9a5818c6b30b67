//! The schedule on the wall clock: one in-process issuer, and two
//! `jwtd serve` processes sharing one database file.

use std::path::Path;
use std::sync::Arc;

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

    let seen = watch(&deployment, std::slice::from_ref(&base), "alice", "pw").await;

    let _ = stop.send(());
    server.await.expect("server stops cleanly");
    deployment.close().await;
    assert_healthy_run(&seen, 1, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_database_rotate_as_one() {
    let home = Home::new(&LIVE_SETTINGS);
    home.run(&["migrate"], None).ok();
    // The master key exists before the servers start; then both start at
    // once on an empty key table.
    MasterKey::load(&MasterKeySource::File(home.master_key())).expect("master key created");
    let a = home.spawn_server();
    let b = home.spawn_server();
    let (a, b) = (a.ready(), b.ready());
    home.add_user("alice", "pw");

    let deployment = Deployment::open(&live_config(home.path(), Some(home.database_url())))
        .await
        .expect("the deployment opens");
    let bases = [a.url(""), b.url("")];
    let seen = watch(&deployment, &bases, "alice", "pw").await;
    deployment.close().await;

    // Tokens from each process were checked at the other one.
    for by in 0..2 {
        assert!(
            seen.tokens.iter().filter(|t| t.by == by).count() >= 4,
            "server {by} issued too few tokens"
        );
    }
    let key_events: Vec<String> = [&a, &b]
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.log()
                .into_iter()
                .filter(|l| l.contains("key_") || l.contains("signing keys"))
                .map(move |l| format!("server {i}: {l}"))
        })
        .collect();
    let errors: Vec<String> = [&a, &b]
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.log()
                .into_iter()
                .filter(|l| l.contains("ERROR"))
                .map(move |l| format!("server {i}: {l}"))
        })
        .collect();
    drop(a);
    drop(b);
    assert_healthy_run(&seen, 2, &key_events);
    assert!(
        errors.is_empty(),
        "the servers logged errors:\n{}",
        errors.join("\n")
    );
}
