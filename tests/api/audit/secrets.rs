//! What must never appear in a captured line, and how the scenario finds
//! every private key it must look for.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::db;

/// What must never appear in a log line, each with a label to report.
#[derive(Default)]
pub(super) struct Secrets {
    /// Needles of any length, searched with `contains`.
    pub(super) plain: Vec<(String, String)>,
    /// 40-character windows of key material, looked up by window.
    pub(super) windows: HashMap<String, String>,
}

/// The length of a key-material window, in characters.
const WINDOW: usize = 40;

impl Secrets {
    pub(super) fn add(&mut self, label: impl Into<String>, needle: impl Into<String>) {
        let needle = needle.into();
        assert!(needle.len() >= 8, "needle too short to search for");
        self.plain.push((label.into(), needle));
    }

    /// A token, its payload part and its signature part.
    pub(super) fn add_token(&mut self, what: &str, token: &str) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{what} is a compact JWS");
        self.add(format!("{what} (whole token)"), token);
        self.add(format!("{what} (payload part)"), parts[1]);
        self.add(format!("{what} (signature part)"), parts[2]);
    }

    /// Every 30-byte window of a PKCS#8 private key, in standard and
    /// URL-safe base64 (40 characters) and hex (40 characters of 20
    /// bytes), at every byte offset, except windows that lie wholly inside
    /// the published public values (an RSA modulus, an EC point), which may
    /// be logged.
    pub(super) fn add_private_key(&mut self, kid: &str, pkcs8: &[u8], public: &[Vec<u8>]) {
        let public_ranges: Vec<(usize, usize)> = public
            .iter()
            .filter(|part| part.len() >= 16)
            .filter_map(|part| {
                pkcs8
                    .windows(part.len())
                    .position(|w| w == part.as_slice())
                    .map(|at| (at, at + part.len()))
            })
            .collect();
        let public_only = |from: usize, to: usize| {
            public_ranges
                .iter()
                .any(|&(start, end)| start <= from && to <= end)
        };
        let label = format!("private key {kid}");
        for from in 0..pkcs8.len() {
            if from + 30 <= pkcs8.len() && !public_only(from, from + 30) {
                let bytes = &pkcs8[from..from + 30];
                for text in [STANDARD.encode(bytes), URL_SAFE.encode(bytes)] {
                    self.windows.insert(text, label.clone());
                }
            }
            if from + 20 <= pkcs8.len() && !public_only(from, from + 20) {
                let hex: String = pkcs8[from..from + 20]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                self.windows.insert(hex.to_uppercase(), label.clone());
                self.windows.insert(hex, label.clone());
            }
        }
    }

    /// Every (label, line) where a secret appears.
    pub(super) fn leaks(&self, lines: &[(String, String)]) -> Vec<String> {
        let mut found = Vec::new();
        for (source, line) in lines {
            for (label, needle) in &self.plain {
                if line.contains(needle.as_str()) {
                    found.push(format!("{label} in {source}: {line}"));
                }
            }
            if line.contains("PRIVATE KEY") {
                found.push(format!("\"PRIVATE KEY\" in {source}: {line}"));
            }
            let bytes = line.as_bytes();
            let mut reported = HashSet::new();
            for start in 0..bytes.len().saturating_sub(WINDOW - 1) {
                let Some(window) = line.get(start..start + WINDOW) else {
                    continue;
                };
                if let Some(label) = self.windows.get(window)
                    && reported.insert(label.clone())
                {
                    found.push(format!(
                        "{label} (a {WINDOW}-char window) in {source}: {line}"
                    ));
                }
            }
        }
        found
    }
}

/// The public values of a stored key, as bytes, from its `public_jwk`.
pub(super) fn public_parts(public_jwk: &str) -> Vec<Vec<u8>> {
    let jwk: Value = serde_json::from_str(public_jwk).expect("public_jwk is JSON");
    ["n", "e", "x", "y"]
        .iter()
        .filter_map(|member| jwk[member].as_str())
        .map(|text| URL_SAFE_NO_PAD.decode(text).expect("base64url member"))
        .collect()
}

/// kid → (sealed private key, public JWK), as first seen.
type SealedKeys = HashMap<String, (Vec<u8>, String)>;

/// Copies every sealed private key it sees, every 100 ms, until stopped, so
/// keys can be checked even after retirement or revocation erased them.
pub(super) struct KeySnapshots {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<SealedKeys>>,
}

impl KeySnapshots {
    pub(super) fn start(database_url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let (task_stop, task_seen, path) = (stop.clone(), seen.clone(), database_url.to_owned());
        let task = tokio::spawn(async move {
            let pool = db::Database::connect(&path).await;
            loop {
                // One last look after the stop: the server has exited by then.
                let stopping = task_stop.load(Ordering::SeqCst);
                for key in db::keys(&pool).await {
                    if let Some(sealed) = key.sealed_private {
                        task_seen
                            .lock()
                            .unwrap()
                            .entry(key.kid)
                            .or_insert((sealed, key.public_jwk));
                    }
                }
                if stopping {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            pool.close().await;
        });
        Self { stop, task, seen }
    }

    /// Takes a last look and stops; returns kid → (sealed private key,
    /// public JWK).
    pub(super) async fn finish(self) -> SealedKeys {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("key snapshots task");
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn leak_check_finds_a_window_of_a_key_and_skips_public_values() {
    let mut secrets = Secrets::default();
    let key: Vec<u8> = (0..200u8).collect();
    let public = key[100..160].to_vec();
    secrets.add_private_key("k", &key, std::slice::from_ref(&public));
    let leaked = STANDARD.encode(&key[7..80]);
    let published = URL_SAFE_NO_PAD.encode(&public);
    let lines = vec![
        ("a".to_owned(), format!("x={leaked} y")),
        ("b".to_owned(), format!("jwks n={published}")),
    ];
    let leaks = secrets.leaks(&lines);
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    assert!(leaks[0].contains(" in a: "));
}
