//! Deleted rows removed a step at a time (SQLite): a deletion commits at once, and its rows go in
//! bounded steps between other writes, so a large deletion never holds the writer for long.
//! Commands that touch what is still being removed wait for it.

use super::command::{Command, QUEUE_CAPACITY, StoreCommand};
use super::error::WriteError;
use super::task::{Work, WriterTask};
use crate::store::WriteStore;
use std::time::Duration;
use tokio::time::Instant;

/// Rows a purge step deletes: about 10 ms of SQLite's work (a commit included), the most a
/// large deletion adds to another write's wait.
const PURGE_ROWS: u64 = 1_024;
/// After a purge step fails (a full or failing disk), the pause before the next try.
const PURGE_RETRY: Duration = Duration::from_secs(1);

impl<S: WriteStore> WriterTask<S> {
    /// Stores the commands of `group` that touch no neuron being purged; the others wait for
    /// their purge (their neuron's new rows could otherwise collide with the old ones).
    pub(super) async fn store_unless_purging(&mut self, group: Vec<StoreCommand>) {
        // The usual case, with nothing to sort out: no purge is running.
        if self.purges.is_empty() {
            return self.store_group(group).await;
        }
        let (waiting, ready): (Vec<_>, Vec<_>) = group.into_iter().partition(|store| {
            store.requests.iter().any(|request| {
                self.purges
                    .iter()
                    .any(|purge| purge.covers(&store.space, Some(&request.neuron)))
            })
        });
        for store in waiting {
            self.wait_for_purge(Command::Store(store));
        }
        if !ready.is_empty() {
            self.store_group(ready).await;
        }
    }

    /// Puts `command` aside until a purge ends; refused as busy when as many wait as the queue
    /// holds (each keeps a client's request open).
    pub(super) fn wait_for_purge(&mut self, command: Command) {
        if self.waiting.len() >= QUEUE_CAPACITY {
            Work::One(command).refuse(|| WriteError::Busy);
        } else {
            self.waiting.push(command);
        }
    }

    /// Picks up the purges an earlier run left unfinished.
    pub(super) async fn resume_purges(&mut self) {
        if !self.store.purges_later() {
            return;
        }
        match self.store.pending_purges().await {
            Ok(purges) => {
                if !purges.is_empty() {
                    tracing::info!(count = purges.len(), "resuming the removal of deleted rows");
                }
                self.purges = purges;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the deletions still to purge; they resume at the next start");
            }
        }
    }

    /// Deletes a step's worth of the oldest purge's rows; once it is done, lets the commands
    /// that waited for it go.
    pub(super) async fn purge_step(&mut self) {
        let Some(purge) = self.purges.first().cloned() else {
            return;
        };
        match self.store.purge_step(&purge, PURGE_ROWS).await {
            Ok(done) => {
                self.purge_resume_at = None;
                if done {
                    self.purges.remove(0);
                    tracing::debug!(space = %purge.space, neuron = ?purge.neuron, "purged");
                    self.unblocked.extend(self.waiting.drain(..));
                }
            }
            Err(error) => {
                tracing::warn!(%error, space = %purge.space, "removing a deletion's rows failed; retrying in a second");
                self.purge_resume_at = Some(Instant::now() + PURGE_RETRY);
            }
        }
    }
}
