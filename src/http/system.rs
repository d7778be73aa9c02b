//! Liveness, readiness, the spec, service statistics and the theory's what-if analysis.

use super::error::ApiError;
use super::extract::{Json, Query};
use super::{AppState, Route, route};
use crate::analysis::{self, Analysis};
use crate::engine::Space;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};

/// The contract, served as written.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/healthz", healthz),
        route(Method::GET, "/readyz", readyz),
        route(Method::GET, "/openapi.yaml", openapi),
        route(Method::GET, "/v1/stats", stats),
        route(Method::GET, "/v1/theory", theory),
    ]
}

/// The process is up and answering.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready to take writes: the engine is loaded (the router only starts once it is), the database
/// answers, and writes are not failing. While they are, reads still work, and the answer says why.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Some(problem) = state.health.problem() {
        return Err(ApiError::unavailable(problem));
    }
    if state.db.ping().await {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::unavailable("the database does not answer"))
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

#[derive(Serialize)]
struct Stats {
    spaces: u64,
    neurons: u64,
    segments: u64,
    patterns: u64,
    synapses: u64,
    /// The memory the engine takes, estimated; writes are refused before it passes the limit.
    memory_bytes: u64,
    memory_limit: Option<u64>,
    /// Write transactions committed since start.
    commits: u64,
    /// Writes those transactions carried (a pattern, a forget, a deletion...).
    writes_committed: u64,
    /// Group commit's effect: above 1 when concurrent writes shared a commit.
    writes_per_commit: f64,
    uptime_seconds: f64,
}

async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let (commits, writes_committed) = state.writer.stats().snapshot();
    let mut stats = Stats {
        spaces: 0,
        neurons: 0,
        segments: 0,
        patterns: 0,
        synapses: 0,
        memory_bytes: 0,
        memory_limit: state.writer.memory_limit(),
        commits,
        writes_committed,
        writes_per_commit: if commits == 0 {
            0.0
        } else {
            writes_committed as f64 / commits as f64
        },
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    };
    for counts in state.read_every_space(Space::counts).await? {
        stats.spaces += 1;
        stats.neurons += counts.neurons;
        stats.segments += counts.segments;
        stats.patterns += counts.patterns;
        stats.synapses += counts.synapses;
        stats.memory_bytes += counts.memory_bytes;
    }
    Ok(Json(stats))
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
