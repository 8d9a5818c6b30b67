//! `jwtd users …`.

use std::io::Read;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::clock::{Clock, SystemClock, format_rfc3339};
use crate::config::HashCost;
use crate::store::Store;
use crate::users::{ForLog, Password, PasswordHasher, normalize_username};

/// User management.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (prompts for the password unless --password-stdin).
    Add {
        /// Username (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Read the password from standard input (one trailing newline is stripped).
        #[arg(long)]
        password_stdin: bool,
        /// Create the user disabled.
        #[arg(long)]
        inactive: bool,
    },
    /// List users.
    List,
    /// Disable a user: no login, no refresh.
    Disable {
        /// Username (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Username (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Blacklist every outstanding refresh and sliding token of a user.
    LogoutAll {
        /// Username (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Change a user's password.
    SetPassword {
        /// Username (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Read the password from standard input (one trailing newline is stripped).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs a users subcommand.
pub async fn run(command: UsersCommand, store: &Store, cost: HashCost) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add {
            name,
            password_stdin,
            inactive,
        } => {
            let name = normalize_username(&name)?;
            if store.user_by_name(&name).await?.is_some() {
                bail!("user `{name}` already exists");
            }
            let password = read_password(password_stdin)?;
            let hash = PasswordHasher::with_cost(cost)
                .await
                .hash(&password)
                .await
                .context("hashing the password")?;
            let user = store
                .add_user(&name, &hash, !inactive, SystemClock.now())
                .await?;
            say!(
                "added user {} (id {}{})",
                user.username,
                user.id,
                if inactive { ", inactive" } else { "" }
            )?;
        }
        UsersCommand::List => list(store).await?,
        UsersCommand::Disable { name } => {
            let name = stored_name(store, name).await?;
            let ended = store
                .set_user_active(&name, false, SystemClock.now())
                .await?;
            tracing::info!(event = "user_disabled", username = ?ForLog(&name), tokens = ended);
            say!("disabled user {name}; blacklisted {ended} outstanding token(s)")?;
        }
        UsersCommand::Enable { name } => {
            let name = stored_name(store, name).await?;
            store
                .set_user_active(&name, true, SystemClock.now())
                .await?;
            say!("enabled user {name}")?;
        }
        UsersCommand::LogoutAll { name } => {
            let name = stored_name(store, name).await?;
            let user = store
                .user_by_name(&name)
                .await?
                .with_context(|| format!("no user named `{name}`"))?;
            let count = store.logout_all(user.id, SystemClock.now()).await?;
            tracing::info!(
                event = "logout_all",
                user_id = user.id,
                tokens = count,
                via = "cli"
            );
            say!("blacklisted {count} outstanding token(s) of {name}")?;
        }
        UsersCommand::SetPassword {
            name,
            password_stdin,
        } => {
            let name = stored_name(store, name).await?;
            if store.user_by_name(&name).await?.is_none() {
                bail!("no user named `{name}`");
            }
            let password = read_password(password_stdin)?;
            let hash = PasswordHasher::with_cost(cost)
                .await
                .hash(&password)
                .await
                .context("hashing the password")?;
            let ended = store
                .set_password_hash(&name, &hash, SystemClock.now())
                .await?;
            tracing::info!(event = "password_changed", username = ?ForLog(&name), tokens = ended);
            say!("changed the password of {name}; blacklisted {ended} outstanding token(s)")?;
        }
    }
    Ok(())
}

async fn list(store: &Store) -> anyhow::Result<()> {
    say!(
        "{:>6}  {:<24} {:<8} {:<20}  last login",
        "id",
        "username",
        "active",
        "joined"
    )?;
    for user in store.list_users().await? {
        say!(
            "{:>6}  {:<24} {:<8} {:<20}  {}",
            user.id,
            user.username,
            if user.is_active { "yes" } else { "no" },
            format_rfc3339(user.date_joined),
            user.last_login
                .map_or_else(|| "never".to_owned(), format_rfc3339),
        )?;
    }
    Ok(())
}

/// The name a user is stored under: the NFKC form of `name` when a user
/// has it, else `name` as typed, so that a user added before names were
/// normalised can still be managed.
async fn stored_name(store: &Store, name: String) -> anyhow::Result<String> {
    if let Ok(normalized) = normalize_username(&name)
        && store.user_by_name(&normalized).await?.is_some()
    {
        return Ok(normalized);
    }
    Ok(name)
}

/// Reads a password from standard input or, on a terminal, a prompt.
fn read_password(from_stdin: bool) -> anyhow::Result<Password> {
    let text = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        strip_one_newline(text)
    } else {
        let first = rpassword::prompt_password("Password: ")
            .context("cannot prompt for a password (no terminal?); use --password-stdin")?;
        let second = rpassword::prompt_password("Password (again): ")
            .context("cannot prompt for a password (no terminal?); use --password-stdin")?;
        if first != second {
            bail!("the passwords do not match");
        }
        first
    };
    if text.is_empty() {
        bail!("the password is empty");
    }
    Ok(Password::new(text))
}

fn strip_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}
