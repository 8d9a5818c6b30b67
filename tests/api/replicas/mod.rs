//! Replicas on one PostgreSQL database, beyond what the rest of the suite
//! checks on either database: the database stopped and started again
//! under load, every connection cut under load, and a replica whose clock
//! runs ahead, and a SQLite deployment moved to PostgreSQL. These use
//! PostgreSQL whatever the run selects.

mod migrations;
mod moving;
mod notify;
mod outage;
mod skew;
mod tls;
mod upgrade;
