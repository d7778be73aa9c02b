//! `dendrite restore BACKUP`: a backup copied into place as the database, checked first.
//!
//! Starting the service on a backup where it lies makes the backup the live database: its WAL
//! files appear in the backup folder, and the next backups prune it as the oldest, live database
//! and all. So a backup is never served in place; it is copied to the configured database file
//! once it has passed SQLite's full `integrity_check` and holds dendrite's tables. The copy is
//! written under a temporary name, fsynced and renamed, so the database file is always whole;
//! a file it replaces (only with `--force`) is kept beside it, with its write-ahead log, rather
//! than deleted. A database a running service holds is never touched: the restore claims the
//! same lock the service does.

use super::owner::FileOwner;
use anyhow::{Context, bail, ensure};
use rusqlite::OpenFlags;
use std::path::{Path, PathBuf};

/// What a restore did, for the command to print.
#[derive(Debug)]
pub struct Restored {
    pub patterns: u64,
    pub last_write: u64,
    /// Where the database file that was replaced now is, if there was one.
    pub replaced: Option<PathBuf>,
}

/// Copies `backup` to `database` (a SQLite file), refusing a damaged backup, one that is not a
/// dendrite database, a database a service holds, and an existing database unless `force`.
pub fn restore(backup: &Path, database: &Path, force: bool) -> anyhow::Result<Restored> {
    ensure!(
        backup.is_file(),
        "{} is not a file: give the path of a backup",
        backup.display()
    );
    let (patterns, last_write) =
        check(backup).with_context(|| format!("{} cannot be restored", backup.display()))?;
    let _owner = FileOwner::claim(database).context(
        "stop the service using the database first: a restore replaces the file under it",
    )?;
    let exists = database.exists();
    if exists && !force {
        let held = check(database)
            .map(|(patterns, write)| format!(" (it holds {patterns} patterns, last write {write})"))
            .unwrap_or_default();
        bail!(
            "{} exists{held}: restore over it with --force (it is kept beside the restored file)",
            database.display()
        );
    }
    let folder = database
        .parent()
        .filter(|f| !f.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let partial = with_suffix(database, ".restoring");
    std::fs::copy(backup, &partial)
        .and_then(|_| std::fs::File::open(&partial)?.sync_all())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let replaced = if exists {
        let kept = with_suffix(database, &format!(".replaced-{}", seconds_since_epoch()));
        ensure!(
            !kept.exists(),
            "{} exists already (a restore this second): try again",
            kept.display()
        );
        // The WAL and its index belong to the file they were written for: they move with it, or
        // SQLite would replay the old file's last commits into the restored one.
        for side in ["-wal", "-shm"] {
            let from = with_suffix(database, side);
            if from.exists() {
                std::fs::rename(&from, with_suffix(&kept, side))
                    .with_context(|| format!("cannot move {} aside", from.display()))?;
            }
        }
        std::fs::rename(database, &kept)
            .with_context(|| format!("cannot move {} aside", database.display()))?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&partial, database)
        .and_then(|()| std::fs::File::open(folder)?.sync_all())
        .with_context(|| format!("cannot put the backup in place as {}", database.display()))?;
    Ok(Restored {
        patterns,
        last_write,
        replaced,
    })
}

/// (patterns, last write) of a dendrite database file that passes SQLite's full integrity check.
fn check(file: &Path) -> anyhow::Result<(u64, u64)> {
    let connection = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let problems: Vec<String> = connection
        .prepare("PRAGMA integrity_check(10)")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()
        .context("it is not a SQLite database, or it is damaged")?;
    ensure!(
        problems == ["ok"],
        "it is damaged: {}",
        problems.join("; ").chars().take(500).collect::<String>()
    );
    let tables: i64 = connection.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('spaces', 'neurons', 'patterns', 'write_sequence')",
        [],
        |row| row.get(0),
    )?;
    ensure!(tables == 4, "it is not a dendrite database");
    let patterns: i64 =
        connection.query_row("SELECT count(*) FROM patterns", [], |row| row.get(0))?;
    let last_write: i64 =
        connection.query_row("SELECT last FROM write_sequence WHERE id = 1", [], |row| {
            row.get(0)
        })?;
    Ok((patterns.max(0) as u64, last_write.max(0) as u64))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Seconds since the epoch: names the file a restore replaced.
fn seconds_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
