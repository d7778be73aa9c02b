//! The REST API: one module per resource, each a table of routes whose handlers parse, call the
//! engine or the writer, and map the answer. `error.rs` alone knows status codes.
//!
//! [`routes`] is the single list of (method, path, handler) the router is built from, so a test
//! can hold it against `openapi.yaml` in both directions.

pub mod access;
mod admin;
mod calibration;
mod dashboard;
mod encoding;
pub mod error;
pub mod extract;
pub mod guard;
pub mod health;
mod neurons;
mod recognition;
pub mod serve;
mod spaces;
mod stack;
mod stats;
mod theory;

pub use health::OPENAPI;
pub use stack::{Edge, cors_layer, service};
pub use stats::{metrics, recent};

use crate::engine::{Calibration, Name, SharedSpace, Space, Spaces};
use crate::store::Database;
use crate::store::backup::Backups;
use crate::store::fault::Health;
use crate::store::writer::{Writer, not_served_message};
use access::{Keys, Need};
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use error::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A calibration and the space it measured (held weakly: it is only compared with the space now
/// under the name).
pub type MeasuredCalibration = (std::sync::Weak<crate::engine::SpaceLock>, Calibration);

/// What every handler shares, behind one `Arc`: axum clones the state for every request (and
/// drops the clone after it), so a clone must be one reference count, not one per field (a dozen
/// atomic increments and decrements, and the writer's channel sender, cost `/healthz` a fifth of
/// its rate).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone, Debug)]
pub struct Shared {
    pub spaces: Arc<Spaces>,
    pub writer: Writer,
    /// Shared, not copied: axum clones the state for every request, and the database handle
    /// carries its connection settings (a map of pragmas).
    pub db: Arc<Database>,
    /// Whether writes are failing, and why: what `/readyz` reports.
    pub health: Arc<Health>,
    pub cpu: CpuPool,
    /// How long a read may run: the router answers 503 after it, and a batch starts no further
    /// slice.
    pub read_timeout: Duration,
    pub started: Instant,
    /// The API keys; none set means an open service.
    pub keys: Arc<Keys>,
    /// Where backups go.
    pub backups: Arc<Backups>,
    /// The Prometheus recorder of this service.
    pub metrics: Arc<metrics::Metrics>,
    /// Requests served and their latencies, for `/v1/stats`.
    pub activity: Arc<recent::Activity>,
    /// The last calibration of each space, with the space it measured: a space deleted and
    /// created anew under the same name is another space, whose calibration this is not.
    pub calibrations: Arc<Mutex<HashMap<Name, MeasuredCalibration>>>,
    /// Whether `/metrics` answers without a key while keys are set.
    pub open_metrics: bool,
    /// The origins whose pages may send state-changing requests across sites.
    pub trusted_origins: Arc<access::TrustedOrigins>,
    /// Whether an export is being streamed (one at a time).
    pub exporting: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    pub fn new(
        spaces: Arc<Spaces>,
        writer: Writer,
        db: Database,
        health: Arc<Health>,
        read_timeout: Duration,
    ) -> AppState {
        AppState(Arc::new(Shared {
            spaces,
            writer,
            db: Arc::new(db),
            health,
            cpu: CpuPool::for_this_machine(),
            read_timeout,
            started: Instant::now(),
            keys: Arc::new(Keys::default()),
            backups: Arc::new(Backups::new("sqlite::memory:", None, 1)),
            metrics: Arc::new(metrics::Metrics::default()),
            activity: Arc::new(recent::Activity::default()),
            calibrations: Arc::default(),
            open_metrics: false,
            trusted_origins: Arc::default(),
            exporting: Arc::default(),
        }))
    }

    /// The same state with `change` made to its fields (while it is being set up).
    fn changed(self, change: impl FnOnce(&mut Shared)) -> AppState {
        let mut shared = Arc::unwrap_or_clone(self.0);
        change(&mut shared);
        AppState(Arc::new(shared))
    }

    /// The same state, trusting these origins' pages to send writes (the CORS setting).
    pub fn with_trusted_origins(self, origins: access::TrustedOrigins) -> AppState {
        self.changed(|shared| shared.trusted_origins = Arc::new(origins))
    }

    /// The same state, with `/metrics` open to scrapers without a key when `open` is set.
    pub fn with_open_metrics(self, open: bool) -> AppState {
        self.changed(|shared| shared.open_metrics = open)
    }

    /// The same state, with backups written as `backups` says.
    pub fn with_backups(self, backups: Backups) -> AppState {
        self.changed(|shared| shared.backups = Arc::new(backups))
    }

    /// The same state, with requests needing these keys.
    pub fn with_keys(self, keys: Keys) -> AppState {
        self.changed(|shared| shared.keys = Arc::new(keys))
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

/// What a route does, declared in its module's table beside its path (never inferred from the
/// path, so a new route cannot become a read or a write by its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Open to everyone: the probes, the API's description and the dashboard's files, which
    /// hold no data. Run under the read deadline.
    Open,
    /// Changes nothing stored (GETs and queries): run under the read deadline, after waiting
    /// for `min_sequence`.
    Read,
    /// Changes state: never cut off by a deadline (its answer is its real outcome), and refused
    /// when a browser sends it from another site.
    Write,
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub class: Class,
    /// Whether the route needs a read-write key although it is a read: administration, and
    /// work that replaces a stored result.
    write_key: bool,
    /// Whether the route has query parameters of its own (its extractor refuses unknown ones);
    /// any other route refuses every parameter but a read's `min_sequence`.
    query: bool,
    handler: MethodRouter<AppState>,
}

impl Route {
    pub(crate) fn open<H, T>(method: Method, path: &'static str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route::new(Class::Open, method, path, handler)
    }

    pub(crate) fn read<H, T>(method: Method, path: &'static str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route::new(Class::Read, method, path, handler)
    }

    pub(crate) fn write<H, T>(method: Method, path: &'static str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route::new(Class::Write, method, path, handler)
    }

    fn new<H, T>(class: Class, method: Method, path: &'static str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        Route {
            method,
            path,
            class,
            write_key: false,
            query: false,
            handler: on(filter, handler),
        }
    }

    /// The same route, with query parameters of its own.
    pub(crate) fn with_query(self) -> Route {
        Route {
            query: true,
            ..self
        }
    }

    /// The same route, needing a read-write key.
    pub(crate) fn with_write_key(self) -> Route {
        Route {
            write_key: true,
            ..self
        }
    }

    /// Whether the route only reads: it is cut off at the request timeout, while writes are
    /// always answered with their outcome.
    pub fn is_read(&self) -> bool {
        self.class != Class::Write
    }

    /// Whether the route changes state: its writes, and the reads that need a read-write key
    /// and are not GETs (calibration). A browser may not send one from another site.
    pub fn changes_state(&self) -> bool {
        self.class == Class::Write || (self.write_key && self.method != Method::GET)
    }

    /// The key the route needs when keys are set.
    pub fn need(&self) -> Need {
        match self.class {
            Class::Open => Need::Nothing,
            Class::Write => Need::Write,
            Class::Read if self.write_key => Need::Write,
            Class::Read => Need::Read,
        }
    }
}

/// Every route the service answers.
pub fn routes() -> Vec<Route> {
    [
        health::routes(),
        stats::routes(),
        theory::routes(),
        spaces::routes(),
        neurons::routes(),
        recognition::routes(),
        encoding::routes(),
        admin::routes(),
        calibration::routes(),
        dashboard::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The router: every route (reads with their deadline), problem documents for unknown paths and
/// methods, and the state.
pub fn router(state: AppState) -> Router {
    let read_timeout = state.read_timeout;
    let progress = state.writer.shared_progress();
    let keys = Arc::clone(&state.keys);
    let open_metrics = state.open_metrics;
    let trusted_origins = Arc::clone(&state.trusted_origins);
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            let need = if open_metrics && r.path == "/metrics" {
                Need::Nothing
            } else {
                r.need()
            };
            let guard = guard::RouteGuard {
                keys: Arc::clone(&keys),
                need,
                trusted_origins: r.changes_state().then(|| Arc::clone(&trusted_origins)),
                takes_query: r.query,
                read: r.is_read().then(|| (Arc::clone(&progress), read_timeout)),
            };
            let handler = r.handler.layer(axum::middleware::from_fn_with_state(
                Arc::new(guard),
                guard::check_route,
            ));
            router.route(r.path, handler)
        })
        .route_layer(axum::middleware::from_fn(metrics::tag_route))
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
        if !self.spaces.serves(name) {
            return Err(ApiError::not_found(not_served_message(
                name,
                self.spaces.served(),
            )));
        }
        self.spaces
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no space named {name}")))
    }

    /// Runs `read` on the space named `raw` under its read lock: the one path of every read
    /// handler (parse the name, 404 if absent, share the space with concurrent reads).
    ///
    /// A cheap read (a `Fixed` one: a report, one pattern, a page of names; or recognition in a
    /// small space) runs right here when the lock is free, and waits for the lock on a blocking
    /// thread when it is not. A costly one runs on a CPU worker. So neither a long read nor a
    /// wait behind the writer (which waits for the readers before it) ever holds an async
    /// worker: those stay free for `/healthz` and for other spaces.
    async fn read_space<T: Send + 'static>(
        &self,
        raw: &str,
        cost: ReadCost,
        read: impl FnOnce(&Space) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let shared = self.space(&parse_name("space", raw)?)?;
        let cheap = cost == ReadCost::Fixed || shared.segment_count() <= INLINE_SEGMENTS;
        if cheap {
            let locked = match try_read(&shared) {
                // Unless recognition here would wait for rayon's threads (a space with many free
                // segment slots), which may be busy with another space's large query.
                Some(space) if cost == ReadCost::Fixed || !space.counts_in_parallel() => {
                    return Ok(read(&space));
                }
                Some(_) => false,
                None => true,
            };
            if locked {
                // Cheap, but the writer holds the lock or waits for it: wait on a blocking
                // thread, not on an async worker, and without a CPU worker's permit (long reads
                // may hold them all).
                return tokio::task::spawn_blocking(move || {
                    read(&shared.read().unwrap_or_else(PoisonError::into_inner))
                })
                .await
                .map_err(|e| ApiError::internal(format!("a read failed: {e}")));
            }
        }
        self.cpu
            .run(move || read(&shared.read().unwrap_or_else(PoisonError::into_inner)))
            .await
    }
}

/// Spaces read right here by one request that reads many (`/v1/stats`, `/metrics`, a page of
/// `/v1/spaces`); past this count the reads move to a blocking thread, since 10,000 spaces took
/// over 100 ms and held up `/healthz` behind them.
const INLINE_SPACES: usize = 64;

impl AppState {
    /// `read` (cheap) of every space, by name, each under its read lock.
    async fn read_every_space<T: Send + 'static>(
        &self,
        read: impl Fn(&Space) -> T + Send + 'static,
    ) -> Result<Vec<T>, ApiError> {
        read_spaces(self.spaces.all(), read).await
    }
}

/// `read` (cheap) of each of `spaces`, in order, each under its read lock: right here when they
/// are few and every lock is free, on a blocking thread otherwise (a space whose writer waits
/// behind a long read must not hold the async worker that answers a dashboard's poll, and
/// neither must thousands of spaces).
async fn read_spaces<T: Send + 'static>(
    spaces: Vec<SharedSpace>,
    read: impl Fn(&Space) -> T + Send + 'static,
) -> Result<Vec<T>, ApiError> {
    let mut results = Vec::with_capacity(spaces.len());
    if spaces.len() <= INLINE_SPACES {
        for shared in &spaces {
            match try_read(shared) {
                Some(space) => results.push(read(&space)),
                None => break,
            }
        }
        if results.len() == spaces.len() {
            return Ok(results);
        }
    }
    tokio::task::spawn_blocking(move || {
        spaces
            .iter()
            .map(|shared| read(&shared.read().unwrap_or_else(PoisonError::into_inner)))
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(format!("a read failed: {e}")))
}

/// How the cost of a read grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadCost {
    /// Bounded whatever the space holds.
    Fixed,
    /// In proportion to the space's segments (recognition) or a neuron's patterns.
    GrowsWithSpace,
}

/// Spaces with at most this many segments are read on the async worker: recognition then takes
/// tens of microseconds (the standard workload has about 22,000 segments), on this thread alone
/// (the dense index counts in parallel only from 32,768 segment slots).
const INLINE_SEGMENTS: u64 = 30_000;

/// The read lock if it is free now; poisoning is ignored, as everywhere.
fn try_read(shared: &SharedSpace) -> Option<std::sync::RwLockReadGuard<'_, Space>> {
    match shared.try_read() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_finds_every_cpu_worker_busy_is_told_to_retry() {
        let pool = CpuPool::new(1);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let long = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || released.recv().unwrap()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = pool.run(|| ()).await.unwrap_err();
        assert_eq!(
            refused.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        release.send(()).unwrap();
        long.await.unwrap().unwrap();
        assert!(pool.run(|| ()).await.is_ok(), "the worker is free again");
    }

    #[test]
    fn reads_get_a_deadline_and_every_write_is_left_to_answer_its_outcome() {
        let writes: Vec<(Method, &str)> = routes()
            .iter()
            .filter(|r| !r.is_read())
            .map(|r| (r.method.clone(), r.path))
            .collect();
        assert_eq!(
            writes,
            [
                (Method::PUT, "/v1/spaces/{space}"),
                (Method::DELETE, "/v1/spaces/{space}"),
                (Method::POST, "/v1/spaces/{space}/patterns"),
                (Method::DELETE, "/v1/spaces/{space}/neurons/{neuron}"),
                (Method::POST, "/v1/spaces/{space}/neurons/{neuron}/patterns"),
                (
                    Method::DELETE,
                    "/v1/spaces/{space}/neurons/{neuron}/patterns/{id}"
                ),
                (Method::POST, "/v1/admin/backup"),
            ]
        );
    }

    #[test]
    fn the_probes_are_open_administration_and_writes_need_a_read_write_key() {
        let need = |method: Method, path: &str| {
            routes()
                .into_iter()
                .find(|r| r.method == method && r.path == path)
                .map(|r| r.need())
        };
        assert_eq!(need(Method::GET, "/healthz"), Some(Need::Nothing));
        assert_eq!(need(Method::GET, "/openapi.yaml"), Some(Need::Nothing));
        assert_eq!(need(Method::GET, "/v1/stats"), Some(Need::Read));
        assert_eq!(
            need(Method::POST, "/v1/spaces/{space}/query/batch"),
            Some(Need::Read)
        );
        assert_eq!(need(Method::GET, "/v1/admin/backups"), Some(Need::Write));
        // Calibration replaces the stored result and costs CPU: not a read-only key's to run.
        assert_eq!(
            need(Method::POST, "/v1/spaces/{space}/calibrate"),
            Some(Need::Write)
        );
        assert_eq!(
            need(Method::GET, "/v1/spaces/{space}/calibration"),
            Some(Need::Read)
        );
        assert_eq!(
            need(Method::DELETE, "/v1/spaces/{space}"),
            Some(Need::Write)
        );
    }
}
