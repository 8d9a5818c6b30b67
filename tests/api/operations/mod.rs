//! What an operator runs jwtd with: probes, metrics, graceful shutdown,
//! JSON logs.

mod health;
mod shutdown;
