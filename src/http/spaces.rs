//! Spaces: create (idempotent for the same parameters), list, report, delete.

use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::guard::with_sequence;
use super::neurons::Page;
use super::{AppState, ReadCost, Route, parse_name};
use crate::engine::{Name, Space, SpaceParams, SpaceReport, SpaceSpec};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Serialize;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::read(Method::GET, "/v1/spaces", list).with_query(),
        Route::write(Method::PUT, "/v1/spaces/{space}", create),
        Route::read(Method::GET, "/v1/spaces/{space}", report),
        Route::write(Method::DELETE, "/v1/spaces/{space}", delete),
    ]
}

#[derive(Serialize)]
struct SpaceList {
    spaces: Vec<SpaceReport>,
    /// Pass as `after` for the next page; null on the last one.
    next: Option<Name>,
}

/// A page of spaces by name, as the neuron list pages neurons: 10,000 spaces in one answer were
/// 5 MB.
async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<SpaceList>, ApiError> {
    let (limit, after) = page.checked()?;
    let mut shared = state.spaces.page(after.as_ref(), limit + 1);
    let more = shared.len() > limit;
    shared.truncate(limit);
    let spaces = super::read_spaces(shared, Space::report).await?;
    let next = more
        .then(|| spaces.last().map(|s| s.name.clone()))
        .flatten();
    Ok(Json(SpaceList { spaces, next }))
}

async fn create(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(spec): Json<SpaceSpec>,
) -> Result<Response, ApiError> {
    let name = parse_name("space", &space)?;
    // The defaults and the space's theory cost milliseconds for large parameters: computed on a
    // CPU worker, so neither an async worker nor the writer waits for them.
    let space = state
        .cpu
        .run(move || SpaceParams::new(&spec).map(|params| Space::new(name, params)))
        .await??;
    let written = state.writer.create_space(space).await?;
    let (report, created) = written.value;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_sequence(written.sequence, (status, Json(report))))
}

async fn report(
    State(state): State<AppState>,
    Path(space): Path<String>,
) -> Result<Json<SpaceReport>, ApiError> {
    Ok(Json(
        state
            .read_space(&space, ReadCost::Fixed, Space::report)
            .await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Path(space): Path<String>,
) -> Result<Response, ApiError> {
    let written = state
        .writer
        .delete_space(parse_name("space", &space)?)
        .await?;
    Ok(with_sequence(written.sequence, StatusCode::NO_CONTENT))
}
