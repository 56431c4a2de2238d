//! The data directory: what `serve` sets up on first start and every command opens.
//!
//! ```text
//! <data-dir>/relive.toml      commented configuration (written once)
//! <data-dir>/relive.db        SQLite database (+ -wal, -shm), unless `[store] url` names PostgreSQL
//! <data-dir>/secret.key       server key encrypting access tokens (0600)
//! <data-dir>/tls/             local CA and server certificate (keys 0600)
//! ```

use std::path::Path;

use crate::Error;
use crate::config::{Settings, write_default_file};
use crate::secret::ServerKey;
use crate::store::Store;
use crate::tls::{CertPaths, CertStatus, ensure_certificates};

/// File name of the server key.
pub const KEY_FILE: &str = "secret.key";

/// Creates the data directory (owner-only on Unix) if needed.
///
/// # Errors
///
/// [`Error::Io`].
pub fn create_dir(data_dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(data_dir).map_err(|source| Error::Io {
        what: "creating the data directory",
        source,
    })
}

/// Creates the directory if needed, loads or creates the server key, and opens the database.
/// Enough for the `user` and `token` commands.
///
/// # Errors
///
/// Any [`Error`] from the steps above.
pub async fn open_store(settings: &Settings) -> Result<Store, Error> {
    create_dir(&settings.data_dir)?;
    let key = ServerKey::load_or_create(&settings.key_path())?;
    Ok(match &settings.store_url {
        Some(url) => Store::open_postgres(url, key, settings.store_options()).await?,
        None => Store::open(&settings.database_path(), key, settings.store_options()).await?,
    })
}

/// First-start setup for `serve`: [`open_store`] plus the commented `relive.toml` and the
/// certificates. Returns the store and what happened to the certificates.
///
/// # Errors
///
/// Any [`Error`] from the steps above.
pub async fn prepare(settings: &Settings) -> Result<(Store, CertStatus), Error> {
    let store = open_store(settings).await?;
    if write_default_file(&settings.data_dir)? {
        tracing::info!(dir = %settings.data_dir.display(), "wrote default relive.toml");
    }
    let paths = CertPaths::in_data_dir(&settings.data_dir);
    let host = settings.public_host.clone();
    let status = tokio::task::spawn_blocking(move || ensure_certificates(&paths, &host))
        .await
        .map_err(|e| Error::Store(e.into()))??;
    Ok((store, status))
}
