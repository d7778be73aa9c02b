//! One SQLite file, one process: the lock a serving process holds on its database for its life.
//!
//! Two processes on one file would each keep an engine of their own and each believe its writer
//! is the only one: their ids collide, and the segments they commit together break the capacity
//! rule both planned by (a rolling deploy on one volume does exactly this). So a process claims
//! the file before it opens it, with an exclusive `flock` on a lock file beside it. The kernel
//! drops the lock when the process ends however it ends, so a crashed owner leaves nothing behind
//! that would keep the next one out; the lock file itself stays, empty of meaning but for the
//! process number written in it to name the owner.

use anyhow::Context;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The exclusive claim on a database file; released when dropped or when the process ends.
#[derive(Debug)]
pub struct FileOwner {
    _lock: File,
}

/// The lock file of a database: its path with `.lock` appended.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

impl FileOwner {
    /// Claims `database` for this process, or says which process holds it.
    pub fn claim(database: &Path) -> anyhow::Result<FileOwner> {
        let path = lock_path(database);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| {
                if database.parent().is_some_and(|folder| {
                    !folder.as_os_str().is_empty() && !folder.is_dir()
                }) {
                    format!(
                        "cannot create the database's lock file {}: its folder does not exist",
                        path.display()
                    )
                } else {
                    format!(
                        "cannot create the database's lock file {}: make its folder writable by the user running dendrite",
                        path.display()
                    )
                }
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                let by = if holder.is_empty() || !holder.bytes().all(|b| b.is_ascii_digit()) {
                    "another process".to_owned()
                } else {
                    format!("process {holder}")
                };
                anyhow::bail!(
                    "the database {} is in use by {by} (it holds {}): one SQLite file serves one dendrite process; stop the other one first, or use PostgreSQL for several replicas",
                    database.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // Naming the owner is a courtesy: a full disk must not stop a start-up for it.
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()));
        Ok(FileOwner { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_file_cannot_be_claimed_again_until_its_owner_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("d.db");
        let owner = FileOwner::claim(&database).unwrap();
        let refused = FileOwner::claim(&database).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("in use by process {}", std::process::id())),
            "{refused}"
        );
        drop(owner);
        FileOwner::claim(&database).unwrap();
    }

    #[test]
    fn a_missing_folder_is_named_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let error = FileOwner::claim(&dir.path().join("nowhere/d.db")).unwrap_err();
        assert!(
            error.to_string().contains("its folder does not exist"),
            "{error}"
        );
    }
}
