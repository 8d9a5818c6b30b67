//! `jwtd users …`.

use std::io::Read;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::clock::{Clock, SystemClock, format_rfc3339};
use crate::store::Store;
use crate::users::{HashCost, Password, PasswordHasher, check_username};

/// User management.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (prompts for the password unless --password-stdin).
    Add {
        /// Username.
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
        /// Username.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Username.
        name: String,
    },
    /// Blacklist every outstanding refresh and sliding token of a user.
    LogoutAll {
        /// Username.
        name: String,
    },
    /// Change a user's password.
    SetPassword {
        /// Username.
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
            check_username(&name)?;
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
            println!(
                "added user {} (id {}{})",
                user.username,
                user.id,
                if inactive { ", inactive" } else { "" }
            );
        }
        UsersCommand::List => list(store).await?,
        UsersCommand::Disable { name } => {
            store.set_user_active(&name, false).await?;
            println!("disabled user {name}");
        }
        UsersCommand::Enable { name } => {
            store.set_user_active(&name, true).await?;
            println!("enabled user {name}");
        }
        UsersCommand::LogoutAll { name } => {
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
            println!("blacklisted {count} outstanding token(s) of {name}");
        }
        UsersCommand::SetPassword {
            name,
            password_stdin,
        } => {
            if store.user_by_name(&name).await?.is_none() {
                bail!("no user named `{name}`");
            }
            let password = read_password(password_stdin)?;
            let hash = PasswordHasher::with_cost(cost)
                .await
                .hash(&password)
                .await
                .context("hashing the password")?;
            store.set_password_hash(&name, &hash).await?;
            println!("changed the password of {name}");
        }
    }
    Ok(())
}

async fn list(store: &Store) -> anyhow::Result<()> {
    println!(
        "{:>6}  {:<24} {:<8} {:<20}  last login",
        "id", "username", "active", "joined"
    );
    for user in store.list_users().await? {
        println!(
            "{:>6}  {:<24} {:<8} {:<20}  {}",
            user.id,
            user.username,
            if user.is_active { "yes" } else { "no" },
            format_rfc3339(user.date_joined),
            user.last_login
                .map_or_else(|| "never".to_owned(), format_rfc3339),
        );
    }
    Ok(())
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
