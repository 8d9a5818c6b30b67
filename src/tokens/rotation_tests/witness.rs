//! What an outsider sees of a deployment, step after step, checked
//! against SPEC §5.

use std::collections::{BTreeSet, HashMap};

use crate::clock::UnixTime;
use crate::config::Config;
use crate::keys::KeySet;
use crate::keys::schedule::PROPAGATION_MARGIN;
use crate::keys::tests::{DAY, HOUR, START, count_in, key, kid_in};
use crate::store::{KeyState, StoredKey};
use crate::tokens::{Expect, TokenError, TokenService};
use crate::verifier::JwkSet;

use super::deployment::Issued;
use super::{jwks_kids, partner_view};

/// What an outsider sees of a deployment step after step (its JWKS, the
/// kids in its tokens), checked against SPEC §5 at every step.
pub(super) struct Witness {
    tokens: TokenService,
    interval: i64,
    prepublish: i64,
    /// How long after a key stops signing its tokens may still be alive:
    /// the longest refresh lifetime plus leeway.
    tokens_outlive_signing: i64,
    /// When each kid first appeared in the JWKS.
    first_published: HashMap<String, UnixTime>,
    /// Kids that have left the JWKS; they never come back.
    unpublished: BTreeSet<String>,
    /// When each key stopped signing, as seen from outside.
    stopped_signing: HashMap<String, UnixTime>,
    /// Each time a different key started signing: when, and which.
    pub(super) activations: Vec<(UnixTime, String)>,
    /// Issued tokens not yet expired.
    live: Vec<Issued>,
    /// The key-set version the live tokens were last verified against.
    verified_at: Option<i64>,
    /// A partner's view: the keys of the JWKS, at a key-set version.
    partner: Option<(i64, JwkSet)>,
}

impl Witness {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            tokens: TokenService::new(config),
            interval: config.key_rotation_interval.as_secs() as i64,
            prepublish: config.key_prepublish.as_secs() as i64,
            tokens_outlive_signing: (config
                .refresh_token_lifetime
                .max(config.sliding_token_refresh_lifetime)
                + config.leeway)
                .as_secs() as i64
                + PROPAGATION_MARGIN,
            first_published: HashMap::new(),
            unpublished: BTreeSet::new(),
            stopped_signing: HashMap::new(),
            activations: Vec::new(),
            live: Vec::new(),
            verified_at: None,
            partner: None,
        }
    }

    pub(super) fn rotations(&self) -> usize {
        self.activations.len() - 1
    }

    pub(super) fn check(&mut self, now: UnixTime, keys: &[StoredKey], set: &KeySet) {
        let at = format!("day {:.3}", (now - START) as f64 / DAY as f64);
        assert_eq!(count_in(keys, KeyState::Active), 1, "{at}: one active key");
        assert_eq!(count_in(keys, KeyState::Next), 1, "{at}: one next key");
        let active = kid_in(keys, KeyState::Active);
        let signer = set.signer.as_ref().expect("a key signs");
        assert_eq!(
            signer.kid(),
            active,
            "{at}: the ring signs with the active key"
        );

        let jwks = jwks_kids(set);
        if self.partner.as_ref().map(|(version, _)| *version) != Some(set.version) {
            self.partner = Some((set.version, partner_view(set)));
        }
        let published: BTreeSet<String> = keys
            .iter()
            .filter(|k| {
                matches!(
                    k.state,
                    KeyState::Next | KeyState::Active | KeyState::Retiring
                )
            })
            .map(|k| k.kid.clone())
            .collect();
        assert_eq!(
            jwks, published,
            "{at}: the JWKS lists next, active and retiring keys"
        );
        self.saw_jwks(now, &jwks, &at);
        self.saw_signer(now, &active, keys, &at);

        for key in keys {
            let erased = matches!(key.state, KeyState::Retired | KeyState::Revoked);
            assert_eq!(
                key.sealed_private.is_none(),
                erased,
                "{at}: {key:?} keeps its private key exactly while it may sign"
            );
            if let Some(stopped) = self.stopped_signing.get(&key.kid) {
                assert_eq!(key.deactivated_at, Some(*stopped), "{at}: {key:?}");
                if now >= stopped + self.tokens_outlive_signing {
                    assert!(
                        !jwks.contains(&key.kid),
                        "{at}: {} still published {}s after it stopped signing",
                        key.kid,
                        now - stopped
                    );
                }
            }
        }
        self.check_live_tokens(now, set, &at);
    }

    fn saw_jwks(&mut self, now: UnixTime, jwks: &BTreeSet<String>, at: &str) {
        for kid in jwks {
            assert!(!self.unpublished.contains(kid), "{at}: {kid} came back");
            self.first_published.entry(kid.clone()).or_insert(now);
        }
        for kid in self.first_published.keys() {
            if !jwks.contains(kid) {
                self.unpublished.insert(kid.clone());
            }
        }
    }

    fn saw_signer(&mut self, now: UnixTime, active: &str, keys: &[StoredKey], at: &str) {
        let previous = match self.activations.last() {
            Some((_, kid)) if kid == active => return,
            Some((since, kid)) => Some((*since, kid.clone())),
            None => None,
        };
        // The handover is dated at its scheduled instant, which every
        // process honours on its own (KeySet::signer_at), so it is at most
        // one clock step before this tick.
        let started = key(keys, active)
            .activated_at
            .expect("the active key says when it started signing");
        assert!(
            started <= now && now - started < Jitter::LONGEST,
            "{at}: {active} dated its start {started}, this tick is {now}"
        );
        if let Some((since, previous)) = previous {
            let published_for = started - self.first_published[active];
            assert!(
                published_for >= self.prepublish,
                "{at}: {active} signs after being published for only {published_for}s"
            );
            let signed_for = started - since;
            assert_eq!(
                signed_for, self.interval,
                "{at}: {previous} signed for {signed_for}s, not exactly 30 days"
            );
            self.stopped_signing.insert(previous, started);
        }
        self.activations.push((started, active.to_owned()));
    }

    /// Every token issued and not expired verifies, through the key set and
    /// through its JWKS as a partner would. Verification depends only on
    /// the key set and on `exp`, so the signatures are checked again
    /// whenever the key set changes; in between, each token's kid must
    /// still be published.
    fn check_live_tokens(&mut self, now: UnixTime, set: &KeySet, at: &str) {
        let (expired, live): (Vec<Issued>, Vec<Issued>) =
            self.live.drain(..).partition(|t| t.exp <= now);
        self.live = live;
        for token in expired.iter().filter(|t| set.verifier(&t.kid).is_some()) {
            let outcome = self.tokens.verify(set, &token.token, Expect::AnyType, now);
            assert_eq!(outcome.err(), Some(TokenError::Expired), "{at}: {token:?}");
        }
        if self.verified_at == Some(set.version) {
            for token in &self.live {
                assert!(
                    set.verifier(&token.kid).is_some(),
                    "{at}: {token:?} lost its key"
                );
            }
            return;
        }
        for token in &self.live {
            self.assert_verifies(token, now, set, at);
        }
        self.verified_at = Some(set.version);
    }

    pub(super) fn saw_issued(&mut self, issued: Issued, now: UnixTime, set: &KeySet) {
        let at = format!("day {:.3}", (now - START) as f64 / DAY as f64);
        let (_, signer) = self.activations.last().expect("a key signs");
        assert_eq!(&issued.kid, signer, "{at}: tokens carry the active kid");
        self.assert_verifies(&issued, now, set, &at);
        self.live.push(issued);
    }

    fn assert_verifies(&self, token: &Issued, now: UnixTime, set: &KeySet, at: &str) {
        let claims = self
            .tokens
            .verify(set, &token.token, Expect::AnyType, now)
            .unwrap_or_else(|err| panic!("{at}: {token:?} refused: {err:?}"));
        assert_eq!(claims.token_type, token.token_type);
        let (_, partner) = self.partner.as_ref().expect("checked first");
        self.tokens
            .verify(partner, &token.token, Expect::AnyType, now)
            .unwrap_or_else(|err| panic!("{at}: {token:?} refused through the JWKS: {err:?}"));
    }
}

/// Clock steps of six hours, one in four shortened at random to 1 s – 6 h
/// (deterministic). Hourly steps would be finer, but a step costs about
/// 2 ms in a debug build (the schedule reads every key ever made from
/// SQLite) and 400 days of hours took 20 s.
pub(super) struct Jitter(u64);

impl Jitter {
    const LONGEST: i64 = 6 * HOUR;

    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn step(&mut self) -> i64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if self.0.is_multiple_of(4) {
            1 + (self.0 >> 8) as i64 % Self::LONGEST
        } else {
            Self::LONGEST
        }
    }
}
