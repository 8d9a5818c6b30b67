//! The `jwtd` command line (SPEC §6). Every command loads the same
//! configuration as `serve`.

/// `println!` that returns [`OutputClosed`] instead of panicking when
/// standard output is closed (`jwtd users list | head -1`).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

mod keys;
mod token;
mod users;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, LogFormat};
use crate::server::Issuer;
use crate::store::{Location, Store, redacted};

/// jwtd: a JSON Web Token issuer.
#[derive(Debug, Parser)]
#[command(name = "jwtd", version, about)]
pub struct Cli {
    /// TOML configuration file (default: $JWTD_CONFIG, if set).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer (migrates the database and creates keys first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    Users {
        /// What to do with users.
        #[command(subcommand)]
        action: users::UsersCommand,
    },
    /// Inspect, rotate, revoke and export signing keys.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        action: keys::KeysCommand,
    },
    /// Delete expired outstanding and blacklisted tokens.
    FlushExpired,
    /// Work with tokens offline.
    Token {
        /// What to do with a token.
        #[command(subcommand)]
        action: token::TokenCommand,
    },
    /// Copy this SQLite deployment (users, sealed keys, tokens, families)
    /// into an empty PostgreSQL database.
    CopyStore {
        /// The PostgreSQL database to copy into (`postgres://…`).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Print a shell completion script (needs no configuration).
    Completions {
        /// The shell to complete in.
        shell: CompletionShell,
    },
    /// Write the manual pages, jwtd(1) and one per subcommand, into a
    /// directory (needs no configuration).
    Man {
        /// Where the `.1` files go (created if missing), such as
        /// `/usr/local/share/man/man1`.
        dir: PathBuf,
    },
}

/// The shells `jwtd completions` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    /// bash (`source <(jwtd completions bash)`).
    Bash,
    /// zsh (a `_jwtd` file on `$fpath`).
    Zsh,
    /// fish (`~/.config/fish/completions/jwtd.fish`).
    Fish,
}

/// Standard output was closed before the command finished writing: the
/// reader has all it wanted, so the command ends quietly.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed")]
pub struct OutputClosed;

/// Writes one line to standard output.
fn write_line(line: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        other => other.context("writing to standard output"),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Man { dir } => return man_pages(&dir),
        _ => {}
    }
    let config = Config::load(cli.config.as_deref())?;
    start_logging(&cli.command, config.log_format);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Token { action } => token::run(action, &config).await,
        Command::CopyStore { to } => copy_store(&config, &to).await,
        command => {
            let store = Store::open(&config.database_url).await?;
            let result = run_on_store(command, &store, &config).await;
            // Closing checkpoints the WAL, so no -wal/-shm files are left.
            store.close().await;
            result
        }
    }
}

/// Sends log lines to stderr in `format`, at the level `RUST_LOG` gives or
/// else the command's own: `serve` logs at info, other commands only their
/// warnings and audit events (`key_created`, `logout_all`, … are info).
fn start_logging(command: &Command, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default_level = match command {
        Command::Serve => "info,sqlx=warn",
        _ => "warn,jwtd=info",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => lines.json().flatten_event(true).init(),
    }
}

/// The commands that work on the database.
async fn run_on_store(command: Command, store: &Store, config: &Config) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            say!("database {} is up to date", config.database_name())?;
            Ok(())
        }
        Command::Users { action } => users::run(action, store, config.password_hash).await,
        Command::Keys { action } => keys::run(action, store, config).await,
        Command::FlushExpired => {
            let count = store.flush_expired(SystemClock.now()).await?;
            say!("deleted {count} expired token record(s)")?;
            Ok(())
        }
        // Handled by `run` with a store of their own, or none.
        Command::Serve
        | Command::Token { .. }
        | Command::CopyStore { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => Ok(()),
    }
}

/// `jwtd completions SHELL`: the script clap generates from the command
/// line's own definition, so it cannot drift from it.
fn completions(shell: CompletionShell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "jwtd", &mut script);
    let mut out = io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        other => other.context("writing to standard output"),
    }
}

/// `jwtd man DIR`: pages clap renders from the command line's own
/// definition, like the completion scripts.
fn man_pages(dir: &Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir));
    written.with_context(|| format!("writing manual pages into {}", dir.display()))
}

/// `jwtd copy-store --to URL`: checks both ends before touching either,
/// reads the deployment in one snapshot, writes it in one transaction.
async fn copy_store(config: &Config, to: &str) -> anyhow::Result<()> {
    if !matches!(
        Location::parse(&config.database_url),
        Ok(Location::Sqlite(_))
    ) {
        anyhow::bail!(
            "copy-store copies a SQLite deployment, and database_url is {}",
            config.database_name()
        );
    }
    match Location::parse(to) {
        Ok(Location::Postgres(_)) => {}
        _ => anyhow::bail!(
            "--to must be a PostgreSQL URL (postgres://…), not `{}`",
            redacted(to)
        ),
    }
    let source = Store::open(&config.database_url).await?;
    let contents = source.contents().await;
    source.close().await;
    let contents = contents?;
    let target = Store::open(to).await?;
    let loaded = target.load(&contents).await;
    target.close().await;
    loaded?;
    say!(
        "copied {} from {} to {}",
        contents.summary(),
        config.database_name(),
        redacted(to)
    )
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let open_file_limit = crate::http::raise_open_file_limit()
        .inspect_err(|err| tracing::warn!(error = %err, "could not raise the open-file limit"))
        .ok();
    let shutdown = shutdown_signal()?;
    let issuer = Issuer::open(config, Arc::new(SystemClock)).await?;
    let listener = issuer.bind().await?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    match listener.metrics_addr() {
        Some(metrics) => {
            tracing::info!(%addr, %metrics, open_file_limit, "jwtd listening")
        }
        None => tracing::info!(%addr, open_file_limit, "jwtd listening"),
    }
    issuer.serve(listener, shutdown).await;
    tracing::info!("jwtd stopped");
    Ok(())
}

/// Registers for SIGINT and SIGTERM now, so a signal that arrives once
/// "listening" is logged cannot kill the process with the default action;
/// the returned future completes on the first of them.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, keys::KeysCommand, users::UsersCommand};

    #[test]
    fn a_kid_or_a_username_may_begin_with_a_hyphen() {
        let cli = Cli::try_parse_from(["jwtd", "keys", "revoke", "-4bcd_EF"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Keys { action: KeysCommand::Revoke { ref kid } } if kid == "-4bcd_EF"
        ));
        let cli = Cli::try_parse_from(["jwtd", "users", "disable", "-bob"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Users { action: UsersCommand::Disable { ref name } } if name == "-bob"
        ));
    }
}
