//! The legacy-TLS listener for Windows XP: OpenSSL (vendored, built with its weak-cipher
//! option) offering TLS 1.0 – 1.3, including `TLS_RSA_WITH_3DES_EDE_CBC_SHA` with RSA key
//! exchange, which is what XP's SChannel/WinINet can speak and rustls cannot.
//!
//! XP also cannot verify ECDSA certificates, and the main certificate chain ([`crate::tls`]) is
//! ECDSA. So this listener uses its own RSA-2048 / SHA-256 chain: a "Relive Legacy CA" root and
//! a server certificate for the same names, generated on first use in `<data-dir>/tls/legacy/`
//! ([`ensure_certificates`]); XP users import `legacy-ca.crt`. Operators can point
//! `passport.legacy_cert` / `passport.legacy_key` at their own RSA chain instead.
//!
//! Offered, best first (OpenSSL names):
//!
//! ```text
//! TLS 1.3: TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256
//! TLS 1.0–1.2: ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384,
//!   ECDHE-RSA-CHACHA20-POLY1305, ECDHE-RSA-AES128-SHA, ECDHE-RSA-AES256-SHA,
//!   AES128-SHA, AES256-SHA, DES-CBC3-SHA (= TLS_RSA_WITH_3DES_EDE_CBC_SHA)
//! ```
//!
//! The GCM/ChaCha suites need TLS 1.2; the CBC ones work from TLS 1.0. OpenSSL's security level
//! is 0 on this listener only (TLS 1.0 signs with MD5+SHA-1, and 3DES is below level 1).
//!
//! OpenSSL is in the binary only with the `legacy-tls` cargo feature (on by default; the
//! OpenSSL side is `engine`). Without it (`--no-default-features`, e.g. where OpenSSL will not
//! cross-build) [`LegacyTls`] has no values and configuring `passport.legacy_tls` is an error
//! that names the feature.

use std::path::{Path, PathBuf};

#[cfg(feature = "legacy-tls")]
mod engine;
#[cfg(not(feature = "legacy-tls"))]
mod without;

#[cfg(feature = "legacy-tls")]
pub use engine::{LEGACY_CIPHERS, LegacyTls, ensure_certificates, serve_legacy_connection};
#[cfg(not(feature = "legacy-tls"))]
pub use without::{LegacyTls, ensure_certificates, serve_legacy_connection};

/// Errors setting up the legacy listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyTlsError {
    /// A certificate or key file could not be read or written.
    #[error("legacy TLS file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// OpenSSL refused the configuration, a certificate or a key.
    #[cfg(feature = "legacy-tls")]
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// This binary was built without the `legacy-tls` feature (no OpenSSL in it).
    #[cfg(not(feature = "legacy-tls"))]
    #[error(
        "this relive-server was built without legacy TLS (cargo feature `legacy-tls`): \
         unset passport.legacy_tls, or use a build with the feature"
    )]
    NotBuilt,
    /// The PEM holds no certificate.
    #[error("no certificate in the legacy certificate file")]
    NoCertificate,
    /// The key is not RSA: RSA key exchange (what XP needs) is impossible.
    #[error("the legacy listener needs an RSA key")]
    NotRsa,
}

/// Paths of the legacy RSA chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCertPaths {
    /// The root users import on XP.
    pub ca_cert: PathBuf,
    /// The root's key.
    pub ca_key: PathBuf,
    /// Server certificate followed by the root (PEM chain).
    pub chain: PathBuf,
    /// Server key.
    pub key: PathBuf,
}

impl LegacyCertPaths {
    /// The standard layout under `<data_dir>/tls/legacy/`.
    #[must_use]
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls").join("legacy");
        Self {
            ca_cert: dir.join("legacy-ca.crt"),
            ca_key: dir.join("legacy-ca.key"),
            chain: dir.join("legacy-server.crt"),
            key: dir.join("legacy-server.key"),
        }
    }
}

#[cfg(feature = "legacy-tls")]
fn read(path: &Path) -> Result<Vec<u8>, LegacyTlsError> {
    std::fs::read(path).map_err(|source| LegacyTlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(feature = "legacy-tls")]
fn write(path: &Path, data: &[u8], private: bool) -> Result<(), LegacyTlsError> {
    crate::secret::write_file(path, data, private).map_err(|source| LegacyTlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}
