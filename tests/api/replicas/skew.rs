//! A replica whose clock runs three seconds ahead (libfaketime, from
//! Debian's `faketime`) beside two on time, all on one PostgreSQL database: each
//! rotation step is still taken once, each replica switches signing keys
//! at the instant stored in the database by its own clock, and every token
//! verifies at every replica while it is valid (with a leeway covering the
//! skew, as an operator would set it).

use std::time::Duration;

use jwtd::config::MasterKeySource;
use jwtd::testing::{Deployment, KeyState, MasterKey, StoredKey};
use reqwest::StatusCode;

use crate::helpers::{claims_of, kid_of, test_config};
use crate::process::{Home, REPLICAS, Server};
use crate::rotation_live::{LIVE_SETTINGS, ROTATION, client, login, verify_at, wall};

/// How far ahead the skewed replica's clock runs, seconds.
const AHEAD: f64 = 3.0;
/// How long the test watches.
const RUN_FOR: Duration = Duration::from_secs(24);
/// Which replica runs ahead.
const SKEWED: usize = REPLICAS - 1;

/// A token as a replica issued it.
struct Issued {
    by: usize,
    /// The wall clock around the login.
    sent: f64,
    answered: f64,
    kid: String,
    iat: f64,
    /// When it stops being valid by the wall clock, whoever issued it.
    valid_until: f64,
    token: String,
}

/// Debian's multithreaded libfaketime.
fn faketime_library() -> String {
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.is_file())
        .expect("libfaketime is installed with faketime")
        .display()
        .to_string()
}

/// The clock offset of replica `index`.
fn offset(index: usize) -> f64 {
    if index == SKEWED { AHEAD } else { 0.0 }
}

/// The key whose signing period (as stored) contains `instant`, if one.
fn signer_at(keys: &[StoredKey], instant: f64) -> Option<&str> {
    keys.iter()
        .find(|key| {
            key.activated_at.is_some_and(|on| on as f64 <= instant)
                && key.deactivated_at.is_none_or(|off| instant < off as f64)
        })
        .map(|key| key.kid.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_three_seconds_ahead_switches_keys_at_the_stored_instant_by_its_own_clock() {
    if !crate::postgres::available(
        "replicas::a_replica_three_seconds_ahead_switches_keys_at_the_stored_instant_by_its_own_clock",
        &["faketime"],
    ) {
        return;
    }
    let mut home = Home::on(&crate::postgres::fresh_database(), &LIVE_SETTINGS);
    // Tokens from a replica ahead look issued in the future to the others,
    // and expire early to it: the leeway covers the skew.
    home.set("leeway", "4s");
    home.run(&["migrate"], None).ok();
    MasterKey::load(&MasterKeySource::File(home.master_key())).expect("master key created");
    // libfaketime preloaded into jwtd itself (the `faketime` wrapper would
    // stand between the test and the process it must end).
    let library = faketime_library();
    let ahead = format!("+{AHEAD}s");
    let skewed_envs = [
        home.envs().as_slice(),
        &[
            ("LD_PRELOAD", library.as_str()),
            ("FAKETIME", ahead.as_str()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    ]
    .concat();
    let servers: Vec<Server> = (0..REPLICAS)
        .map(|index| match index {
            SKEWED => Server::spawn(home.path(), &skewed_envs),
            _ => home.spawn_server(),
        })
        .map(Server::ready)
        .collect();
    home.add_user("alice", "pw");
    let mut config = test_config(home.path());
    config.database_url = home.database_url().to_owned();
    let deployment = Deployment::open(&config)
        .await
        .expect("the deployment opens");
    let bases: Vec<String> = servers.iter().map(|server| server.url("")).collect();
    let client = client();

    let mut problems = Vec::new();
    let mut issued: Vec<Issued> = Vec::new();
    let started = wall();
    let mut turn = 0;
    while wall() - started < RUN_FOR.as_secs_f64() {
        // The database: exactly one key signing and one waiting, always.
        let keys = deployment.keys().await.expect("read the keys");
        let active = keys.iter().filter(|k| k.state == KeyState::Active).count();
        let next = keys.iter().filter(|k| k.state == KeyState::Next).count();
        if (active, next) != (1, 1) {
            problems.push(format!(
                "at {:.2}: {active} active and {next} next keys",
                wall()
            ));
        }

        let by = turn % REPLICAS;
        turn += 1;
        let sent = wall();
        let (access, _) = login(&client, &bases[by], "alice", "pw").await;
        let answered = wall();
        let claims = claims_of(&access);
        let exp = claims["exp"].as_f64().expect("exp");
        issued.push(Issued {
            by,
            sent,
            answered,
            kid: kid_of(&access),
            iat: claims["iat"].as_f64().expect("iat"),
            valid_until: exp - offset(by),
            token: access,
        });

        // Every token still valid verifies at every replica.
        for token in issued.iter().filter(|t| t.valid_until - wall() > 0.5) {
            for (at, base) in bases.iter().enumerate() {
                let (status, body) = verify_at(&client, base, &token.token).await;
                if status != StatusCode::OK && wall() < token.valid_until {
                    problems.push(format!(
                        "a token from replica {} (kid {}) got {status} {body} at replica {at}",
                        token.by, token.kid
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Let the last step be recorded, then read the history.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut keys = deployment.keys().await.expect("read the keys");
    deployment.close().await;
    keys.retain(|key| key.activated_at.is_some());
    keys.sort_by_key(|key| key.activated_at);

    // Each step taken once: activations a rotation interval apart, each
    // the previous key's deactivation.
    for pair in keys.windows(2) {
        let (previous, key) = (&pair[0], &pair[1]);
        let on = key.activated_at.expect("activated");
        if previous.deactivated_at != Some(on) {
            problems.push(format!(
                "key {} activated at {on}, but the previous one stopped at {:?}",
                key.kid, previous.deactivated_at
            ));
        }
        let gap = on - previous.activated_at.expect("activated");
        if !(ROTATION..=ROTATION + 1).contains(&gap) {
            problems.push(format!(
                "key {} activated {gap}s after the previous one (rotation every {ROTATION}s)",
                key.kid
            ));
        }
    }
    let steps = keys
        .iter()
        .filter(|key| key.activated_at.is_some_and(|on| on as f64 > started))
        .count();
    assert!(
        steps as f64 >= RUN_FOR.as_secs_f64() / ROTATION as f64 - 1.0,
        "only {steps} rotations in {RUN_FOR:?}"
    );

    // Each replica signs with the key the database says is active at the
    // time on its own clock (one second either side: instants are stored
    // in whole seconds).
    for token in &issued {
        let (from, to) = (
            token.sent + offset(token.by),
            token.answered + offset(token.by),
        );
        let candidates: Vec<&str> = [from - 1.0, from, to, to + 1.0]
            .iter()
            .filter_map(|instant| signer_at(&keys, *instant))
            .collect();
        if !candidates.contains(&token.kid.as_str()) {
            problems.push(format!(
                "replica {} signed with {} at its {from:.2}..{to:.2}; the database says {candidates:?}",
                token.by, token.kid
            ));
        }
    }
    // The skew was real: the replica ahead stamps its tokens ahead.
    for token in issued.iter().filter(|t| t.by == SKEWED) {
        let skew = token.iat - token.sent;
        if !(AHEAD - 1.0..=AHEAD + 1.0).contains(&skew) {
            problems.push(format!("the replica ahead issued a token {skew:.2}s ahead"));
        }
    }
    let errors: Vec<String> = servers
        .iter()
        .flat_map(|server| server.log())
        .filter(|line| line.contains("ERROR") || line.contains("panicked"))
        .collect();
    drop(servers);
    assert!(errors.is_empty(), "the replicas logged errors: {errors:#?}");
    assert!(
        problems.is_empty(),
        "{} problems: {problems:#?}",
        problems.len()
    );
}
