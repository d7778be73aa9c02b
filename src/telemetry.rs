//! Logging: a tracing subscriber in text or JSON, filtered by the configured level, writing to
//! stdout through a writer that never fails a request.
//!
//! The log is the first thing a full disk takes (stdout redirected to a file on it, a collector
//! that stopped reading). tracing's formatter reports a failed write with `eprintln!`, which
//! panics when stderr fails too, and the panic closes the connection of whatever request was
//! logging. So a failed log write is counted, for `/metrics`, and otherwise dropped: losing a log
//! line is better than losing the request or the writer it describes.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;

/// Log lines that could not be written since the process started.
static FAILED_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many log lines could not be written (the stream was full, closed or failing).
pub fn failed_writes() -> u64 {
    FAILED_WRITES.load(Ordering::Relaxed)
}

/// Refuses a log filter that would silently log less than asked for: one that does not parse, is
/// empty, or holds a bare word that is not a level. tracing reads a bare word (`inf`, `verbose`)
/// as the name of a target to log everything of, so every other line, the start-up line and the
/// missing-key warning included, would vanish without a word.
pub fn check_filter(directives: &str) -> Result<(), String> {
    if directives.trim().is_empty() {
        return Err("is empty; give a level (trace, debug, info, warn, error, off)".into());
    }
    for directive in directives.split(',').map(str::trim) {
        let bare_word = !directive.contains(['=', '[', ':']);
        if bare_word
            && directive
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            return Err(format!(
                "{directive:?} is not a level (trace, debug, info, warn, error, off); to filter a \
                 target write TARGET=LEVEL"
            ));
        }
    }
    EnvFilter::builder()
        .parse(directives)
        .map(drop)
        .map_err(|error| format!("{directives:?} is not a log filter: {error}"))
}

/// Installs the global subscriber, JSON lines or text; `RUST_LOG`, when set, overrides `level`.
pub fn init(json: bool, level: &str) {
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
        .log_internal_errors(false)
        .with_writer(|| NeverFails(std::io::stdout()));
    // A second call (tests start several servers) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// A writer whose failures are counted in [`FAILED_WRITES`] and otherwise swallowed.
struct NeverFails<W>(W);

impl<W: Write> Write for NeverFails<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One attempt at the whole line: a line half written is as lost as one not written.
        if self.0.write_all(buf).is_err() {
            FAILED_WRITES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.0.flush().is_err() {
            FAILED_WRITES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_or_target_directives_pass_and_a_typo_does_not() {
        for good in [
            "info",
            "WARN",
            "off",
            "dendrite=debug,tower_http=info",
            "info,sqlx=warn",
        ] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
        for bad in ["inf", "verbose", "", " ", "info,verbose", "dendrite=loud"] {
            assert!(check_filter(bad).is_err(), "{bad:?}");
        }
    }

    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_write_that_fails_is_counted_and_reported_as_written() {
        let before = failed_writes();
        let mut writer = NeverFails(Full);
        assert_eq!(writer.write(b"a line\n").unwrap(), 7);
        assert!(failed_writes() > before);
        let mut fine = NeverFails(Vec::new());
        fine.write_all(b"kept\n").unwrap();
        assert_eq!(fine.0, b"kept\n");
    }
}
