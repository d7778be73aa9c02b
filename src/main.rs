#![forbid(unsafe_code)]
//! The `dendrite` binary: parse the command line and run the subcommand. Everything else lives in
//! the library, so tests and helper binaries can call it.

use dendrite::cli::{self, Command};
use std::process::ExitCode;

/// mimalloc rather than the system allocator: the service allocates on one thread and frees on
/// another all day (request bodies, answers, start-up's decoded rows), where glibc's allocator
/// spends its time consolidating and locking.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    dendrite::host::limit_huge_pages();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Some(Command::Theory(args)) => cli::run_theory(&args),
        Some(Command::Bench(args)) => cli::run_bench(&args),
        Some(Command::Serve(args)) => cli::run_serve(&args),
        Some(Command::Restore(args)) => cli::run_restore(&args),
        Some(Command::Export(args)) => cli::run_export(&args),
        Some(Command::Import(args)) => cli::run_import(&args),
        Some(Command::Encode(args)) => cli::run_encode(&args),
        None => cli::run_serve(&cli::default_serve_args()),
    }
}
