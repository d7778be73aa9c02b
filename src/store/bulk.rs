//! Start-up's bulk read of a space's stored patterns, through rusqlite rather than sqlx.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every row to the caller
//! through a channel, copying each value on the way: a few microseconds a row. Start-up reads a
//! million rows or more, and that handing-over was most of its time, while the sqlite3 shell reads
//! the same rows several times faster. Here the statement is stepped on the calling thread and the
//! columns are read in place. rusqlite links the very SQLite that sqlx does (one `libsqlite3-sys`,
//! one bundled library). Its connection is read-only and lives for one read; everything else about
//! the database stays with sqlx.

use super::decode_cells;
use crate::engine::{Name, Pattern, StorePlan};
use anyhow::Context;
use rusqlite::OpenFlags;
use std::path::Path;

/// Plans handed on at a time: the applier works on one chunk while the next is read.
pub const CHUNK: usize = 8_192;

/// Reads every stored pattern of `space` in the order it was learned, as plans, and hands them to
/// `hand_on` a chunk at a time; returns how many there were.
pub fn read_patterns(
    path: &Path,
    space: &str,
    input_size: u32,
    mut hand_on: impl FnMut(Vec<StorePlan>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} to read its patterns", path.display()))?;
    let mut statement = connection.prepare(
        "SELECT neuron, id, segment, active, synapses FROM patterns WHERE space = ?1 ORDER BY seq",
    )?;
    let mut rows = statement.query([space])?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut last_neuron: Option<Name> = None;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        chunk.push(plan(row, input_size, &mut last_neuron)?);
        count += 1;
        if chunk.len() == CHUNK {
            hand_on(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))?;
        }
    }
    hand_on(chunk)?;
    Ok(count)
}

/// The plan a row (neuron, id, segment, active, synapses) recorded. Rows come grouped by neuron
/// more often than not, so the last neuron's name is reused instead of parsed again.
fn plan(
    row: &rusqlite::Row<'_>,
    input_size: u32,
    last_neuron: &mut Option<Name>,
) -> anyhow::Result<StorePlan> {
    let neuron_name = row.get_ref(0)?.as_str()?;
    let neuron = match last_neuron {
        Some(name) if name.as_str() == neuron_name => name.clone(),
        _ => {
            let name = Name::parse(neuron_name)?;
            *last_neuron = Some(name.clone());
            name
        }
    };
    let segment: i64 = row.get(2)?;
    Ok(StorePlan {
        neuron,
        id: Name::parse(row.get_ref(1)?.as_str()?)?,
        active: Pattern::from_sorted(decode_cells(row.get_ref(3)?.as_blob()?)?, input_size)?,
        synapses: decode_cells(row.get_ref(4)?.as_blob()?)?,
        segment: u32::try_from(segment)?,
    })
}
