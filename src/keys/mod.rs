//! Signing keys: generation ([`material`]), their public JWK form
//! ([`jwk`]), encryption at rest ([`seal`]) and the in-memory key ring that
//! signs and verifies with keys parsed once ([`ring`]).

pub mod jwk;
pub mod lifecycle;
pub mod material;
pub mod public_set;
pub mod ring;
pub mod schedule;
pub mod seal;

use std::fmt;
use std::str::FromStr;

pub use jwk::PublicJwk;
pub use material::GeneratedKey;
pub use public_set::PublicKeySet;
pub use ring::{KeyRing, KeySet, SigningKey};
pub use seal::MasterKey;

/// A JWS algorithm jwtd signs with. Verification always takes it from the
/// stored key, never from a token's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Algorithm {
    /// The JOSE name (`RS256`, `ES256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// The same algorithm as jsonwebtoken names it.
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            other => Err(format!("`{other}` is not RS256 or ES256")),
        }
    }
}

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
