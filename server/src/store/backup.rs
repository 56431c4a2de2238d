//! Backups of the database while the server runs, and restoring one.
//!
//! [`backup`] copies the database with SQLite's online backup API in a single step, so the copy
//! is one consistent snapshot (a read transaction in WAL mode: the server's writers are not
//! blocked, and every change acknowledged before the snapshot began is in it). The copy is
//! written beside the destination, switched to a self-contained rollback journal (no `-wal`
//! file to carry along), checked with `PRAGMA integrity_check`, synced, and only then renamed
//! into place: a destination file is always a complete, checked backup.
//!
//! [`restore`] checks a backup the same way, and that this data directory's `secret.key`
//! decrypts its access tokens (a backup restored under another key would lock every device
//! out), then moves the current database aside to `relive.db.before-restore` and puts the
//! backup in its place. The server must be stopped: [`DataDirLock`] is held by `serve` and
//! taken by `restore`.
//!
//! `secret.key` is not inside the database: back it up once, next to the backups.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::migrations::SCHEMA_VERSION;
use super::tokens;
use crate::secret::ServerKey;

/// How long a backup waits for a busy or locked database before each retry.
const BUSY_PAUSE: Duration = Duration::from_millis(20);
/// Most retries of a busy backup step (about a minute in all).
const MAX_BUSY_RETRIES: u32 = 3_000;
/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "relive.lock";

/// What went wrong with a backup or a restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Relive database.
    #[error("{} is not a Relive database", .0.display())]
    NotRelive(PathBuf),
    /// The copy failed SQLite's integrity check.
    #[error("the database failed its integrity check: {0}")]
    Corrupt(String),
    /// The backup was made by a newer Relive.
    #[error("the backup has schema version {found}; this binary knows up to {known}")]
    TooNew {
        /// Version in the backup.
        found: u32,
        /// Highest version this binary knows.
        known: u32,
    },
    /// The backup's tokens do not decrypt under this data directory's key.
    #[error(
        "the backup's access tokens do not decrypt with this data directory's secret.key: put \
         back the secret.key that belongs to the backup first"
    )]
    WrongKey,
    /// The database stayed busy for the whole retry period.
    #[error("the database stayed busy; try again")]
    Busy,
    /// A server runs on the data directory.
    #[error("a server is running on this data directory: stop it first")]
    InUse,
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Its schema version.
    pub schema_version: u32,
    /// Accounts.
    pub accounts: u64,
    /// Contact-list entries (one per owner and contact).
    pub contacts: u64,
    /// Access tokens, revoked ones included.
    pub tokens: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { what, path, source }
}

/// An exclusive lock on a data directory: `serve` holds one for its whole run; `restore` needs
/// one. Released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` without waiting.
    ///
    /// # Errors
    ///
    /// [`BackupError::InUse`] if another process holds it, [`BackupError::Io`] otherwise.
    pub fn acquire(data_dir: &Path) -> Result<Self, BackupError> {
        let path = data_dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::InUse),
            Err(std::fs::TryLockError::Error(e)) => Err(io("locking", &path)(e)),
        }
    }
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Flushes `path` to disk.
fn sync(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", path))
}

/// Flushes the directory holding `path` (so a rename survives a crash); best effort where
/// directories cannot be opened (Windows).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Checks that `conn` holds a sound Relive database and counts what it holds.
fn check(conn: &Connection, path: &Path) -> Result<Summary, BackupError> {
    let verdict: String = conn.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(BackupError::Corrupt(verdict));
    }
    let schema_version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if schema_version > SCHEMA_VERSION {
        return Err(BackupError::TooNew {
            found: schema_version,
            known: SCHEMA_VERSION,
        });
    }
    let tables: u32 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' \
         AND name IN ('accounts', 'contacts', 'tokens')",
        [],
        |r| r.get(0),
    )?;
    if schema_version == 0 || tables != 3 {
        return Err(BackupError::NotRelive(path.to_path_buf()));
    }
    let count = |table: &str| -> Result<u64, BackupError> {
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(Summary {
        schema_version,
        accounts: count("accounts")?,
        contacts: count("contacts")?,
        tokens: count("tokens")?,
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

/// Copies all of `src` into `dst` in one step (one snapshot), retrying while busy.
fn copy_all(src: &Connection, dst: &mut Connection) -> Result<(), BackupError> {
    let backup = Backup::new(src, dst)?;
    for _ in 0..MAX_BUSY_RETRIES {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => std::thread::sleep(BUSY_PAUSE),
            _ => std::thread::sleep(BUSY_PAUSE),
        }
    }
    Err(BackupError::Busy)
}

/// Writes a consistent, checked copy of the database at `db` to `dest` (replacing it), while a
/// server may be using the database. Blocking.
///
/// # Errors
///
/// [`BackupError`]: the database cannot be read, the copy fails its check, or a file operation
/// fails. `dest` is then left as it was.
pub fn backup(db: &Path, dest: &Path) -> Result<Summary, BackupError> {
    if !db.exists() {
        return Err(BackupError::NotRelive(db.to_path_buf()));
    }
    // Read-write without create: a WAL reader needs the shared-memory file, and a missing
    // database must not be created empty.
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    src.busy_timeout(Duration::from_secs(5))?;
    let partial = beside(dest, ".partial");
    let _ = std::fs::remove_file(&partial);
    let result = (|| {
        let mut dst = Connection::open(&partial)?;
        copy_all(&src, &mut dst)?;
        // The copy inherits WAL mode; a backup is one self-contained file.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        let summary = check(&dst, &partial)?;
        drop(dst);
        sync(&partial)?;
        std::fs::rename(&partial, dest).map_err(io("renaming the backup to", dest))?;
        sync_parent(dest);
        Ok(Summary {
            bytes: std::fs::metadata(dest).map_or(summary.bytes, |m| m.len()),
            ..summary
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Checks the backup at `src` and makes it the database at `db` (the data directory's
/// `relive.db`), keeping the current one as `relive.db.before-restore`. `key` is the data
/// directory's server key; `_lock` proves no server runs. Blocking.
///
/// # Errors
///
/// [`BackupError`]: the backup is unsound, newer than this binary, or its tokens do not decrypt
/// under `key`; or a file operation failed (the current database is then left in place).
pub fn restore(
    src: &Path,
    db: &Path,
    key: &ServerKey,
    _lock: &DataDirLock,
) -> Result<Summary, BackupError> {
    if !src.exists() {
        return Err(BackupError::NotRelive(src.to_path_buf()));
    }
    let backup = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let summary = check(&backup, src)?;
    let sample = backup
        .query_row(
            "SELECT account_id, nonce, ciphertext FROM tokens ORDER BY id LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            },
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if let Some((account, nonce, ciphertext)) = sample {
        let aead = tokens::aead_key(key).map_err(|_| BackupError::WrongKey)?;
        if tokens::open(&aead, super::AccountId(account), &nonce, &ciphertext).is_none() {
            return Err(BackupError::WrongKey);
        }
    }
    // A full copy beside the database first: nothing is moved until it is complete.
    let partial = beside(db, ".restore-partial");
    let _ = std::fs::remove_file(&partial);
    let copied = (|| {
        let mut dst = Connection::open(&partial)?;
        copy_all(&backup, &mut dst)?;
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        drop(dst);
        sync(&partial)
    })();
    drop(backup);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    if db.exists() {
        // Fold the current database's WAL into it, so the file moved aside is complete.
        let current = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        current.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        current.pragma_update(None, "journal_mode", "DELETE")?;
        drop(current);
        let aside = beside(db, ".before-restore");
        std::fs::rename(db, &aside).map_err(io("moving the current database to", &aside))?;
    }
    for stale in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(beside(db, stale));
    }
    std::fs::rename(&partial, db).map_err(io("renaming the restored database to", db))?;
    sync_parent(db);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{sqlite_file_store, test_key};

    #[tokio::test]
    async fn a_backup_is_self_contained_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_file_store(dir.path()).await;
        let db = dir.path().join("relive.db");
        let dest = dir.path().join("copy.db");
        let summary = tokio::task::spawn_blocking({
            let (db, dest) = (db.clone(), dest.clone());
            move || backup(&db, &dest)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(summary.schema_version, SCHEMA_VERSION);
        assert!(summary.bytes > 0 && !beside(&dest, "-wal").exists());
        store.close().await.unwrap();
        // Not a Relive database, and not a database at all.
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        assert!(matches!(
            backup(&other, &dir.path().join("x")),
            Err(BackupError::NotRelive(_))
        ));
        std::fs::write(dir.path().join("junk.db"), [7u8; 4096]).unwrap();
        assert!(backup(&dir.path().join("junk.db"), &dir.path().join("y")).is_err());
        assert!(!dir.path().join("y").exists() && !dir.path().join("y.partial").exists());
        // A second lock on the same directory is refused while the first lives.
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DataDirLock::acquire(dir.path()),
            Err(BackupError::InUse)
        ));
        // The key check: the test key decrypts nothing of another key's (there are no tokens
        // here, so restore only needs a sound file).
        let restored = restore(&dest, &db, &test_key(), &lock).unwrap();
        assert_eq!(restored.accounts, 0);
        assert!(beside(&db, ".before-restore").exists());
    }
}
