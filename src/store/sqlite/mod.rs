//! The embedded backend: one SQLite file, one dendrite process.
//!
//! One process owns the file, so its writer is the only one: a write needs no lock beyond
//! SQLite's own, nothing is ever committed behind its back, and its sequence is simply the count
//! of write transactions (the `write_sequence` row). There is no change log to follow; the
//! tables are the state, and a backup is a copy of the file.

pub(super) mod bulk;
pub mod connection;
pub mod owner;
pub mod restore;
mod sql;

use super::fault::{Fault, StorageError};
use super::load::{SpaceRow, StoredRows, load_spaces};
use super::{Change, Changes, Committed, LoadSummary, Purge, StoreSettings, WriteStore};
use crate::engine::{Name, Spaces, StorePlan};
use anyhow::Context;
use connection::WriteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

/// The file a `sqlite://` URL names; `None` for an in-memory database or another scheme.
pub fn file_of(url: &str) -> Option<PathBuf> {
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let file = file.split('?').next().unwrap_or(file);
    (!file.is_empty() && !file.contains(":memory:")).then(|| PathBuf::from(file))
}

/// SQLite's page size for new databases: `max_database_size` counts in these.
const PAGE_SIZE: u64 = 4096;

/// Below this room under `--max-database-size` (or a tenth of the limit, if less) the database
/// counts as full: a large batch (up to about 5 MB of rows) would no longer fit.
const SIZE_LIMIT_MARGIN: u64 = 8 << 20;

/// The SQLite database behind the service.
#[derive(Clone, Debug)]
pub struct SqliteDatabase {
    /// Reads: loading at start-up and the readiness ping. Writes go through a [`WriteConnection`].
    pub(super) pool: SqlitePool,
    options: SqliteConnectOptions,
    /// `sqlite::memory:`: no file, and nothing stored before this process opened it.
    in_memory: bool,
    /// `--max-database-size`, in bytes.
    max_size: Option<u64>,
    /// This process's claim on the file: held until [`SqliteDatabase::close`] (or until every
    /// handle is dropped), so a process that stopped serving lets the next one in at once, even
    /// while a task of its own still holds a handle.
    owner: std::sync::Arc<std::sync::Mutex<Option<owner::FileOwner>>>,
}

/// A start-up error that says which database failed and what to do about it.
pub(super) fn cannot_write(url: &str, error: &StorageError) -> anyhow::Error {
    let fix = match error.fault() {
        Fault::ReadOnly => {
            "make the file, its -wal and -shm companions and its folder writable by the user running dendrite"
        }
        Fault::Full => "free space on its disk",
        Fault::SizeLimit => "raise --max-database-size (DENDRITE_MAX_DATABASE_SIZE)",
        Fault::Locked => "stop the other process that holds it open for writing",
        Fault::Io | Fault::Behind | Fault::Other => "check the file and its disk",
    };
    anyhow::anyhow!("cannot use the database {url}: {error}; {fix}, then start again")
}

impl SqliteDatabase {
    /// Opens (creating if missing) and migrates the database at `url`, and checks that it takes
    /// a commit: a database that cannot be written is refused here, with the fix, rather than
    /// served as "ready" with every write failing.
    ///
    /// WAL lets the readiness probe read while the writer writes; `synchronous=FULL` makes every
    /// commit durable across power loss before the writer acknowledges it. `settings` caps the
    /// file and sets how often the WAL is checkpointed.
    pub async fn open(url: &str, settings: &StoreSettings) -> anyhow::Result<SqliteDatabase> {
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
        let folder = options.get_filename().parent().map(Path::to_path_buf);
        if let Some(folder) = folder.filter(|f| !in_memory && !f.as_os_str().is_empty())
            && !folder.is_dir()
        {
            // Not created here: a missing folder is more often a typo, or a volume that is not
            // mounted, than a wish for a new directory.
            anyhow::bail!(
                "cannot use the database {url}: the folder {} does not exist; create it first (the database file in it is created if missing)",
                folder.display()
            );
        }
        // Claimed before the first connection: a second process stops here, before it migrates
        // or loads anything.
        let owner = if in_memory {
            None
        } else {
            Some(
                owner::FileOwner::claim(options.get_filename())
                    .with_context(|| format!("cannot use the database {url}"))?,
            )
        };
        let connections = if in_memory { 1 } else { 2 };
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot_write(url, &e.into()))?;
        if settings.integrity_check && !in_memory {
            check_integrity(&pool, url).await?;
        }
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| super::migration_failed(url, error, cannot_write))?;
        let database = SqliteDatabase {
            pool,
            options,
            in_memory,
            max_size: settings.max_size,
            owner: std::sync::Arc::new(std::sync::Mutex::new(owner)),
        };
        super::refuse_unless_writable(database.writes(), url, cannot_write).await?;
        Ok(database)
    }

    /// The writer's side of the database, on a connection of its own.
    pub fn writes(&self) -> SqliteWrites {
        SqliteWrites {
            connection: WriteConnection::new(self.options.clone()),
            capped: self.max_size.is_some(),
        }
    }

    /// The database's file; `None` in memory.
    pub(super) fn file_path(&self) -> Option<std::path::PathBuf> {
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

    /// Why writes would fail for want of room under `--max-database-size`, or `None` when there
    /// is room (or no limit): what `/readyz` adds to the writer's own health, since a small probe
    /// commit can still fit where every real store fails.
    pub async fn size_limit_problem(&self) -> Option<String> {
        self.max_size?;
        let mut connection = self.pool.acquire().await.ok()?;
        let (room, cap) = sql::room_bytes(&mut connection).await.ok()?;
        is_at_size_limit(room, cap).then(|| {
            format!(
                "the database is at its size limit: {} bytes of --max-database-size {cap} are free; forget patterns or delete neurons or spaces to make room, or raise DENDRITE_MAX_DATABASE_SIZE and restart",
                room
            )
        })
    }

    /// Closes every connection cleanly (the WAL is checkpointed), then lets go of the file.
    pub async fn close(&self) {
        self.pool.close().await;
        self.owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Rebuilds every space from its rows into `spaces`, leaving out the rows of deletions
    /// still being purged. Only this process writes the file, so the rows read here are the
    /// state at the write sequence read first.
    pub async fn load(&self, spaces: &Spaces) -> anyhow::Result<LoadSummary> {
        let started = Instant::now();
        let sequence: i64 = sqlx::query_scalar("SELECT last FROM write_sequence WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let mut summary = LoadSummary {
            sequence: sequence as u64,
            ..LoadSummary::default()
        };
        load_spaces(&mut SqliteRows { database: self }, spaces, &mut summary).await?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }
}

/// A SQLite file's rows for a load, leaving out the rows of deletions still being purged. The
/// pattern rows are read by rusqlite on a blocking thread ([`bulk`]).
struct SqliteRows<'d> {
    database: &'d SqliteDatabase,
}

impl StoredRows for SqliteRows<'_> {
    async fn spaces(&mut self) -> anyhow::Result<Vec<SpaceRow>> {
        Ok(sqlx::query_as(
            "SELECT name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
             max_segments_per_neuron, seed, encoder FROM spaces \
             WHERE name NOT IN (SELECT space FROM purges WHERE neuron = '') ORDER BY name",
        )
        .fetch_all(&self.database.pool)
        .await?)
    }

    async fn neurons(&mut self, space: &Name) -> anyhow::Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT name, next_pattern, next_segment FROM neurons WHERE space = ?1 \
             AND name NOT IN (SELECT neuron FROM purges WHERE space = ?1)",
        )
        .bind(space.as_str())
        .fetch_all(&self.database.pool)
        .await?)
    }

    async fn patterns(
        &mut self,
        space: &Name,
        input_size: u32,
        chunks: SyncSender<Vec<StorePlan>>,
    ) -> anyhow::Result<u64> {
        let path = self.database.file_path().with_context(|| {
            format!("an in-memory database cannot hold space {space} at start-up")
        })?;
        let space = space.as_str().to_owned();
        tokio::task::spawn_blocking(move || {
            bulk::read_patterns(&path, &space, input_size, |chunk| {
                chunks
                    .send(chunk)
                    .map_err(|_| anyhow::anyhow!("the loader thread stopped"))
            })
        })
        .await
        .context("the reader thread failed")?
    }
}

/// Refuses a damaged file before anything is read from it: a zeroed or garbled page would
/// otherwise be served as healthy until some later write or read trips over it (500s then).
/// `quick_check` reads every page (2–3 s per gigabyte here; the log says how long it took),
/// without the index cross-checks of a full `integrity_check`; the per-pattern checksums catch
/// what it cannot see, changed bytes inside a row.
async fn check_integrity(pool: &SqlitePool, url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(10)")
        .fetch_all(pool)
        .await
        .map_err(|error| anyhow::anyhow!("cannot check the database {url}: {error}"))?;
    if problems.len() != 1 || problems[0] != "ok" {
        anyhow::bail!(
            "the database {url} is damaged ({}): restore it from a backup, or start with --skip-integrity-check to serve what can still be read",
            problems.join("; ").chars().take(500).collect::<String>()
        );
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "the database file passed its integrity check"
    );
    Ok(())
}

/// Whether `room` bytes left under a limit of `cap` are too few for a large write.
fn is_at_size_limit(room: u64, cap: u64) -> bool {
    room < SIZE_LIMIT_MARGIN.min(cap / 10)
}

/// The writer's side of a SQLite database.
pub struct SqliteWrites {
    connection: WriteConnection,
    /// Whether `--max-database-size` is set: then a full database may be the limit, not the disk.
    capped: bool,
}

impl SqliteWrites {
    /// `error` as the limit it is, when the disk reported full while the file is at its
    /// configured size.
    async fn blame_the_limit(&mut self, mut error: StorageError) -> StorageError {
        if error.fault() == Fault::Full && self.capped {
            let room = self
                .connection
                .transaction(async |connection| sql::room_bytes(connection).await)
                .await;
            if let Ok((room, cap)) = room
                && is_at_size_limit(room, cap)
                && let StorageError::Database { fault, .. } = &mut error
            {
                *fault = Fault::SizeLimit;
            }
        }
        error
    }
}

impl WriteStore for SqliteWrites {
    /// Nothing to lock: this process's writer is the file's only one.
    async fn begin(&mut self, _spaces: &[&Name]) -> Result<(), StorageError> {
        Ok(())
    }

    /// Nobody else writes the file, so nothing was committed that this replica has not applied.
    async fn changes_after(
        &mut self,
        applied: u64,
        _limit: usize,
    ) -> Result<Changes, StorageError> {
        Ok(Changes::Next {
            changes: Vec::new(),
            head: applied,
        })
    }

    async fn commit(&mut self, change: &Change, _applied: u64) -> Result<Committed, StorageError> {
        let committed = self
            .connection
            .transaction(async |connection| {
                sql::write_change(&mut *connection, change).await?;
                sql::count_write(connection).await
            })
            .await;
        let sequence = match committed {
            Ok(sequence) => sequence,
            Err(error) => return Err(self.blame_the_limit(error).await),
        };
        Ok(Committed {
            sequence,
            before: Vec::new(),
        })
    }

    async fn rollback(&mut self) {}

    async fn probe(&mut self) -> Result<(), StorageError> {
        self.connection.probe().await
    }

    /// Never needed: the file cannot change behind the writer.
    async fn reload(&mut self, _spaces: &Spaces) -> anyhow::Result<u64> {
        anyhow::bail!("a SQLite database is never reloaded")
    }

    async fn wait_for_changes(&mut self) {
        std::future::pending::<()>().await;
    }

    fn follows_others(&self) -> bool {
        false
    }

    /// Nothing is committed that this replica has not applied.
    fn known_head(&self) -> u64 {
        0
    }

    /// There is no log to compact: the write sequence is one counter.
    async fn compact(&mut self) -> Result<u64, StorageError> {
        Ok(0)
    }

    fn purges_later(&self) -> bool {
        true
    }

    async fn pending_purges(&mut self) -> Result<Vec<Purge>, StorageError> {
        self.connection
            .transaction(async |connection| sql::pending_purges(connection).await)
            .await
    }

    async fn purge_step(&mut self, purge: &Purge, rows: u64) -> Result<bool, StorageError> {
        self.connection
            .transaction(async |connection| sql::purge_step(connection, purge, rows).await)
            .await
    }

    async fn close(&mut self) {
        self.connection.close().await;
    }
}
