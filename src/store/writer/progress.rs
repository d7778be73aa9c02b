//! What the writer reports while it runs: how far this replica has followed the database
//! ([`Progress`], which reads wait on for `min_sequence`) and how many writes each commit carried
//! ([`WriteStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Counters of the write path, for `/v1/stats`.
#[derive(Debug, Default)]
pub struct WriteStats {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl WriteStats {
    /// (write transactions committed, writes they carried).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    pub(super) fn record(&self, writes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
    }
}

/// How far this replica has followed the database: shared by the writer, which applies changes,
/// and the readers that wait for one (`min_sequence`) or report the lag.
#[derive(Debug)]
pub struct Progress {
    applied: watch::Sender<u64>,
    head: AtomicU64,
    /// Whether other processes commit changes this one follows (PostgreSQL). Where none do
    /// (SQLite), every change there is was applied before its write was answered: a later one
    /// is not worth waiting for.
    follows: bool,
}

impl Progress {
    pub(super) fn new(applied: u64, follows: bool) -> Progress {
        Progress {
            applied: watch::Sender::new(applied),
            head: AtomicU64::new(applied),
            follows,
        }
    }

    /// The last change this replica applied: its engine holds every change up to here.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Whether changes arrive from other processes (a read may wait for them).
    pub fn follows(&self) -> bool {
        self.follows
    }

    /// The newest change this replica knows the database holds.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed).max(self.applied())
    }

    /// Waits at most `within` for this replica to apply `sequence`; whether it did.
    pub async fn reached(&self, sequence: u64, within: Duration) -> bool {
        if !self.follows {
            return self.applied() >= sequence;
        }
        let mut applied = self.applied.subscribe();
        matches!(
            tokio::time::timeout(within, applied.wait_for(|&a| a >= sequence)).await,
            Ok(Ok(_))
        )
    }

    pub(super) fn set_applied(&self, sequence: u64) {
        self.applied.send_replace(sequence);
    }

    pub(super) fn saw_head(&self, head: u64) {
        self.head.fetch_max(head, Ordering::Relaxed);
    }
}
