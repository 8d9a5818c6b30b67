//! Signing keys: generation ([`material`]), encryption at rest
//! ([`seal`]) and re-sealing under a new master key ([`rewrap`]), the rotation schedule ([`schedule`]) carried out against the
//! store ([`lifecycle`]), and the in-memory key ring that signs and
//! verifies with keys parsed once ([`ring`]). Keys as stored are the
//! store's [`StoredKey`](crate::store::StoredKey); their public JWK form is
//! the verifier's [`PublicJwk`](crate::verifier::PublicJwk).

pub mod lifecycle;
pub mod material;
pub mod rewrap;
pub mod ring;
pub mod schedule;
pub mod seal;
#[cfg(test)]
pub(crate) mod tests;

pub use material::GeneratedKey;
pub use ring::{KeyRing, KeySet, SigningKey};
pub use seal::{Fingerprint, MasterKey};

use crate::verifier::Algorithm;

/// What can go wrong with key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The crypto library failed to generate a key.
    #[error("could not generate a {0} key")]
    Generate(Algorithm),
    /// The master key is missing, unreadable or malformed.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A stored private key opens with none of the configured master keys:
    /// the master key that sealed it is not configured, or the row was
    /// tampered with.
    #[error(
        "private key {kid} opens with none of the configured master keys{}",
        sealed_with_note(sealed_with)
    )]
    Decrypt {
        /// The key's id.
        kid: String,
        /// The master key it names as the one that sealed it, if it names one.
        sealed_with: Option<Fingerprint>,
    },
    /// Stored key material could not be parsed.
    #[error("key {kid} is malformed: {reason}")]
    Malformed {
        /// The key's id.
        kid: String,
        /// What is wrong.
        reason: String,
    },
    /// Signing failed inside the crypto library.
    #[error("signing with key {0} failed")]
    Sign(String),
    /// No key with that kid can be changed that way.
    #[error("no key `{0}` (or it is already revoked)")]
    UnknownKey(String),
    /// A rotation needs an active and a next key.
    #[error("there is no active and next key to rotate; start `jwtd serve` once first")]
    NoKeyToRotate,
    /// Reading or writing keys in the database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn sealed_with_note(sealed_with: &Option<Fingerprint>) -> String {
    sealed_with.map_or_else(String::new, |fingerprint| {
        format!(" (it was sealed with master key {fingerprint})")
    })
}
