//! `jwtd keys …`: inspect, rotate, revoke, export and re-seal signing keys.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use crate::clock::{Clock, SystemClock, UnixTime, format_rfc3339};
use crate::config::Config;
use crate::keys::lifecycle::{self, KeyMaking};
use crate::keys::rewrap;
use crate::keys::schedule::RotationPolicy;
use crate::keys::seal::fingerprint_of;
use crate::keys::{Fingerprint, KeySet, MasterKey};
use crate::store::Store;
use crate::store::StoredKey;

/// Key management.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key: kid, algorithm, state, dates and the fingerprint of the
    /// master key that sealed its private half.
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
    /// Re-seal every stored private key under the first master key (put
    /// the new master key first, restart the servers, then run this; the
    /// servers may keep running).
    Rewrap,
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
        KeysCommand::List { json } => list(store, config, json).await,
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
        KeysCommand::Rewrap => {
            let master = MasterKey::load(&config.master_key)?;
            let done = rewrap::rewrap(store, &master).await?;
            say!(
                "re-sealed {} private key(s) under master key {} ({} already were)",
                done.resealed,
                done.under,
                done.already
            )?;
            Ok(())
        }
        KeysCommand::Export { out } => export(store, &out).await,
    }
}

async fn list(store: &Store, config: &Config, as_json: bool) -> anyhow::Result<()> {
    let (_, keys) = store.keys_with_version().await?;
    let sealed_with = SealedWith::new(&keys, config)?;
    if as_json {
        let rows: Vec<_> = keys
            .iter()
            .map(|key| key_json(key, sealed_with.of(key)))
            .collect();
        say!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    say!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}  {:<16}",
        "kid",
        "alg",
        "state",
        "created",
        "activated",
        "deactivated",
        "retired/revoked",
        "sealed with"
    )?;
    for key in &keys {
        say!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}  {:<16}",
            key.kid,
            key.alg.as_str(),
            key.state.as_str(),
            format_rfc3339(key.created_at),
            date(key.activated_at),
            date(key.deactivated_at),
            date(key.retired_at.or(key.revoked_at)),
            sealed_with
                .of(key)
                .map_or_else(|| "-".to_owned(), |fingerprint| fingerprint.to_string()),
        )?;
    }
    Ok(())
}

/// Which master key sealed each key, for `keys list`. A sealed key names
/// it; for one that does not, the configured master keys are tried, read
/// only then (and a missing key file is not created).
struct SealedWith(Option<MasterKey>);

impl SealedWith {
    fn new(keys: &[StoredKey], config: &Config) -> anyhow::Result<Self> {
        let unnamed = keys.iter().any(|key| {
            key.sealed_private
                .as_deref()
                .is_some_and(|sealed| fingerprint_of(sealed).is_none())
        });
        let master = if unnamed {
            MasterKey::load_existing(&config.master_key)?
        } else {
            None
        };
        Ok(Self(master))
    }

    /// The fingerprint of the master key that sealed `key`'s private half;
    /// `None` without one, or when no configured master key opens it.
    fn of(&self, key: &StoredKey) -> Option<Fingerprint> {
        let sealed = key.sealed_private.as_deref()?;
        fingerprint_of(sealed).or_else(|| self.0.as_ref()?.sealed_with(&key.kid, sealed))
    }
}

fn key_json(key: &StoredKey, sealed_with: Option<Fingerprint>) -> serde_json::Value {
    json!({
        "kid": key.kid,
        "alg": key.alg.as_str(),
        "state": key.state.as_str(),
        "created_at": key.created_at,
        "activated_at": key.activated_at,
        "deactivated_at": key.deactivated_at,
        "retired_at": key.retired_at,
        "revoked_at": key.revoked_at,
        "sealed_with": sealed_with.map(|fingerprint| fingerprint.to_string()),
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
            .to_pem(key.alg)
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
