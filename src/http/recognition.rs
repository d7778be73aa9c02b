//! Queries: recognise one input, or a batch against one consistent state of the space.

use super::encoding::Coder;
use super::error::ApiError;
use super::extract::{Json, Path, in_range};
use super::{AppState, ReadCost, Route, parse_name};
use crate::engine::encoder::Code;
use crate::engine::{DEFAULT_LIMIT, Query, Recognition, SharedSpace, Space};
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// The most matches one answer may list.
pub const MAX_LIMIT: usize = 1_000;
/// The most queries one batch may hold.
pub const MAX_QUERIES: usize = 1_000;
/// The most matches one batch may ask for, summing its queries' limits: a match is about 220
/// bytes of JSON, so an answer stays under about 22 MB (1,000 queries at limit 1,000 with
/// threshold 1 once answered 223 MB).
pub const MAX_BATCH_MATCHES: usize = 100_000;
/// The longest a batch holds its space's read lock at a stretch: a write waiting for the lock
/// (and every query queued behind that write) waits at most about this long.
const READ_SLICE: Duration = Duration::from_millis(10);

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::read(Method::POST, "/v1/spaces/{space}/query", query),
        Route::read(Method::POST, "/v1/spaces/{space}/query/batch", query_batch),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    active: Option<Vec<i64>>,
    record: Option<serde_json::Value>,
    threshold: Option<u32>,
    limit: Option<usize>,
}

impl QueryBody {
    /// The query, and the record's code when the input was a record.
    fn parse(&self, space: &Space, place: &str) -> Result<(Query, Option<Code>), ApiError> {
        let limit = in_range("limit", self.limit.unwrap_or(DEFAULT_LIMIT), MAX_LIMIT)?;
        if self.threshold == Some(0) {
            return Err(ApiError::invalid_parameter(
                "threshold",
                "threshold must be at least 1",
            ));
        }
        let (active, code) =
            Coder::of(space).pattern(self.active.as_deref(), self.record.as_ref(), place)?;
        let query = Query {
            active,
            threshold: self.threshold,
            limit,
        };
        Ok((query, code))
    }

    /// The answer, each match with its fields' share of the overlap when the input was a record.
    fn answer(&self, space: &Space, place: &str) -> Result<Recognition, ApiError> {
        let (query, code) = self.parse(space, place)?;
        let mut answer = space.recognize(&query)?;
        if let Some(code) = code {
            space.attribute(&mut answer, &code);
        }
        Ok(answer)
    }
}

async fn query(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(body): Json<QueryBody>,
) -> Result<Json<Recognition>, ApiError> {
    let answer = state
        .read_space(&space, ReadCost::GrowsWithSpace, move |space| {
            body.answer(space, "")
        })
        .await??;
    state.activity.answered(1, answer.matches.len() as u64);
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBatchBody {
    queries: Vec<QueryBody>,
}

#[derive(Serialize)]
struct QueryBatchAnswer {
    results: Vec<Recognition>,
}

async fn query_batch(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(body): Json<QueryBatchBody>,
) -> Result<Json<QueryBatchAnswer>, ApiError> {
    let name = parse_name("space", &space)?;
    let shared = state.space(&name)?;
    if body.queries.is_empty() || body.queries.len() > MAX_QUERIES {
        return Err(ApiError::invalid_parameter(
            "queries",
            format!(
                "a batch holds 1 to {MAX_QUERIES} queries, not {}",
                body.queries.len()
            ),
        ));
    }
    let asked = body
        .queries
        .iter()
        .map(|q| q.limit.unwrap_or(DEFAULT_LIMIT))
        .fold(0usize, usize::saturating_add);
    if asked > MAX_BATCH_MATCHES {
        return Err(ApiError::answer_too_large(format!(
            "the queries' limits add up to {asked} matches; a batch may ask for at most {MAX_BATCH_MATCHES}: lower the limits or split the batch"
        )));
    }
    // A slice at a time, each on a CPU worker for at most READ_SLICE: the space's lock and the
    // CPU workers are shared with everyone else between slices. When the request timeout cuts
    // this handler off, no further slice starts. Each slice looks the space up again: one
    // deleted (or deleted and created anew) meanwhile ends the batch with 404, rather than
    // answering from a space that no longer exists.
    let queries = Arc::new(body.queries);
    let mut results = Vec::with_capacity(queries.len());
    while results.len() < queries.len() {
        if !results.is_empty() {
            let current = state.spaces.get(&name);
            if !current.is_some_and(|current| Arc::ptr_eq(&current, &shared)) {
                return Err(ApiError::not_found(format!(
                    "space {name} was deleted while the batch ran"
                )));
            }
        }
        let (shared, queries, first) = (Arc::clone(&shared), Arc::clone(&queries), results.len());
        let slice = state
            .cpu
            .run(move || recognize_slice(&shared, &queries, first))
            .await??;
        results.extend(slice);
    }
    let matches = results.iter().map(|r| r.matches.len() as u64).sum();
    state.activity.answered(results.len() as u64, matches);
    Ok(Json(QueryBatchAnswer { results }))
}

/// Recognises `queries` from `first` on, under one hold of the space's read lock, until they end
/// or [`READ_SLICE`] has passed (at least one query either way): a write never waits long behind
/// a batch. Each query sees one whole state of the space; a batch that outlasts a slice may see
/// writes committed between its queries.
fn recognize_slice(
    shared: &SharedSpace,
    queries: &[QueryBody],
    first: usize,
) -> Result<Vec<Recognition>, ApiError> {
    let space = shared.read().unwrap_or_else(PoisonError::into_inner);
    let slice_ends = Instant::now() + READ_SLICE;
    let mut results = Vec::new();
    for (index, body) in queries.iter().enumerate().skip(first) {
        let answer = body.answer(&space, "").map_err(|e| e.at_index(index))?;
        results.push(answer);
        if Instant::now() >= slice_ends {
            break;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SpaceLock, tiny_space};

    #[test]
    fn a_slice_answers_from_its_first_query_as_single_queries_would() {
        let shared: SharedSpace = Arc::new(SpaceLock::new(tiny_space("s")));
        let mut queries: Vec<QueryBody> = (0..3)
            .map(|i| QueryBody {
                active: Some(vec![i, i + 10, i + 20, i + 30]),
                record: None,
                threshold: None,
                limit: None,
            })
            .collect();
        let slice = recognize_slice(&shared, &queries, 1).unwrap();
        let space = shared.read().unwrap();
        let single: Vec<Recognition> = queries[1..]
            .iter()
            .map(|q| q.answer(&space, "").unwrap())
            .collect();
        assert_eq!(slice, single);
        drop(space);
        queries[2].active = Some(vec![64]);
        let error = recognize_slice(&shared, &queries, 1).unwrap_err();
        assert_eq!(
            error.index(),
            Some(2),
            "errors name the query's place in the batch"
        );
    }
}
