//! `jwtd keys …`.

use clap::Subcommand;
use serde_json::json;

use crate::clock::{UnixTime, format_rfc3339};
use crate::store::Store;

/// Key inspection.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key: kid, algorithm, state and dates.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a keys subcommand.
pub async fn run(command: KeysCommand, store: &Store) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { json } => list(store, json).await,
    }
}

async fn list(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let (_, keys) = store.keys_with_version().await?;
    if as_json {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({
                    "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
                    "created_at": k.created_at, "activated_at": k.activated_at,
                    "deactivated_at": k.deactivated_at, "retired_at": k.retired_at,
                    "revoked_at": k.revoked_at,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}",
        "kid", "alg", "state", "created", "activated", "deactivated"
    );
    for key in keys {
        println!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}",
            key.kid,
            key.alg.as_str(),
            key.state.as_str(),
            format_rfc3339(key.created_at),
            date(key.activated_at),
            date(key.deactivated_at),
        );
    }
    Ok(())
}

fn date(time: Option<UnixTime>) -> String {
    time.map_or_else(|| "-".to_owned(), format_rfc3339)
}
