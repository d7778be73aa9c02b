//! The writer's own connection: explicit transactions, and a fresh connection after any failure.
//!
//! sqlx's `Transaction` keeps its own count of open transactions beside SQLite's. When a write
//! fails part-way (a full disk, an I/O error, a lock timeout) the two can disagree: the next
//! `BEGIN` then becomes a savepoint inside a transaction that never ends, every later "commit"
//! only releases that savepoint, and the writes it acknowledges vanish at the next close. So the
//! writer issues `BEGIN IMMEDIATE` and `COMMIT` itself on a connection nobody else uses, and after
//! any failure rolls back and throws the connection away: the next write opens a fresh one in a
//! known state, whatever the failure left behind. A reconnect costs about a millisecond, and only
//! after a failure.

use crate::store::fault::StorageError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};

/// The connection every commit goes through.
pub struct WriteConnection {
    options: SqliteConnectOptions,
    open: Option<SqliteConnection>,
}

impl WriteConnection {
    pub fn new(options: SqliteConnectOptions) -> WriteConnection {
        WriteConnection {
            options,
            open: None,
        }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE ... COMMIT`. On any error nothing is committed, the
    /// connection is discarded, and the error says what kind of fault it was.
    pub async fn transaction<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StorageError> {
        let outcome = self.run(body).await;
        if outcome.is_err() {
            self.discard().await;
        }
        outcome.map_err(StorageError::from)
    }

    async fn run<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        if self.open.is_none() {
            self.open = Some(SqliteConnection::connect_with(&self.options).await?);
        }
        let connection = self.open.as_mut().expect("opened above");
        connection.execute("BEGIN IMMEDIATE").await?;
        let value = body(&mut *connection).await?;
        connection.execute("COMMIT").await?;
        Ok(value)
    }

    /// Rolls back whatever is open and closes the connection (closing alone would also roll
    /// back; the explicit ROLLBACK makes it so even if the close is slow).
    async fn discard(&mut self) {
        if let Some(mut connection) = self.open.take() {
            let _ = connection.execute("ROLLBACK").await;
            let _ = connection.close().await;
        }
    }

    /// Commits a write that changes nothing the service reads: whether the database takes
    /// commits right now (checked at start-up, and while writes are failing, to notice that the
    /// fault has cleared).
    pub async fn probe(&mut self) -> Result<(), StorageError> {
        self.transaction(async |connection| {
            sqlx::query(
                "INSERT INTO heartbeat (id, at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .execute(connection)
            .await
            .map(drop)
        })
        .await
    }

    /// Closes the connection cleanly (the service is stopping).
    pub async fn close(&mut self) {
        if let Some(connection) = self.open.take() {
            let _ = connection.close().await;
        }
    }
}
