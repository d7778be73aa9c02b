//! The command line: `dendrite serve` (the default) runs the service, `dendrite theory` prints the
//! what-if analysis, `dendrite bench` measures the engine on this machine, `dendrite restore`
//! puts a backup in place, `dendrite export` / `import` move data between databases, and
//! `dendrite encode` makes a space's codes offline.
//!
//! Parsing stops at the edge: flags become an [`analysis::Request`], and every consistency rule
//! lives there, shared with the HTTP endpoint. Errors are one line on stderr and exit status 2.

use crate::analysis::{self, Analysis};
use crate::bench;
use crate::config::ServeArgs;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "dendrite",
    version,
    about = "A pattern memory service: neurons whose dendritic segments learn unions of sparse patterns, with the theory's error probabilities on every answer."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Print every quantity of the theory (Ahmad & Hawkins 2016) for one set of parameters, as JSON.
    Theory(analysis::Request),
    /// Run the engine on the standard workload (or a larger or given one) in-process and print
    /// its speed and memory as one JSON object: to size hardware.
    Bench(bench::BenchArgs),
    /// Copy a backup into place as the database (checked first; the service must be stopped).
    Restore(crate::config::RestoreArgs),
    /// Write every space, neuron and pattern of the database as NDJSON on stdout (one consistent
    /// snapshot; a service may keep running on it).
    Export(crate::config::TransferArgs),
    /// Read an export's NDJSON from stdin into the database (created if new): idempotent, in
    /// batches, with a progress line on stderr.
    Import(crate::config::TransferArgs),
    /// Encode records offline: a space's parameters (as `PUT /v1/spaces/{space}` takes them,
    /// with an encoder) from a file, records as NDJSON on stdin, one code per line on stdout,
    /// identical to the service's `/encode`.
    Encode(EncodeArgs),
}

/// `dendrite encode`'s settings.
#[derive(Clone, Debug, clap::Args)]
pub struct EncodeArgs {
    /// A JSON file holding the space's parameters, encoder included.
    #[arg(long)]
    pub spec: std::path::PathBuf,
}

/// Runs `dendrite encode`: a code per record on stdout; a bad spec or record is one line on
/// stderr naming it (and its line) and status 1, after the codes of the lines before it.
pub fn run_encode(args: &EncodeArgs) -> ExitCode {
    match encode_lines(args, std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Encodes each non-blank line of `records` (a JSON object) with the spec's encoder, writing
/// `{"active": [...], "fields": {...}}` per line; answers how many it wrote.
fn encode_lines(
    args: &EncodeArgs,
    records: impl std::io::BufRead,
    mut codes: impl std::io::Write,
) -> anyhow::Result<u64> {
    use anyhow::Context;
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read the spec file {}", args.spec.display()))?;
    let spec: crate::engine::SpaceSpec = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a space's parameters", args.spec.display()))?;
    let params = crate::engine::SpaceParams::new(&spec)
        .with_context(|| format!("{} holds invalid parameters", args.spec.display()))?;
    let encoder = params
        .encoder
        .with_context(|| format!("{} has no encoder", args.spec.display()))?;
    let mut written = 0;
    for (number, line) in records.lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("line {}", number + 1);
        let record: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{}: not JSON", at()))?;
        let code = encoder.encode(&record).with_context(at)?;
        let answer = serde_json::json!({
            "active": code.active,
            "fields": encoder.named_fields(code.fields),
        });
        writeln!(codes, "{answer}").context("cannot write stdout")?;
        written += 1;
    }
    codes.flush().context("cannot write stdout")?;
    Ok(written)
}

/// Runs `dendrite theory`: the analysis as one JSON line on stdout, or a one-line error and 2.
pub fn run_theory(request: &analysis::Request) -> ExitCode {
    match request.parameters().and_then(|p| Analysis::of(&p)) {
        Ok(analysis) => {
            println!(
                "{}",
                serde_json::to_string(&analysis).expect("an analysis always serialises")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: invalid parameter {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs `dendrite bench`: one JSON line on stdout, or a one-line error and 1.
pub fn run_bench(args: &bench::BenchArgs) -> ExitCode {
    if let Some(dir) = &args.write_workload {
        return match bench::write_workload(dir, args) {
            Ok((stores, queries)) => {
                println!(
                    "{}",
                    serde_json::json!({"wrote": dir, "stores": stores, "queries": queries})
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    match bench::run(args) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).expect("a report always serialises")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `dendrite restore`: what was restored on stdout, or a one-line error and 1.
pub fn run_restore(args: &crate::config::RestoreArgs) -> ExitCode {
    let Some(database) = crate::store::sqlite::file_of(&args.database_url) else {
        eprintln!(
            "error: restore copies a backup into a SQLite database file, and DENDRITE_DATABASE_URL (--database-url) {:?} names none; on PostgreSQL use its own tools",
            args.database_url
        );
        return ExitCode::FAILURE;
    };
    match crate::store::sqlite::restore::restore(&args.backup, &database, args.force) {
        Ok(restored) => {
            println!(
                "restored {} to {}: {} patterns, last write {}",
                args.backup.display(),
                database.display(),
                restored.patterns,
                restored.last_write
            );
            if let Some(kept) = restored.replaced {
                println!("the database it replaced is kept as {}", kept.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `dendrite export`: the lines on stdout, a summary on stderr, or a one-line error and 1.
pub fn run_export(args: &crate::config::TransferArgs) -> ExitCode {
    let exported = run_async(crate::store::transfer::export(
        &args.database_url,
        std::io::stdout().lock(),
    ));
    report_transfer("exported", exported)
}

/// Runs `dendrite import`: a summary on stdout, or a one-line error naming the line and 1.
pub fn run_import(args: &crate::config::TransferArgs) -> ExitCode {
    let imported = run_async(crate::store::transfer::import(
        &args.database_url,
        std::io::stdin().lock(),
    ));
    report_transfer("imported", imported)
}

fn run_async<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

fn report_transfer(
    done: &str,
    outcome: anyhow::Result<crate::store::transfer::Transferred>,
) -> ExitCode {
    match outcome {
        Ok(counts) => {
            // Export's stdout is the data, so its summary goes to stderr.
            let summary = format!(
                "{done} {} spaces, {} neurons, {} patterns",
                counts.spaces, counts.neurons, counts.patterns
            );
            if done == "exported" {
                eprintln!("{summary}");
            } else {
                let lines = counts.spaces + counts.neurons + counts.patterns;
                println!(
                    "{summary}: {} new, {} already held as the lines say",
                    lines - counts.already_held,
                    counts.already_held
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line; usage errors print clap's message (what is wrong, the usage, a
/// suggestion for a mistyped flag) on stderr and exit with status 2.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|error| {
        use clap::error::ErrorKind;
        let asked_for_text = matches!(
            error.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        // clap's whole message: what is wrong, the usage line, and its suggestion for a
        // mistyped flag (help and version go to stdout, errors to stderr).
        let _ = error.print();
        if asked_for_text {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        }
    })
}

/// `dendrite` with no subcommand: serve, with settings from the environment and defaults.
#[derive(Debug, Parser)]
struct DefaultServe {
    #[command(flatten)]
    args: ServeArgs,
}

/// The serve settings when no subcommand was given.
pub fn default_serve_args() -> ServeArgs {
    DefaultServe::parse_from(["dendrite"]).args
}

/// Runs the service; a failure to start is one line on stderr and status 1.
pub fn run_serve(args: &ServeArgs) -> ExitCode {
    match crate::app::serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
