//! Administration: online backups of the whole database, listed and downloaded, and the
//! database's export (what `dendrite export` writes) streamed.

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, Route};
use crate::store::backup::{BackupFile, BackupReport};
use crate::store::transfer;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::write(Method::POST, "/v1/admin/backup", backup),
        Route::read(Method::GET, "/v1/admin/backups", list).with_write_key(),
        Route::read(Method::GET, "/v1/admin/backups/{name}", download).with_write_key(),
        Route::read(Method::GET, "/v1/admin/export", export).with_write_key(),
    ]
}

/// Streams `dendrite export`'s lines for the service's own database: one consistent snapshot,
/// read through a connection of its own on a thread of its own while the service goes on. One
/// export runs at a time (each holds a database snapshot and a thread); the thread writes a
/// chunk at a time into a channel of a few chunks, so a slow client slows the export rather than
/// filling memory, and a client that leaves stops it. An error part-way ends the body early,
/// its last line cut off (chunks end anywhere): a last line that does not parse is how a client
/// tells. The snapshot stays open while the client reads, so a SQLite WAL cannot be checkpointed
/// past it until the export ends.
async fn export(State(state): State<AppState>) -> Result<Response, ApiError> {
    let source = transfer::Source::of(&state.db).ok_or_else(|| {
        ApiError::conflict("the database is in memory: no other connection can read it to export")
    })?;
    let running = Arc::clone(&state.exporting);
    if running.swap(true, Ordering::AcqRel) {
        return Err(ApiError::busy("an export is already running; wait for it"));
    }
    let (chunks, received) = std::sync::mpsc::sync_channel::<std::io::Result<Bytes>>(4);
    let spawned = std::thread::Builder::new()
        .name("dendrite-export".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| {
                    let out = ChunkWriter {
                        chunks: chunks.clone(),
                        buffer: Vec::with_capacity(EXPORT_CHUNK),
                    };
                    runtime.block_on(transfer::export_from(source, out, false))
                });
            if let Err(error) = outcome {
                tracing::warn!(error = %format!("{error:#}"), "an export over HTTP stopped part-way");
                let _ = chunks.send(Err(std::io::Error::other(error.to_string())));
            }
            running.store(false, Ordering::Release);
        });
    if let Err(error) = spawned {
        state.exporting.store(false, Ordering::Release);
        return Err(ApiError::internal(format!(
            "cannot start the export's thread: {error}"
        )));
    }
    // Each chunk is awaited on a blocking thread: the channel's receiver blocks.
    let body = futures_util::stream::unfold(Some(received), |received| async move {
        let received = received?;
        let (next, received) = tokio::task::spawn_blocking(move || (received.recv(), received))
            .await
            .ok()?;
        let chunk = next.ok()?;
        let ended = chunk.is_err();
        Some((chunk, (!ended).then_some(received)))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dendrite-export.ndjson\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Bytes an export sends at a time.
const EXPORT_CHUNK: usize = 256 * 1024;

/// The export's output, handed to the answer a chunk at a time.
struct ChunkWriter {
    chunks: std::sync::mpsc::SyncSender<std::io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(EXPORT_CHUNK));
        self.chunks
            .send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
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
