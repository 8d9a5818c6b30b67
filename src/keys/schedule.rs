//! The rotation schedule as a pure function: given the time, the stored
//! keys and the policy, which steps are due. Nothing here reads a clock or
//! a database, so tests can drive it through years in milliseconds.
//!
//! A key's life: `next` (published, waiting) → `active` (signing) →
//! `retiring` (published until every token it signed has expired) →
//! `retired` (unpublished, private key erased); or `revoked` at any time.

use crate::clock::{UnixTime, seconds};
use crate::config::Config;
use crate::store::{KeyState, StoredKey};
use crate::verifier::Algorithm;

/// Seconds a retiring key stays published beyond its tokens' lifetime. A
/// scheduled handover happens at the same instant in every process (see
/// [`KeySet::signer_at`](super::KeySet::signer_at)), but after a forced
/// one (`keys rotate --now`, a revocation) another process may sign with
/// the old key until its next poll, 250 ms later; this covers that, with
/// room for a loaded machine and whole-second dates.
pub const PROPAGATION_MARGIN: i64 = 2;

/// The durations that drive rotation, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long a key signs before the next one takes over.
    pub rotation_interval: i64,
    /// How long a key is published before it may sign.
    pub prepublish: i64,
    /// How long a key stays published after it stopped signing: the longest
    /// token lifetime plus leeway, plus [`PROPAGATION_MARGIN`].
    pub retire_after: i64,
    /// Algorithm of keys made from now on.
    pub algorithm: Algorithm,
}

impl RotationPolicy {
    /// The policy `config` sets.
    pub fn new(config: &Config) -> Self {
        let longest_lifetime = [
            config.access_token_lifetime,
            config.refresh_token_lifetime,
            config.sliding_token_lifetime,
            config.sliding_token_refresh_lifetime,
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        Self {
            rotation_interval: seconds(config.key_rotation_interval),
            prepublish: seconds(config.key_prepublish),
            retire_after: seconds(longest_lifetime) + seconds(config.leeway) + PROPAGATION_MARGIN,
            algorithm: config.algorithm,
        }
    }
}

/// One change to the key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make a key that signs at once: only when no key signs and none waits
    /// (the very first start).
    CreateActive(Algorithm),
    /// Make a new `next` key.
    CreateNext(Algorithm),
    /// `next` starts signing; `previous`, if any, starts retiring.
    Activate {
        /// The next key's kid.
        next: String,
        /// The active key's kid.
        previous: Option<String>,
        /// When the handover happened: the scheduled instant, at which every
        /// process already switched on its own (see
        /// [`KeySet::signer_at`](super::KeySet::signer_at)), or now when no
        /// key was signing.
        at: UnixTime,
    },
    /// Unpublish a retiring key whose tokens have all expired and erase its
    /// private key.
    Retire(String),
    /// Drop a `next` key that never signed (its algorithm is no longer the
    /// configured one); a new one is made in its place.
    DiscardNext(String),
}

impl Step {
    /// Whether applying this step needs freshly generated key material.
    pub fn creates_key(&self) -> bool {
        matches!(self, Self::CreateActive(_) | Self::CreateNext(_))
    }
}

/// The steps due at `now`, in the order to apply them.
pub fn plan(now: UnixTime, keys: &[StoredKey], policy: &RotationPolicy) -> Vec<Step> {
    let active = keys.iter().find(|k| k.state == KeyState::Active);
    let next = keys.iter().find(|k| k.state == KeyState::Next);
    let mut steps = Vec::new();
    match (active, next) {
        (None, None) => steps.push(Step::CreateActive(policy.algorithm)),
        // No key signs (the active one was revoked): the next key takes over at once.
        (None, Some(next)) => {
            steps.push(Step::Activate {
                next: next.kid.clone(),
                previous: None,
                at: now,
            });
            steps.push(Step::CreateNext(policy.algorithm));
        }
        (Some(_), None) => steps.push(Step::CreateNext(policy.algorithm)),
        (Some(_), Some(next)) if next.alg != policy.algorithm => {
            steps.push(Step::DiscardNext(next.kid.clone()));
            steps.push(Step::CreateNext(policy.algorithm));
        }
        (Some(active), Some(next)) => {
            if let Some(at) = activation_time(active, next, policy).filter(|at| *at <= now) {
                steps.push(Step::Activate {
                    next: next.kid.clone(),
                    previous: Some(active.kid.clone()),
                    at,
                });
                steps.push(Step::CreateNext(policy.algorithm));
            }
        }
    }
    for key in keys.iter().filter(|k| k.state == KeyState::Retiring) {
        if retirement_time(key, policy).is_some_and(|at| at <= now) {
            steps.push(Step::Retire(key.kid.clone()));
        }
    }
    steps
}

/// When `next` takes over from `active`: once `active` has signed for the
/// rotation interval (or a rotation was requested) and `next` has been
/// published for the pre-publication time.
pub fn activation_time(
    active: &StoredKey,
    next: &StoredKey,
    policy: &RotationPolicy,
) -> Option<UnixTime> {
    let scheduled = active
        .activated_at?
        .saturating_add(policy.rotation_interval);
    let due = active
        .rotate_requested_at
        .map_or(scheduled, |asked| asked.min(scheduled));
    Some(due.max(next.created_at.saturating_add(policy.prepublish)))
}

/// When a retiring key's last token has expired.
pub fn retirement_time(key: &StoredKey, policy: &RotationPolicy) -> Option<UnixTime> {
    Some(key.deactivated_at?.saturating_add(policy.retire_after))
}

/// When the set of published keys next changes on schedule (a rotation
/// publishes a new `next` key; a retirement unpublishes one). `None` when
/// nothing is scheduled.
pub fn next_published_change(keys: &[StoredKey], policy: &RotationPolicy) -> Option<UnixTime> {
    let active = keys.iter().find(|k| k.state == KeyState::Active);
    let next = keys.iter().find(|k| k.state == KeyState::Next);
    let rotation = match (active, next) {
        (Some(active), Some(next)) => activation_time(active, next, policy),
        _ => None,
    };
    let retirements = keys
        .iter()
        .filter(|k| k.state == KeyState::Retiring)
        .filter_map(|k| retirement_time(k, policy));
    rotation.into_iter().chain(retirements).min()
}
