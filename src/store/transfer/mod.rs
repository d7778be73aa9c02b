//! Moving data: `dendrite export` writes every space, neuron and pattern of a database as NDJSON,
//! and `dendrite import` reads such lines into any database, so a user can move from the embedded
//! SQLite file to PostgreSQL when they outgrow one machine, back again, or between versions.
//!
//! A pattern's line carries the decisions learning made for it (its segment and synapses) as well
//! as its bits and metadata, and a neuron's line its counters, so an import rebuilds exactly the
//! segments the export came from: every query is answered identically, and no forgotten id is
//! handed out again. Export reads one consistent snapshot (a single read transaction) and takes
//! nothing from a service running on the database. Import commits the same [`Change`](super::Change)s the
//! service does, so replicas following a PostgreSQL database see it as it goes; it applies each
//! line to an engine of its own before committing it, so a line that breaks a space's rules is
//! refused, naming the line, before it reaches the database; and it skips what the database
//! already holds, so running it again changes nothing.

mod export;
mod import;

pub use export::{Source, export, export_from};
pub use import::import;

use super::change::StoredParams;
use crate::engine::Name;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The first line's `format`, and the version of the lines this build writes and reads.
const FORMAT: &str = "dendrite-export";
const VERSION: u32 = 1;
/// Lines committed together by import: large enough that a commit's cost is spread thin, small
/// enough that a failed line loses little work and a replica applies each change quickly.
const IMPORT_BATCH: usize = 1_000;
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One line of an export. Every line names its space, so lines can be filtered with grep or jq.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    /// Always first: what the file is, and the version of its lines.
    Header { format: String, version: u32 },
    /// A space with every parameter filled in; before its neurons and patterns.
    Space {
        space: Name,
        parameters: StoredParams,
    },
    /// A neuron and its counters; before its space's patterns.
    Neuron {
        space: Name,
        neuron: Name,
        next_pattern: u64,
        next_segment: u32,
    },
    /// A pattern with learning's decisions, in the order its space learned them.
    Pattern {
        space: Name,
        neuron: Name,
        id: Name,
        segment: u32,
        active: Vec<u32>,
        synapses: Vec<u32>,
        /// A value, not raw JSON: serde reads a tagged enum through a buffer that raw values
        /// cannot pass.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<serde_json::Value>,
    },
}

/// What an export wrote or an import read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transferred {
    pub spaces: u64,
    pub neurons: u64,
    pub patterns: u64,
    /// Import only: spaces, neurons and patterns the database already held as the lines say.
    pub already_held: u64,
}

/// A progress line on stderr every few seconds, or none (an export the service streams).
struct Progress {
    what: &'static str,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new(what: &'static str, shown: bool) -> Progress {
        Progress {
            what,
            last: Instant::now(),
            shown,
        }
    }

    fn tick(&mut self, counts: &Transferred) {
        if self.shown && self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            eprintln!(
                "{}: {} spaces, {} neurons, {} patterns so far",
                self.what, counts.spaces, counts.neurons, counts.patterns
            );
        }
    }
}
