//! What a client or a load balancer asks before anything else: is the process up
//! (`/healthz`), can it take writes (`/readyz`), and what is its contract (`/openapi.yaml`).

use super::AppState;
use super::Route;
use super::error::ApiError;
use super::extract::Json;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// The contract, served as written.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::open(Method::GET, "/healthz", healthz),
        Route::open(Method::GET, "/readyz", readyz),
        Route::open(Method::GET, "/openapi.yaml", openapi),
    ]
}

/// The process is up and answering.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready to take writes: the engine is loaded (the router only starts once it is), the database
/// answers, writes are not failing, and the database has room under its size limit. While they are, reads still work, and the answer says why.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Some(problem) = state.health.problem() {
        return Err(ApiError::unavailable(problem));
    }
    if let Some(problem) = state.db.size_limit_problem().await {
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
