//! Schema migrations: numbered SQL files applied in order, tracked with `PRAGMA user_version`.
//!
//! Migration `n` (1-based) lives in `migrations/000n_*.sql` and is compiled into the binary with
//! `include_str!`, so a deployed server never depends on files next to it. Each pending migration
//! runs in its own transaction together with the `user_version` bump, so a crash leaves the
//! database at a whole version. A database whose version is newer than this binary knows is
//! refused instead of being touched.

use rusqlite::Connection;

use super::StoreError;

/// The migrations, in order. Index `i` brings the schema from version `i` to `i + 1`.
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

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings `conn` up to [`SCHEMA_VERSION`], returning the version found before.
///
/// # Errors
///
/// [`StoreError::TooNew`] if the database was written by a newer binary, or the SQLite error of a
/// failing migration (the transaction is rolled back).
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(found)
}
