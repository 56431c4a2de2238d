//! Certificates and the rustls server configuration.
//!
//! On first start we generate (rcgen) a local root CA, "Relive Local CA <public_host>", and a
//! server certificate signed by it for `public_host` (an IP or DNS SAN as appropriate),
//! `nexus.passport.com`, `login.passport.com` and `localhost`. PEM files live in
//! `<data-dir>/tls/` (keys mode 0600). Later starts load them. If `public_host` changed, only the
//! server certificate is re-issued, by the same CA (rebuilt from its key and name), so clients
//! that already trust the CA keep working. `cert export` hands out `relive-ca.crt`, the HTTP
//! listener publishes it at `/relive-ca.crt`, and [`fingerprint`] is what users compare.
//!
//! The rustls config is built with the ring provider explicitly: the workspace has exactly one.

use rustls::pki_types::pem::PemObject as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Names besides `public_host` that the server certificate covers.
pub const EXTRA_NAMES: [&str; 3] = ["nexus.passport.com", "login.passport.com", "localhost"];

/// Errors generating or loading certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("certificate file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen failed.
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
    /// A PEM file holds no certificate or key.
    #[error("{path} holds no usable PEM item")]
    Pem {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration rejected")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the PEM files in the data directory.
#[derive(Debug, Clone)]
pub struct CertPaths {
    /// CA certificate (the file users import; `cert export` copies it).
    pub ca_cert: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
    /// Server certificate.
    pub server_cert: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
    /// The names the server certificate was issued for, one per line.
    pub server_names: PathBuf,
    /// The CA's common name.
    pub ca_name: PathBuf,
}

impl CertPaths {
    /// The standard layout under `<data_dir>/tls/`.
    #[must_use]
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        Self {
            ca_cert: dir.join("relive-ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            server_names: dir.join("server.names"),
            ca_name: dir.join("ca.name"),
        }
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    crate::secret::write_file(path, text.as_bytes(), private).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Relive");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    params
}

/// The names the server certificate must cover for `public_host`.
fn server_names(public_host: &str) -> Vec<String> {
    let mut names = vec![public_host.to_owned()];
    for extra in EXTRA_NAMES {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    names
}

fn issue_server(
    names: &[String],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What [`ensure_certificates`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// CA and server certificate were generated.
    Created,
    /// The server certificate was re-issued for new names by the existing CA.
    Reissued,
    /// Everything was already in place.
    Loaded,
}

/// Makes sure the CA and a server certificate for `public_host` exist.
///
/// # Errors
///
/// [`TlsError`] on file or generation errors.
pub fn ensure_certificates(paths: &CertPaths, public_host: &str) -> Result<CertStatus, TlsError> {
    let names = server_names(public_host);
    let names_text = names.join("\n");
    if !paths.ca_cert.exists() || !paths.ca_key.exists() {
        let common_name = format!("Relive Local CA {public_host}");
        let params = ca_params(&common_name);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write(&paths.ca_key, &key.serialize_pem(), true)?;
        write(&paths.ca_cert, &cert.pem(), false)?;
        write(&paths.ca_name, &common_name, false)?;
        let issuer = Issuer::new(params, key);
        let (cert, key) = issue_server(&names, &issuer)?;
        write(&paths.server_key, &key, true)?;
        write(&paths.server_cert, &cert, false)?;
        write(&paths.server_names, &names_text, false)?;
        tracing::info!(
            host = public_host,
            "generated local CA and server certificate"
        );
        return Ok(CertStatus::Created);
    }
    let current = std::fs::read_to_string(&paths.server_names).unwrap_or_default();
    if current == names_text && paths.server_cert.exists() && paths.server_key.exists() {
        return Ok(CertStatus::Loaded);
    }
    let key = KeyPair::from_pem(&read(&paths.ca_key)?)?;
    let common_name = read(&paths.ca_name)?;
    let issuer = Issuer::new(ca_params(common_name.trim()), key);
    let (cert, key) = issue_server(&names, &issuer)?;
    write(&paths.server_key, &key, true)?;
    write(&paths.server_cert, &cert, false)?;
    write(&paths.server_names, &names_text, false)?;
    tracing::info!(host = public_host, "re-issued server certificate");
    Ok(CertStatus::Reissued)
}

/// Builds the rustls server configuration from the server certificate and key (chain: server
/// certificate, then the CA).
///
/// # Errors
///
/// [`TlsError`] if files are missing or rustls rejects them.
pub fn server_config(paths: &CertPaths) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem_err = |path: &Path| TlsError::Pem {
        path: path.to_path_buf(),
    };
    let mut chain = Vec::new();
    for path in [&paths.server_cert, &paths.ca_cert] {
        let text = read(path)?;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| pem_err(path))?;
        if certs.is_empty() {
            return Err(pem_err(path));
        }
        chain.extend(certs);
    }
    let key_text = read(&paths.server_key)?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_text.as_bytes())
        .map_err(|_| pem_err(&paths.server_key))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(sha256_first()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The ring provider with its SHA-256 cipher suites (AES-128-GCM, ChaCha20-Poly1305) ahead of
/// the SHA-384 ones (AES-256-GCM), for the server to prefer.
///
/// The key schedule of every handshake (the TLS 1.2 PRF, TLS 1.3 HKDF, the transcript hash)
/// runs on the suite's hash; SHA-256 has CPU instructions on current x86 and ARM, SHA-384 does
/// not, and with a P-256 certificate AES-256 adds no strength over AES-128. Most of a resumed
/// handshake's cost is that hashing, and every Passport login is a new connection.
fn sha256_first() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    // Stable: the provider's order is kept within each group.
    provider.cipher_suites.sort_by_key(|suite| {
        let common = match suite {
            rustls::SupportedCipherSuite::Tls12(s) => &s.common,
            rustls::SupportedCipherSuite::Tls13(s) => &s.common,
        };
        common.hash_provider.algorithm() != rustls::crypto::hash::HashAlgorithm::SHA256
    });
    provider
}

/// Copies the CA certificate PEM to `dest`.
///
/// # Errors
///
/// [`TlsError::Io`] if the CA does not exist yet or `dest` cannot be written.
pub fn export_ca(paths: &CertPaths, dest: &Path) -> Result<(), TlsError> {
    let pem = read(&paths.ca_cert)?;
    write(dest, &pem, false)
}

/// The SHA-256 fingerprint of the (first) certificate in the PEM file at `path`, as
/// certificate viewers show it (`AB:CD:…`): what a user compares before trusting the CA.
///
/// # Errors
///
/// [`TlsError::Io`] if it cannot be read, [`TlsError::Pem`] if it holds no certificate.
pub fn fingerprint(path: &Path) -> Result<String, TlsError> {
    let pem = read(path)?;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| TlsError::Pem {
            path: path.to_path_buf(),
        })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    let pairs: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    Ok(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    async fn handshake(server: Arc<rustls::ServerConfig>, ca_pem: &str, name: &'static str) {
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem));
        let server_task = tokio::spawn(async move {
            let mut tls = acceptor.accept(server_io).await.unwrap();
            tls.write_all(b"hello").await.unwrap();
            tls.shutdown().await.unwrap();
        });
        let name = rustls::pki_types::ServerName::try_from(name).unwrap();
        let mut tls = connector.connect(name, client_io).await.unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        server_task.await.unwrap();
    }

    #[tokio::test]
    async fn certificates_are_generated_once_and_a_client_trusting_the_ca_connects() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::in_data_dir(dir.path());
        assert_eq!(
            ensure_certificates(&paths, "127.0.0.1").unwrap(),
            CertStatus::Created
        );
        let ca = std::fs::read_to_string(&paths.ca_cert).unwrap();
        let server = std::fs::read_to_string(&paths.server_cert).unwrap();
        assert_eq!(
            ensure_certificates(&paths, "127.0.0.1").unwrap(),
            CertStatus::Loaded
        );
        assert_eq!(std::fs::read_to_string(&paths.server_cert).unwrap(), server);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in [&paths.ca_key, &paths.server_key] {
                let mode = std::fs::metadata(key).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
        let config = server_config(&paths).unwrap();
        handshake(Arc::clone(&config), &ca, "login.passport.com").await;
        handshake(config, &ca, "nexus.passport.com").await;

        // A new public host re-issues the server certificate under the same CA.
        assert_eq!(
            ensure_certificates(&paths, "chat.example.org").unwrap(),
            CertStatus::Reissued
        );
        assert_eq!(std::fs::read_to_string(&paths.ca_cert).unwrap(), ca);
        handshake(server_config(&paths).unwrap(), &ca, "chat.example.org").await;

        let exported = dir.path().join("relive-ca.crt");
        export_ca(&paths, &exported).unwrap();
        assert_eq!(std::fs::read_to_string(exported).unwrap(), ca);
    }
}
