//! The write path: one task owns every change, and commits before it applies.
//!
//! Handlers send commands over a bounded channel (a full channel is an immediate "busy", never an
//! unbounded queue) and wait for the answer. The writer drains whatever store commands are
//! waiting, locks the spaces they touch and catches up with what other replicas committed to
//! them, plans them in order against the engine (a [`Planner`] lets each see the plans before
//! it), so every request is validated against the state it commits into, commits all their rows
//! in one transaction — one fsync for many writes: group commit — then applies the plans to the
//! engine and answers each caller with the change's sequence. A failed commit applies nothing and
//! answers every caller with the fault; the next write starts on a fresh connection.
//!
//! The same task follows the database: every committed [`Change`] has a sequence, and the engine
//! applies them strictly in that order, its own and other replicas' alike. Between commands it
//! waits for word of other replicas' commits ([`WriteStore::wait_for_changes`]) and applies them;
//! a replica the log can no longer bring up to date reloads the tables.
//!
//! The writer runs on a thread of its own. Applying a write takes the space's write lock, which
//! waits for the queries reading it; on a thread of its own that wait holds up only the writer,
//! never the async workers that answer `/healthz` and other spaces' requests. A panic while
//! handling a command is caught: the writer then refuses every later write and `/readyz` says why,
//! rather than the service answering "shutting down" forever.
//!
//! Each job has a file: `handle` (what callers hold), `command` (the messages it sends),
//! `progress` (what the writer reports), `task` (the loop and the steps every write shares),
//! `group` (group commit), `single` (writes of one change), `follow` (other replicas' changes) and
//! `purge` (deleted rows removed in steps).
//!
//! [`Planner`]: crate::engine::Planner
//! [`Change`]: crate::store::Change
//! [`WriteStore::wait_for_changes`]: crate::store::WriteStore::wait_for_changes

mod command;
mod error;
mod follow;
mod group;
mod handle;
mod progress;
mod purge;
mod single;
mod task;

pub use command::{Stored, Written};
pub use error::{WriteError, not_served_message};
pub use handle::{Writer, WriterThread};
pub use progress::{Progress, WriteStats};

#[cfg(test)]
mod tests {
    use super::command::Command;
    use super::*;
    use crate::engine::{Name, Pattern, Spaces, StoreRequest, tiny_space};
    use crate::store::Database;
    use crate::store::fault::Health;
    use std::sync::Arc;

    async fn writer_on_a_temporary_file() -> (Writer, WriterThread, Arc<Health>, tempfile::TempDir)
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let db = Database::open(&url, &Default::default()).await.unwrap();
        let health = Arc::new(Health::default());
        let (writer, thread) = Writer::spawn(
            &db,
            Arc::new(Spaces::default()),
            Arc::clone(&health),
            None,
            0,
        )
        .unwrap();
        (writer, thread, health, dir)
    }

    #[tokio::test]
    async fn a_writer_that_panicked_refuses_writes_and_says_why() {
        let (writer, thread, health, _dir) = writer_on_a_temporary_file().await;
        writer.create_space(tiny_space("s")).await.unwrap();
        writer.commands.send(Command::Crash).await.unwrap();
        let request = StoreRequest {
            neuron: Name::parse("n").unwrap(),
            active: Pattern::parse(&[1, 2, 3, 4, 5], 64).unwrap(),
            id: None,
            metadata: None,
        };
        let refused = writer.store(Name::parse("s").unwrap(), vec![request]).await;
        assert!(
            matches!(&refused, Err(WriteError::WriterFailed(why)) if why.contains("crash requested")),
            "{refused:?}"
        );
        assert!(health.problem().unwrap().contains("crash requested"));
        thread.stop().await;
    }
}
