//! A real server on 127.0.0.1 port 0 with its own database, and a client with one method per
//! kind of call.
//!
//! The suite runs against SQLite by default. With `DENDRITE_TEST_POSTGRES_URL` set to a
//! PostgreSQL server's admin URL (`scripts/test` starts a throw-away cluster), every test's
//! database is a fresh PostgreSQL database instead, named after the file it would have used, so a
//! restart "on the same file" reopens the same database. Tests of SQLite's own mechanics (its file,
//! its locks, its backups) say so with [`sqlite_only!`] and are skipped there.

use dendrite::app::Application;
use dendrite::config::{LogFormat, ServeArgs};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub database: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server the suite runs against, if it was given one.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("DENDRITE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Skips the rest of a test of SQLite's own mechanics when the suite runs on PostgreSQL.
#[macro_export]
macro_rules! sqlite_only {
    () => {
        if $crate::helpers::postgres_admin_url().is_some() {
            eprintln!("skipped on PostgreSQL: this test is about SQLite's file");
            return;
        }
    };
}

/// The URL of the test database kept at `database`: that SQLite file, or on PostgreSQL a
/// database named after the path (created when a server first opens it).
pub fn database_url(database: &Path) -> String {
    let path = database.display().to_string();
    if path.starts_with("postgres://") {
        return path;
    }
    match postgres_admin_url() {
        None => format!("sqlite://{path}"),
        Some(admin) => {
            // FNV-1a of the path: temporary folders are unique, so the names are too.
            let hash = dendrite::rng::fnv1a(dendrite::rng::FNV1A_START, path.as_bytes());
            let (server, _) = admin.rsplit_once('/').expect("a URL with a database");
            format!("{server}/t{hash:016x}")
        }
    }
}

/// Creates the PostgreSQL database `url` names unless it exists.
pub async fn ensure_database(url: &str) {
    use sqlx::Connection;
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    if !url.starts_with("postgres") {
        return;
    }
    let name = url.rsplit_once('/').unwrap().1;
    let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut connection)
        .await
        .unwrap();
    if exists.is_none() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut connection)
            .await
            .unwrap();
    }
    connection.close().await.unwrap();
}

/// A test server's settings: the service's own defaults, parsed as the binary parses them, then
/// what a test server needs: a free port, its own database, quiet logs, a connection cap that
/// does not depend on the machine's open-file limit, and no keys (whatever the environment
/// running the tests holds: a test that wants keys sets them).
pub fn args(database: &Path) -> ServeArgs {
    let mut args = dendrite::cli::default_serve_args();
    args.listen = "127.0.0.1:0".into();
    args.database_url = database_url(database);
    args.log_format = LogFormat::Text;
    args.log_level = "warn".into();
    args.max_connections = Some(1024);
    args.access = Default::default();
    args
}

/// The parameters of [`TestApp::standard_space`].
fn standard_spec() -> Value {
    json!({"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12})
}

impl TestApp {
    /// Waits until at least `depth` commands wait in the writer's queue, seen on two reads in a
    /// row: a command is taken at once by an idle writer, so a queue that stays this deep means
    /// the writer is held (by a test's database lock) with every command sent so far behind it,
    /// in the order they arrived. How a test orders writes without guessing at sleeps.
    pub async fn wait_for_queued(&self, depth: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen_before = false;
        loop {
            let stats: Value = self.get("/v1/stats").await.json().await.unwrap();
            let queued = stats["writer_queue_depth"].as_u64().unwrap();
            if queued >= depth && seen_before {
                return;
            }
            seen_before = queued >= depth;
            assert!(
                std::time::Instant::now() < deadline,
                "the writer's queue never held {depth} commands (it holds {queued})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A server on a fresh database.
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("dendrite.db");
        let mut app = TestApp::spawn_on(&database).await;
        app._dir = Some(dir);
        app
    }

    /// A server on a fresh database, with some settings changed.
    pub async fn spawn_configured(change: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = args(&dir.path().join("dendrite.db"));
        change(&mut settings);
        let mut app = TestApp::spawn_with(settings).await;
        app._dir = Some(dir);
        app
    }

    /// A server on an existing database file (a restart).
    pub async fn spawn_on(database: &Path) -> TestApp {
        TestApp::spawn_with(args(database)).await
    }

    pub async fn spawn_with(args: ServeArgs) -> TestApp {
        ensure_database(&args.database_url).await;
        let app = Application::build(&args).await.expect("the service starts");
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            client: Client::new(),
            // A SQLite file's path, or the PostgreSQL URL itself (which `spawn_on` takes too).
            database: args.database_url.trim_start_matches("sqlite://").into(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops the server gracefully and hands back its temporary directory, if it owns one.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self._dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A raw body with a content type, for malformed requests.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send().await.unwrap()
    }

    /// Creates the standard space `s`: 2048 bits, 40 active, s = 24, theta = 12.
    pub async fn standard_space(&self, name: &str) {
        let response = self
            .put(&format!("/v1/spaces/{name}"), &standard_spec())
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    /// Returns once every write that reached the writer before this call is handled: the
    /// writer takes commands in order, and this one, a repeat of `space`'s creation with its own
    /// (standard) parameters, goes through it behind them and changes nothing.
    pub async fn settle_writes(&self, space: &str) {
        let response = self
            .put(&format!("/v1/spaces/{space}"), &standard_spec())
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    pub async fn store(&self, space: &str, neuron: &str, active: &[u32]) -> Response {
        self.post(
            &format!("/v1/spaces/{space}/neurons/{neuron}/patterns"),
            &json!({ "active": active }),
        )
        .await
    }

    pub async fn query(&self, space: &str, active: &[u32]) -> Value {
        let response = self
            .post(
                &format!("/v1/spaces/{space}/query"),
                &json!({ "active": active }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// Asserts a problem document with this status and returns it.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "expected {status}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    for key in ["type", "title", "detail"] {
        assert!(body[key].is_string(), "problem without {key}: {body}");
    }
    body
}

/// `count` distinct cells below 2048 from a seed, sorted.
pub fn cells(seed: u64, count: u32) -> Vec<u32> {
    dendrite::rng::Rng::new(seed).distinct_below(2048, count)
}

/// A connection of our own to the service's database file, to see what is really committed (a
/// write another connection can read is on disk; one stuck in an open transaction is not) and to
/// play another process that locks the database.
pub async fn inspector(app: &TestApp) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", app.database.display()))
        .await
        .unwrap()
}

/// Another process's write lock on the database, held until released: the service's writer
/// waits for it, then gives up after SQLite's busy timeout (5 s).
pub struct DatabaseLock(sqlx::pool::PoolConnection<sqlx::Sqlite>);

impl DatabaseLock {
    pub async fn take(db: &sqlx::SqlitePool) -> DatabaseLock {
        let mut connection = db.acquire().await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *connection)
            .await
            .unwrap();
        DatabaseLock(connection)
    }

    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut *self.0)
            .await
            .unwrap();
    }
}

/// The router over an in-process engine, writer and database, without a listener: for tests
/// that reach inside (the engine's locks, the database's connections).
pub struct InProcess {
    pub router: axum::Router,
    pub spaces: std::sync::Arc<dendrite::engine::Spaces>,
    pub writer: dendrite::store::writer::Writer,
    pub db: dendrite::store::Database,
    pub thread: dendrite::store::writer::WriterThread,
}

impl InProcess {
    pub async fn on(url: &str) -> InProcess {
        use std::sync::Arc;
        ensure_database(url).await;
        let db = dendrite::store::Database::open(url, &Default::default())
            .await
            .unwrap();
        let spaces = Arc::new(dendrite::engine::Spaces::default());
        let health = Arc::new(dendrite::store::fault::Health::default());
        let (writer, thread) = dendrite::store::writer::Writer::spawn(
            &db,
            Arc::clone(&spaces),
            Arc::clone(&health),
            None,
            0,
        )
        .unwrap();
        let router = dendrite::http::router(dendrite::http::AppState::new(
            Arc::clone(&spaces),
            writer.clone(),
            db.clone(),
            health,
            std::time::Duration::from_secs(30),
        ));
        InProcess {
            router,
            spaces,
            writer,
            db,
            thread,
        }
    }
}

/// A child process (the real binary) killed when dropped, so a failing test leaves none behind.
pub struct KilledOnDrop(pub std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `Dendrite-Sequence` a write answered with.
pub fn sequence_of(response: &Response) -> u64 {
    response
        .headers()
        .get("dendrite-sequence")
        .unwrap_or_else(|| panic!("no Dendrite-Sequence on a {} answer", response.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
