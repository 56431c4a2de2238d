//! The account store: SQLite behind a cheap-to-clone async handle.
//!
//! # Design
//!
//! One `rusqlite::Connection` is owned by one dedicated thread (`relive-store`). Every operation
//! is a closure sent to that thread over a channel; the thread runs the closures one after the
//! other (one transaction for anything that writes) and sends each result back over a oneshot.
//! So SQLite never blocks a runtime thread, there is exactly one writer, and a write that has
//! been queued finishes even if the task awaiting it is cancelled. bcrypt runs in
//! `spawn_blocking`, *outside* the store thread, so a slow hash does not stall other queries.
//!
//! (The operations used to run in `spawn_blocking` around a mutex: under a burst of logins that
//! put ~128 blocking threads to sleep and wake on the one mutex, and the context switches cost
//! more CPU than the queries. The store thread instead drains its queue without sleeping while
//! there is work.)
//!
//! [`Store::close`] queues the close behind the operations already queued; later calls fail with
//! [`StoreError::Closed`]. The thread ends, dropping the connection, when the last handle is
//! dropped.
//!
//! The connection runs in WAL mode with `foreign_keys=ON` and a busy timeout (the CLI may open the
//! same file while a server runs). Schema changes are numbered migrations (see [`migrations`]).
//!
//! # Layout
//!
//! - [`types`]: identifiers, and the protocol types the store shares with `relive-msnp`.
//! - [`accounts`]: create, look up, delete accounts; passwords.
//! - [`lists`]: the FL/AL/BL/RL data model, groups, GTC/BLP/phones, the SYN snapshot.
//! - [`tokens`]: access tokens encrypted at rest, MD5 and plain verification.
//! - [`seed`]: bulk creation of many accounts, tokens and contacts in one transaction
//!   (benchmarks, imports).
//! - [`history`]: the opt-in message history, sealed per account under the server key.
//! - [`mail`]: the local mailboxes (Inbox/Sent/Deleted) and their unread counts.
//! - [`pages`]: the pager inbox (pages stored until delivered as `IPG`).
//! - [`backup`]: consistent backups while serving, and restoring one (with the key check).

pub mod accounts;
pub mod backup;
pub mod history;
pub mod lists;
pub mod mail;
pub mod migrations;
pub mod pages;
pub mod seed;
pub mod tokens;
pub mod types;
pub mod web;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::histogram::Histogram;
use ring::aead::LessSafeKey;
use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::secret::ServerKey;

pub use accounts::{Account, AccountError};
pub use lists::{
    Contact, Group, ListError, ListLimits, ListSnapshot, LoginState, Outcome, ReverseChange,
};
pub use tokens::{NewToken, TokenError, TokenInfo};
pub use types::{
    AccountId, Blp, EmailError, FriendlyName, GroupId, GroupName, Gtc, ListKind, ListSet, Passport,
    PhoneProp, TokenId, parse_handle,
};

/// How long a statement waits for a lock held by another connection (e.g. the CLI).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// bcrypt cost used when none is configured.
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// Infrastructure errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A migration failed; the database stays at the previous version.
    #[error("schema migration {version} failed")]
    Migration {
        /// The version the migration would have produced.
        version: u32,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer binary.
    #[error("database schema version {found} is newer than this binary supports ({known})")]
    TooNew {
        /// Version found in the file.
        found: u32,
        /// Highest version this binary knows.
        known: u32,
    },
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// A blocking task panicked or was aborted.
    #[error("store worker task failed")]
    Join(#[from] tokio::task::JoinError),
    /// An operation panicked on the store thread (a bug). Its transaction was rolled back and
    /// the store stays usable.
    #[error("store operation panicked")]
    Panicked,
    /// bcrypt failed.
    #[error("password hashing failed")]
    Bcrypt(#[from] bcrypt::BcryptError),
    /// The store thread could not be started.
    #[error("could not start the store thread")]
    Thread,
    /// Encryption, decryption or the random generator failed.
    #[error("cryptographic operation failed")]
    Crypto,
}

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// bcrypt cost (4..=31).
    pub bcrypt_cost: u32,
    /// List size limits.
    pub limits: ListLimits,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            limits: ListLimits::default(),
        }
    }
}

/// An operation for the store thread: gets the connection (`None` once closed).
type Job = Box<dyn FnOnce(&mut Option<Connection>) + Send>;

struct Inner {
    /// The queue of the store thread, which owns the connection.
    jobs: mpsc::Sender<Job>,
    key: ServerKey,
    /// The token cipher under `key`, set up once rather than per login.
    aead: LessSafeKey,
    options: StoreOptions,
    /// Seconds from queueing an operation to its result ([`Store::latency`]).
    latency: Histogram,
}

/// Upper bounds (seconds) of the [`Store::latency`] buckets: from a cached lookup (~20 µs)
/// to a database stalled behind a lock or a slow disk.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Async handle to the database; clone it freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    ///
    /// # Errors
    ///
    /// SQLite errors, [`StoreError::TooNew`], or a failed migration.
    pub async fn open(
        path: &Path,
        key: ServerKey,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || {
            let mut conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            prepare(&mut conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await??;
        Self::from_connection(conn, key, options)
    }

    /// A fresh in-memory database (unit tests; nothing survives the handle).
    ///
    /// # Errors
    ///
    /// SQLite errors or a failed migration.
    pub async fn open_in_memory(key: ServerKey, options: StoreOptions) -> Result<Self, StoreError> {
        let conn = tokio::task::spawn_blocking(|| {
            let mut conn = Connection::open_in_memory()?;
            prepare(&mut conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await??;
        Self::from_connection(conn, key, options)
    }

    fn from_connection(
        conn: Connection,
        key: ServerKey,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("relive-store".into())
            .spawn(move || {
                let mut conn = Some(conn);
                // Ends when every handle (every sender) is gone; the connection drops with it.
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|_| StoreError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                jobs,
                aead: tokens::aead_key(&key)?,
                key,
                options,
                latency: Histogram::new(LATENCY_BUCKETS),
            }),
        })
    }

    /// How long operations took, from being queued to their result (waiting behind others
    /// included), in seconds. Shares its data with every clone (the metrics endpoint
    /// registers one).
    #[must_use]
    pub fn latency(&self) -> &Histogram {
        &self.inner.latency
    }

    /// The options this store was opened with.
    #[must_use]
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    pub(crate) fn key(&self) -> &ServerKey {
        &self.inner.key
    }

    /// The token cipher (ChaCha20-Poly1305 under the server key).
    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.inner.aead
    }

    /// Runs `job` on the store thread; `Closed` if the thread is gone.
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.inner.jobs.send(job).map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on the connection, on the store thread.
    pub(crate) async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, result) = tokio::sync::oneshot::channel();
        let queued = std::time::Instant::now();
        let latency = self.inner.latency.clone();
        self.submit(Box::new(move |conn: &mut Option<Connection>| {
            let Some(conn) = conn.as_mut() else {
                let _ = reply.send(Err(E::from(StoreError::Closed)));
                return;
            };
            // A panic inside `f` unwinds through its transaction, which rolls back as it is
            // dropped, so the connection is still consistent and the thread carries on.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(E::from(StoreError::Panicked)));
            latency.observe(queued.elapsed().as_secs_f64());
            // The caller may have stopped waiting; the work is done either way.
            let _ = reply.send(outcome);
        }))?;
        result.await.map_err(|_| E::from(StoreError::Panicked))?
    }

    /// Waits for the operations queued before it to finish, then closes the database.
    /// Idempotent.
    ///
    /// # Errors
    ///
    /// The SQLite error from closing (the WAL checkpoint).
    pub async fn close(&self) -> Result<(), StoreError> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut Option<Connection>| {
            let closed = match conn.take() {
                Some(conn) => conn.close().map_err(|(_, e)| StoreError::Sqlite(e)),
                None => Ok(()),
            };
            let _ = reply.send(closed);
        });
        match self.submit(job) {
            Ok(()) => result.await.map_err(|_| StoreError::Panicked)?,
            // No thread, no connection: nothing left to close.
            Err(_) => Ok(()),
        }
    }
}

/// Prepared statements kept per connection: room for every statement of the hot paths (login,
/// list changes, presence) so none is evicted and re-prepared.
const STATEMENT_CACHE: usize = 64;

/// Pragmas every connection needs, then migrations.
fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner stability guarantee: a plan never depends on the values bound. Without
    // it SQLite re-prepares (re-parses and re-plans) a cached statement whenever a parameter it
    // looked at while planning gets a new value, which is every login; that cost as much as not
    // caching statements at all.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrations::migrate(conn)?;
    Ok(())
}

/// Current time in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the store's unit tests.
    use super::*;

    /// Options with a low bcrypt cost so tests stay fast.
    pub(crate) fn fast_options() -> StoreOptions {
        StoreOptions {
            bcrypt_cost: 4,
            limits: ListLimits::default(),
        }
    }

    /// A key for tests.
    pub(crate) fn test_key() -> ServerKey {
        ServerKey::from_bytes([42; crate::secret::SERVER_KEY_BYTES])
    }

    /// Opens a store on a real file inside `dir`.
    pub(crate) async fn file_store(dir: &Path) -> Store {
        Store::open(&dir.join("relive.db"), test_key(), fast_options())
            .await
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[tokio::test]
    async fn migrations_apply_on_a_fresh_file_and_are_idempotent_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let (version, journal, fk): (u32, String, i64) = store
            .call(|c| {
                Ok::<_, StoreError>((
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                    c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
                    c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(version, migrations::SCHEMA_VERSION);
        assert_eq!(journal, "wal");
        assert_eq!(fk, 1);
        store.close().await.unwrap();
        store.close().await.unwrap();
        assert!(matches!(
            store.call(|_| Ok::<_, StoreError>(())).await,
            Err(StoreError::Closed)
        ));

        // Reopening applies nothing and finds the same version.
        let again = file_store(dir.path()).await;
        let found = again.call(migrations::migrate).await.unwrap();
        assert_eq!(found, migrations::SCHEMA_VERSION);
        again.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relive.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", migrations::SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = Store::open(&path, test_key(), fast_options())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found, .. } if found == migrations::SCHEMA_VERSION + 1)
        );
    }
}
