//! Integration tests: each starts a real jwtd on 127.0.0.1:0 with its own
//! SQLite file and a manual clock, and talks to it over HTTP.

mod accounts;
mod audit;
mod cli;
mod crypto;
mod db;
mod errors;
mod faults;
mod helpers;
mod hostile;
mod interop;
mod master_keys;
mod openapi;
mod operations;
mod partner;
mod postgres;
mod process;
mod replicas;
mod rotation;
mod rotation_live;
mod sessions;
mod story;
mod throttle;
mod tools;
mod upgrade;
mod vectors;
