//! The write path: one task owns every change, and commits before it applies.
//!
//! Handlers send commands over a bounded channel (a full channel is an immediate "busy", never an
//! unbounded queue) and wait for the answer. The writer drains whatever store commands are waiting,
//! locks the spaces they touch and catches up with what other replicas committed to them, plans
//! them in order against the engine (a [`Planner`] lets each see the plans before it), so every
//! request is validated against the state it commits into, commits all their rows in one
//! transaction — one fsync for many writes: group commit — then applies the plans to the engine
//! and answers each caller with the change's sequence. A failed commit applies nothing and
//! answers every caller with the fault; the next write starts on a fresh connection.
//!
//! The same task follows the database: every committed [`Change`] has a sequence, and the engine
//! applies them strictly in that order, its own and other replicas' alike. Between commands it
//! waits for word of other replicas' commits ([`WriteStore::wait_for_changes`]) and applies
//! them; a replica the log can no longer bring up to date reloads the tables.
//!
//! The writer runs on a thread of its own. Applying a write takes the space's write lock, which
//! waits for the queries reading it; on a thread of its own that wait holds up only the writer,
//! never the async workers that answer `/healthz` and other spaces' requests. A panic while
//! handling a command is caught: the writer then refuses every later write and `/readyz` says why,
//! rather than the service answering "shutting down" forever.

use super::health::{Health, StorageError};
use super::{Change, Changes, Committed, Database, Purge, WriteStore};
use crate::engine::{
    EngineError, Name, PatternView, Planned, Planner, SharedSpace, Space, SpaceReport, SpaceSet,
    Spaces, StoreRequest,
};
use futures_util::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Commands waiting for the writer; beyond this, callers are told the service is busy.
const QUEUE_CAPACITY: usize = 16_384;
/// The most patterns one commit carries: bounds the latency a large group adds.
const MAX_PATTERNS_PER_COMMIT: usize = 20_000;
/// While writes are failing, how often the writer tries a probe commit when no write comes.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Changes read from the log at a time while catching up: bounds the memory a long way behind
/// takes (a change carries at most one commit's patterns, about 9 MB of JSON at the most).
const FOLLOW_BATCH: usize = 16;
/// How often old entries are deleted from the change log (where there is one).
const COMPACT_INTERVAL: Duration = Duration::from_secs(60);
/// Rows a purge step deletes: about 10 ms of SQLite's work (a commit included), the most a
/// large deletion adds to another write's wait.
const PURGE_ROWS: u64 = 1_024;
/// After a purge step fails (a full or failing disk), the pause before the next try.
const PURGE_RETRY: Duration = Duration::from_secs(1);

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

/// A write's answer, with the sequence of the change that made it visible: a read anywhere that
/// waits for this sequence sees the write.
#[derive(Clone, Debug, PartialEq)]
pub struct Written<T> {
    pub value: T,
    pub sequence: u64,
}

/// How far this replica has followed the database: shared by the writer, which applies changes,
/// and the readers that wait for one (`min_sequence`) or report the lag.
#[derive(Debug)]
pub struct Progress {
    applied: watch::Sender<u64>,
    head: AtomicU64,
    /// Whether other processes commit changes this one follows (PostgreSQL). Where none do
    /// (SQLite), every change there is was applied before its write was answered: a later one
    /// is not worth waiting for.
    follows: bool,
}

impl Progress {
    fn new(applied: u64, follows: bool) -> Progress {
        Progress {
            applied: watch::Sender::new(applied),
            head: AtomicU64::new(applied),
            follows,
        }
    }

    /// The last change this replica applied: its engine holds every change up to here.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Whether changes arrive from other processes (a read may wait for them).
    pub fn follows(&self) -> bool {
        self.follows
    }

    /// The newest change this replica knows the database holds.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed).max(self.applied())
    }

    /// Waits at most `within` for this replica to apply `sequence`; whether it did.
    pub async fn reached(&self, sequence: u64, within: Duration) -> bool {
        if !self.follows {
            return self.applied() >= sequence;
        }
        let mut applied = self.applied.subscribe();
        matches!(
            tokio::time::timeout(within, applied.wait_for(|&a| a >= sequence)).await,
            Ok(Ok(_))
        )
    }

    fn set_applied(&self, sequence: u64) {
        self.applied.send_replace(sequence);
    }

    fn saw_head(&self, head: u64) {
        self.head.fetch_max(head, Ordering::Relaxed);
    }
}

type Reply<T> = oneshot::Sender<Result<Written<T>, WriteError>>;

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
    /// Applies everything committed so far: start-up waits for it before it serves.
    CatchUp {
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
        let task = WriterTask {
            store,
            spaces,
            stats: Arc::clone(&stats),
            health: Arc::clone(&health),
            progress: Arc::clone(&progress),
            applied,
            memory_limit,
            failed: None,
            purges: Vec::new(),
            purge_resume_at: None,
            waiting: Vec::new(),
            unblocked: VecDeque::new(),
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

/// What a store request is answered with once applied: (neuron, id, whether it is new).
type Answer = (Name, Name, bool);

/// What woke the writer.
enum Event {
    Command(Command),
    /// The queue is closed and empty: time to stop.
    Drained,
    Stop,
    Probe,
    /// Another replica may have committed.
    Changes,
    Compact,
    /// Nothing else to do: a step of the oldest purge.
    Purge,
}

/// The writer's state: what it writes to and what it reports to.
struct WriterTask<S: WriteStore> {
    store: S,
    spaces: Arc<Spaces>,
    stats: Arc<WriteStats>,
    health: Arc<Health>,
    progress: Arc<Progress>,
    /// The last change applied to `spaces` (mirrored in `progress` for readers).
    applied: u64,
    memory_limit: Option<u64>,
    /// Set once a command panicked: every later command is refused with it.
    failed: Option<String>,
    /// Deletions committed whose rows are still being removed, oldest first.
    purges: Vec<Purge>,
    /// When the next purge step may run (after one failed).
    purge_resume_at: Option<Instant>,
    /// Commands that must wait for a purge: a space re-created under a name whose old rows are
    /// still going, a store to a neuron whose old rows are.
    waiting: Vec<Command>,
    /// Waiting commands whose purge finished, to handle before new ones.
    unblocked: VecDeque<Command>,
}

impl<S: WriteStore> WriterTask<S> {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>, stop: oneshot::Receiver<()>) {
        let mut stop = stop;
        let mut stopping = false;
        let mut next: Option<Command> = None;
        // Timers that live across iterations: a sleep made afresh each time round would never
        // finish while another branch (the follower's poll) wakes the loop more often.
        let mut compaction = tokio::time::interval(COMPACT_INTERVAL);
        compaction.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probing = tokio::time::interval(PROBE_INTERVAL);
        probing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.resume_purges().await;
        loop {
            let command = match next.take().or_else(|| self.unblocked.pop_front()) {
                Some(command) => command,
                None => {
                    let probe_after = self.health.is_degraded() && self.failed.is_none();
                    let following = self.failed.is_none();
                    let purging = !self.purges.is_empty() && self.failed.is_none();
                    let purge_at = self.purge_resume_at.unwrap_or_else(Instant::now);
                    let event = tokio::select! {
                        // In this order: a purge step only when nothing else is waiting.
                        biased;
                        _ = &mut stop, if !stopping => Event::Stop,
                        received = queue.recv() => received.map_or(Event::Drained, Event::Command),
                        _ = probing.tick(), if probe_after => Event::Probe,
                        () = self.store.wait_for_changes(), if following => Event::Changes,
                        _ = compaction.tick(), if following => Event::Compact,
                        () = tokio::time::sleep_until(purge_at), if purging => Event::Purge,
                    };
                    match event {
                        Event::Command(command) => command,
                        Event::Drained => break,
                        Event::Stop => {
                            // Refuse new commands; the ones already queued are still handled.
                            stopping = true;
                            queue.close();
                            continue;
                        }
                        Event::Probe => {
                            self.probe().await;
                            continue;
                        }
                        Event::Changes => {
                            self.follow().await;
                            continue;
                        }
                        Event::Compact => {
                            self.compact().await;
                            continue;
                        }
                        Event::Purge => {
                            self.purge_step().await;
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
                work.refuse(|| WriteError::WriterFailed(why.clone()));
                continue;
            }
            // A panic drops the command's reply channels (their callers get the failure) and
            // leaves the engine possibly half-changed: stop writing, say why, keep serving reads.
            // An open transaction is rolled back, so other replicas are not left waiting on its
            // locks.
            let handled = AssertUnwindSafe(self.handle(work)).catch_unwind().await;
            if let Err(panic) = handled {
                self.store.rollback().await;
                let why = panic_message(panic.as_ref());
                self.health.writer_failed(why.clone());
                self.failed = Some(why);
                continue;
            }
            // Under a steady stream of writes a purge still moves, one step per write handled.
            if !self.purges.is_empty() && self.purge_resume_at.is_none_or(|at| at <= Instant::now())
            {
                self.purge_step().await;
            }
        }
        self.store.close().await;
    }

    async fn handle(&mut self, work: Work) {
        match work {
            Work::Stores(group) => self.store_unless_purging(group).await,
            Work::One(Command::Store(store)) => self.store_unless_purging(vec![store]).await,
            Work::One(Command::CreateSpace { space, reply })
                if self.purges.iter().any(|purge| purge.space == *space.name()) =>
            {
                self.wait_for_purge(Command::CreateSpace { space, reply });
            }
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
            Work::One(Command::CatchUp { reply }) => {
                let caught_up = self.catch_up(None).await.map_err(WriteError::Storage);
                let _ = reply.send(caught_up.map(|()| self.written(())));
            }
            #[cfg(test)]
            Work::One(Command::Crash) => panic!("crash requested by a test"),
        }
    }

    /// Stores the commands of `group` that touch no neuron being purged; the others wait for
    /// their purge (their neuron's new rows could otherwise collide with the old ones).
    async fn store_unless_purging(&mut self, group: Vec<StoreCommand>) {
        // The usual case, with nothing to sort out: no purge is running.
        if self.purges.is_empty() {
            return self.store_group(group).await;
        }
        let (waiting, ready): (Vec<_>, Vec<_>) = group.into_iter().partition(|store| {
            store.requests.iter().any(|request| {
                self.purges
                    .iter()
                    .any(|purge| purge.covers(&store.space, Some(&request.neuron)))
            })
        });
        for store in waiting {
            self.wait_for_purge(Command::Store(store));
        }
        if !ready.is_empty() {
            self.store_group(ready).await;
        }
    }

    /// Puts `command` aside until a purge ends; refused as busy when as many wait as the queue
    /// holds (each keeps a client's request open).
    fn wait_for_purge(&mut self, command: Command) {
        if self.waiting.len() >= QUEUE_CAPACITY {
            Work::One(command).refuse(|| WriteError::Busy);
        } else {
            self.waiting.push(command);
        }
    }

    /// Picks up the purges an earlier run left unfinished.
    async fn resume_purges(&mut self) {
        if !self.store.purges_later() {
            return;
        }
        match self.store.pending_purges().await {
            Ok(purges) => {
                if !purges.is_empty() {
                    tracing::info!(count = purges.len(), "resuming the removal of deleted rows");
                }
                self.purges = purges;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the deletions still to purge; they resume at the next start");
            }
        }
    }

    /// Deletes a step's worth of the oldest purge's rows; once it is done, lets the commands
    /// that waited for it go.
    async fn purge_step(&mut self) {
        let Some(purge) = self.purges.first().cloned() else {
            return;
        };
        match self.store.purge_step(&purge, PURGE_ROWS).await {
            Ok(done) => {
                self.purge_resume_at = None;
                if done {
                    self.purges.remove(0);
                    tracing::debug!(space = %purge.space, neuron = ?purge.neuron, "purged");
                    self.unblocked.extend(self.waiting.drain(..));
                }
            }
            Err(error) => {
                tracing::warn!(%error, space = %purge.space, "removing a deletion's rows failed; retrying in a second");
                self.purge_resume_at = Some(Instant::now() + PURGE_RETRY);
            }
        }
    }

    /// An answer at the sequence this replica has applied.
    fn written<T>(&self, value: T) -> Written<T> {
        Written {
            value,
            sequence: self.applied,
        }
    }

    fn set_applied(&mut self, sequence: u64) {
        self.applied = sequence;
        self.progress.set_applied(sequence);
    }

    /// Applies the changes committed after `applied`, up to `until` (all, when `None`), in
    /// order. A change this replica cannot apply, or a log compacted past it, means the engine
    /// no longer follows the database: it is rebuilt from the tables.
    async fn catch_up(&mut self, until: Option<u64>) -> Result<(), StorageError> {
        loop {
            match self.store.changes_after(self.applied, FOLLOW_BATCH).await? {
                Changes::Compacted { through } => {
                    return self
                        .reload(&format!(
                            "the change log no longer holds changes {} to {through}",
                            self.applied + 1
                        ))
                        .await;
                }
                Changes::Next { changes, head } => {
                    self.progress.saw_head(head);
                    if changes.is_empty() {
                        return Ok(());
                    }
                    for (sequence, change) in changes {
                        if until.is_some_and(|until| sequence > until) {
                            return Ok(());
                        }
                        if let Err(error) = change.apply(&self.spaces, sequence) {
                            return self.reload(&error.to_string()).await;
                        }
                        self.set_applied(sequence);
                    }
                }
            }
        }
    }

    /// Rebuilds the engine from the tables, saying why in the log.
    async fn reload(&mut self, why: &str) -> Result<(), StorageError> {
        tracing::warn!(%why, applied = self.applied, "reloading every space from the database");
        match self.store.reload(&self.spaces).await {
            Ok(sequence) => {
                tracing::info!(sequence, "reloaded");
                self.set_applied(sequence);
                Ok(())
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "the reload failed; retrying at the next change");
                Err(StorageError::from(sqlx::Error::Protocol(format!(
                    "reloading from the database failed: {error:#}"
                ))))
            }
        }
    }

    /// Applies what other replicas committed (woken by a notification or the poll).
    async fn follow(&mut self) {
        self.progress.saw_head(self.store.known_head());
        if let Err(error) = self.catch_up(None).await {
            self.health.storage_failed(&error);
        }
    }

    async fn compact(&mut self) {
        match self.store.compact().await {
            Ok(0) => {}
            Ok(through) => tracing::debug!(through, "compacted the change log"),
            Err(error) => tracing::warn!(%error, "compacting the change log failed"),
        }
    }

    async fn probe(&mut self) {
        match self.store.probe().await {
            Ok(()) => self.health.storage_ok(),
            Err(error) => self.health.storage_failed(&error),
        }
    }

    /// Starts a write: locks `spaces` in the database and applies what other replicas committed
    /// before, so the write is planned against the state it commits into.
    async fn lock(&mut self, spaces: &[&Name]) -> Result<(), WriteError> {
        let locked = match self.store.begin(spaces).await {
            Ok(()) => self.catch_up(None).await,
            Err(error) => Err(error),
        };
        if let Err(error) = locked {
            // Whatever failed, no transaction is left open holding the spaces' locks.
            self.store.rollback().await;
            self.health.storage_failed(&error);
            return Err(WriteError::Storage(error));
        }
        Ok(())
    }

    /// Ends a write with nothing to commit, answering at the sequence applied.
    async fn unlock<T>(
        &mut self,
        outcome: Result<T, WriteError>,
    ) -> Result<Written<T>, WriteError> {
        self.store.rollback().await;
        outcome.map(|value| self.written(value))
    }

    /// Commits `change` in the open write, then applies what other replicas committed before it
    /// and the change itself (`prebuilt` in place of a new space, whose theory is computed
    /// already). Returns the change's sequence.
    async fn commit(&mut self, change: Change, prebuilt: Option<Space>) -> Result<u64, WriteError> {
        let Committed { sequence, before } = match self.store.commit(&change, self.applied).await {
            Ok(committed) => {
                self.health.storage_ok();
                committed
            }
            Err(error) => {
                self.health.storage_failed(&error);
                return Err(WriteError::Storage(error));
            }
        };
        for (earlier, other) in before {
            if let Err(error) = other.apply(&self.spaces, earlier) {
                // The tables hold this change too: the reload brings the engine past it.
                let _ = self.reload(&error.to_string()).await;
                return Ok(sequence);
            }
            self.set_applied(earlier);
        }
        let applied = match (change, prebuilt) {
            (Change::CreateSpace { .. }, Some(space)) => {
                self.spaces.insert(space);
                Ok(())
            }
            (change, _) => change.apply(&self.spaces, sequence),
        };
        match applied {
            Ok(()) => self.set_applied(sequence),
            Err(error) => {
                let _ = self.reload(&error.to_string()).await;
            }
        }
        Ok(sequence)
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

    /// Refuses a space of another shard group.
    fn check_served(&self, name: &Name) -> Result<(), WriteError> {
        if self.spaces.serves(name) {
            Ok(())
        } else {
            Err(WriteError::NotServed(
                name.clone(),
                self.spaces.served().clone(),
            ))
        }
    }

    fn space_of(&self, name: &Name) -> Result<SharedSpace, WriteError> {
        self.check_served(name)?;
        self.spaces
            .get(name)
            .ok_or_else(|| WriteError::UnknownSpace(name.clone()))
    }

    async fn store_group(&mut self, group: Vec<StoreCommand>) {
        let mut names: Vec<&Name> = group.iter().map(|command| &command.space).collect();
        names.sort_unstable();
        names.dedup();
        if let Err(error) = self.lock(&names).await {
            let WriteError::Storage(error) = error else {
                unreachable!("locking fails only with a storage error")
            };
            for command in group {
                let _ = command.reply.send(Err(WriteError::Storage(error.clone())));
            }
            return;
        }
        let mut planners: HashMap<Name, Planner> = HashMap::new();
        // Per accepted command, what to answer with.
        let mut accepted: Vec<(StoreCommand, Vec<Answer>)> = Vec::with_capacity(group.len());
        let mut patterns = Vec::new();
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
                    let answers = plans
                        .iter()
                        .map(|p| {
                            let created = matches!(p, Planned::New(_));
                            (p.neuron().clone(), p.id().clone(), created)
                        })
                        .collect();
                    for planned in plans {
                        if let Planned::New(plan) = planned {
                            patterns.push((command.space.clone(), plan));
                        }
                    }
                    accepted.push((command, answers));
                }
                Err((index, error)) => {
                    let _ = command.reply.send(Err(WriteError::Engine { index, error }));
                }
            }
        }
        let sequence = if patterns.is_empty() {
            self.store.rollback().await;
            self.applied
        } else {
            let count = patterns.len();
            match self.commit(Change::Store { patterns }, None).await {
                Ok(sequence) => {
                    self.stats.record(count);
                    sequence
                }
                Err(error) => {
                    tracing::error!(%error, patterns = count, "commit of a store group failed; nothing applied");
                    let WriteError::Storage(error) = error else {
                        unreachable!("a commit fails only with a storage error")
                    };
                    for (command, _) in accepted {
                        let _ = command.reply.send(Err(WriteError::Storage(error.clone())));
                    }
                    return;
                }
            }
        };
        for (command, answers) in accepted {
            let _ = command
                .reply
                .send(self.stored(&command.space, &answers, sequence));
        }
    }

    /// The answer to a store once applied: each pattern as the engine now holds it.
    fn stored(
        &self,
        space: &Name,
        answers: &[Answer],
        sequence: u64,
    ) -> Result<Written<Vec<Stored>>, WriteError> {
        // Only after a reload (this replica fell behind while writing) can a pattern committed
        // here be gone already, deleted by another replica since: then the caller is told to
        // read it back rather than shown what is no longer there.
        let reloaded = || WriteError::Reloaded(sequence);
        let shared = self.spaces.get(space).ok_or_else(reloaded)?;
        let space = shared.read().unwrap_or_else(PoisonError::into_inner);
        let value = answers
            .iter()
            .map(|(neuron, id, created)| {
                let pattern = space.pattern(neuron, id).map_err(|_| reloaded())?;
                Ok(Stored {
                    pattern,
                    created: *created,
                })
            })
            .collect::<Result<_, WriteError>>()?;
        Ok(Written { value, sequence })
    }

    async fn create_space(
        &mut self,
        space: Space,
    ) -> Result<Written<(SpaceReport, bool)>, WriteError> {
        let name = space.name().clone();
        self.check_served(&name)?;
        self.lock(&[&name]).await?;
        if let Some(existing) = self.spaces.get(&name) {
            let outcome = {
                let existing = existing.read().unwrap_or_else(PoisonError::into_inner);
                let differences = existing.params().differences(space.params());
                if differences.is_empty() {
                    Ok((existing.report(), false))
                } else {
                    Err(WriteError::SpaceConflict(name, differences))
                }
            };
            return self.unlock(outcome).await;
        }
        let params = space.params().clone();
        let report = space.report();
        let change = Change::CreateSpace {
            space: name,
            params,
        };
        let sequence = self.commit(change, Some(space)).await?;
        self.stats.record(1);
        Ok(Written {
            value: (report, true),
            sequence,
        })
    }

    async fn delete_space(&mut self, name: Name) -> Result<Written<()>, WriteError> {
        self.checked(
            &name,
            |spaces| {
                spaces
                    .get(&name)
                    .map(drop)
                    .ok_or(WriteError::UnknownSpace(name.clone()))
            },
            Change::DeleteSpace {
                space: name.clone(),
            },
        )
        .await
    }

    async fn forget(
        &mut self,
        space: Name,
        neuron: Name,
        id: Name,
    ) -> Result<Written<()>, WriteError> {
        let check = |spaces: &Spaces| {
            Self::check_in(spaces, &space, |checked| checked.check_forget(&neuron, &id))
        };
        let change = Change::Forget {
            space: space.clone(),
            neuron: neuron.clone(),
            id: id.clone(),
        };
        self.checked(&space, check, change).await
    }

    async fn delete_neuron(
        &mut self,
        space: Name,
        neuron: Name,
    ) -> Result<Written<()>, WriteError> {
        let check = |spaces: &Spaces| {
            Self::check_in(spaces, &space, |checked| {
                checked.neuron_summary(&neuron).map(drop)
            })
        };
        let change = Change::DeleteNeuron {
            space: space.clone(),
            neuron: neuron.clone(),
        };
        self.checked(&space, check, change).await
    }

    /// Runs `check` against the space named `space`.
    fn check_in(
        spaces: &Spaces,
        space: &Name,
        check: impl FnOnce(&Space) -> Result<(), EngineError>,
    ) -> Result<(), WriteError> {
        let shared = spaces
            .get(space)
            .ok_or_else(|| WriteError::UnknownSpace(space.clone()))?;
        let checked = check(&shared.read().unwrap_or_else(PoisonError::into_inner));
        checked.map_err(|error| WriteError::Engine { index: 0, error })
    }

    /// A deletion: the space locked, checked against the engine once caught up (so it cannot
    /// fail once committed), committed as one write, then applied.
    async fn checked(
        &mut self,
        space: &Name,
        check: impl FnOnce(&Spaces) -> Result<(), WriteError>,
        change: Change,
    ) -> Result<Written<()>, WriteError> {
        self.check_served(space)?;
        self.lock(&[space]).await?;
        if let Err(error) = check(&self.spaces) {
            return self.unlock(Err(error)).await;
        }
        let purge = Purge::of(&change).filter(|_| self.store.purges_later());
        let sequence = self.commit(change, None).await?;
        self.purges.extend(purge);
        self.stats.record(1);
        Ok(Written {
            value: (),
            sequence,
        })
    }
}

/// What the writer does next: a group of stores committed together, or one other command.
enum Work {
    Stores(Vec<StoreCommand>),
    One(Command),
}

impl Work {
    /// Answers every caller of this work with the writer's failure.
    /// Answers every caller with `error()`.
    fn refuse(self, error: impl Fn() -> WriteError) {
        match self {
            Work::Stores(group) => {
                for store in group {
                    let _ = store.reply.send(Err(error()));
                }
            }
            Work::One(command) => match command {
                Command::Store(store) => {
                    let _ = store.reply.send(Err(error()));
                }
                Command::CreateSpace { reply, .. } => {
                    let _ = reply.send(Err(error()));
                }
                Command::DeleteSpace { reply, .. }
                | Command::Forget { reply, .. }
                | Command::DeleteNeuron { reply, .. }
                | Command::CatchUp { reply } => {
                    let _ = reply.send(Err(error()));
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
            &db,
            Arc::new(Spaces::default()),
            Arc::clone(&health),
            None,
            0,
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
            metadata: None,
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
