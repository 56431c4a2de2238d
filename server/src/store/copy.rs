//! `relive-server migrate-store`: copies a SQLite database into an empty PostgreSQL database,
//! keeping every id, and proves the copy complete.
//!
//! Generic over the schema, so tables that later migrations add are copied with no new code:
//! 1. The source is brought to this binary's schema version, then read inside one read
//!    transaction (one consistent snapshot). The target is migrated to the same version and must
//!    hold no rows at all (no silent merge).
//! 2. The two sides must have the same tables with the same columns (the numbered migrations of
//!    both dialects guarantee it; a difference is an error naming it).
//! 3. Tables are copied parents first (the order comes from SQLite's foreign keys), all in **one
//!    PostgreSQL transaction**, ids included: the token cipher binds the account id, and ids are
//!    referenced everywhere. Identity sequences then continue after the largest id.
//! 4. Before committing, each table's row count and a SHA-256 over its rows (in primary-key
//!    order, each value encoded with a type tag and length) are computed on both sides and must
//!    match; any difference rolls everything back. [`verify`] runs the same comparison later.
//!
//! `secret.key` is not in the database: the PostgreSQL-backed server needs the same file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ring::digest::{Context, SHA256};

use super::StoreError;
use super::db::{Conn, PgConn, Value, ValueRef};
use super::migrations::{self, PG_VERSION_TABLE};

/// Rows per multi-row `INSERT` (PostgreSQL takes at most 65 535 parameters per statement).
const BATCH_PARAMS: usize = 30_000;

/// Errors of the copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target already holds data.
    #[error(
        "the target database is not empty (table {table} has rows); migrate-store only fills an empty database"
    )]
    NotEmpty {
        /// A table with rows.
        table: String,
    },
    /// The two schemas differ.
    #[error("the schemas differ: {0}")]
    Schema(String),
    /// The copy does not match the source.
    #[error(
        "table {table} differs after the copy: source {source_rows} rows ({source_digest}), target {target_rows} rows ({target_digest})"
    )]
    Mismatch {
        /// The table.
        table: String,
        /// Rows in SQLite.
        source_rows: u64,
        /// Rows in PostgreSQL.
        target_rows: u64,
        /// SQLite's digest.
        source_digest: String,
        /// PostgreSQL's digest.
        target_digest: String,
    },
}

/// One table as copied and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// The table.
    pub name: String,
    /// Rows on each side.
    pub rows: u64,
    /// SHA-256 (hex) of the rows, equal on both sides.
    pub digest: String,
}

/// An owned column value.
#[derive(Debug, Clone)]
enum Owned {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    fn from_ref(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Self::Null,
            ValueRef::Int(i) => Self::Int(i),
            ValueRef::Text(t) => Self::Text(t.to_owned()),
            ValueRef::Blob(b) => Self::Blob(b.to_vec()),
        }
    }

    fn value(&self) -> Value<'_> {
        match self {
            Self::Null => Value::Null,
            Self::Int(i) => Value::Int(*i),
            Self::Text(t) => Value::Text(t),
            Self::Blob(b) => Value::Blob(b),
        }
    }
}

/// Feeds one value into a digest: a tag, then the length and bytes (NULL has neither).
fn digest_value(ctx: &mut Context, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => ctx.update(b"N"),
        ValueRef::Int(i) => {
            ctx.update(b"I");
            ctx.update(&i.to_be_bytes());
        }
        ValueRef::Text(t) => {
            ctx.update(b"T");
            ctx.update(&(t.len() as u64).to_be_bytes());
            ctx.update(t.as_bytes());
        }
        ValueRef::Blob(b) => {
            ctx.update(b"B");
            ctx.update(&(b.len() as u64).to_be_bytes());
            ctx.update(b);
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A table of the schema: its columns (SQLite's order) and primary key.
#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<String>,
    key: Vec<String>,
}

impl Table {
    fn select(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let order = if self.key.is_empty() {
            &self.columns
        } else {
            &self.key
        };
        let order: Vec<String> = order.iter().map(|c| quote(c)).collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            quote(&self.name),
            order.join(", ")
        )
    }
}

/// The SQLite tables in foreign-key order (parents first), with columns and keys.
fn sqlite_tables(conn: &Conn) -> Result<Vec<Table>, CopyError> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = BTreeMap::new();
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in &names {
        let mut columns = Vec::new();
        let mut key = Vec::new();
        for row in conn
            .prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([name.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
        {
            let (column, pk) = row?;
            if pk > 0 {
                key.push((pk, column.clone()));
            }
            columns.push(column);
        }
        key.sort();
        let deps: BTreeSet<String> = conn
            .prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1)")?
            .query_map([name.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        parents.insert(
            name.clone(),
            deps.into_iter().filter(|d| d != name).collect(),
        );
        tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                columns,
                key: key.into_iter().map(|(_, c)| c).collect(),
            },
        );
    }
    // Kahn's algorithm, alphabetical among the ready ones (a stable order).
    let mut ordered = Vec::new();
    let mut done = BTreeSet::new();
    while ordered.len() < names.len() {
        let ready: Vec<String> = names
            .iter()
            .filter(|n| !done.contains(*n))
            .filter(|n| parents[*n].iter().all(|p| done.contains(p)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(CopyError::Schema(
                "the foreign keys form a cycle".to_owned(),
            ));
        }
        for name in ready {
            done.insert(name.clone());
            ordered.push(tables[&name].clone());
        }
    }
    Ok(ordered)
}

/// The PostgreSQL tables (without the version table) and their columns.
fn pg_tables(conn: &Conn) -> Result<BTreeMap<String, BTreeSet<String>>, CopyError> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in conn
        .prepare(
            "SELECT c.table_name::text, c.column_name::text
             FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.table_name <> ?1",
        )?
        .query_map([PG_VERSION_TABLE], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
    {
        let (table, column) = row?;
        out.entry(table).or_default().insert(column);
    }
    Ok(out)
}

/// Checks that both sides have the same tables and columns.
fn same_schema(
    source: &[Table],
    target: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(), CopyError> {
    let names: BTreeSet<&str> = source.iter().map(|t| t.name.as_str()).collect();
    let theirs: BTreeSet<&str> = target.keys().map(String::as_str).collect();
    if names != theirs {
        let only_source: Vec<_> = names.difference(&theirs).collect();
        let only_target: Vec<_> = theirs.difference(&names).collect();
        return Err(CopyError::Schema(format!(
            "tables only in SQLite: {only_source:?}; only in PostgreSQL: {only_target:?}"
        )));
    }
    for table in source {
        let cols: BTreeSet<String> = table.columns.iter().cloned().collect();
        if cols != target[&table.name] {
            return Err(CopyError::Schema(format!(
                "table {} has columns {:?} in SQLite but {:?} in PostgreSQL",
                table.name, cols, target[&table.name]
            )));
        }
    }
    Ok(())
}

/// Row count and digest of `table` on `conn`.
fn summarize(conn: &Conn, table: &Table) -> Result<(u64, String), CopyError> {
    let mut ctx = Context::new(&SHA256);
    let mut rows = 0u64;
    let mut stmt = conn.prepare(&table.select())?;
    let mut cursor = stmt.query([])?;
    while let Some(row) = cursor.next()? {
        for i in 0..table.columns.len() {
            digest_value(&mut ctx, row.get_ref(i)?);
        }
        rows += 1;
    }
    Ok((rows, hex::encode(ctx.finish())))
}

/// Reads every row of `table` (in key order).
fn read_all(conn: &Conn, table: &Table) -> Result<Vec<Vec<Owned>>, CopyError> {
    let n = table.columns.len();
    Ok(conn
        .prepare(&table.select())?
        .query_map([], |r| {
            (0..n).map(|i| Ok(Owned::from_ref(r.get_ref(i)?))).collect()
        })?
        .collect::<Result<_, _>>()?)
}

/// Inserts `rows` into `table` with multi-row `INSERT`s.
fn write_all(conn: &Conn, table: &Table, rows: &[Vec<Owned>]) -> Result<(), CopyError> {
    let n = table.columns.len();
    let per_batch = (BATCH_PARAMS / n.max(1)).max(1);
    let cols: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
    for batch in rows.chunks(per_batch) {
        let mut sql = format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ",
            quote(&table.name),
            cols.join(", ")
        );
        let mut values: Vec<Value<'_>> = Vec::with_capacity(batch.len() * n);
        for (r, row) in batch.iter().enumerate() {
            if r > 0 {
                sql.push(',');
            }
            sql.push('(');
            for (c, v) in row.iter().enumerate() {
                if c > 0 {
                    sql.push(',');
                }
                values.push(v.value());
                sql.push_str(&format!("?{}", values.len()));
            }
            sql.push(')');
        }
        let params: Vec<&dyn super::db::ToValue> = values
            .iter()
            .map(|v| v as &dyn super::db::ToValue)
            .collect();
        conn.prepare(&sql)?.execute(params.as_slice())?;
        if let Some(pg) = conn.postgres() {
            // Batch statements are used once: do not keep them prepared.
            pg.forget(&sql);
        }
    }
    Ok(())
}

/// Moves each identity sequence past the largest id copied.
fn reset_sequences(conn: &Conn) -> Result<(), CopyError> {
    let identities: Vec<(String, String)> = conn
        .prepare(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (table, column) in identities {
        conn.execute_batch(&format!(
            "SELECT setval(pg_get_serial_sequence('{t}', '{c}'),
                           COALESCE((SELECT max({qc}) FROM {qt}), 0) + 1, false)",
            t = quote(&table).replace('\'', "''"),
            c = column.replace('\'', "''"),
            qc = quote(&column),
            qt = quote(&table),
        ))?;
    }
    Ok(())
}

/// Compares every table on both sides; the reports when all match.
fn compare(source: &Conn, target: &Conn, tables: &[Table]) -> Result<Vec<TableReport>, CopyError> {
    let mut reports = Vec::with_capacity(tables.len());
    for table in tables {
        let (source_rows, source_digest) = summarize(source, table)?;
        let (target_rows, target_digest) = summarize(target, table)?;
        if source_rows != target_rows || source_digest != target_digest {
            return Err(CopyError::Mismatch {
                table: table.name.clone(),
                source_rows,
                target_rows,
                source_digest,
                target_digest,
            });
        }
        reports.push(TableReport {
            name: table.name.clone(),
            rows: source_rows,
            digest: source_digest,
        });
    }
    Ok(reports)
}

fn open_source(path: &Path) -> Result<Conn, CopyError> {
    if !path.exists() {
        return Err(CopyError::Schema(format!(
            "no SQLite database at {}",
            path.display()
        )));
    }
    let conn = rusqlite::Connection::open(path).map_err(StoreError::from)?;
    conn.busy_timeout(super::BUSY_TIMEOUT)
        .map_err(StoreError::from)?;
    let mut conn = Conn::Sqlite(conn);
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// Both databases at this binary's schema version, and the tables (checked to be the same on
/// both sides) in copy order.
fn open_both(sqlite: &Path, url: &str) -> Result<(Conn, Conn, Vec<Table>), CopyError> {
    let source = open_source(sqlite)?;
    let mut target = Conn::Postgres(Box::new(PgConn::connect(url)?));
    migrations::migrate(&mut target)?;
    let tables = sqlite_tables(&source)?;
    same_schema(&tables, &pg_tables(&target)?)?;
    Ok((source, target, tables))
}

/// Copies the SQLite database at `sqlite` into the empty PostgreSQL database at `url` and
/// verifies it (see the module docs). Blocking: run it on its own thread (the PostgreSQL client
/// must not run inside the Tokio runtime).
///
/// # Errors
///
/// [`CopyError`]; on any error nothing stays written in PostgreSQL (beyond the empty schema).
pub fn copy_to_postgres(sqlite: &Path, url: &str) -> Result<Vec<TableReport>, CopyError> {
    let (mut source, mut target, tables) = open_both(sqlite, url)?;
    // One snapshot of the source for reading, copying and comparing.
    let snapshot = source.transaction()?;
    let tx = target.transaction()?;
    for table in &tables {
        if tx
            .prepare(&format!("SELECT 1 FROM {} LIMIT 1", quote(&table.name)))?
            .exists([])?
        {
            return Err(CopyError::NotEmpty {
                table: table.name.clone(),
            });
        }
    }
    for table in &tables {
        let rows = read_all(&snapshot, table)?;
        write_all(&tx, table, &rows)?;
    }
    reset_sequences(&tx)?;
    let reports = compare(&snapshot, &tx, &tables)?;
    tx.commit()?;
    snapshot.finish()?;
    Ok(reports)
}

/// Compares a SQLite database with a PostgreSQL one table by table (row counts and digests),
/// as [`copy_to_postgres`] does before committing.
///
/// # Errors
///
/// [`CopyError::Mismatch`] naming the first table that differs, or another [`CopyError`].
pub fn verify(sqlite: &Path, url: &str) -> Result<Vec<TableReport>, CopyError> {
    let (mut source, mut target, tables) = open_both(sqlite, url)?;
    let snapshot = source.transaction()?;
    let tx = target.transaction()?;
    let reports = compare(&snapshot, &tx, &tables)?;
    tx.finish()?;
    snapshot.finish()?;
    Ok(reports)
}
