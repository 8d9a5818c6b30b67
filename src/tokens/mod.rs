//! Tokens: their claims, issuing them with the active key
//! ([`TokenService::issue`]) and verifying them with the key their `kid`
//! names, under that key's own algorithm ([`TokenService::verify`]).

mod claims;
pub mod refresh;
pub mod sessions;
mod strict_json;
mod verify;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

pub use claims::{Claims, TokenRules};
pub use refresh::TokenRecord;
pub use sessions::{Refreshed, SessionError, Sessions};
pub use verify::KeyLookup;

use crate::clock::{UnixTime, seconds};
use crate::config::Config;
use crate::keys::{KeyError, KeySet};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The kinds of token jwtd issues (the `token_type` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Authenticates requests; short-lived.
    Access,
    /// Obtains new access tokens; longer-lived.
    Refresh,
    /// Both at once, refreshed until `refresh_exp`.
    Sliding,
}

impl TokenType {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Sliding => "sliding",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenType {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "access" => Ok(Self::Access),
            "refresh" => Ok(Self::Refresh),
            "sliding" => Ok(Self::Sliding),
            _ => Err(()),
        }
    }
}

/// Why a presented token is refused. Each variant's message is simplejwt's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Malformed, badly signed, signed by an unknown, retired or revoked key,
    /// not yet valid, or for another issuer or audience: simplejwt says only
    /// "Token is invalid"; the [`Invalid`] says which, for logs and the CLI.
    #[error("Token is invalid")]
    Invalid(Invalid),
    /// Past its `exp` (plus leeway).
    #[error("Token is expired")]
    Expired,
    /// Blacklisted.
    #[error("Token is blacklisted")]
    Blacklisted,
    /// A valid token of another type than the endpoint takes.
    #[error("Token has wrong type")]
    WrongType,
    /// No `token_type` claim.
    #[error("Token has no type")]
    NoType,
    /// No `jti` claim.
    #[error("Token has no id")]
    NoId,
    /// No `exp` claim.
    #[error("Token has no 'exp' claim")]
    NoExp,
    /// A sliding token past its `refresh_exp`.
    #[error("Token 'refresh_exp' claim has expired")]
    RefreshExpired,
}

/// The precise reason behind [`TokenError::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token is larger than 8 KiB")]
    TooLarge,
    /// Not three base64url parts of JSON objects without duplicate keys.
    #[error("not a well-formed JWS")]
    Malformed,
    /// A header member that would let the token pick its key or rules.
    #[error("header carries jku, x5u, jwk, x5c or crit")]
    ForbiddenHeader,
    /// No published key with the header's kid.
    #[error("unknown key id (kid)")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key.
    #[error("algorithm does not match the key")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A date claim that is not a number, or a non-string id or user id.
    #[error("malformed claim")]
    BadClaim,
    /// `nbf` or `iat` in the future.
    #[error("not yet valid (nbf or iat in the future)")]
    NotYetValid,
    /// Wrong or missing `iss`.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Wrong or missing `aud`, or an `aud` when none is expected.
    #[error("wrong audience")]
    WrongAudience,
    /// Signed by us, but not recorded as outstanding (refresh and sliding
    /// tokens only): flushed after expiry, or the database was restored.
    #[error("token not recorded as outstanding")]
    NotRecorded,
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// No key is active (only before the first key is created).
    #[error("no active signing key")]
    NoSigningKey,
    /// The key failed to sign.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Which token types an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this type.
    Type(TokenType),
    /// Any type jwtd issues (`/api/token/verify/`, like simplejwt's `UntypedToken`).
    AnyType,
}

/// Issues and verifies tokens under the configured rules and lifetimes.
#[derive(Debug, Clone)]
pub struct TokenService {
    rules: TokenRules,
    access_lifetime: i64,
    refresh_lifetime: i64,
    sliding_lifetime: i64,
    sliding_refresh_lifetime: i64,
}

impl TokenService {
    /// A service following `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            rules: TokenRules::new(config),
            access_lifetime: seconds(config.access_token_lifetime),
            refresh_lifetime: seconds(config.refresh_token_lifetime),
            sliding_lifetime: seconds(config.sliding_token_lifetime),
            sliding_refresh_lifetime: seconds(config.sliding_token_refresh_lifetime),
        }
    }

    /// The claim names and checks in force.
    pub fn rules(&self) -> &TokenRules {
        &self.rules
    }

    /// Issues a token of `token_type` for `user_id`, signed by the active key.
    pub fn issue(
        &self,
        keys: &KeySet,
        token_type: TokenType,
        user_id: &str,
        now: UnixTime,
    ) -> Result<(String, Claims), IssueError> {
        let signer = keys.signer.as_ref().ok_or(IssueError::NoSigningKey)?;
        let lifetime = match token_type {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
            TokenType::Sliding => self.sliding_lifetime,
        };
        let claims = Claims {
            token_type,
            exp: now.saturating_add(lifetime),
            iat: now,
            jti: new_jti(),
            user_id: user_id.to_owned(),
            refresh_exp: (token_type == TokenType::Sliding)
                .then(|| now.saturating_add(self.sliding_refresh_lifetime)),
        };
        let token = signer.sign(&self.rules.to_json(&claims))?;
        Ok((token, claims))
    }

    /// A sliding token with the same id and `refresh_exp` as `claims`, and
    /// a new `exp` and `iat`.
    pub fn reissue_sliding(
        &self,
        keys: &KeySet,
        claims: &Claims,
        now: UnixTime,
    ) -> Result<String, IssueError> {
        let signer = keys.signer.as_ref().ok_or(IssueError::NoSigningKey)?;
        let renewed = Claims {
            exp: now.saturating_add(self.sliding_lifetime),
            iat: now,
            ..claims.clone()
        };
        Ok(signer.sign(&self.rules.to_json(&renewed))?)
    }

    /// Verifies `token` at time `now`: signature under the algorithm of the
    /// key its `kid` names, then the claims.
    pub fn verify(
        &self,
        keys: &dyn KeyLookup,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        verify::verify(keys, &self.rules, token, expect, now)
    }
}

/// A fresh token id: 32 lowercase hex characters from 16 random bytes.
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    // The system RNG failing is unrecoverable for any security software;
    // there is no sensible token to issue without it.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
