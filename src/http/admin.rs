//! Administration: online backups of the whole database.

use super::error::ApiError;
use super::extract::Json;
use super::{AppState, Route};
use crate::store::backup::{BackupFile, BackupReport};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Serialize;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::write(Method::POST, "/v1/admin/backup", backup),
        Route::read(Method::GET, "/v1/admin/backups", list).with_write_key(),
    ]
}

/// Writes a backup while reads and writes go on; answers once it is durable under its name.
async fn backup(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<BackupReport>), ApiError> {
    let report = state.backups.create(&state.db).await?;
    tracing::info!(
        backup = %report.name,
        bytes = report.bytes,
        patterns = report.patterns,
        last_write = report.last_write,
        "backup written"
    );
    Ok((StatusCode::CREATED, Json(report)))
}

#[derive(Serialize)]
struct BackupList {
    backups: Vec<BackupFile>,
}

async fn list(State(state): State<AppState>) -> Result<Json<BackupList>, ApiError> {
    let backups = state.backups.list().await?;
    Ok(Json(BackupList { backups }))
}
