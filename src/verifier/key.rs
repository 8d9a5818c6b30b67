//! Public keys a verifier trusts: from a JWKS or a PEM file, each fixed to
//! the one algorithm its type is made for.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::der;

/// A JWS algorithm jwtd signs with. Verification always takes it from the
/// key, never from a token's header. More may come: matches need a
/// wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt.
    Ps256,
    /// EdDSA on Ed25519 (RFC 8037).
    EdDsa,
}

impl Algorithm {
    /// Every algorithm jwtd signs and verifies with.
    pub const ALL: [Algorithm; 5] = [
        Self::Rs256,
        Self::Es256,
        Self::Es384,
        Self::Ps256,
        Self::EdDsa,
    ];

    /// The JOSE name (`RS256`, `ES256`, `ES384`, `PS256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Ps256 => "PS256",
            Self::EdDsa => "EdDSA",
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
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not RS256, ES256, ES384, PS256 or EdDSA"))
    }
}

/// A public key, parsed once, ready to verify with its own algorithm only.
pub struct PublicKey {
    /// The algorithm the key is made for.
    pub alg: Algorithm,
    verifying: ParsedPublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// DER prefix of a P-384 SubjectPublicKeyInfo, before the 97-byte point.
pub const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the
/// 32-byte key.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER AlgorithmIdentifier of RSASSA-PSS restricted to SHA-256, MGF1 with
/// SHA-256 and a 32-byte salt (RFC 4055): how a PS256 key's PEM says that
/// it is for PS256 only.
pub const PS256_ALGORITHM_ID: [u8; 67] = [
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0,
    0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03,
    0x02, 0x01, 0x20,
];

/// The first member of a JWK that holds private key material (RFC 7518
/// §6.2.2, §6.3.2, §6.4; RFC 8037 §2), if any.
fn private_member(entry: &Value) -> Option<&'static str> {
    ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .into_iter()
        .find(|&name| entry.get(name).is_some())
}

impl PublicKey {
    /// An RS256 key from base64url modulus and exponent (JWK `n`, `e`).
    /// Keys under 2048 bits are refused.
    pub fn rsa(n: &str, e: &str) -> Result<Self, String> {
        Self::rsa_for(Algorithm::Rs256, n, e)
    }

    /// A PS256 key from base64url modulus and exponent (JWK `n`, `e`).
    /// Keys under 2048 bits are refused.
    pub fn rsa_pss(n: &str, e: &str) -> Result<Self, String> {
        Self::rsa_for(Algorithm::Ps256, n, e)
    }

    fn rsa_for(alg: Algorithm, n: &str, e: &str) -> Result<Self, String> {
        let components = PublicKeyComponents {
            n: base64url(n, "n")?,
            e: base64url(e, "e")?,
        };
        Self::rsa_components(alg, components)
    }

    /// An RSA key of 2048 to 8192 bits for `alg` (RS256 or PS256).
    fn rsa_components(
        alg: Algorithm,
        components: PublicKeyComponents<Vec<u8>>,
    ) -> Result<Self, String> {
        let n = &components.n[components.n.iter().take_while(|&&b| b == 0).count()..];
        let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "{alg} keys must have 2048 to 8192 bits, not {bits}"
            ));
        }
        let der = components
            .as_der()
            .map_err(|_| "not an RSA public key".to_owned())?;
        Self::from_der(alg, der.as_ref())
    }

    /// An ES256 key from base64url P-256 coordinates (JWK `x`, `y`).
    pub fn p256(x: &str, y: &str) -> Result<Self, String> {
        Self::ec_point(Algorithm::Es256, 32, x, y)
    }

    /// An ES384 key from base64url P-384 coordinates (JWK `x`, `y`).
    pub fn p384(x: &str, y: &str) -> Result<Self, String> {
        Self::ec_point(Algorithm::Es384, 48, x, y)
    }

    fn ec_point(alg: Algorithm, size: usize, x: &str, y: &str) -> Result<Self, String> {
        let (x, y) = (base64url(x, "x")?, base64url(y, "y")?);
        if x.len() != size || y.len() != size {
            return Err(format!("{alg} coordinates must be {size} bytes each"));
        }
        Self::from_der(alg, &[&[0x04], &x[..], &y[..]].concat())
    }

    /// An EdDSA key from a base64url Ed25519 public key (JWK `x`).
    pub fn ed25519(x: &str) -> Result<Self, String> {
        let x = base64url(x, "x")?;
        if x.len() != 32 {
            return Err("Ed25519 public keys are 32 bytes".into());
        }
        Self::from_der(Algorithm::EdDsa, &x)
    }

    /// A key from what aws-lc-rs parses for `alg`: an RSA public key (DER),
    /// an uncompressed EC point or a raw Ed25519 key.
    fn from_der(alg: Algorithm, der: &[u8]) -> Result<Self, String> {
        let algorithm: &'static dyn VerificationAlgorithm = match alg {
            Algorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            Algorithm::Es256 => &ECDSA_P256_SHA256_FIXED,
            Algorithm::Es384 => &ECDSA_P384_SHA384_FIXED,
            Algorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
            Algorithm::EdDsa => &ED25519,
        };
        let verifying = ParsedPublicKey::new(algorithm, der)
            .map_err(|err| format!("unusable {alg} public key: {err}"))?;
        Ok(Self { alg, verifying })
    }

    /// Whether `signature` (base64url, as in a JWS) is this key's signature
    /// of `message` under its own algorithm. ECDSA signatures must be the
    /// JOSE form (r‖s, 64 bytes for ES256, 96 for ES384); DER is refused.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.verifying.verify_sig(message, &signature).is_ok()
    }

    /// A key from one JWKS entry: `use` absent or `sig`, `kty` RSA, EC
    /// (P-256 or P-384) or OKP (Ed25519), and an `alg` (if given) that
    /// matches the type. An RSA key is for PS256 when its `alg` says so,
    /// else for RS256.
    pub fn from_jwk(entry: &Value) -> Result<Self, String> {
        if entry.get("use").is_some_and(|u| u != "sig") {
            return Err("not a signing key".into());
        }
        if let Some(name) = private_member(entry) {
            return Err(format!("a private key member \"{name}\" in a public key"));
        }
        let verifies = |ops: &Value| {
            ops.as_array()
                .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
        };
        if entry.get("key_ops").is_some_and(|ops| !verifies(ops)) {
            return Err("key_ops does not allow \"verify\"".into());
        }
        let member = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("no \"{name}\""))
        };
        let alg = entry.get("alg");
        let key = match (member("kty")?, member("crv")) {
            ("RSA", _) if alg.is_some_and(|alg| alg == "PS256") => {
                Self::rsa_pss(member("n")?, member("e")?)?
            }
            ("RSA", _) => Self::rsa(member("n")?, member("e")?)?,
            ("EC", Ok("P-256")) => Self::p256(member("x")?, member("y")?)?,
            ("EC", Ok("P-384")) => Self::p384(member("x")?, member("y")?)?,
            ("OKP", Ok("Ed25519")) => Self::ed25519(member("x")?)?,
            (kty, crv) => {
                let crv = crv.map(|crv| format!(" on {crv}")).unwrap_or_default();
                return Err(format!("unsupported key type {kty}{crv}"));
            }
        };
        if let Some(alg) = alg
            && alg.as_str() != Some(key.alg.as_str())
        {
            return Err(format!("alg {alg} does not fit the key type"));
        }
        Ok(key)
    }

    /// A key from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or
    /// `RSA PUBLIC KEY` document: RSA (RS256), RSASSA-PSS restricted to
    /// PS256's parameters (PS256), P-256 (ES256), P-384 (ES384) or Ed25519
    /// (EdDSA).
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let (label, der) = pem_body(text)?;
        if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
            return Err(format!(
                "found a \"{label}\" block, expected \"PUBLIC KEY\""
            ));
        }
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        if let Some(point) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            if point.len() != 65 || point[0] != 0x04 {
                return Err("malformed P-256 point".into());
            }
            return Self::p256(&b64(&point[1..33]), &b64(&point[33..]));
        }
        if let Some(point) = der.strip_prefix(&P384_SPKI_PREFIX[..]) {
            if point.len() != 97 || point[0] != 0x04 {
                return Err("malformed P-384 point".into());
            }
            return Self::p384(&b64(&point[1..49]), &b64(&point[49..]));
        }
        if let Some(x) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            return Self::ed25519(&b64(x));
        }
        if label == "RSA PUBLIC KEY" {
            if !der::is_rsa_public_key(&der) {
                return Err("malformed RSA PUBLIC KEY".into());
            }
            return Self::rsa_der(Algorithm::Rs256, &der);
        }
        // The algorithm identifier decides: an RSASSA-PSS key read as an
        // RS256 one would verify PKCS#1 v1.5 signatures it was not made for.
        let spki = der::spki(&der).ok_or("not a SubjectPublicKeyInfo")?;
        match spki.algorithm {
            der::RSA_ENCRYPTION if spki.parameters == [der::NULL, 0] => {
                Self::rsa_der(Algorithm::Rs256, spki.key)
            }
            der::RSASSA_PSS if der::pss_allows_ps256(spki.parameters) => {
                Self::rsa_der(Algorithm::Ps256, spki.key)
            }
            der::RSASSA_PSS => {
                Err("an RSASSA-PSS key restricted to parameters other than PS256's".into())
            }
            _ => Err("not an RSA, P-256, P-384 or Ed25519 public key".into()),
        }
    }

    /// A `alg` key from a DER RSAPublicKey (PKCS#1).
    fn rsa_der(alg: Algorithm, der: &[u8]) -> Result<Self, String> {
        if !der::is_rsa_public_key(der) {
            return Err(format!("malformed {alg} public key"));
        }
        let rsa = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| format!("malformed {alg} public key"))?;
        Self::rsa_components(alg, PublicKeyComponents::<Vec<u8>>::from(&rsa))
    }
}

/// Where verification finds the key a token's `kid` names.
pub trait KeyLookup {
    /// The key for `kid` (the header's, if any).
    fn key_for(&self, kid: Option<&str>) -> Option<&PublicKey>;
}

impl<T: KeyLookup> KeyLookup for std::sync::Arc<T> {
    fn key_for(&self, kid: Option<&str>) -> Option<&PublicKey> {
        T::key_for(self, kid)
    }
}

/// Keys by kid, as read from a JWKS document.
#[derive(Debug, Default)]
pub struct JwkSet {
    keys: HashMap<String, PublicKey>,
}

/// Why a JWKS could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Not JSON, or not `{"keys":[…]}`.
    #[error("not a JWKS document: {0}")]
    NotJwks(String),
    /// No usable signing key with a kid, of any algorithm jwtd knows.
    #[error("the JWKS has no RS256, ES256, ES384, PS256 or EdDSA signing key")]
    NoUsableKey,
    /// An entry holds private key material: its publisher leaks keys, so
    /// none of them is trusted.
    #[error("the JWKS publishes a private key member \"{0}\"")]
    PrivateKey(&'static str),
}

impl JwkSet {
    /// Reads a JWKS document; entries jwtd can't verify with are skipped,
    /// and a document with private key material is refused whole.
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        let document: Value =
            serde_json::from_str(text).map_err(|err| JwksError::NotJwks(err.to_string()))?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::NotJwks("no \"keys\" array".into()))?;
        if let Some(member) = entries.iter().find_map(private_member) {
            return Err(JwksError::PrivateKey(member));
        }
        let keys: HashMap<String, PublicKey> = entries
            .iter()
            .filter_map(|entry| {
                let kid = entry.get("kid")?.as_str()?.to_owned();
                Some((kid, PublicKey::from_jwk(entry).ok()?))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Self { keys })
    }

    /// The key with this kid.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// Whether a key with this kid is known.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The kids of the keys loaded, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

impl KeyLookup for JwkSet {
    fn key_for(&self, kid: Option<&str>) -> Option<&PublicKey> {
        self.get(kid?)
    }
}

/// One key that verifies whatever the token's kid says (an exported PEM).
impl KeyLookup for PublicKey {
    fn key_for(&self, _kid: Option<&str>) -> Option<&PublicKey> {
        Some(self)
    }
}

/// A base64url (unpadded) JWK member, decoded.
fn base64url(text: &str, member: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("\"{member}\" is not base64url"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() {
        let mut modulus = vec![0xc5; 128];
        modulus[127] |= 1;
        let err = PublicKey::rsa(&b64(&modulus), "AQAB").unwrap_err();
        assert!(err.contains("RS256"), "{err}");
        let mut modulus = vec![0xc5; 256];
        modulus[255] |= 1;
        assert_eq!(
            PublicKey::rsa(&b64(&modulus), "AQAB").unwrap().alg,
            Algorithm::Rs256
        );
    }

    #[test]
    fn p256_coordinates_must_be_a_point_on_the_curve() {
        assert!(PublicKey::p256(&b64(&[1; 31]), &b64(&[1; 32])).is_err());
        assert!(PublicKey::p256(&b64(&[1; 32]), &b64(&[1; 32])).is_err());
        assert!(PublicKey::p256("not base64!", &b64(&[1; 32])).is_err());
    }

    fn pem(der: &[u8]) -> String {
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }

    /// The forms other encoders give an RSASSA-PSS key: every one reads as
    /// PS256 or not at all, never as an RS256 key that would verify PKCS#1
    /// v1.5 signatures.
    #[test]
    fn an_rsassa_pss_pem_is_read_as_ps256_or_refused_never_as_rs256() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
        use der::{OID, SEQUENCE, wrap};

        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        let key_element = der::spki(&rsa_spki).unwrap().key_element.to_vec();
        let pss = |parameters: &[u8]| {
            let identifier = wrap(
                SEQUENCE,
                &[&wrap(OID, der::RSASSA_PSS)[..], parameters].concat(),
            );
            wrap(SEQUENCE, &[identifier, key_element.clone()].concat())
        };
        let hash = |oid: &[u8]| wrap(SEQUENCE, &wrap(OID, oid));
        let parameters = |hash: Vec<u8>| {
            let mgf = wrap(SEQUENCE, &[wrap(OID, der::MGF1), hash.clone()].concat());
            let fields = [
                wrap(0xa0, &hash),
                wrap(0xa1, &mgf),
                wrap(0xa2, &[der::INTEGER, 1, 32]),
            ];
            wrap(SEQUENCE, &fields.concat())
        };
        let sha384 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];

        let message = b"header.payload";
        let rng = SystemRandom::new();
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .unwrap();
        let pkcs1 = b64(&signature);
        pair.sign(&RSA_PSS_SHA256, &rng, message, &mut signature)
            .unwrap();
        let pss_signature = b64(&signature);

        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwtd_pss = super::super::PublicJwk::rsa(&components.n, &components.e);
        let rs256 = PublicKey::from_pem(&pem(&rsa_spki)).unwrap();
        assert_eq!(rs256.alg, Algorithm::Rs256);
        assert!(rs256.verifies(message, &pkcs1));
        assert!(!rs256.verifies(message, &pss_signature));
        for (form, der) in [
            (
                "jwtd's own",
                jwtd_pss.to_spki_der(Algorithm::Ps256).unwrap(),
            ),
            ("unrestricted", pss(&[])),
            (
                "hash parameters absent",
                pss(&parameters(hash(der::SHA256))),
            ),
        ] {
            let key = PublicKey::from_pem(&pem(&der)).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(key.alg, Algorithm::Ps256, "{form}");
            assert!(key.verifies(message, &pss_signature), "{form}");
            assert!(
                !key.verifies(message, &pkcs1),
                "{form}: a PKCS#1 v1.5 signature"
            );
        }
        let err = PublicKey::from_pem(&pem(&pss(&parameters(hash(&sha384))))).unwrap_err();
        assert!(err.contains("other than PS256's"), "{err}");
        // An RSAPublicKey is no SubjectPublicKeyInfo.
        let pkcs1_key = pair.public_key().as_ref().to_vec();
        assert!(PublicKey::from_pem(&pem(&pkcs1_key)).is_err());
        let labelled = pem(&pkcs1_key).replace("PUBLIC KEY", "RSA PUBLIC KEY");
        assert_eq!(
            PublicKey::from_pem(&labelled).unwrap().alg,
            Algorithm::Rs256
        );
    }

    #[test]
    fn a_jwks_with_a_private_key_member_is_refused_whole() {
        use serde_json::json;
        let x = b64(&[7; 32]);
        let public = json!({"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x});
        let mut private = json!({"kty": "OKP", "crv": "Ed25519", "kid": "b", "x": x});
        private["d"] = json!(b64(&[9; 32]));
        let err = PublicKey::from_jwk(&private).unwrap_err();
        assert!(err.contains("\"d\""), "{err}");
        let set = json!({"keys": [public, private]}).to_string();
        assert!(matches!(
            JwkSet::parse(&set),
            Err(JwksError::PrivateKey("d"))
        ));
    }
}
