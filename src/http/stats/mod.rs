//! What the service reports of itself: `/v1/stats` (counts, the write path, replication and the
//! last minute's requests, for dashboards) and `/metrics` (the same and more in Prometheus' text
//! format, for scrapers). `recent` keeps the last minute's requests; `metrics` the Prometheus
//! registry and the per-request log line.

pub mod metrics;
pub mod recent;

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, ReadCost, Route};
use crate::engine::{Counts, FillReport, Kernel, Space};
use axum::extract::State;
use axum::http::Method;
use recent::ActivityReport;
use serde::Serialize;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::read(Method::GET, "/v1/stats", stats),
        Route::read(Method::GET, "/v1/spaces/{space}/stats", space_stats),
        Route::read(Method::GET, "/metrics", metrics::scrape),
    ]
}

/// A space's part of the statistics.
#[derive(Serialize)]
struct SpaceStats {
    name: String,
    #[serde(flatten)]
    counts: Counts,
    #[serde(flatten)]
    fill: FillReport,
}

impl SpaceStats {
    fn of(space: &Space) -> SpaceStats {
        SpaceStats {
            name: space.name().to_string(),
            counts: space.counts(),
            fill: space.fill(),
        }
    }
}

#[derive(Serialize)]
struct Stats {
    version: &'static str,
    /// The counting kernel dense spaces use (AVX2 where the CPU has it, see `Kernel::detected`).
    kernel: &'static str,
    spaces: u64,
    neurons: u64,
    segments: u64,
    patterns: u64,
    synapses: u64,
    /// The memory the engine takes, estimated; writes are refused before it passes the limit.
    memory_bytes: u64,
    memory_limit: Option<u64>,
    /// This process's resident memory as the operating system counts it (null where it does
    /// not say): the engine's part, which `memory_bytes` estimates, plus the process's own and
    /// what the allocator keeps of memory freed lately.
    resident_bytes: Option<u64>,
    mean_patterns_per_segment: f64,
    max_patterns_per_segment: u32,
    segments_at_capacity: u64,
    /// Write transactions committed since start.
    commits: u64,
    /// Writes those transactions carried (a pattern, a forget, a deletion...).
    writes_committed: u64,
    /// Group commit's effect: above 1 when concurrent writes shared a commit.
    writes_per_commit: f64,
    /// Write commands waiting for the writer.
    writer_queue_depth: usize,
    /// The database file with its write-ahead log, or PostgreSQL's database size; null for an
    /// in-memory database.
    database_bytes: Option<u64>,
    /// `sqlite` or `postgres`.
    backend: &'static str,
    /// The last change (write) this replica applied: a read here sees every write up to it.
    applied_sequence: u64,
    /// The newest change this replica knows the database holds.
    head_sequence: u64,
    /// Changes committed that this replica has not applied yet (0 on SQLite).
    replication_lag: u64,
    uptime_seconds: f64,
    #[serde(flatten)]
    activity: ActivityReport,
    /// Each space's part, by name.
    by_space: Vec<SpaceStats>,
}

/// Cheap enough to poll every second under load: every number is kept as it changes, and a space
/// is read with one short read lock (or on a blocking thread while its writer holds it).
async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let (commits, writes_committed) = state.writer.stats().snapshot();
    let progress = state.writer.progress();
    let applied_sequence = progress.applied();
    let head_sequence = progress.head().max(applied_sequence);
    let by_space = state.read_every_space(SpaceStats::of).await?;
    let total = |f: fn(&SpaceStats) -> u64| by_space.iter().map(f).sum::<u64>();
    let (patterns, segments) = (total(|s| s.counts.patterns), total(|s| s.counts.segments));
    Ok(Json(Stats {
        version: env!("CARGO_PKG_VERSION"),
        kernel: Kernel::detected().name(),
        spaces: by_space.len() as u64,
        neurons: total(|s| s.counts.neurons),
        segments,
        patterns,
        synapses: total(|s| s.counts.synapses),
        memory_bytes: total(|s| s.counts.memory_bytes),
        memory_limit: state.writer.memory_limit(),
        resident_bytes: crate::host::resident_memory(),
        mean_patterns_per_segment: if segments == 0 {
            0.0
        } else {
            patterns as f64 / segments as f64
        },
        max_patterns_per_segment: by_space
            .iter()
            .map(|s| s.fill.max_patterns_per_segment)
            .max()
            .unwrap_or(0),
        segments_at_capacity: total(|s| s.fill.segments_at_capacity),
        commits,
        writes_committed,
        writes_per_commit: if commits == 0 {
            0.0
        } else {
            writes_committed as f64 / commits as f64
        },
        writer_queue_depth: state.writer.queue_depth(),
        database_bytes: state.db.size_bytes().await,
        backend: state.db.backend(),
        applied_sequence,
        head_sequence,
        replication_lag: head_sequence - applied_sequence,
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        activity: state.activity.report(),
        by_space,
    }))
}

/// One space's part of `/v1/stats`.
async fn space_stats(
    State(state): State<AppState>,
    Path(space): Path<String>,
) -> Result<Json<SpaceStats>, ApiError> {
    Ok(Json(
        state
            .read_space(&space, ReadCost::Fixed, SpaceStats::of)
            .await?,
    ))
}
