//! Claims and their JSON form, with the claim names the configuration sets.

use serde_json::{Map, Value};

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

    /// The JSON payload of `claims`.
    pub fn to_json(&self, claims: &Claims) -> Vec<u8> {
        let mut map = Map::with_capacity(8);
        map.insert(
            self.check.token_type_claim.clone(),
            claims.token_type.as_str().into(),
        );
        map.insert("exp".into(), claims.exp.into());
        map.insert("iat".into(), claims.iat.into());
        map.insert(self.check.jti_claim.clone(), claims.jti.clone().into());
        map.insert(self.user_id_claim.clone(), claims.user_id.clone().into());
        if let Some(refresh_exp) = claims.refresh_exp {
            map.insert("refresh_exp".into(), refresh_exp.into());
        }
        if let Some(issuer) = &self.check.issuer {
            map.insert("iss".into(), issuer.clone().into());
        }
        if let Some(audience) = &self.check.audience {
            map.insert("aud".into(), audience.clone().into());
        }
        // Serialising a map of strings and integers cannot fail.
        serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
    }
}
