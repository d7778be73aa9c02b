//! The shared backend: PostgreSQL, written and followed by any number of dendrite replicas.
//!
//! The tables hold the state, as on SQLite; beside them the `changes` table is an ordered log of
//! every committed write, numbered without gaps in commit order (see `sql.rs` for how). A replica
//! loads the tables as one snapshot, which says the sequence it is at, then applies the log from
//! there: woken by `LISTEN`/`NOTIFY` as other replicas commit, and polling by sequence as well,
//! since a notification sent while a listener reconnects is never replayed.
//!
//! A write locks the spaces it touches (transaction-level advisory locks), catches up with the
//! log, is planned against that state, and commits its rows and its log entry together; so two
//! replicas writing one neuron end exactly as one writer would have left it.

mod sql;

use super::fault::StorageError;
use super::load::{
    LOAD_CHUNK, POSTGRES_PATTERNS_OF_SPACE, PatternRow, SpaceRow, StoredRows, load_spaces,
};
use super::{Change, Changes, Committed, LoadSummary, WriteStore};
use crate::engine::{Name, Spaces, StorePlan};
use anyhow::Context;
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The channel a commit notifies, with its sequence as the payload.
const CHANNEL: &str = "dendrite_changes";
/// How often a replica looks at the log's head even without a notification.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long the writer waits for a new connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL database shared by replicas.
#[derive(Clone, Debug)]
pub struct PostgresDatabase {
    /// Reads: loading and the readiness ping. The writer and the listener have connections of
    /// their own.
    pool: PgPool,
    options: PgConnectOptions,
    /// How long the change log keeps an entry.
    retention: Duration,
}

/// A start-up error that says which database failed and what to do about it. The URL is not
/// repeated: it may carry a password.
fn cannot_use(_url: &str, error: &StorageError) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot use the PostgreSQL database: {error}; check that the server runs, that the URL's \
         user may connect and create tables, then start again"
    )
}

impl PostgresDatabase {
    /// Connects, migrates and checks that the database takes a commit.
    pub async fn open(url: &str, retention: Duration) -> anyhow::Result<PostgresDatabase> {
        // A replica that hangs inside a write must not hold its spaces' locks for ever, and one
        // waiting for a lock must give up with an answer rather than wait for ever.
        let options = PgConnectOptions::from_str(url)
            .context("invalid PostgreSQL URL")?
            .application_name("dendrite")
            .options([
                ("lock_timeout", "10s"),
                ("idle_in_transaction_session_timeout", "60s"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot_use(url, &e.into()))?;
        // Replicas starting together on an empty database: PostgreSQL runs sqlx's migrations
        // under an advisory lock, so one migrates and the others wait for it.
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| super::migration_failed(url, error, cannot_use))?;
        let database = PostgresDatabase {
            pool,
            options,
            retention,
        };
        super::refuse_unless_writable(database.writes(), url, cannot_use).await?;
        Ok(database)
    }

    /// The writer's side, on a connection of its own.
    /// How to connect: for a connection of another's own (an export's snapshot).
    pub(super) fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    pub fn writes(&self) -> PostgresWrites {
        PostgresWrites {
            database: self.clone(),
            connection: None,
            in_transaction: false,
            head: Arc::new(AtomicU64::new(0)),
            notified: Arc::new(Notify::new()),
            listening: false,
        }
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The database's size on the server (tables, indexes and the log).
    pub async fn size_bytes(&self) -> Option<u64> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await
            .ok()?;
        u64::try_from(bytes).ok()
    }

    /// Rebuilds every space from one snapshot of the tables, and says which change it is at: in
    /// a repeatable-read transaction, the head and the rows are read as of the same moment.
    pub async fn load(&self, spaces: &Spaces) -> anyhow::Result<LoadSummary> {
        let started = Instant::now();
        let mut snapshot = self.pool.begin().await?;
        snapshot
            .execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let sequence: i64 = sqlx::query_scalar("SELECT last FROM change_head WHERE id = 1")
            .fetch_one(&mut *snapshot)
            .await?;
        let mut summary = LoadSummary {
            sequence: sequence as u64,
            ..LoadSummary::default()
        };
        load_spaces(
            &mut PostgresRows {
                snapshot: &mut snapshot,
            },
            spaces,
            &mut summary,
        )
        .await?;
        snapshot.rollback().await?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }
}

/// PostgreSQL's rows for a load, all read in one repeatable-read snapshot.
struct PostgresRows<'s, 'c> {
    snapshot: &'s mut sqlx::Transaction<'c, sqlx::Postgres>,
}

impl StoredRows for PostgresRows<'_, '_> {
    async fn spaces(&mut self) -> anyhow::Result<Vec<SpaceRow>> {
        Ok(sqlx::query_as(
            "SELECT name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
             max_segments_per_neuron, seed, encoder FROM spaces ORDER BY name",
        )
        .fetch_all(&mut **self.snapshot)
        .await?)
    }

    async fn neurons(&mut self, space: &Name) -> anyhow::Result<Vec<(String, i64, i64)>> {
        Ok(
            sqlx::query_as("SELECT name, next_pattern, next_segment FROM neurons WHERE space = $1")
                .bind(space.as_str())
                .fetch_all(&mut **self.snapshot)
                .await?,
        )
    }

    /// Streams the rows; a chunk is handed on with a blocking send: the applier is at most four
    /// chunks behind, and this runs at start-up or on the writer's own thread.
    async fn patterns(
        &mut self,
        space: &Name,
        input_size: u32,
        chunks: SyncSender<Vec<StorePlan>>,
    ) -> anyhow::Result<u64> {
        let stopped = |_| anyhow::anyhow!("the loader thread stopped");
        let mut read = 0;
        let mut rows = sqlx::query(POSTGRES_PATTERNS_OF_SPACE)
            .bind(space.as_str())
            .fetch(&mut **self.snapshot);
        let mut chunk = Vec::with_capacity(LOAD_CHUNK);
        let mut last_neuron = None;
        while let Some(row) = rows.try_next().await? {
            chunk.push(PatternRow::from_postgres(&row)?.plan(input_size, &mut last_neuron)?);
            read += 1;
            if chunk.len() == LOAD_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(LOAD_CHUNK));
                chunks.send(full).map_err(stopped)?;
            }
        }
        chunks.send(chunk).map_err(stopped)?;
        Ok(read)
    }
}

/// The writer's side of a PostgreSQL database.
pub struct PostgresWrites {
    database: PostgresDatabase,
    /// The writer's connection; dropped after any failure, so the next write starts clean.
    connection: Option<PgConnection>,
    in_transaction: bool,
    /// The newest sequence a notification announced.
    head: Arc<AtomicU64>,
    notified: Arc<Notify>,
    listening: bool,
}

impl PostgresWrites {
    async fn connection(&mut self) -> Result<&mut PgConnection, StorageError> {
        if self.connection.is_none() {
            // Bounded: a server that does not answer at all must fail the write, not hold the
            // writer (and every write queued behind it) for the operating system's TCP timeout.
            let connecting = PgConnection::connect_with(&self.database.options);
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                .await
                .map_err(|_| StorageError::ConnectTimeout(CONNECT_TIMEOUT))??;
            self.connection = Some(connected);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Runs `body` on the writer's connection; on any error the connection is thrown away (an
    /// open transaction with it: the server rolls it back when the connection ends).
    async fn run<T, E: Into<StorageError>>(
        &mut self,
        body: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, StorageError> {
        let outcome = match self.connection().await {
            Ok(connection) => body(connection).await.map_err(Into::into),
            Err(error) => Err(error),
        };
        if outcome.is_err() {
            self.in_transaction = false;
            // Dropped without a goodbye: a graceful close would wait on a connection that may be
            // the very thing that failed.
            if let Some(connection) = self.connection.take() {
                let _ = connection.close_hard().await;
            }
        }
        outcome
    }

    /// Starts the task that turns notifications into wake-ups, on the writer's runtime.
    fn listen(&mut self) {
        if self.listening {
            return;
        }
        self.listening = true;
        let (pool, head, notified) = (
            self.database.pool.clone(),
            Arc::clone(&self.head),
            Arc::clone(&self.notified),
        );
        tokio::spawn(async move {
            loop {
                let listened = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(CHANNEL).await?;
                    // Whatever was committed while not listening is found by the next catch-up.
                    notified.notify_one();
                    loop {
                        let notification = listener.recv().await?;
                        if let Ok(sequence) = notification.payload().parse::<u64>() {
                            head.fetch_max(sequence, Ordering::Relaxed);
                        }
                        notified.notify_one();
                    }
                };
                let failed: Result<(), sqlx::Error> = listened.await;
                if let Err(error) = failed {
                    tracing::warn!(%error, "listening for changes failed; polling until it reconnects");
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        });
    }
}

impl WriteStore for PostgresWrites {
    async fn begin(&mut self, spaces: &[&Name]) -> Result<(), StorageError> {
        let mut keys: Vec<i64> = spaces.iter().map(|space| sql::lock_key(space)).collect();
        // One global order of keys: two writers locking overlapping spaces cannot deadlock.
        keys.sort_unstable();
        keys.dedup();
        self.run(async |connection| -> Result<(), sqlx::Error> {
            connection.execute("BEGIN").await?;
            for key in keys {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(key)
                    .execute(&mut *connection)
                    .await?;
            }
            Ok(())
        })
        .await?;
        self.in_transaction = true;
        Ok(())
    }

    async fn changes_after(&mut self, applied: u64, limit: usize) -> Result<Changes, StorageError> {
        let changes = self
            .run(async |connection| sql::changes_after(connection, applied, limit).await)
            .await?;
        if let Changes::Next { head, .. } = &changes {
            self.head.fetch_max(*head, Ordering::Relaxed);
        }
        Ok(changes)
    }

    async fn commit(&mut self, change: &Change, applied: u64) -> Result<Committed, StorageError> {
        debug_assert!(self.in_transaction, "a commit without its begin");
        let committed = self
            .run(async |connection| -> Result<Committed, StorageError> {
                let sequence = sql::write_change(&mut *connection, change).await?;
                // Holding the head row, every change before this one is committed and visible.
                let before = sql::changes_between(&mut *connection, applied, sequence).await?;
                if before.len() as u64 != sequence - applied - 1 {
                    return Err(StorageError::LogGap { applied, sequence });
                }
                connection.execute("COMMIT").await?;
                Ok(Committed { sequence, before })
            })
            .await?;
        self.in_transaction = false;
        self.head.fetch_max(committed.sequence, Ordering::Relaxed);
        Ok(committed)
    }

    async fn rollback(&mut self) {
        if self.in_transaction {
            let _ = self
                .run(async |connection| connection.execute("ROLLBACK").await.map(drop))
                .await;
            self.in_transaction = false;
        }
    }

    async fn probe(&mut self) -> Result<(), StorageError> {
        self.run(async |connection| {
            sqlx::query(
                "INSERT INTO heartbeat (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .execute(connection)
            .await
            .map(drop)
        })
        .await
    }

    async fn reload(&mut self, spaces: &Spaces) -> anyhow::Result<u64> {
        let fresh = spaces.empty_like();
        let loaded = self.database.load(&fresh).await?;
        spaces.replace_with(fresh);
        Ok(loaded.sequence)
    }

    async fn wait_for_changes(&mut self) {
        self.listen();
        let _ = tokio::time::timeout(POLL_INTERVAL, self.notified.notified()).await;
    }

    fn follows_others(&self) -> bool {
        true
    }

    fn known_head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    async fn compact(&mut self) -> Result<u64, StorageError> {
        let retention = self.database.retention;
        self.run(async |connection| sql::compact(connection, retention).await)
            .await
    }

    /// No: a deletion's rows go inside its commit (cascading from the space's or neuron's row).
    /// Other replicas could not see a purge in progress, so a name could not be re-created
    /// safely while one ran; and PostgreSQL's deletes block no other replica's writes.
    fn purges_later(&self) -> bool {
        false
    }

    async fn pending_purges(&mut self) -> Result<Vec<super::Purge>, StorageError> {
        Ok(Vec::new())
    }

    async fn purge_step(
        &mut self,
        _purge: &super::Purge,
        _rows: u64,
    ) -> Result<bool, StorageError> {
        Ok(true)
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close().await;
        }
    }
}
