//! Moving data: `dendrite export` writes every space, neuron and pattern of a database as NDJSON,
//! and `dendrite import` reads such lines into any database, so a user can move from the embedded
//! SQLite file to PostgreSQL when they outgrow one machine, back again, or between versions.
//!
//! A pattern's line carries the decisions learning made for it (its segment and synapses) as well
//! as its bits and metadata, and a neuron's line its counters, so an import rebuilds exactly the
//! segments the export came from: every query is answered identically, and no forgotten id is
//! handed out again. Export reads one consistent snapshot (a single read transaction) and takes
//! nothing from a service running on the database. Import commits the same [`Change`](super::Change)s the
//! service does, so replicas following a PostgreSQL database see it as it goes; it applies each
//! line to an engine of its own before committing it, so a line that breaks a space's rules is
//! refused, naming the line, before it reaches the database; and it skips what the database
//! already holds, so running it again changes nothing.

use super::change::{NeuronCounters, StoredParams};
use super::load::SpaceRow;
use super::{Changes, Committed, Database, StoreSettings, WriteStore};
use crate::engine::{Metadata, Name, Pattern, Space, SpaceParams, Spaces, StorePlan};
use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// The first line's `format`, and the version of the lines this build writes and reads.
const FORMAT: &str = "dendrite-export";
const VERSION: u32 = 1;
/// Lines committed together by import: large enough that a commit's cost is spread thin, small
/// enough that a failed line loses little work and a replica applies each change quickly.
const IMPORT_BATCH: usize = 1_000;
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One line of an export. Every line names its space, so lines can be filtered with grep or jq.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    /// Always first: what the file is, and the version of its lines.
    Header { format: String, version: u32 },
    /// A space with every parameter filled in; before its neurons and patterns.
    Space {
        space: Name,
        parameters: StoredParams,
    },
    /// A neuron and its counters; before its space's patterns.
    Neuron {
        space: Name,
        neuron: Name,
        next_pattern: u64,
        next_segment: u32,
    },
    /// A pattern with learning's decisions, in the order its space learned them.
    Pattern {
        space: Name,
        neuron: Name,
        id: Name,
        segment: u32,
        active: Vec<u32>,
        synapses: Vec<u32>,
        /// A value, not raw JSON: serde reads a tagged enum through a buffer that raw values
        /// cannot pass.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<serde_json::Value>,
    },
}

/// What an export wrote or an import read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transferred {
    pub spaces: u64,
    pub neurons: u64,
    pub patterns: u64,
    /// Import only: spaces, neurons and patterns the database already held as the lines say.
    pub already_held: u64,
}

/// A progress line on stderr every few seconds, or none (an export the service streams).
struct Progress {
    what: &'static str,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new(what: &'static str, shown: bool) -> Progress {
        Progress {
            what,
            last: Instant::now(),
            shown,
        }
    }

    fn tick(&mut self, counts: &Transferred) {
        if self.shown && self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            eprintln!(
                "{}: {} spaces, {} neurons, {} patterns so far",
                self.what, counts.spaces, counts.neurons, counts.patterns
            );
        }
    }
}

/// Where export's lines go: serialised, counted, progress reported.
struct Lines<W> {
    out: W,
    counts: Transferred,
    progress: Progress,
}

impl<W: Write> Lines<W> {
    fn write(&mut self, line: &Line) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        match line {
            Line::Header { .. } => {}
            Line::Space { .. } => self.counts.spaces += 1,
            Line::Neuron { .. } => self.counts.neurons += 1,
            Line::Pattern { .. } => self.counts.patterns += 1,
        }
        self.progress.tick(&self.counts);
        Ok(())
    }

    fn space(&mut self, row: &SpaceRow) -> anyhow::Result<SpaceParams> {
        let params = row
            .params()
            .with_context(|| format!("stored parameters of space {:?}", row.name))?;
        self.write(&Line::Space {
            space: Name::parse(&row.name)?,
            parameters: StoredParams::from(&params),
        })?;
        Ok(params)
    }

    fn neuron(
        &mut self,
        space: &Name,
        (neuron, next_pattern, next_segment): (String, i64, i64),
    ) -> anyhow::Result<()> {
        self.write(&Line::Neuron {
            space: space.clone(),
            neuron: Name::parse(&neuron)
                .with_context(|| format!("stored neuron name {neuron:?}"))?,
            next_pattern: u64::try_from(next_pattern).context("a negative pattern counter")?,
            next_segment: u32::try_from(next_segment).context("a segment counter out of range")?,
        })
    }

    fn pattern(&mut self, space: &Name, plan: StorePlan) -> anyhow::Result<()> {
        let metadata = plan
            .metadata
            .map(|m| serde_json::from_str(m.as_str()))
            .transpose()?;
        self.write(&Line::Pattern {
            space: space.clone(),
            neuron: plan.neuron,
            id: plan.id,
            segment: plan.segment,
            active: plan.active.cells().to_vec(),
            synapses: plan.synapses,
            metadata,
        })
    }
}

/// The database an export reads.
#[derive(Clone, Debug)]
pub enum Source {
    /// A SQLite file, read through a read-only connection of its own.
    File(std::path::PathBuf),
    /// A PostgreSQL database, read through a connection of its own.
    Postgres(Box<sqlx::postgres::PgConnectOptions>),
}

impl Source {
    /// The database a URL names.
    pub fn of_url(url: &str) -> anyhow::Result<Source> {
        if let Some(file) = super::sqlite::file_of(url) {
            Ok(Source::File(file))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = url.parse().context("the PostgreSQL URL does not parse")?;
            Ok(Source::Postgres(Box::new(options)))
        } else {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            bail!("export reads a sqlite://FILE or a postgres:// database, not {scheme:?}")
        }
    }

    /// The database a service has open; `None` for one in memory, which no other connection
    /// can read.
    pub fn of(database: &Database) -> Option<Source> {
        match database {
            Database::Sqlite(db) => db.file_path().map(Source::File),
            Database::Postgres(db) => Some(Source::Postgres(Box::new(db.options().clone()))),
        }
    }
}

/// Writes every space of the database at `url` to `out`, one consistent snapshot; progress goes
/// to stderr.
pub async fn export(url: &str, out: impl Write) -> anyhow::Result<Transferred> {
    export_from(Source::of_url(url)?, out, true).await
}

/// [`export`] from an open database's [`Source`], with progress lines on stderr or none.
pub async fn export_from(
    source: Source,
    out: impl Write,
    report_progress: bool,
) -> anyhow::Result<Transferred> {
    let mut lines = Lines {
        out: std::io::BufWriter::new(out),
        counts: Transferred::default(),
        progress: Progress::new("export", report_progress),
    };
    lines.write(&Line::Header {
        format: FORMAT.into(),
        version: VERSION,
    })?;
    match source {
        Source::File(file) => export_sqlite(&file, &mut lines)?,
        Source::Postgres(options) => export_postgres(&options, &mut lines).await?,
    }
    lines.out.flush()?;
    Ok(lines.counts)
}

/// A SQLite file through rusqlite, read-only, inside one read transaction. Deletions still being
/// purged are left out, as start-up leaves them out.
fn export_sqlite(file: &std::path::Path, lines: &mut Lines<impl Write>) -> anyhow::Result<()> {
    ensure!(
        file.exists(),
        "there is no database file {}",
        file.display()
    );
    let connection = super::sqlite::bulk::open_read_only(file)?;
    connection.execute_batch("BEGIN")?;
    let spaces: Vec<SpaceRow> = connection
        .prepare(
            "SELECT name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
             max_segments_per_neuron, seed, encoder FROM spaces \
             WHERE name NOT IN (SELECT space FROM purges WHERE neuron = '') ORDER BY name",
        )
        .context("the database's schema is older than this version's: start this version of dendrite on it once (it migrates the schema), then export")?
        .query_map([], |row| {
            Ok(SpaceRow {
                name: row.get(0)?,
                input_size: row.get(1)?,
                active_bits: row.get(2)?,
                synapses_per_pattern: row.get(3)?,
                threshold: row.get(4)?,
                max_false_match: row.get(5)?,
                max_segments_per_neuron: row.get(6)?,
                seed: row.get(7)?,
                encoder: row.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for row in &spaces {
        let params = lines.space(row)?;
        let space = Name::parse(&row.name)?;
        let mut neurons = connection.prepare(
            "SELECT name, next_pattern, next_segment FROM neurons WHERE space = ?1 \
             AND name NOT IN (SELECT neuron FROM purges WHERE space = ?1) ORDER BY name",
        )?;
        let mut rows = neurons.query([&row.name])?;
        while let Some(neuron) = rows.next()? {
            lines.neuron(&space, (neuron.get(0)?, neuron.get(1)?, neuron.get(2)?))?;
        }
        super::sqlite::bulk::read_patterns_on(&connection, &row.name, params.input_size, |plans| {
            plans
                .into_iter()
                .try_for_each(|plan| lines.pattern(&space, plan))
        })
        .with_context(|| format!("the stored patterns of space {space}"))?;
    }
    connection.execute_batch("COMMIT")?;
    Ok(())
}

/// A PostgreSQL database inside one repeatable-read, read-only transaction.
async fn export_postgres(
    options: &sqlx::postgres::PgConnectOptions,
    lines: &mut Lines<impl Write>,
) -> anyhow::Result<()> {
    use futures_util::TryStreamExt;
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect_with(options)
        .await
        .context("cannot connect to the PostgreSQL database")?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut connection)
        .await?;
    let spaces: Vec<SpaceRow> = sqlx::query_as(
        "SELECT name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
         max_segments_per_neuron, seed, encoder FROM spaces ORDER BY name",
    )
    .fetch_all(&mut connection)
    .await?;
    for row in &spaces {
        let params = lines.space(row)?;
        let space = Name::parse(&row.name)?;
        let neurons: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, next_pattern, next_segment FROM neurons WHERE space = $1 ORDER BY name",
        )
        .bind(&row.name)
        .fetch_all(&mut connection)
        .await?;
        for neuron in neurons {
            lines.neuron(&space, neuron)?;
        }
        let mut rows = sqlx::query(super::load::POSTGRES_PATTERNS_OF_SPACE)
            .bind(&row.name)
            .fetch(&mut connection);
        let mut last_neuron = None;
        while let Some(row) = rows.try_next().await? {
            let plan = super::load::PatternRow::from_postgres(&row)?
                .plan(params.input_size, &mut last_neuron)
                .with_context(|| format!("a stored pattern of space {space}"))?;
            lines.pattern(&space, plan)?;
        }
    }
    sqlx::query("COMMIT").execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

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
        let change = super::Change::CreateSpace {
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
                self.commit(&[], super::Change::Neurons { space, neurons })
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
                self.commit(&[], super::Change::Store { patterns }).await
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
    async fn commit(&mut self, spaces: &[&Name], change: super::Change) -> anyhow::Result<()> {
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
