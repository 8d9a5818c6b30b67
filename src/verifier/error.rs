//! Why a token is refused, with simplejwt's messages, and why a verifier
//! could not be built.

use super::key::JwksError;

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
    /// Blacklisted (issuer side only).
    #[error("Token is blacklisted")]
    Blacklisted,
    /// A valid token of another type than the endpoint takes.
    #[error("Token has wrong type")]
    WrongType,
    /// No token type claim.
    #[error("Token has no type")]
    NoType,
    /// No token id claim.
    #[error("Token has no id")]
    NoId,
    /// No `exp` claim.
    #[error("Token has no 'exp' claim")]
    NoExp,
    /// A sliding token past its `refresh_exp` (issuer side only).
    #[error("Token 'refresh_exp' claim has expired")]
    RefreshExpired,
}

/// The precise reason behind [`TokenError::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// Over [`MAX_TOKEN_BYTES`](super::MAX_TOKEN_BYTES).
    #[error("token is larger than 8 KiB")]
    TooLarge,
    /// Not three base64url parts of JSON objects without duplicate keys.
    #[error("not a well-formed JWS")]
    Malformed,
    /// A header member that would let the token pick its key or rules.
    #[error("header carries jku, x5u, jwk, x5c or crit")]
    ForbiddenHeader,
    /// No known key with the header's kid.
    #[error("unknown key id (kid)")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key, or not accepted.
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
    /// Signed by the issuer, but not recorded as outstanding (issuer side,
    /// refresh and sliding tokens): flushed after expiry, or the database
    /// was restored.
    #[error("token not recorded as outstanding")]
    NotRecorded,
}

/// Why a [`Verifier`](super::Verifier) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// A key file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The PEM or JWKS file as given.
        path: String,
        /// The operating system's reason (missing, not permitted, …).
        reason: String,
    },
    /// The PEM is not an RSA or P-256 public key.
    #[error("not an RSA or P-256 public key in PEM form: {0}")]
    NotPublicKey(String),
    /// The JWKS is unusable.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// Fetching the JWKS failed.
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
}
