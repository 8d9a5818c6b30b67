//! Carrying out the rotation schedule against the store: the decisions come
//! from [`schedule::plan`]; this module generates key material off the
//! reactor and applies each round of steps in one write transaction, after
//! planning again inside it, so several processes sharing one database
//! never produce two active keys or skip a step.

use super::material::{self, GeneratedKey};
use super::schedule::{self, RotationPolicy, Step};
use super::{KeyError, MasterKey};
use crate::clock::{Clock, UnixTime};
use crate::store::{KeyState, StoredKey};
use crate::store::{KeyTransaction, Store, StoreError};

/// At most this many rounds per run: the first start needs two (an active
/// key, then a next key); a rotation needs one.
const MAX_ROUNDS: usize = 4;

/// How keys are made.
#[derive(Debug, Clone, Copy)]
pub struct KeyMaking {
    /// The schedule's durations and the algorithm of new keys.
    pub policy: RotationPolicy,
    /// Modulus size of new RSA keys.
    pub rsa_bits: u32,
}

/// Applies every step the schedule says is due; returns them. The clock is
/// read again inside each transaction, after any key generation, so every
/// date written is the moment the change became visible.
pub async fn run_schedule(
    store: &Store,
    master: &MasterKey,
    making: KeyMaking,
    clock: &dyn Clock,
) -> Result<Vec<Step>, KeyError> {
    let mut applied = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let (_, keys) = store.keys_with_version().await?;
        let steps = schedule::plan(clock.now(), &keys, &making.policy);
        if steps.is_empty() {
            break;
        }
        let material = if steps.iter().any(Step::creates_key) {
            Some(generate(making).await?)
        } else {
            None
        };
        let mut tx = store.key_transaction().await?;
        let round = apply_due_steps(&mut tx, master, making, clock.now(), material).await?;
        tx.commit().await?;
        round.log();
        if round.steps.is_empty() {
            break;
        }
        applied.extend(round.steps);
    }
    Ok(applied)
}

/// Revokes `kid` at once. If it was the active key, the next key signs at
/// once and a new next key is made, in the same transaction.
pub async fn revoke(
    store: &Store,
    master: &MasterKey,
    making: KeyMaking,
    kid: &str,
    clock: &dyn Clock,
) -> Result<Vec<Step>, KeyError> {
    let making = as_deployed(store, making).await?;
    let material = generate(making).await?;
    let mut tx = store.key_transaction().await?;
    let now = clock.now();
    tx.revoke(kid, now).await.map_err(|err| match err {
        StoreError::NoSuchKey(_) => KeyError::UnknownKey(kid.to_owned()),
        other => other.into(),
    })?;
    let round = apply_due_steps(&mut tx, master, making, now, Some(material)).await?;
    tx.commit().await?;
    tracing::warn!(event = "key_revoked", kid);
    round.log();
    Ok(round.steps)
}

/// Asks for an early rotation of the published next key. With
/// `now_please`, it signs at once; otherwise as soon as it has been
/// published for `key_prepublish`.
/// Returns when the next key takes over (already past if it did).
pub async fn rotate(
    store: &Store,
    master: &MasterKey,
    making: KeyMaking,
    now_please: bool,
    clock: &dyn Clock,
) -> Result<UnixTime, KeyError> {
    let making = as_deployed(store, making).await?;
    let material = generate(making).await?;
    let mut tx = store.key_transaction().await?;
    let now = clock.now();
    tx.request_rotation(now).await?;
    let keys = tx.keys().await?;
    let active = keys.iter().find(|k| k.state == KeyState::Active);
    let next = keys.iter().find(|k| k.state == KeyState::Next);
    let (Some(active), Some(next)) = (active, next) else {
        return Err(KeyError::NoKeyToRotate);
    };
    let mut at = schedule::activation_time(active, next, &making.policy).unwrap_or(now);
    if now_please {
        let (active, next) = (active.kid.clone(), next.kid.clone());
        tx.deactivate(&active, now).await?;
        tx.activate(&next, now).await?;
        tracing::warn!(event = "key_activated", kid = %next, replaces = %active, forced = true);
        at = now;
    }
    let round = apply_due_steps(&mut tx, master, making, now, Some(material)).await?;
    tx.commit().await?;
    round.log();
    Ok(at)
}

/// `making` with the algorithm the deployment signs with (the next key's,
/// else the active key's), for the operator's commands: `keys rotate` or
/// `revoke` run with another `algorithm` than the servers' must promote the
/// published next key, not discard it and restart its pre-publication.
/// Changing the algorithm is the servers' schedule's to do.
async fn as_deployed(store: &Store, making: KeyMaking) -> Result<KeyMaking, KeyError> {
    let (_, keys) = store.keys_with_version().await?;
    let deployed = [KeyState::Next, KeyState::Active]
        .iter()
        .find_map(|state| keys.iter().find(|key| key.state == *state))
        .map(|key| key.alg);
    let mut making = making;
    if let Some(algorithm) = deployed {
        making.policy.algorithm = algorithm;
    }
    Ok(making)
}

/// Plans inside the transaction and applies what is due. Key creations use
/// `material`; if a second one is due it waits for the next round.
async fn apply_due_steps(
    tx: &mut KeyTransaction,
    master: &MasterKey,
    making: KeyMaking,
    now: UnixTime,
    mut material: Option<GeneratedKey>,
) -> Result<Round, KeyError> {
    let keys = tx.keys().await?;
    let mut round = Round::default();
    for step in schedule::plan(now, &keys, &making.policy) {
        match &step {
            Step::CreateActive(alg) | Step::CreateNext(alg) => {
                let Some(key) = material.take_if(|key| key.alg == *alg) else {
                    continue;
                };
                let state = match step {
                    Step::CreateActive(_) => KeyState::Active,
                    _ => KeyState::Next,
                };
                let key = seal(key, state, now, master)?;
                tx.insert(&key).await?;
                round.created.push(key.kid);
            }
            Step::Activate { next, previous, at } => {
                if let Some(previous) = previous {
                    tx.deactivate(previous, *at).await?;
                }
                tx.activate(next, *at).await?;
            }
            Step::Retire(kid) | Step::DiscardNext(kid) => tx.retire(kid, now).await?,
        }
        round.steps.push(step);
    }
    Ok(round)
}

/// What one transaction applied: the steps, and the kids of keys it made.
#[derive(Debug, Default)]
struct Round {
    steps: Vec<Step>,
    created: Vec<String>,
}

impl Round {
    /// One audit event per change; call after the commit.
    fn log(&self) {
        let mut created = self.created.iter();
        for step in &self.steps {
            match step {
                Step::CreateActive(alg) | Step::CreateNext(alg) => {
                    let state = if matches!(step, Step::CreateActive(_)) {
                        "active"
                    } else {
                        "next"
                    };
                    let kid = created.next().map_or("", String::as_str);
                    tracing::info!(event = "key_created", kid, %alg, state);
                }
                Step::Activate { next, previous, .. } => {
                    tracing::info!(event = "key_activated", kid = %next, replaces = ?previous)
                }
                Step::Retire(kid) => tracing::info!(event = "key_retired", %kid),
                Step::DiscardNext(kid) => {
                    tracing::info!(event = "key_retired", %kid, reason = "algorithm changed")
                }
            }
        }
    }
}

async fn generate(making: KeyMaking) -> Result<GeneratedKey, KeyError> {
    let alg = making.policy.algorithm;
    tokio::task::spawn_blocking(move || material::generate(alg, making.rsa_bits))
        .await
        .map_err(|_| KeyError::Generate(alg))?
}

fn seal(
    key: GeneratedKey,
    state: KeyState,
    now: UnixTime,
    master: &MasterKey,
) -> Result<StoredKey, KeyError> {
    Ok(StoredKey {
        sealed_private: Some(master.seal(&key.kid, &key.pkcs8)?),
        kid: key.kid,
        alg: key.alg,
        state,
        public: key.public,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        deactivated_at: None,
        retired_at: None,
        revoked_at: None,
        rotate_requested_at: None,
    })
}
