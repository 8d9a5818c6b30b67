//! The public half of a key as a JWK (RFC 7517), its RFC 7638 thumbprint
//! (used as the `kid`), and its PEM form for offline verification.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::der;
use super::key::{
    Algorithm, ED25519_SPKI_PREFIX, P256_SPKI_PREFIX, P384_SPKI_PREFIX, PS256_ALGORITHM_ID,
};

/// The public members of a signing key, base64url-encoded as in a JWK.
/// More key types may come: matches need a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "kty", deny_unknown_fields)]
pub enum PublicJwk {
    /// An RSA public key.
    #[serde(rename = "RSA")]
    Rsa {
        /// Modulus.
        n: String,
        /// Public exponent.
        e: String,
    },
    /// A P-256 or P-384 public key.
    #[serde(rename = "EC")]
    Ec {
        /// Curve name: `P-256` or `P-384`.
        crv: String,
        /// X coordinate.
        x: String,
        /// Y coordinate.
        y: String,
    },
    /// An Ed25519 public key (RFC 8037).
    #[serde(rename = "OKP")]
    Okp {
        /// Curve name; always `Ed25519`.
        crv: String,
        /// The public key.
        x: String,
    },
}

impl PublicJwk {
    /// An RSA key from its big-endian modulus and exponent.
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> Self {
        Self::Rsa {
            n: URL_SAFE_NO_PAD.encode(strip_leading_zeros(modulus)),
            e: URL_SAFE_NO_PAD.encode(strip_leading_zeros(exponent)),
        }
    }

    /// A P-256 key from its uncompressed SEC1 point (`04 || x || y`).
    pub fn p256(point: &[u8]) -> Option<Self> {
        Self::ec("P-256", 32, point)
    }

    /// A P-384 key from its uncompressed SEC1 point (`04 || x || y`).
    pub fn p384(point: &[u8]) -> Option<Self> {
        Self::ec("P-384", 48, point)
    }

    fn ec(crv: &str, size: usize, point: &[u8]) -> Option<Self> {
        if point.len() != 1 + 2 * size || point[0] != 0x04 {
            return None;
        }
        Some(Self::Ec {
            crv: crv.into(),
            x: URL_SAFE_NO_PAD.encode(&point[1..=size]),
            y: URL_SAFE_NO_PAD.encode(&point[1 + size..]),
        })
    }

    /// An Ed25519 key from its 32 bytes.
    pub fn ed25519(key: &[u8]) -> Option<Self> {
        (key.len() == 32).then(|| Self::Okp {
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key),
        })
    }

    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members
    /// in lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            Self::Ec { crv, x, y } => {
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            Self::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// Whether this kind of key is used with `alg`: RSA with RS256 or
    /// PS256, P-256 with ES256, P-384 with ES384, Ed25519 with EdDSA.
    pub fn fits(&self, alg: Algorithm) -> bool {
        match self {
            Self::Rsa { .. } => matches!(alg, Algorithm::Rs256 | Algorithm::Ps256),
            Self::Ec { crv, .. } => {
                (crv == "P-256" && alg == Algorithm::Es256)
                    || (crv == "P-384" && alg == Algorithm::Es384)
            }
            Self::Okp { crv, .. } => crv == "Ed25519" && alg == Algorithm::EdDsa,
        }
    }

    /// The JWK as published in the JWKS for a key made for `alg`: public
    /// members plus `use`, `alg` and `kid`.
    pub fn published(&self, kid: &str, alg: Algorithm) -> serde_json::Value {
        let alg = alg.as_str();
        match self {
            Self::Rsa { n, e } => {
                json!({"kty": "RSA", "use": "sig", "alg": alg, "kid": kid, "n": n, "e": e})
            }
            Self::Ec { crv, x, y } => {
                json!({"kty": "EC", "use": "sig", "alg": alg, "kid": kid, "crv": crv, "x": x, "y": y})
            }
            Self::Okp { crv, x } => {
                json!({"kty": "OKP", "use": "sig", "alg": alg, "kid": kid, "crv": crv, "x": x})
            }
        }
    }

    /// The DER SubjectPublicKeyInfo of this key, made for `alg`. A PS256
    /// key carries the RSASSA-PSS algorithm identifier with PS256's
    /// parameters, so that its PEM verifies PS256 and nothing else.
    pub fn to_spki_der(&self, alg: Algorithm) -> Option<Vec<u8>> {
        use aws_lc_rs::encoding::AsDer;
        if !self.fits(alg) {
            return None;
        }
        let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).ok();
        match self {
            Self::Rsa { n, e } => {
                let components = aws_lc_rs::rsa::PublicKeyComponents {
                    n: decode(n)?,
                    e: decode(e)?,
                };
                let spki = components.as_der().ok()?.as_ref().to_vec();
                if alg == Algorithm::Ps256 {
                    return pss_spki(&spki);
                }
                Some(spki)
            }
            Self::Ec { x, y, .. } => {
                let (x, y) = (decode(x)?, decode(y)?);
                let (prefix, size) = match alg {
                    Algorithm::Es384 => (&P384_SPKI_PREFIX[..], 48),
                    _ => (&P256_SPKI_PREFIX[..], 32),
                };
                if x.len() != size || y.len() != size {
                    return None;
                }
                Some([prefix, &[0x04], &x, &y].concat())
            }
            Self::Okp { x, .. } => {
                let x = decode(x)?;
                (x.len() == 32).then(|| [&ED25519_SPKI_PREFIX[..], &x].concat())
            }
        }
    }

    /// The key as a `-----BEGIN PUBLIC KEY-----` PEM document.
    /// Keys that don't fit `alg` have none.
    pub fn to_pem(&self, alg: Algorithm) -> Option<String> {
        let encoded = STANDARD.encode(self.to_spki_der(alg)?);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            // Base64 output is ASCII, so every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Some(pem)
    }
}

/// An RSA SubjectPublicKeyInfo (rsaEncryption) rewritten with the
/// RSASSA-PSS algorithm identifier of PS256.
fn pss_spki(spki: &[u8]) -> Option<Vec<u8>> {
    let parsed = der::spki(spki)?;
    (parsed.algorithm == der::RSA_ENCRYPTION).then(|| {
        let contents = [&PS256_ALGORITHM_ID[..], parsed.key_element].concat();
        der::wrap(der::SEQUENCE, &contents)
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk = PublicJwk::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn p256_point_must_be_uncompressed() {
        assert!(PublicJwk::p256(&[0x02; 33]).is_none());
        let mut point = [7u8; 65];
        point[0] = 4;
        let jwk = PublicJwk::p256(&point).unwrap();
        assert_eq!(jwk.to_spki_der(Algorithm::Es256).unwrap().len(), 91);
        assert_eq!(jwk.to_spki_der(Algorithm::Es384), None);
    }

    /// RFC 8037 appendix A.3's Ed25519 key and thumbprint.
    #[test]
    fn okp_thumbprint_matches_rfc_8037_example() {
        let jwk: PublicJwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert!(jwk.fits(Algorithm::EdDsa));
        assert_eq!(jwk.to_spki_der(Algorithm::EdDsa).unwrap().len(), 44);
    }

    #[test]
    fn each_key_type_fits_only_its_algorithms() {
        let rsa = PublicJwk::rsa(&[0xc5; 256], &[1, 0, 1]);
        let p256 = PublicJwk::p256(&[[4].as_slice(), &[7; 64]].concat()).unwrap();
        let p384 = PublicJwk::p384(&[[4].as_slice(), &[7; 96]].concat()).unwrap();
        let ed25519 = PublicJwk::ed25519(&[7; 32]).unwrap();
        let fitting = |jwk: &PublicJwk| -> Vec<Algorithm> {
            Algorithm::ALL
                .into_iter()
                .filter(|alg| jwk.fits(*alg))
                .collect()
        };
        assert_eq!(fitting(&rsa), [Algorithm::Rs256, Algorithm::Ps256]);
        assert_eq!(fitting(&p256), [Algorithm::Es256]);
        assert_eq!(fitting(&p384), [Algorithm::Es384]);
        assert_eq!(fitting(&ed25519), [Algorithm::EdDsa]);
        assert!(PublicJwk::p384(&[4; 65]).is_none());
        assert!(PublicJwk::ed25519(&[7; 31]).is_none());
    }

    #[test]
    fn a_ps256_pem_names_rsassa_pss_with_its_parameters() {
        let mut modulus = vec![0xc5; 256];
        modulus[255] |= 1;
        let rsa = PublicJwk::rsa(&modulus, &[1, 0, 1]);
        let pkcs1 = rsa.to_spki_der(Algorithm::Rs256).unwrap();
        let pss = rsa.to_spki_der(Algorithm::Ps256).unwrap();
        assert_eq!(pss.len(), pkcs1.len() - 15 + PS256_ALGORITHM_ID.len());
        assert!(pss[4..].starts_with(&PS256_ALGORITHM_ID));
        assert!(pss.ends_with(&pkcs1[pkcs1.len() - 100..]));
    }
}
