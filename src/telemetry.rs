//! Logging: a tracing subscriber in text or JSON, filtered by the configured level.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG`, when set, overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    // PostgreSQL's notices ("relation ... already exists, skipping" at every start, as the
    // migrations check their table) are its chatter, not dendrite's news: warnings only, unless
    // the level given says otherwise about sqlx.
    let directives = if level.contains("sqlx") {
        level.to_owned()
    } else {
        format!("{level},sqlx::postgres::notice=warn")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stdout);
    // A second call (tests start several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
