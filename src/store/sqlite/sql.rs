//! The writer's SQL on SQLite: the rows each kind of change adds or removes, inside a transaction
//! the writer opened. Nothing here decides anything; the writer plans, commits and applies.

use crate::engine::{Metadata, Name, SpaceParams, StorePlan};
use crate::store::{Change, Purge, bind_space, encode_cells, pattern_checksum};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

/// Rows per INSERT statement: 7 bound values each stays well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Counts one more committed write, inside the transaction that commits it, and returns its
/// number: the change's sequence.
pub(super) async fn count_write(connection: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    let last: i64 =
        sqlx::query_scalar("UPDATE write_sequence SET last = last + 1 WHERE id = 1 RETURNING last")
            .fetch_one(connection)
            .await?;
    Ok(last as u64)
}

/// The rows `change` adds or removes.
pub(super) async fn write_change(
    connection: &mut SqliteConnection,
    change: &Change,
) -> Result<(), sqlx::Error> {
    match change {
        Change::CreateSpace { space, params } => insert_space(connection, space, params).await,
        Change::DeleteSpace { .. } | Change::DeleteNeuron { .. } => {
            let purge = Purge::of(change).expect("a deletion purges rows");
            sqlx::query("INSERT OR IGNORE INTO purges (space, neuron) VALUES (?1, ?2)")
                .bind(purge.space.as_str())
                .bind(purge_neuron(&purge))
                .execute(connection)
                .await
                .map(drop)
        }
        Change::Store { patterns } => insert_stores(connection, patterns).await,
        Change::Forget { space, neuron, id } => delete_pattern(connection, space, neuron, id).await,
        Change::Neurons { space, neurons } => {
            upsert_neurons(connection, &crate::store::declared_counters(space, neurons)).await
        }
    }
}

/// (bytes the file may still take, free pages included; its limit in bytes) under the
/// connection's `max_page_count`, which `--max-database-size` sets.
pub(super) async fn room_bytes(
    connection: &mut SqliteConnection,
) -> Result<(u64, u64), sqlx::Error> {
    let (pages, free, limit, page_size): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT page_count FROM pragma_page_count()), \
         (SELECT freelist_count FROM pragma_freelist_count()), \
         (SELECT max_page_count FROM pragma_max_page_count()), \
         (SELECT page_size FROM pragma_page_size())",
    )
    .fetch_one(connection)
    .await?;
    let [pages, free, limit, page_size] = [pages, free, limit, page_size].map(|v| v.max(0) as u64);
    Ok((
        (limit.saturating_sub(pages) + free) * page_size,
        limit * page_size,
    ))
}

/// The `neuron` column of a purge: '' (never a valid name) for the whole space.
fn purge_neuron(purge: &Purge) -> &str {
    purge.neuron.as_ref().map_or("", Name::as_str)
}

/// The purges still to finish, in the order they were committed.
pub(super) async fn pending_purges(
    connection: &mut SqliteConnection,
) -> Result<Vec<Purge>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT space, neuron FROM purges ORDER BY rowid")
            .fetch_all(connection)
            .await?;
    rows.into_iter()
        .map(|(space, neuron)| {
            let name = |text: String| {
                Name::parse(&text).map_err(|error| {
                    sqlx::Error::Decode(format!("purges row {text:?}: {error}").into())
                })
            };
            Ok(Purge {
                space: name(space)?,
                neuron: (!neuron.is_empty()).then(|| name(neuron)).transpose()?,
            })
        })
        .collect()
}

/// Deletes up to `rows` pattern rows of `purge` (then, for a space, up to `rows` neuron rows);
/// once none is left, the space's or neuron's own row and the purge's. True when done.
pub(super) async fn purge_step(
    connection: &mut SqliteConnection,
    purge: &Purge,
    rows: u64,
) -> Result<bool, sqlx::Error> {
    let (space, neuron) = (purge.space.as_str(), purge_neuron(purge));
    let limit = rows as i64;
    // Through the indexes on (space, seq) and (space, neuron, id): each step reads only the
    // rows it deletes.
    let patterns = if purge.neuron.is_none() {
        "DELETE FROM patterns WHERE seq IN (SELECT seq FROM patterns WHERE space = ?1 LIMIT ?3)"
    } else {
        "DELETE FROM patterns WHERE seq IN \
         (SELECT seq FROM patterns WHERE space = ?1 AND neuron = ?2 LIMIT ?3)"
    };
    let deleted = sqlx::query(patterns)
        .bind(space)
        .bind(neuron)
        .bind(limit)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    if deleted == rows {
        return Ok(false);
    }
    if purge.neuron.is_none() {
        let neurons = sqlx::query(
            "DELETE FROM neurons WHERE rowid IN (SELECT rowid FROM neurons WHERE space = ?1 LIMIT ?2)",
        )
        .bind(space)
        .bind(limit)
        .execute(&mut *connection)
        .await?
        .rows_affected();
        if neurons == rows {
            return Ok(false);
        }
    }
    // Every statement names ?1 and ?2, so both bind alike.
    let last = if purge.neuron.is_none() {
        [
            "DELETE FROM spaces WHERE name = ?1 AND ?2 = ''",
            "DELETE FROM purges WHERE space = ?1 AND ?2 = ''",
        ]
    } else {
        [
            "DELETE FROM neurons WHERE space = ?1 AND name = ?2",
            "DELETE FROM purges WHERE space = ?1 AND neuron = ?2",
        ]
    };
    for statement in last {
        sqlx::query(statement)
            .bind(space)
            .bind(neuron)
            .execute(&mut *connection)
            .await?;
    }
    Ok(true)
}

/// A new space's parameters.
async fn insert_space(
    connection: &mut SqliteConnection,
    name: &Name,
    params: &SpaceParams,
) -> Result<(), sqlx::Error> {
    let insert = sqlx::query(
        "INSERT INTO spaces (name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
         max_segments_per_neuron, seed, encoder) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    );
    bind_space(insert, name, params)
        .execute(connection)
        .await
        .map(drop)
}

/// One stored pattern (its neuron's counters stay: forgotten ids are not handed out again).
async fn delete_pattern(
    connection: &mut SqliteConnection,
    space: &Name,
    neuron: &Name,
    id: &Name,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM patterns WHERE space = ?1 AND neuron = ?2 AND id = ?3")
        .bind(space.as_str())
        .bind(neuron.as_str())
        .bind(id.as_str())
        .execute(connection)
        .await
        .map(drop)
}

/// Writes the rows of new patterns, and their neurons' counters, inside the open transaction.
async fn insert_stores(
    connection: &mut SqliteConnection,
    plans: &[(Name, StorePlan)],
) -> Result<(), sqlx::Error> {
    upsert_neurons(&mut *connection, &crate::store::neuron_counters(plans)).await?;
    for chunk in plans.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO patterns (space, neuron, id, segment, active, synapses, checksum, metadata) ",
        );
        insert.push_values(chunk, |mut row, (space, plan)| {
            let (active, synapses) = (
                encode_cells(plan.active.cells()),
                encode_cells(&plan.synapses),
            );
            let segment = i64::from(plan.segment);
            let metadata = plan.metadata.as_ref().map(Metadata::as_str);
            let checksum = pattern_checksum(
                space.as_str(),
                plan.neuron.as_str(),
                plan.id.as_str(),
                segment,
                (&active, &synapses),
                metadata,
            );
            row.push_bind(space.as_str().to_owned())
                .push_bind(plan.neuron.as_str().to_owned())
                .push_bind(plan.id.as_str().to_owned())
                .push_bind(segment)
                .push_bind(active)
                .push_bind(synapses)
                .push_bind(checksum)
                .push_bind(metadata.map(str::to_owned));
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// Creates neurons or raises their counters (never lowering them), inside the open transaction.
#[allow(clippy::type_complexity)] // ((space, neuron), (next pattern, next segment))
async fn upsert_neurons(
    connection: &mut SqliteConnection,
    counters: &[((&Name, &Name), (i64, i64))],
) -> Result<(), sqlx::Error> {
    for chunk in counters.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO neurons (space, name, next_pattern, next_segment) ");
        insert.push_values(
            chunk,
            |mut row, ((space, neuron), (next_pattern, next_segment))| {
                row.push_bind(space.as_str().to_owned())
                    .push_bind(neuron.as_str().to_owned())
                    .push_bind(*next_pattern)
                    .push_bind(*next_segment);
            },
        );
        insert.push(
            " ON CONFLICT (space, name) DO UPDATE SET next_pattern = max(next_pattern, excluded.next_pattern), \
             next_segment = max(next_segment, excluded.next_segment)",
        );
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}
