//! What an operator runs jwtd with: probes, metrics, graceful shutdown,
//! discovery.

mod discovery;
mod health;
mod shutdown;
