//! What to do with a presented refresh token, given what the store knows of
//! it: a pure decision, so every branch (rotation, blacklist, reuse
//! detection, the retry grace) is tested without a database.
//!
//! Refresh tokens of one login form a family. A token that was rotated away
//! and comes back is a sign of theft: the whole family is revoked, so the
//! thief and the victim both log in again. Within `refresh_reuse_grace`, the
//! same token is instead taken as a client retrying a refresh whose answer
//! it never got.

use super::{Invalid, TokenError};
use crate::clock::{UnixTime, seconds};
use crate::config::Config;
use crate::store::TokenRecord;

/// The settings that shape a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh returns a new refresh token.
    pub rotate: bool,
    /// The rotated-away token is blacklisted (and reuse detection is on).
    pub blacklist_after_rotation: bool,
    /// Seconds during which a rotated-away token counts as a retry.
    pub reuse_grace: i64,
    /// Seconds after its login at which a family stops refreshing; 0: never.
    pub family_lifetime: i64,
}

impl RefreshPolicy {
    /// The policy `config` sets.
    pub fn new(config: &Config) -> Self {
        Self {
            rotate: config.rotate_refresh_tokens,
            blacklist_after_rotation: config.blacklist_after_rotation,
            reuse_grace: seconds(config.refresh_reuse_grace),
            family_lifetime: seconds(config.refresh_family_lifetime),
        }
    }
}

/// The outcome of a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Issue an access token; the refresh token stays as it is.
    AccessOnly,
    /// Issue an access token and a new refresh token in the same family;
    /// the presented one is marked rotated (and blacklisted, if configured).
    Rotate,
    /// A client's retry within the grace: a fresh pair in the same family;
    /// the token issued by the first attempt (`superseded`) is blacklisted.
    Retry {
        /// The jti that replaced the presented token the first time.
        superseded: Option<String>,
    },
    /// Reuse of a rotated-away token: revoke the whole family and refuse.
    RevokeFamily(String),
    /// Refuse without changing anything.
    Refuse(TokenError),
}

/// Decides a refresh of a token whose signature and claims are valid.
pub fn decide(record: Option<&TokenRecord>, now: UnixTime, policy: &RefreshPolicy) -> Decision {
    let Some(record) = record else {
        // Signed by us but never recorded (or flushed after expiry).
        return Decision::Refuse(TokenError::Invalid(Invalid::NotRecorded));
    };
    if record.family_revoked {
        return Decision::Refuse(TokenError::Blacklisted);
    }
    if let (Some(began), true) = (record.family_created_at, policy.family_lifetime > 0)
        && now >= began + policy.family_lifetime
    {
        return Decision::Refuse(TokenError::Expired);
    }
    if let (Some(rotated_at), true) = (record.rotated_at, policy.blacklist_after_rotation) {
        if policy.reuse_grace > 0 && now - rotated_at <= policy.reuse_grace {
            return Decision::Retry {
                superseded: record.replaced_by.clone(),
            };
        }
        return match &record.family_id {
            Some(family) => Decision::RevokeFamily(family.clone()),
            None => Decision::Refuse(TokenError::Blacklisted),
        };
    }
    if record.blacklisted {
        return Decision::Refuse(TokenError::Blacklisted);
    }
    if policy.rotate {
        Decision::Rotate
    } else {
        Decision::AccessOnly
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const STRICT: RefreshPolicy = RefreshPolicy {
        rotate: true,
        blacklist_after_rotation: true,
        reuse_grace: 0,
        family_lifetime: 0,
    };

    /// A recorded, unused token of user 1 in `family`.
    pub(in crate::tokens) fn fresh_in(family: &str) -> TokenRecord {
        TokenRecord {
            user_id: 1,
            family_id: Some(family.into()),
            blacklisted: false,
            family_revoked: false,
            family_created_at: Some(50),
            rotated_at: None,
            replaced_by: None,
        }
    }

    fn fresh() -> TokenRecord {
        fresh_in("f")
    }

    fn rotated_at(at: UnixTime) -> TokenRecord {
        TokenRecord {
            blacklisted: true,
            rotated_at: Some(at),
            replaced_by: Some("next".into()),
            ..fresh()
        }
    }

    #[test]
    fn a_fresh_token_rotates() {
        assert_eq!(decide(Some(&fresh()), 100, &STRICT), Decision::Rotate);
        let no_rotation = RefreshPolicy {
            rotate: false,
            ..STRICT
        };
        assert_eq!(
            decide(Some(&fresh()), 100, &no_rotation),
            Decision::AccessOnly
        );
    }

    #[test]
    fn reuse_without_grace_revokes_the_family() {
        assert_eq!(
            decide(Some(&rotated_at(100)), 100, &STRICT),
            Decision::RevokeFamily("f".into())
        );
    }

    #[test]
    fn reuse_within_the_grace_is_a_retry() {
        let graceful = RefreshPolicy {
            reuse_grace: 10,
            ..STRICT
        };
        assert_eq!(
            decide(Some(&rotated_at(100)), 110, &graceful),
            Decision::Retry {
                superseded: Some("next".into())
            }
        );
        assert_eq!(
            decide(Some(&rotated_at(100)), 111, &graceful),
            Decision::RevokeFamily("f".into())
        );
    }

    #[test]
    fn without_blacklisting_a_rotated_token_still_works() {
        let lenient = RefreshPolicy {
            blacklist_after_rotation: false,
            ..STRICT
        };
        let record = TokenRecord {
            blacklisted: false,
            ..rotated_at(100)
        };
        assert_eq!(decide(Some(&record), 5_000, &lenient), Decision::Rotate);
    }

    #[test]
    fn a_family_past_its_lifetime_is_expired_however_recently_rotated() {
        let bounded = RefreshPolicy {
            family_lifetime: 1_000,
            ..STRICT
        };
        assert_eq!(decide(Some(&fresh()), 1_049, &bounded), Decision::Rotate);
        assert_eq!(
            decide(Some(&fresh()), 1_050, &bounded),
            Decision::Refuse(TokenError::Expired)
        );
        assert_eq!(
            decide(Some(&fresh()), 1_050, &STRICT),
            Decision::Rotate,
            "0 turns the lifetime off"
        );
    }

    #[test]
    fn blacklisted_revoked_and_unknown_tokens_are_refused() {
        let blacklisted = TokenRecord {
            blacklisted: true,
            ..fresh()
        };
        assert_eq!(
            decide(Some(&blacklisted), 1, &STRICT),
            Decision::Refuse(TokenError::Blacklisted)
        );
        let revoked = TokenRecord {
            family_revoked: true,
            ..rotated_at(1)
        };
        assert_eq!(
            decide(Some(&revoked), 1, &STRICT),
            Decision::Refuse(TokenError::Blacklisted)
        );
        assert!(matches!(
            decide(None, 1, &STRICT),
            Decision::Refuse(TokenError::Invalid(_))
        ));
    }
}
