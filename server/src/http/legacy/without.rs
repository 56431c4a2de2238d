//! The legacy listener in a build without the `legacy-tls` feature (no OpenSSL): it cannot be
//! configured, and says why.

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{LegacyCertPaths, LegacyTlsError};
use crate::http::HttpService;

/// The legacy listener's acceptor, which this build cannot make: the type has no values, so
/// the server can never hold one.
#[derive(Debug, Clone)]
pub enum LegacyTls {}

impl LegacyTls {
    /// Always [`LegacyTlsError::NotBuilt`].
    ///
    /// # Errors
    ///
    /// Always.
    pub fn from_pem(_chain: &[u8], _key: &[u8]) -> Result<Self, LegacyTlsError> {
        Err(LegacyTlsError::NotBuilt)
    }

    /// Always [`LegacyTlsError::NotBuilt`].
    ///
    /// # Errors
    ///
    /// Always.
    pub fn from_files(_chain: &Path, _key: &Path) -> Result<Self, LegacyTlsError> {
        Err(LegacyTlsError::NotBuilt)
    }
}

/// Always [`LegacyTlsError::NotBuilt`]: this build cannot make the RSA chain.
///
/// # Errors
///
/// Always.
pub fn ensure_certificates(
    _paths: &LegacyCertPaths,
    _public_host: &str,
) -> Result<(), LegacyTlsError> {
    Err(LegacyTlsError::NotBuilt)
}

/// Never runs: no [`LegacyTls`] exists to call it with.
#[allow(
    clippy::unused_async,
    reason = "the same signature as with the feature"
)]
pub async fn serve_legacy_connection(
    _stream: TcpStream,
    _peer: SocketAddr,
    _service: HttpService,
    tls: LegacyTls,
    _cancel: CancellationToken,
) {
    match tls {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuring_the_legacy_listener_says_which_feature_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LegacyCertPaths::in_data_dir(dir.path());
        let err = ensure_certificates(&paths, "chat.example.org").unwrap_err();
        assert!(err.to_string().contains("`legacy-tls`"), "{err}");
        assert!(!paths.ca_cert.exists(), "nothing is written");
        let err = LegacyTls::from_files(&paths.chain, &paths.key).unwrap_err();
        assert!(matches!(err, LegacyTlsError::NotBuilt));
    }
}
