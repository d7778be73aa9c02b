//! Why a write was refused, in one type the HTTP layer maps to a status, variant by variant.

use crate::engine::{EngineError, Name, SpaceSet};
use crate::store::fault::StorageError;

/// What a replica says of a space it does not serve (`--spaces`): the same words for a read, a
/// write and a creation.
pub fn not_served_message(space: &Name, served: &SpaceSet) -> String {
    format!(
        "space {space} is not served by this replica: it serves only the spaces {served} (--spaces, DENDRITE_SPACES); send requests for it to the replicas that serve it"
    )
}

/// Why a write was refused. Nothing changed when it was.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The engine refused the request; `index` is the first bad item of a batch.
    #[error("{error}")]
    Engine { index: usize, error: EngineError },
    #[error("no space named {0}")]
    UnknownSpace(Name),
    /// The space belongs to another shard group: this replica neither holds nor creates it.
    #[error("{}", not_served_message(.0, .1))]
    NotServed(Name, SpaceSet),
    /// The space exists with other parameters: each difference, as `name is STORED, not ASKED`.
    #[error("space {0} exists with other parameters: {differences}", differences = .1.join("; "))]
    SpaceConflict(Name, Vec<String>),
    #[error("the write queue is full; retry shortly")]
    Busy,
    /// The database refused the commit; nothing was written.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// Applying the write would take the engine past its memory limit; nothing was written.
    #[error(
        "storing this would take the engine's memory past its limit of {limit} bytes ({in_use} in use, this request needs about {needed} more); forget patterns, delete neurons or spaces, or raise --memory-limit"
    )]
    MemoryFull {
        limit: u64,
        in_use: u64,
        needed: u64,
    },
    /// The write was committed as this change, but the replica had to reload from the database
    /// before it could answer (it had fallen behind the log): read the write back.
    #[error(
        "the write was committed as change {0}, but this replica reloaded before it could answer; read it back"
    )]
    Reloaded(u64),
    /// The writer stopped after an internal error; writes need a restart.
    #[error("the writer stopped after an internal error: {0}")]
    WriterFailed(String),
    #[error("the service is shutting down")]
    Closed,
}

impl WriteError {
    /// The position of the request's item at fault, when one is.
    pub fn item(&self) -> Option<usize> {
        match self {
            WriteError::Engine { index, .. } => Some(*index),
            WriteError::UnknownSpace(_)
            | WriteError::NotServed(..)
            | WriteError::SpaceConflict(..)
            | WriteError::Busy
            | WriteError::Storage(_)
            | WriteError::MemoryFull { .. }
            | WriteError::Reloaded(_)
            | WriteError::WriterFailed(_)
            | WriteError::Closed => None,
        }
    }
}
