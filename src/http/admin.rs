//! Administration: online backups of the whole database, listed and downloaded.

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, Route};
use crate::store::backup::{BackupFile, BackupReport};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::write(Method::POST, "/v1/admin/backup", backup),
        Route::read(Method::GET, "/v1/admin/backups", list).with_write_key(),
        Route::read(Method::GET, "/v1/admin/backups/{name}", download).with_write_key(),
    ]
}

/// Bytes read from the backup file per chunk sent.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// Streams a backup file of the folder (only those `GET /v1/admin/backups` lists), a chunk at a
/// time: a backup of gigabytes costs the service one chunk of memory. A backup pruned while it
/// is being sent stays readable to the end (the open file outlives its name).
async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    use tokio::io::AsyncReadExt;
    let missing = || {
        ApiError::not_found(format!(
            "no backup named {name:?}: GET /v1/admin/backups lists them"
        ))
    };
    let path = state.backups.file(&name).await?.ok_or_else(missing)?;
    let file = tokio::fs::File::open(&path).await.map_err(|_| missing())?;
    let length = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?
        .len();
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0; DOWNLOAD_CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            // The error ends the answer early (the client sees a cut body, never a short file
            // passed off as whole: the length was declared).
            Err(error) => Some((Err(error), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
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
