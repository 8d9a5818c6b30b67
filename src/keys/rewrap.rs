//! Replacing the master key while servers run (SPEC §8): every stored
//! private key must open with the configured master keys, and
//! [`rewrap`] re-seals them all under the first, so the old master key can
//! then be removed.

use super::seal::fingerprint_of;
use super::{Fingerprint, KeyError, MasterKey};
use crate::store::{Store, StoredKey};

/// Fails, naming the key, unless every stored private key (in any state)
/// opens with one of the configured master keys: a key that does not
/// would otherwise fail only when it is due to sign.
pub fn check_every_key_opens(keys: &[StoredKey], master: &MasterKey) -> Result<(), KeyError> {
    for key in keys {
        if let Some(sealed) = key.sealed_private.as_deref() {
            master.open(&key.kid, sealed)?;
        }
    }
    Ok(())
}

/// What [`rewrap`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrapped {
    /// Private keys sealed again under `under`.
    pub resealed: usize,
    /// Private keys that were sealed under `under` already, left as they were.
    pub already: usize,
    /// The fingerprint of the first master key, which sealed them.
    pub under: Fingerprint,
}

/// Re-seals every stored private key (in any state) under the first master
/// key, in one key transaction, each row only if it still holds the
/// sealed key read: a key retired or revoked meanwhile stays erased. If a
/// key opens with none of the master keys, the error names it and nothing
/// changes.
pub async fn rewrap(store: &Store, master: &MasterKey) -> Result<Rewrapped, KeyError> {
    let under = master.sealing_fingerprint();
    let mut done = Rewrapped {
        resealed: 0,
        already: 0,
        under,
    };
    let mut tx = store.key_transaction().await?;
    let keys = tx.keys().await?;
    for key in &keys {
        let Some(sealed) = key.sealed_private.as_deref() else {
            continue;
        };
        let private = master.open(&key.kid, sealed)?;
        if fingerprint_of(sealed) == Some(under) {
            done.already += 1;
            continue;
        }
        let resealed = master.seal(&key.kid, &private)?;
        if tx.replace_sealed(&key.kid, sealed, &resealed).await? {
            done.resealed += 1;
        }
    }
    tx.commit().await?;
    tracing::info!(
        event = "keys_resealed",
        resealed = done.resealed,
        master_key = %under
    );
    Ok(done)
}
