//! Following the database: applying, in sequence order, the changes other replicas committed,
//! and reloading the tables when the log can no longer bring this replica up to date.

use super::task::WriterTask;
use crate::store::fault::StorageError;
use crate::store::{Changes, WriteStore};

/// Changes read from the log at a time while catching up: bounds the memory a long way behind
/// takes (a change carries at most one commit's patterns, about 9 MB of JSON at the most).
const FOLLOW_BATCH: usize = 16;

impl<S: WriteStore> WriterTask<S> {
    /// Applies the changes committed after `applied`, up to `until` (all, when `None`), in
    /// order. A change this replica cannot apply, or a log compacted past it, means the engine
    /// no longer follows the database: it is rebuilt from the tables.
    pub(super) async fn catch_up(&mut self, until: Option<u64>) -> Result<(), StorageError> {
        loop {
            match self.store.changes_after(self.applied, FOLLOW_BATCH).await? {
                Changes::Compacted { through } => {
                    return self
                        .reload(&format!(
                            "the change log no longer holds changes {} to {through}",
                            self.applied + 1
                        ))
                        .await;
                }
                Changes::Next { changes, head } => {
                    self.progress.saw_head(head);
                    if changes.is_empty() {
                        return Ok(());
                    }
                    for (sequence, change) in changes {
                        if until.is_some_and(|until| sequence > until) {
                            return Ok(());
                        }
                        if let Err(error) = change.apply(&self.spaces, sequence) {
                            return self.reload(&error.to_string()).await;
                        }
                        self.set_applied(sequence);
                    }
                }
            }
        }
    }

    /// Rebuilds the engine from the tables, saying why in the log.
    pub(super) async fn reload(&mut self, why: &str) -> Result<(), StorageError> {
        tracing::warn!(%why, applied = self.applied, "reloading every space from the database");
        match self.store.reload(&self.spaces).await {
            Ok(sequence) => {
                tracing::info!(sequence, "reloaded");
                self.set_applied(sequence);
                Ok(())
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "the reload failed; retrying at the next change");
                Err(StorageError::reload(&error))
            }
        }
    }

    /// Applies what other replicas committed (woken by a notification or the poll).
    pub(super) async fn follow(&mut self) {
        self.progress.saw_head(self.store.known_head());
        if let Err(error) = self.catch_up(None).await {
            self.health.storage_failed(&error);
        }
    }

    pub(super) async fn compact(&mut self) {
        match self.store.compact().await {
            Ok(0) => {}
            Ok(through) => tracing::debug!(through, "compacted the change log"),
            Err(error) => tracing::warn!(%error, "compacting the change log failed"),
        }
    }

    pub(super) async fn probe(&mut self) {
        match self.store.probe().await {
            Ok(()) => self.health.storage_ok(),
            Err(error) => self.health.storage_failed(&error),
        }
    }
}
