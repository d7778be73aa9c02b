//! Group commit: the store commands waiting in the queue are planned in order against the engine
//! (a [`Planner`] per space lets each see the plans before it, so every request is validated
//! against the state it commits into), and all their rows go in one transaction: one fsync for
//! many writes. A command the engine or the memory limit refuses is answered at once and leaves
//! the others to commit; a failed commit answers every accepted command with the fault.

use super::command::{Command, StoreCommand, Stored, Written};
use super::error::WriteError;
use super::task::{Work, WriterTask};
use crate::engine::{Name, Planned, Planner, StorePlan};
use crate::store::{Change, WriteStore};
use std::collections::HashMap;
use std::sync::PoisonError;
use tokio::sync::mpsc;

/// The most patterns one commit carries: bounds the latency a large group adds.
const MAX_PATTERNS_PER_COMMIT: usize = 20_000;

/// What a store request is answered with once applied: (neuron, id, whether it is new).
type Answer = (Name, Name, bool);

/// A group once planned: the commands accepted, each with its answers, and the new patterns
/// to commit for all of them.
#[derive(Default)]
struct PlannedGroup {
    accepted: Vec<(StoreCommand, Vec<Answer>)>,
    patterns: Vec<(Name, StorePlan)>,
}

/// The engine's memory limit as a group spends it: (limit, bytes in use or planned so far).
struct MemoryBudget(Option<(u64, u64)>);

impl MemoryBudget {
    /// Takes `cost` from the budget, or refuses it whole.
    fn spend(&mut self, cost: u64) -> Result<(), WriteError> {
        if let Some((limit, in_use)) = &mut self.0 {
            if *in_use + cost > *limit {
                return Err(WriteError::MemoryFull {
                    limit: *limit,
                    in_use: *in_use,
                    needed: cost,
                });
            }
            *in_use += cost;
        }
        Ok(())
    }

    fn is_limited(&self) -> bool {
        self.0.is_some()
    }
}

impl<S: WriteStore> WriterTask<S> {
    /// `first` with the store commands queued behind it, up to a commit's worth of patterns; a
    /// command of another kind is kept in `next` for the turn after.
    pub(super) fn gather(
        first: Command,
        queue: &mut mpsc::Receiver<Command>,
        next: &mut Option<Command>,
    ) -> Work {
        let Command::Store(first) = first else {
            return Work::One(first);
        };
        let mut patterns = first.requests.len();
        let mut group = vec![first];
        while patterns < MAX_PATTERNS_PER_COMMIT {
            match queue.try_recv() {
                Ok(Command::Store(store)) => {
                    patterns += store.requests.len();
                    group.push(store);
                }
                Ok(other) => {
                    *next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        Work::Stores(group)
    }

    pub(super) async fn store_group(&mut self, group: Vec<StoreCommand>) {
        let mut names: Vec<&Name> = group.iter().map(|command| &command.space).collect();
        names.sort_unstable();
        names.dedup();
        if let Err(error) = self.lock(&names).await {
            for command in group {
                let _ = command.reply.send(Err(error.clone().into()));
            }
            return;
        }
        let PlannedGroup { accepted, patterns } = self.plan_group(group);
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
                    for (command, _) in accepted {
                        let _ = command.reply.send(Err(error.clone().into()));
                    }
                    return;
                }
            }
        };
        for (command, answers) in accepted {
            let answer = self.stored(&command.space, &answers, sequence);
            let _ = command.reply.send(answer);
        }
    }

    /// Plans each command of `group` in order, answering the refused ones at once.
    fn plan_group(&self, group: Vec<StoreCommand>) -> PlannedGroup {
        let mut planners: HashMap<Name, Planner> = HashMap::new();
        let mut budget = MemoryBudget(self.memory_limit.map(|limit| (limit, self.engine_bytes())));
        let mut planned = PlannedGroup::default();
        for command in group {
            let planner = planners.entry(command.space.clone()).or_default();
            match self.plan_command(planner, &mut budget, &command) {
                Ok(plans) => {
                    let answers = plans
                        .iter()
                        .map(|p| {
                            let created = matches!(p, Planned::New(_));
                            (p.neuron().clone(), p.id().clone(), created)
                        })
                        .collect();
                    for plan in plans {
                        if let Planned::New(plan) = plan {
                            planned.patterns.push((command.space.clone(), plan));
                        }
                    }
                    planned.accepted.push((command, answers));
                }
                Err(error) => {
                    let _ = command.reply.send(Err(error));
                }
            }
        }
        planned
    }

    /// One command's plans, within the memory budget.
    ///
    /// Refused before anything is committed, so the engine does not grow past its limit. Each
    /// command of a group is costed against the space as it was before the group: two commands
    /// that both open segments may count the same dense block of slots, so the limit holds to
    /// within one block.
    fn plan_command(
        &self,
        planner: &mut Planner,
        budget: &mut MemoryBudget,
        command: &StoreCommand,
    ) -> Result<Vec<Planned>, WriteError> {
        let shared = self.space_of(&command.space)?;
        let space = shared.read().unwrap_or_else(PoisonError::into_inner);
        let plans = planner
            .plan(&space, &command.requests)
            .map_err(|(index, error)| WriteError::Engine { index, error })?;
        // Costed only when a limit is set: stores without one pay nothing for it.
        if budget.is_limited() {
            let cost = space.estimated_cost(plans.iter().filter_map(|p| match p {
                Planned::New(plan) => Some(plan),
                Planned::Existing { .. } => None,
            }));
            budget.spend(cost)?;
        }
        Ok(plans)
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
}
