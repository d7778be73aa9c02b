//! Building the service and running it until it is told to stop.
//!
//! [`Application::build`] opens and migrates the database, loads every space, starts the writer
//! and binds the listener, so a test can read the real port before serving; `run_until_stopped`
//! serves until the shutdown future resolves, lets in-flight requests finish, drains the writer
//! and closes the database.

use crate::config::ServeArgs;
use crate::engine::{Kernel, Spaces};
use crate::http::access::{self, AllowedHosts};
use crate::http::serve::ConnectionLimits;
use crate::http::{self, AppState};
use crate::store::Database;
use crate::store::backup::Backups;
use crate::store::fault::Health;
use crate::store::writer::{Writer, WriterThread};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    db: Database,
    writer: WriterThread,
    limits: ConnectionLimits,
    /// Scheduled backups (`--backup-interval`), stopped before the database closes.
    scheduled_backups: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Application> {
        // Settings first: a bad key or duration stops start-up before anything is opened.
        args.check()?;
        let backups = Backups::new(
            &args.database_url,
            args.backup_dir.clone(),
            args.backup_keep as usize,
        );
        if let Some(file) = crate::store::sqlite::file_of(&args.database_url)
            && backups.folder_holds(&file)
        {
            anyhow::bail!(
                "the database {} is in the backup folder, where pruning old backups would delete it; copy a backup into place with `dendrite restore {}` and start on that",
                file.display(),
                file.display()
            );
        }
        let keys = args.access.keys()?;
        let cors = http::cors_layer(&args.access.cors_origins)?;
        let db = Database::open(&args.database_url, &args.store_settings()).await?;
        if args.backup_interval > 0 && (db.sqlite().is_none() || !backups.has_folder()) {
            anyhow::bail!(
                "DENDRITE_BACKUP_INTERVAL (--backup-interval) schedules backups of a SQLite file, and {} has none to write: on PostgreSQL use its own tools; for an in-memory database set --backup-dir",
                db.backend()
            );
        }
        let spaces = Arc::new(Spaces::serving(args.spaces.clone()));
        let loaded = db
            .load(&spaces)
            .await
            .context("cannot load the stored spaces")?;
        tracing::info!(
            kernel = %Kernel::detected(),
            threads = rayon::current_num_threads(),
            "recognition counts with the {} kernel",
            Kernel::detected()
        );
        tracing::info!(
            spaces = loaded.spaces,
            neurons = loaded.neurons,
            patterns = loaded.patterns,
            sequence = loaded.sequence,
            elapsed_ms = loaded.elapsed.as_millis() as u64,
            "loaded the engine from the {} database",
            db.backend()
        );
        match args.memory_limit() {
            Some(limit) => tracing::info!(
                memory_limit = limit,
                "the engine may take {} MiB (--memory-limit; 0 turns the limit off)",
                limit >> 20
            ),
            None => tracing::info!("the engine's memory is not limited (--memory-limit)"),
        }
        let health = Arc::new(Health::default());
        let (writer, writer_thread) = Writer::spawn(
            &db,
            Arc::clone(&spaces),
            Arc::clone(&health),
            args.memory_limit(),
            loaded.sequence,
        )
        .context("cannot start the writer thread")?;
        // Ready only once caught up: other replicas may have committed while this one loaded.
        let sequence = writer
            .catch_up()
            .await
            .context("cannot follow the database's change log")?;
        if sequence != loaded.sequence {
            tracing::info!(sequence, "caught up with changes committed while loading");
        }
        let state = AppState::new(spaces, writer, db.clone(), health, args.request_timeout())
            .with_keys(keys)
            .with_backups(backups)
            .with_open_metrics(args.access.metrics_without_key)
            .with_trusted_origins(access::TrustedOrigins::new(&args.access.cors_origins));
        let scheduled_backups = (args.backup_interval > 0).then(|| {
            let every = Duration::from_secs(args.backup_interval);
            tracing::info!(
                every_seconds = args.backup_interval,
                "backups are scheduled (--backup-interval)"
            );
            crate::store::backup::schedule(Arc::clone(&state.backups), db.clone(), every)
        });
        let hosts = AllowedHosts::new(&args.listen, &args.access.allowed_hosts);
        let keys = Arc::clone(&state.keys);
        let router = http::service(
            state,
            http::Edge {
                hosts,
                cors,
                body_limit: args.body_limit,
                body_timeout: args.body_timeout(),
            },
        );
        let open_files = raise_open_files_limit();
        let limits = args.connection_limits(open_files);
        tracing::info!(
            max_connections = limits.max_connections,
            max_connections_per_peer = limits.max_connections_per_peer,
            open_files,
            "connection limits"
        );
        let listener = TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        if !keys.are_set() && !address.ip().is_loopback() {
            tracing::warn!(
                %address,
                "NO API KEY: anyone who can reach {address} can read, change and delete every space. \
                 Set --api-key (DENDRITE_API_KEY or DENDRITE_API_KEY_FILE), or listen on 127.0.0.1 only"
            );
        }
        Ok(Application {
            listener,
            router,
            db,
            writer: writer_thread,
            limits,
            scheduled_backups,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and pending writes and
    /// closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr(), "listening");
        http::serve::serve(self.listener, self.router, self.limits, shutdown).await;
        if let Some(backups) = self.scheduled_backups {
            // A backup cut off here leaves only its temporary file, which the next one ignores.
            backups.abort();
        }
        // Writes already queued are committed and answered; later ones are refused.
        self.writer.stop().await;
        self.db.close().await;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// Raises the soft limit on open files to the hard one (the default soft limit, often 1,024,
/// would cap connections far below what the machine allows); returns the limit now in force.
fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `dendrite serve`: build, serve until a signal, stop cleanly.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    // Before logging starts: a filter that logs nothing would hide every later error.
    crate::telemetry::check_filter(&args.log_level)
        .map_err(|why| anyhow::anyhow!("DENDRITE_LOG_LEVEL (--log-level): {why}"))?;
    if let Ok(overriding) = std::env::var("RUST_LOG") {
        crate::telemetry::check_filter(&overriding)
            .map_err(|why| anyhow::anyhow!("RUST_LOG (which overrides --log-level): {why}"))?;
    }
    crate::telemetry::init(
        args.log_format == crate::config::LogFormat::Json,
        &args.log_level,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let app = Application::build(args).await?;
        app.run_until_stopped(shutdown_signal()).await
    });
    // Connections past the shutdown deadline and reads still on a CPU worker are abandoned here
    // rather than waited for: the writes are committed and the database closed already.
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome
}
