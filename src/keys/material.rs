//! Generating fresh signing keys with aws-lc-rs. Never sign with the `rsa`
//! crate (RUSTSEC-2023-0071); jwtd doesn't depend on it at all.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use zeroize::Zeroizing;

use super::KeyError;
use crate::verifier::{Algorithm, PublicJwk};

/// A newly generated key: its id, public JWK and PKCS#8 private key.
pub struct GeneratedKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// What it signs with.
    pub alg: Algorithm,
    /// The public half.
    pub public: PublicJwk,
    /// The private key, PKCS#8 v1 DER; wiped when dropped.
    pub pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("pkcs8", &"[redacted]")
            .finish()
    }
}

/// Generates a key for `alg`; `rsa_bits` (2048, 3072 or 4096) sizes RSA
/// keys (RS256 and PS256). RSA generation takes tens of milliseconds: call
/// it off the async reactor.
pub fn generate(alg: Algorithm, rsa_bits: u32) -> Result<GeneratedKey, KeyError> {
    let fail = |_| KeyError::Generate(alg);
    let (public, pkcs8) = match alg {
        Algorithm::Rs256 | Algorithm::Ps256 => {
            let size = match rsa_bits {
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                _ => KeySize::Rsa2048,
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(fail)?;
            let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let der = pair.as_der().map_err(fail)?;
            (
                PublicJwk::rsa(&components.n, &components.e),
                Zeroizing::new(der.as_ref().to_vec()),
            )
        }
        Algorithm::Es256 | Algorithm::Es384 => {
            let signing = match alg {
                Algorithm::Es384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
                _ => &ECDSA_P256_SHA256_FIXED_SIGNING,
            };
            let pair = EcdsaKeyPair::generate(signing).map_err(fail)?;
            let point = pair.public_key().as_ref();
            let public = match alg {
                Algorithm::Es384 => PublicJwk::p384(point),
                _ => PublicJwk::p256(point),
            }
            .ok_or(KeyError::Generate(alg))?;
            let der = pair.to_pkcs8v1().map_err(fail)?;
            (public, Zeroizing::new(der.as_ref().to_vec()))
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::generate().map_err(fail)?;
            let public =
                PublicJwk::ed25519(pair.public_key().as_ref()).ok_or(KeyError::Generate(alg))?;
            let der = pair.to_pkcs8v1().map_err(fail)?;
            (public, Zeroizing::new(der.as_ref().to_vec()))
        }
    };
    Ok(GeneratedKey {
        kid: public.thumbprint(),
        alg,
        public,
        pkcs8,
    })
}
