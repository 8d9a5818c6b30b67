//! The `jwtd` binary: parse the command line, run it, report errors on one line.

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
        Err(err) => {
            let message = err.to_string();
            let first_line = message.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "jwtd: {} (see jwtd --help)",
                first_line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let default_level = match cli.command {
        jwtd::cli::Command::Serve => "info,sqlx=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
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
