//! The pattern memory engine: spaces of neurons whose dendritic segments learn unions of sparse
//! patterns, and recognition that reports the theory's error probabilities with every answer.
//!
//! Pure and in-process: no HTTP, no SQL, no async. The service wraps a [`Space`] in a lock
//! ([`SpaceLock`]: queries share it, a write holds it alone, so a query sees a pattern wholly or
//! not at all) and makes each write durable between [`Space::plan_store`] and
//! [`Space::apply_store`].
//!
//! - `pattern`: validated names and patterns; `metadata`: the JSON object a pattern may carry.
//! - `params`: a space's parameters, their defaults and the theory's summary of them.
//! - `space`: [`Space`], its neurons and segments; planning, applying, reports and recognition.
//! - `index`: the inverted index from input bit to segments, in two layouts, and the counting
//!   kernels of the dense one ([`Kernel`]), chosen at run time.
//! - `registry`: spaces behind their locks, by name.
//! - [`oracle`]: the obviously correct recogniser the index is tested against.
//! - [`encoder`]: records (numbers, times, categories, vectors, text) into codes.
//!
//! The modules are private; what callers use is re-exported here.

pub mod encoder;
mod error;
mod index;
mod metadata;
pub mod oracle;
mod params;
mod pattern;
mod registry;
mod space;

pub use error::EngineError;
pub use index::Kernel;
pub use metadata::{MAX_METADATA_BYTES, Metadata, MetadataError};
pub use params::{MAX_SEGMENTS_LIMIT, SpaceParams, SpaceSpec, SpaceTheory};
pub use pattern::{CellIndex, Name, NameError, Pattern, PatternError};
pub use registry::{SharedSpace, SpaceLock, SpaceSet, SpaceSetError, Spaces};
pub use space::{
    Calibration, CalibrationLine, Calibrator, Counts, DEFAULT_LIMIT, FillReport, Match, MemoryUse,
    NeuronReport, NeuronSummary, NoiseMiss, PatternView, Planned, Planner, Query, Recognition,
    SegmentReport, Space, SpaceReport, StorePlan, StoreRequest,
};

/// A small space for the unit tests of the layers above the engine: 64 input bits, 8 active,
/// threshold 4, any false-match rate allowed.
#[cfg(test)]
pub(crate) fn tiny_space(name: &str) -> Space {
    space_for_tests(
        name,
        SpaceSpec {
            input_size: 64,
            active_bits: 8,
            threshold: Some(4),
            max_false_match: Some(1.0),
            ..SpaceSpec::default()
        },
    )
}

/// An empty space with these parameters, for unit tests.
#[cfg(test)]
pub(crate) fn space_for_tests(name: &str, spec: SpaceSpec) -> Space {
    let params = SpaceParams::new(&spec).expect("valid parameters");
    Space::new(Name::parse(name).expect("a valid name"), params)
}
