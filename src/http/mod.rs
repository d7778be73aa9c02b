//! The REST API: one module per resource, each a table of routes whose handlers parse, call the
//! engine or the writer, and map the answer. `error.rs` alone knows status codes.
//!
//! [`routes`] is the single list of (method, path, handler) the router is built from, so a test
//! can hold it against `openapi.yaml` in both directions.

pub mod error;
pub mod extract;
pub mod guard;
mod neurons;
mod recognition;
mod spaces;
mod system;

pub use system::OPENAPI;

use crate::engine::{Name, SharedSpace, Space, Spaces};
use crate::store::Database;
use crate::store::health::Health;
use crate::store::writer::Writer;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use error::ApiError;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub spaces: Arc<Spaces>,
    pub writer: Writer,
    pub db: Database,
    /// Whether writes are failing, and why: what `/readyz` reports.
    pub health: Arc<Health>,
    pub cpu: CpuPool,
    /// How long a read may run: long reads check it and stop, the router answers 503 after it.
    pub read_timeout: Duration,
    pub started: Instant,
}

impl AppState {
    pub fn new(
        spaces: Arc<Spaces>,
        writer: Writer,
        db: Database,
        health: Arc<Health>,
        read_timeout: Duration,
    ) -> AppState {
        AppState {
            spaces,
            writer,
            db,
            health,
            cpu: CpuPool::for_this_machine(),
            read_timeout,
            started: Instant::now(),
        }
    }
}

/// Where CPU-heavy work runs: the theory of new parameters, long reads. On the blocking pool, at
/// most one task per core at a time, so the async workers stay free for `/healthz` and quick
/// requests, and a flood of expensive requests queues here instead of taking every thread.
#[derive(Clone, Debug)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
}

/// How long a request waits for a CPU worker before it is told the service is busy.
const CPU_QUEUE_WAIT: Duration = Duration::from_secs(2);

impl CpuPool {
    pub fn new(parallel: usize) -> CpuPool {
        CpuPool {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
        }
    }

    fn for_this_machine() -> CpuPool {
        CpuPool::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// Runs `work` on the blocking pool once a worker is free. The permit goes with the work,
    /// so work whose request was abandoned still counts until it ends: the bound is real.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit =
            tokio::time::timeout(CPU_QUEUE_WAIT, Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| ApiError::busy("every CPU worker is busy; retry shortly"))?
                .expect("the pool's semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::internal(format!("a worker failed: {e}")))
    }
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    /// Whether the route only reads: every GET, and the queries (POSTs that change nothing).
    /// Reads are cut off at the request timeout; writes are always answered with their outcome.
    pub fn is_read(&self) -> bool {
        self.method == Method::GET
            || self.path.ends_with("/query")
            || self.path.ends_with("/query/batch")
    }
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route the service answers.
pub fn routes() -> Vec<Route> {
    [
        system::routes(),
        spaces::routes(),
        neurons::routes(),
        recognition::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The router: every route (reads with their deadline), problem documents for unknown paths and
/// methods, and the state.
pub fn router(state: AppState) -> Router {
    let read_timeout = state.read_timeout;
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            let handler = if r.is_read() {
                r.handler.layer(axum::middleware::from_fn_with_state(
                    read_timeout,
                    guard::read_deadline,
                ))
            } else {
                r.handler
            };
            router.route(r.path, handler)
        })
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.yaml") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}

/// A name from the path, or a 400 naming which one is wrong.
fn parse_name(what: &str, raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|e| ApiError::invalid_name(what, e))
}

impl AppState {
    /// The space named in the path, or a 404.
    fn space(&self, name: &Name) -> Result<SharedSpace, ApiError> {
        self.spaces
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no space named {name}")))
    }

    /// Runs `read` on the space named `raw` under its read lock: the path of reads whose cost
    /// does not grow with the space (a report, one pattern, a page of names).
    fn read_space<T>(&self, raw: &str, read: impl FnOnce(&Space) -> T) -> Result<T, ApiError> {
        let shared = self.space(&parse_name("space", raw)?)?;
        let space = shared.read().unwrap_or_else(PoisonError::into_inner);
        Ok(read(&space))
    }

    /// Runs `read`, whose cost grows with the space (recognition, a neuron's segments), under
    /// the space's read lock: right here when the space is small and nobody is writing it
    /// (microseconds: not worth a thread hop), otherwise on a CPU worker, so that neither a
    /// long read nor a wait for the writer ever holds an async worker.
    async fn read_space_costly<T: Send + 'static>(
        &self,
        raw: &str,
        read: impl FnOnce(&Space) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let shared = self.space(&parse_name("space", raw)?)?;
        if let Some(space) = try_read(&shared)
            && space.segment_count() <= INLINE_SEGMENTS
        {
            return Ok(read(&space));
        }
        self.cpu
            .run(move || read(&shared.read().unwrap_or_else(PoisonError::into_inner)))
            .await
    }
}

/// Spaces with at most this many segments are read on the async worker: recognition then takes
/// tens of microseconds (the standard workload has about 22,000 segments).
const INLINE_SEGMENTS: u64 = 50_000;

/// The read lock if it is free now; poisoning is ignored, as everywhere.
fn try_read(shared: &SharedSpace) -> Option<std::sync::RwLockReadGuard<'_, Space>> {
    match shared.try_read() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}
