//! (c) `kill -9` at random moments while keys rotate.

use std::path::Path;
use std::time::{Duration, Instant};

use jwtd::config::MasterKeySource;
use jwtd::testing::MasterKey;
use jwtd::verifier::PublicJwk;
use reqwest::StatusCode;
use serde_json::json;

use super::ledger::Client;
use super::{PASSWORD, assert_no_panic};
use crate::db;
use crate::process::{Server, jwtd, jwtd_with};

/// A small xorshift generator: the kill times, reproducible from the seed
/// printed on failure (`FAULTS_SEED=…` to replay).
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn millis_between(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

/// What the database says about the keys after a crash; panics on any
/// inconsistency. Returns (kid, state) pairs.
async fn assert_consistent_keys(
    database: &Path,
    master: &MasterKey,
    what: &str,
) -> Vec<(String, String)> {
    let pool = db::open(database).await;
    let integrity = db::integrity_check(&pool).await;
    let keys = db::keys(&db::Database::Sqlite(pool.clone())).await;
    pool.close().await;
    assert_eq!(integrity, "ok", "{what}: integrity_check");
    let count = |state: &str| keys.iter().filter(|k| k.state == state).count();
    assert_eq!(
        count("active"),
        1,
        "{what}: exactly one active key: {keys:#?}"
    );
    assert!(
        count("next") <= 1,
        "{what}: at most one next key: {keys:#?}"
    );
    for key in &keys {
        let at = |field: &str, value: Option<i64>| -> i64 {
            value.unwrap_or_else(|| panic!("{what}: {} key {} has no {field}", key.state, key.kid))
        };
        let none = |field: &str, value: Option<i64>| {
            assert!(
                value.is_none(),
                "{what}: {} key {} has a {field}: {key:?}",
                key.state,
                key.kid
            );
        };
        let public: PublicJwk = serde_json::from_str(&key.public_jwk).expect("public_jwk parses");
        assert_eq!(
            public.thumbprint(),
            key.kid,
            "{what}: kid is the thumbprint"
        );
        if let Some(activated) = key.activated_at {
            assert!(
                key.created_at <= activated,
                "{what}: key {} activated before it was created",
                key.kid
            );
        }
        if let (Some(from), Some(to)) = (key.activated_at, key.deactivated_at) {
            assert!(
                from <= to,
                "{what}: key {} deactivated before activated",
                key.kid
            );
        }
        if let (Some(from), Some(to)) = (key.deactivated_at, key.retired_at) {
            assert!(
                from <= to,
                "{what}: key {} retired before deactivated",
                key.kid
            );
        }
        let published = matches!(key.state.as_str(), "next" | "active" | "retiring");
        if published {
            let sealed = key.sealed_private.as_deref().unwrap_or_else(|| {
                panic!("{what}: {} key {} lost its private key", key.state, key.kid)
            });
            master
                .open(&key.kid, sealed)
                .unwrap_or_else(|err| panic!("{what}: key {}: {err}", key.kid));
            none("retired_at", key.retired_at);
            none("revoked_at", key.revoked_at);
        } else {
            assert!(
                key.sealed_private.is_none(),
                "{what}: {} key {} still holds its private key",
                key.state,
                key.kid
            );
        }
        match key.state.as_str() {
            "next" => {
                none("activated_at", key.activated_at);
                none("deactivated_at", key.deactivated_at);
            }
            "active" => {
                at("activated_at", key.activated_at);
                none("deactivated_at", key.deactivated_at);
            }
            "retiring" => {
                at("activated_at", key.activated_at);
                at("deactivated_at", key.deactivated_at);
            }
            "retired" => {
                at("retired_at", key.retired_at);
                none("revoked_at", key.revoked_at);
                if key.activated_at.is_some() {
                    at("deactivated_at", key.deactivated_at);
                }
            }
            "revoked" => {
                at("revoked_at", key.revoked_at);
            }
            other => panic!("{what}: unknown state {other}"),
        }
    }
    keys.into_iter().map(|k| (k.kid, k.state)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_key_rotation_leaves_a_consistent_key_set() {
    const KILLS: usize = 10;
    let started = Instant::now();
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.0;
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let database = d.join("jwtd.db");
    // 4096-bit RSA keys take seconds to make: a wide window for the kill.
    let envs = [
        ("JWTD_RSA_BITS", "4096"),
        ("JWTD_KEY_ROTATION_INTERVAL", "1s"),
        ("JWTD_KEY_PREPUBLISH", "1s"),
        ("JWTD_JWKS_MAX_AGE", "1s"),
        ("JWTD_ACCESS_TOKEN_LIFETIME", "1s"),
        ("JWTD_REFRESH_TOKEN_LIFETIME", "1s"),
        ("JWTD_SLIDING_TOKEN_LIFETIME", "1s"),
        ("JWTD_SLIDING_TOKEN_REFRESH_LIFETIME", "1s"),
    ];
    jwtd_with(d, &["migrate"], &envs, None).ok();
    jwtd_with(
        d,
        &["users", "add", "erin", "--password-stdin"],
        &envs,
        Some(PASSWORD),
    )
    .ok();
    let serve = Server::start(d, &envs);
    let master =
        MasterKey::load(&MasterKeySource::File(d.join("keys/master.key"))).expect("master key");
    std::thread::sleep(rng.millis_between(200, 2500));
    serve.kill9();
    let mut before = assert_consistent_keys(&database, &master, "first kill").await;
    // Kill times are drawn up to `longest`, which grows while no rotation
    // step survives a round (a loaded machine makes 4096-bit keys slowly),
    // so the kills spread over key generation, the write and just after it.
    let mut changed = 0;
    let mut longest = 2500;
    for round in 1..=KILLS {
        let what = format!("kill {round} of {KILLS} (FAULTS_SEED={seed})");
        let serve = Server::spawn(d, &envs);
        std::thread::sleep(rng.millis_between(150, longest));
        let log = serve.kill9();
        assert_no_panic(&log, &what);
        let after = assert_consistent_keys(&database, &master, &what).await;
        if after == before {
            longest = (longest + 1000).min(6000);
        } else {
            changed += 1;
            longest = 2500;
        }
        before = after;
    }
    assert!(
        changed >= 1,
        "the key set never changed in {KILLS} rounds: no kill landed after a rotation step"
    );

    // A restart works and issues tokens that verify (long-lived ones, so a
    // loaded machine has time to check them).
    let mut envs = envs.to_vec();
    envs.retain(|(name, _)| !name.ends_with("_LIFETIME"));
    envs.push(("JWTD_ACCESS_TOKEN_LIFETIME", "60s"));
    let serve = Server::start(d, &envs);
    let client = Client::new(&serve);
    let (status, body, _) = client.login("erin").await;
    assert_eq!(status, StatusCode::OK, "login after the crashes: {body}");
    let access = body["access"].as_str().expect("access").to_owned();
    let (status, body, _) = client
        .post("/api/token/verify/", json!({"token": access}))
        .await;
    assert_eq!(status, StatusCode::OK, "verify after the crashes: {body}");
    let jwks = serve.url("/.well-known/jwks.json");
    // Offline verification against the live JWKS.
    jwtd(d, &["token", "verify", &access, "--jwks", &jwks], None).ok();
    drop(client);
    let (_, log) = serve.terminate();
    assert_no_panic(&log, "restart after the crashes");
    assert_consistent_keys(&database, &master, "after the restart").await;
    eprintln!(
        "kill -9: {KILLS} kills, key set changed in {changed}, seed {seed}, {:?}",
        started.elapsed()
    );
}
