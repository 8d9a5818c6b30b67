//! `jwtd keys …`: inspect, rotate, revoke and export signing keys.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use crate::clock::{Clock, SystemClock, UnixTime, format_rfc3339};
use crate::config::Config;
use crate::keys::lifecycle::{self, KeyMaking};
use crate::keys::schedule::RotationPolicy;
use crate::keys::{KeySet, MasterKey};
use crate::store::Store;
use crate::store::StoredKey;

/// Key management.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key: kid, algorithm, state and dates.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make the next key active as soon as it has been published for
    /// key_prepublish (at once if it has).
    Rotate {
        /// Activate the next key at once, even if partners may not have it yet.
        #[arg(long)]
        now: bool,
    },
    /// Emergency: unpublish a key at once; tokens it signed fail.
    Revoke {
        /// The key's id (it may begin with `-`: base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Write jwks.json and one <kid>.pem per published key.
    Export {
        /// Folder to write to.
        #[arg(long, default_value = "keys")]
        out: PathBuf,
    },
}

/// Runs a keys subcommand.
pub async fn run(command: KeysCommand, store: &Store, config: &Config) -> anyhow::Result<()> {
    let making = KeyMaking {
        policy: RotationPolicy::new(config),
        rsa_bits: config.rsa_bits,
    };
    match command {
        KeysCommand::List { json } => list(store, json).await,
        KeysCommand::Rotate { now: at_once } => {
            let master = MasterKey::load(&config.master_key)?;
            let at = lifecycle::rotate(store, &master, making, at_once, &SystemClock).await?;
            if at <= SystemClock.now() {
                say!("the next key is now active")?;
            } else {
                say!(
                    "the next key becomes active at {} (when it has been published for key_prepublish); a running `jwtd serve` makes the switch",
                    format_rfc3339(at)
                )?;
            }
            Ok(())
        }
        KeysCommand::Revoke { kid } => {
            let master = MasterKey::load(&config.master_key)?;
            lifecycle::revoke(store, &master, making, &kid, &SystemClock).await?;
            say!("revoked key {kid}: unpublished, tokens it signed no longer verify")?;
            Ok(())
        }
        KeysCommand::Export { out } => export(store, &out).await,
    }
}

async fn list(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let (_, keys) = store.keys_with_version().await?;
    if as_json {
        let rows: Vec<_> = keys.iter().map(key_json).collect();
        say!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    say!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}",
        "kid",
        "alg",
        "state",
        "created",
        "activated",
        "deactivated",
        "retired/revoked"
    )?;
    for key in keys {
        say!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}",
            key.kid,
            key.alg.as_str(),
            key.state.as_str(),
            format_rfc3339(key.created_at),
            date(key.activated_at),
            date(key.deactivated_at),
            date(key.retired_at.or(key.revoked_at)),
        )?;
    }
    Ok(())
}

fn key_json(key: &StoredKey) -> serde_json::Value {
    json!({
        "kid": key.kid,
        "alg": key.alg.as_str(),
        "state": key.state.as_str(),
        "created_at": key.created_at,
        "activated_at": key.activated_at,
        "deactivated_at": key.deactivated_at,
        "retired_at": key.retired_at,
        "revoked_at": key.revoked_at,
    })
}

/// Writes the JWKS and one PEM per published key. Public keys only, so
/// no master key is needed.
async fn export(store: &Store, out: &Path) -> anyhow::Result<()> {
    let (_, keys) = store.keys_with_version().await?;
    let published: Vec<&StoredKey> = keys.iter().filter(|k| k.state.is_published()).collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let jwks = KeySet::jwks_of(&keys);
    write(&out.join("jwks.json"), &jwks.body)?;
    for key in &published {
        let pem = key
            .public
            .to_pem()
            .with_context(|| format!("key {} has malformed public parameters", key.kid))?;
        write(&out.join(format!("{}.pem", key.kid)), pem.as_bytes())?;
    }
    say!(
        "wrote jwks.json and {} PEM file(s) to {}",
        published.len(),
        out.display()
    )?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn date(time: Option<UnixTime>) -> String {
    time.map_or_else(|| "-".to_owned(), format_rfc3339)
}
