//! A deployment on a real store, driven by hand.

use tempfile::TempDir;

use crate::clock::{ManualClock, UnixTime};
use crate::config::Config;
use crate::keys::lifecycle::{self, KeyMaking};
use crate::keys::schedule::{RotationPolicy, Step};
use crate::keys::tests::kid_in;
use crate::keys::{KeyError, KeySet, MasterKey};
use crate::store::{KeyState, Store, StoredKey};
use crate::tokens::{Claims, Expect, TokenError, TokenService, TokenType};
use crate::verifier::Algorithm;

use super::kid_of;

/// One issuer's view of a real SQLite store, driven by hand: what `serve`
/// does on each tick of its background task.
pub(super) struct Deployment {
    store: Store,
    master: MasterKey,
    making: KeyMaking,
    tokens: TokenService,
    set: Option<KeySet>,
    pub(super) keys: Vec<StoredKey>,
    _dir: TempDir,
}

/// A token as issued, with the kid in its header.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    pub(super) token: String,
    pub(super) kid: String,
    pub(super) exp: UnixTime,
    pub(super) token_type: TokenType,
}

impl Deployment {
    pub(super) async fn new(config: &Config) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("jwtd.db").display()
        ))
        .await
        .expect("store opens");
        Self {
            store,
            master: MasterKey::from_bytes(&[7; 32]).unwrap(),
            making: making(config),
            tokens: TokenService::new(config),
            set: None,
            keys: Vec::new(),
            _dir: dir,
        }
    }

    /// Runs the schedule at `now`, then reloads the key set if the store's
    /// version moved, as each tick of `serve`'s background task does.
    pub(super) async fn tick(&mut self, now: UnixTime) -> Vec<Step> {
        let steps = lifecycle::run_schedule(
            &self.store,
            &self.master,
            self.making,
            &ManualClock::new(now),
        )
        .await
        .expect("the schedule runs");
        self.reload().await;
        steps
    }

    pub(super) async fn reload(&mut self) {
        let version = self.store.key_set_version().await.unwrap();
        if self.set.as_ref().is_some_and(|set| set.version == version) {
            return;
        }
        let (version, keys) = self.store.keys_with_version().await.unwrap();
        let set = KeySet::build(
            version,
            &keys,
            &self.master,
            self.set.as_ref(),
            &self.making.policy,
        )
        .expect("the key set builds");
        self.set = Some(set);
        self.keys = keys;
    }

    pub(super) fn set(&self) -> &KeySet {
        self.set.as_ref().expect("ticked at least once")
    }

    pub(super) fn switch_to(&mut self, config: &Config) {
        self.making = making(config);
    }

    pub(super) fn active_and_next(&self) -> (String, String) {
        (
            kid_in(&self.keys, KeyState::Active),
            kid_in(&self.keys, KeyState::Next),
        )
    }

    pub(super) fn issue(&self, token_type: TokenType, now: UnixTime) -> Issued {
        let (token, claims) = self
            .tokens
            .issue(self.set(), token_type, "42", now)
            .expect("a token is issued");
        Issued {
            kid: kid_of(&token),
            exp: claims.exp,
            token,
            token_type,
        }
    }

    pub(super) fn verify(&self, token: &str, now: UnixTime) -> Result<Claims, TokenError> {
        self.tokens.verify(self.set(), token, Expect::AnyType, now)
    }

    pub(super) async fn revoke(&self, kid: &str, now: UnixTime) -> Result<Vec<Step>, KeyError> {
        lifecycle::revoke(
            &self.store,
            &self.master,
            self.making,
            kid,
            &ManualClock::new(now),
        )
        .await
    }

    pub(super) async fn rotate(&self, now_please: bool, now: UnixTime) -> UnixTime {
        lifecycle::rotate(
            &self.store,
            &self.master,
            self.making,
            now_please,
            &ManualClock::new(now),
        )
        .await
        .expect("rotate")
    }

    /// The store's version and every key's kid, state and dates.
    pub(super) async fn snapshot(&self) -> (i64, Vec<String>) {
        let (version, keys) = self.store.keys_with_version().await.unwrap();
        (version, keys.iter().map(describe).collect())
    }

    /// Every key's kid, state and life dates (not the rotation request).
    pub(super) async fn key_states(&self) -> Vec<String> {
        let (_, keys) = self.store.keys_with_version().await.unwrap();
        keys.iter()
            .map(|k| {
                format!(
                    "{} {:?} {} {:?} {:?} {:?}",
                    k.kid, k.state, k.created_at, k.activated_at, k.deactivated_at, k.retired_at
                )
            })
            .collect()
    }
}

fn describe(key: &StoredKey) -> String {
    format!(
        "{} {:?} {:?} {} {:?} {:?} {:?} {:?} {:?} private:{}",
        key.kid,
        key.alg,
        key.state,
        key.created_at,
        key.activated_at,
        key.deactivated_at,
        key.retired_at,
        key.revoked_at,
        key.rotate_requested_at,
        key.sealed_private.is_some()
    )
}

/// How `config` makes keys.
pub(super) fn making(config: &Config) -> KeyMaking {
    KeyMaking {
        policy: RotationPolicy::new(config),
        rsa_bits: config.rsa_bits,
    }
}

/// The default configuration, with ES256 keys (quick to make).
pub(super) fn es256() -> Config {
    Config {
        algorithm: Algorithm::Es256,
        ..Config::default()
    }
}
