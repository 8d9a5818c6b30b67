//! Signing keys: generation ([`material`]), their public JWK form
//! ([`jwk`]), encryption at rest ([`seal`]) and the in-memory key ring that
//! signs and verifies with keys parsed once ([`ring`]).

pub mod jwk;
pub mod lifecycle;
pub mod material;
pub mod ring;
pub mod schedule;
pub mod seal;

use std::str::FromStr;

pub use crate::verifier::Algorithm;
pub use jwk::PublicJwk;
pub use material::GeneratedKey;
pub use ring::{KeyRing, KeySet, SigningKey};
pub use seal::MasterKey;

/// Where a key is in its life (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing; exactly one at any instant.
    Active,
    /// Published, no longer signing, until its tokens have expired.
    Retiring,
    /// Unpublished; private key erased.
    Retired,
    /// Unpublished at once after a compromise; its tokens fail.
    Revoked,
}

impl KeyState {
    /// The name stored in the database and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    /// Whether keys in this state appear in the JWKS and verify tokens.
    pub fn is_published(self) -> bool {
        matches!(self, Self::Next | Self::Active | Self::Retiring)
    }
}

impl FromStr for KeyState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "next" => Ok(Self::Next),
            "active" => Ok(Self::Active),
            "retiring" => Ok(Self::Retiring),
            "retired" => Ok(Self::Retired),
            "revoked" => Ok(Self::Revoked),
            other => Err(format!("unknown key state `{other}`")),
        }
    }
}

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
    /// A stored private key did not decrypt: wrong master key or tampering.
    #[error("private key {kid} does not decrypt with this master key (wrong master key?)")]
    Decrypt {
        /// The key's id.
        kid: String,
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
