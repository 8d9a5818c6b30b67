//! Claims and their JSON form, with the claim names the configuration sets.

use serde::ser::{SerializeMap, Serializer as _};

use super::TokenType;
use crate::clock::{UnixTime, seconds};
use crate::config::Config;
use crate::verifier::Rules;

/// The claims of a token jwtd issued (or accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `token_type` (or its configured name).
    pub token_type: TokenType,
    /// Expiry.
    pub exp: UnixTime,
    /// Issue time.
    pub iat: UnixTime,
    /// Unique id: 32 hex characters.
    pub jti: String,
    /// The user's id, as a string (simplejwt 5.5).
    pub user_id: String,
    /// Sliding tokens only: until when they can be refreshed.
    pub refresh_exp: Option<UnixTime>,
}

/// Claim names and the checks that do not depend on the key.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Name of the user id claim.
    pub user_id_claim: String,
    /// Everything else, as partners check it too.
    pub check: Rules,
}

impl TokenRules {
    /// The rules `config` sets.
    pub fn new(config: &Config) -> Self {
        Self {
            user_id_claim: config.user_id_claim.clone(),
            check: Rules {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                leeway: seconds(config.leeway),
                token_type_claim: config.token_type_claim.clone(),
                jti_claim: config.jti_claim.clone(),
                ..Rules::default()
            },
        }
    }

    /// The JSON payload of `claims`, written member by member: the
    /// configuration refuses claim names that collide, so no name repeats.
    pub fn to_json(&self, claims: &Claims) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::new(&mut out);
        let written = (|| {
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry(&self.check.token_type_claim, claims.token_type.as_str())?;
            map.serialize_entry("exp", &claims.exp)?;
            map.serialize_entry("iat", &claims.iat)?;
            map.serialize_entry(&self.check.jti_claim, &claims.jti)?;
            map.serialize_entry(&self.user_id_claim, &claims.user_id)?;
            if let Some(refresh_exp) = claims.refresh_exp {
                map.serialize_entry("refresh_exp", &refresh_exp)?;
            }
            if let Some(issuer) = &self.check.issuer {
                map.serialize_entry("iss", issuer)?;
            }
            if let Some(audience) = &self.check.audience {
                map.serialize_entry("aud", audience)?;
            }
            map.end()
        })();
        // Writing strings and integers into memory cannot fail.
        debug_assert!(written.is_ok());
        out
    }
}
