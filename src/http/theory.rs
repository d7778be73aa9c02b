//! The theory's what-if analysis over HTTP: `GET /v1/theory` answers exactly what
//! `dendrite theory` prints for the same parameters.

use super::error::ApiError;
use super::extract::{Json, Query};
use super::{AppState, Route};
use crate::analysis::{self, Analysis};
use axum::extract::State;
use axum::http::Method;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::read(Method::GET, "/v1/theory", theory).with_query()]
}

/// Exactly what `dendrite theory` prints, for the same parameters.
async fn theory(
    State(state): State<AppState>,
    Query(request): Query<analysis::Request>,
) -> Result<Json<Analysis>, ApiError> {
    let parameters = request.parameters()?;
    // Bounded by the parameter limits, but still up to a few hundred milliseconds: on a CPU
    // worker, not an async one.
    let analysis = state.cpu.run(move || Analysis::of(&parameters)).await??;
    Ok(Json(analysis))
}
