//! The service's settings: each a flag and a `DENDRITE_*` environment variable, documented in
//! `dendrite serve --help` and the README.

use clap::{Args, ValueEnum};
use std::time::Duration;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "DENDRITE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// SQLite database: a file (created if missing) or `sqlite::memory:` for a throw-away one.
    #[arg(
        long,
        env = "DENDRITE_DATABASE_URL",
        default_value = "sqlite://dendrite.db"
    )]
    pub database_url: String,
    /// Log format.
    #[arg(long, env = "DENDRITE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter directives (e.g. `info` or `dendrite=debug,tower_http=info`).
    #[arg(long, env = "DENDRITE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "DENDRITE_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Cap on the database file in bytes (SQLite's max_page_count, in 4 KiB pages): past it,
    /// writes are refused with 507 as on a full disk. Unset: only the disk limits it.
    #[arg(long, env = "DENDRITE_MAX_DATABASE_SIZE")]
    pub max_database_size: Option<u64>,
    /// The most memory the engine may take, in bytes (by its own estimate, shown in /v1/stats);
    /// a store that would pass it is refused with 507. Unset: no limit but the machine's.
    #[arg(long, env = "DENDRITE_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,
    /// Seconds a read (a GET or a query) may run before it is stopped and answered 503.
    /// Writes have no such deadline: they are always answered with what really happened.
    #[arg(long, env = "DENDRITE_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds a connection may take to send a whole request head, from when it opens or from
    /// its previous answer; past it the connection is closed. This is also how long an idle
    /// keep-alive connection is kept.
    #[arg(long, env = "DENDRITE_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// The most connections open at once; past it new clients wait to be accepted.
    #[arg(long, env = "DENDRITE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds open requests get to finish after SIGTERM or SIGINT; then the process stops.
    #[arg(long, env = "DENDRITE_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Seconds a request body may take to arrive before the request is answered 408.
    #[arg(long, env = "DENDRITE_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
}

impl ServeArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout)
    }

    pub fn connection_limits(&self) -> crate::http::serve::ConnectionLimits {
        crate::http::serve::ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout),
            max_connections: self.max_connections,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
        }
    }
}
