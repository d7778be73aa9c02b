//! Start-up's bulk read of a space's stored patterns, through rusqlite rather than sqlx.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every row to the caller
//! through a channel, copying each value on the way: a few microseconds a row. Start-up reads a
//! million rows or more, and that handing-over was most of its time, while the sqlite3 shell reads
//! the same rows several times faster. Here the statement is stepped on the calling thread and the
//! columns are read in place. rusqlite links the very SQLite that sqlx does (one `libsqlite3-sys`,
//! one bundled library). Its connection is read-only and lives for one read; everything else about
//! the database stays with sqlx.

use crate::engine::{Name, StorePlan};
use crate::store::load::{LOAD_CHUNK, PatternRow};
use crate::store::pattern_checksum;
use anyhow::Context;
use rusqlite::OpenFlags;
use std::path::Path;

/// Reads every stored pattern of `space` in the order it was learned (but those of neurons being
/// purged), as plans, and hands them to
/// `hand_on` a chunk at a time; returns how many there were.
pub fn read_patterns(
    path: &Path,
    space: &str,
    input_size: u32,
    hand_on: impl FnMut(Vec<StorePlan>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let connection = open_read_only(path)?;
    read_patterns_on(&connection, space, input_size, hand_on)
}

/// A read-only connection of rusqlite's to the database file at `path`.
pub fn open_read_only(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} to read its patterns", path.display()))
}

/// [`read_patterns`] on an open connection (inside the caller's read transaction, if any).
pub fn read_patterns_on(
    connection: &rusqlite::Connection,
    space: &str,
    input_size: u32,
    mut hand_on: impl FnMut(Vec<StorePlan>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut statement = connection.prepare(
        "SELECT neuron, id, segment, active, synapses, checksum, metadata FROM patterns WHERE space = ?1 \
         AND neuron NOT IN (SELECT neuron FROM purges WHERE space = ?1) ORDER BY seq",
    )?;
    let mut rows = statement.query([space])?;
    let mut chunk = Vec::with_capacity(LOAD_CHUNK);
    let mut last_neuron: Option<Name> = None;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        chunk.push(plan(row, space, input_size, &mut last_neuron)?);
        count += 1;
        if chunk.len() == LOAD_CHUNK {
            hand_on(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(LOAD_CHUNK),
            ))?;
        }
    }
    hand_on(chunk)?;
    Ok(count)
}

/// The plan a row (neuron, id, segment, active, synapses, checksum, metadata) recorded, once its checksum
/// (when it has one) matches its columns.
fn plan(
    row: &rusqlite::Row<'_>,
    space: &str,
    input_size: u32,
    last_neuron: &mut Option<Name>,
) -> anyhow::Result<StorePlan> {
    let stored = PatternRow {
        neuron: row.get_ref(0)?.as_str()?,
        id: row.get_ref(1)?.as_str()?,
        segment: row.get(2)?,
        active: row.get_ref(3)?.as_blob()?,
        synapses: row.get_ref(4)?.as_blob()?,
        metadata: row.get_ref(6)?.as_str_or_null()?,
    };
    let checksum: Option<i64> = row.get(5)?;
    if let Some(checksum) = checksum {
        let computed = pattern_checksum(
            space,
            stored.neuron,
            stored.id,
            stored.segment,
            (stored.active, stored.synapses),
            stored.metadata,
        );
        anyhow::ensure!(
            computed == checksum,
            "stored pattern {:?} of neuron {:?}: its checksum does not match its columns (the file is damaged; restore a backup)",
            stored.id.chars().take(128).collect::<String>(),
            stored.neuron.chars().take(128).collect::<String>()
        );
    }
    stored.plan(input_size, last_neuron)
}
