//! The public half of a key as a JWK (RFC 7517), its RFC 7638 thumbprint
//! (used as the `kid`), and its PEM form for offline verification.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::key::{Algorithm, P256_SPKI_PREFIX};

/// The public members of a signing key, base64url-encoded as in a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A P-256 public key.
    #[serde(rename = "EC")]
    Ec {
        /// Curve name; always `P-256`.
        crv: String,
        /// X coordinate.
        x: String,
        /// Y coordinate.
        y: String,
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
        if point.len() != 65 || point[0] != 0x04 {
            return None;
        }
        Some(Self::Ec {
            crv: "P-256".into(),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..]),
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
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The algorithm this kind of key is used with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rsa { .. } => Algorithm::Rs256,
            Self::Ec { .. } => Algorithm::Es256,
        }
    }

    /// The JWK as published in the JWKS: public members plus `use`, `alg`
    /// and `kid`.
    pub fn published(&self, kid: &str) -> serde_json::Value {
        let alg = self.algorithm().as_str();
        match self {
            Self::Rsa { n, e } => {
                json!({"kty": "RSA", "use": "sig", "alg": alg, "kid": kid, "n": n, "e": e})
            }
            Self::Ec { crv, x, y } => {
                json!({"kty": "EC", "use": "sig", "alg": alg, "kid": kid, "crv": crv, "x": x, "y": y})
            }
        }
    }

    /// The DER SubjectPublicKeyInfo of this key.
    pub fn to_spki_der(&self) -> Option<Vec<u8>> {
        use aws_lc_rs::encoding::AsDer;
        match self {
            Self::Rsa { n, e } => {
                let components = aws_lc_rs::rsa::PublicKeyComponents {
                    n: URL_SAFE_NO_PAD.decode(n).ok()?,
                    e: URL_SAFE_NO_PAD.decode(e).ok()?,
                };
                Some(components.as_der().ok()?.as_ref().to_vec())
            }
            Self::Ec { x, y, .. } => {
                let (x, y) = (
                    URL_SAFE_NO_PAD.decode(x).ok()?,
                    URL_SAFE_NO_PAD.decode(y).ok()?,
                );
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                Some([&P256_SPKI_PREFIX[..], &[0x04], &x, &y].concat())
            }
        }
    }

    /// The key as a `-----BEGIN PUBLIC KEY-----` PEM document.
    pub fn to_pem(&self) -> Option<String> {
        let encoded = STANDARD.encode(self.to_spki_der()?);
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
        assert_eq!(jwk.to_spki_der().unwrap().len(), 91);
    }
}
