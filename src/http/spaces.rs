//! Spaces: create (idempotent for the same parameters), list, report, delete.

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, ReadCost, Route, parse_name, route};
use crate::engine::{Space, SpaceParams, SpaceReport, SpaceSpec};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/v1/spaces", list),
        route(Method::PUT, "/v1/spaces/{space}", create),
        route(Method::GET, "/v1/spaces/{space}", report),
        route(Method::DELETE, "/v1/spaces/{space}", delete),
    ]
}

#[derive(Serialize)]
struct SpaceList {
    spaces: Vec<SpaceReport>,
}

async fn list(State(state): State<AppState>) -> Result<Json<SpaceList>, ApiError> {
    let spaces = state.read_every_space(Space::report).await?;
    Ok(Json(SpaceList { spaces }))
}

/// A space's parameters as the client sends them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceBody {
    input_size: u32,
    active_bits: u32,
    synapses_per_pattern: Option<u32>,
    threshold: Option<u32>,
    max_false_match: Option<f64>,
    max_segments_per_neuron: Option<u32>,
    seed: Option<u64>,
}

async fn create(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(body): Json<SpaceBody>,
) -> Result<(StatusCode, Json<SpaceReport>), ApiError> {
    let name = parse_name("space", &space)?;
    let spec = SpaceSpec {
        input_size: body.input_size,
        active_bits: body.active_bits,
        synapses_per_pattern: body.synapses_per_pattern,
        threshold: body.threshold,
        max_false_match: body.max_false_match,
        max_segments_per_neuron: body.max_segments_per_neuron,
        seed: body.seed,
    };
    // The defaults and the space's theory cost milliseconds for large parameters: computed on a
    // CPU worker, so neither an async worker nor the writer waits for them.
    let space = state
        .cpu
        .run(move || SpaceParams::new(&spec).map(|params| Space::new(name, params)))
        .await??;
    let (report, created) = state.writer.create_space(space).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
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
) -> Result<StatusCode, ApiError> {
    state
        .writer
        .delete_space(parse_name("space", &space)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
