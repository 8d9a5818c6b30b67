//! The `jwtd` binary: parse the command line, run it, report errors on one line.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match jwtd::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err)
            if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            eprintln!("jwtd: a command is required (see jwtd --help)");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!(
                "jwtd: {} (see jwtd --help)",
                one_line_usage_error(&err.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let default_level = match cli.command {
        jwtd::cli::Command::Serve => "info,sqlx=warn",
        // Audit events (key_created, logout_all…) are info: keep them.
        _ => "warn,jwtd=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match jwtd::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = format!("{err:#}").replace('\n', " ");
            eprintln!("jwtd: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message up to its usage block, on one line.
fn one_line_usage_error(message: &str) -> String {
    message
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}
