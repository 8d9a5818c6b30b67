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
//! - [`clock`]: the one injectable source of time.

pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod keys;
pub mod server;
pub mod store;
pub mod tokens;
pub mod users;
