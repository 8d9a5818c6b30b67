//! Key rotation (SPEC §5) carried out against a real SQLite store by hand,
//! as each tick of `serve`'s background task does, with tokens issued and
//! verified at every step: 400 days of the schedule, revocations,
//! rotations an operator asks for, and algorithm changes.
//!
//! These drive `keys::lifecycle` and `TokenService` together, so they live
//! here: tokens may depend on keys, not the reverse. The pure schedule is
//! tested in `keys::tests`.

mod algorithm;
mod deployment;
mod lived;
mod operator;
mod witness;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::clock::UnixTime;
use crate::config::Config;
use crate::keys::KeySet;
use crate::tokens::{Claims, Expect, TokenError, TokenService};
use crate::verifier::JwkSet;

/// The kids, as a set.
fn set_of<'a>(kids: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    kids.into_iter().cloned().collect()
}

/// The JWKS as the server serves it.
fn jwks_document(set: &KeySet) -> Value {
    serde_json::from_slice(&set.jwks.body).expect("the JWKS is JSON")
}

/// The kids the JWKS lists.
fn jwks_kids(set: &KeySet) -> BTreeSet<String> {
    published_algorithms(set).into_keys().collect()
}

/// kid → alg of every key in the JWKS.
fn published_algorithms(set: &KeySet) -> BTreeMap<String, String> {
    jwks_document(set)["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "no private member is published: {k}");
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["alg"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Verifies `token` as a partner would: with the keys of the JWKS alone.
fn through_jwks(set: &KeySet, token: &str, now: UnixTime) -> Result<Claims, TokenError> {
    TokenService::new(&Config::default()).verify(&partner_view(set), token, Expect::AnyType, now)
}

/// The keys a partner gets from the JWKS.
fn partner_view(set: &KeySet) -> JwkSet {
    let body = std::str::from_utf8(&set.jwks.body).unwrap();
    JwkSet::parse(body).expect("the JWKS parses")
}

/// The `kid` of a token's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("three parts");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url"))
        .expect("a JSON header");
    header["kid"]
        .as_str()
        .expect("a kid in the header")
        .to_owned()
}
