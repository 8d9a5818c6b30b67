//! Making sure the keys a deployment needs exist: one `active` key that
//! signs and one `next` key published ahead of it.

use super::ring::StoredKey;
use super::{Algorithm, KeyError, KeyState, MasterKey, material};
use crate::clock::UnixTime;
use crate::store::Store;

/// Creates an `active` key if none exists (the very first start: no token
/// exists yet, so it may sign at once) and a `next` key if none exists.
/// Safe to run from several processes at once: the database admits one key
/// per state and a loser's key is discarded.
pub async fn ensure_keys(
    store: &Store,
    master: &MasterKey,
    algorithm: Algorithm,
    rsa_bits: u32,
    now: UnixTime,
) -> Result<(), KeyError> {
    for state in [KeyState::Active, KeyState::Next] {
        let (_, keys) = store.keys_with_version().await?;
        if !keys.iter().any(|key| key.state == state) {
            create_key(store, master, algorithm, rsa_bits, state, now).await?;
        }
    }
    Ok(())
}

/// Generates a key off the reactor, seals it and stores it in `state`.
/// Returns `false` if another process stored a key in that state first.
pub async fn create_key(
    store: &Store,
    master: &MasterKey,
    algorithm: Algorithm,
    rsa_bits: u32,
    state: KeyState,
    now: UnixTime,
) -> Result<bool, KeyError> {
    let generated = tokio::task::spawn_blocking(move || material::generate(algorithm, rsa_bits))
        .await
        .map_err(|_| KeyError::Generate(algorithm))??;
    let key = StoredKey {
        sealed_private: Some(master.seal(&generated.kid, &generated.pkcs8)?),
        kid: generated.kid,
        alg: generated.alg,
        state,
        public: generated.public,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        deactivated_at: None,
        retired_at: None,
        revoked_at: None,
    };
    let inserted = store.insert_key(&key).await?;
    if inserted {
        tracing::info!(event = "key_created", kid = %key.kid, alg = %key.alg, state = key.state.as_str());
    }
    Ok(inserted)
}
