//! Why the engine refuses an operation: the one error type of the engine's operations.

use super::pattern::{Name, PatternError};

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
        "neuron {neuron} already has a pattern {id} with other metadata: a pattern's metadata is set when it is first stored"
    )]
    MetadataConflict { neuron: Name, id: Name },
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
    /// A plan read back from storage or a change log breaks a rule every plan keeps: the rows no
    /// longer describe a state this space could have learned.
    #[error("stored pattern {id} of neuron {neuron} cannot be applied: {reason}")]
    InvalidPlan {
        neuron: Name,
        id: Name,
        reason: String,
    },
    /// The pattern does not fit the space it would be stored in.
    #[error("{0}")]
    InvalidPattern(#[from] PatternError),
}
