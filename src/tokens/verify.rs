//! Verifying a presented token. The order of checks follows simplejwt
//! (signature, dates, issuer and audience, id, type) so each failure gets
//! the message simplejwt gives it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::strict_json::parse_object;
use super::{Claims, Expect, Invalid, MAX_TOKEN_BYTES, TokenError, TokenRules, TokenType};
use crate::clock::UnixTime;
use crate::keys::ring::VerifyingKey;
use crate::keys::{KeySet, PublicKeySet};

/// Where verification finds the key a token's `kid` names.
pub trait KeyLookup {
    /// The key for `kid` (the header's, if any), with its one algorithm.
    fn key_for(&self, kid: Option<&str>) -> Option<&VerifyingKey>;
}

impl KeyLookup for KeySet {
    fn key_for(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        self.verifier(kid?)
    }
}

impl<T: KeyLookup> KeyLookup for std::sync::Arc<T> {
    fn key_for(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        T::key_for(self, kid)
    }
}

impl KeyLookup for PublicKeySet {
    fn key_for(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        PublicKeySet::key_for(self, kid)
    }
}

/// Header parameters that would let a token choose its own key or add
/// processing rules: never honoured, always refused (RFC 8725 §3.10).
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

pub(super) fn verify(
    keys: &dyn KeyLookup,
    rules: &TokenRules,
    token: &str,
    expect: Expect,
    now: UnixTime,
) -> Result<Claims, TokenError> {
    let payload = verify_signature(keys, token)?;
    check_claims(&payload, rules, expect, now)
}

/// Checks the header and signature; returns the payload object.
fn verify_signature(keys: &dyn KeyLookup, token: &str) -> Result<Map<String, Value>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Invalid(Invalid::TooLarge));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid(Invalid::Malformed));
    };
    let header = decode_object(header)?;
    let payload = decode_object(payload)?;
    if FORBIDDEN_HEADERS
        .iter()
        .any(|name| header.contains_key(*name))
    {
        return Err(TokenError::Invalid(Invalid::ForbiddenHeader));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(kid) => Some(
            kid.as_str()
                .ok_or(TokenError::Invalid(Invalid::Malformed))?,
        ),
    };
    let key = keys
        .key_for(kid)
        .ok_or(TokenError::Invalid(Invalid::UnknownKey))?;
    // The algorithm is the key's; a header naming another one is refused.
    if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str()) {
        return Err(TokenError::Invalid(Invalid::WrongAlgorithm));
    }
    // `header.payload`: everything before the last dot.
    let signed = &token[..token.len() - signature.len() - 1];
    let valid = jsonwebtoken::crypto::verify(
        signature,
        signed.as_bytes(),
        &key.decoding,
        key.alg.to_jsonwebtoken(),
    )
    .unwrap_or(false);
    if !valid {
        return Err(TokenError::Invalid(Invalid::BadSignature));
    }
    Ok(payload)
}

fn decode_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Invalid(Invalid::Malformed))?;
    parse_object(&bytes).ok_or(TokenError::Invalid(Invalid::Malformed))
}

fn check_claims(
    payload: &Map<String, Value>,
    rules: &TokenRules,
    expect: Expect,
    now: UnixTime,
) -> Result<Claims, TokenError> {
    let exp = optional_date(payload, "exp")?;
    let iat = optional_date(payload, "iat")?;
    let nbf = optional_date(payload, "nbf")?;
    if exp.is_some_and(|exp| exp <= now - rules.leeway) {
        return Err(TokenError::Expired);
    }
    if iat.is_some_and(|iat| iat > now + rules.leeway)
        || nbf.is_some_and(|nbf| nbf > now + rules.leeway)
    {
        return Err(TokenError::Invalid(Invalid::NotYetValid));
    }
    check_issuer(payload, rules)?;
    check_audience(payload, rules)?;
    let exp = exp.ok_or(TokenError::NoExp)?;
    let jti = match payload.get(&rules.jti_claim) {
        None => return Err(TokenError::NoId),
        Some(Value::String(jti)) => jti.clone(),
        Some(_) => return Err(TokenError::Invalid(Invalid::BadClaim)),
    };
    let token_type = check_type(payload, rules, expect)?;
    let user_id = payload
        .get(&rules.user_id_claim)
        .and_then(Value::as_str)
        .ok_or(TokenError::Invalid(Invalid::BadClaim))?
        .to_owned();
    Ok(Claims {
        token_type,
        exp,
        iat: iat.unwrap_or(now),
        jti,
        user_id,
        refresh_exp: optional_date(payload, "refresh_exp")?,
    })
}

/// A NumericDate claim: absent, or a JSON number (fractions truncated).
fn optional_date(payload: &Map<String, Value>, name: &str) -> Result<Option<UnixTime>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::Invalid(Invalid::BadClaim)),
        Some(_) => Err(TokenError::Invalid(Invalid::BadClaim)),
    }
}

fn check_issuer(payload: &Map<String, Value>, rules: &TokenRules) -> Result<(), TokenError> {
    match (&rules.issuer, payload.get("iss")) {
        (Some(expected), Some(Value::String(iss))) if iss == expected => Ok(()),
        (Some(_), _) => Err(TokenError::Invalid(Invalid::WrongIssuer)),
        (None, _) => Ok(()),
    }
}

/// With an audience configured, `aud` must name it; without one, a token
/// that names any audience is refused (as PyJWT does).
fn check_audience(payload: &Map<String, Value>, rules: &TokenRules) -> Result<(), TokenError> {
    let aud = payload.get("aud");
    let Some(expected) = &rules.audience else {
        return if aud.is_some() {
            Err(TokenError::Invalid(Invalid::WrongAudience))
        } else {
            Ok(())
        };
    };
    let names_expected = match aud {
        Some(Value::String(aud)) => aud == expected,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
        _ => false,
    };
    if names_expected {
        Ok(())
    } else {
        Err(TokenError::Invalid(Invalid::WrongAudience))
    }
}

fn check_type(
    payload: &Map<String, Value>,
    rules: &TokenRules,
    expect: Expect,
) -> Result<TokenType, TokenError> {
    let claimed = match payload.get(&rules.token_type_claim) {
        None => return Err(TokenError::NoType),
        Some(value) => value.as_str().and_then(|t| t.parse::<TokenType>().ok()),
    };
    match (claimed, expect) {
        (Some(claimed), Expect::Type(wanted)) if claimed == wanted => Ok(claimed),
        (Some(claimed), Expect::AnyType) => Ok(claimed),
        _ => Err(TokenError::WrongType),
    }
}
