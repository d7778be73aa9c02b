//! Queries: recognise one input, or a batch against one consistent state of the space.

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, ReadCost, Route, parse_name, route};
use crate::engine::{DEFAULT_LIMIT, Pattern, Query, Recognition, SharedSpace, Space};
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// The most matches one answer may list.
pub const MAX_LIMIT: usize = 1_000;
/// The most queries one batch may hold.
pub const MAX_QUERIES: usize = 1_000;
/// The longest a batch holds its space's read lock at a stretch: a write waiting for the lock
/// (and every query queued behind that write) waits at most about this long.
const READ_SLICE: Duration = Duration::from_millis(10);

pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Method::POST, "/v1/spaces/{space}/query", query),
        route(Method::POST, "/v1/spaces/{space}/query/batch", query_batch),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    active: Vec<i64>,
    threshold: Option<u32>,
    limit: Option<usize>,
}

impl QueryBody {
    fn parse(&self, space: &Space) -> Result<Query, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_parameter(
                "limit",
                format!("limit must be in 1..={MAX_LIMIT}, not {limit}"),
            ));
        }
        if self.threshold == Some(0) {
            return Err(ApiError::invalid_parameter(
                "threshold",
                "threshold must be at least 1",
            ));
        }
        let active = Pattern::parse(&self.active, space.params().input_size)?;
        Ok(Query {
            active,
            threshold: self.threshold,
            limit,
        })
    }
}

async fn query(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(body): Json<QueryBody>,
) -> Result<Json<Recognition>, ApiError> {
    let answer = state
        .read_space(&space, ReadCost::GrowsWithSpace, move |space| {
            Ok::<_, ApiError>(space.recognize(&body.parse(space)?)?)
        })
        .await??;
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
    let shared = state.space(&parse_name("space", &space)?)?;
    if body.queries.is_empty() || body.queries.len() > MAX_QUERIES {
        return Err(ApiError::invalid_parameter(
            "queries",
            format!(
                "a batch holds 1 to {MAX_QUERIES} queries, not {}",
                body.queries.len()
            ),
        ));
    }
    let deadline = Instant::now() + state.read_timeout;
    let results = state
        .cpu
        .run(move || recognize_in_slices(&shared, &body.queries, deadline))
        .await??;
    Ok(Json(QueryBatchAnswer { results }))
}

/// Recognises the queries in order, holding the space's read lock for at most [`READ_SLICE`] at
/// a time so that a write never waits long behind a batch. Each query sees one whole state of
/// the space; a batch that outlasts a slice may see writes committed between its queries. Past
/// the deadline the batch stops: its client has had its timeout answer already.
fn recognize_in_slices(
    shared: &SharedSpace,
    queries: &[QueryBody],
    deadline: Instant,
) -> Result<Vec<Recognition>, ApiError> {
    let mut results = Vec::with_capacity(queries.len());
    while results.len() < queries.len() {
        if Instant::now() >= deadline {
            return Err(ApiError::timeout());
        }
        let space = shared.read().unwrap_or_else(PoisonError::into_inner);
        let slice_ends = Instant::now() + READ_SLICE;
        while let Some(body) = queries.get(results.len()) {
            let index = results.len();
            let query = body.parse(&space).map_err(|e| e.at_index(index))?;
            let answer = space
                .recognize(&query)
                .map_err(|e| ApiError::from(e).at_index(index))?;
            results.push(answer);
            if Instant::now() >= slice_ends {
                break;
            }
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Name, SpaceParams, SpaceSpec};
    use std::sync::{Arc, RwLock};

    #[test]
    fn a_batch_past_its_deadline_stops_with_a_timeout() {
        let params = SpaceParams::new(&SpaceSpec {
            input_size: 64,
            active_bits: 8,
            threshold: Some(4),
            max_false_match: Some(1.0),
            ..SpaceSpec::default()
        })
        .unwrap();
        let shared: SharedSpace =
            Arc::new(RwLock::new(Space::new(Name::parse("s").unwrap(), params)));
        let queries: Vec<QueryBody> = (0..3)
            .map(|i| QueryBody {
                active: vec![i, i + 10, i + 20, i + 30],
                threshold: None,
                limit: None,
            })
            .collect();
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            recognize_in_slices(&shared, &queries, later).unwrap().len(),
            3
        );
        let past = Instant::now();
        let error = recognize_in_slices(&shared, &queries, past).unwrap_err();
        assert_eq!(error, ApiError::timeout());
    }
}
