//! Key documents: arbitrary text into `JwkSet::parse` and
//! `PublicKey::from_pem`, plus JWKS entries and PEM blocks built from genuine
//! key material (one RSA key, read for RS256 or PS256, a P-256, a P-384 and
//! an Ed25519 key) put through arbitrary edits, so the parsers get past
//! JSON, PEM and base64 to the keys themselves. Every key that loads then
//! verifies signatures: the genuine one of each algorithm, or any bytes.
//!
//! Beyond "never panics": a loaded JWKS has a key; every loaded key comes
//! from an entry with `use` absent or `sig` and an `alg` that fits; a forged
//! signature never verifies, nor does a genuine one under another
//! algorithm than the key's (the RSA key read for RS256 refuses its own
//! PS256 signature, and the other way round); an unedited key verifies its
//! algorithm's genuine signature; an unedited PEM is read for the
//! algorithm its DER is made for.

#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jwtd::testing::{GeneratedKey, generate_key};
use jwtd::verifier::{Algorithm, JwkSet, PublicJwk, PublicKey};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// The message every key signed.
const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9";

/// Genuine material, generated once per process; inputs refer to it by
/// kind.
struct Material {
    /// One RSA key for RS256 and PS256: which of the two a JWK or PEM is
    /// read for decides which of its signatures must verify.
    rsa: PublicJwk,
    p256: PublicJwk,
    p384: PublicJwk,
    ed25519: PublicJwk,
    rsa_spki: Vec<u8>,
    /// The RSA key's SubjectPublicKeyInfo for PS256 (the RSASSA-PSS
    /// algorithm identifier with PS256's parameters).
    rsa_pss_spki: Vec<u8>,
    /// The RSAPublicKey inside the RSA SubjectPublicKeyInfo (PKCS#1).
    rsa_pkcs1: Vec<u8>,
    p256_spki: Vec<u8>,
    p384_spki: Vec<u8>,
    ed25519_spki: Vec<u8>,
    /// [`MESSAGE`] signed under each algorithm, base64url.
    signatures: Vec<(Algorithm, String)>,
}

static MATERIAL: LazyLock<Material> = LazyLock::new(|| {
    let generate = |alg| generate_key(alg, 2048).expect("key generation");
    let (rsa, p256, p384, ed25519) = (
        generate(Algorithm::Rs256),
        generate(Algorithm::Es256),
        generate(Algorithm::Es384),
        generate(Algorithm::EdDsa),
    );
    let signatures = vec![
        (Algorithm::Rs256, rsa_signature(&rsa, &RSA_PKCS1_SHA256)),
        (Algorithm::Ps256, rsa_signature(&rsa, &RSA_PSS_SHA256)),
        (
            Algorithm::Es256,
            ec_signature(&p256, &ECDSA_P256_SHA256_FIXED_SIGNING),
        ),
        (
            Algorithm::Es384,
            ec_signature(&p384, &ECDSA_P384_SHA384_FIXED_SIGNING),
        ),
        (Algorithm::EdDsa, ed25519_signature(&ed25519)),
    ];
    let spki = |key: &GeneratedKey, alg| key.public.to_spki_der(alg).expect("SPKI");
    let rsa_spki = spki(&rsa, Algorithm::Rs256);
    // A 2048-bit SPKI: SEQUENCE, AlgorithmIdentifier (15 bytes), then a BIT
    // STRING header (4 bytes) and its unused-bits byte before RSAPublicKey.
    assert_eq!(&rsa_spki[19..24], &[0x03, 0x82, 0x01, 0x0f, 0x00]);
    Material {
        rsa_pkcs1: rsa_spki[24..].to_vec(),
        rsa_pss_spki: spki(&rsa, Algorithm::Ps256),
        p256_spki: spki(&p256, Algorithm::Es256),
        p384_spki: spki(&p384, Algorithm::Es384),
        ed25519_spki: spki(&ed25519, Algorithm::EdDsa),
        rsa_spki,
        rsa: rsa.public,
        p256: p256.public,
        p384: p384.public,
        ed25519: ed25519.public,
        signatures,
    }
});

fn rsa_signature(key: &GeneratedKey, encoding: &'static dyn RsaEncoding) -> String {
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key.pkcs8).expect("RSA PKCS#8");
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(encoding, &SystemRandom::new(), MESSAGE, &mut signature)
        .expect("RSA signing");
    URL_SAFE_NO_PAD.encode(signature)
}

fn ec_signature(key: &GeneratedKey, alg: &'static EcdsaSigningAlgorithm) -> String {
    let pair = EcdsaKeyPair::from_pkcs8(alg, &key.pkcs8).expect("EC PKCS#8");
    let signature = pair
        .sign(&SystemRandom::new(), MESSAGE)
        .expect("ECDSA signing");
    URL_SAFE_NO_PAD.encode(signature.as_ref())
}

fn ed25519_signature(key: &GeneratedKey) -> String {
    let pair = Ed25519KeyPair::from_pkcs8(&key.pkcs8).expect("Ed25519 PKCS#8");
    URL_SAFE_NO_PAD.encode(pair.sign(MESSAGE).as_ref())
}

#[derive(Arbitrary, Debug)]
struct Fuzzed {
    input: Input,
    /// A forged signature, or (`None`) the genuine ones.
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

/// What a genuine JWKS entry is: a key and the algorithm it is for.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    /// The RSA key, `alg` RS256.
    Rs256,
    /// The same RSA key, `alg` PS256.
    Ps256,
    /// The P-256 key.
    Es256,
    /// The P-384 key.
    Es384,
    /// The Ed25519 key (`kty` OKP, RFC 8037).
    EdDsa,
}

/// One JWKS entry: a genuine key's members, each kept, replaced or dropped.
#[derive(Arbitrary, Debug)]
struct Entry {
    kind: Kind,
    kty: Member,
    crv: Member,
    kid: Member,
    use_: Member,
    alg: Member,
    /// `n` or `x`.
    first: Component,
    /// `e` or `y` (which an Ed25519 key does not have).
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
    /// Another kind's value (`EC` on an RSA key, `P-384` on a P-256 one,
    /// `PS256` on an RS256 one, …).
    Of(Kind),
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
    /// The RSA key as a PS256 key's PEM has it.
    RsaPssSpki,
    P256Spki,
    P384Spki,
    Ed25519Spki,
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
                if unedited {
                    assert_eq!(Some(key.alg), pem.der.alg(), "{:?}", pem.der);
                }
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

/// A forged signature never verifies, nor does a genuine one under another
/// algorithm than the key's; an unedited key verifies its algorithm's
/// genuine signature.
fn check_key(key: &PublicKey, unedited: bool, forged: Option<&str>) {
    if let Some(signature) = forged {
        assert!(!key.verifies(MESSAGE, signature), "forgery verified");
        return;
    }
    for (alg, signature) in &MATERIAL.signatures {
        let verified = key.verifies(MESSAGE, signature);
        if *alg == key.alg {
            assert!(!unedited || verified, "an unedited {alg} key failed");
        } else {
            assert!(!verified, "a {} key verified a {alg} signature", key.alg);
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

impl Kind {
    /// The value of the string member `name` in this kind's genuine entry
    /// (the kid is the algorithm's name, so that entries of different
    /// kinds have different kids unless edited).
    fn member(self, name: &str) -> Option<&'static str> {
        let (kty, crv) = match self {
            Self::Rs256 | Self::Ps256 => ("RSA", None),
            Self::Es256 => ("EC", Some("P-256")),
            Self::Es384 => ("EC", Some("P-384")),
            Self::EdDsa => ("OKP", Some("Ed25519")),
        };
        match name {
            "kty" => Some(kty),
            "crv" => crv,
            "kid" | "alg" => Some(self.alg().as_str()),
            "use" => Some("sig"),
            _ => None,
        }
    }

    fn alg(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::Rs256,
            Self::Ps256 => Algorithm::Ps256,
            Self::Es256 => Algorithm::Es256,
            Self::Es384 => Algorithm::Es384,
            Self::EdDsa => Algorithm::EdDsa,
        }
    }

    /// The key's components: (`n`, `e`) or (`x`, `y`), or (`x`, none).
    fn components(self, material: &Material) -> [(&'static str, Option<&str>); 2] {
        let jwk = match self {
            Self::Rs256 | Self::Ps256 => &material.rsa,
            Self::Es256 => &material.p256,
            Self::Es384 => &material.p384,
            Self::EdDsa => &material.ed25519,
        };
        match jwk {
            PublicJwk::Rsa { n, e } => [("n", Some(n)), ("e", Some(e))],
            PublicJwk::Ec { x, y, .. } => [("x", Some(x)), ("y", Some(y))],
            PublicJwk::Okp { x, .. } => [("x", Some(x)), ("y", None)],
            other => panic!("no components for {other:?}"),
        }
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
        let [(first_name, first), (second_name, second)] = self.kind.components(material);
        let mut entry = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                entry.insert(name.to_owned(), value);
            }
        };
        put("kty", self.kty.to_json("kty", self.kind));
        put("crv", self.crv.to_json("crv", self.kind));
        put("kid", self.kid.to_json("kid", self.kind));
        put("use", self.use_.to_json("use", self.kind));
        put("alg", self.alg.to_json("alg", self.kind));
        put(first_name, self.first.to_json(first));
        put(second_name, self.second.to_json(second));
        for (name, value) in &self.extra {
            put(name, value.as_ref().map(|v| json!(v)));
        }
        Value::Object(entry)
    }
}

impl Member {
    fn to_json(&self, name: &str, kind: Kind) -> Option<Value> {
        match self {
            Self::Genuine => kind.member(name).map(|g| json!(g)),
            Self::Absent => None,
            Self::Text(text) => Some(json!(text)),
            Self::NotString(n) => Some(json!(n)),
            Self::Of(other) => other.member(name).map(|v| json!(v)),
        }
    }
}

impl Component {
    /// The member as edited; a member the key does not have is edited from
    /// no bytes.
    fn to_json(&self, genuine: Option<&str>) -> Option<Value> {
        let bytes = |edits: &[ByteEdit]| {
            let genuine = genuine.unwrap_or_default();
            let mut bytes = URL_SAFE_NO_PAD.decode(genuine).expect("genuine base64url");
            apply(&mut bytes, edits);
            URL_SAFE_NO_PAD.encode(bytes)
        };
        match self {
            Self::Genuine => genuine.map(|g| json!(g)),
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
            Der::RsaPssSpki => material.rsa_pss_spki.clone(),
            Der::P256Spki => material.p256_spki.clone(),
            Der::P384Spki => material.p384_spki.clone(),
            Der::Ed25519Spki => material.ed25519_spki.clone(),
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

impl Der {
    /// The algorithm the genuine DER is made for.
    fn alg(&self) -> Option<Algorithm> {
        match self {
            Self::RsaSpki | Self::RsaPkcs1 => Some(Algorithm::Rs256),
            Self::RsaPssSpki => Some(Algorithm::Ps256),
            Self::P256Spki => Some(Algorithm::Es256),
            Self::P384Spki => Some(Algorithm::Es384),
            Self::Ed25519Spki => Some(Algorithm::EdDsa),
            Self::Bytes(_) => None,
        }
    }
}
