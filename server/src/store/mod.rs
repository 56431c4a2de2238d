//! The account store: SQLite (embedded, the default) or PostgreSQL behind one cheap-to-clone
//! async handle.
//!
//! # Design
//!
//! Every operation is a closure sent over a channel to a thread that owns a connection and
//! never runs inside the Tokio runtime; it runs the closure (one transaction for anything that
//! writes, committed before the result is sent back: an acknowledged write is a committed one)
//! and sends the result back over a oneshot. So the database never blocks a runtime thread, and
//! a write that has been queued finishes even if the task awaiting it is cancelled. bcrypt runs
//! in `spawn_blocking`, *outside* the store threads, so a slow hash does not stall queries.
//!
//! **SQLite: one thread.** One `rusqlite::Connection` on one thread (`relive-store`) runs the
//! closures one after the other: exactly one writer per process, as SQLite wants, and every
//! operation sees every earlier one.
//!
//! **PostgreSQL: a pool.** With `[store] url = "postgres://…"`, `[store] pool_size` (default
//! [`DEFAULT_PG_POOL`]) threads (`relive-store-N`) each own a synchronous `postgres::Client` and
//! take closures from one shared queue, so that many transactions are in flight at once and
//! PostgreSQL's group commit makes one WAL flush serve several commits (one connection could
//! commit only as often as the disk flushes: ≈ 200/s here). What a closure does is, on
//! PostgreSQL, one `REPEATABLE READ` transaction opened and committed around it
//! ([`db::PgConn::begin_operation`]; a `Tx` inside it is that transaction), so its reads are
//! one snapshot and it is atomic, as a closure on SQLite's one thread is. Operations of one
//! session still run in order (a session awaits each reply before its next request). Two
//! operations that write the same row cannot both commit from stale reads: the second gets
//! `40001` and runs again (beside the others twice, then **alone** — holding an advisory lock
//! exclusively that every operation otherwise holds shared, so no other operation of the
//! database, of any node, runs beside it and it behaves exactly as on SQLite;
//! [`Store::retried`] counts the runs again). Every list change
//! writes its owner's list version (and an RL change the other account's), so list changes of
//! one account are serialised by that row: no lost update, no shared or skipped version. A
//! check over rows that other operations *insert* (a mailbox's or the pager's limits, tokens,
//! API keys and open invites per account, the history's next id) is not protected by a row
//! conflict under snapshot isolation, so those operations run alone from the start
//! (`Store::call_alone`); they are rare next to logins and list changes. A constraint
//! violation met beside other operations (two users adding the same unregistered handle) also
//! runs the operation again alone, where it either succeeds or fails as on SQLite.
//! (`SERIALIZABLE` was measured first: its page-level predicate locks made a third of
//! concurrent logins, on different accounts, fail and run again — slower than one connection.)
//! A session found closed before `COMMIT` runs the operation again on a new session (nothing
//! of it committed); a `COMMIT` lost with its session is an error (its outcome is unknown,
//! nothing was acknowledged). `r2d2_postgres` was not used: it would add a checkout per
//! operation in front of the same threads and `Client`s, while a fixed set of threads each
//! owning one client needs nothing but a shared queue.
//!
//! (The operations used to run in `spawn_blocking` around a mutex: under a burst of logins that
//! put ~128 blocking threads to sleep and wake on the one mutex, and the context switches cost
//! more CPU than the queries. The store thread instead drains its queue without sleeping while
//! there is work.)
//!
//! The two backends are one seam, [`db::Conn`]: an enum whose methods mirror the part of
//! rusqlite's API the operations use, dispatching to SQLite or PostgreSQL inside each call. So
//! every operation, and the public [`Store`] API, exists once; the backends differ only in
//! [`db`] and in the migration files. (A trait with two implementations was the alternative:
//! it would have meant writing each of the ~55 operations twice and keeping the copies in step.)
//!
//! [`Store::close`] queues the close behind the operations already queued; later calls fail with
//! [`StoreError::Closed`] (on PostgreSQL it takes the queue away, and the threads finish what
//! was queued, close their sessions and end). The threads end, dropping their connections, when
//! the last handle is dropped.
//!
//! The SQLite connection runs in WAL mode with `foreign_keys=ON` and a busy timeout (the CLI may
//! open the same file while a server runs). Schema changes are numbered migrations, one file per
//! backend (see [`migrations`]).
//!
//! # Adding an operation (both backends)
//!
//! Write it once, as the operations here are: `self.call(move |conn| { let tx =
//! conn.transaction()?; …; tx.commit()?; Ok(…) })`, with [`db::Conn`], [`db::params!`] and
//! [`db::OptionalExtension`] where rusqlite code would use rusqlite's (`use
//! crate::store::db::{Conn as Connection, OptionalExtension as _, params};` makes rusqlite-style
//! code compile unchanged). The SQL must be in the subset both engines share:
//! - parameters `?1`, `?2`… (rewritten to `$1`… for PostgreSQL); each one used at least once,
//!   with a type PostgreSQL can infer from its context (a comparison, a column, `LIMIT`);
//! - `INSERT … ON CONFLICT DO NOTHING` / `ON CONFLICT (…) DO UPDATE SET x = excluded.x`, not
//!   `INSERT OR IGNORE`/`OR REPLACE`; `RETURNING` or [`db::Conn::last_insert_rowid`] for new ids;
//! - flags are 0/1 integers in both schemas (compare with `= 0`/`= 1`, bind Rust `bool`s);
//!   `COALESCE`, not `IFNULL`; no SQLite-only functions (`randomblob`, `printf`, `julianday`);
//!   PostgreSQL's `sum()` of integers is `numeric`, so write `CAST(sum(x) AS BIGINT)`;
//!   `LIKE` is case-sensitive in PostgreSQL (compare lower-cased text);
//! - an error inside a PostgreSQL transaction aborts it: return the error, do not catch it and
//!   go on writing in the same transaction.
//!
//! On PostgreSQL the closure may run more than once (after a conflict: see "PostgreSQL: a
//! pool"), so it is `FnMut` and must do nothing outside the database that a second run would
//! repeat (clone what it moves out of its captures). An operation that checks a limit counted
//! over rows others insert (`COUNT(*) … < MAX`, `MAX(id) + 1`) uses `Store::call_alone`;
//! one whose rows are guarded by a row every concurrent writer also writes (the list version)
//! uses [`Store::call`].
//!
//! A new table needs migration `NNNN_name.sql` here **and** `pg/NNNN_name.sql` (the same
//! tables, columns, keys and checks in PostgreSQL's dialect: `BIGINT` for integers and 0/1
//! flags, `TEXT COLLATE "C"` for text, `BYTEA` for blobs, `BIGINT GENERATED BY DEFAULT AS
//! IDENTITY PRIMARY KEY` for an `INTEGER PRIMARY KEY`), both listed in [`migrations`] (a
//! compile-time check keeps the lists the same length). `migrate-store` ([`copy`]) then copies
//! the table with no new code, and `RELIVE_TEST_STORE=postgres cargo test -p relive-server --lib`
//! runs the operation's unit tests on PostgreSQL.
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
//! - [`backup`]: consistent backups while serving, and restoring one (with the key check);
//!   SQLite only.
//! - [`db`]: the connection of either backend (the seam).
//! - [`copy`]: `migrate-store`, SQLite into PostgreSQL, verified.

pub mod accounts;
pub mod backup;
pub mod copy;
pub mod db;
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

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use ring::aead::LessSafeKey;
use rusqlite::Connection;
use rusqlite::config::DbConfig;

use db::{Conn, PgConn};

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
    /// PostgreSQL failed.
    #[error("database error")]
    Postgres(#[from] postgres::Error),
    /// A single-row query found no row (`.optional()` turns this into `None`).
    #[error("query returned no rows")]
    NoRows,
    /// A column's value did not fit the Rust type it was read as.
    #[error("column {column} holds an unexpected value: {why}")]
    Decode {
        /// 0-based column.
        column: usize,
        /// What did not fit.
        why: String,
    },
    /// A migration failed; the database stays at the previous version.
    #[error("schema migration {version} failed")]
    Migration {
        /// The version the migration would have produced.
        version: u32,
        /// The backend's error.
        #[source]
        source: Box<Self>,
    },
    /// The operation exists only for the embedded SQLite store (backup, restore).
    #[error("{0} works on the embedded SQLite store only; use PostgreSQL's own tools (pg_dump)")]
    SqliteOnly(&'static str),
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
    /// A PostgreSQL operation went on after one of its statements failed (a bug: PostgreSQL had
    /// aborted its transaction); nothing of it was kept.
    #[error("store operation rolled back after a database error")]
    RolledBack,
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

impl StoreError {
    /// Whether a UNIQUE, PRIMARY KEY, CHECK or FOREIGN KEY constraint refused the write.
    #[must_use]
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            // SQLSTATE class 23: integrity constraint violation.
            Self::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }
}

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// bcrypt cost (4..=31).
    pub bcrypt_cost: u32,
    /// List size limits.
    pub limits: ListLimits,
    /// PostgreSQL only: how many connections (each on its own thread) run operations at once
    /// (`[store] pool_size`; 1..=[`MAX_PG_POOL`]). SQLite always has one.
    pub pool_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            limits: ListLimits::default(),
            pool_size: DEFAULT_PG_POOL,
        }
    }
}

/// PostgreSQL connections of one process when `[store] pool_size` is not set: enough
/// concurrent commits for PostgreSQL's group commit to share each WAL flush among several (see
/// "Scale-out" in DESIGN.md for the measurements), few enough for a few nodes to stay
/// well under PostgreSQL's default `max_connections` (100).
pub const DEFAULT_PG_POOL: usize = 8;

/// The largest `[store] pool_size`.
pub const MAX_PG_POOL: usize = 64;

/// How many times a PostgreSQL operation runs at most. After a serialization failure or a
/// deadlock it runs again at once beside the others (PostgreSQL reports the conflict once the
/// other transaction has ended, so the new snapshot has its write), up to
/// [`ATTEMPTS_BESIDE_OTHERS`] runs in all, then alone (see [`PgConn::begin_operation`]), where
/// it can meet no other: a conflict then means a session outside the store's protocol (an
/// administrator's); the error is returned, and logged.
const MAX_ATTEMPTS: u32 = 6;

/// Runs of an operation beside the others before it runs alone (see [`MAX_ATTEMPTS`]).
/// Running alone stops every other operation meanwhile: measured with 64 users changing
/// overlapping lists, going alone after the first conflict made 16 connections slower than 8.
const ATTEMPTS_BESIDE_OTHERS: u32 = 3;

/// An operation for a store thread: gets the connection (`None` once closed).
type Job = Box<dyn FnOnce(&mut Option<Conn>) + Send>;

/// Where operations go.
enum Queue {
    /// SQLite: the one store thread, which owns the connection.
    Thread(mpsc::Sender<Job>),
    /// PostgreSQL: the pool's threads, each owning a connection, take operations from one
    /// queue. Closing drops the sender (taken out of the mutex): the threads finish what is
    /// queued, drop their connections and end, and [`Store::close`] joins them.
    Pool {
        jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
        threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    },
}

struct Inner {
    /// The operations' queue.
    queue: Queue,
    /// PostgreSQL operations run again after a conflict ([`Store::retries`]).
    retried: Counter,
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
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            prepare(conn)
        })
        .await??;
        Self::from_conn(conn, key, options)
    }

    /// Connects to a PostgreSQL database (`postgres://…` or a `key=value` connection string)
    /// and migrates it: [`StoreOptions::pool_size`] connections, each on a thread of its own
    /// (see "PostgreSQL: a pool" above).
    ///
    /// # Errors
    ///
    /// Connection errors, [`StoreError::TooNew`], or a failed migration.
    pub async fn open_postgres(
        url: &str,
        key: ServerKey,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let url = url.to_owned();
        let size = options.pool_size.clamp(1, MAX_PG_POOL);
        // The synchronous client runs its own small runtime: connect on threads outside Tokio's.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("relive-store-connect".into())
            .spawn(move || {
                let conns = PgConn::connect(&url).and_then(|pg| {
                    let mut first = Conn::Postgres(Box::new(pg));
                    migrations::migrate(&mut first)?;
                    // The others at once, each on its own thread.
                    let others: Vec<_> = (1..size)
                        .map(|_| {
                            let url = url.clone();
                            std::thread::spawn(move || PgConn::connect(&url))
                        })
                        .collect();
                    let mut conns = vec![first];
                    for other in others {
                        let pg = other.join().map_err(|_| StoreError::Thread)??;
                        conns.push(Conn::Postgres(Box::new(pg)));
                    }
                    Ok(conns)
                });
                let _ = tx.send(conns);
            })
            .map_err(|_| StoreError::Thread)?;
        let conns = rx.await.map_err(|_| StoreError::Thread)??;
        Self::from_pool(conns, key, options)
    }

    /// A fresh in-memory database (unit tests; nothing survives the handle).
    ///
    /// # Errors
    ///
    /// SQLite errors or a failed migration.
    pub async fn open_in_memory(key: ServerKey, options: StoreOptions) -> Result<Self, StoreError> {
        let conn = tokio::task::spawn_blocking(|| prepare(Connection::open_in_memory()?)).await??;
        Self::from_conn(conn, key, options)
    }

    fn from_conn(conn: Conn, key: ServerKey, options: StoreOptions) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("relive-store".into())
            .spawn(move || {
                let mut conn = Some(conn);
                // Ends when every handle (every sender) is gone; the connection drops with it.
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                    if let Some(Conn::Postgres(pg)) = &conn {
                        pg.reconnect_if_closed();
                    }
                }
            })
            .map_err(|_| StoreError::Thread)?;
        Self::with_queue(Queue::Thread(jobs), key, options)
    }

    /// Starts one thread per connection, all taking operations from one queue.
    fn from_pool(
        conns: Vec<Conn>,
        key: ServerKey,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let mut threads = Vec::with_capacity(conns.len());
        for (index, conn) in conns.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            let thread = std::thread::Builder::new()
                .name(format!("relive-store-{index}"))
                .spawn(move || {
                    let mut conn = Some(conn);
                    loop {
                        // One thread waits on the queue while the others wait for the lock.
                        let job = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        // Ends when the store is closed or every handle dropped, after what
                        // was queued; the connection drops with the thread.
                        let Ok(job) = job else { break };
                        job(&mut conn);
                        if let Some(Conn::Postgres(pg)) = &conn {
                            pg.reconnect_if_closed();
                        }
                    }
                })
                .map_err(|_| StoreError::Thread)?;
            threads.push(thread);
        }
        let queue = Queue::Pool {
            jobs: std::sync::Mutex::new(Some(jobs)),
            threads: std::sync::Mutex::new(threads),
        };
        Self::with_queue(queue, key, options)
    }

    fn with_queue(queue: Queue, key: ServerKey, options: StoreOptions) -> Result<Self, StoreError> {
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                retried: Counter::default(),
                aead: tokens::aead_key(&key)?,
                key,
                options,
                latency: Histogram::new(LATENCY_BUCKETS),
            }),
        })
    }

    /// How many PostgreSQL operations ran again after a conflict (see "PostgreSQL: a pool"
    /// above; always 0 on SQLite).
    #[must_use]
    pub fn retried(&self) -> u64 {
        self.inner.retried.get()
    }

    /// The same count as a metric (shared with every clone; the metrics endpoint registers it).
    #[must_use]
    pub fn retries(&self) -> &Counter {
        &self.inner.retried
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

    /// Runs `job` on a store thread; `Closed` if the store is closed.
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        match &self.inner.queue {
            Queue::Thread(jobs) => jobs.send(job).map_err(|_| StoreError::Closed),
            Queue::Pool { jobs, .. } => jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(job)
                .map_err(|_| StoreError::Closed),
        }
    }

    /// Runs `f` on a connection, on a store thread. On PostgreSQL `f` is one transaction and
    /// may run more than once (see [`run_on_postgres`]): it must not keep
    /// effects outside the database from one run to the next.
    pub(crate) async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnMut(&mut Conn) -> Result<T, E> + Send + 'static,
    {
        self.run(f, false).await
    }

    /// [`Store::call`] for an operation that checks a limit counted over rows other operations
    /// insert (a mailbox's size, the pager's rates, tokens or API keys per account, open
    /// invites, the history's next id): on PostgreSQL it runs alone (see
    /// [`PgConn::begin_operation`]), because under snapshot isolation two such operations at
    /// once could each miss the other's row and both pass the limit. They are rare next to
    /// logins and list changes, which run side by side.
    pub(crate) async fn call_alone<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnMut(&mut Conn) -> Result<T, E> + Send + 'static,
    {
        self.run(f, true).await
    }

    async fn run<T, E, F>(&self, f: F, alone: bool) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnMut(&mut Conn) -> Result<T, E> + Send + 'static,
    {
        let mut f = f;
        let (reply, result) = tokio::sync::oneshot::channel();
        let queued = std::time::Instant::now();
        let latency = self.inner.latency.clone();
        let retried = self.inner.retried.clone();
        self.submit(Box::new(move |conn: &mut Option<Conn>| {
            let Some(conn) = conn.as_mut() else {
                let _ = reply.send(Err(E::from(StoreError::Closed)));
                return;
            };
            let outcome = if conn.is_postgres() {
                run_on_postgres(conn, &mut f, alone, &retried)
            } else {
                // A panic inside `f` unwinds through its transaction, which rolls back as it
                // is dropped, so the connection is still consistent and the thread carries on.
                std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                    .unwrap_or_else(|_| Err(E::from(StoreError::Panicked)))
            };
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
        if let Queue::Pool { jobs, threads } = &self.inner.queue {
            drop(
                jobs.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take(),
            );
            let threads = std::mem::take(
                &mut *threads
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            // Each thread finishes what was queued before, then ends, closing its session
            // (every operation committed before it returned: nothing to flush).
            tokio::task::spawn_blocking(move || {
                for thread in threads {
                    let _ = thread.join();
                }
            })
            .await?;
            return Ok(());
        }
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut Option<Conn>| {
            let closed = match conn.take() {
                Some(Conn::Sqlite(conn)) => conn.close().map_err(|(_, e)| StoreError::Sqlite(e)),
                // Dropping the client ends the session (the server rolls back nothing: every
                // operation committed before it returned).
                Some(Conn::Postgres(_)) | None => Ok(()),
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

/// Runs one operation on a PostgreSQL connection as one `REPEATABLE READ` transaction
/// ([`PgConn::begin_operation`]; see "PostgreSQL: a pool" above for what that guarantees).
/// The reply is sent only after `COMMIT` succeeded (acknowledged = committed).
///
/// The operation runs again, up to [`MAX_ATTEMPTS`] times, when
/// - PostgreSQL refused it for a serialization failure or a deadlock (`40001`, `40P01`), or a
///   constraint violation while others ran (class 23): its transaction rolled back, so the
///   next run starts from a clean state — beside the others at first, then (or at once for a
///   constraint violation) alone, holding [`db::OPERATIONS_LOCK`] exclusively (see
///   [`PgConn::begin_operation`] and [`MAX_ATTEMPTS`]); or
/// - the session turned out to be closed before `COMMIT` was sent (a server restart, an
///   administrator): nothing of it committed, so it runs on a new session.
///
/// A `COMMIT` that fails because the session is gone is *not* run again: whether it committed
/// is unknown, and the caller gets the error (nothing was acknowledged).
fn run_on_postgres<T, E, F>(
    conn: &mut Conn,
    f: &mut F,
    mut alone: bool,
    retried: &Counter,
) -> Result<T, E>
where
    E: From<StoreError>,
    F: FnMut(&mut Conn) -> Result<T, E>,
{
    let mut attempt = 1;
    loop {
        let outcome = postgres_attempt(conn, f, alone);
        let Some(pg) = conn.postgres() else {
            return outcome.result;
        };
        let again = outcome.conflict || (outcome.gone_before_commit && pg.is_broken());
        if !again {
            return outcome.result;
        }
        if attempt >= MAX_ATTEMPTS {
            tracing::warn!(
                attempts = attempt,
                conflict = outcome.conflict,
                "store operation gave up after repeated serialization failures or lost sessions"
            );
            return outcome.result;
        }
        if outcome.conflict {
            retried.inc();
            // A constraint violation is not for a retry beside others: alone it settles.
            alone = alone || outcome.constraint || attempt >= ATTEMPTS_BESIDE_OTHERS;
            tracing::debug!(
                attempt,
                alone,
                "store operation conflicted; running it again"
            );
        } else {
            pg.reconnect_if_closed();
            if pg.is_broken() {
                return outcome.result;
            }
        }
        attempt += 1;
    }
}

/// One run of an operation on PostgreSQL (see [`run_on_postgres`]).
struct Attempt<T, E> {
    result: Result<T, E>,
    /// A serialization failure or deadlock: nothing committed, run it again.
    conflict: bool,
    /// The conflict was a constraint violation (run it again alone).
    constraint: bool,
    /// The session failed before `COMMIT` was sent: nothing committed.
    gone_before_commit: bool,
}

fn postgres_attempt<T, E, F>(conn: &mut Conn, f: &mut F, alone: bool) -> Attempt<T, E>
where
    E: From<StoreError>,
    F: FnMut(&mut Conn) -> Result<T, E>,
{
    let begun = match conn.postgres() {
        Some(pg) => pg.begin_operation(alone),
        None => Err(StoreError::Closed),
    };
    if let Err(e) = begun {
        return Attempt {
            result: Err(E::from(e)),
            conflict: false,
            constraint: false,
            gone_before_commit: true,
        };
    }
    // A panic inside `f` rolls its transaction back below; the thread carries on.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(E::from(StoreError::Panicked)));
    let Some(pg) = conn.postgres() else {
        return Attempt {
            result,
            conflict: false,
            constraint: false,
            gone_before_commit: false,
        };
    };
    let (result, gone_before_commit) = match pg.end_operation(result.is_ok()) {
        db::Ended::Committed => (result, false),
        db::Ended::CommitFailed(e) => (Err(E::from(e)), false),
        db::Ended::RolledBack { swallowed: false } => (result, true),
        db::Ended::RolledBack { swallowed: true } => {
            tracing::error!("a store operation went on after a database error; rolled back");
            (Err(E::from(StoreError::RolledBack)), true)
        }
    };
    Attempt {
        result,
        conflict: pg.conflicted(),
        constraint: pg.constraint_violated(),
        gone_before_commit,
    }
}

/// Prepared statements kept per connection: room for every statement of the hot paths (login,
/// list changes, presence) so none is evicted and re-prepared.
const STATEMENT_CACHE: usize = 64;

/// Pragmas every connection needs, then migrations.
fn prepare(conn: Connection) -> Result<Conn, StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner stability guarantee: a plan never depends on the values bound. Without
    // it SQLite re-prepares (re-parses and re-plans) a cached statement whenever a parameter it
    // looked at while planning gets a new value, which is every login; that cost as much as not
    // caching statements at all.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mut conn = Conn::Sqlite(conn);
    migrations::migrate(&mut conn)?;
    Ok(conn)
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
            ..StoreOptions::default()
        }
    }

    /// A key for tests.
    pub(crate) fn test_key() -> ServerKey {
        ServerKey::from_bytes([42; crate::secret::SERVER_KEY_BYTES])
    }

    /// Whether the tests run on PostgreSQL (`RELIVE_TEST_STORE=postgres`) instead of SQLite.
    pub(crate) fn on_postgres() -> bool {
        std::env::var("RELIVE_TEST_STORE").is_ok_and(|v| v == "postgres")
    }

    /// The PostgreSQL database standing for the data directory `dir` (the same one each time,
    /// so a test that closes and reopens its store finds its data); `None` when PostgreSQL is
    /// not installed (skipped with a printed reason; a failure with `CI=true`).
    fn pg_database(dir: &Path) -> Option<String> {
        use std::collections::HashMap;
        use std::sync::Mutex;
        static DATABASES: Mutex<Option<HashMap<std::path::PathBuf, String>>> = Mutex::new(None);
        let mut map = DATABASES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = map.get_or_insert_with(HashMap::new);
        if let Some(url) = map.get(dir) {
            return Some(url.clone());
        }
        let url = crate::test_pg::postgres::database()?;
        map.insert(dir.to_path_buf(), url.clone());
        Some(url)
    }

    /// Opens the SQLite file `dir/relive.db` whatever the backend under test (tests of what
    /// only SQLite has: pragmas, files, backups).
    pub(crate) async fn sqlite_file_store(dir: &Path) -> Store {
        Store::open(&dir.join("relive.db"), test_key(), fast_options())
            .await
            .unwrap()
    }

    /// Opens a store for the data directory `dir`: the SQLite file `dir/relive.db`, or with
    /// `RELIVE_TEST_STORE=postgres` a PostgreSQL database of its own.
    pub(crate) async fn file_store(dir: &Path) -> Store {
        if on_postgres()
            && let Some(url) = pg_database(dir)
        {
            return Store::open_postgres(&url, test_key(), fast_options())
                .await
                .unwrap();
        }
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
        let store = sqlite_file_store(dir.path()).await;
        let (version, journal, fk): (u32, String, i64) = store
            .call(|c| {
                let c = c.sqlite().expect("a SQLite store");
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
        let again = sqlite_file_store(dir.path()).await;
        let found = again.call(migrations::migrate).await.unwrap();
        assert_eq!(found, migrations::SCHEMA_VERSION);
        again.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_postgres_session_fails_one_operation_and_the_next_reconnects() {
        let Some(url) = crate::test_pg::postgres::database() else {
            return;
        };
        let cluster = crate::test_pg::postgres::cluster().unwrap();
        let store = Store::open_postgres(&url, test_key(), fast_options())
            .await
            .unwrap();
        let alice = Passport::parse("alice@example.com").unwrap();
        store
            .create_account(&alice, "Alice", crate::secret::Secret::new("pw".into()))
            .await
            .unwrap();
        let db = url
            .split('?')
            .next()
            .and_then(|u| u.rsplit('/').next())
            .unwrap();
        // An administrator (or a restart) ends every session of the database.
        cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
                ),
            )
            .unwrap();
        // The operation that meets the closed session fails; the store then connects again.
        let mut found = store.account(&alice).await;
        if found.is_err() {
            found = store.account(&alice).await;
        }
        assert_eq!(found.unwrap().unwrap().email, alice);
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
