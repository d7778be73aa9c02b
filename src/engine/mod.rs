//! The pattern memory engine: spaces of neurons whose dendritic segments learn unions of sparse
//! patterns, and recognition that reports the theory's error probabilities with every answer.
//!
//! Pure and in-process: no HTTP, no SQL, no async. The service wraps a [`Space`] in a lock
//! (queries share it, a write holds it alone, so a query sees a pattern wholly or not at all) and
//! makes each write durable between [`Space::plan_store`] and [`Space::apply_store`].
//!
//! - [`pattern`]: validated names and patterns.
//! - [`params`]: a space's parameters and their defaults.
//! - [`space`]: neurons, segments, learning and forgetting.
//! - [`index`]: the inverted index from input bit to segments ([`dense`]: its bit-sliced layout).
//! - [`recognition`]: matching an input, with p-values and false-match probabilities.
//! - [`plain`]: the obviously correct recogniser the index is tested against.
//! - [`report`]: neuron and space reports.

pub mod dense;
pub mod index;
pub mod params;
pub mod pattern;
pub mod plain;
pub mod recognition;
pub mod report;
pub mod space;

pub use params::{ParamsError, SpaceParams, SpaceSpec};
pub use pattern::{CellIndex, Name, NameError, Pattern, PatternError};
pub use recognition::{DEFAULT_LIMIT, Match, Query, Recognition};
pub use report::{NeuronReport, NeuronSummary, SpaceReport};
pub use space::{MemoryUse, PatternView, Planned, Planner, Space, StorePlan, StoreRequest};

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A space shared between the queries that read it and the one writer that changes it.
pub type SharedSpace = Arc<SpaceLock>;

/// A space behind its lock, with its segment count readable without the lock: what a reader
/// needs to know, before it waits for the lock, whether its read will be cheap.
#[derive(Debug)]
pub struct SpaceLock {
    space: RwLock<Space>,
    segments: AtomicU64,
}

impl SpaceLock {
    pub fn new(space: Space) -> SpaceLock {
        SpaceLock {
            segments: AtomicU64::new(space.segment_count()),
            space: RwLock::new(space),
        }
    }

    /// The space's segments as of its last change.
    pub fn segment_count(&self) -> u64 {
        self.segments.load(Ordering::Relaxed)
    }

    /// Changes the space under its write lock, then publishes its new segment count.
    pub fn update<T>(&self, change: impl FnOnce(&mut Space) -> T) -> T {
        let mut space = self.space.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = change(&mut space);
        self.segments
            .store(space.segment_count(), Ordering::Relaxed);
        outcome
    }
}

/// Reading goes through the lock as usual; [`SpaceLock::update`] is the way to write.
impl Deref for SpaceLock {
    type Target = RwLock<Space>;

    fn deref(&self) -> &RwLock<Space> {
        &self.space
    }
}

/// Every space, by name.
///
/// Locks are taken through `PoisonError::into_inner`: a panic in another request must not take
/// the whole service down with it, and a write applies only plans that were already checked.
#[derive(Debug, Default)]
pub struct Spaces {
    spaces: RwLock<BTreeMap<Name, SharedSpace>>,
}

impl Spaces {
    pub fn get(&self, name: &Name) -> Option<SharedSpace> {
        self.spaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub fn insert(&self, space: Space) -> SharedSpace {
        let name = space.name().clone();
        let shared = Arc::new(SpaceLock::new(space));
        self.spaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, Arc::clone(&shared));
        shared
    }

    pub fn remove(&self, name: &Name) -> Option<SharedSpace> {
        self.spaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    /// Every space, by name.
    pub fn all(&self) -> Vec<SharedSpace> {
        self.spaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// A small space for the unit tests of the layers above the engine: 64 input bits, 8 active,
/// threshold 4, any false-match rate allowed.
#[cfg(test)]
pub(crate) fn tiny_space(name: &str) -> Space {
    let params = SpaceParams::new(&SpaceSpec {
        input_size: 64,
        active_bits: 8,
        threshold: Some(4),
        max_false_match: Some(1.0),
        ..SpaceSpec::default()
    })
    .expect("valid parameters");
    Space::new(Name::parse(name).expect("a valid name"), params)
}

/// Why the engine refused an operation. Nothing changed when it did.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("no neuron named {0}")]
    UnknownNeuron(Name),
    #[error("neuron {neuron} has no pattern {id}")]
    UnknownPattern { neuron: Name, id: Name },
    #[error("neuron {neuron} already has a pattern {id} with other active bits")]
    IdConflict { neuron: Name, id: Name },
    #[error(
        "neuron {neuron} is full: it has {segments} segments, the space's max_segments_per_neuron"
    )]
    NeuronFull { neuron: Name, segments: u32 },
    #[error(
        "the pattern has {active} active bits, fewer than the threshold {threshold}: it could never be recognised"
    )]
    TooFewActiveBits { active: usize, threshold: u32 },
    #[error("the threshold must be at least 1, not {0}")]
    InvalidThreshold(u32),
    /// The pattern does not fit the space it would be stored in.
    #[error("{0}")]
    InvalidPattern(#[from] PatternError),
}
