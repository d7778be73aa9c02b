//! Durable state: one interface over two databases, SQLite embedded and PostgreSQL shared.
//!
//! The engine's memory is a pure function of the rows: [`Database::load`] replays stored plans in
//! learning order, so a restarted service answers exactly as before. Every write goes through the
//! [`writer`], which commits before it applies and answers only after the commit returns. Each
//! committed write is a [`Change`] with a sequence number in commit order; on PostgreSQL the
//! changes are also kept in a log that other replicas follow. Above this module nothing knows which
//! database is in use: [`Database`] opens either from its URL, and the writer drives either through
//! [`WriteStore`].

pub mod backup;
pub mod change;
pub mod fault;
mod load;
pub mod postgres;
pub mod sqlite;
pub mod transfer;
pub mod writer;

pub use change::Change;

use crate::engine::{Name, SpaceParams, Spaces, StorePlan};
use fault::StorageError;
use postgres::PostgresDatabase;
use sqlite::SqliteDatabase;
use std::time::Duration;

/// The database behind the service, by the scheme of its URL.
#[derive(Clone, Debug)]
pub enum Database {
    /// `sqlite://FILE` (the default) or `sqlite::memory:`: one process owns it.
    Sqlite(SqliteDatabase),
    /// `postgres://...`: any number of replicas share it.
    Postgres(PostgresDatabase),
}

/// How the database is kept: the first two for a SQLite file, the last for PostgreSQL's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Cap on the file in bytes (SQLite's `max_page_count`): past it writes fail as on a full
    /// disk. `None`: only the disk limits it.
    pub max_size: Option<u64>,
    /// WAL pages after which a commit checkpoints the WAL into the database (SQLite's
    /// `wal_autocheckpoint`; 0 never: a replicator such as Litestream checkpoints instead).
    /// `None`: SQLite's default, 1000 pages.
    pub wal_autocheckpoint: Option<u32>,
    /// How long PostgreSQL's change log keeps an entry. A replica away for longer reloads the
    /// tables instead of following the log; the log is never needed to rebuild.
    pub log_retention: Duration,
    /// Whether a SQLite file is checked (`PRAGMA quick_check`) before it is served.
    pub integrity_check: bool,
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            max_size: None,
            wal_autocheckpoint: None,
            log_retention: Duration::from_secs(3600),
            integrity_check: true,
        }
    }
}

/// What start-up loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadSummary {
    pub spaces: u64,
    pub neurons: u64,
    pub patterns: u64,
    pub elapsed: Duration,
    /// The last change the loaded state includes: the replica follows the log from here.
    pub sequence: u64,
}

impl Database {
    /// Opens (creating a SQLite file if missing) and migrates the database at `url`, and checks
    /// that it takes a commit.
    pub async fn open(url: &str, settings: &StoreSettings) -> anyhow::Result<Database> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(
                PostgresDatabase::open(url, settings.log_retention).await?,
            ))
        } else if url.starts_with("sqlite:") {
            Ok(Database::Sqlite(SqliteDatabase::open(url, settings).await?))
        } else {
            // Only the scheme is repeated: the rest of a URL may carry a password.
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            anyhow::bail!(
                "the database URL's scheme {scheme:?} names no database dendrite knows: use sqlite://FILE or postgres://USER:PASSWORD@HOST/DATABASE"
            )
        }
    }

    /// `"sqlite"` or `"postgres"`, for statistics.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// The SQLite database, when that is what this is (backups copy its file).
    pub fn sqlite(&self) -> Option<&SqliteDatabase> {
        match self {
            Database::Sqlite(db) => Some(db),
            Database::Postgres(_) => None,
        }
    }

    /// Bytes the database takes: a SQLite file with its write-ahead log (`None` in memory), or
    /// the PostgreSQL database's size on its server (`None` if the server does not say).
    pub async fn size_bytes(&self) -> Option<u64> {
        match self {
            Database::Sqlite(db) => db.file_bytes().await,
            Database::Postgres(db) => db.size_bytes().await,
        }
    }

    /// Whether the database answers a query.
    pub async fn ping(&self) -> bool {
        match self {
            Database::Sqlite(db) => db.ping().await,
            Database::Postgres(db) => db.ping().await,
        }
    }

    /// Why writes would fail for want of room under `--max-database-size` (SQLite only).
    pub async fn size_limit_problem(&self) -> Option<String> {
        match self {
            Database::Sqlite(db) => db.size_limit_problem().await,
            Database::Postgres(_) => None,
        }
    }

    /// Closes every connection cleanly.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(db) => db.close().await,
            Database::Postgres(db) => db.close().await,
        }
    }

    /// Rebuilds every space from its rows into `spaces`, as of the sequence it reports.
    pub async fn load(&self, spaces: &Spaces) -> anyhow::Result<LoadSummary> {
        match self {
            Database::Sqlite(db) => db.load(spaces).await,
            Database::Postgres(db) => db.load(spaces).await,
        }
    }
}

/// The database as the writer drives it: one implementation per backend.
///
/// A write is `begin` (lock the spaces it touches), `changes_after` (learn what other replicas
/// committed, to plan against the current state), then `commit` or `rollback`. `changes_after`
/// outside a write is how a replica follows the others.
#[allow(async_fn_in_trait)] // used by the writer's own thread only, never across threads
pub trait WriteStore: Send + 'static {
    /// Opens a write transaction holding the write locks of `spaces`: no other replica writes
    /// them until it commits or rolls back.
    async fn begin(&mut self, spaces: &[&Name]) -> Result<(), StorageError>;

    /// Up to `limit` changes committed after `applied`, oldest first, with the log's head.
    async fn changes_after(&mut self, applied: u64, limit: usize) -> Result<Changes, StorageError>;

    /// Writes the change's rows (and, where replicas follow, its log entry) and commits. Returns
    /// its sequence with the changes other replicas committed between `applied` and it, read
    /// inside the transaction, so the caller can apply them first whatever happens after the
    /// commit. Called only inside the write a `begin` opened.
    async fn commit(&mut self, change: &Change, applied: u64) -> Result<Committed, StorageError>;

    /// Ends a write begun with nothing to commit.
    async fn rollback(&mut self);

    /// Commits a write that changes nothing the service reads: whether commits go through.
    async fn probe(&mut self) -> Result<(), StorageError>;

    /// Rebuilds `spaces` from the tables (a replica the log can no longer bring up to date);
    /// returns the sequence the rebuilt state is at.
    async fn reload(&mut self, spaces: &Spaces) -> anyhow::Result<u64>;

    /// Resolves when other replicas may have committed: a notification, or the poll interval.
    /// Never, where nobody else writes.
    async fn wait_for_changes(&mut self);

    /// Whether other processes commit to this database (so there is a log to follow).
    fn follows_others(&self) -> bool;

    /// The newest sequence this replica has heard of (the head of the log, as far as it knows).
    fn known_head(&self) -> u64;

    /// Deletes log entries past their retention; returns the newest one deleted (0: none).
    async fn compact(&mut self) -> Result<u64, StorageError>;

    /// Whether committing a deletion leaves its rows to [`WriteStore::purge_step`]: then the
    /// commit is one small row however large the deletion, and the rows go in steps between
    /// other writes.
    fn purges_later(&self) -> bool;

    /// The deletions committed whose rows are not yet all removed (an earlier run stopped
    /// mid-way), oldest first.
    async fn pending_purges(&mut self) -> Result<Vec<Purge>, StorageError>;

    /// Removes up to about `rows` rows of `purge` in one transaction; true once none is left
    /// (and the purge itself is forgotten).
    async fn purge_step(&mut self, purge: &Purge, rows: u64) -> Result<bool, StorageError>;

    async fn close(&mut self);
}

/// A committed deletion whose rows are still being removed: the whole space, or one neuron.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purge {
    pub space: Name,
    pub neuron: Option<Name>,
}

impl Purge {
    /// The rows a change deletes, if it deletes any that outlive it.
    pub fn of(change: &Change) -> Option<Purge> {
        match change {
            Change::DeleteSpace { space } => Some(Purge {
                space: space.clone(),
                neuron: None,
            }),
            Change::DeleteNeuron { space, neuron } => Some(Purge {
                space: space.clone(),
                neuron: Some(neuron.clone()),
            }),
            Change::CreateSpace { .. }
            | Change::Store { .. }
            | Change::Forget { .. }
            | Change::Neurons { .. } => None,
        }
    }

    /// Whether the rows of `neuron` in `space` are (among) the ones going.
    pub fn covers(&self, space: &Name, neuron: Option<&Name>) -> bool {
        self.space == *space && (self.neuron.is_none() || self.neuron.as_ref() == neuron)
    }
}

/// A change just committed.
#[derive(Debug)]
pub struct Committed {
    pub sequence: u64,
    /// Other replicas' changes the writer had not applied, in order, all before `sequence`.
    pub before: Vec<(u64, Change)>,
}

/// What the log holds after a replica's last applied change.
#[derive(Debug)]
pub enum Changes {
    /// The next changes in order (none when up to date), and the newest sequence committed.
    Next {
        changes: Vec<(u64, Change)>,
        head: u64,
    },
    /// The log was compacted past the replica's position: it must reload from the tables.
    Compacted { through: u64 },
}

/// A failed migration: a database that cannot be written says so, anything else is passed on.
#[allow(clippy::wildcard_enum_match_arm)] // MigrateError is non_exhaustive
fn migration_failed(
    url: &str,
    error: sqlx::migrate::MigrateError,
    cannot_write: fn(&str, &StorageError) -> anyhow::Error,
) -> anyhow::Error {
    match error {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => cannot_write(url, &e.into()),
        other => anyhow::Error::new(other).context("cannot migrate the database"),
    }
}

/// Commits a probe through `writes`, then closes them: a database that cannot take a commit is
/// refused at start-up with `refuse`'s message (which says what to fix), rather than served as
/// ready with every write failing.
async fn refuse_unless_writable(
    mut writes: impl WriteStore,
    url: &str,
    refuse: fn(&str, &StorageError) -> anyhow::Error,
) -> anyhow::Result<()> {
    let probed = writes.probe().await;
    writes.close().await;
    probed.map_err(|error| refuse(url, &error))
}

/// Per neuron, its counters (next pattern number, next segment) once `plans` are stored: ids and
/// segment numbers handed out stay taken, so a forgotten id is never given again.
#[allow(clippy::type_complexity)] // ((space, neuron), (next pattern, next segment))
fn neuron_counters(plans: &[(Name, StorePlan)]) -> Vec<((&Name, &Name), (i64, i64))> {
    let mut counters: std::collections::HashMap<(&Name, &Name), (i64, i64)> =
        std::collections::HashMap::new();
    for (space, plan) in plans {
        let next_pattern = plan
            .id
            .as_str()
            .parse::<i64>()
            .map_or(1, |n| n.saturating_add(1));
        let next_segment = i64::from(plan.segment) + 1;
        let entry = counters.entry((space, &plan.neuron)).or_insert((1, 0));
        entry.0 = entry.0.max(next_pattern);
        entry.1 = entry.1.max(next_segment);
    }
    counters.into_iter().collect()
}

/// The counters a [`Change::Neurons`] raises, in the shape [`neuron_counters`] gives a store's.
#[allow(clippy::type_complexity)] // ((space, neuron), (next pattern, next segment))
fn declared_counters<'a>(
    space: &'a Name,
    neurons: &'a [change::NeuronCounters],
) -> Vec<((&'a Name, &'a Name), (i64, i64))> {
    neurons
        .iter()
        .map(|c| {
            let next = (c.next_pattern as i64, i64::from(c.next_segment));
            ((space, &c.neuron), next)
        })
        .collect()
}

/// The checksum of a `patterns` row: FNV-1a over its columns, each preceded by its length (so no
/// two rows' fields can run together into the same bytes), as the signed integer SQLite stores.
/// Metadata is hashed only when present, so rows stored before it existed keep their checksums.
pub(crate) fn pattern_checksum(
    space: &str,
    neuron: &str,
    id: &str,
    segment: i64,
    (active, synapses): (&[u8], &[u8]),
    metadata: Option<&str>,
) -> i64 {
    use crate::rng::{FNV1A_START, fnv1a};
    let field =
        |hash: u64, bytes: &[u8]| fnv1a(fnv1a(hash, &(bytes.len() as u64).to_le_bytes()), bytes);
    let mut hash = FNV1A_START;
    for bytes in [space.as_bytes(), neuron.as_bytes(), id.as_bytes()] {
        hash = field(hash, bytes);
    }
    hash = field(hash, &segment.to_le_bytes());
    hash = field(hash, active);
    hash = field(hash, synapses);
    if let Some(metadata) = metadata {
        hash = field(hash, metadata.as_bytes());
    }
    hash as i64
}

/// Binds a space's row to either backend's `INSERT INTO spaces`, in its columns' order: (name,
/// input_size, active_bits, synapses_per_pattern, threshold, max_false_match,
/// max_segments_per_neuron, seed, encoder as JSON or null).
fn bind_space<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    name: &Name,
    params: &SpaceParams,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> f64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let encoder = params
        .encoder
        .as_ref()
        .map(|encoder| serde_json::to_string(encoder.spec()).expect("a spec serialises"));
    query
        .bind(name.as_str().to_owned())
        .bind(i64::from(params.input_size))
        .bind(i64::from(params.active_bits))
        .bind(i64::from(params.synapses_per_pattern))
        .bind(i64::from(params.threshold))
        .bind(params.max_false_match)
        .bind(i64::from(params.max_segments_per_neuron))
        .bind(params.seed as i64)
        .bind(encoder)
}

/// Cells as little-endian u32s, the column encoding of `patterns.active` and `patterns.synapses`.
pub(crate) fn encode_cells(cells: &[u32]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::load::decode_cells;
    use super::*;

    #[tokio::test]
    async fn an_unknown_database_is_refused_without_repeating_its_password() {
        let error = Database::open("mysql://me:hunter2@db/x", &StoreSettings::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"mysql\""), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn cells_round_trip_through_their_column_encoding() {
        let cells = vec![0, 7, 65_536, u32::MAX];
        assert_eq!(decode_cells(&encode_cells(&cells)).unwrap(), cells);
        assert!(decode_cells(&[1, 2, 3]).is_err());
    }
}
