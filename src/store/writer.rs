//! The write path: one task owns every change, and commits before it applies.
//!
//! Handlers send commands over a bounded channel (a full channel is an immediate "busy", never an
//! unbounded queue) and wait for the answer. The writer drains whatever store commands are waiting,
//! plans them in order against the engine (a [`Planner`] lets each see the plans before it),
//! commits all their rows in one transaction — one fsync for many writes: group commit — then
//! applies the plans to the engine and answers each caller. A failed commit applies nothing.
//! Because one task plans every change, sampling is deterministic and two concurrent stores to one
//! neuron cannot race for a segment.

use super::{Database, encode_cells};
use crate::engine::PatternView;
use crate::engine::{
    EngineError, Name, Planned, Planner, SharedSpace, Space, SpaceParams, SpaceReport, Spaces,
    StorePlan, StoreRequest,
};
use sqlx::{QueryBuilder, Sqlite};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Commands waiting for the writer; beyond this, callers are told the service is busy.
const QUEUE_CAPACITY: usize = 16_384;
/// The most patterns one commit carries: bounds the latency a large group adds.
const MAX_PATTERNS_PER_COMMIT: usize = 20_000;
/// Rows per INSERT statement: 6 bound values each stays well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1_000;

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
    /// The commit failed; the message is for the log, not for clients.
    #[error("the database refused the commit: {0}")]
    Storage(String),
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
            | WriteError::Closed => None,
        }
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> WriteError {
        WriteError::Storage(error.to_string())
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
        name: Name,
        params: SpaceParams,
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
}

impl Writer {
    /// Starts the writer task. It ends once every handle is dropped and the queue is drained.
    pub fn spawn(db: Database, spaces: Arc<Spaces>) -> (Writer, JoinHandle<()>) {
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriteStats::default());
        let task = tokio::spawn(run(queue, db, spaces, Arc::clone(&stats)));
        (Writer { commands, stats }, task)
    }

    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    /// Creates a space: `(report, true)` when new, `(report, false)` when it exists with the
    /// same parameters.
    pub async fn create_space(
        &self,
        name: Name,
        params: SpaceParams,
    ) -> Result<(SpaceReport, bool), WriteError> {
        self.call(|reply| Command::CreateSpace {
            name,
            params,
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
        self.commands
            .try_send(command(reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::Busy,
                mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
            })?;
        answer.await.map_err(|_| WriteError::Closed)?
    }
}

async fn run(
    mut queue: mpsc::Receiver<Command>,
    db: Database,
    spaces: Arc<Spaces>,
    stats: Arc<WriteStats>,
) {
    let mut next: Option<Command> = None;
    loop {
        let command = match next.take() {
            Some(command) => command,
            None => match queue.recv().await {
                Some(command) => command,
                None => break,
            },
        };
        match command {
            Command::Store(first) => {
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
                store_group(&db, &spaces, &stats, group).await;
            }
            Command::CreateSpace {
                name,
                params,
                reply,
            } => {
                let _ = reply.send(create_space(&db, &spaces, &stats, name, params).await);
            }
            Command::DeleteSpace { name, reply } => {
                let _ = reply.send(delete_space(&db, &spaces, &stats, name).await);
            }
            Command::Forget {
                space,
                neuron,
                id,
                reply,
            } => {
                let _ = reply.send(forget(&db, &spaces, &stats, space, neuron, id).await);
            }
            Command::DeleteNeuron {
                space,
                neuron,
                reply,
            } => {
                let _ = reply.send(delete_neuron(&db, &spaces, &stats, space, neuron).await);
            }
        }
    }
}

fn space_of(spaces: &Spaces, name: &Name) -> Result<SharedSpace, WriteError> {
    spaces
        .get(name)
        .ok_or_else(|| WriteError::UnknownSpace(name.clone()))
}

async fn store_group(db: &Database, spaces: &Spaces, stats: &WriteStats, group: Vec<StoreCommand>) {
    let mut planners: HashMap<Name, Planner> = HashMap::new();
    let mut accepted: Vec<(StoreCommand, SharedSpace, Vec<Planned>)> =
        Vec::with_capacity(group.len());
    for command in group {
        let shared = match space_of(spaces, &command.space) {
            Ok(shared) => shared,
            Err(error) => {
                let _ = command.reply.send(Err(error));
                continue;
            }
        };
        let planner = planners.entry(command.space.clone()).or_default();
        let planned = {
            let space = shared.read().unwrap_or_else(PoisonError::into_inner);
            planner.plan(&space, &command.requests)
        };
        match planned {
            Ok(plans) => accepted.push((command, shared, plans)),
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
        if let Err(error) = commit_stores(db, &new).await {
            tracing::error!(%error, patterns = new.len(), "commit of a store group failed; nothing applied");
            let message = error.to_string();
            for (command, _, _) in accepted {
                let _ = command
                    .reply
                    .send(Err(WriteError::Storage(message.clone())));
            }
            return;
        }
        stats.record(new.len());
    }
    for (command, shared, plans) in accepted {
        let mut space = shared.write().unwrap_or_else(PoisonError::into_inner);
        let fresh: Vec<StorePlan> = plans
            .iter()
            .filter_map(|p| match p {
                Planned::New(plan) => Some(plan.clone()),
                Planned::Existing { .. } => None,
            })
            .collect();
        space.apply_stores(&fresh);
        let answers = plans
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
            .collect();
        drop(space);
        let _ = command.reply.send(Ok(answers));
    }
}

/// Writes the rows of new patterns, and their neurons' counters, in one transaction.
async fn commit_stores(db: &Database, plans: &[(&Name, &StorePlan)]) -> Result<(), sqlx::Error> {
    // Per neuron, the counters after these plans: ids and segment numbers handed out stay taken.
    let mut counters: HashMap<(&Name, &Name), (i64, i64)> = HashMap::new();
    for (space, plan) in plans {
        let next_pattern = plan
            .id
            .as_str()
            .parse::<i64>()
            .map_or(1, |n| n.saturating_add(1));
        let next_segment = i64::from(plan.segment) + 1;
        let entry = counters.entry((*space, &plan.neuron)).or_insert((1, 0));
        entry.0 = entry.0.max(next_pattern);
        entry.1 = entry.1.max(next_segment);
    }
    let counters: Vec<_> = counters.into_iter().collect();
    let mut tx = db.pool().begin().await?;
    for chunk in counters.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO neurons (space, name, next_pattern, next_segment) ");
        insert.push_values(
            chunk,
            |mut row, ((space, neuron), (next_pattern, next_segment))| {
                row.push_bind(space.as_str().to_owned())
                    .push_bind(neuron.as_str().to_owned())
                    .push_bind(*next_pattern)
                    .push_bind(*next_segment);
            },
        );
        insert.push(
            " ON CONFLICT (space, name) DO UPDATE SET next_pattern = max(next_pattern, excluded.next_pattern), \
             next_segment = max(next_segment, excluded.next_segment)",
        );
        insert.build().execute(&mut *tx).await?;
    }
    for chunk in plans.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO patterns (space, neuron, id, segment, active, synapses) ",
        );
        insert.push_values(chunk, |mut row, (space, plan)| {
            row.push_bind(space.as_str().to_owned())
                .push_bind(plan.neuron.as_str().to_owned())
                .push_bind(plan.id.as_str().to_owned())
                .push_bind(i64::from(plan.segment))
                .push_bind(encode_cells(plan.active.cells()))
                .push_bind(encode_cells(&plan.synapses));
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn create_space(
    db: &Database,
    spaces: &Spaces,
    stats: &WriteStats,
    name: Name,
    params: SpaceParams,
) -> Result<(SpaceReport, bool), WriteError> {
    if let Some(existing) = spaces.get(&name) {
        let space = existing.read().unwrap_or_else(PoisonError::into_inner);
        return if *space.params() == params {
            Ok((space.report(), false))
        } else {
            Err(WriteError::SpaceConflict(name))
        };
    }
    // Built before the commit: the theory it computes cannot fail, and nothing is half-done.
    let space = Space::new(name.clone(), params.clone());
    sqlx::query(
        "INSERT INTO spaces (name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
         max_segments_per_neuron, seed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(name.as_str())
    .bind(i64::from(params.input_size))
    .bind(i64::from(params.active_bits))
    .bind(i64::from(params.synapses_per_pattern))
    .bind(i64::from(params.threshold))
    .bind(params.max_false_match)
    .bind(i64::from(params.max_segments_per_neuron))
    .bind(params.seed as i64)
    .execute(db.pool())
    .await?;
    stats.record(1);
    let report = space.report();
    spaces.insert(space);
    Ok((report, true))
}

async fn delete_space(
    db: &Database,
    spaces: &Spaces,
    stats: &WriteStats,
    name: Name,
) -> Result<(), WriteError> {
    space_of(spaces, &name)?;
    let statements = [
        "DELETE FROM patterns WHERE space = ?1",
        "DELETE FROM neurons WHERE space = ?1",
        "DELETE FROM spaces WHERE name = ?1",
    ];
    delete_rows(db, stats, &statements, &[name.as_str()]).await?;
    spaces.remove(&name);
    Ok(())
}

async fn forget(
    db: &Database,
    spaces: &Spaces,
    stats: &WriteStats,
    space: Name,
    neuron: Name,
    id: Name,
) -> Result<(), WriteError> {
    let statements = ["DELETE FROM patterns WHERE space = ?1 AND neuron = ?2 AND id = ?3"];
    let values = [space.as_str(), neuron.as_str(), id.as_str()];
    let shared = space_of(spaces, &space)?;
    checked_deletion(
        db,
        stats,
        &shared,
        |space| space.check_forget(&neuron, &id),
        (&statements, &values),
        |space| space.apply_forget(&neuron, &id),
    )
    .await
}

async fn delete_neuron(
    db: &Database,
    spaces: &Spaces,
    stats: &WriteStats,
    space: Name,
    neuron: Name,
) -> Result<(), WriteError> {
    let statements = [
        "DELETE FROM patterns WHERE space = ?1 AND neuron = ?2",
        "DELETE FROM neurons WHERE space = ?1 AND name = ?2",
    ];
    let values = [space.as_str(), neuron.as_str()];
    let shared = space_of(spaces, &space)?;
    checked_deletion(
        db,
        stats,
        &shared,
        |space| space.neuron_summary(&neuron).map(drop),
        (&statements, &values),
        |space| space.delete_neuron(&neuron),
    )
    .await
}

/// A deletion inside a space: checked against the engine first (so it cannot fail once
/// committed), committed, then applied.
async fn checked_deletion(
    db: &Database,
    stats: &WriteStats,
    shared: &SharedSpace,
    check: impl FnOnce(&Space) -> Result<(), EngineError>,
    (statements, values): (&[&'static str], &[&str]),
    apply: impl FnOnce(&mut Space) -> Result<(), EngineError>,
) -> Result<(), WriteError> {
    let engine_error = |error| WriteError::Engine { index: 0, error };
    check(&shared.read().unwrap_or_else(PoisonError::into_inner)).map_err(engine_error)?;
    delete_rows(db, stats, statements, values).await?;
    apply(&mut shared.write().unwrap_or_else(PoisonError::into_inner)).map_err(engine_error)
}

/// Runs deletions in one transaction, each statement with the same bound values, and counts the
/// commit as one write.
async fn delete_rows(
    db: &Database,
    stats: &WriteStats,
    statements: &[&'static str],
    values: &[&str],
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    for &statement in statements {
        let query = values
            .iter()
            .fold(sqlx::query(statement), |query, value| query.bind(*value));
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    stats.record(1);
    Ok(())
}
