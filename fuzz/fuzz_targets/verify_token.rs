//! Tokens against a JWKS with one key of each algorithm jwtd signs with
//! (RS256, ES256, ES384, PS256, EdDSA): a genuine token, signed by any of
//! them, put through arbitrary edits (kid and alg naming any of the keys
//! or algorithms, typ and extra header members, claims set, removed or
//! duplicated, raw payload bytes, a signature by the right key under
//! another scheme, a forged or mangled signature), and raw bytes.
//!
//! Beyond "never panics": a token is accepted only if it carries a genuine
//! signature by the key its kid names, under that key's algorithm, which
//! its header names, without a forbidden header or duplicate claim, and
//! with the claims the rules require (`exp` in the future, `iat` and `nbf`
//! not, a string `jti`, no `aud`, the expected type); the claims returned
//! are the payload's. And the genuine token, unedited and within its
//! lifetime, is accepted, whichever key signed it.

#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::testing::{GeneratedKey, generate_key};
use jwtd::verifier::{Algorithm, ExpectedType, JwkSet, Rules, verify_token};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// The published keys and what signs for each.
struct Keys {
    set: JwkSet,
    /// In the order of [`Key::ALL`].
    signers: Vec<Signer>,
}

/// Generated once per process; inputs name keys by algorithm, never by
/// value, so a crash reproduces with other keys.
static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let generated: Vec<GeneratedKey> = (Key::ALL.iter())
        .map(|key| generate_key(key.alg(), 2048).expect("key generation"))
        .collect();
    let published: Vec<Value> = (generated.iter())
        .map(|key| key.public.published(&key.kid, key.alg))
        .collect();
    let jwks = json!({ "keys": published });
    Keys {
        set: JwkSet::parse(&jwks.to_string()).expect("jwtd reads its own JWKS"),
        signers: generated.iter().map(Signer::new).collect(),
    }
});

impl Keys {
    fn signer(&self, key: Key) -> &Signer {
        &self.signers[key as usize]
    }
}

/// One of the keys in the JWKS, named by the algorithm it is for.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Key {
    Rs256,
    Es256,
    Es384,
    Ps256,
    EdDsa,
}

impl Key {
    /// Every key, in declaration order (which indexes [`Keys::signers`]).
    const ALL: [Key; 5] = [Key::Rs256, Key::Es256, Key::Es384, Key::Ps256, Key::EdDsa];

    fn alg(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::Rs256,
            Self::Es256 => Algorithm::Es256,
            Self::Es384 => Algorithm::Es384,
            Self::Ps256 => Algorithm::Ps256,
            Self::EdDsa => Algorithm::EdDsa,
        }
    }
}

/// A key's kid and private half, signing independently of jwtd's own
/// signing code, so that the two cannot share a mistake.
struct Signer {
    kid: String,
    alg: Algorithm,
    pair: Pair,
}

enum Pair {
    Rsa(aws_lc_rs::rsa::KeyPair),
    /// The same key for JOSE's fixed-width signatures and for DER ones.
    Ec {
        fixed: EcdsaKeyPair,
        der: EcdsaKeyPair,
    },
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    fn new(key: &GeneratedKey) -> Self {
        let ec = |fixed: &'static EcdsaSigningAlgorithm, der: &'static EcdsaSigningAlgorithm| {
            let parse = |alg| EcdsaKeyPair::from_pkcs8(alg, &key.pkcs8).expect("EC PKCS#8");
            Pair::Ec {
                fixed: parse(fixed),
                der: parse(der),
            }
        };
        let pair = match key.alg {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                Pair::Rsa(aws_lc_rs::rsa::KeyPair::from_pkcs8(&key.pkcs8).expect("RSA PKCS#8"))
            }
            Algorithm::Es256 => ec(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &ECDSA_P256_SHA256_ASN1_SIGNING,
            ),
            Algorithm::Es384 => ec(
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                &ECDSA_P384_SHA384_ASN1_SIGNING,
            ),
            Algorithm::EdDsa => {
                Pair::Ed25519(Ed25519KeyPair::from_pkcs8(&key.pkcs8).expect("Ed25519 PKCS#8"))
            }
            other => panic!("no signer for {other}"),
        };
        Signer {
            kid: key.kid.clone(),
            alg: key.alg,
            pair,
        }
    }

    /// The signature of `message` under the key's own algorithm.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let encoding: &'static dyn RsaEncoding = match self.alg {
                    Algorithm::Ps256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                rsa_sign(pair, encoding, message)
            }
            Pair::Ec { fixed, .. } => fixed
                .sign(&rng, message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// The signature of `message` by the same key under a scheme that is
    /// not its algorithm: an RSA key with the other padding (PSS for an
    /// RS256 key, PKCS#1 v1.5 for a PS256 one), an EC key DER-encoded.
    /// Ed25519 has no other scheme.
    fn sign_otherwise(&self, message: &[u8]) -> Option<Vec<u8>> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let encoding: &'static dyn RsaEncoding = match self.alg {
                    Algorithm::Ps256 => &RSA_PKCS1_SHA256,
                    _ => &RSA_PSS_SHA256,
                };
                Some(rsa_sign(pair, encoding, message))
            }
            Pair::Ec { der, .. } => {
                let signature = der
                    .sign(&SystemRandom::new(), message)
                    .expect("ECDSA signing");
                Some(signature.as_ref().to_vec())
            }
            Pair::Ed25519(_) => None,
        }
    }
}

fn rsa_sign(
    pair: &aws_lc_rs::rsa::KeyPair,
    encoding: &'static dyn RsaEncoding,
    message: &[u8],
) -> Vec<u8> {
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(encoding, &SystemRandom::new(), message, &mut signature)
        .expect("RSA signing");
    signature
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A token assembled from parts (first: the default for empty input).
    Built(Built),
    /// Any bytes, as text.
    Raw(Vec<u8>),
}

/// A genuine token (the signer's kid and algorithm, fresh access claims, a
/// real signature) with edits applied in order: with no edits it is
/// accepted, so the fuzzer starts on the accepting path and works outwards.
#[derive(Arbitrary, Debug)]
struct Built {
    signer: Key,
    edits: Vec<Edit>,
    signature: Signature,
    expected: Expected,
    /// Seconds from the genuine token's `iat` at which to verify.
    now: i16,
    leeway: u8,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Kid(Kid),
    Alg(Alg),
    Typ(Option<Leaf>),
    /// Adds a header member, the dangerous ones included.
    Header(Member, Leaf),
    /// Sets or removes a claim.
    Claim(Claim, Option<Leaf>),
    /// Adds any claim.
    OtherClaim(String, Leaf),
    /// Repeats the first claim (duplicate keys must be refused).
    DuplicateFirstClaim,
    /// Replaces the payload with these bytes.
    PayloadBytes(Vec<u8>),
    /// Breaks the three-segment shape after signing.
    Mangle(Mangle),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Claim {
    Exp,
    Iat,
    Nbf,
    Jti,
    TokenType,
    Iss,
    Aud,
    UserId,
}

#[derive(Arbitrary, Debug)]
enum Kid {
    /// The kid of one of the keys (another one than the signer's must fail).
    Of(Key),
    Absent,
    Other(String),
    NotString(Leaf),
}

#[derive(Arbitrary, Debug)]
enum Alg {
    /// The algorithm of one of the keys (any but that of the key the kid
    /// names must fail).
    Of(Key),
    /// A name close to one of them, which must not pass for it.
    Near(Key, Near),
    None,
    Hs256,
    Other(String),
    NotString(Leaf),
    Absent,
}

/// How a name differs from an algorithm's.
#[derive(Arbitrary, Debug)]
enum Near {
    Lowercase,
    /// Surrounded by spaces (which parsing a configured name would trim).
    Padded,
    /// The same family with another hash or curve (`RS384`, `ES512`, the
    /// fully specified `Ed25519`).
    Sibling,
}

/// Header members, the dangerous ones included.
#[derive(Arbitrary, Debug)]
enum Member {
    Jwk,
    Jku,
    X5u,
    X5c,
    Crit,
    Cty,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Array(Vec<i8>),
    Object(Vec<(String, i8)>),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    /// The signer's signature of `header.payload` under its own algorithm
    /// (the default).
    Genuine,
    /// The signer's key under another scheme ([`Signer::sign_otherwise`]);
    /// an Ed25519 signer, which has none, signs genuinely.
    OtherScheme,
    /// Bytes, base64url-encoded.
    Bytes(Vec<u8>),
    /// Any text in the signature segment.
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Mangle {
    DropSignature,
    ExtraSegment(String),
    Truncate(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Expected {
    Any,
    Access,
    RefreshOrSliding,
}

fuzz_target!(|input: Input| {
    let keys = &*KEYS;
    let rules = Rules::default();
    match input {
        Input::Raw(bytes) => {
            let token = String::from_utf8_lossy(&bytes);
            let verdict = verify_token(&keys.set, &rules, &token, ExpectedType::Any, ISSUED);
            assert!(verdict.is_err(), "random bytes verified: {token:?}");
        }
        Input::Built(built) => check_built(keys, built),
    }
});

/// The genuine token's `iat`.
const ISSUED: i64 = 1_700_000_000;

/// Seconds from the genuine token's `iat` to its `exp`.
const LIFETIME: i64 = 300;

fn check_built(keys: &Keys, built: Built) {
    let signer = keys.signer(built.signer);
    let parts = Parts::edited(keys, signer, &built.edits);
    let token = parts.assemble(signer, &built.signature);
    let rules = Rules {
        leeway: i64::from(built.leeway),
        ..Rules::default()
    };
    let expected = match built.expected {
        Expected::Any => ExpectedType::Any,
        Expected::Access => ExpectedType::Exactly("access"),
        Expected::RefreshOrSliding => ExpectedType::OneOf(&["refresh", "sliding"]),
    };
    let now = ISSUED + i64::from(built.now);
    match verify_token(&keys.set, &rules, &token.text, expected, now) {
        Ok(accepted) => {
            // (A truncation past the end leaves the token whole.)
            assert!(
                token.genuine && token.whole,
                "forged token accepted: {}",
                token.text
            );
            parts.check_accepted(signer, &token, &accepted);
            check_claims(&accepted, &rules, built.expected, now, &token.text);
        }
        Err(error) => {
            // Inside its lifetime the genuine access token passes whatever
            // the leeway, so a refusal here is jwtd's.
            let as_issued = built.edits.is_empty() && token.genuine;
            let in_lifetime = (0..LIFETIME).contains(&i64::from(built.now));
            let access = !matches!(built.expected, Expected::RefreshOrSliding);
            assert!(
                !(as_issued && in_lifetime && access),
                "a genuine {} token refused ({error:?}): {}",
                signer.alg,
                token.text
            );
        }
    }
}

/// The token's parts after the edits.
struct Parts<'a> {
    header: Map<String, Value>,
    /// In order, duplicates kept.
    claims: Vec<(String, Value)>,
    payload_bytes: Option<&'a [u8]>,
    mangle: Option<&'a Mangle>,
}

/// An assembled token.
struct Token {
    text: String,
    /// Signed by the signer under its own algorithm, over the header and
    /// payload as they are.
    genuine: bool,
    /// Not mangled after signing.
    whole: bool,
    payload: Vec<u8>,
}

impl<'a> Parts<'a> {
    /// The genuine token's parts, then the edits in order.
    fn edited(keys: &Keys, signer: &Signer, edits: &'a [Edit]) -> Self {
        let mut parts = Parts {
            header: Map::from_iter([
                ("alg".into(), json!(signer.alg.as_str())),
                ("typ".into(), json!("JWT")),
                ("kid".into(), json!(signer.kid)),
            ]),
            claims: vec![
                ("token_type".into(), json!("access")),
                ("exp".into(), json!(ISSUED + LIFETIME)),
                ("iat".into(), json!(ISSUED)),
                ("jti".into(), json!("0123456789abcdef0123456789abcdef")),
                ("user_id".into(), json!("1")),
            ],
            payload_bytes: None,
            mangle: None,
        };
        for edit in edits {
            parts.apply(keys, edit);
        }
        parts
    }

    fn apply(&mut self, keys: &Keys, edit: &'a Edit) {
        let header = &mut self.header;
        match edit {
            Edit::Kid(kid) => set(header, "kid", kid.to_json(keys)),
            Edit::Alg(alg) => set(header, "alg", alg.to_json()),
            Edit::Typ(typ) => set(header, "typ", typ.as_ref().map(Leaf::to_json)),
            Edit::Header(member, value) => set(header, member.name(), Some(value.to_json())),
            Edit::Claim(claim, value) => {
                let name = claim.name();
                self.claims.retain(|(n, _)| n != name);
                if let Some(value) = value {
                    self.claims.push((name.into(), value.to_json()));
                }
            }
            Edit::OtherClaim(name, value) => self.claims.push((name.clone(), value.to_json())),
            Edit::DuplicateFirstClaim => {
                if let Some(first) = self.claims.first().cloned() {
                    self.claims.push(first);
                }
            }
            Edit::PayloadBytes(bytes) => self.payload_bytes = Some(bytes),
            Edit::Mangle(how) => self.mangle = Some(how),
        }
    }

    fn assemble(&self, signer: &Signer, signature: &Signature) -> Token {
        // Written by hand: a JSON map would merge duplicate claims.
        let payload = self.payload_bytes.map_or_else(
            || {
                let members: Vec<String> = (self.claims.iter())
                    .map(|(name, value)| format!("{}:{value}", Value::String(name.clone())))
                    .collect();
                format!("{{{}}}", members.join(",")).into_bytes()
            },
            <[u8]>::to_vec,
        );
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(self.header.clone()).to_string()),
            URL_SAFE_NO_PAD.encode(&payload)
        );
        let message = signing_input.as_bytes();
        let (signature, genuine) = match signature {
            Signature::Genuine => (URL_SAFE_NO_PAD.encode(signer.sign(message)), true),
            Signature::OtherScheme => match signer.sign_otherwise(message) {
                Some(other) => (URL_SAFE_NO_PAD.encode(other), false),
                None => (URL_SAFE_NO_PAD.encode(signer.sign(message)), true),
            },
            Signature::Bytes(bytes) => (URL_SAFE_NO_PAD.encode(bytes), false),
            Signature::Text(text) => (text.clone(), false),
        };
        let whole = format!("{signing_input}.{signature}");
        let mut text = whole.clone();
        match self.mangle {
            None => {}
            Some(Mangle::DropSignature) => text.truncate(signing_input.len()),
            Some(Mangle::ExtraSegment(extra)) => {
                text.push('.');
                text.push_str(extra);
            }
            Some(Mangle::Truncate(at)) => {
                let mut at = usize::from(*at).min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.truncate(at);
            }
        }
        Token {
            genuine,
            whole: text == whole,
            text,
            payload,
        }
    }

    /// An accepted token's header names the signer's key and algorithm
    /// and nothing forbidden, and its claims are its payload, without
    /// duplicates.
    fn check_accepted(&self, signer: &Signer, token: &Token, accepted: &Map<String, Value>) {
        let text = &token.text;
        let alg = signer.alg;
        assert_eq!(self.header.get("alg"), Some(&json!(alg.as_str())), "{text}");
        assert_eq!(
            self.header.get("kid"),
            Some(&json!(signer.kid)),
            "{alg}: {text}"
        );
        for forbidden in ["jwk", "jku", "x5u", "x5c", "crit"] {
            assert!(
                !self.header.contains_key(forbidden),
                "{forbidden} accepted: {text}"
            );
        }
        let parsed: Map<String, Value> =
            serde_json::from_slice(&token.payload).expect("an accepted payload is an object");
        assert_eq!(&parsed, accepted, "{text}");
        let names: HashSet<&str> = self.claims.iter().map(|(n, _)| n.as_str()).collect();
        let distinct = names.len() == self.claims.len();
        assert!(
            self.payload_bytes.is_some() || distinct,
            "duplicate claim accepted: {text}"
        );
    }
}

/// The claims an accepted token must have under `rules` at `now`.
fn check_claims(
    accepted: &Map<String, Value>,
    rules: &Rules,
    expected: Expected,
    now: i64,
    token: &str,
) {
    let date = |name: &str| accepted.get(name).and_then(Value::as_f64);
    // NumericDates are truncated to whole seconds; these are well inside
    // f64's exact range.
    let (floor, ceiling) = ((now - rules.leeway) as f64, (now + rules.leeway) as f64);
    assert!(
        date("exp").is_some_and(|exp| exp.trunc() > floor),
        "{token}"
    );
    assert!(
        date("iat").is_none_or(|iat| iat.trunc() <= ceiling),
        "{token}"
    );
    assert!(
        date("nbf").is_none_or(|nbf| nbf.trunc() <= ceiling),
        "{token}"
    );
    assert!(accepted.get("jti").is_some_and(Value::is_string), "{token}");
    assert!(
        !accepted.contains_key("aud"),
        "aud accepted without one configured: {token}"
    );
    if let Expected::Access = expected {
        assert_eq!(
            accepted.get("token_type"),
            Some(&json!("access")),
            "{token}"
        );
    }
}

fn set(header: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value {
        Some(value) => _ = header.insert(name.into(), value),
        None => _ = header.remove(name),
    }
}

impl Kid {
    fn to_json(&self, keys: &Keys) -> Option<Value> {
        match self {
            Self::Of(key) => Some(json!(keys.signer(*key).kid)),
            Self::Absent => None,
            Self::Other(kid) => Some(json!(kid)),
            Self::NotString(leaf) => Some(leaf.to_json()),
        }
    }
}

impl Alg {
    fn to_json(&self) -> Option<Value> {
        match self {
            Self::Of(key) => Some(json!(key.alg().as_str())),
            Self::Near(key, near) => Some(json!(near.name(key.alg()))),
            Self::None => Some(json!("none")),
            Self::Hs256 => Some(json!("HS256")),
            Self::Other(alg) => Some(json!(alg)),
            Self::NotString(leaf) => Some(leaf.to_json()),
            Self::Absent => None,
        }
    }
}

impl Near {
    fn name(&self, alg: Algorithm) -> String {
        let name = alg.as_str();
        match self {
            Self::Lowercase => name.to_lowercase(),
            Self::Padded => format!(" {name} "),
            Self::Sibling => match alg {
                Algorithm::Rs256 => "RS384",
                Algorithm::Es256 => "ES256K",
                Algorithm::Es384 => "ES512",
                Algorithm::Ps256 => "PS384",
                Algorithm::EdDsa => "Ed25519",
                _ => "RS512",
            }
            .to_owned(),
        }
    }
}

impl Member {
    fn name(&self) -> &str {
        match self {
            Self::Jwk => "jwk",
            Self::Jku => "jku",
            Self::X5u => "x5u",
            Self::X5c => "x5c",
            Self::Crit => "crit",
            Self::Cty => "cty",
            Self::Other(name) => name,
        }
    }
}

impl Claim {
    fn name(self) -> &'static str {
        match self {
            Self::Exp => "exp",
            Self::Iat => "iat",
            Self::Nbf => "nbf",
            Self::Jti => "jti",
            Self::TokenType => "token_type",
            Self::Iss => "iss",
            Self::Aud => "aud",
            Self::UserId => "user_id",
        }
    }
}

impl Leaf {
    fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => json!(b),
            Self::Int(i) => json!(i),
            // Non-finite floats become null.
            Self::Float(f) => json!(f),
            Self::Text(t) => json!(t),
            Self::Array(items) => json!(items),
            Self::Object(members) => {
                Value::Object(members.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }
        }
    }
}
