//! The service's settings: each a flag and a `DENDRITE_*` environment variable, documented in
//! `dendrite serve --help` and the README.

use crate::engine::SpaceSet;
use crate::http::access::{self, KeyError, Keys};
use crate::store::StoreSettings;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// File descriptors kept back from connections: the database, its WAL and lock files, the
/// backup being written, the log.
const RESERVED_FILES: u64 = 256;
/// The most connections allowed by default, whatever the open-file limit.
const MAX_DEFAULT_CONNECTIONS: u64 = 65_536;

/// The longest timeout a setting may give, a day: longer ones mean "never" and would overflow the
/// clock arithmetic of the connections they bound (2^63 seconds made every connection panic).
pub const MAX_TIMEOUT_SECONDS: u64 = 86_400;

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "DENDRITE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The database: `sqlite://FILE` (created if missing), `sqlite::memory:` for a throw-away
    /// one, or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`, which any number of replicas share.
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
    /// a store that would pass it is refused with 507. Unset: half the memory this process may
    /// use (the container's limit, or the machine's memory); 0: no limit.
    #[arg(long, env = "DENDRITE_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,
    /// Seconds a read (a GET or a query) may run before it is stopped and answered 503.
    /// Writes have no such deadline: they are always answered with what really happened.
    #[arg(long, env = "DENDRITE_REQUEST_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub request_timeout: u64,
    /// Seconds a connection may take to send a whole request head, from when it opens or from
    /// its previous answer; past it the connection is closed. This is also how long an idle
    /// keep-alive connection is kept.
    #[arg(long, env = "DENDRITE_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub header_timeout: u64,
    /// The most connections open at once; at it, the connection idle longest is closed to make
    /// room (new clients wait only while every connection is busy). Unset: as many as the
    /// open-file limit allows (raised to its hard limit at start-up), less 256 for the database
    /// and logs, at most 65,536.
    #[arg(long, env = "DENDRITE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// The most connections one client address may hold; past it its idle ones make room, or a
    /// new one is closed. Unset: half of --max-connections (behind a reverse proxy every client
    /// shares the proxy's address: raise it there).
    #[arg(long, env = "DENDRITE_MAX_CONNECTIONS_PER_PEER", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_peer: Option<u64>,
    /// Seconds open requests get to finish after SIGTERM or SIGINT; then the process stops.
    #[arg(long, env = "DENDRITE_SHUTDOWN_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECONDS))]
    pub shutdown_timeout: u64,
    /// Seconds a request body may take to arrive before the request is answered 408.
    #[arg(long, env = "DENDRITE_BODY_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub body_timeout: u64,
    /// WAL pages after which a commit checkpoints the WAL into the database file (SQLite's
    /// wal_autocheckpoint). 0 leaves checkpoints to a replicator such as Litestream. Unset:
    /// SQLite's default, 1000 pages (about 4 MiB).
    #[arg(long, env = "DENDRITE_WAL_AUTOCHECKPOINT")]
    pub wal_autocheckpoint: Option<u32>,
    /// Serve a SQLite file without first checking it (`PRAGMA quick_check`, which reads the
    /// whole file: seconds per gigabyte). Only for a file too large to check at every start.
    #[arg(long, env = "DENDRITE_SKIP_INTEGRITY_CHECK", default_value_t = false)]
    pub skip_integrity_check: bool,
    /// Seconds PostgreSQL's change log keeps an entry. A replica that was away for longer
    /// reloads the tables when it comes back rather than following the log.
    #[arg(long, env = "DENDRITE_CHANGE_LOG_RETENTION", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub change_log_retention: u64,
    /// Folder for backups (POST /v1/admin/backup). Unset: a `backups` folder beside the
    /// database file.
    #[arg(long, env = "DENDRITE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How many backups to keep: after each new one the oldest beyond this are removed.
    #[arg(long, env = "DENDRITE_BACKUP_KEEP", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_keep: u64,
    /// Seconds between scheduled backups (as POST /v1/admin/backup writes them, pruned to
    /// --backup-keep); 0, the default, schedules none. SQLite only.
    #[arg(long, env = "DENDRITE_BACKUP_INTERVAL", default_value_t = 0)]
    pub backup_interval: u64,
    /// Serve only these spaces: a comma-separated list of names and of prefixes ending in `*`
    /// (`sensors-*,alerts`). Other spaces are neither loaded nor followed, and requests for them
    /// (creating one included) are answered 404 naming this setting: replicas split into shard
    /// groups over one PostgreSQL database, each group holding its spaces' patterns in memory.
    /// Unset: every space.
    #[arg(long, env = "DENDRITE_SPACES", default_value = "*", value_parser = parse_space_set)]
    pub spaces: SpaceSet,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// Who may use the service: API keys, the names it answers to, and browser origins.
#[derive(Clone, Debug, Default, Args)]
pub struct AccessArgs {
    /// Read-write API keys, comma-separated (two while one is being rotated out); each at least
    /// 16 characters. With any key set, every route but /healthz, /readyz and /openapi.yaml needs
    /// one, as `api-key: <key>` or `Authorization: Bearer <key>`.
    #[arg(long, env = "DENDRITE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A file holding read-write API keys (a Docker secret), comma-separated.
    #[arg(long, env = "DENDRITE_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Read-only API keys, comma-separated: they read and query, and get 403 on any write.
    #[arg(long, env = "DENDRITE_READ_ONLY_API_KEY", hide_env_values = true)]
    pub read_only_api_key: Option<String>,
    /// A file holding read-only API keys, comma-separated.
    #[arg(long, env = "DENDRITE_READ_ONLY_API_KEY_FILE")]
    pub read_only_api_key_file: Option<PathBuf>,
    /// Names the service is reached by (e.g. its compose service name), comma-separated. While
    /// no key is set, requests whose Host is none of these, the listen address, localhost or an
    /// IP address are refused with 421 (DNS rebinding).
    #[arg(
        long = "allowed-host",
        env = "DENDRITE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call the API across origins (CORS), comma-separated, e.g.
    /// `https://dashboard.example`. Unset: no cross-origin access.
    #[arg(
        long = "cors-origin",
        env = "DENDRITE_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Let Prometheus scrape /metrics without a key while keys are set (it holds counts and
    /// durations, never patterns). By default /metrics needs a key like every read.
    #[arg(long, env = "DENDRITE_METRICS_WITHOUT_KEY", default_value_t = false)]
    pub metrics_without_key: bool,
}

impl AccessArgs {
    /// The keys of both scopes, from the settings and their files, each checked.
    pub fn keys(&self) -> Result<Keys, KeyError> {
        let mut read_write = Vec::new();
        if let Some(list) = &self.api_key {
            read_write.push(("DENDRITE_API_KEY", list.clone()));
        }
        if let Some(path) = &self.api_key_file {
            let setting = "DENDRITE_API_KEY_FILE";
            read_write.push((setting, access::read_key_file(setting, path)?));
        }
        let mut read_only = Vec::new();
        if let Some(list) = &self.read_only_api_key {
            read_only.push(("DENDRITE_READ_ONLY_API_KEY", list.clone()));
        }
        if let Some(path) = &self.read_only_api_key_file {
            let setting = "DENDRITE_READ_ONLY_API_KEY_FILE";
            read_only.push((setting, access::read_key_file(setting, path)?));
        }
        Keys::new(&read_write, &read_only)
    }
}

impl ServeArgs {
    /// Checks what clap's ranges check, for settings built in code rather than parsed.
    pub fn check(&self) -> anyhow::Result<()> {
        for (setting, seconds, least) in [
            ("DENDRITE_REQUEST_TIMEOUT", self.request_timeout, 1),
            ("DENDRITE_HEADER_TIMEOUT", self.header_timeout, 1),
            ("DENDRITE_SHUTDOWN_TIMEOUT", self.shutdown_timeout, 0),
            ("DENDRITE_BODY_TIMEOUT", self.body_timeout, 1),
        ] {
            anyhow::ensure!(
                (least..=MAX_TIMEOUT_SECONDS).contains(&seconds),
                "{setting}: {seconds} s is not in {least}..={MAX_TIMEOUT_SECONDS} (a day)"
            );
        }
        Ok(())
    }

    /// The engine's memory budget: the setting, or by default half of
    /// [`crate::host::available_memory`] (the other half is for what the estimate does not
    /// count: the allocator's slack, start-up's decoded rows, requests in flight); `None` when
    /// set to 0 or when the memory is unknown.
    pub fn memory_limit(&self) -> Option<u64> {
        match self.memory_limit {
            Some(0) => None,
            Some(bytes) => Some(bytes),
            None => crate::host::available_memory().map(|bytes| bytes / 2),
        }
    }

    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            max_size: self.max_database_size,
            wal_autocheckpoint: self.wal_autocheckpoint,
            integrity_check: !self.skip_integrity_check,
            log_retention: Duration::from_secs(self.change_log_retention),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout)
    }

    /// The connection limits, given the process's open-file limit (`None`: unknown).
    pub fn connection_limits(
        &self,
        open_files: Option<u64>,
    ) -> crate::http::serve::ConnectionLimits {
        let by_files = open_files.map_or(1024, |files| {
            files
                .saturating_sub(RESERVED_FILES)
                .clamp(64, MAX_DEFAULT_CONNECTIONS)
        });
        let max_connections = self.max_connections.unwrap_or(by_files);
        let per_peer = self
            .max_connections_per_peer
            .unwrap_or((max_connections / 2).max(1));
        crate::http::serve::ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout),
            max_connections: max_connections as usize,
            max_connections_per_peer: per_peer as usize,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
        }
    }
}

/// `dendrite restore`: a backup copied into place as the database.
#[derive(Clone, Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file to restore (a `dendrite-<UTC time>.db` of the backup folder).
    pub backup: PathBuf,
    /// The database to restore it as: the service's own setting, a `sqlite://FILE`.
    #[arg(
        long,
        env = "DENDRITE_DATABASE_URL",
        default_value = "sqlite://dendrite.db"
    )]
    pub database_url: String,
    /// Replace an existing database file (it is kept beside the restored one, renamed).
    #[arg(long)]
    pub force: bool,
}

/// `dendrite export` and `dendrite import`: the database they read or write.
#[derive(Clone, Debug, clap::Args)]
pub struct TransferArgs {
    /// The database: a `sqlite://FILE` or a `postgres://USER:PASSWORD@HOST/DATABASE`.
    #[arg(
        long,
        env = "DENDRITE_DATABASE_URL",
        default_value = "sqlite://dendrite.db"
    )]
    pub database_url: String,
}

fn parse_space_set(list: &str) -> Result<SpaceSet, String> {
    SpaceSet::parse(list).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_defaults_to_half_the_memory_available_and_0_turns_it_off() {
        use crate::host::available_memory;
        let settings = |limit| {
            #[derive(clap::Parser)]
            struct Serve {
                #[command(flatten)]
                args: ServeArgs,
            }
            let mut args = <Serve as clap::Parser>::parse_from(["dendrite"]).args;
            args.memory_limit = limit;
            args.memory_limit()
        };
        assert_eq!(settings(Some(0)), None);
        assert_eq!(settings(Some(12345)), Some(12345));
        if let Some(available) = available_memory() {
            assert_eq!(settings(None), Some(available / 2));
        }
    }

    #[test]
    fn spaces_are_every_space_unless_listed_and_a_bad_list_is_a_usage_error() {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let parse = |list: &[&str]| {
            <Serve as clap::Parser>::try_parse_from(["dendrite"].iter().chain(list))
                .map(|serve| serve.args.spaces)
        };
        assert!(parse(&[]).unwrap().is_all());
        let listed = parse(&["--spaces", "sensors-*,alerts"]).unwrap();
        assert_eq!(listed, SpaceSet::parse("sensors-*,alerts").unwrap());
        let error = parse(&["--spaces", "sensors *"]).err().unwrap().to_string();
        assert!(
            error.contains("--spaces") && error.contains("not a space name"),
            "{error}"
        );
    }
}
