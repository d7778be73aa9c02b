//! Durable state in SQLite: the schema, loading every space at start-up, and the write path.
//!
//! The engine's memory is a pure function of the rows: [`Database::load`] replays stored plans in
//! learning order, so a restarted service answers exactly as before. Every write goes through the
//! [`writer`], which commits before it applies and answers only after the commit returns.

pub mod backup;
mod bulk;
pub mod connection;
pub mod health;
pub mod writer;

use crate::engine::{Name, Space, SpaceParams, SpaceSpec, Spaces, StorePlan};
use anyhow::Context;
use connection::WriteConnection;
use health::{Fault, StorageError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The SQLite database behind the service.
#[derive(Clone, Debug)]
pub struct Database {
    /// Reads: loading at start-up and the readiness ping. Writes go through a [`WriteConnection`].
    pool: SqlitePool,
    options: SqliteConnectOptions,
    /// `sqlite::memory:`: no file, and nothing stored before this process opened it.
    in_memory: bool,
}

/// SQLite's page size for new databases: `max_database_size` counts in these.
const PAGE_SIZE: u64 = 4096;

/// A start-up error that says which database failed and what to do about it.
fn cannot_write(url: &str, error: &StorageError) -> anyhow::Error {
    let fix = match error.fault {
        Fault::ReadOnly => {
            "make the file, its -wal and -shm companions and its folder writable by the user running dendrite"
        }
        Fault::Full => "free space on its disk (or raise --max-database-size)",
        Fault::Locked => "stop the other process that holds it open for writing",
        Fault::Io | Fault::Other => "check the file and its disk",
    };
    anyhow::anyhow!("cannot use the database {url}: {error}; {fix}, then start again")
}

/// A failed migration: a database that cannot be written says so, anything else is passed on.
#[allow(clippy::wildcard_enum_match_arm)] // MigrateError is non_exhaustive
fn migration_failed(url: &str, error: sqlx::migrate::MigrateError) -> anyhow::Error {
    match error {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => cannot_write(url, &e.into()),
        other => anyhow::Error::new(other).context("cannot migrate the database"),
    }
}

/// How the database file is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSettings {
    /// Cap on the file in bytes (SQLite's `max_page_count`): past it writes fail as on a full
    /// disk. `None`: only the disk limits it.
    pub max_size: Option<u64>,
    /// WAL pages after which a commit checkpoints the WAL into the database (SQLite's
    /// `wal_autocheckpoint`; 0 never: a replicator such as Litestream checkpoints instead).
    /// `None`: SQLite's default, 1000 pages.
    pub wal_autocheckpoint: Option<u32>,
}

/// What start-up loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadSummary {
    pub spaces: u64,
    pub neurons: u64,
    pub patterns: u64,
    pub elapsed: Duration,
}

impl Database {
    /// Opens (creating if missing) and migrates the database at `url`, and checks that it takes
    /// a commit: a database that cannot be written is refused here, with the fix, rather than
    /// served as "ready" with every write failing.
    ///
    /// WAL lets the readiness probe read while the writer writes; `synchronous=FULL` makes every
    /// commit durable across power loss before the writer acknowledges it. `settings` caps the
    /// file and sets how often the WAL is checkpointed.
    pub async fn open(url: &str, settings: &FileSettings) -> anyhow::Result<Database> {
        let mut options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid database URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(bytes) = settings.max_size {
            options = options.pragma("max_page_count", (bytes / PAGE_SIZE).max(1).to_string());
        }
        if let Some(pages) = settings.wal_autocheckpoint {
            options = options.pragma("wal_autocheckpoint", pages.to_string());
        }
        // An in-memory database lives as long as one of its connections: the pool keeps one open
        // for good, and the writer's connection shares it (sqlx names it and shares its cache).
        let in_memory = url.contains(":memory:");
        let connections = if in_memory { 1 } else { 2 };
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot_write(url, &e.into()))?;
        sqlx::migrate!()
            .run(&pool)
            .await
            .map_err(|error| migration_failed(url, error))?;
        let database = Database {
            pool,
            options,
            in_memory,
        };
        let mut probe = database.write_connection();
        let probed = probe.probe().await;
        probe.close().await;
        probed.map_err(|e| cannot_write(url, &e))?;
        Ok(database)
    }

    /// A connection for the writer, with the same settings as the pool's.
    pub fn write_connection(&self) -> WriteConnection {
        WriteConnection::new(self.options.clone())
    }

    /// The database's file; `None` in memory.
    fn file_path(&self) -> Option<std::path::PathBuf> {
        (!self.in_memory).then(|| self.options.get_filename().to_owned())
    }

    /// Bytes the database takes on disk: its file and its write-ahead log; `None` in memory.
    pub async fn file_bytes(&self) -> Option<u64> {
        let file = self.file_path()?;
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        let size = |path: std::path::PathBuf| async move {
            tokio::fs::metadata(&path).await.map_or(0, |m| m.len())
        };
        Some(size(file).await + size(wal.into()).await)
    }

    /// Whether the database answers a query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes every connection cleanly (the WAL is checkpointed).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Rebuilds every space from its rows into `spaces`.
    pub async fn load(&self, spaces: &Spaces) -> anyhow::Result<LoadSummary> {
        let started = Instant::now();
        let mut summary = LoadSummary::default();
        let rows: Vec<SpaceRow> = sqlx::query_as(
            "SELECT name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
             max_segments_per_neuron, seed FROM spaces ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let name = Name::parse(&row.name)
                .with_context(|| format!("stored space name {:?}", row.name))?;
            let params = row
                .params()
                .with_context(|| format!("stored parameters of space {name}"))?;
            let mut space = Space::new(name.clone(), params);
            let neurons: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT name, next_pattern, next_segment FROM neurons WHERE space = ?1",
            )
            .bind(name.as_str())
            .fetch_all(&self.pool)
            .await?;
            for (neuron, next_pattern, next_segment) in neurons {
                let neuron = Name::parse(&neuron)
                    .with_context(|| format!("stored neuron name {neuron:?}"))?;
                space.restore_neuron(&neuron, next_pattern as u64, next_segment as u32);
                summary.neurons += 1;
            }
            // Rows are read and decoded on one thread while another applies the previous chunk,
            // so start-up costs about the larger of reading and applying, not their sum.
            let input_size = space.params().input_size;
            let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<StorePlan>>(4);
            let applier = std::thread::spawn(move || {
                let mut busy = Duration::ZERO;
                for plans in received {
                    let started = Instant::now();
                    space.apply_stores(plans);
                    busy += started.elapsed();
                }
                (space, busy)
            });
            let path = self.file_path().with_context(|| {
                format!("an in-memory database cannot hold space {name} at start-up")
            });
            let space_name = name.as_str().to_owned();
            let read = tokio::task::spawn_blocking(move || {
                bulk::read_patterns(&path?, &space_name, input_size, |chunk| {
                    chunks
                        .send(chunk)
                        .map_err(|_| anyhow::anyhow!("the loader thread stopped"))
                })
            })
            .await;
            let (space, busy) = applier
                .join()
                .map_err(|_| anyhow::anyhow!("the loader thread panicked"))?;
            summary.patterns += read
                .context("the reader thread failed")?
                .with_context(|| format!("the stored patterns of space {name}"))?;
            tracing::debug!(space = %name, apply_ms = busy.as_millis() as u64, "space rebuilt");
            spaces.insert(space);
            summary.spaces += 1;
        }
        summary.elapsed = started.elapsed();
        Ok(summary)
    }
}

#[derive(sqlx::FromRow)]
struct SpaceRow {
    name: String,
    input_size: i64,
    active_bits: i64,
    synapses_per_pattern: i64,
    threshold: i64,
    max_false_match: f64,
    max_segments_per_neuron: i64,
    seed: i64,
}

impl SpaceRow {
    fn params(&self) -> anyhow::Result<SpaceParams> {
        let narrow = |v: i64| u32::try_from(v).context("out of range");
        let spec = SpaceSpec {
            input_size: narrow(self.input_size)?,
            active_bits: narrow(self.active_bits)?,
            synapses_per_pattern: Some(narrow(self.synapses_per_pattern)?),
            threshold: Some(narrow(self.threshold)?),
            max_false_match: Some(self.max_false_match),
            max_segments_per_neuron: Some(narrow(self.max_segments_per_neuron)?),
            seed: Some(u64::try_from(self.seed).context("negative seed")?),
        };
        Ok(SpaceParams::new(&spec)?)
    }
}

/// Cells as little-endian u32s, the column encoding of `patterns.active` and `patterns.synapses`.
pub(crate) fn encode_cells(cells: &[u32]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn decode_cells(bytes: &[u8]) -> anyhow::Result<Vec<u32>> {
    anyhow::ensure!(
        bytes.len().is_multiple_of(4),
        "a cell list of {} bytes",
        bytes.len()
    );
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip_through_their_column_encoding() {
        let cells = vec![0, 7, 65_536, u32::MAX];
        assert_eq!(decode_cells(&encode_cells(&cells)).unwrap(), cells);
        assert!(decode_cells(&[1, 2, 3]).is_err());
    }
}
