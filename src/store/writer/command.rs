//! The messages between the writer's handle and its task: a command with the channel its
//! answer goes back on, and the answers.

use super::error::WriteError;
use crate::engine::{Name, PatternView, Space, SpaceReport, StoreRequest};
use tokio::sync::oneshot;

/// Commands waiting for the writer; beyond this, callers are told the service is busy.
pub(super) const QUEUE_CAPACITY: usize = 16_384;

/// A pattern a store answered with, and whether this store created it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub pattern: PatternView,
    pub created: bool,
}

/// A write's answer, with the sequence of the change that made it visible: a read anywhere that
/// waits for this sequence sees the write.
#[derive(Clone, Debug, PartialEq)]
pub struct Written<T> {
    pub value: T,
    pub sequence: u64,
}

pub(super) type Reply<T> = oneshot::Sender<Result<Written<T>, WriteError>>;

pub(super) enum Command {
    CreateSpace {
        space: Box<Space>,
        reply: Reply<(SpaceReport, bool)>,
    },
    DeleteSpace {
        name: Name,
        reply: Reply<()>,
    },
    Store(StoreCommand),
    Forget {
        space: Name,
        neuron: Name,
        id: Name,
        reply: Reply<()>,
    },
    DeleteNeuron {
        space: Name,
        neuron: Name,
        reply: Reply<()>,
    },
    /// Applies everything committed so far: start-up waits for it before it serves.
    CatchUp {
        reply: Reply<()>,
    },
    /// Panics inside the writer: how the tests prove that a failed writer is reported.
    #[cfg(test)]
    Crash,
}

pub(super) struct StoreCommand {
    pub(super) space: Name,
    pub(super) requests: Vec<StoreRequest>,
    pub(super) reply: Reply<Vec<Stored>>,
}
