//! [`Verifier`]: keys from a PEM, a JWKS file or a JWKS URL, and the
//! options a partner service sets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::check::{ExpectedType, Rules, verify_token};
use super::key::{Algorithm, JwkSet, KeyLookup, PublicKey};
use super::remote::{RemoteJwks, RemoteOptions};
use super::{Invalid, TokenError, VerifierError};
use crate::clock::{Clock, SystemClock, UnixTime};

/// What a partner requires of tokens, and the clock it reads.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Accepted algorithms (default every one jwtd signs with:
    /// [`Algorithm::ALL`]).
    pub algorithms: Vec<Algorithm>,
    /// Required token type (default `access`); `None` accepts any.
    pub token_type: Option<String>,
    /// Name of the token type claim.
    pub token_type_claim: String,
    /// Name of the token id claim.
    pub jti_claim: String,
    /// Accepted `Authorization` schemes, for the extractor.
    pub auth_header_types: Vec<String>,
    /// The time tokens are verified at and a JWKS URL's cache runs on
    /// (default the wall clock).
    pub clock: Arc<dyn Clock>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        let rules = Rules::default();
        Self {
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            algorithms: rules.algorithms,
            token_type: Some("access".into()),
            token_type_claim: rules.token_type_claim,
            jti_claim: rules.jti_claim,
            auth_header_types: vec!["Bearer".into()],
            clock: Arc::new(SystemClock),
        }
    }
}

enum Keys {
    Fixed(Box<dyn KeyLookup + Send + Sync>),
    Remote(Arc<RemoteJwks>),
}

/// Verifies tokens against trusted public keys and options.
pub struct Verifier {
    keys: Keys,
    rules: Rules,
    token_type: Option<String>,
    auth_header_types: Vec<String>,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    /// A verifier trusting one PEM public key; tokens' kids are ignored.
    pub fn from_pem(pem: &str, options: VerifyOptions) -> Result<Self, VerifierError> {
        let key = PublicKey::from_pem(pem).map_err(VerifierError::NotPublicKey)?;
        Ok(Self::new(Keys::Fixed(Box::new(key)), options))
    }

    /// A verifier trusting the keys of a JWKS document.
    pub fn from_jwks(jwks: &str, options: VerifyOptions) -> Result<Self, VerifierError> {
        Ok(Self::new(
            Keys::Fixed(Box::new(JwkSet::parse(jwks)?)),
            options,
        ))
    }

    /// A verifier trusting the keys of a JWKS file.
    pub fn from_jwks_file(path: &Path, options: VerifyOptions) -> Result<Self, VerifierError> {
        Self::from_jwks(&read(path)?, options)
    }

    /// A verifier trusting the keys of a PEM file.
    pub fn from_pem_file(path: &Path, options: VerifyOptions) -> Result<Self, VerifierError> {
        Self::from_pem(&read(path)?, options)
    }

    /// A verifier trusting the JWKS served at `url`, fetched now and kept
    /// current as [`RemoteJwks`] describes.
    pub async fn from_jwks_url(
        url: &str,
        options: VerifyOptions,
        remote: RemoteOptions,
    ) -> Result<Self, VerifierError> {
        let keys = RemoteJwks::new(url, remote, options.clock.clone()).await?;
        Ok(Self::new(Keys::Remote(keys), options))
    }

    fn new(keys: Keys, options: VerifyOptions) -> Self {
        Self {
            keys,
            rules: Rules {
                issuer: options.issuer,
                audience: options.audience,
                leeway: i64::try_from(options.leeway.as_secs()).unwrap_or(i64::MAX / 2),
                token_type_claim: options.token_type_claim,
                jti_claim: options.jti_claim,
                algorithms: options.algorithms,
            },
            token_type: options.token_type,
            auth_header_types: options.auth_header_types,
            clock: options.clock,
        }
    }

    /// The remote JWKS cache, when built from a URL.
    pub fn remote(&self) -> Option<&Arc<RemoteJwks>> {
        match &self.keys {
            Keys::Remote(remote) => Some(remote),
            Keys::Fixed(_) => None,
        }
    }

    /// Accepted `Authorization` schemes.
    pub fn auth_header_types(&self) -> &[String] {
        &self.auth_header_types
    }

    /// Verifies `token` at the clock's time; returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        self.verify_at(token, self.clock.now()).await
    }

    /// Verifies `token` at the clock's time and deserialises its claims into `C`.
    pub async fn verify_as<C: DeserializeOwned>(&self, token: &str) -> Result<C, TokenError> {
        let claims = self.verify(token).await?;
        serde_json::from_value(Value::Object(claims))
            .map_err(|_| TokenError::Invalid(Invalid::BadClaim))
    }

    /// Verifies `token` as at `now`; a JWKS URL's cache still runs on the
    /// clock.
    pub async fn verify_at(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Map<String, Value>, TokenError> {
        let expected = match &self.token_type {
            Some(token_type) => ExpectedType::Exactly(token_type),
            None => ExpectedType::Any,
        };
        match &self.keys {
            Keys::Fixed(keys) => verify_token(keys.as_ref(), &self.rules, token, expected, now),
            Keys::Remote(remote) => {
                let keys = remote.keys_for(header_kid(token).as_deref()).await;
                verify_token(&keys, &self.rules, token, expected, now)
            }
        }
    }
}

/// The `kid` of a token's header, read without trusting anything.
fn header_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    if header.len() > super::MAX_TOKEN_BYTES {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    Some(header.get("kid")?.as_str()?.to_owned())
}

fn read(path: &Path) -> Result<String, VerifierError> {
    std::fs::read_to_string(path).map_err(|err| VerifierError::Read {
        path: path.display().to_string(),
        reason: err.to_string(),
    })
}
