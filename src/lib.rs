//! jwtd: a JSON Web Token issuer with simplejwt's API, asymmetric keys kept
//! encrypted in SQLite, scheduled rotation and a published JWKS.
//!
//! What the library offers:
//! - [`verifier`]: verifying jwtd's tokens, for partner services (usable
//!   alone with `default-features = false, features = ["verifier"]`);
//! - [`server::Issuer`], with [`config`] and [`clock`]: running an issuer
//!   in-process, on a clock a test moves;
//! - [`testing`]: what test suites and benchmarks need beyond HTTP and the
//!   CLI (users, stored keys, a forged token, an immediate rotation);
//! - [`cli`]: the `jwtd` command line, which the binary runs.
//!
//! Inside, one folder per concern, dependencies pointing one way
//! (`http` → `tokens` / `users` / `keys` → `store`): `store` (the database;
//! every SQL statement lives there), `keys` (generation, encryption at
//! rest, the rotation schedule, the in-memory key ring), `tokens` (claims,
//! issuing, verifying, sessions and refreshes), `users` (accounts,
//! password hashing, the login throttle), `http` (router, handlers,
//! extractors, connections and the one error mapping), `health` (whether
//! the process may take traffic) and `metrics` (Prometheus counters).

#![deny(missing_docs)]

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "verifier")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
mod health;
#[cfg(feature = "server")]
mod http;
#[cfg(feature = "server")]
mod keys;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod store;
#[cfg(feature = "server")]
pub mod testing;
#[cfg(feature = "server")]
mod tokens;
#[cfg(feature = "server")]
mod users;
#[cfg(feature = "verifier")]
pub mod verifier;
