//! Verifying jwtd's tokens, for the issuer itself and for partner
//! services. This module depends on nothing else in the crate but
//! [`clock`](crate::clock); build them alone with
//! `default-features = false, features = ["verifier"]`.
//!
//! - [`verify_token`]: the rules (signature under the key's own algorithm,
//!   dates, issuer, audience, id, type), given keys and a time;
//! - [`PublicKey`], [`JwkSet`]: keys from a PEM file or a JWKS document;
//! - [`PublicJwk`]: a key's public members as a JWK, its thumbprint and PEM
//!   form (what the issuer publishes);
//! - [`Verifier`]: keys from a PEM, a JWKS file or a JWKS URL (cached,
//!   revalidated, refetched on an unknown kid), plus options and the
//!   clock that both the checks and the cache read;
//! - [`Authenticated`]: an axum extractor answering simplejwt's 401s.

mod axum;
mod check;
mod der;
mod error;
mod jwk;
mod key;
mod remote;
mod service;
mod strict_json;

pub use self::axum::{AuthError, Authenticated, bearer_token};
pub use check::{ExpectedType, MAX_TOKEN_BYTES, Rules, numeric_date, verify_token};
pub use error::{Invalid, TokenError, VerifierError};
pub use jwk::PublicJwk;
pub use key::{Algorithm, JwkSet, JwksError, KeyLookup, P256_SPKI_PREFIX, PublicKey};
pub use remote::{RemoteJwks, RemoteOptions};
pub use service::{Verifier, VerifyOptions};
