//! The writer's handle: what handlers call. Each call becomes a [`Command`] on a bounded channel
//! to the writer's thread (a full channel is an immediate "busy", never an unbounded queue), and
//! its answer comes back on a oneshot channel.

use super::command::{Command, QUEUE_CAPACITY, Reply, StoreCommand, Stored, Written};
use super::error::WriteError;
use super::progress::{Progress, WriteStats};
use super::task::WriterTask;
use crate::engine::{Name, Space, SpaceReport, Spaces, StoreRequest};
use crate::store::fault::Health;
use crate::store::{Database, WriteStore};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The handle callers use; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    pub(super) commands: mpsc::Sender<Command>,
    stats: Arc<WriteStats>,
    health: Arc<Health>,
    progress: Arc<Progress>,
    memory_limit: Option<u64>,
}

/// The running writer thread, to stop at shutdown.
#[derive(Debug)]
pub struct WriterThread {
    stop: Option<oneshot::Sender<()>>,
    stopped: oneshot::Receiver<()>,
}

impl WriterThread {
    /// Stops taking commands, finishes the ones already queued, closes the connection and waits
    /// for the thread to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.stopped.await;
    }
}

impl Writer {
    /// Starts the writer of `db` on a thread of its own (with its own single-threaded runtime).
    /// `applied` is the sequence the engine in `spaces` was loaded at.
    ///
    /// `memory_limit`, when set, is the most bytes the engine may hold (by
    /// [`Space::estimated_bytes`]): a store that would pass it is refused before it is committed.
    pub fn spawn(
        db: &Database,
        spaces: Arc<Spaces>,
        health: Arc<Health>,
        memory_limit: Option<u64>,
        applied: u64,
    ) -> std::io::Result<(Writer, WriterThread)> {
        match db {
            Database::Sqlite(db) => {
                Writer::spawn_on(db.writes(), spaces, health, memory_limit, applied)
            }
            Database::Postgres(db) => {
                Writer::spawn_on(db.writes(), spaces, health, memory_limit, applied)
            }
        }
    }

    fn spawn_on(
        store: impl WriteStore,
        spaces: Arc<Spaces>,
        health: Arc<Health>,
        memory_limit: Option<u64>,
        applied: u64,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriteStats::default());
        let progress = Arc::new(Progress::new(applied, store.follows_others()));
        let (stop, stop_signal) = oneshot::channel();
        let (stopped_signal, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let task = WriterTask::new(
            store,
            spaces,
            Arc::clone(&stats),
            Arc::clone(&health),
            Arc::clone(&progress),
            applied,
            memory_limit,
        );
        std::thread::Builder::new()
            .name("dendrite-writer".into())
            .spawn(move || {
                runtime.block_on(task.run(queue, stop_signal));
                let _ = stopped_signal.send(());
            })?;
        Ok((
            Writer {
                commands,
                stats,
                health,
                progress,
                memory_limit,
            },
            WriterThread {
                stop: Some(stop),
                stopped,
            },
        ))
    }

    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    /// How far this replica has followed the database.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The same progress, shared: for a holder that must not keep the writer's channel (one
    /// clone per request of a sender costs more than a reference count).
    pub fn shared_progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Commands waiting in the writer's queue.
    pub fn queue_depth(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    /// The engine's memory limit in bytes, if one is set.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Applies every change committed so far (by any replica); returns the sequence reached.
    pub async fn catch_up(&self) -> Result<u64, WriteError> {
        self.call(|reply| Command::CatchUp { reply })
            .await
            .map(|written| written.sequence)
    }

    /// Creates a space built by the caller (its theory is computed off the writer): `(report,
    /// true)` when new, `(report, false)` when it exists with the same parameters.
    pub async fn create_space(
        &self,
        space: Space,
    ) -> Result<Written<(SpaceReport, bool)>, WriteError> {
        self.call(|reply| Command::CreateSpace {
            space: Box::new(space),
            reply,
        })
        .await
    }

    pub async fn delete_space(&self, name: Name) -> Result<Written<()>, WriteError> {
        self.call(|reply| Command::DeleteSpace { name, reply })
            .await
    }

    /// Stores patterns, all or none, answering each with its stored pattern.
    pub async fn store(
        &self,
        space: Name,
        requests: Vec<StoreRequest>,
    ) -> Result<Written<Vec<Stored>>, WriteError> {
        self.call(|reply| {
            Command::Store(StoreCommand {
                space,
                requests,
                reply,
            })
        })
        .await
    }

    pub async fn forget(
        &self,
        space: Name,
        neuron: Name,
        id: Name,
    ) -> Result<Written<()>, WriteError> {
        self.call(|reply| Command::Forget {
            space,
            neuron,
            id,
            reply,
        })
        .await
    }

    pub async fn delete_neuron(
        &self,
        space: Name,
        neuron: Name,
    ) -> Result<Written<()>, WriteError> {
        self.call(|reply| Command::DeleteNeuron {
            space,
            neuron,
            reply,
        })
        .await
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Written<T>, WriteError> {
        let (reply, answer) = oneshot::channel();
        let closed = || match self.health.writer_failure() {
            Some(why) => WriteError::WriterFailed(why),
            None => WriteError::Closed,
        };
        self.commands
            .try_send(command(reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::Busy,
                mpsc::error::TrySendError::Closed(_) => closed(),
            })?;
        answer.await.map_err(|_| closed())?
    }
}
