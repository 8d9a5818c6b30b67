//! Access tokens this process has already verified, so that a token
//! presented again (a client sends the same access token with every
//! request of its five-minute life) costs a SHA-256 and a lookup instead
//! of a signature verification.
//!
//! An entry answers only when everything the full verification depends on
//! is unchanged: the exact token text (its SHA-256; the token itself is not
//! kept), the key-set version it was verified under (any key change, a
//! revocation included, empties the cache), and the time, which is checked
//! on every hit against the window the token's `exp`, `iat`, `nbf` and the
//! leeway allow. Only successes are kept; anything else goes through the
//! full verification, which gives the error. The rules (issuer, audience,
//! claim names) are fixed for the life of the [`TokenService`](super::TokenService)
//! that owns the cache.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest;

use super::Claims;
use crate::clock::UnixTime;

/// Most tokens kept (about 1 MiB); when full, the cache starts over.
const CAPACITY: usize = 4096;

/// The SHA-256 of a token's text.
pub(super) type TokenDigest = [u8; 32];

/// The SHA-256 of `token`.
pub(super) fn digest_of(token: &str) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// A verified token's claims and the times between which it stays valid.
#[derive(Debug, Clone)]
pub(super) struct Verified {
    /// The claims, as verified when the token was first seen.
    pub claims: Claims,
    /// Valid from this second on (`iat` or `nbf`, less the leeway).
    pub valid_from: UnixTime,
    /// Expired from this second on (`exp` plus the leeway).
    pub valid_until: UnixTime,
}

impl Verified {
    fn is_valid_at(&self, now: UnixTime) -> bool {
        self.valid_from <= now && now < self.valid_until
    }
}

/// Verified tokens by digest, for one key-set version.
#[derive(Debug, Default)]
pub(super) struct VerifiedTokens {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    key_set_version: i64,
    tokens: HashMap<TokenDigest, Verified>,
}

impl VerifiedTokens {
    /// The claims of the token with `digest`, if it was verified under
    /// `key_set_version` and is still valid at `now`.
    pub fn get(&self, key_set_version: i64, digest: &TokenDigest, now: UnixTime) -> Option<Claims> {
        let entries = self.lock();
        if entries.key_set_version != key_set_version {
            return None;
        }
        let verified = entries.tokens.get(digest)?;
        verified.is_valid_at(now).then(|| verified.claims.clone())
    }

    /// Keeps `verified`, checked under `key_set_version`. Entries of
    /// another version, or a full cache, are dropped first.
    pub fn insert(&self, key_set_version: i64, digest: TokenDigest, verified: Verified) {
        let mut entries = self.lock();
        if entries.key_set_version != key_set_version || entries.tokens.len() >= CAPACITY {
            entries.key_set_version = key_set_version;
            entries.tokens.clear();
        }
        entries.tokens.insert(digest, verified);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The entries stay consistent even if a holder panicked.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenType;

    fn verified(jti: &str, valid_from: UnixTime, valid_until: UnixTime) -> Verified {
        Verified {
            claims: Claims {
                token_type: TokenType::Access,
                exp: valid_until,
                iat: valid_from,
                jti: jti.into(),
                user_id: "1".into(),
                refresh_exp: None,
            },
            valid_from,
            valid_until,
        }
    }

    #[test]
    fn a_kept_token_answers_only_inside_its_window_and_key_set_version() {
        let cache = VerifiedTokens::default();
        let digest = digest_of("header.payload.signature");
        assert_eq!(cache.get(7, &digest, 100), None, "nothing kept yet");
        cache.insert(7, digest, verified("a", 100, 400));

        assert_eq!(cache.get(7, &digest, 100).unwrap().jti, "a");
        assert_eq!(cache.get(7, &digest, 399).unwrap().jti, "a");
        assert_eq!(cache.get(7, &digest, 99), None, "before it is valid");
        assert_eq!(cache.get(7, &digest, 400), None, "expired");
        assert_eq!(cache.get(8, &digest, 200), None, "another key set");
        let other = digest_of("header.payload.signaturf");
        assert_eq!(cache.get(7, &other, 200), None, "another token");
    }

    #[test]
    fn a_new_key_set_version_or_a_full_cache_starts_over() {
        let cache = VerifiedTokens::default();
        let first = digest_of("first");
        cache.insert(1, first, verified("first", 0, 10));
        let second = digest_of("second");
        cache.insert(2, second, verified("second", 0, 10));
        assert_eq!(cache.get(2, &second, 5).unwrap().jti, "second");
        assert_eq!(cache.get(1, &first, 5), None, "dropped with version 1");
        assert_eq!(cache.get(2, &first, 5), None);

        for n in 0..CAPACITY {
            cache.insert(2, digest_of(&n.to_string()), verified("n", 0, 10));
        }
        assert_eq!(cache.lock().tokens.len(), 1, "full: started over");
        assert_eq!(cache.get(2, &second, 5), None);
    }
}
