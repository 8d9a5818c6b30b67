//! jwtd: a JSON Web Token issuer with simplejwt's API, asymmetric keys kept
//! encrypted in SQLite, scheduled rotation and a published JWKS.
//!
//! Layout, one folder per concern:
//! - [`config`]: settings from defaults, a TOML file and `JWTD_*` variables;
//! - [`store`]: the database; every SQL statement lives there;
//! - [`keys`]: key generation, encryption at rest, the in-memory key ring;
//! - [`tokens`]: claims, issuing and verifying tokens;
//! - [`users`]: users and password hashing;
//! - [`http`]: the router, handlers, extractors and the error mapping;
//! - [`cli`]: the `jwtd` command line;
//! - [`server`]: assembling and running an issuer;
//! - [`clock`]: the one injectable source of time;
//! - [`verifier`]: verifying tokens, for partners (usable alone with
//!   `default-features = false, features = ["verifier"]`).

#![deny(missing_docs)]

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "verifier")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod testing;
#[cfg(feature = "server")]
pub mod tokens;
#[cfg(feature = "server")]
pub mod users;
#[cfg(feature = "verifier")]
pub mod verifier;
