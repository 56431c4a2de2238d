//! One connection type over both backends, so every store operation is written once.
//!
//! [`Conn`] is either a `rusqlite::Connection` (the embedded default) or a synchronous
//! `postgres::Client`; both live on the store thread (see the [`super`] docs), so neither blocks a
//! runtime thread and the PostgreSQL client's own small runtime never runs inside Tokio's. The
//! API mirrors the part of rusqlite's that the store uses (`execute`, `query_row`,
//! `prepare_cached(..).query_map(..)`, `transaction()`/`commit()`, `last_insert_rowid()`,
//! `.optional()`), so an operation reads like plain rusqlite code and runs on either backend.
//!
//! SQL is written once, in the common subset of both dialects, with `?N` parameters (rewritten to
//! `$N` for PostgreSQL) — see "Adding an operation" in the [`super`] docs for the rules.
//!
//! Values cross as [`Value`] (bind) and [`ValueRef`] (read): integers, text, blobs and NULL. The
//! PostgreSQL side converts them to and from whatever column type the statement has (`BIGINT`,
//! `INTEGER`, `SMALLINT`, `BOOLEAN`, `TEXT`, `BYTEA`), so a Rust `bool` binds to a 0/1 flag
//! column on both backends and a `u32` reads from a `BIGINT`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{IsNull, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef as SqliteRef};

use super::StoreError;

/// Results of the connection layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer (booleans are 0/1).
    Int(i64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// A value read from a result column, borrowed from the row (PostgreSQL booleans read as 0/1).
pub type ValueRef<'a> = Value<'a>;

/// Rust values that bind as a statement parameter.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value<'_>;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u16, u8, i16, i8, bool);

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}
impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        *self
    }
}

/// Rust values read from a result column.
pub trait FromValue: Sized {
    /// Converts the column value; the message says what did not fit.
    ///
    /// # Errors
    ///
    /// A description of the mismatch.
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
                match value {
                    ValueRef::Int(i) => <$t>::try_from(i)
                        .map_err(|_| format!("integer {i} out of range")),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u32, u64, u16, u8, usize);

impl FromValue for bool {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Int(i) => Ok(i != 0),
            other => Err(format!("expected a flag, found {other:?}")),
        }
    }
}
impl FromValue for String {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Text(s) => Ok(s.to_owned()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A statement's parameters: `[]`, `[a]`, `[a, b]` of one type, or [`params!`] for mixed types.
pub trait Params {
    /// The values, in order (`?1` first).
    fn values(&self) -> Vec<Value<'_>>;
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}
impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl<T: ToValue, const N: usize> Params for [T; N]
where
    [T; N]: NotEmpty,
{
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// Arrays of 1..=16 parameters (the empty array is its own [`Params`] impl).
pub trait NotEmpty {}
macro_rules! not_empty {
    ($($n:literal)*) => {$( impl<T> NotEmpty for [T; $n] {} )*};
}
not_empty!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// Mixed-type parameters, like `rusqlite::params!`.
#[macro_export]
#[doc(hidden)]
macro_rules! store_params {
    () => { &[] as &[&dyn $crate::store::db::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue] };
}
pub use crate::store_params as params;

/// `.optional()` on a single-row query, as with rusqlite.
pub trait OptionalExtension<T> {
    /// `Ok(None)` instead of [`StoreError::NoRows`].
    ///
    /// # Errors
    ///
    /// Any other error.
    fn optional(self) -> Result<Option<T>>;
}
impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A PostgreSQL connection with its prepared statements.
pub struct PgConn {
    /// Where it connected (to connect again after the server closed the session).
    url: String,
    client: RefCell<postgres::Client>,
    /// Set when an error said the session is gone (closed, I/O, the server shutting down).
    broken: Cell<bool>,
    /// Inside [`PgConn::begin_operation`]..[`PgConn::end_operation`]: the operation's
    /// transaction is already open, so [`Conn::transaction`] opens none and its commit is the
    /// operation's.
    in_operation: Cell<bool>,
    /// The operation dropped a [`Tx`] without committing it: roll the operation back.
    rollback_only: Cell<bool>,
    /// A statement of the operation failed (the transaction is aborted whatever the closure
    /// made of the error).
    failed: Cell<bool>,
    /// That failure was a serialization failure or a deadlock (`40001`, `40P01`): running the
    /// operation again can succeed.
    conflict: Cell<bool>,
    /// The conflict was a constraint violation (class 23).
    constraint: Cell<bool>,
    /// This session holds the operations' lock exclusively (see [`PgConn::begin_operation`]).
    exclusive: Cell<bool>,
    /// Prepared statements by the store's SQL text (the `?N` form).
    cache: RefCell<HashMap<String, postgres::Statement>>,
}

impl PgConn {
    /// Connects (call it on the store thread, not inside the Tokio runtime).
    ///
    /// # Errors
    ///
    /// The client's error.
    pub fn connect(url: &str) -> Result<Self> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(Self {
            url: url.to_owned(),
            client: RefCell::new(client),
            broken: Cell::new(false),
            in_operation: Cell::new(false),
            rollback_only: Cell::new(false),
            failed: Cell::new(false),
            conflict: Cell::new(false),
            constraint: Cell::new(false),
            exclusive: Cell::new(false),
            cache: RefCell::new(HashMap::new()),
        })
    }

    /// Passes `e` on, noting whether it means the session is gone: not a database error (I/O,
    /// closed), or SQLSTATE class 08 (connection exception) or 57 (operator intervention: the
    /// server shutting down, the session terminated).
    fn note(&self, e: postgres::Error) -> StoreError {
        let gone = e.is_closed()
            || e.code().is_none_or(|c| {
                let c = c.code();
                c.starts_with("08") || c.starts_with("57")
            });
        if gone {
            self.broken.set(true);
        }
        self.failed.set(true);
        // A constraint violation (class 23: a duplicate key, a missing parent row) among
        // concurrent operations may come from another one's uncommitted insert or delete; alone,
        // the operation either succeeds or meets the same violation, as it would on SQLite.
        if let Some(code) = e.code() {
            let constraint = code.code().starts_with("23") && !self.exclusive.get();
            if constraint
                || *code == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                || *code == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            {
                self.conflict.set(true);
                self.constraint.set(constraint);
            }
        }
        StoreError::Postgres(e)
    }

    /// Whether an error said the session is gone (see [`PgConn::reconnect_if_closed`]).
    #[must_use]
    pub fn is_broken(&self) -> bool {
        self.broken.get() || self.client.borrow().is_closed()
    }

    /// Opens the transaction of one store operation (`REPEATABLE READ`: one snapshot, and a
    /// write to a row that another transaction changed since is refused with `40001`): until
    /// [`PgConn::end_operation`], [`Conn::transaction`] opens no transaction of its own, so
    /// everything the operation runs — its `Tx`, and statements outside one — is one
    /// transaction, committed or rolled back as a whole.
    ///
    /// Every operation also holds the advisory lock [`OPERATIONS_LOCK`]: shared normally
    /// (taken in the same round trip as `BEGIN`, released with the transaction), so operations
    /// run side by side; `exclusive` for an operation running again after a conflict (or one
    /// that asked to run alone: `Store::call_alone`) — taken *before* `BEGIN`, so its
    /// snapshot is taken once every other operation of the database (of every node) has ended
    /// and none can start until it has: it runs alone, exactly as on SQLite's one thread, and
    /// cannot meet another conflict. So a hot row (one account's list version changed from
    /// many sessions at once) costs one failed attempt per operation at most, never a retry
    /// storm.
    ///
    /// # Errors
    ///
    /// The server's error (the session may be gone: see [`PgConn::is_broken`]).
    pub fn begin_operation(&self, exclusive: bool) -> Result<()> {
        self.rollback_only.set(false);
        self.failed.set(false);
        self.conflict.set(false);
        self.constraint.set(false);
        let begin = if exclusive {
            self.client
                .borrow_mut()
                .batch_execute(&format!("SELECT pg_advisory_lock({OPERATIONS_LOCK})"))
                .map_err(|e| self.note(e))?;
            self.exclusive.set(true);
            self.client
                .borrow_mut()
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        } else {
            self.client.borrow_mut().batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; \
                 SELECT pg_advisory_xact_lock_shared({OPERATIONS_LOCK})"
            ))
        };
        if let Err(e) = begin {
            let e = self.note(e);
            // Whatever half of it ran: end it (errors only tell whether the session is gone).
            let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
            self.release_exclusive();
            return Err(e);
        }
        self.in_operation.set(true);
        Ok(())
    }

    /// Releases the exclusive operations' lock if this session holds it.
    fn release_exclusive(&self) {
        if self.exclusive.replace(false)
            && let Err(e) = self
                .client
                .borrow_mut()
                .batch_execute(&format!("SELECT pg_advisory_unlock({OPERATIONS_LOCK})"))
        {
            // The session is gone (and the lock with it), or something is badly wrong: either
            // way the next operation on this connection finds out.
            self.broken.set(true);
            tracing::warn!(error = %e, "releasing the store's exclusive lock failed");
        }
    }

    /// Ends the operation's transaction: commits it when `ok` (the operation returned `Ok`),
    /// it did not abandon its `Tx`, and no statement failed; otherwise rolls it back.
    ///
    /// # Errors
    ///
    /// [`Ended::CommitFailed`] carries the server's error from `COMMIT` (the transaction did
    /// not commit: a serialization failure, or the session is gone and the outcome unknown).
    pub fn end_operation(&self, ok: bool) -> Ended {
        self.in_operation.set(false);
        let commit = ok && !self.rollback_only.get() && !self.failed.get();
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let ended = self.client.borrow_mut().batch_execute(sql);
        let ended = ended.map_err(|e| self.note(e));
        self.release_exclusive();
        match (commit, ended) {
            (true, Ok(())) => Ended::Committed,
            (true, Err(e)) => Ended::CommitFailed(e),
            // Only whether the session is gone matters if ROLLBACK failed: nothing was kept.
            (false, _) => Ended::RolledBack {
                swallowed: ok && self.failed.get(),
            },
        }
    }

    /// Whether the last operation met a serialization failure or a deadlock (running it again
    /// can succeed).
    #[must_use]
    pub fn conflicted(&self) -> bool {
        self.conflict.get()
    }

    /// Whether that conflict was a constraint violation met beside other operations.
    #[must_use]
    pub fn constraint_violated(&self) -> bool {
        self.constraint.get()
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.cache.borrow().get(sql) {
            return Ok(s.clone());
        }
        let statement = self
            .client
            .borrow_mut()
            .prepare(&pg_sql(sql))
            .map_err(|e| self.note(e))?;
        let mut cache = self.cache.borrow_mut();
        // Statements are a fixed set; the bound only guards against a caller building SQL.
        if cache.len() >= 512 {
            cache.clear();
        }
        cache.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(
        &self,
        statement: &postgres::Statement,
        values: &[Value<'_>],
    ) -> Result<Vec<postgres::Row>> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        self.client
            .borrow_mut()
            .query(statement, &refs)
            .map_err(|e| self.note(e))
    }

    fn execute(&self, statement: &postgres::Statement, values: &[Value<'_>]) -> Result<usize> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let n = self
            .client
            .borrow_mut()
            .execute(statement, &refs)
            .map_err(|e| self.note(e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// After the server closed the session (a restart, a failover, an administrator), connects
    /// again, so the next operation works; the one that met the closed session has already
    /// failed (and was not acknowledged). Nothing happens while the session is open.
    pub fn reconnect_if_closed(&self) {
        if !self.broken.get() && !self.client.borrow().is_closed() {
            return;
        }
        match postgres::Client::connect(&self.url, postgres::NoTls) {
            Ok(client) => {
                *self.client.borrow_mut() = client;
                self.broken.set(false);
                self.cache.borrow_mut().clear();
                tracing::warn!("the PostgreSQL session was closed; connected again");
            }
            Err(error) => {
                tracing::error!(%error, "the PostgreSQL session was closed; reconnecting failed")
            }
        }
    }

    /// Drops the prepared statement of `sql` (one that runs once, such as a bulk insert).
    pub fn forget(&self, sql: &str) {
        self.cache.borrow_mut().remove(sql);
    }

    /// The client, for what the store layer does not cover (the copy tool's `COPY`).
    pub fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        self.client.borrow_mut()
    }
}

/// The PostgreSQL advisory lock every pooled store operation holds (shared, or exclusive when
/// it runs again after a conflict: see [`PgConn::begin_operation`]). One key per database, so
/// all nodes sharing the database take part.
pub const OPERATIONS_LOCK: i64 = 0x0000_7265_6c69_7670;

/// How [`PgConn::end_operation`] ended an operation's transaction.
#[derive(Debug)]
pub enum Ended {
    /// Committed: the operation's result may be acknowledged.
    Committed,
    /// `COMMIT` failed: nothing was committed, or (the session gone) it is unknown.
    CommitFailed(StoreError),
    /// Rolled back, as the operation asked (an `Err`, an abandoned `Tx`) — or, with `swallowed`,
    /// because a statement failed and the operation returned `Ok` all the same (a bug: the
    /// aborted transaction kept nothing).
    RolledBack {
        /// A statement failed although the operation returned `Ok`.
        swallowed: bool,
    },
}

/// Rewrites `?N` parameters to PostgreSQL's `$N` (outside quoted text).
#[must_use]
pub fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// A connection of either backend.
pub enum Conn {
    /// The embedded database.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL server (boxed: its client is much larger than a SQLite handle).
    Postgres(Box<PgConn>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Conn::Sqlite",
            Self::Postgres(_) => "Conn::Postgres",
        })
    }
}

fn sqlite_params<'v>(values: &'v [Value<'v>]) -> impl rusqlite::Params + 'v {
    rusqlite::params_from_iter(values.iter())
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Null => SqliteRef::Null,
            Self::Int(i) => SqliteRef::Integer(i),
            Self::Text(s) => SqliteRef::Text(s.as_bytes()),
            Self::Blob(b) => SqliteRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        use bytes::BufMut as _;
        match *self {
            Self::Null => return Ok(IsNull::Yes),
            Self::Int(i) => match *ty {
                Type::INT8 => out.put_i64(i),
                Type::INT4 => out.put_i32(i32::try_from(i)?),
                Type::INT2 => out.put_i16(i16::try_from(i)?),
                Type::BOOL => out.put_u8(u8::from(i != 0)),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    out.put_slice(i.to_string().as_bytes())
                }
                _ => return Err(format!("cannot bind an integer to {ty}").into()),
            },
            Self::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    out.put_slice(s.as_bytes());
                }
                _ => return Err(format!("cannot bind text to {ty}").into()),
            },
            Self::Blob(b) => match *ty {
                Type::BYTEA => out.put_slice(b),
                _ => return Err(format!("cannot bind bytes to {ty}").into()),
            },
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> postgres::types::FromSql<'a> for Value<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        let int = |n: usize| -> std::result::Result<i64, Box<dyn StdError + Sync + Send>> {
            let bytes = raw
                .get(..n)
                .filter(|_| raw.len() == n)
                .ok_or("bad integer")?;
            let mut wide = [0u8; 8];
            // Sign-extend the big-endian value.
            let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            wide[..8 - n].fill(fill);
            wide[8 - n..].copy_from_slice(bytes);
            Ok(i64::from_be_bytes(wide))
        };
        Ok(match *ty {
            Type::INT8 => Self::Int(int(8)?),
            Type::INT4 => Self::Int(int(4)?),
            Type::INT2 => Self::Int(int(2)?),
            Type::BOOL => Self::Int(i64::from(raw.first().is_some_and(|b| *b != 0))),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Self::Text(std::str::from_utf8(raw)?)
            }
            Type::BYTEA => Self::Blob(raw),
            _ => return Err(format!("unsupported column type {ty}").into()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Self::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A column position (`usize`; a trait so that `row.get(0)` infers it).
pub trait ColumnIndex {
    /// The 0-based position.
    fn index(self) -> usize;
}
impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl<'a> Value<'a> {
    /// The text of a text value.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] for any other value.
    pub fn as_str(self) -> Result<&'a str> {
        match self {
            Self::Text(t) => Ok(t),
            other => Err(StoreError::Decode {
                column: 0,
                why: format!("expected text, found {other:?}"),
            }),
        }
    }

    /// The bytes of a blob.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] for any other value.
    pub fn as_blob(self) -> Result<&'a [u8]> {
        match self {
            Self::Blob(b) => Ok(b),
            other => Err(StoreError::Decode {
                column: 0,
                why: format!("expected bytes, found {other:?}"),
            }),
        }
    }
}

/// A result row of either backend.
pub enum Row<'a> {
    /// A SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `index` (0-based) as `T`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] when the value does not fit `T`, or the backend's error.
    pub fn get<I: ColumnIndex, T: FromValue>(&self, index: I) -> Result<T> {
        let index = index.index();
        let value = self.get_ref(index)?;
        T::from_value(value).map_err(|why| StoreError::Decode { column: index, why })
    }

    /// Column `index` as a borrowed value.
    ///
    /// # Errors
    ///
    /// The backend's error (no such column, unsupported type).
    pub fn get_ref(&self, index: usize) -> Result<ValueRef<'_>> {
        match self {
            Self::Sqlite(row) => Ok(match row.get_ref(index)? {
                SqliteRef::Null => ValueRef::Null,
                SqliteRef::Integer(i) => ValueRef::Int(i),
                SqliteRef::Real(_) => {
                    return Err(StoreError::Decode {
                        column: index,
                        why: "floating point values are not used".into(),
                    });
                }
                SqliteRef::Text(t) => {
                    ValueRef::Text(std::str::from_utf8(t).map_err(|e| StoreError::Decode {
                        column: index,
                        why: e.to_string(),
                    })?)
                }
                SqliteRef::Blob(b) => ValueRef::Blob(b),
            }),
            Self::Postgres(row) => Ok(row.try_get::<_, ValueRef<'_>>(index)?),
        }
    }

    /// How many columns the row has.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Sqlite(row) => row.as_ref().column_count(),
            Self::Postgres(row) => row.len(),
        }
    }

    /// Whether the row has no columns.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Conn {
    /// The SQLite connection, for what only SQLite has (pragmas, the backup API).
    #[must_use]
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Self::Sqlite(c) => Some(c),
            Self::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection, for what only PostgreSQL has.
    #[must_use]
    pub fn postgres(&self) -> Option<&PgConn> {
        match self {
            Self::Postgres(c) => Some(c),
            Self::Sqlite(_) => None,
        }
    }

    /// Whether this is a PostgreSQL connection.
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs a statement, returning the number of rows changed.
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of a query, mapped by `f`; [`StoreError::NoRows`] when there is none.
    ///
    /// # Errors
    ///
    /// The backend's error or `f`'s.
    pub fn query_row<T, P: Params, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Several statements without parameters (migrations).
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Self::Postgres(c) => c
                .client
                .borrow_mut()
                .batch_execute(sql)
                .map_err(|e| c.note(e)),
        }
    }

    /// A statement, prepared once per connection and kept (SQLite's statement cache,
    /// PostgreSQL's prepared statements).
    ///
    /// # Errors
    ///
    /// The backend's error (bad SQL).
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self {
            Self::Sqlite(c) => Stmt::Sqlite(c.prepare_cached(sql)?),
            Self::Postgres(c) => Stmt::Postgres {
                statement: c.statement(sql)?,
                conn: c,
            },
        })
    }

    /// Same as [`Conn::prepare_cached`] (kept for rusqlite's spelling).
    ///
    /// # Errors
    ///
    /// The backend's error (bad SQL).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        self.prepare_cached(sql)
    }

    /// The id the last `INSERT` gave its row (an `INTEGER PRIMARY KEY` in SQLite, an identity
    /// column's sequence in PostgreSQL).
    ///
    /// # Errors
    ///
    /// PostgreSQL's error (no sequence used yet in this session).
    pub fn last_insert_rowid(&self) -> Result<i64> {
        match self {
            Self::Sqlite(c) => Ok(c.last_insert_rowid()),
            Self::Postgres(_) => self.query_row("SELECT lastval()", [], |r| r.get(0)),
        }
    }

    /// Starts a transaction; it rolls back unless [`Tx::commit`] is called.
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        // Inside a pooled PostgreSQL operation the operation's transaction is this one.
        let nested = self.postgres().is_some_and(|pg| pg.in_operation.get());
        if !nested {
            self.execute_batch("BEGIN")?;
        }
        Ok(Tx {
            conn: self,
            done: false,
            nested,
        })
    }
}

/// A transaction: derefs to the connection; rolls back when dropped uncommitted.
pub struct Tx<'c> {
    conn: &'c Conn,
    done: bool,
    /// Part of a pooled PostgreSQL operation's transaction (see [`PgConn::begin_operation`]):
    /// committing is left to the operation's end; dropping it uncommitted rolls the operation
    /// back.
    nested: bool,
}

impl Tx<'_> {
    /// Ends a read-only transaction (a commit).
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn finish(self) -> Result<()> {
        self.commit()
    }

    /// Commits.
    ///
    /// # Errors
    ///
    /// The backend's error (the transaction is then rolled back).
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        if self.nested {
            return Ok(());
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.conn.postgres() {
            Some(pg) if self.nested => pg.rollback_only.set(true),
            // Nothing to report to: the operation already failed (or panicked).
            _ => {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }
}

/// The rows of a query (SQLite streams them; PostgreSQL has them all already).
pub enum Rows<'s> {
    /// SQLite's cursor.
    Sqlite(rusqlite::Rows<'s>),
    /// PostgreSQL's rows and the current one.
    Postgres(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

impl Rows<'_> {
    /// The next row.
    ///
    /// # Errors
    ///
    /// The backend's error.
    #[allow(clippy::should_implement_trait)] // Lends the row: not an `Iterator`.
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Self::Sqlite(rows) => Ok(rows.next()?.map(Row::Sqlite)),
            Self::Postgres(rows, current) => {
                *current = rows.next();
                Ok(current.as_ref().map(Row::Postgres))
            }
        }
    }
}

/// A prepared statement bound to its connection.
pub enum Stmt<'c> {
    /// SQLite's cached statement.
    Sqlite(rusqlite::CachedStatement<'c>),
    /// A PostgreSQL prepared statement.
    Postgres {
        /// The connection.
        conn: &'c PgConn,
        /// The statement.
        statement: postgres::Statement,
    },
}

impl Stmt<'_> {
    /// Runs the statement, returning the number of rows changed.
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        let values = params.values();
        match self {
            Self::Sqlite(s) => Ok(s.execute(sqlite_params(&values))?),
            Self::Postgres { conn, statement } => conn.execute(statement, &values),
        }
    }

    /// The first row mapped by `f`; [`StoreError::NoRows`] when there is none.
    ///
    /// # Errors
    ///
    /// The backend's error or `f`'s.
    pub fn query_row<T, P: Params, F>(&mut self, params: P, f: F) -> Result<T>
    where
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let values = params.values();
        match self {
            Self::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(&values))?;
                match rows.next()? {
                    Some(row) => f(&Row::Sqlite(row)),
                    None => Err(StoreError::NoRows),
                }
            }
            Self::Postgres { conn, statement } => {
                let rows = conn.query(statement, &values)?;
                match rows.first() {
                    Some(row) => f(&Row::Postgres(row)),
                    None => Err(StoreError::NoRows),
                }
            }
        }
    }

    /// Every row mapped by `f`, as an iterator of results (collect it).
    ///
    /// # Errors
    ///
    /// The backend's error (a mapping error shows up in the items).
    pub fn query_map<T, P: Params, F>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>>
    where
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let values = params.values();
        let out: Vec<Result<T>> = match self {
            Self::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(&values))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Sqlite(row)));
                }
                out
            }
            Self::Postgres { conn, statement } => conn
                .query(statement, &values)?
                .iter()
                .map(|row| f(&Row::Postgres(row)))
                .collect(),
        };
        Ok(out.into_iter())
    }

    /// The rows, one at a time (`while let Some(row) = rows.next()?`).
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>> {
        let values = params.values();
        Ok(match self {
            Self::Sqlite(s) => Rows::Sqlite(s.query(sqlite_params(&values))?),
            Self::Postgres { conn, statement } => {
                Rows::Postgres(conn.query(statement, &values)?.into_iter(), None)
            }
        })
    }

    /// Whether the query returns a row.
    ///
    /// # Errors
    ///
    /// The backend's error.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        match self.query_row(params, |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(StoreError::NoRows) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
