//! The command line: `dendrite serve` (the default) runs the service, `dendrite theory` prints the
//! what-if analysis.
//!
//! Parsing stops at the edge: flags become an [`analysis::Parameters`], and every consistency rule
//! lives there, shared with the HTTP endpoint. Errors are one line on stderr and exit status 2.

use crate::analysis::{self, Analysis};
use crate::config::ServeArgs;
use clap::{Args, Parser, Subcommand};
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
    Serve(ServeArgs),
    /// Print every quantity of the theory (Ahmad & Hawkins 2016) for one set of parameters, as JSON.
    Theory(TheoryArgs),
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct TheoryArgs {
    /// n: bits in the input space.
    #[arg(long)]
    pub n: u64,
    /// a: active bits of an input (of a pattern and of a random query).
    #[arg(long)]
    pub a: u64,
    /// s: synapses a segment samples from one pattern (min(s, a) when a pattern has fewer bits).
    #[arg(long)]
    pub s: u64,
    /// theta: the threshold; a segment matches when at least theta of its synapses are active.
    #[arg(long)]
    pub theta: u64,
    /// M: patterns stored on one segment (its synapses are the union of theirs).
    #[arg(long, default_value_t = 1)]
    pub patterns: u64,
    /// K: segments on one neuron.
    #[arg(long, default_value_t = 1)]
    pub segments: u64,
    /// v: active bits of a stored pattern replaced by other bits, for the miss probability.
    #[arg(long, conflicts_with = "noise")]
    pub noise_bits: Option<u64>,
    /// v / a: the noise as a fraction of the active bits; v = round(F * a), halves up.
    #[arg(long)]
    pub noise: Option<f64>,
    /// The highest acceptable false-match probability; adds the capacity and threshold advice.
    #[arg(long)]
    pub target: Option<f64>,
}

impl TheoryArgs {
    /// The analysis parameters, with the noise fraction turned into a number of bits.
    pub fn parameters(&self) -> Result<analysis::Parameters, analysis::InvalidParameter> {
        let noise_bits = match (self.noise_bits, self.noise) {
            (Some(bits), _) => bits,
            (None, Some(fraction)) => {
                if !(0.0..=1.0).contains(&fraction) {
                    return Err(analysis::InvalidParameter {
                        name: "noise",
                        reason: format!("{fraction} is not a fraction in [0, 1]"),
                    });
                }
                (fraction * self.a as f64 + 0.5).floor() as u64
            }
            (None, None) => 0,
        };
        Ok(analysis::Parameters {
            n: self.n,
            a: self.a,
            s: self.s,
            theta: self.theta,
            patterns: self.patterns,
            segments: self.segments,
            noise_bits,
            target: self.target,
        })
    }
}

/// Runs `dendrite theory`: the analysis as one JSON line on stdout, or a one-line error and 2.
pub fn run_theory(args: &TheoryArgs) -> ExitCode {
    match args.parameters().and_then(|p| Analysis::of(&p)) {
        Ok(analysis) => {
            println!(
                "{}",
                serde_json::to_string(&analysis).expect("an analysis always serialises")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Parses the command line; usage errors print one line on stderr and exit with status 2.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|error| {
        use clap::error::ErrorKind;
        let asked_for_text = matches!(
            error.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        if asked_for_text {
            let _ = error.print();
            ExitCode::SUCCESS
        } else {
            let rendered = error.render().to_string();
            eprintln!(
                "{}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments")
            );
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
