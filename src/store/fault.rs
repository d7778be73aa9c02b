//! What can go wrong below the engine, and whether the service can take writes right now.
//!
//! A failed commit is classified by what the operator must do about it ([`Fault`]): a full disk,
//! a database that cannot be written (read-only file or filesystem, lost permission), a lock held
//! by another process, an I/O error, or something else (a bug, a damaged schema). The writer
//! records each failure and each success in [`Health`]; `/readyz` reads it, so a load balancer
//! stops sending writes to a degraded instance while reads, served from memory, go on.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why the database refused a write, by what fixes it. The variants name SQLite's result codes;
/// PostgreSQL's error classes map onto the same faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The disk is full (SQLITE_FULL, ENOSPC, PostgreSQL's class 53).
    Full,
    /// The database reached the size it was capped at (`--max-database-size`): SQLITE_FULL with
    /// the file at its configured page limit.
    SizeLimit,
    /// The database cannot be written: a read-only file, folder or filesystem, or a lost
    /// permission (SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN).
    ReadOnly,
    /// Another connection holds the database's write lock past the busy timeout (SQLITE_BUSY,
    /// SQLITE_LOCKED).
    Locked,
    /// The operating system failed a read or write (SQLITE_IOERR and the driver's own I/O errors),
    /// or the connection to a database server was lost.
    Io,
    /// This replica fell behind the database's change log while writing (another replica
    /// committed changes the log no longer holds); it reloads before its next write.
    Behind,
    /// Anything else: not a condition that clears by itself.
    Other,
}

impl Fault {
    /// What the fault means, for logs and answers.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::Full => "the database's disk is full",
            Fault::SizeLimit => {
                "the database reached its size limit (--max-database-size, DENDRITE_MAX_DATABASE_SIZE)"
            }
            Fault::ReadOnly => "the database cannot be written (read-only or no permission)",
            Fault::Locked => "another process holds the database's write lock",
            Fault::Io => {
                "the database failed to answer (an I/O error on its disk, or a lost connection to its server)"
            }
            Fault::Behind => "this replica fell behind the database's change log and reloads",
            Fault::Other => "the database refused the write",
        }
    }

    /// PostgreSQL's error classes (the first two characters of its SQLSTATE), by what fixes them.
    fn of_postgres(code: &str) -> Fault {
        match code.get(..2) {
            // Insufficient resources: a full disk, out of memory or connections.
            Some("53") => Fault::Full,
            // A read-only transaction (a standby, or a database set read-only), a lost privilege.
            Some("25") if code == "25006" => Fault::ReadOnly,
            Some("42") if code == "42501" => Fault::ReadOnly,
            // A serialization failure, a deadlock, a lock not available within lock_timeout.
            Some("40" | "55") => Fault::Locked,
            // The connection was lost, the server is shutting down, or its system failed.
            Some("08" | "57" | "58") => Fault::Io,
            _ => Fault::Other,
        }
    }

    #[allow(clippy::wildcard_enum_match_arm)] // sqlx::Error is non_exhaustive
    fn of(error: &sqlx::Error) -> Fault {
        match error {
            sqlx::Error::Database(error)
                if error
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                Fault::of_postgres(&error.code().unwrap_or_default())
            }
            sqlx::Error::Database(error) => {
                // SQLite reports extended result codes; the primary code is the low byte.
                let code = error
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .unwrap_or(0);
                match code & 0xff {
                    13 => Fault::Full,             // SQLITE_FULL
                    8 | 3 | 14 => Fault::ReadOnly, // SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN
                    5 | 6 => Fault::Locked,        // SQLITE_BUSY, SQLITE_LOCKED
                    10 => Fault::Io,               // SQLITE_IOERR
                    _ => Fault::Other,
                }
            }
            sqlx::Error::Io(error) if error.raw_os_error() == Some(28) => Fault::Full, // ENOSPC
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => {
                Fault::Io
            }
            _ => Fault::Other,
        }
    }
}

/// A write the database refused, or a fault of the storage layer itself. Shared, because one
/// failed commit answers every write of its group. The HTTP status comes from [`Self::fault`],
/// so each fault that is not the driver's has its own variant rather than posing as one of the
/// driver's errors.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StorageError {
    /// The database or its driver refused, classified by its code. The driver's error is the
    /// source, for the log only: it may name files and SQL.
    #[error("{}: {source}", fault.describe())]
    Database {
        fault: Fault,
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The database server did not take a connection in time.
    #[error("{}: no connection within {} s", Fault::Io.describe(), .0.as_secs())]
    ConnectTimeout(Duration),
    /// The change log no longer holds changes committed between the last one this replica
    /// applied and its own: compacted while it wrote. Its next write reloads first.
    #[error(
        "{}: the change log lacks changes {first} to {last}",
        Fault::Behind.describe(),
        first = .applied + 1,
        last = .sequence - 1
    )]
    LogGap { applied: u64, sequence: u64 },
    /// Rebuilding the engine from the tables failed (`fault` from the driver's error in the
    /// chain, if any).
    #[error("{}: reloading from the database failed: {why}", fault.describe())]
    Reload { fault: Fault, why: String },
}

impl StorageError {
    /// What fixes it, which decides the answer's status.
    pub fn fault(&self) -> Fault {
        match self {
            StorageError::Database { fault, .. } | StorageError::Reload { fault, .. } => *fault,
            StorageError::ConnectTimeout(_) => Fault::Io,
            StorageError::LogGap { .. } => Fault::Behind,
        }
    }

    /// A failed reload, classified by the first driver error in its chain of causes.
    pub fn reload(error: &anyhow::Error) -> StorageError {
        let fault = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
            .map_or(Fault::Other, Fault::of);
        StorageError::Reload {
            fault,
            why: format!("{error:#}"),
        }
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> StorageError {
        StorageError::Database {
            fault: Fault::of(&error),
            source: Arc::new(error),
        }
    }
}

/// Whether the service can take writes: shared by the writer, which reports, and `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Set for good when the writer stopped unexpectedly: writes cannot resume without a restart.
    writer_failed: Option<String>,
    /// The last failed write and when the failures began; cleared by the next successful commit.
    storage: Option<(StorageError, Instant)>,
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failed write; the first of a run is logged as the start of an episode.
    pub fn storage_failed(&self, error: &StorageError) {
        let mut state = self.state();
        let since = match &state.storage {
            Some((_, since)) => *since,
            None => {
                tracing::error!(%error, "writes are failing; reads continue from memory");
                Instant::now()
            }
        };
        state.storage = Some((error.clone(), since));
    }

    /// Records a successful commit, ending a failure episode.
    pub fn storage_ok(&self) {
        let mut state = self.state();
        if let Some((error, since)) = state.storage.take() {
            tracing::warn!(
                after_seconds = since.elapsed().as_secs_f64(),
                last_error = %error,
                "writes succeed again"
            );
        }
    }

    /// Records that the writer stopped: the service stays up for reads but is not ready.
    pub fn writer_failed(&self, why: String) {
        tracing::error!(%why, "the writer failed; writes are refused until a restart");
        self.state().writer_failed = Some(why);
    }

    /// Whether writes are currently failing.
    pub fn is_degraded(&self) -> bool {
        let state = self.state();
        state.writer_failed.is_some() || state.storage.is_some()
    }

    /// The writer's failure, if it failed.
    pub fn writer_failure(&self) -> Option<String> {
        self.state().writer_failed.clone()
    }

    /// Why the service is not ready to take writes, or `None` when it is.
    pub fn problem(&self) -> Option<String> {
        let state = self.state();
        if let Some(why) = &state.writer_failed {
            return Some(format!(
                "the writer stopped ({why}); reads are served, writes are refused until a restart"
            ));
        }
        state.storage.as_ref().map(|(error, since)| {
            format!(
                "writes have been failing for {:.0} s: {}; reads are served, writes resume once it clears",
                since.elapsed().as_secs_f64(),
                error.fault().describe()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_errors_are_classified_by_their_class() {
        let cases = [
            ("53100", Fault::Full),     // disk full
            ("25006", Fault::ReadOnly), // read-only sql transaction
            ("42501", Fault::ReadOnly), // insufficient privilege
            ("55P03", Fault::Locked),   // lock not available
            ("40P01", Fault::Locked),   // deadlock detected
            ("57P01", Fault::Io),       // admin shutdown
            ("08006", Fault::Io),       // connection failure
            ("23505", Fault::Other),    // unique violation: a bug, not a condition that clears
            ("42P01", Fault::Other),    // undefined table
        ];
        for (code, fault) in cases {
            assert_eq!(Fault::of_postgres(code), fault, "{code}");
        }
    }

    #[test]
    fn faults_of_the_storage_layer_are_not_the_drivers() {
        assert_eq!(
            StorageError::ConnectTimeout(Duration::from_secs(10)).fault(),
            Fault::Io
        );
        let gap = StorageError::LogGap {
            applied: 4,
            sequence: 9,
        };
        assert_eq!(gap.fault(), Fault::Behind);
        assert!(gap.to_string().contains("changes 5 to 8"), "{gap}");
        // A reload is classified by the driver's error beneath it, whatever context wraps it.
        let lost = anyhow::Error::new(sqlx::Error::Io(std::io::Error::other("reset")))
            .context("loading space s");
        assert_eq!(StorageError::reload(&lost).fault(), Fault::Io);
        let bad_row = anyhow::anyhow!("neuron row n: bad cells");
        let reload = StorageError::reload(&bad_row);
        assert_eq!(reload.fault(), Fault::Other);
        assert!(reload.to_string().contains("bad cells"), "{reload}");
    }

    #[test]
    fn a_failure_episode_is_reported_until_a_commit_succeeds() {
        let health = Health::default();
        assert_eq!(health.problem(), None);
        let full = StorageError::Database {
            fault: Fault::Full,
            source: Arc::new(sqlx::Error::Protocol("database or disk is full".into())),
        };
        health.storage_failed(&full);
        health.storage_failed(&full);
        let problem = health.problem().unwrap();
        assert!(problem.contains("disk is full"), "{problem}");
        assert!(health.is_degraded());
        health.storage_ok();
        assert_eq!(health.problem(), None);
        health.writer_failed("a panic".into());
        assert!(health.problem().unwrap().contains("a panic"));
        health.storage_ok();
        assert!(health.is_degraded(), "a failed writer stays failed");
    }
}
