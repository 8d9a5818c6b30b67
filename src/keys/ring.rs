//! The in-memory key ring: the active key decrypted and parsed once, a
//! verifier per published key, and the JWKS body with its ETag, all built
//! when the stored key set changes and shared by every request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::schedule::{RotationPolicy, activation_time, next_published_change};
use super::{KeyError, MasterKey};
use crate::clock::UnixTime;
use crate::store::{KeyState, StoredKey};
use crate::verifier::{Algorithm, KeyLookup, PublicJwk, PublicKey};

/// The key that signs new tokens, parsed once.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    /// base64url of `{"alg":…,"typ":"JWT","kid":…}`, computed once.
    encoded_header: String,
    pair: KeyPair,
    rng: SystemRandom,
}

enum KeyPair {
    /// RS256 or PS256, by the encoding.
    Rsa(aws_lc_rs::rsa::KeyPair, &'static dyn RsaEncoding),
    /// ES256 or ES384, by the curve the pair was parsed for.
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("pair", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 private key for `alg`.
    pub fn from_pkcs8(kid: &str, alg: Algorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            kid: kid.to_owned(),
            reason,
        };
        let rsa = |encoding: &'static dyn RsaEncoding| {
            aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map(|pair| KeyPair::Rsa(pair, encoding))
        };
        let pair = match alg {
            Algorithm::Rs256 => rsa(&RSA_PKCS1_SHA256),
            Algorithm::Ps256 => rsa(&RSA_PSS_SHA256),
            Algorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map(KeyPair::Ec)
            }
            Algorithm::Es384 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8).map(KeyPair::Ec)
            }
            Algorithm::EdDsa => Ed25519KeyPair::from_pkcs8(pkcs8).map(KeyPair::Ed25519),
        }
        .map_err(|err| malformed(err.to_string()))?;
        let header = serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": kid});
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            encoded_header: URL_SAFE_NO_PAD.encode(header.to_string()),
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Builds a compact JWS over `payload` (the claims' JSON).
    pub fn sign(&self, payload: &[u8]) -> Result<String, KeyError> {
        let mut token = String::with_capacity(self.encoded_header.len() + payload.len() * 2 + 700);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let failed = |_| KeyError::Sign(self.kid.clone());
        let signature = match &self.pair {
            KeyPair::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &self.rng, token.as_bytes(), &mut signature)
                    .map_err(failed)?;
                signature
            }
            KeyPair::Ec(pair) => pair
                .sign(&self.rng, token.as_bytes())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            KeyPair::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// The JWKS document as served: body and strong ETag.
#[derive(Debug, Clone)]
pub struct JwksDocument {
    /// `{"keys":[…]}`.
    pub body: bytes::Bytes,
    /// A quoted strong entity tag derived from the body (shared into each
    /// response's header, not copied).
    pub etag: bytes::Bytes,
}

/// Everything the request path needs about keys, at one version of the
/// stored key set.
pub struct KeySet {
    /// The store's key-set version this was built from.
    pub version: i64,
    /// The key that signs; `None` only before the first key exists.
    pub signer: Option<Arc<SigningKey>>,
    /// The key `signer` replaced, while the recorded handover lies ahead
    /// on this process's clock (a replica whose clock runs ahead took the
    /// step early): it signs until then, so every replica switches at the
    /// stored instant by its own clock.
    outgoing: Option<(Arc<SigningKey>, UnixTime)>,
    /// The key that takes over at `handover_at`, parsed ahead so that every
    /// process switches at the scheduled instant, not when it next polls.
    next_signer: Option<Arc<SigningKey>>,
    /// When the next key is scheduled to take over.
    handover_at: Option<UnixTime>,
    verifiers: HashMap<String, PublicKey>,
    /// The JWKS as served.
    pub jwks: JwksDocument,
    /// When the published set next changes on schedule; bounds the JWKS
    /// `max-age`.
    pub next_change: Option<UnixTime>,
    /// How many published keys are in each state, and since when.
    census: KeyCensus,
}

/// The published keys by state, for metrics (read through
/// [`KeySet::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCensus {
    /// Published keys not yet signing.
    pub next: usize,
    /// Signing keys (one, once the first key exists).
    pub active: usize,
    /// Keys no longer signing, published until their tokens expire.
    pub retiring: usize,
    /// When the key signing now started signing.
    pub signing_since: Option<UnixTime>,
    /// When the next key (if any) was published.
    pub next_published_at: Option<UnixTime>,
}

impl KeySet {
    /// Builds the set from the stored keys. Only the active and next
    /// private keys are decrypted, and only when `previous` doesn't hold them.
    pub fn build(
        version: i64,
        keys: &[StoredKey],
        master: &MasterKey,
        previous: Option<&KeySet>,
        policy: &RotationPolicy,
    ) -> Result<Self, KeyError> {
        let published = published_in_order(keys);
        let in_state = |state| published.iter().copied().find(|k| k.state == state);
        let (active, next) = (in_state(KeyState::Active), in_state(KeyState::Next));
        let signer = active
            .map(|key| reuse_or_open(key, previous, master))
            .transpose()?;
        let next_signer = next
            .map(|key| reuse_or_open(key, previous, master))
            .transpose()?;
        let outgoing = match active.and_then(|key| key.activated_at) {
            Some(from) => published
                .iter()
                .find(|key| {
                    key.state == KeyState::Retiring
                        && key.deactivated_at == Some(from)
                        && key.sealed_private.is_some()
                })
                .map(|key| Ok::<_, KeyError>((reuse_or_open(key, previous, master)?, from)))
                .transpose()?,
            None => None,
        };
        let handover_at = match (active, next) {
            // A next key of another algorithm is discarded, never activated.
            (Some(active), Some(next)) if next.alg == policy.algorithm => {
                activation_time(active, next, policy)
            }
            _ => None,
        };
        let mut verifiers = HashMap::with_capacity(published.len());
        for key in &published {
            verifiers.insert(key.kid.clone(), verifying_key(key)?);
        }
        Ok(Self {
            version,
            signer,
            outgoing,
            next_signer,
            handover_at,
            verifiers,
            jwks: jwks_document(&published),
            next_change: next_published_change(keys, policy),
            census: KeyCensus {
                next: published
                    .iter()
                    .filter(|k| k.state == KeyState::Next)
                    .count(),
                active: usize::from(active.is_some()),
                retiring: published
                    .iter()
                    .filter(|k| k.state == KeyState::Retiring)
                    .count(),
                signing_since: active.and_then(|k| k.activated_at),
                next_published_at: next.map(|k| k.created_at),
            },
        })
    }

    /// The JWKS document of the published keys among `keys`, exactly as
    /// the server serves it.
    pub fn jwks_of(keys: &[StoredKey]) -> JwksDocument {
        jwks_document(&published_in_order(keys))
    }

    /// The key that signs at `now`: the active key from its recorded
    /// activation on, the key it replaced before that, and the next key
    /// once its scheduled handover has come, even before this process has
    /// seen the database record it. A key is thus never used past the
    /// moment the schedule retires it from signing, which is what its
    /// retirement date is computed from, nor before it is due.
    pub fn signer_at(&self, now: UnixTime) -> Option<&Arc<SigningKey>> {
        if let Some((outgoing, until)) = &self.outgoing
            && now < *until
        {
            return Some(outgoing);
        }
        match (&self.next_signer, self.handover_at) {
            (Some(next), Some(at)) if now >= at => Some(next),
            _ => self.signer.as_ref(),
        }
    }

    /// The published keys by state at `now`: after a scheduled handover
    /// this process has not yet seen recorded, the next key counts as
    /// active and the active one as retiring.
    pub fn census(&self, now: UnixTime) -> KeyCensus {
        match (&self.next_signer, self.handover_at) {
            (Some(_), Some(at)) if now >= at => KeyCensus {
                next: self.census.next.saturating_sub(1),
                retiring: self.census.retiring + self.census.active,
                signing_since: Some(at),
                next_published_at: None,
                ..self.census
            },
            _ => self.census,
        }
    }

    /// The algorithms of the published keys.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algorithms: Vec<Algorithm> = self.verifiers.values().map(|key| key.alg).collect();
        algorithms.sort_by_key(|alg| alg.as_str());
        algorithms.dedup();
        algorithms
    }

    /// The verifier for a published `kid`.
    pub fn verifier(&self, kid: &str) -> Option<&PublicKey> {
        self.verifiers.get(kid)
    }
}

/// Published keys, the active one first, then next, then retiring.
fn published_in_order(keys: &[StoredKey]) -> Vec<&StoredKey> {
    let mut published: Vec<&StoredKey> = keys.iter().filter(|k| k.state.is_published()).collect();
    published.sort_by_key(|k| (state_order(k.state), k.created_at));
    published
}

fn state_order(state: KeyState) -> u8 {
    match state {
        KeyState::Active => 0,
        KeyState::Next => 1,
        _ => 2,
    }
}

/// The parsed signer of `key`: taken from `previous` when it already holds
/// it, so a reload decrypts only keys it has not seen.
fn reuse_or_open(
    key: &StoredKey,
    previous: Option<&KeySet>,
    master: &MasterKey,
) -> Result<Arc<SigningKey>, KeyError> {
    let known = previous
        .into_iter()
        .flat_map(|p| {
            [
                p.signer.as_ref(),
                p.next_signer.as_ref(),
                p.outgoing.as_ref().map(|o| &o.0),
            ]
        })
        .flatten()
        .find(|signer| signer.kid == key.kid);
    match known {
        Some(signer) => Ok(Arc::clone(signer)),
        None => Ok(Arc::new(open_signer(key, master)?)),
    }
}

fn open_signer(key: &StoredKey, master: &MasterKey) -> Result<SigningKey, KeyError> {
    let sealed = key
        .sealed_private
        .as_deref()
        .ok_or_else(|| KeyError::Malformed {
            kid: key.kid.clone(),
            reason: "active key has no private key".into(),
        })?;
    let pkcs8 = master.open(&key.kid, sealed)?;
    SigningKey::from_pkcs8(&key.kid, key.alg, &pkcs8)
}

fn verifying_key(key: &StoredKey) -> Result<PublicKey, KeyError> {
    let public = match (&key.public, key.alg) {
        (public, alg) if !public.fits(alg) => Err(format!("not a public key for {alg}")),
        (PublicJwk::Rsa { n, e }, Algorithm::Ps256) => PublicKey::rsa_pss(n, e),
        (PublicJwk::Rsa { n, e }, _) => PublicKey::rsa(n, e),
        (PublicJwk::Ec { x, y, .. }, Algorithm::Es384) => PublicKey::p384(x, y),
        (PublicJwk::Ec { x, y, .. }, _) => PublicKey::p256(x, y),
        (PublicJwk::Okp { x, .. }, _) => PublicKey::ed25519(x),
    };
    public.map_err(|reason| KeyError::Malformed {
        kid: key.kid.clone(),
        reason,
    })
}

fn jwks_document(published: &[&StoredKey]) -> JwksDocument {
    let keys: Vec<serde_json::Value> = published
        .iter()
        .map(|k| k.public.published(&k.kid, k.alg))
        .collect();
    let body = serde_json::json!({ "keys": keys }).to_string();
    let hash = digest::digest(&digest::SHA256, body.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
    JwksDocument {
        etag: bytes::Bytes::from(etag),
        body: bytes::Bytes::from(body),
    }
}

impl KeyLookup for KeySet {
    fn key_for(&self, kid: Option<&str>) -> Option<&PublicKey> {
        self.verifier(kid?)
    }
}

/// The shared, swappable current [`KeySet`].
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    /// A ring holding `set`.
    pub fn new(set: KeySet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The key set to use for one request.
    pub fn current(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a complete Arc: keep serving it.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a newer key set.
    pub fn replace(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}
