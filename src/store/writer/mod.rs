//! The write path: one task owns every change, and commits before it applies.
//!
//! Handlers send commands over a bounded channel (a full channel is an immediate "busy", never an
//! unbounded queue) and wait for the answer. The writer drains whatever store commands are waiting,
//! plans them in order against the engine (a [`Planner`] lets each see the plans before it), so
//! every request is validated against the state it commits into, commits all their rows in one
//! transaction — one fsync for many writes: group commit — then applies the plans to the engine
//! and answers each caller. A failed commit applies nothing and answers every caller with the
//! fault; the next write starts on a fresh connection.
//!
//! The writer runs on a thread of its own. Applying a write takes the space's write lock, which
//! waits for the queries reading it; on a thread of its own that wait holds up only the writer,
//! never the async workers that answer `/healthz` and other spaces' requests. A panic while
//! handling a command is caught: the writer then refuses every later write and `/readyz` says why,
//! rather than the service answering "shutting down" forever.
//!
//! This file is the actor: the queue, group commit, and the order plan, commit, apply. The rows
//! each write touches are in `sql.rs`.

mod sql;

use super::connection::WriteConnection;
use super::health::{Health, StorageError};
use crate::engine::{
    EngineError, Name, PatternView, Planned, Planner, SharedSpace, Space, SpaceReport, Spaces,
    StorePlan, StoreRequest,
};
use futures_util::FutureExt;
use sqlx::sqlite::SqliteConnection;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the writer; beyond this, callers are told the service is busy.
const QUEUE_CAPACITY: usize = 16_384;
/// The most patterns one commit carries: bounds the latency a large group adds.
const MAX_PATTERNS_PER_COMMIT: usize = 20_000;
/// While writes are failing, how often the writer tries a probe commit when no write comes.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a write was refused. Nothing changed when it was.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The engine refused the request; `index` is the first bad item of a batch.
    #[error("{error}")]
    Engine { index: usize, error: EngineError },
    #[error("no space named {0}")]
    UnknownSpace(Name),
    #[error("space {0} exists with other parameters")]
    SpaceConflict(Name),
    #[error("the write queue is full; retry shortly")]
    Busy,
    /// The database refused the commit; nothing was written.
    #[error("{0}")]
    Storage(StorageError),
    /// Applying the write would take the engine past its memory limit; nothing was written.
    #[error(
        "storing this would take the engine's memory past its limit of {limit} bytes ({in_use} in use, this request needs about {needed} more); forget patterns, delete neurons or spaces, or raise --memory-limit"
    )]
    MemoryFull {
        limit: u64,
        in_use: u64,
        needed: u64,
    },
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
            | WriteError::SpaceConflict(_)
            | WriteError::Busy
            | WriteError::Storage(_)
            | WriteError::MemoryFull { .. }
            | WriteError::WriterFailed(_)
            | WriteError::Closed => None,
        }
    }
}

/// A pattern a store answered with, and whether this store created it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub pattern: PatternView,
    pub created: bool,
}

/// Counters of the write path, for `/v1/stats`.
#[derive(Debug, Default)]
pub struct WriteStats {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl WriteStats {
    /// (write transactions committed, writes they carried).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    fn record(&self, writes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
    }
}

type Reply<T> = oneshot::Sender<Result<T, WriteError>>;

enum Command {
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
    /// Panics inside the writer: how the tests prove that a failed writer is reported.
    #[cfg(test)]
    Crash,
}

struct StoreCommand {
    space: Name,
    requests: Vec<StoreRequest>,
    reply: Reply<Vec<Stored>>,
}

/// The handle callers use; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    commands: mpsc::Sender<Command>,
    stats: Arc<WriteStats>,
    health: Arc<Health>,
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
    /// Starts the writer on a thread of its own (with its own single-threaded runtime).
    ///
    /// `memory_limit`, when set, is the most bytes the engine may hold (by
    /// [`Space::estimated_bytes`]): a store that would pass it is refused before it is committed.
    pub fn spawn(
        connection: WriteConnection,
        spaces: Arc<Spaces>,
        health: Arc<Health>,
        memory_limit: Option<u64>,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriteStats::default());
        let (stop, stop_signal) = oneshot::channel();
        let (stopped_signal, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let task = WriterTask {
            connection,
            spaces,
            stats: Arc::clone(&stats),
            health: Arc::clone(&health),
            memory_limit,
            failed: None,
        };
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

    /// Commands waiting in the writer's queue.
    pub fn queue_depth(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    /// The engine's memory limit in bytes, if one is set.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Creates a space built by the caller (its theory is computed off the writer): `(report,
    /// true)` when new, `(report, false)` when it exists with the same parameters.
    pub async fn create_space(&self, space: Space) -> Result<(SpaceReport, bool), WriteError> {
        self.call(|reply| Command::CreateSpace {
            space: Box::new(space),
            reply,
        })
        .await
    }

    pub async fn delete_space(&self, name: Name) -> Result<(), WriteError> {
        self.call(|reply| Command::DeleteSpace { name, reply })
            .await
    }

    /// Stores patterns, all or none, answering each with its stored pattern.
    pub async fn store(
        &self,
        space: Name,
        requests: Vec<StoreRequest>,
    ) -> Result<Vec<Stored>, WriteError> {
        self.call(|reply| {
            Command::Store(StoreCommand {
                space,
                requests,
                reply,
            })
        })
        .await
    }

    pub async fn forget(&self, space: Name, neuron: Name, id: Name) -> Result<(), WriteError> {
        self.call(|reply| Command::Forget {
            space,
            neuron,
            id,
            reply,
        })
        .await
    }

    pub async fn delete_neuron(&self, space: Name, neuron: Name) -> Result<(), WriteError> {
        self.call(|reply| Command::DeleteNeuron {
            space,
            neuron,
            reply,
        })
        .await
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, WriteError> {
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

/// The writer's state: what it writes to and what it reports to.
struct WriterTask {
    connection: WriteConnection,
    spaces: Arc<Spaces>,
    stats: Arc<WriteStats>,
    health: Arc<Health>,
    memory_limit: Option<u64>,
    /// Set once a command panicked: every later command is refused with it.
    failed: Option<String>,
}

impl WriterTask {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>, stop: oneshot::Receiver<()>) {
        let mut stop = stop;
        let mut stopping = false;
        let mut next: Option<Command> = None;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => {
                    let probe_after = self.health.is_degraded() && self.failed.is_none();
                    tokio::select! {
                        received = queue.recv() => match received {
                            Some(command) => command,
                            None => break,
                        },
                        _ = &mut stop, if !stopping => {
                            // Refuse new commands; the ones already queued are still handled.
                            stopping = true;
                            queue.close();
                            continue;
                        }
                        () = tokio::time::sleep(PROBE_INTERVAL), if probe_after => {
                            self.probe().await;
                            continue;
                        }
                    }
                }
            };
            let work = if let Command::Store(first) = command {
                let mut patterns = first.requests.len();
                let mut group = vec![first];
                while patterns < MAX_PATTERNS_PER_COMMIT {
                    match queue.try_recv() {
                        Ok(Command::Store(store)) => {
                            patterns += store.requests.len();
                            group.push(store);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Work::Stores(group)
            } else {
                Work::One(command)
            };
            if let Some(why) = &self.failed {
                work.refuse(why);
                continue;
            }
            // A panic drops the command's reply channels (their callers get the failure) and
            // leaves the engine possibly half-changed: stop writing, say why, keep serving reads.
            let handled = AssertUnwindSafe(self.handle(work)).catch_unwind().await;
            if let Err(panic) = handled {
                let why = panic_message(panic.as_ref());
                self.health.writer_failed(why.clone());
                self.failed = Some(why);
            }
        }
        self.connection.close().await;
    }

    async fn handle(&mut self, work: Work) {
        match work {
            Work::Stores(group) => self.store_group(group).await,
            Work::One(Command::Store(store)) => self.store_group(vec![store]).await,
            Work::One(Command::CreateSpace { space, reply }) => {
                let _ = reply.send(self.create_space(*space).await);
            }
            Work::One(Command::DeleteSpace { name, reply }) => {
                let _ = reply.send(self.delete_space(name).await);
            }
            Work::One(Command::Forget {
                space,
                neuron,
                id,
                reply,
            }) => {
                let _ = reply.send(self.forget(space, neuron, id).await);
            }
            Work::One(Command::DeleteNeuron {
                space,
                neuron,
                reply,
            }) => {
                let _ = reply.send(self.delete_neuron(space, neuron).await);
            }
            #[cfg(test)]
            Work::One(Command::Crash) => panic!("crash requested by a test"),
        }
    }

    /// Runs `body` in one transaction on the writer's connection, counted in the write sequence
    /// (so a backup says which writes it holds), reporting the outcome to [`Health`].
    async fn commit<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, WriteError> {
        let counted = async |connection: &mut SqliteConnection| {
            let value = body(&mut *connection).await?;
            sql::count_write(connection).await?;
            Ok(value)
        };
        match self.connection.transaction(counted).await {
            Ok(value) => {
                self.health.storage_ok();
                Ok(value)
            }
            Err(error) => {
                self.health.storage_failed(&error);
                Err(WriteError::Storage(error))
            }
        }
    }

    async fn probe(&mut self) {
        match self.connection.probe().await {
            Ok(()) => self.health.storage_ok(),
            Err(error) => self.health.storage_failed(&error),
        }
    }

    /// What every space takes in memory, by estimate.
    fn engine_bytes(&self) -> u64 {
        self.spaces
            .all()
            .iter()
            .map(|shared| {
                shared
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .estimated_bytes()
            })
            .sum()
    }

    fn space_of(&self, name: &Name) -> Result<SharedSpace, WriteError> {
        self.spaces
            .get(name)
            .ok_or_else(|| WriteError::UnknownSpace(name.clone()))
    }

    async fn store_group(&mut self, group: Vec<StoreCommand>) {
        let mut planners: HashMap<Name, Planner> = HashMap::new();
        let mut accepted: Vec<(StoreCommand, SharedSpace, Vec<Planned>)> =
            Vec::with_capacity(group.len());
        let mut memory = self.memory_limit.map(|limit| (limit, self.engine_bytes()));
        for command in group {
            let shared = match self.space_of(&command.space) {
                Ok(shared) => shared,
                Err(error) => {
                    let _ = command.reply.send(Err(error));
                    continue;
                }
            };
            let planner = planners.entry(command.space.clone()).or_default();
            let planned = {
                let space = shared.read().unwrap_or_else(PoisonError::into_inner);
                planner.plan(&space, &command.requests).map(|plans| {
                    // Costed only when a limit is set: stores without one pay nothing for it.
                    let cost = memory.map_or(0, |_| {
                        space.estimated_cost(plans.iter().filter_map(|p| match p {
                            Planned::New(plan) => Some(plan),
                            Planned::Existing { .. } => None,
                        }))
                    });
                    (plans, cost)
                })
            };
            match planned {
                Ok((plans, cost)) => {
                    // Refused before anything is committed, so the engine does not grow past its
                    // limit. Each command of a group is costed against the space as it was
                    // before the group: two commands that both open segments may count the same
                    // dense block of slots, so the limit holds to within one block.
                    if let Some((limit, in_use)) = &mut memory {
                        if *in_use + cost > *limit {
                            let _ = command.reply.send(Err(WriteError::MemoryFull {
                                limit: *limit,
                                in_use: *in_use,
                                needed: cost,
                            }));
                            continue;
                        }
                        *in_use += cost;
                    }
                    accepted.push((command, shared, plans));
                }
                Err((index, error)) => {
                    let _ = command.reply.send(Err(WriteError::Engine { index, error }));
                }
            }
        }
        let new: Vec<(&Name, &StorePlan)> = accepted
            .iter()
            .flat_map(|(command, _, plans)| {
                plans.iter().filter_map(move |planned| match planned {
                    Planned::New(plan) => Some((&command.space, plan)),
                    Planned::Existing { .. } => None,
                })
            })
            .collect();
        if !new.is_empty() {
            let committed = self
                .commit(async |connection| sql::insert_stores(connection, &new).await)
                .await;
            if let Err(error) = committed {
                tracing::error!(%error, patterns = new.len(), "commit of a store group failed; nothing applied");
                let WriteError::Storage(error) = error else {
                    unreachable!("a commit fails only with a storage error")
                };
                for (command, _, _) in accepted {
                    let _ = command.reply.send(Err(WriteError::Storage(error.clone())));
                }
                return;
            }
            self.stats.record(new.len());
        }
        for (command, shared, plans) in accepted {
            let answers = shared.update(|space| {
                let fresh: Vec<StorePlan> = plans
                    .iter()
                    .filter_map(|p| match p {
                        Planned::New(plan) => Some(plan.clone()),
                        Planned::Existing { .. } => None,
                    })
                    .collect();
                space.apply_stores(fresh);
                plans
                    .iter()
                    .map(|planned| {
                        let pattern = space
                            .pattern(planned.neuron(), planned.id())
                            .expect("a planned pattern exists once applied");
                        Stored {
                            pattern,
                            created: matches!(planned, Planned::New(_)),
                        }
                    })
                    .collect()
            });
            let _ = command.reply.send(Ok(answers));
        }
    }

    async fn create_space(&mut self, space: Space) -> Result<(SpaceReport, bool), WriteError> {
        let name = space.name().clone();
        if let Some(existing) = self.spaces.get(&name) {
            let existing = existing.read().unwrap_or_else(PoisonError::into_inner);
            return if existing.params() == space.params() {
                Ok((existing.report(), false))
            } else {
                Err(WriteError::SpaceConflict(name))
            };
        }
        let params = space.params().clone();
        self.commit(async |connection| sql::insert_space(connection, &name, &params).await)
            .await?;
        self.stats.record(1);
        let report = space.report();
        self.spaces.insert(space);
        Ok((report, true))
    }

    async fn delete_space(&mut self, name: Name) -> Result<(), WriteError> {
        self.space_of(&name)?;
        self.commit(async |connection| sql::delete_space(connection, &name).await)
            .await?;
        self.stats.record(1);
        self.spaces.remove(&name);
        Ok(())
    }

    async fn forget(&mut self, space: Name, neuron: Name, id: Name) -> Result<(), WriteError> {
        let shared = self.space_of(&space)?;
        self.checked_deletion(
            &shared,
            |checked| checked.check_forget(&neuron, &id),
            async |connection| sql::delete_pattern(connection, &space, &neuron, &id).await,
            |applied| applied.apply_forget(&neuron, &id),
        )
        .await
    }

    async fn delete_neuron(&mut self, space: Name, neuron: Name) -> Result<(), WriteError> {
        let shared = self.space_of(&space)?;
        self.checked_deletion(
            &shared,
            |checked| checked.neuron_summary(&neuron).map(drop),
            async |connection| sql::delete_neuron(connection, &space, &neuron).await,
            |applied| applied.delete_neuron(&neuron),
        )
        .await
    }

    /// A deletion inside a space: checked against the engine first (so it cannot fail once
    /// committed), its rows deleted in one transaction (counted as one write), then applied.
    async fn checked_deletion(
        &mut self,
        shared: &SharedSpace,
        check: impl FnOnce(&Space) -> Result<(), EngineError>,
        delete_rows: impl AsyncFnOnce(&mut SqliteConnection) -> Result<(), sqlx::Error>,
        apply: impl FnOnce(&mut Space) -> Result<(), EngineError>,
    ) -> Result<(), WriteError> {
        let engine_error = |error| WriteError::Engine { index: 0, error };
        check(&shared.read().unwrap_or_else(PoisonError::into_inner)).map_err(engine_error)?;
        self.commit(delete_rows).await?;
        self.stats.record(1);
        shared.update(apply).map_err(engine_error)
    }
}

/// What the writer does next: a group of stores committed together, or one other command.
enum Work {
    Stores(Vec<StoreCommand>),
    One(Command),
}

impl Work {
    /// Answers every caller of this work with the writer's failure.
    fn refuse(self, why: &str) {
        fn failed<T>(why: &str) -> Result<T, WriteError> {
            Err(WriteError::WriterFailed(why.to_owned()))
        }
        match self {
            Work::Stores(group) => {
                for store in group {
                    let _ = store.reply.send(failed(why));
                }
            }
            Work::One(command) => match command {
                Command::Store(store) => {
                    let _ = store.reply.send(failed(why));
                }
                Command::CreateSpace { reply, .. } => {
                    let _ = reply.send(failed(why));
                }
                Command::DeleteSpace { reply, .. }
                | Command::Forget { reply, .. }
                | Command::DeleteNeuron { reply, .. } => {
                    let _ = reply.send(failed(why));
                }
                #[cfg(test)]
                Command::Crash => {}
            },
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Pattern, tiny_space};
    use crate::store::Database;

    async fn writer_on_a_temporary_file() -> (Writer, WriterThread, Arc<Health>, tempfile::TempDir)
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let db = Database::open(&url, &Default::default()).await.unwrap();
        let health = Arc::new(Health::default());
        let (writer, thread) = Writer::spawn(
            db.write_connection(),
            Arc::new(Spaces::default()),
            Arc::clone(&health),
            None,
        )
        .unwrap();
        (writer, thread, health, dir)
    }

    #[tokio::test]
    async fn a_writer_that_panicked_refuses_writes_and_says_why() {
        let (writer, thread, health, _dir) = writer_on_a_temporary_file().await;
        writer.create_space(tiny_space("s")).await.unwrap();
        writer.commands.send(Command::Crash).await.unwrap();
        let request = StoreRequest {
            neuron: Name::parse("n").unwrap(),
            active: Pattern::parse(&[1, 2, 3, 4, 5], 64).unwrap(),
            id: None,
        };
        let refused = writer.store(Name::parse("s").unwrap(), vec![request]).await;
        assert!(
            matches!(&refused, Err(WriteError::WriterFailed(why)) if why.contains("crash requested")),
            "{refused:?}"
        );
        assert!(health.problem().unwrap().contains("crash requested"));
        thread.stop().await;
    }
}
