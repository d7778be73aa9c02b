//! `dendrite export`: every space, neuron and pattern of a database as NDJSON lines, read from
//! one consistent snapshot (a single read transaction) of a SQLite file or a PostgreSQL database.

use super::{FORMAT, Line, Progress, Transferred, VERSION};
use crate::engine::{Name, SpaceParams, StorePlan};
use crate::store::Database;
use crate::store::change::StoredParams;
use crate::store::load::SpaceRow;
use anyhow::{Context, bail, ensure};
use std::io::Write;

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
        if let Some(file) = crate::store::sqlite::file_of(url) {
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
    let connection = crate::store::sqlite::bulk::open_read_only(file)?;
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
        crate::store::sqlite::bulk::read_patterns_on(
            &connection,
            &row.name,
            params.input_size,
            |plans| {
                plans
                    .into_iter()
                    .try_for_each(|plan| lines.pattern(&space, plan))
            },
        )
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
        let mut rows = sqlx::query(crate::store::load::POSTGRES_PATTERNS_OF_SPACE)
            .bind(&row.name)
            .fetch(&mut connection);
        let mut last_neuron = None;
        while let Some(row) = rows.try_next().await? {
            let plan = crate::store::load::PatternRow::from_postgres(&row)?
                .plan(params.input_size, &mut last_neuron)
                .with_context(|| format!("a stored pattern of space {space}"))?;
            lines.pattern(&space, plan)?;
        }
    }
    sqlx::query("COMMIT").execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}
