//! Queries: recognise one input, or a batch against one consistent state of the space.

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, Route, parse_name, route};
use crate::engine::{DEFAULT_LIMIT, Pattern, Query, Recognition, Space};
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use std::sync::PoisonError;

/// The most matches one answer may list.
pub const MAX_LIMIT: usize = 1_000;
/// The most queries one batch may hold.
pub const MAX_QUERIES: usize = 1_000;

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
    let answer = state.read_space(&space, |space| {
        Ok::<_, ApiError>(space.recognize(&body.parse(space)?)?)
    })??;
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
    // A thousand queries take tens of milliseconds: run them off the async workers, all under
    // one read lock so they see one state of the space.
    let results = tokio::task::spawn_blocking(move || {
        let space = shared.read().unwrap_or_else(PoisonError::into_inner);
        body.queries
            .iter()
            .enumerate()
            .map(|(index, q)| {
                let query = q.parse(&space).map_err(|e| e.at_index(index))?;
                space
                    .recognize(&query)
                    .map_err(|e| ApiError::from(e).at_index(index))
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("the batch did not finish: {e}")))??;
    Ok(Json(QueryBatchAnswer { results }))
}
