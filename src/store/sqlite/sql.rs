//! The writer's SQL on SQLite: the rows each kind of change adds or removes, inside a transaction
//! the writer opened. Nothing here decides anything; the writer plans, commits and applies.

use crate::engine::{Name, SpaceParams, StorePlan};
use crate::store::{Change, encode_cells, pattern_checksum};
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
        Change::DeleteSpace { space } => delete_space(connection, space).await,
        Change::Store { patterns } => insert_stores(connection, patterns).await,
        Change::Forget { space, neuron, id } => delete_pattern(connection, space, neuron, id).await,
        Change::DeleteNeuron { space, neuron } => delete_neuron(connection, space, neuron).await,
    }
}

/// A new space's parameters.
async fn insert_space(
    connection: &mut SqliteConnection,
    name: &Name,
    params: &SpaceParams,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO spaces (name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
         max_segments_per_neuron, seed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(name.as_str())
    .bind(i64::from(params.input_size))
    .bind(i64::from(params.active_bits))
    .bind(i64::from(params.synapses_per_pattern))
    .bind(i64::from(params.threshold))
    .bind(params.max_false_match)
    .bind(i64::from(params.max_segments_per_neuron))
    .bind(params.seed as i64)
    .execute(connection)
    .await
    .map(drop)
}

/// A space with its neurons and patterns.
async fn delete_space(connection: &mut SqliteConnection, space: &Name) -> Result<(), sqlx::Error> {
    for statement in [
        "DELETE FROM patterns WHERE space = ?1",
        "DELETE FROM neurons WHERE space = ?1",
        "DELETE FROM spaces WHERE name = ?1",
    ] {
        sqlx::query(statement)
            .bind(space.as_str())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
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

/// A neuron with its patterns.
async fn delete_neuron(
    connection: &mut SqliteConnection,
    space: &Name,
    neuron: &Name,
) -> Result<(), sqlx::Error> {
    for statement in [
        "DELETE FROM patterns WHERE space = ?1 AND neuron = ?2",
        "DELETE FROM neurons WHERE space = ?1 AND name = ?2",
    ] {
        sqlx::query(statement)
            .bind(space.as_str())
            .bind(neuron.as_str())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Writes the rows of new patterns, and their neurons' counters, inside the open transaction.
async fn insert_stores(
    connection: &mut SqliteConnection,
    plans: &[(Name, StorePlan)],
) -> Result<(), sqlx::Error> {
    let counters = crate::store::neuron_counters(plans);
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
    for chunk in plans.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO patterns (space, neuron, id, segment, active, synapses, checksum) ",
        );
        insert.push_values(chunk, |mut row, (space, plan)| {
            let (active, synapses) = (
                encode_cells(plan.active.cells()),
                encode_cells(&plan.synapses),
            );
            let segment = i64::from(plan.segment);
            let checksum = pattern_checksum(
                space.as_str(),
                plan.neuron.as_str(),
                plan.id.as_str(),
                segment,
                &active,
                &synapses,
            );
            row.push_bind(space.as_str().to_owned())
                .push_bind(plan.neuron.as_str().to_owned())
                .push_bind(plan.id.as_str().to_owned())
                .push_bind(segment)
                .push_bind(active)
                .push_bind(synapses)
                .push_bind(checksum);
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}
