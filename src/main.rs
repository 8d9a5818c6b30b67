//! The `jwtd` binary: parse the command line, run it, report errors on one line.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    // Password hashing runs on the blocking pool, one per core at a time;
    // a pool no larger than that is all it needs.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores.max(2))
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(err) => {
            eprintln!("jwtd: error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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
    match jwtd::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err)
            if err
                .chain()
                .any(|cause| cause.is::<jwtd::cli::OutputClosed>()) =>
        {
            ExitCode::SUCCESS
        }
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

/// argon2 allocates its memory cost (12 MiB by default) per new hash, and
/// the login work areas are as large. glibc's adaptive threshold soon
/// serves such blocks from its heap, which fragments and keeps growing
/// under a login flood (0.5 GB after 256 logins here). A fixed 1 MiB
/// threshold makes them mmap'd and returned to the system on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_allocations_to_the_system() {
    const M_MMAP_THRESHOLD: i32 = -3;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations_to_the_system() {}
