//! Verifying a presented token: the shared rules of
//! [`verifier::verify_token`](crate::verifier::verify_token), then the
//! claims the issuer itself needs (user id, sliding `refresh_exp`).

use serde_json::Value;

use super::verified::Verified;
use super::{Claims, Expect, Invalid, TokenError, TokenRules, TokenType};
use crate::clock::UnixTime;
use crate::verifier::{ExpectedType, KeyLookup, numeric_date, verify_token};

/// Every token type jwtd issues, for [`Expect::AnyType`].
const ALL_TYPES: [&str; 3] = ["access", "refresh", "sliding"];

pub(super) fn verify(
    keys: &dyn KeyLookup,
    rules: &TokenRules,
    token: &str,
    expect: Expect,
    now: UnixTime,
) -> Result<Verified, TokenError> {
    let expected = match expect {
        Expect::Type(token_type) => ExpectedType::Exactly(token_type.as_str()),
        Expect::AnyType => ExpectedType::OneOf(&ALL_TYPES),
    };
    let payload = verify_token(keys, &rules.check, token, expected, now)?;
    let bad_claim = TokenError::Invalid(Invalid::BadClaim);
    let text = |name: &str| payload.get(name).and_then(Value::as_str).ok_or(bad_claim);
    let exp = numeric_date(&payload, "exp")?.ok_or(TokenError::NoExp)?;
    let iat = numeric_date(&payload, "iat")?;
    let nbf = numeric_date(&payload, "nbf")?;
    let claims = Claims {
        token_type: text(&rules.check.token_type_claim)?
            .parse::<TokenType>()
            .map_err(|()| TokenError::WrongType)?,
        exp,
        iat: iat.unwrap_or(now),
        jti: text(&rules.check.jti_claim)?.to_owned(),
        user_id: text(&rules.user_id_claim)?.to_owned(),
        refresh_exp: numeric_date(&payload, "refresh_exp")?,
    };
    // The times `verify_token` accepts: expired once `exp <= now - leeway`,
    // not yet valid while `iat` or `nbf` is after `now + leeway`.
    let leeway = rules.check.leeway;
    let starts = iat.into_iter().chain(nbf).max();
    Ok(Verified {
        claims,
        valid_from: starts.map_or(UnixTime::MIN, |at| at.saturating_sub(leeway)),
        valid_until: exp.saturating_add(leeway),
    })
}
