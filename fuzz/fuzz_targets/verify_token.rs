//! Tokens against a JWKS with one RS256 and one ES256 key: a genuine ES256
//! token put through arbitrary edits (kid, alg, typ and extra header members,
//! claims set, removed or duplicated, raw payload bytes, a forged or mangled
//! signature), and raw bytes.
//!
//! Beyond "never panics": a token is accepted only if it carries a genuine
//! signature by the key its kid names, under that key's algorithm, without a
//! forbidden header or duplicate claim, and with the claims the rules
//! require (`exp` in the future, `iat` and `nbf` not, a string `jti`, no
//! `aud`, the expected type); the claims returned are the payload's.

#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtd::keys::material::generate;
use jwtd::verifier::{Algorithm, ExpectedType, JwkSet, Rules, verify_token};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

struct Keys {
    set: JwkSet,
    rs_kid: String,
    es_kid: String,
    es_pair: EcdsaKeyPair,
}

/// Generated once per process; inputs name keys by role, never by value, so
/// a crash reproduces with other keys.
static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let rs = generate(Algorithm::Rs256, 2048).expect("RSA key");
    let es = generate(Algorithm::Es256, 0).expect("P-256 key");
    let jwks = json!({"keys": [
        rs.public.published(&rs.kid, rs.alg),
        es.public.published(&es.kid, es.alg),
    ]});
    Keys {
        set: JwkSet::parse(&jwks.to_string()).expect("jwtd reads its own JWKS"),
        es_pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &es.pkcs8)
            .expect("P-256 PKCS#8"),
        rs_kid: rs.kid,
        es_kid: es.kid,
    }
});

#[derive(Arbitrary, Debug)]
enum Input {
    /// A token assembled from parts (first: the default for empty input).
    Built(Built),
    /// Any bytes, as text.
    Raw(Vec<u8>),
}

/// A genuine token (ES256 key, its kid, fresh access claims, a real
/// signature) with edits applied in order: with no edits it is accepted,
/// so the fuzzer starts on the accepting path and works outwards.
#[derive(Arbitrary, Debug)]
struct Built {
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
    /// The RS256 key's kid (an ES256 signature under it must fail).
    Rs,
    Es,
    Absent,
    Other(String),
    NotString(Leaf),
}

#[derive(Arbitrary, Debug)]
enum Alg {
    Rs256,
    Es256,
    None,
    Hs256,
    Other(String),
    NotString(Leaf),
    Absent,
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
    /// A genuine ES256 signature of `header.payload` (the default).
    GenuineEs256,
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
            let verdict = verify_token(&keys.set, &rules, &token, ExpectedType::Any, 1_700_000_000);
            assert!(verdict.is_err(), "random bytes verified: {token:?}");
        }
        Input::Built(built) => check_built(keys, built),
    }
});

/// The genuine token's `iat`.
const ISSUED: i64 = 1_700_000_000;

fn check_built(keys: &Keys, built: Built) {
    let parts = Parts::edited(keys, &built.edits);
    let token = parts.assemble(keys, &built.signature);
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
    if let Ok(accepted) = verify_token(&keys.set, &rules, &token.text, expected, now) {
        let genuine = matches!(built.signature, Signature::GenuineEs256);
        // (A truncation past the end leaves the token whole.)
        assert!(
            genuine && token.whole,
            "forged token accepted: {}",
            token.text
        );
        parts.check_accepted(keys, &token, &accepted);
        check_claims(&accepted, &rules, built.expected, now, &token.text);
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
    /// Not mangled after signing.
    whole: bool,
    payload: Vec<u8>,
}

impl<'a> Parts<'a> {
    /// The genuine token's parts, then the edits in order.
    fn edited(keys: &Keys, edits: &'a [Edit]) -> Self {
        let mut parts = Parts {
            header: Map::from_iter([
                ("alg".into(), json!("ES256")),
                ("typ".into(), json!("JWT")),
                ("kid".into(), json!(keys.es_kid)),
            ]),
            claims: vec![
                ("token_type".into(), json!("access")),
                ("exp".into(), json!(ISSUED + 300)),
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

    fn assemble(&self, keys: &Keys, signature: &Signature) -> Token {
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
        let signature = match signature {
            Signature::GenuineEs256 => {
                let signature = (keys.es_pair)
                    .sign(&SystemRandom::new(), signing_input.as_bytes())
                    .expect("ECDSA signing");
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            }
            Signature::Bytes(bytes) => URL_SAFE_NO_PAD.encode(bytes),
            Signature::Text(text) => text.clone(),
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
            whole: text == whole,
            text,
            payload,
        }
    }

    /// An accepted token's header names the ES256 key and nothing
    /// forbidden, and its claims are its payload, without duplicates.
    fn check_accepted(&self, keys: &Keys, token: &Token, accepted: &Map<String, Value>) {
        let text = &token.text;
        assert_eq!(self.header.get("alg"), Some(&json!("ES256")), "{text}");
        assert_eq!(self.header.get("kid"), Some(&json!(keys.es_kid)), "{text}");
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
            Self::Rs => Some(json!(keys.rs_kid)),
            Self::Es => Some(json!(keys.es_kid)),
            Self::Absent => None,
            Self::Other(kid) => Some(json!(kid)),
            Self::NotString(leaf) => Some(leaf.to_json()),
        }
    }
}

impl Alg {
    fn to_json(&self) -> Option<Value> {
        match self {
            Self::Rs256 => Some(json!("RS256")),
            Self::Es256 => Some(json!("ES256")),
            Self::None => Some(json!("none")),
            Self::Hs256 => Some(json!("HS256")),
            Self::Other(alg) => Some(json!(alg)),
            Self::NotString(leaf) => Some(leaf.to_json()),
            Self::Absent => None,
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
