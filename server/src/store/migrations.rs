//! Schema migrations: numbered SQL files applied in order, one set per backend.
//!
//! Migration `n` (1-based) lives in `migrations/000n_*.sql` (SQLite) and
//! `migrations/pg/000n_*.sql` (PostgreSQL, the same change in that dialect), both compiled into
//! the binary with `include_str!`, so a deployed server never depends on files next to it. SQLite
//! tracks the version with `PRAGMA user_version`, PostgreSQL in the one-row table
//! `relive_schema`. Each pending migration runs in its own transaction together with the version
//! bump, so a crash leaves the database at a whole version. A database whose version is newer
//! than this binary knows is refused instead of being touched. On PostgreSQL an advisory lock
//! keeps two nodes starting together from migrating at once.

use super::StoreError;
use super::db::Conn;

/// The SQLite migrations, in order. Index `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_searchable.sql"),
    include_str!("migrations/0003_placeholders.sql"),
    include_str!("migrations/0004_guids.sql"),
    include_str!("migrations/0005_website.sql"),
    include_str!("migrations/0006_reset_codes.sql"),
    include_str!("migrations/0007_mail_pages.sql"),
    include_str!("migrations/0008_history.sql"),
];

/// The PostgreSQL migrations: the same numbers, the same schema, PostgreSQL's dialect.
const PG_MIGRATIONS: &[&str] = &[
    include_str!("migrations/pg/0001_init.sql"),
    include_str!("migrations/pg/0002_searchable.sql"),
    include_str!("migrations/pg/0003_placeholders.sql"),
    include_str!("migrations/pg/0004_guids.sql"),
    include_str!("migrations/pg/0005_website.sql"),
    include_str!("migrations/pg/0006_reset_codes.sql"),
    include_str!("migrations/pg/0007_mail_pages.sql"),
    include_str!("migrations/pg/0008_history.sql"),
];

const _: () = assert!(
    MIGRATIONS.len() == PG_MIGRATIONS.len(),
    "every migration needs its PostgreSQL twin"
);

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The PostgreSQL table holding the schema version (not part of the copied data).
pub const PG_VERSION_TABLE: &str = "relive_schema";

/// Key of the advisory lock held while migrating a PostgreSQL database ("relive" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x0000_7265_6c69_7665;

/// The schema version of the database behind `conn`.
///
/// # Errors
///
/// The backend's error.
pub fn version(conn: &Conn) -> Result<u32, StoreError> {
    match conn {
        Conn::Sqlite(c) => Ok(c.pragma_query_value(None, "user_version", |row| row.get(0))?),
        Conn::Postgres(_) => {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {PG_VERSION_TABLE} (version BIGINT NOT NULL);
                 INSERT INTO {PG_VERSION_TABLE} (version)
                     SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {PG_VERSION_TABLE})"
            ))?;
            conn.query_row(
                &format!("SELECT version FROM {PG_VERSION_TABLE}"),
                [],
                |r| r.get(0),
            )
        }
    }
}

/// Brings `conn` up to [`SCHEMA_VERSION`], returning the version found before.
///
/// # Errors
///
/// [`StoreError::TooNew`] if the database was written by a newer binary, or the error of a
/// failing migration (the transaction is rolled back).
pub(crate) fn migrate(conn: &mut Conn) -> Result<u32, StoreError> {
    if conn.is_postgres() {
        conn.query_row("SELECT pg_advisory_lock(?1)", [PG_MIGRATION_LOCK], |_| {
            Ok(())
        })?;
        let result = migrate_locked(conn);
        let unlocked = conn.query_row("SELECT pg_advisory_unlock(?1)", [PG_MIGRATION_LOCK], |_| {
            Ok(())
        });
        let found = result?;
        unlocked?;
        Ok(found)
    } else {
        migrate_locked(conn)
    }
}

fn migrate_locked(conn: &mut Conn) -> Result<u32, StoreError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let set = if conn.is_postgres() {
        PG_MIGRATIONS
    } else {
        MIGRATIONS
    };
    for (index, sql) in set.iter().enumerate().skip(found as usize) {
        let version = index as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration {
                version,
                source: Box::new(source),
            })?;
        match tx.sqlite() {
            Some(c) => c.pragma_update(None, "user_version", version)?,
            None => {
                tx.execute(
                    &format!("UPDATE {PG_VERSION_TABLE} SET version = ?1"),
                    [i64::from(version)],
                )?;
            }
        }
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(found)
}
