//! `jwtd token verify`: offline verification with a JWKS or a PEM public
//! key, under the same rules the server applies.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{ArgGroup, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::tokens::{Expect, TokenError, TokenService};
use crate::verifier::{JwkSet, KeyLookup, PublicKey};

/// Offline token work.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Verify a token: prints its claims and exits 0, or prints why it is
    /// invalid and exits 1.
    #[command(group(ArgGroup::new("keys").required(true).args(["jwks", "key"])))]
    Verify {
        /// The token to check (its text, as a partner receives it).
        token: String,
        /// A JWKS file or http(s) URL; the token's kid picks the key.
        #[arg(long, value_name = "FILE_OR_URL")]
        jwks: Option<String>,
        /// A PEM public key file; the token's kid is not consulted.
        #[arg(long, value_name = "PEM")]
        key: Option<std::path::PathBuf>,
        /// Required `aud` (default: the configured audience).
        #[arg(long)]
        audience: Option<String>,
        /// Required `iss` (default: the configured issuer).
        #[arg(long)]
        issuer: Option<String>,
    },
}

/// Why a verification failed: the token was refused (exit 1), as opposed
/// to the command itself failing.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct Refused(pub String);

/// Runs a token subcommand.
pub async fn run(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    let TokenCommand::Verify {
        token,
        jwks,
        key,
        audience,
        issuer,
    } = command;
    let keys: Box<dyn KeyLookup> = match (jwks, key) {
        (Some(source), _) => Box::new(
            JwkSet::parse(&read_jwks(&source).await?)
                .with_context(|| format!("reading {source}"))?,
        ),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let key = PublicKey::from_pem(&text).map_err(|reason| {
                anyhow::anyhow!(
                    "reading {}: not an RSA or P-256 public key in PEM form: {reason}",
                    path.display()
                )
            })?;
            Box::new(key)
        }
        (None, None) => bail!("give --jwks FILE_OR_URL or --key PEM"),
    };
    let mut config = config.clone();
    config.audience = audience.or(config.audience);
    config.issuer = issuer.or(config.issuer);
    let service = TokenService::new(&config);
    match service.verify(
        keys.as_ref(),
        token.trim(),
        Expect::AnyType,
        SystemClock.now(),
    ) {
        Ok(_) => {
            say!("{}", serde_json::to_string_pretty(&payload(&token)?)?)?;
            Ok(())
        }
        Err(err) => Err(Refused(reason(err)).into()),
    }
}

fn reason(err: TokenError) -> String {
    match err {
        TokenError::Invalid(why) => why.to_string(),
        TokenError::Expired => "expired".into(),
        other => other.to_string(),
    }
}

/// The verified token's claims, as sent.
fn payload(token: &str) -> anyhow::Result<serde_json::Value> {
    let part = token
        .trim()
        .split('.')
        .nth(1)
        .context("token has no payload")?;
    let bytes = URL_SAFE_NO_PAD.decode(part)?;
    Ok(serde_json::from_slice(&bytes)?)
}

async fn read_jwks(source: &str) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let response = client
            .get(source)
            .send()
            .await
            .with_context(|| format!("fetching {source}"))?;
        if !response.status().is_success() {
            bail!("fetching {source}: HTTP {}", response.status());
        }
        return response
            .text()
            .await
            .with_context(|| format!("reading {source}"));
    }
    std::fs::read_to_string(source).with_context(|| format!("reading {source}"))
}
