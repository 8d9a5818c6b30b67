//! The verification rules, shared by the issuer and partners. The order of
//! checks follows simplejwt (signature, dates, issuer and audience, id,
//! type) so each failure gets the message simplejwt gives it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::key::{Algorithm, KeyLookup};
use super::strict_json::parse_object;
use super::{Invalid, TokenError};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Header parameters that would let a token choose its own key or add
/// processing rules: never honoured, always refused (RFC 8725 §3.10).
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// The checks that do not depend on the key.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud`, if any; without one, tokens naming an audience fail.
    pub audience: Option<String>,
    /// Allowed clock skew on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    /// Name of the token type claim.
    pub token_type_claim: String,
    /// Name of the token id claim.
    pub jti_claim: String,
    /// Algorithms accepted; a key of another algorithm verifies nothing.
    pub algorithms: Vec<Algorithm>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            leeway: 0,
            token_type_claim: "token_type".into(),
            jti_claim: "jti".into(),
            algorithms: Algorithm::ALL.to_vec(),
        }
    }
}

/// Which token types are accepted.
#[derive(Debug, Clone, Copy)]
pub enum ExpectedType<'a> {
    /// Any, or none (simplejwt's `UntypedToken`).
    Any,
    /// Exactly this type.
    Exactly(&'a str),
    /// Any of these.
    OneOf(&'a [&'a str]),
}

/// Verifies `token` at `now` (Unix seconds): header and signature under the
/// algorithm of the key its `kid` names, then the claims. Returns the
/// payload.
pub fn verify_token(
    keys: &dyn KeyLookup,
    rules: &Rules,
    token: &str,
    expected: ExpectedType<'_>,
    now: i64,
) -> Result<Map<String, Value>, TokenError> {
    let payload = verify_signature(keys, rules, token)?;
    check_claims(&payload, rules, expected, now)?;
    Ok(payload)
}

/// Checks the header and signature; returns the payload object.
fn verify_signature(
    keys: &dyn KeyLookup,
    rules: &Rules,
    token: &str,
) -> Result<Map<String, Value>, TokenError> {
    let invalid = TokenError::Invalid;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid(Invalid::TooLarge));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(Invalid::Malformed));
    };
    let header = decode_object(header)?;
    if FORBIDDEN_HEADERS
        .iter()
        .any(|name| header.contains_key(*name))
    {
        return Err(invalid(Invalid::ForbiddenHeader));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(kid) => Some(kid.as_str().ok_or(invalid(Invalid::Malformed))?),
    };
    let key = keys.key_for(kid).ok_or(invalid(Invalid::UnknownKey))?;
    // The algorithm is the key's; a header naming another one is refused.
    if !rules.algorithms.contains(&key.alg)
        || header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str())
    {
        return Err(invalid(Invalid::WrongAlgorithm));
    }
    // `header.payload`: everything before the last dot.
    let signed = &token[..token.len() - signature.len() - 1];
    if !key.verifies(signed.as_bytes(), signature) {
        return Err(invalid(Invalid::BadSignature));
    }
    // Only now, authenticated, is the payload parsed.
    decode_object(payload)
}

fn decode_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let malformed = TokenError::Invalid(Invalid::Malformed);
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed)?;
    parse_object(&bytes).ok_or(malformed)
}

fn check_claims(
    payload: &Map<String, Value>,
    rules: &Rules,
    expected: ExpectedType<'_>,
    now: i64,
) -> Result<(), TokenError> {
    let exp = numeric_date(payload, "exp")?;
    let iat = numeric_date(payload, "iat")?;
    let nbf = numeric_date(payload, "nbf")?;
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
    if exp.is_none() {
        return Err(TokenError::NoExp);
    }
    match payload.get(&rules.jti_claim) {
        None => return Err(TokenError::NoId),
        Some(Value::String(_)) => {}
        Some(_) => return Err(TokenError::Invalid(Invalid::BadClaim)),
    }
    check_type(payload, rules, expected)
}

/// A NumericDate claim: absent, or a JSON number (fractions truncated).
pub fn numeric_date(payload: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
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

fn check_issuer(payload: &Map<String, Value>, rules: &Rules) -> Result<(), TokenError> {
    match (&rules.issuer, payload.get("iss")) {
        (Some(expected), Some(Value::String(iss))) if iss == expected => Ok(()),
        (Some(_), _) => Err(TokenError::Invalid(Invalid::WrongIssuer)),
        (None, _) => Ok(()),
    }
}

/// With an audience configured, `aud` must name it; without one, a token
/// that names any audience is refused (as PyJWT does).
fn check_audience(payload: &Map<String, Value>, rules: &Rules) -> Result<(), TokenError> {
    let aud = payload.get("aud");
    let names_expected = match (&rules.audience, aud) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(expected), Some(Value::String(aud))) => aud == expected,
        (Some(expected), Some(Value::Array(auds))) => {
            auds.iter().any(|a| a.as_str() == Some(expected))
        }
        (Some(_), Some(_)) => false,
    };
    if names_expected {
        Ok(())
    } else {
        Err(TokenError::Invalid(Invalid::WrongAudience))
    }
}

fn check_type(
    payload: &Map<String, Value>,
    rules: &Rules,
    expected: ExpectedType<'_>,
) -> Result<(), TokenError> {
    if let ExpectedType::Any = expected {
        return Ok(());
    }
    let claimed = match payload.get(&rules.token_type_claim) {
        None => return Err(TokenError::NoType),
        Some(value) => value.as_str(),
    };
    let accepted = match (claimed, expected) {
        (Some(claimed), ExpectedType::Exactly(wanted)) => claimed == wanted,
        (Some(claimed), ExpectedType::OneOf(types)) => types.contains(&claimed),
        (None, _) | (_, ExpectedType::Any) => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(TokenError::WrongType)
    }
}
