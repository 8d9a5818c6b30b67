//! Key documents: arbitrary text into `JwkSet::parse` and
//! `PublicKey::from_pem`, plus JWKS entries and PEM blocks built from genuine
//! key material (an RSA and a P-256 key) put through arbitrary edits, so the
//! parsers get past JSON, PEM and base64 to the keys themselves. Every key
//! that loads then verifies a signature: the genuine one, or any bytes.
//!
//! Beyond "never panics": a loaded JWKS has a key; every loaded key comes
//! from an entry with `use` absent or `sig` and an `alg` that fits; a forged
//! signature never verifies; an unedited key verifies its genuine signature.

#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jwtd::verifier::PublicJwk;
use jwtd::keys::material::generate;
use jwtd::verifier::{Algorithm, JwkSet, PublicKey};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// The message both keys signed.
const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9";

/// Genuine material, generated once per process; inputs refer to it by role.
struct Material {
    rsa: PublicJwk,
    p256: PublicJwk,
    rsa_spki: Vec<u8>,
    p256_spki: Vec<u8>,
    /// The RSAPublicKey inside the RSA SubjectPublicKeyInfo (PKCS#1).
    rsa_pkcs1: Vec<u8>,
    rsa_signature: String,
    p256_signature: String,
}

static MATERIAL: LazyLock<Material> = LazyLock::new(|| {
    let rsa = generate(Algorithm::Rs256, 2048).expect("RSA key");
    let p256 = generate(Algorithm::Es256, 0).expect("P-256 key");
    let rng = SystemRandom::new();
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&rsa.pkcs8).expect("RSA PKCS#8");
    let mut rsa_signature = vec![0; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &rng, MESSAGE, &mut rsa_signature)
        .expect("RSA signing");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &p256.pkcs8)
        .expect("P-256 PKCS#8");
    let p256_signature = pair.sign(&rng, MESSAGE).expect("ECDSA signing");
    let rsa_spki = rsa.public.to_spki_der(Algorithm::Rs256).expect("RSA SPKI");
    // A 2048-bit SPKI: SEQUENCE, AlgorithmIdentifier (15 bytes), then a BIT
    // STRING header (4 bytes) and its unused-bits byte before RSAPublicKey.
    assert_eq!(&rsa_spki[19..24], &[0x03, 0x82, 0x01, 0x0f, 0x00]);
    Material {
        rsa_pkcs1: rsa_spki[24..].to_vec(),
        p256_spki: p256.public.to_spki_der(Algorithm::Es256).expect("P-256 SPKI"),
        rsa_spki,
        rsa: rsa.public,
        p256: p256.public,
        rsa_signature: URL_SAFE_NO_PAD.encode(rsa_signature),
        p256_signature: URL_SAFE_NO_PAD.encode(p256_signature.as_ref()),
    }
});

#[derive(Arbitrary, Debug)]
struct Fuzzed {
    input: Input,
    /// A forged signature, or (`None`) the genuine one.
    forged: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A JWKS of edited genuine entries.
    Jwks(Vec<Entry>),
    /// A PEM block around edited genuine DER.
    Pem(Pem),
    /// The same text into both parsers.
    Text(Vec<u8>),
}

/// One JWKS entry: a genuine key's members, each kept, replaced or dropped.
#[derive(Arbitrary, Debug)]
struct Entry {
    ec: bool,
    kty: Member,
    crv: Member,
    kid: Member,
    use_: Member,
    alg: Member,
    /// `n` or `x`.
    first: Component,
    /// `e` or `y`.
    second: Component,
    extra: Vec<(String, Option<String>)>,
}

/// A string member: the genuine value (or none), or something else.
#[derive(Arbitrary, Debug)]
enum Member {
    Genuine,
    Absent,
    Text(String),
    NotString(i64),
    /// The other key type's value (`EC` for RSA, `ES256` for RS256, …).
    Swapped,
}

/// A key component: genuine, edited, or other bytes.
#[derive(Arbitrary, Debug)]
enum Component {
    Genuine,
    Edited(Vec<ByteEdit>),
    Bytes(Vec<u8>),
    /// Not base64url.
    Text(String),
    Absent,
}

#[derive(Arbitrary, Debug)]
enum ByteEdit {
    Set(u16, u8),
    Truncate(u16),
    Insert(u16, Vec<u8>),
    /// Leading zero bytes (JWK integers have none).
    PadZeros(u8),
}

#[derive(Arbitrary, Debug)]
struct Pem {
    label: Label,
    der: Der,
    edits: Vec<ByteEdit>,
    /// Line length of the base64 body (0: one line).
    wrap: u8,
    before: String,
    after: String,
}

#[derive(Arbitrary, Debug)]
enum Label {
    PublicKey,
    RsaPublicKey,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Der {
    RsaSpki,
    RsaPkcs1,
    P256Spki,
    Bytes(Vec<u8>),
}

fuzz_target!(|fuzzed: Fuzzed| {
    let material = &*MATERIAL;
    let forged = fuzzed
        .forged
        .as_deref()
        .map(|bytes| URL_SAFE_NO_PAD.encode(bytes));
    match fuzzed.input {
        Input::Jwks(entries) => {
            let genuine: Vec<bool> = entries.iter().map(Entry::unedited).collect();
            let entries: Vec<Value> = entries.iter().map(|e| e.to_json(material)).collect();
            let text = json!({ "keys": entries }).to_string();
            if let Ok(set) = JwkSet::parse(&text) {
                check_set(&set, &entries, &genuine, forged.as_deref());
            }
        }
        Input::Pem(pem) => {
            // Text before the block may hold a block of its own.
            let unedited = pem.edits.is_empty()
                && !matches!(pem.der, Der::Bytes(_))
                && !pem.before.contains("-----");
            if let Ok(key) = PublicKey::from_pem(&pem.to_text(material)) {
                check_key(&key, unedited, forged.as_deref());
            }
        }
        Input::Text(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(set) = JwkSet::parse(&text) {
                assert!(set.kids().next().is_some(), "a JWKS without keys loaded");
                for kid in set.kids() {
                    check_key(set.get(kid).expect("listed"), false, forged.as_deref());
                }
            }
            if let Ok(key) = PublicKey::from_pem(&text) {
                check_key(&key, false, forged.as_deref());
            }
        }
    }
});

/// A forged signature never verifies; an unedited key verifies the genuine
/// one.
fn check_key(key: &PublicKey, unedited: bool, forged: Option<&str>) {
    let material = &*MATERIAL;
    match forged {
        Some(signature) => assert!(!key.verifies(MESSAGE, signature), "forgery verified"),
        None => {
            let genuine = match key.alg {
                Algorithm::Rs256 => &material.rsa_signature,
                Algorithm::Es256 => &material.p256_signature,
                // Only RSA and P-256 material is edited; no genuine signature
                // exists for any other kind of key.
                _ => return,
            };
            let verified = key.verifies(MESSAGE, genuine);
            assert!(!unedited || verified, "an unedited {} key failed", key.alg);
        }
    }
}

fn check_set(set: &JwkSet, entries: &[Value], genuine: &[bool], forged: Option<&str>) {
    let kids: Vec<&str> = set.kids().collect();
    assert!(!kids.is_empty(), "a JWKS without keys loaded");
    for kid in kids {
        let key = set.get(kid).expect("listed kids are present");
        assert!(set.contains(kid));
        let fitting: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let entry = &entries[i];
                entry["kid"] == kid
                    && entry.get("use").is_none_or(|u| u == "sig")
                    && entry.get("alg").is_none_or(|a| a == key.alg.as_str())
            })
            .collect();
        assert!(
            !fitting.is_empty(),
            "kid {kid:?} loaded from no fitting entry: {entries:?}"
        );
        // With one candidate entry, we know whether its key is genuine.
        let unedited = matches!(fitting[..], [i] if genuine[i]);
        check_key(key, unedited, forged);
    }
}

impl Entry {
    /// Whether the key material is untouched (so a genuine signature must
    /// verify if the entry loads).
    fn unedited(&self) -> bool {
        let untouched = |(name, _): &(String, Option<String>)| {
            !["kty", "crv", "n", "e", "x", "y"].contains(&name.as_str())
        };
        matches!(
            (&self.kty, &self.crv, &self.first, &self.second),
            (
                Member::Genuine,
                Member::Genuine,
                Component::Genuine,
                Component::Genuine
            )
        ) && self.extra.iter().all(untouched)
    }

    fn to_json(&self, material: &Material) -> Value {
        let (kty, crv, alg, other_kty, other_alg) = if self.ec {
            ("EC", Some("P-256"), "ES256", "RSA", "RS256")
        } else {
            ("RSA", None, "RS256", "EC", "ES256")
        };
        let (first, second) = match (self.ec, &material.p256, &material.rsa) {
            (true, PublicJwk::Ec { x, y, .. }, _) => (x, y),
            (false, _, PublicJwk::Rsa { n, e }) => (n, e),
            _ => unreachable!("generated keys have the requested type"),
        };
        let (first_name, second_name) = if self.ec { ("x", "y") } else { ("n", "e") };
        let mut entry = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                entry.insert(name.to_owned(), value);
            }
        };
        put("kty", self.kty.to_json(Some(kty), other_kty));
        put("crv", self.crv.to_json(crv, "P-384"));
        put("kid", self.kid.to_json(Some(kty), "other"));
        put("use", self.use_.to_json(Some("sig"), "enc"));
        put("alg", self.alg.to_json(Some(alg), other_alg));
        put(first_name, self.first.to_json(first));
        put(second_name, self.second.to_json(second));
        for (name, value) in &self.extra {
            put(name, value.as_ref().map(|v| json!(v)));
        }
        Value::Object(entry)
    }
}

impl Member {
    fn to_json(&self, genuine: Option<&str>, swapped: &str) -> Option<Value> {
        match self {
            Self::Genuine => genuine.map(|g| json!(g)),
            Self::Absent => None,
            Self::Text(text) => Some(json!(text)),
            Self::NotString(n) => Some(json!(n)),
            Self::Swapped => Some(json!(swapped)),
        }
    }
}

impl Component {
    fn to_json(&self, genuine: &str) -> Option<Value> {
        let bytes = |edits: &[ByteEdit]| {
            let mut bytes = URL_SAFE_NO_PAD.decode(genuine).expect("genuine base64url");
            apply(&mut bytes, edits);
            URL_SAFE_NO_PAD.encode(bytes)
        };
        match self {
            Self::Genuine => Some(json!(genuine)),
            Self::Edited(edits) => Some(json!(bytes(edits))),
            Self::Bytes(raw) => Some(json!(URL_SAFE_NO_PAD.encode(raw))),
            Self::Text(text) => Some(json!(text)),
            Self::Absent => None,
        }
    }
}

fn apply(bytes: &mut Vec<u8>, edits: &[ByteEdit]) {
    for edit in edits {
        match edit {
            ByteEdit::Set(at, value) => {
                if let Some(byte) = bytes.get_mut(usize::from(*at)) {
                    *byte = *value;
                }
            }
            ByteEdit::Truncate(at) => bytes.truncate(usize::from(*at)),
            ByteEdit::Insert(at, inserted) => {
                let at = usize::from(*at).min(bytes.len());
                bytes.splice(at..at, inserted.iter().copied());
            }
            ByteEdit::PadZeros(count) => {
                bytes.splice(0..0, std::iter::repeat_n(0, usize::from(*count)));
            }
        }
    }
}

impl Pem {
    fn to_text(&self, material: &Material) -> String {
        let label = match &self.label {
            Label::PublicKey => "PUBLIC KEY",
            Label::RsaPublicKey => "RSA PUBLIC KEY",
            Label::Other(text) => text,
        };
        let mut der = match &self.der {
            Der::RsaSpki => material.rsa_spki.clone(),
            Der::RsaPkcs1 => material.rsa_pkcs1.clone(),
            Der::P256Spki => material.p256_spki.clone(),
            Der::Bytes(bytes) => bytes.clone(),
        };
        apply(&mut der, &self.edits);
        let body = STANDARD.encode(&der);
        let body = match usize::from(self.wrap) {
            0 => body,
            width => body
                .as_bytes()
                .chunks(width)
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect::<Vec<_>>()
                .join("\n"),
        };
        format!(
            "{}\n-----BEGIN {label}-----\n{body}\n-----END {label}-----\n{}",
            self.before, self.after
        )
    }
}
