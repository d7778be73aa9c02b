//! `dendrite import`: export lines into any database, committed as the service commits its
//! changes, each line applied to an engine of its own first (a line that breaks a space's rules
//! is refused, naming it, before it reaches the database) and what the database already holds
//! skipped, so running it again changes nothing.

use super::{FORMAT, IMPORT_BATCH, Line, Progress, Transferred, VERSION};
use crate::engine::{Metadata, Name, Pattern, Space, SpaceParams, Spaces, StorePlan};
use crate::store::change::NeuronCounters;
use crate::store::{Changes, Committed, Database, StoreSettings, WriteStore};
use anyhow::{Context, bail, ensure};
use std::io::BufRead;
use std::sync::PoisonError;

/// Reads export lines from `input` into the database at `url` (created and migrated if new);
/// progress goes to stderr. Lines up to a refused one stay committed; running the import again
/// after fixing the cause picks up where it stopped.
pub async fn import(url: &str, input: impl BufRead) -> anyhow::Result<Transferred> {
    let database = Database::open(url, &StoreSettings::default()).await?;
    let spaces = Spaces::default();
    let outcome = async {
        let loaded = database.load(&spaces).await?;
        match &database {
            Database::Sqlite(db) => {
                Importer::new(db.writes(), &spaces, loaded.sequence)
                    .run(input)
                    .await
            }
            Database::Postgres(db) => {
                Importer::new(db.writes(), &spaces, loaded.sequence)
                    .run(input)
                    .await
            }
        }
    }
    .await;
    database.close().await;
    outcome
}

/// Lines waiting to be committed together: neurons of one space, or patterns.
enum Pending {
    Nothing,
    Neurons(Name, Vec<NeuronCounters>),
    /// (line number, space, plan).
    Patterns(Vec<(u64, Name, StorePlan)>),
}

struct Importer<'a, W: WriteStore> {
    writes: W,
    spaces: &'a Spaces,
    /// The last change this importer's engine holds.
    applied: u64,
    pending: Pending,
    counts: Transferred,
    progress: Progress,
}

impl<'a, W: WriteStore> Importer<'a, W> {
    fn new(writes: W, spaces: &'a Spaces, applied: u64) -> Importer<'a, W> {
        Importer {
            writes,
            spaces,
            applied,
            pending: Pending::Nothing,
            counts: Transferred::default(),
            progress: Progress::new("import", true),
        }
    }

    async fn run(mut self, input: impl BufRead) -> anyhow::Result<Transferred> {
        let outcome = self.read(input).await;
        self.writes.close().await;
        outcome.map(|()| self.counts)
    }

    async fn read(&mut self, input: impl BufRead) -> anyhow::Result<()> {
        // Deletions a stopped service left half done are finished first: rows of a deleted
        // space or neuron must be gone before lines may bring one of the same name back.
        for purge in self.writes.pending_purges().await? {
            while !self.writes.purge_step(&purge, 10_000).await? {}
        }
        let mut number = 0;
        for text in input.lines() {
            number += 1;
            let text = text.with_context(|| format!("cannot read line {number}"))?;
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&text)
                .with_context(|| format!("line {number} is not an export line"))?;
            match (number, line) {
                (1, Line::Header { format, version }) => {
                    ensure!(
                        format == FORMAT && version <= VERSION,
                        "line 1: this is {format:?} version {version}; this build reads {FORMAT:?} up to version {VERSION}"
                    );
                }
                (1, _) => bail!("line 1 is not the header an export begins with"),
                (_, Line::Header { .. }) => bail!("line {number}: a second header"),
                (_, line) => self
                    .take(number, line)
                    .await
                    .with_context(|| format!("line {number}"))?,
            }
            self.progress.tick(&self.counts);
        }
        ensure!(
            number > 0,
            "the input is empty: an export begins with its header line"
        );
        self.flush().await
    }

    async fn take(&mut self, number: u64, line: Line) -> anyhow::Result<()> {
        match line {
            Line::Header { .. } => unreachable!("headers are handled by the reader"),
            Line::Space { space, parameters } => {
                self.flush().await?;
                self.counts.spaces += 1;
                self.create_space(space, SpaceParams::new(&parameters.into())?)
                    .await
            }
            Line::Neuron {
                space,
                neuron,
                next_pattern,
                next_segment,
            } => {
                self.counts.neurons += 1;
                let held = self
                    .space(&space)?
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .neuron_counters(&neuron);
                if held.is_some_and(|(pattern, segment)| {
                    pattern >= next_pattern && segment >= next_segment
                }) {
                    self.counts.already_held += 1;
                    return Ok(());
                }
                if !matches!(&self.pending, Pending::Neurons(pending, list) if *pending == space && list.len() < IMPORT_BATCH)
                {
                    self.flush().await?;
                    self.pending = Pending::Neurons(space, Vec::new());
                }
                if let Pending::Neurons(_, list) = &mut self.pending {
                    list.push(NeuronCounters {
                        neuron,
                        next_pattern,
                        next_segment,
                    });
                }
                Ok(())
            }
            Line::Pattern {
                space,
                neuron,
                id,
                segment,
                active,
                synapses,
                metadata,
            } => {
                self.counts.patterns += 1;
                let shared = self.space(&space)?;
                let plan = StorePlan {
                    neuron,
                    id,
                    active: Pattern::from_sorted(
                        active,
                        shared
                            .read()
                            .unwrap_or_else(PoisonError::into_inner)
                            .params()
                            .input_size,
                    )?,
                    synapses,
                    segment,
                    metadata: metadata.map(Metadata::from_value).transpose()?,
                };
                if let Ok(held) = shared
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pattern(&plan.neuron, &plan.id)
                {
                    ensure!(
                        held.active == plan.active
                            && held.synapses == plan.synapses
                            && held.segment == plan.segment
                            && held.metadata == plan.metadata,
                        "neuron {} of space {space} already holds a pattern {} that differs from this line's",
                        plan.neuron,
                        plan.id
                    );
                    self.counts.already_held += 1;
                    return Ok(());
                }
                if !matches!(&self.pending, Pending::Patterns(list) if list.len() < IMPORT_BATCH) {
                    self.flush().await?;
                    self.pending = Pending::Patterns(Vec::new());
                }
                if let Pending::Patterns(list) = &mut self.pending {
                    list.push((number, space, plan));
                }
                Ok(())
            }
        }
    }

    fn space(&self, name: &Name) -> anyhow::Result<crate::engine::SharedSpace> {
        self.spaces.get(name).with_context(|| {
            format!("space {name} has no line of its own before its neurons and patterns")
        })
    }

    async fn create_space(&mut self, space: Name, params: SpaceParams) -> anyhow::Result<()> {
        if let Some(held) = self.spaces.get(&space) {
            let held = held.read().unwrap_or_else(PoisonError::into_inner);
            let differences = held.params().differences(&params);
            ensure!(
                differences.is_empty(),
                "space {space} exists with other parameters: {}",
                differences.join(", ")
            );
            self.counts.already_held += 1;
            return Ok(());
        }
        let change = crate::store::Change::CreateSpace {
            space: space.clone(),
            params: params.clone(),
        };
        self.commit(&[&space], change).await?;
        self.spaces.insert(Space::new(space, params));
        Ok(())
    }

    /// Commits the pending lines, each applied to this importer's engine first.
    async fn flush(&mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Nothing => Ok(()),
            Pending::Neurons(space, neurons) => {
                let shared = self.space(&space)?;
                self.lock(&[&space]).await?;
                shared.update(|s| {
                    for c in &neurons {
                        s.restore_neuron(&c.neuron, c.next_pattern, c.next_segment);
                    }
                });
                self.commit(&[], crate::store::Change::Neurons { space, neurons })
                    .await
            }
            Pending::Patterns(lines) => {
                let mut names: Vec<&Name> = lines.iter().map(|(_, space, _)| space).collect();
                names.sort_unstable();
                names.dedup();
                self.lock(&names).await?;
                for (number, space, plan) in &lines {
                    let applied = self.space(space)?.update(|s| s.apply_store(plan.clone()));
                    if let Err(error) = applied {
                        self.writes.rollback().await;
                        bail!("line {number}: {error}");
                    }
                }
                let patterns = lines
                    .into_iter()
                    .map(|(_, space, plan)| (space, plan))
                    .collect();
                self.commit(&[], crate::store::Change::Store { patterns })
                    .await
            }
        }
    }

    /// Opens a write holding `spaces`' locks and applies what other replicas committed first, so
    /// lines are checked against the state they will join.
    async fn lock(&mut self, spaces: &[&Name]) -> anyhow::Result<()> {
        self.writes.begin(spaces).await?;
        loop {
            match self.writes.changes_after(self.applied, 1_000).await? {
                Changes::Next { changes, .. } if changes.is_empty() => return Ok(()),
                Changes::Next { changes, .. } => {
                    for (sequence, change) in changes {
                        change.apply(self.spaces, sequence)?;
                        self.applied = sequence;
                    }
                }
                Changes::Compacted { .. } => {
                    self.writes.rollback().await;
                    bail!(
                        "the database's change log moved past this import while it ran; run it again"
                    )
                }
            }
        }
    }

    /// Commits `change` (opening the write holding `spaces`' locks unless one is open).
    async fn commit(
        &mut self,
        spaces: &[&Name],
        change: crate::store::Change,
    ) -> anyhow::Result<()> {
        if !spaces.is_empty() {
            self.lock(spaces).await?;
        }
        let Committed { sequence, before } = self.writes.commit(&change, self.applied).await?;
        // Other replicas' changes to other spaces, committed between the lock and this commit.
        for (earlier, other) in before {
            other.apply(self.spaces, earlier)?;
        }
        self.applied = sequence;
        Ok(())
    }
}
