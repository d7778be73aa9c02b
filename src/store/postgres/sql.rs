//! The writer's SQL on PostgreSQL: each change's rows, its entry in the log, and reading and
//! compacting the log.
//!
//! The log is numbered in commit order without gaps: a writer takes its number by updating the
//! one `change_head` row after it has written everything else, and holds that row's lock until it
//! commits. The next writer waits on the row, so commits leave in number order, and a reader that
//! sees change n visible can rely on every change before n being visible too. The lock is held
//! only for the log entry and the commit itself.

use crate::engine::{Metadata, Name, SpaceParams, StorePlan};
use crate::rng::{FNV1A_START, fnv1a};
use crate::store::{Change, Changes, bind_space, encode_cells, neuron_counters};
use sqlx::postgres::PgConnection;
use sqlx::{Executor, Row};
use std::time::Duration;

/// The advisory lock key of a space: FNV-1a of its name, a hash that never changes between
/// releases, so replicas of different versions still exclude each other.
pub(super) fn lock_key(space: &Name) -> i64 {
    fnv1a(
        fnv1a(FNV1A_START, b"dendrite space "),
        space.as_str().as_bytes(),
    ) as i64
}

/// Writes the change's rows and its log entry inside the open transaction; returns its sequence.
pub(super) async fn write_change(
    connection: &mut PgConnection,
    change: &Change,
) -> Result<u64, sqlx::Error> {
    match change {
        Change::CreateSpace { space, params } => insert_space(connection, space, params).await?,
        Change::DeleteSpace { space } => {
            // The neurons' and patterns' rows go with it (ON DELETE CASCADE).
            sqlx::query("DELETE FROM spaces WHERE name = $1")
                .bind(space.as_str())
                .execute(&mut *connection)
                .await?;
        }
        Change::Store { patterns } => insert_stores(connection, patterns).await?,
        Change::Forget { space, neuron, id } => {
            sqlx::query("DELETE FROM patterns WHERE space = $1 AND neuron = $2 AND id = $3")
                .bind(space.as_str())
                .bind(neuron.as_str())
                .bind(id.as_str())
                .execute(&mut *connection)
                .await?;
        }
        Change::DeleteNeuron { space, neuron } => {
            sqlx::query("DELETE FROM neurons WHERE space = $1 AND name = $2")
                .bind(space.as_str())
                .bind(neuron.as_str())
                .execute(&mut *connection)
                .await?;
        }
        Change::Neurons { space, neurons } => {
            upsert_neurons(connection, crate::store::declared_counters(space, neurons)).await?;
        }
    }
    // Last: from here to COMMIT this transaction holds the head row, and every other writer's
    // commit waits for it.
    let sequence: i64 =
        sqlx::query_scalar("UPDATE change_head SET last = last + 1 WHERE id = 1 RETURNING last")
            .fetch_one(&mut *connection)
            .await?;
    sqlx::query("INSERT INTO changes (seq, kind, body) VALUES ($1, $2, $3::json)")
        .bind(sequence)
        .bind(change.kind())
        .bind(change.to_json())
        .execute(&mut *connection)
        .await?;
    // Delivered to every listening replica when (and only if) the transaction commits.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::CHANNEL)
        .bind(sequence.to_string())
        .execute(&mut *connection)
        .await?;
    Ok(sequence as u64)
}

async fn insert_space(
    connection: &mut PgConnection,
    name: &Name,
    params: &SpaceParams,
) -> Result<(), sqlx::Error> {
    let insert = sqlx::query(
        "INSERT INTO spaces (name, input_size, active_bits, synapses_per_pattern, threshold, max_false_match, \
         max_segments_per_neuron, seed, encoder) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    );
    bind_space(insert, name, params)
        .execute(connection)
        .await
        .map(drop)
}

/// New patterns and their neurons' counters, each table in one statement over arrays: one round
/// trip whatever the group's size.
async fn insert_stores(
    connection: &mut PgConnection,
    plans: &[(Name, StorePlan)],
) -> Result<(), sqlx::Error> {
    upsert_neurons(&mut *connection, neuron_counters(plans)).await?;
    let text = |f: fn(&(Name, StorePlan)) -> &str| -> Vec<&str> { plans.iter().map(f).collect() };
    sqlx::query(
        "INSERT INTO patterns (space, neuron, id, segment, active, synapses, metadata) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::bytea[], $7::text[])",
    )
    .bind(text(|(space, _)| space.as_str()))
    .bind(text(|(_, plan)| plan.neuron.as_str()))
    .bind(text(|(_, plan)| plan.id.as_str()))
    .bind(
        plans
            .iter()
            .map(|(_, plan)| i64::from(plan.segment))
            .collect::<Vec<i64>>(),
    )
    .bind(
        plans
            .iter()
            .map(|(_, plan)| encode_cells(plan.active.cells()))
            .collect::<Vec<Vec<u8>>>(),
    )
    .bind(
        plans
            .iter()
            .map(|(_, plan)| encode_cells(&plan.synapses))
            .collect::<Vec<Vec<u8>>>(),
    )
    .bind(
        plans
            .iter()
            .map(|(_, plan)| plan.metadata.as_ref().map(Metadata::as_str))
            .collect::<Vec<Option<&str>>>(),
    )
    .execute(connection)
    .await
    .map(drop)
}

/// Creates neurons or raises their counters (never lowering them) in one statement.
#[allow(clippy::type_complexity)] // ((space, neuron), (next pattern, next segment))
async fn upsert_neurons(
    connection: &mut PgConnection,
    counters: Vec<((&Name, &Name), (i64, i64))>,
) -> Result<(), sqlx::Error> {
    let (mut spaces, mut neurons, mut next_patterns, mut next_segments) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((space, neuron), (next_pattern, next_segment)) in counters {
        spaces.push(space.as_str());
        neurons.push(neuron.as_str());
        next_patterns.push(next_pattern);
        next_segments.push(next_segment);
    }
    sqlx::query(
        "INSERT INTO neurons (space, name, next_pattern, next_segment) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
         ON CONFLICT (space, name) DO UPDATE SET \
         next_pattern = GREATEST(neurons.next_pattern, excluded.next_pattern), \
         next_segment = GREATEST(neurons.next_segment, excluded.next_segment)",
    )
    .bind(spaces)
    .bind(neurons)
    .bind(next_patterns)
    .bind(next_segments)
    .execute(connection)
    .await
    .map(drop)
}

/// Up to `limit` changes after `applied`, in order, or word that the log no longer holds them.
pub(super) async fn changes_after(
    connection: &mut PgConnection,
    applied: u64,
    limit: usize,
) -> Result<Changes, sqlx::Error> {
    let (head, compacted): (i64, i64) =
        sqlx::query_as("SELECT last, compacted_through FROM change_head WHERE id = 1")
            .fetch_one(&mut *connection)
            .await?;
    let (head, compacted) = (head as u64, compacted as u64);
    if compacted > applied {
        return Ok(Changes::Compacted { through: compacted });
    }
    if head <= applied {
        return Ok(Changes::Next {
            changes: Vec::new(),
            head,
        });
    }
    let rows = sqlx::query(
        "SELECT seq, kind, body::text FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(applied as i64)
    .bind(limit as i64)
    .fetch_all(&mut *connection)
    .await?;
    let mut changes = Vec::with_capacity(rows.len());
    for (expected, row) in (applied + 1..).zip(&rows) {
        let (sequence, change) = decode_change(row)?;
        if sequence != expected {
            // Compacted between the two reads: the change after `applied` is gone.
            return Ok(Changes::Compacted {
                through: sequence - 1,
            });
        }
        changes.push((sequence, change));
    }
    Ok(Changes::Next { changes, head })
}

/// The changes strictly between `applied` and `sequence`: called by a writer holding the head
/// row, when every earlier change has committed, so one missing was compacted (the caller
/// checks that all are there).
pub(super) async fn changes_between(
    connection: &mut PgConnection,
    applied: u64,
    sequence: u64,
) -> Result<Vec<(u64, Change)>, sqlx::Error> {
    if sequence <= applied + 1 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT seq, kind, body::text FROM changes WHERE seq > $1 AND seq < $2 ORDER BY seq",
    )
    .bind(applied as i64)
    .bind(sequence as i64)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter().map(decode_change).collect()
}

/// A `changes` row: (sequence, change).
fn decode_change(row: &sqlx::postgres::PgRow) -> Result<(u64, Change), sqlx::Error> {
    let sequence = row.try_get::<i64, _>(0)? as u64;
    let (kind, body): (&str, &str) = (row.try_get(1)?, row.try_get(2)?);
    let change = Change::from_json(kind, body).map_err(|error| {
        sqlx::Error::Decode(format!("change {sequence} of the log: {error:#}").into())
    })?;
    Ok((sequence, change))
}

/// Deletes the log's entries older than `retention` (never the newest), in one transaction with
/// the mark that says how far it was compacted; returns the newest deleted (0: none).
pub(super) async fn compact(
    connection: &mut PgConnection,
    retention: Duration,
) -> Result<u64, sqlx::Error> {
    connection.execute("BEGIN").await?;
    let through: Option<i64> = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM changes WHERE committed_at < now() - make_interval(secs => $1) \
         AND seq < (SELECT last FROM change_head WHERE id = 1) RETURNING seq) SELECT max(seq) FROM gone",
    )
    .bind(retention.as_secs_f64())
    .fetch_one(&mut *connection)
    .await?;
    if let Some(through) = through {
        sqlx::query(
            "UPDATE change_head SET compacted_through = GREATEST(compacted_through, $1) WHERE id = 1",
        )
        .bind(through)
        .execute(&mut *connection)
        .await?;
    }
    connection.execute("COMMIT").await?;
    Ok(through.map_or(0, |t| t as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replicas of different versions lock a space by the same key, so it never changes: the
    /// value is FNV-1a 64 of "dendrite space s", computed apart from this code.
    #[test]
    fn a_spaces_lock_key_is_frozen() {
        assert_eq!(
            lock_key(&Name::parse("s").unwrap()),
            7_875_905_572_312_322_785
        );
    }
}
