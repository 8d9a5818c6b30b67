//! Tokens: their claims, issuing them with the active key
//! ([`TokenService::issue`]) and verifying them with the key their `kid`
//! names, under that key's own algorithm ([`TokenService::verify`]).

mod claims;
pub mod refresh;
#[cfg(test)]
mod rotation_tests;
pub mod sessions;
mod verified;
mod verify;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

pub use crate::verifier::{Invalid, KeyLookup, TokenError};
pub use claims::{Claims, TokenRules};
pub use refresh::RefreshWriter;
pub use sessions::{SessionError, Sessions};

use crate::clock::{UnixTime, seconds};
use crate::config::Config;
use crate::keys::{KeyError, KeySet, SigningKey};
use crate::metrics::{Issued, METRICS, Verification};

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

impl Expect {
    /// Whether a token of `token_type` is one of those expected.
    pub fn accepts(self, token_type: TokenType) -> bool {
        match self {
            Self::Type(expected) => expected == token_type,
            Self::AnyType => true,
        }
    }
}

/// Issues and verifies tokens under the configured rules and lifetimes.
#[derive(Debug)]
pub struct TokenService {
    rules: TokenRules,
    /// Access tokens verified under the issuer's key set, for
    /// [`verify_cached`](Self::verify_cached).
    verified: verified::VerifiedTokens,
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
            verified: verified::VerifiedTokens::default(),
            access_lifetime: seconds(config.access_token_lifetime),
            refresh_lifetime: seconds(config.refresh_token_lifetime),
            sliding_lifetime: seconds(config.sliding_token_lifetime),
            sliding_refresh_lifetime: seconds(config.sliding_token_refresh_lifetime),
        }
    }

    /// Issues a token of `token_type` for `user_id`, signed by the active key.
    pub fn issue(
        &self,
        keys: &KeySet,
        token_type: TokenType,
        user_id: &str,
        now: UnixTime,
    ) -> Result<(String, Claims), IssueError> {
        let signer = keys.signer_at(now).ok_or(IssueError::NoSigningKey)?;
        let lifetime = match token_type {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
            TokenType::Sliding => self.sliding_lifetime,
        };
        let claims = Claims {
            token_type,
            exp: now.saturating_add(lifetime),
            iat: now,
            jti: new_jti(now),
            user_id: user_id.to_owned(),
            refresh_exp: (token_type == TokenType::Sliding)
                .then(|| now.saturating_add(self.sliding_refresh_lifetime)),
        };
        let token = signed(signer, &self.rules.to_json(&claims))?;
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
        let signer = keys.signer_at(now).ok_or(IssueError::NoSigningKey)?;
        let renewed = Claims {
            exp: now.saturating_add(self.sliding_lifetime),
            iat: now,
            ..claims.clone()
        };
        Ok(signed(signer, &self.rules.to_json(&renewed))?)
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
        verify::verify(keys, &self.rules, token, expect, now).map(|verified| verified.claims)
    }

    /// [`verify`](Self::verify) against the issuer's own key set, answered
    /// from memory for an access token this service has verified before
    /// under the same key-set version and that is still valid at `now`
    /// (see the `verified` module for what a hit rests on). Any other
    /// token, or a miss, is verified in full; verified access tokens are
    /// kept. Refresh and sliding tokens are never kept: each is presented
    /// once or twice, and the store decides their fate anyway; so where
    /// only they are expected, the cache is not even looked at.
    pub fn verify_cached(
        &self,
        keys: &KeySet,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        let result = self.verify_cached_uncounted(keys, token, expect, now);
        METRICS.verification(match &result {
            Ok(_) => Verification::Valid,
            Err(TokenError::Expired) => Verification::Expired,
            Err(_) => Verification::Invalid,
        });
        result
    }

    fn verify_cached_uncounted(
        &self,
        keys: &KeySet,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        // Only access tokens are kept, so a hit is of an expected type.
        if !expect.accepts(TokenType::Access) {
            return self.verify(keys, token, expect, now);
        }
        let digest = verified::digest_of(token);
        if let Some(claims) = self.verified.get(keys.version, &digest, now) {
            return Ok(claims);
        }
        let verified = verify::verify(keys, &self.rules, token, expect, now)?;
        if verified.claims.token_type == TokenType::Access {
            self.verified.insert(keys.version, digest, verified.clone());
        }
        Ok(verified.claims)
    }
}

/// `payload` signed by `signer`, timed.
fn signed(signer: &SigningKey, payload: &[u8]) -> Result<String, KeyError> {
    let started = Instant::now();
    let token = signer.sign(payload)?;
    METRICS.signed(started.elapsed());
    Ok(token)
}

/// Counts `token_types`, signed from `keys` at `now`, as handed out.
pub fn count_issued(keys: &KeySet, now: UnixTime, token_types: &[TokenType]) {
    let Some(signer) = keys.signer_at(now) else {
        return;
    };
    for token_type in token_types {
        let kind = match token_type {
            TokenType::Access => Issued::Access,
            TokenType::Refresh => Issued::Refresh,
            TokenType::Sliding => Issued::Sliding,
        };
        METRICS.issued(kind, signer.alg());
    }
}

/// A fresh token id: 32 lowercase hex characters. The first 5 bytes are
/// `now` in seconds (as UUIDv7 leads with the time) and the other 11 are
/// random (88 bits): ids of tokens issued close together sort close
/// together, so the store's indexes on them grow at their end, in pages
/// already in cache, instead of touching a random page per token. The
/// time is no secret: every token carries its `iat`.
pub fn new_jti(now: UnixTime) -> String {
    let mut bytes = [0u8; 16];
    let seconds = now.clamp(0, (1 << 40) - 1).to_be_bytes();
    bytes[..5].copy_from_slice(&seconds[3..]);
    // The system RNG failing is unrecoverable for any security software;
    // there is no sensible token to issue without it.
    SystemRandom::new()
        .fill(&mut bytes[5..])
        .expect("the operating system's random number generator failed");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 15)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::new_jti;

    #[test]
    fn token_ids_are_hex_lead_with_their_second_and_sort_by_it() {
        let id = new_jti(0x01_2345_6789);
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(id.starts_with("0123456789"));
        // Later seconds sort after, whatever the random part.
        for _ in 0..32 {
            assert!(new_jti(1_000) < new_jti(1_001));
        }
        // The random part: 88 bits, so ids of one second still differ.
        assert_ne!(new_jti(1_000), new_jti(1_000));
        // Times outside 40 bits are clamped, never wrapped.
        assert!(new_jti(-5).starts_with("0000000000"));
        assert!(new_jti(i64::MAX).starts_with("ffffffffff"));
    }
}
