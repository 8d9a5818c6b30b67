//! Public keys from outside the database, for offline verification
//! (`jwtd token verify`): a JWKS document, or one PEM public key.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::ring::VerifyingKey;
use super::{Algorithm, PublicJwk};

/// Published keys by kid, or one key that verifies whatever the kid.
pub enum PublicKeySet {
    /// From a JWKS: a token's `kid` picks the key.
    ByKid(HashMap<String, VerifyingKey>),
    /// From a PEM file: the token's `kid` is not consulted.
    Single(VerifyingKey),
}

/// Why public keys could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The JWKS is not JSON or not `{"keys":[…]}`.
    #[error("not a JWKS document: {0}")]
    NotJwks(String),
    /// The JWKS has no usable RS256 or ES256 signing key.
    #[error("the JWKS has no RS256 or ES256 signing key")]
    NoUsableKey,
    /// The PEM is not a `PUBLIC KEY` of a kind jwtd verifies.
    #[error("not an RSA or P-256 public key in PEM form: {0}")]
    NotPublicKey(String),
}

impl PublicKeySet {
    /// Reads a JWKS document. Keys for other uses or algorithms are skipped.
    pub fn from_jwks(text: &str) -> Result<Self, PublicKeyError> {
        let document: Value =
            serde_json::from_str(text).map_err(|err| PublicKeyError::NotJwks(err.to_string()))?;
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| PublicKeyError::NotJwks("no \"keys\" array".into()))?;
        let by_kid: HashMap<String, VerifyingKey> = keys.iter().filter_map(usable_key).collect();
        if by_kid.is_empty() {
            return Err(PublicKeyError::NoUsableKey);
        }
        Ok(Self::ByKid(by_kid))
    }

    /// Reads one `-----BEGIN PUBLIC KEY-----` document (RSA or P-256).
    pub fn from_pem(text: &str) -> Result<Self, PublicKeyError> {
        let jwk = PublicJwk::from_pem(text).map_err(PublicKeyError::NotPublicKey)?;
        let key = VerifyingKey::new(&jwk).map_err(PublicKeyError::NotPublicKey)?;
        Ok(Self::Single(key))
    }

    /// The key for a token whose header names `kid`.
    pub fn key_for(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match self {
            Self::ByKid(keys) => keys.get(kid?),
            Self::Single(key) => Some(key),
        }
    }
}

/// A JWKS entry jwtd can verify with: `use` absent or `sig`, a kid, and an
/// `alg` (if given) that matches the key type.
fn usable_key(entry: &Value) -> Option<(String, VerifyingKey)> {
    if entry.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = entry.get("kid")?.as_str()?.to_owned();
    let jwk = match entry.get("kty")?.as_str()? {
        "RSA" => PublicJwk::Rsa {
            n: entry.get("n")?.as_str()?.to_owned(),
            e: entry.get("e")?.as_str()?.to_owned(),
        },
        "EC" if entry.get("crv")? == "P-256" => PublicJwk::Ec {
            crv: "P-256".into(),
            x: entry.get("x")?.as_str()?.to_owned(),
            y: entry.get("y")?.as_str()?.to_owned(),
        },
        _ => return None,
    };
    let alg: Option<Algorithm> = match entry.get("alg") {
        None => None,
        Some(alg) => Some(alg.as_str()?.parse().ok()?),
    };
    if alg.is_some_and(|alg| alg != jwk.algorithm()) {
        return None;
    }
    Some((kid, VerifyingKey::new(&jwk).ok()?))
}

impl PublicJwk {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let (label, der) = pem_body(text)?;
        if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
            return Err(format!(
                "found a \"{label}\" block, expected \"PUBLIC KEY\""
            ));
        }
        if let Some(point) = der.strip_prefix(&super::jwk::P256_SPKI_PREFIX[..]) {
            return Self::p256(point).ok_or_else(|| "malformed P-256 point".to_owned());
        }
        let rsa = aws_lc_rs::rsa::PublicKey::from_der(&der)
            .map_err(|_| "neither an RSA nor a P-256 public key".to_owned())?;
        let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&rsa);
        Ok(Self::rsa(&components.n, &components.e))
    }
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_body(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| "no -----BEGIN line".to_owned())?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = STANDARD
                .decode(&body)
                .map_err(|_| "the PEM body is not base64".to_owned())?;
            return Ok((label, der));
        }
        body.push_str(line);
    }
    Err(format!("no {end} line"))
}
