//! The pure [`plan`] under random policies and random clocks: applied by
//! hand to keys in memory, it keeps every promise of SPEC §5, and
//! [`next_published_change`] announces every change of the published set.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{DAY, MINUTE, START, count_in, key, kid_in};
use crate::clock::UnixTime;
use crate::keys::schedule::{RotationPolicy, Step, next_published_change, plan};
use crate::store::{KeyState, StoredKey};
use crate::verifier::{Algorithm, PublicJwk};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_plan_keeps_every_promise_whatever_the_policy_and_the_clock(
        interval in 1..=60 * DAY,
        prepublish_share in 0.0..2.0f64,
        retire_after in 1..=60 * DAY,
        ticks in prop::collection::vec(
            (0u8..3, any::<u32>(), prop::bool::weighted(0.05)),
            1..300,
        ),
    ) {
        let policy = RotationPolicy {
            rotation_interval: interval,
            // Up to twice the interval: nothing forbids a long prepublish.
            prepublish: (interval as f64 * prepublish_share) as i64,
            retire_after,
            algorithm: Algorithm::Es256,
        };
        let mut simulation = Simulation::new(policy);
        let mut now = START;
        simulation.tick(now);
        for (kind, raw, switch_algorithm) in ticks {
            now += simulation.step_size(kind, raw);
            if switch_algorithm {
                // An operator changes `algorithm` and restarts: the waiting
                // key is replaced by a late one, so prepublish matters.
                simulation.switch_algorithm();
            }
            simulation.tick(now);
        }
    }
}

/// Keys in memory, changed by applying `plan`'s steps by hand.
struct Simulation {
    policy: RotationPolicy,
    keys: Vec<StoredKey>,
    made: usize,
    /// The algorithm changed since the last tick.
    switched: bool,
}

impl Simulation {
    fn new(policy: RotationPolicy) -> Self {
        Self {
            policy,
            keys: Vec::new(),
            made: 0,
            switched: false,
        }
    }

    fn switch_algorithm(&mut self) {
        let position = Algorithm::ALL
            .iter()
            .position(|alg| *alg == self.policy.algorithm)
            .unwrap_or_default();
        self.policy.algorithm = Algorithm::ALL[(position + 1) % Algorithm::ALL.len()];
        self.switched = true;
    }

    /// A clock step: a few seconds, up to an interval, or a long jump.
    fn step_size(&self, kind: u8, raw: u32) -> i64 {
        let policy = &self.policy;
        let span = match kind {
            0 => MINUTE,
            1 => policy.rotation_interval,
            _ => 2 * (policy.rotation_interval + policy.prepublish + policy.retire_after),
        };
        1 + i64::from(raw) % span
    }

    /// Plans and applies until nothing more is due at `now`, as
    /// `run_schedule` does, then checks every invariant.
    fn tick(&mut self, now: UnixTime) {
        let first = self.keys.is_empty();
        let switched = std::mem::take(&mut self.switched);
        let published_before = self.published();
        let promise = next_published_change(&self.keys, &self.policy);
        for round in 0.. {
            let steps = plan(now, &self.keys, &self.policy);
            if steps.is_empty() {
                break;
            }
            assert!(round < 4, "the plan never settles at {now}: {steps:?}");
            for step in steps {
                self.apply(step, now);
            }
        }
        self.check(now, first);
        if first || switched {
            // Nothing was published yet, or a configuration change (not
            // the schedule) replaced the waiting key, which never signed.
            return;
        }
        let changed = self.published() != published_before;
        if changed {
            assert!(
                promise.is_some_and(|at| at <= now),
                "the published set changed at {now}, but next_published_change said {promise:?}"
            );
        }
        if promise.is_some_and(|at| at <= now) {
            assert!(
                changed,
                "next_published_change promised a change by {promise:?}; none at {now}"
            );
        }
    }

    fn apply(&mut self, step: Step, now: UnixTime) {
        let policy = self.policy;
        match step {
            Step::CreateActive(alg) => {
                assert!(self.keys.is_empty(), "a second first key at {now}");
                let mut key = self.make(alg, KeyState::Active, now);
                key.activated_at = Some(now);
                self.keys.push(key);
            }
            Step::CreateNext(alg) => {
                let key = self.make(alg, KeyState::Next, now);
                self.keys.push(key);
            }
            Step::Activate { next, previous, at } => {
                assert!(at <= now, "{next} activated in the future ({at} > {now})");
                let previous = previous.expect("without revocation, a key always signs");
                let old = self.key_mut(&previous);
                assert_eq!(old.state, KeyState::Active);
                let since = old
                    .activated_at
                    .expect("the active key says when it started");
                assert!(
                    at >= since + policy.rotation_interval,
                    "{previous} replaced at {at}, after signing for only {}s",
                    at - since
                );
                old.state = KeyState::Retiring;
                old.deactivated_at = Some(at);
                let new = self.key_mut(&next);
                assert_eq!(new.state, KeyState::Next);
                new.state = KeyState::Active;
                new.activated_at = Some(at);
            }
            Step::Retire(kid) => self.retire(&kid, KeyState::Retiring, now),
            Step::DiscardNext(kid) => self.retire(&kid, KeyState::Next, now),
        }
    }

    fn retire(&mut self, kid: &str, from: KeyState, now: UnixTime) {
        let key = self.key_mut(kid);
        assert_eq!(key.state, from, "{kid} retired from the wrong state");
        key.state = KeyState::Retired;
        key.retired_at = Some(now);
        key.sealed_private = None;
    }

    fn check(&self, now: UnixTime, first: bool) {
        let policy = &self.policy;
        assert_eq!(count_in(&self.keys, KeyState::Active), 1, "at {now}");
        assert_eq!(count_in(&self.keys, KeyState::Next), 1, "at {now}");
        for (i, key) in self.keys.iter().enumerate() {
            if let Some(activated) = key.activated_at.filter(|_| i > 0) {
                assert!(
                    activated - key.created_at >= policy.prepublish,
                    "{} signed {}s after it was published",
                    key.kid,
                    activated - key.created_at
                );
            }
            let due = key.deactivated_at.map(|at| at + policy.retire_after);
            match (key.state, due) {
                (KeyState::Retired, Some(due)) => assert!(
                    key.retired_at.is_some_and(|at| at >= due),
                    "{} retired at {:?}, before {due}",
                    key.kid,
                    key.retired_at
                ),
                (KeyState::Retiring, Some(due)) => assert!(
                    now < due,
                    "{} still retiring at {now}, due at {due}",
                    key.kid
                ),
                (KeyState::Retired, None) => assert!(
                    key.activated_at.is_none(),
                    "{} was discarded after it signed",
                    key.kid
                ),
                (KeyState::Retiring, None) => panic!("{} never stopped signing", key.kid),
                _ => {}
            }
        }
        if first {
            return;
        }
        let active = key(&self.keys, &kid_in(&self.keys, KeyState::Active));
        let next = key(&self.keys, &kid_in(&self.keys, KeyState::Next));
        assert_eq!(
            next.alg, policy.algorithm,
            "the waiting key has the configured algorithm"
        );
        let due = (active.activated_at.unwrap() + policy.rotation_interval)
            .max(next.created_at + policy.prepublish);
        assert!(now < due, "the rotation due at {due} was skipped at {now}");
    }

    fn make(&mut self, alg: Algorithm, state: KeyState, now: UnixTime) -> StoredKey {
        self.made += 1;
        StoredKey {
            kid: format!("kid-{}", self.made),
            alg,
            state,
            public: PublicJwk::Ec {
                crv: "P-256".into(),
                x: "x".into(),
                y: "y".into(),
            },
            sealed_private: Some(vec![1]),
            created_at: now,
            activated_at: None,
            deactivated_at: None,
            retired_at: None,
            revoked_at: None,
            rotate_requested_at: None,
        }
    }

    fn key_mut(&mut self, kid: &str) -> &mut StoredKey {
        self.keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("the plan names an unknown key {kid}"))
    }

    fn published(&self) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(|k| k.kid.clone())
            .collect()
    }
}
