//! Online backups: a consistent copy of the whole database while the service keeps serving.
//!
//! SQLite's `VACUUM INTO` writes the database as one read transaction sees it. Under WAL the
//! writer goes on meanwhile, and the copy holds exactly the writes committed before its snapshot
//! began: never half of one. The copy is written under a temporary name, fsynced, renamed, and its
//! folder fsynced, so a crash never leaves a file that looks complete and is not. After each new
//! backup the oldest beyond `keep` are removed. `dendrite restore` copies one back into place.

use super::Database;
use super::fault::{Fault, StorageError};
use super::sqlite::SqliteDatabase;
use serde::Serialize;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::{Path, PathBuf};

/// Backup files are `dendrite-<UTC time>.db`: names sort as their times do.
const PREFIX: &str = "dendrite-";
const SUFFIX: &str = ".db";

/// Where backups go and how many are kept.
#[derive(Debug)]
pub struct Backups {
    dir: Option<PathBuf>,
    keep: usize,
    /// One backup at a time: a second would only double the disk traffic.
    running: tokio::sync::Mutex<()>,
}

/// A backup just written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackupReport {
    /// The file's name in the backup folder.
    pub name: String,
    pub bytes: u64,
    /// Patterns the backup holds.
    pub patterns: u64,
    /// The number of the last write it holds (writes are numbered from 1 as they commit).
    pub last_write: u64,
}

/// A backup in the folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackupFile {
    pub name: String,
    pub bytes: u64,
}

/// Why no backup was made. Nothing is left behind when one fails.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "the database is in memory and no --backup-dir is set: there is nowhere to write a backup"
    )]
    NoFolder,
    #[error("a backup is already being written; wait for it")]
    Running,
    #[error(
        "the database is PostgreSQL: back it up with PostgreSQL's own tools (pg_dump, or the managed service's snapshots); dendrite's backups copy a SQLite file"
    )]
    NotSqlite,
    /// The backup folder, not the database, failed: its disk full or read-only, or it is no
    /// folder at all. Named, so the operator looks at the right disk.
    #[error("cannot write a backup into {folder}: {problem}")]
    Folder {
        folder: String,
        fault: Fault,
        problem: String,
    },
    /// Reading the database failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl BackupError {
    /// A failure writing into `folder`, classified as a failed commit is, and said of the folder.
    fn folder(folder: &Path, error: StorageError) -> BackupError {
        let not_a_folder = folder.exists() && !folder.is_dir();
        let (fault, problem) = if not_a_folder {
            (Fault::Other, "it is a file, not a folder".to_owned())
        } else {
            let what = match error.fault() {
                Fault::Full | Fault::SizeLimit => "its disk is full",
                Fault::ReadOnly => "it is read-only, or not writable by the user running dendrite",
                Fault::Locked | Fault::Io | Fault::Behind | Fault::Other => "writing to it failed",
            };
            (error.fault(), format!("{what} ({error})"))
        };
        BackupError::Folder {
            folder: folder.display().to_string(),
            fault,
            problem,
        }
    }
}

impl Backups {
    /// Backups of the database at `url` into `dir`, or a `backups` folder beside the database
    /// file when `dir` is `None`; the newest `keep` are kept.
    pub fn new(url: &str, dir: Option<PathBuf>, keep: usize) -> Backups {
        let beside_database = || {
            let file = super::sqlite::file_of(url)?;
            Some(file.parent().unwrap_or(Path::new("")).join("backups"))
        };
        Backups {
            dir: dir.or_else(beside_database),
            keep: keep.max(1),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether backups have a folder to go to (a file database, or `--backup-dir`).
    pub fn has_folder(&self) -> bool {
        self.dir.is_some()
    }

    /// Whether `database` (a file) lies in the backup folder, where pruning would delete it.
    pub fn folder_holds(&self, database: &Path) -> bool {
        let canonical = |path: &Path| {
            let path = if path.as_os_str().is_empty() {
                Path::new(".")
            } else {
                path
            };
            std::fs::canonicalize(path).ok()
        };
        let (Some(folder), Some(parent)) = (&self.dir, database.parent()) else {
            return false;
        };
        canonical(folder).is_some_and(|folder| canonical(parent) == Some(folder))
    }

    /// Writes a backup of `db` and prunes the oldest past `keep`.
    ///
    /// When the backup disk is full and the folder already holds `keep` backups, the oldest (the
    /// one this backup would prune anyway) is removed and the backup tried once more: otherwise
    /// a disk sized for `keep` backups could never take a new one.
    pub async fn create(&self, db: &Database) -> Result<BackupReport, BackupError> {
        let db = db.sqlite().ok_or(BackupError::NotSqlite)?;
        let dir = self.dir.as_ref().ok_or(BackupError::NoFolder)?;
        let _running = self.running.try_lock().map_err(|_| BackupError::Running)?;
        match self.create_in(db, dir).await {
            Err(BackupError::Folder {
                fault: Fault::Full, ..
            }) if self.drop_oldest_at_keep(dir).await => self.create_in(db, dir).await,
            outcome => outcome,
        }
    }

    /// Removes the oldest backup when the folder holds `keep` or more; whether it did.
    async fn drop_oldest_at_keep(&self, dir: &Path) -> bool {
        let Ok(files) = backup_files(dir).await else {
            return false;
        };
        let Some(oldest) = files.first().filter(|_| files.len() >= self.keep) else {
            return false;
        };
        match tokio::fs::remove_file(dir.join(&oldest.name)).await {
            Ok(()) => {
                tracing::warn!(backup = %oldest.name, "the backup disk is full: removed the oldest backup first to make room");
                true
            }
            Err(_) => false,
        }
    }

    async fn create_in(
        &self,
        db: &SqliteDatabase,
        dir: &Path,
    ) -> Result<BackupReport, BackupError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| BackupError::folder(dir, io_error(e)))?;
        let stamp: String = sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H-%M-%fZ', 'now')")
            .fetch_one(&db.pool)
            .await
            .map_err(StorageError::from)?;
        let name = format!("{PREFIX}{stamp}{SUFFIX}");
        let partial = dir.join(format!(".{name}.partial"));
        let outcome = write_backup(db, dir, &partial, &dir.join(&name)).await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        let (patterns, last_write, bytes) = outcome?;
        self.prune(dir).await;
        Ok(BackupReport {
            name,
            bytes,
            patterns,
            last_write,
        })
    }

    /// A backup file of the folder by its name, for download: `None` unless `name` is one of
    /// the folder's backups (so no name can reach another file).
    pub async fn file(&self, name: &str) -> Result<Option<PathBuf>, BackupError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|file| file.name == name)
            .map(|file| dir.join(file.name)))
    }

    /// How long ago the newest backup in the folder was written (its file's modification time),
    /// across restarts; `None` when there is none, or the folder cannot be read.
    pub fn newest_age(&self) -> Option<std::time::Duration> {
        let dir = self.dir.as_ref()?;
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|entry| is_backup_name(&entry.file_name().to_string_lossy()))
            .filter_map(|entry| entry.metadata().ok()?.modified().ok())
            .max()
            .map(|newest| newest.elapsed().unwrap_or_default())
    }

    /// The backups in the folder, newest first.
    pub async fn list(&self) -> Result<Vec<BackupFile>, BackupError> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let mut files = match backup_files(dir).await {
            Ok(files) => files,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(BackupError::folder(dir, io_error(error))),
        };
        files.reverse();
        Ok(files)
    }

    /// Removes the oldest backups past `keep`. A failure here costs disk space, not a backup:
    /// it is logged, and the next backup tries again.
    async fn prune(&self, dir: &Path) {
        let files = match backup_files(dir).await {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(%error, "cannot list the backups to prune them");
                return;
            }
        };
        let excess = files.len().saturating_sub(self.keep);
        for old in &files[..excess] {
            if let Err(error) = tokio::fs::remove_file(dir.join(&old.name)).await {
                tracing::warn!(%error, backup = %old.name, "cannot remove an old backup");
            }
        }
    }
}

/// Writes a backup every `every`, as `POST /v1/admin/backup` does, until the task is aborted. A
/// failed backup is logged and the next one tried on schedule (a full backup disk recovers by
/// itself once it has room).
pub fn schedule(
    backups: std::sync::Arc<Backups>,
    db: Database,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A backup that took longer than the interval is not followed by a burst of others.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match backups.create(&db).await {
                Ok(report) => tracing::info!(
                    backup = %report.name,
                    bytes = report.bytes,
                    patterns = report.patterns,
                    last_write = report.last_write,
                    "scheduled backup written"
                ),
                Err(error) => {
                    tracing::warn!(%error, "scheduled backup failed; the next is tried on schedule")
                }
            }
        }
    })
}

/// Copies the database into `partial`, reads what the copy holds, makes it durable and gives it
/// its final name: (patterns, last write, bytes).
async fn write_backup(
    db: &SqliteDatabase,
    dir: &Path,
    partial: &Path,
    complete: &Path,
) -> Result<(u64, u64, u64), BackupError> {
    let in_folder = |error: StorageError| BackupError::folder(dir, error);
    let target = partial.to_str().ok_or_else(|| {
        in_folder(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the backup folder's path is not UTF-8",
        )))
    })?;
    // VACUUM INTO only reads the database: what fails here is writing the copy.
    sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&db.pool)
        .await
        .map_err(|e| in_folder(StorageError::from(e)))?;
    let (patterns, last_write) = contents(partial)
        .await
        .map_err(|e| in_folder(StorageError::from(e)))?;
    let (partial, complete) = (partial.to_owned(), complete.to_owned());
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let file = std::fs::File::open(&partial)?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        std::fs::rename(&partial, &complete)?;
        if let Some(folder) = complete.parent() {
            std::fs::File::open(folder)?.sync_all()?;
        }
        Ok(bytes)
    })
    .await
    .map_err(|e| in_folder(io_error(std::io::Error::other(e))))?
    .map_err(|e| in_folder(io_error(e)))?;
    Ok((patterns, last_write, bytes))
}

/// (patterns, last write) of a database file just written, read on a read-only connection of its
/// own. The patterns are those a start-up on it would load: not those of a deletion still being
/// purged.
async fn contents(file: &Path) -> Result<(u64, u64), sqlx::Error> {
    let options = SqliteConnectOptions::new().filename(file).read_only(true);
    let mut connection = SqliteConnection::connect_with(&options).await?;
    let patterns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM patterns AS p WHERE NOT EXISTS (SELECT 1 FROM purges AS g \
         WHERE g.space = p.space AND (g.neuron = '' OR g.neuron = p.neuron))",
    )
    .fetch_one(&mut connection)
    .await?;
    let last_write: i64 = sqlx::query_scalar("SELECT last FROM write_sequence WHERE id = 1")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok((patterns as u64, last_write as u64))
}

/// The complete backups in `dir`, oldest first (partial files are skipped).
async fn backup_files(dir: &Path) -> std::io::Result<Vec<BackupFile>> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_backup_name(&name) {
            let bytes = entry.metadata().await?.len();
            files.push(BackupFile { name, bytes });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Whether a file name is a backup's, `dendrite-<UTC time>.db`.
fn is_backup_name(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

/// A file-system failure, classified as a failed commit is (a full disk is "full").
fn io_error(error: std::io::Error) -> StorageError {
    StorageError::from(sqlx::Error::Io(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_go_beside_the_database_unless_a_folder_is_given() {
        let beside = |url: &str| Backups::new(url, None, 7).dir;
        assert_eq!(
            beside("sqlite:///data/dendrite.db"),
            Some(PathBuf::from("/data/backups"))
        );
        assert_eq!(
            beside("sqlite://dendrite.db"),
            Some(PathBuf::from("backups"))
        );
        assert_eq!(
            beside("sqlite:///data/d.db?mode=rwc"),
            Some(PathBuf::from("/data/backups"))
        );
        assert_eq!(beside("sqlite::memory:"), None);
        let given = Backups::new("sqlite::memory:", Some("/b".into()), 0);
        assert_eq!((given.dir, given.keep), (Some(PathBuf::from("/b")), 1));
    }

    #[tokio::test]
    async fn a_second_backup_while_one_runs_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let db = Database::open(&url, &Default::default()).await.unwrap();
        let backups = Backups::new(&url, None, 7);
        let running = backups.running.try_lock().unwrap();
        assert!(matches!(
            backups.create(&db).await,
            Err(BackupError::Running)
        ));
        assert!(!dir.path().join("backups").exists());
        drop(running);
        let report = backups.create(&db).await.unwrap();
        assert_eq!((report.patterns, report.last_write), (0, 0));
        assert_eq!(backups.list().await.unwrap().len(), 1);
        db.close().await;
    }
}
