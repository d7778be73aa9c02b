//! The writer's task: the loop that takes one command or one group of stores at a time, and the
//! steps every write shares (lock, commit, apply, answer). The jobs it runs have files of their
//! own: `group` (stores committed together), `single` (writes that are one change each),
//! `follow` (other replicas' changes) and `purge` (deleted rows removed a step at a time).

use super::command::{Command, StoreCommand, Written};
use super::error::WriteError;
use super::progress::{Progress, WriteStats};
use crate::engine::{Name, SharedSpace, Space, Spaces};
use crate::store::fault::{Health, StorageError};
use crate::store::{Change, Committed, Purge, WriteStore};
use futures_util::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// While writes are failing, how often the writer tries a probe commit when no write comes.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How often old entries are deleted from the change log (where there is one).
const COMPACT_INTERVAL: Duration = Duration::from_secs(60);

/// The writer's state: what it writes to and what it reports to.
pub(super) struct WriterTask<S: WriteStore> {
    pub(super) store: S,
    pub(super) spaces: Arc<Spaces>,
    pub(super) stats: Arc<WriteStats>,
    pub(super) health: Arc<Health>,
    pub(super) progress: Arc<Progress>,
    /// The last change applied to `spaces` (mirrored in `progress` for readers).
    pub(super) applied: u64,
    pub(super) memory_limit: Option<u64>,
    /// Set once a command panicked: every later command is refused with it.
    failed: Option<String>,
    /// Deletions committed whose rows are still being removed, oldest first.
    pub(super) purges: Vec<Purge>,
    /// When the next purge step may run (after one failed).
    pub(super) purge_resume_at: Option<Instant>,
    /// Commands that must wait for a purge: a space re-created under a name whose old rows are
    /// still going, a store to a neuron whose old rows are.
    pub(super) waiting: Vec<Command>,
    /// Waiting commands whose purge finished, to handle before new ones.
    pub(super) unblocked: VecDeque<Command>,
}

/// What woke the writer.
enum Event {
    Command(Command),
    /// The queue is closed and empty: time to stop.
    Drained,
    Stop,
    Chore(Chore),
}

/// Work of the writer's own, between commands.
enum Chore {
    Probe,
    /// Another replica may have committed.
    Changes,
    Compact,
    /// Nothing else to do: a step of the oldest purge.
    Purge,
}

/// The writer's timers. They live across iterations: a sleep made afresh each time round would
/// never finish while another branch (the follower's poll) wakes the loop more often.
struct Timers {
    compaction: Interval,
    probing: Interval,
}

impl Timers {
    fn new() -> Timers {
        let every = |period| {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        };
        Timers {
            compaction: every(COMPACT_INTERVAL),
            probing: every(PROBE_INTERVAL),
        }
    }
}

/// What the writer does next: a group of stores committed together, or one other command.
pub(super) enum Work {
    Stores(Vec<StoreCommand>),
    One(Command),
}

impl<S: WriteStore> WriterTask<S> {
    pub(super) fn new(
        store: S,
        spaces: Arc<Spaces>,
        stats: Arc<WriteStats>,
        health: Arc<Health>,
        progress: Arc<Progress>,
        applied: u64,
        memory_limit: Option<u64>,
    ) -> WriterTask<S> {
        WriterTask {
            store,
            spaces,
            stats,
            health,
            progress,
            applied,
            memory_limit,
            failed: None,
            purges: Vec::new(),
            purge_resume_at: None,
            waiting: Vec::new(),
            unblocked: VecDeque::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut queue: mpsc::Receiver<Command>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut timers = Timers::new();
        let mut stopping = false;
        let mut next: Option<Command> = None;
        self.resume_purges().await;
        loop {
            let command = match next.take().or_else(|| self.unblocked.pop_front()) {
                Some(command) => command,
                None => match self
                    .wait(&mut queue, &mut stop, stopping, &mut timers)
                    .await
                {
                    Event::Command(command) => command,
                    Event::Drained => break,
                    Event::Stop => {
                        // Refuse new commands; the ones already queued are still handled.
                        stopping = true;
                        queue.close();
                        continue;
                    }
                    Event::Chore(chore) => {
                        self.chore(chore).await;
                        continue;
                    }
                },
            };
            let work = Self::gather(command, &mut queue, &mut next);
            self.work(work).await;
        }
        self.store.close().await;
    }

    /// Waits for a command, or for a chore when none comes.
    async fn wait(
        &mut self,
        queue: &mut mpsc::Receiver<Command>,
        stop: &mut oneshot::Receiver<()>,
        stopping: bool,
        timers: &mut Timers,
    ) -> Event {
        let probe_after = self.health.is_degraded() && self.failed.is_none();
        let following = self.failed.is_none();
        let purging = !self.purges.is_empty() && self.failed.is_none();
        let purge_at = self.purge_resume_at.unwrap_or_else(Instant::now);
        tokio::select! {
            // In this order: a purge step only when nothing else is waiting.
            biased;
            _ = stop, if !stopping => Event::Stop,
            received = queue.recv() => received.map_or(Event::Drained, Event::Command),
            _ = timers.probing.tick(), if probe_after => Event::Chore(Chore::Probe),
            () = self.store.wait_for_changes(), if following => Event::Chore(Chore::Changes),
            _ = timers.compaction.tick(), if following => Event::Chore(Chore::Compact),
            () = tokio::time::sleep_until(purge_at), if purging => Event::Chore(Chore::Purge),
        }
    }

    async fn chore(&mut self, chore: Chore) {
        match chore {
            Chore::Probe => self.probe().await,
            Chore::Changes => self.follow().await,
            Chore::Compact => self.compact().await,
            Chore::Purge => self.purge_step().await,
        }
    }

    /// Handles `work`, or refuses it once the writer has failed.
    async fn work(&mut self, work: Work) {
        if let Some(why) = &self.failed {
            work.refuse(|| WriteError::WriterFailed(why.clone()));
            return;
        }
        // A panic drops the command's reply channels (their callers get the failure) and leaves
        // the engine possibly half-changed: stop writing, say why, keep serving reads. An open
        // transaction is rolled back, so other replicas are not left waiting on its locks.
        let handled = AssertUnwindSafe(self.handle(work)).catch_unwind().await;
        if let Err(panic) = handled {
            self.store.rollback().await;
            let why = panic_message(panic.as_ref());
            self.health.writer_failed(why.clone());
            self.failed = Some(why);
            return;
        }
        // Under a steady stream of writes a purge still moves, one step per write handled.
        if !self.purges.is_empty() && self.purge_resume_at.is_none_or(|at| at <= Instant::now()) {
            self.purge_step().await;
        }
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

    /// An answer at the sequence this replica has applied.
    pub(super) fn written<T>(&self, value: T) -> Written<T> {
        Written {
            value,
            sequence: self.applied,
        }
    }

    pub(super) fn set_applied(&mut self, sequence: u64) {
        self.applied = sequence;
        self.progress.set_applied(sequence);
    }

    /// Starts a write: locks `spaces` in the database and applies what other replicas committed
    /// before, so the write is planned against the state it commits into.
    pub(super) async fn lock(&mut self, spaces: &[&Name]) -> Result<(), StorageError> {
        let locked = match self.store.begin(spaces).await {
            Ok(()) => self.catch_up(None).await,
            Err(error) => Err(error),
        };
        if let Err(error) = locked {
            // Whatever failed, no transaction is left open holding the spaces' locks.
            self.store.rollback().await;
            self.health.storage_failed(&error);
            return Err(error);
        }
        Ok(())
    }

    /// Ends a write with nothing to commit, answering at the sequence applied.
    pub(super) async fn unlock<T>(
        &mut self,
        outcome: Result<T, WriteError>,
    ) -> Result<Written<T>, WriteError> {
        self.store.rollback().await;
        outcome.map(|value| self.written(value))
    }

    /// Commits `change` in the open write, then applies what other replicas committed before it
    /// and the change itself (`prebuilt` in place of a new space, whose theory is computed
    /// already). Returns the change's sequence.
    pub(super) async fn commit(
        &mut self,
        change: Change,
        prebuilt: Option<Space>,
    ) -> Result<u64, StorageError> {
        let Committed { sequence, before } = match self.store.commit(&change, self.applied).await {
            Ok(committed) => {
                self.health.storage_ok();
                committed
            }
            Err(error) => {
                self.health.storage_failed(&error);
                return Err(error);
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
    pub(super) fn engine_bytes(&self) -> u64 {
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
    pub(super) fn check_served(&self, name: &Name) -> Result<(), WriteError> {
        if self.spaces.serves(name) {
            Ok(())
        } else {
            Err(WriteError::NotServed(
                name.clone(),
                self.spaces.served().clone(),
            ))
        }
    }

    pub(super) fn space_of(&self, name: &Name) -> Result<SharedSpace, WriteError> {
        self.check_served(name)?;
        self.spaces
            .get(name)
            .ok_or_else(|| WriteError::UnknownSpace(name.clone()))
    }
}

impl Work {
    /// Answers every caller with `error()`.
    pub(super) fn refuse(self, error: impl Fn() -> WriteError) {
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
