//! The OpenSSL side of the legacy listener (feature `legacy-tls`): the RSA chain, the
//! acceptor and the connection.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVersion};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{LegacyCertPaths, LegacyTlsError, read, write};
use crate::http::tls::HANDSHAKE_TIMEOUT;
use crate::http::{HttpService, Peer, serve_io};
use crate::passport::Transport;

/// TLS 1.0–1.2 cipher list of the legacy listener (see the module docs).
pub const LEGACY_CIPHERS: &str = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA:\
DES-CBC3-SHA:@SECLEVEL=0";

/// 2020-01-01 and 2045-01-01 as Unix seconds: the validity window of the main chain too.
const NOT_BEFORE: i64 = 1_577_836_800;
const NOT_AFTER: i64 = 2_366_841_600;

fn certificate(
    common_name: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    names: &[String],
) -> Result<X509, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", common_name)?;
    name.append_entry_by_text("O", "Relive")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&*name, |(cert, _)| cert.subject_name()))?;
    b.set_pubkey(key)?;
    let (not_before, not_after) = (
        Asn1Time::from_unix(NOT_BEFORE)?,
        Asn1Time::from_unix(NOT_AFTER)?,
    );
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    let ski =
        SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))?;
    b.append_extension(ski)?;
    if issuer.is_none() {
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
    } else {
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        // keyEncipherment: RSA key exchange encrypts the pre-master secret to this key.
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let mut san = SubjectAlternativeName::new();
        for n in names {
            if n.parse::<std::net::IpAddr>().is_ok() {
                san.ip(n);
            } else {
                san.dns(n);
            }
        }
        let san = san.build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))?;
        b.append_extension(san)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))?;
        b.append_extension(aki)?;
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())?;
    Ok(b.build())
}

fn rsa_key() -> Result<PKey<Private>, ErrorStack> {
    PKey::from_rsa(Rsa::generate(2048)?)
}

/// Makes sure the legacy RSA chain exists for `public_host` (plus the names of
/// [`crate::tls::EXTRA_NAMES`]); generates the root and the server certificate if either is
/// missing. Existing files are left alone.
///
/// # Errors
///
/// [`LegacyTlsError`] on file or OpenSSL errors.
pub fn ensure_certificates(
    paths: &LegacyCertPaths,
    public_host: &str,
) -> Result<(), LegacyTlsError> {
    if [&paths.ca_cert, &paths.ca_key, &paths.chain, &paths.key]
        .iter()
        .all(|p| p.exists())
    {
        return Ok(());
    }
    let mut names = vec![public_host.to_owned()];
    names.extend(
        crate::tls::EXTRA_NAMES
            .iter()
            .filter(|n| **n != public_host)
            .map(|n| (*n).to_owned()),
    );
    let ca_key = rsa_key()?;
    let ca = certificate(
        &format!("Relive Legacy CA {public_host}"),
        &ca_key,
        None,
        &[],
    )?;
    let key = rsa_key()?;
    let cert = certificate(public_host, &key, Some((&ca, &ca_key)), &names)?;
    let mut chain = cert.to_pem()?;
    chain.extend(ca.to_pem()?);
    write(&paths.ca_key, &ca_key.private_key_to_pem_pkcs8()?, true)?;
    write(&paths.key, &key.private_key_to_pem_pkcs8()?, true)?;
    write(&paths.ca_cert, &ca.to_pem()?, false)?;
    write(&paths.chain, &chain, false)?;
    tracing::info!(
        host = public_host,
        "generated the legacy (RSA) CA and server certificate"
    );
    Ok(())
}

/// The legacy listener's OpenSSL acceptor. Cheap to clone.
#[derive(Clone)]
pub struct LegacyTls {
    acceptor: Arc<SslAcceptor>,
}

impl std::fmt::Debug for LegacyTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacyTls")
    }
}

impl LegacyTls {
    /// An acceptor from a PEM certificate chain (server certificate first) and an RSA key.
    ///
    /// # Errors
    ///
    /// [`LegacyTlsError`] if the PEM is unusable, the key is not RSA or does not match.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, LegacyTlsError> {
        let key = PKey::private_key_from_pem(key)?;
        if key.rsa().is_err() {
            return Err(LegacyTlsError::NotRsa);
        }
        let mut certs = X509::stack_from_pem(chain)?.into_iter();
        let leaf = certs.next().ok_or(LegacyTlsError::NoCertificate)?;
        let mut b = SslAcceptor::mozilla_intermediate(SslMethod::tls_server())?;
        b.set_security_level(0);
        b.set_min_proto_version(Some(SslVersion::TLS1))?;
        b.set_cipher_list(LEGACY_CIPHERS)?;
        b.set_certificate(&leaf)?;
        for extra in certs {
            b.add_extra_chain_cert(extra)?;
        }
        b.set_private_key(&key)?;
        b.check_private_key()?;
        Ok(Self {
            acceptor: Arc::new(b.build()),
        })
    }

    /// An acceptor from PEM files.
    ///
    /// # Errors
    ///
    /// As [`Self::from_pem`], or if a file cannot be read.
    pub fn from_files(chain: &Path, key: &Path) -> Result<Self, LegacyTlsError> {
        Self::from_pem(&read(chain)?, &read(key)?)
    }
}

/// One connection on the legacy listener: OpenSSL handshake (bounded by
/// [`HANDSHAKE_TIMEOUT`] and `cancel`), then HTTP/1.1 as on the other listeners.
pub async fn serve_legacy_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: HttpService,
    tls: LegacyTls,
    cancel: CancellationToken,
) {
    let stream = match Ssl::new(tls.acceptor.context())
        .and_then(|ssl| tokio_openssl::SslStream::new(ssl, stream))
    {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "legacy TLS setup failed");
            return;
        }
    };
    let mut stream = stream;
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept());
    tokio::select! {
        () = cancel.cancelled() => return,
        result = handshake => match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "legacy TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("legacy TLS handshake timed out");
                return;
            }
        },
    }
    if let Some(cipher) = stream.ssl().current_cipher() {
        tracing::debug!(
            version = stream.ssl().version_str(),
            cipher = cipher.name(),
            "legacy TLS established"
        );
    }
    let peer = Peer {
        addr: peer,
        transport: Transport::LegacyTls,
    };
    serve_io(stream, peer, service, cancel).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{CertPaths, ensure_certificates as ensure_main_certificates};

    #[test]
    fn legacy_certificates_are_rsa_and_a_non_rsa_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LegacyCertPaths::in_data_dir(dir.path());
        ensure_certificates(&paths, "chat.example.org").unwrap();
        let chain = std::fs::read(&paths.chain).unwrap();
        ensure_certificates(&paths, "chat.example.org").unwrap();
        assert_eq!(
            std::fs::read(&paths.chain).unwrap(),
            chain,
            "existing files are kept"
        );
        let certs = openssl::x509::X509::stack_from_pem(&chain).unwrap();
        assert_eq!(certs.len(), 2);
        let key = certs[0].public_key().unwrap();
        assert_eq!(key.rsa().unwrap().size() * 8, 2048);
        let sans: Vec<String> = certs[0]
            .subject_alt_names()
            .unwrap()
            .iter()
            .filter_map(|n| n.dnsname().map(str::to_owned))
            .collect();
        assert!(sans.contains(&"chat.example.org".to_owned()));
        assert!(sans.contains(&"login.passport.com".to_owned()));
        assert!(certs[0].verify(&certs[1].public_key().unwrap()).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in [&paths.ca_key, &paths.key] {
                let mode = std::fs::metadata(key).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }

        // The main (ECDSA) chain cannot serve TLS_RSA_* suites.
        let main = CertPaths::in_data_dir(dir.path());
        ensure_main_certificates(&main, "127.0.0.1").unwrap();
        let err = LegacyTls::from_files(&main.server_cert, &main.server_key).unwrap_err();
        assert!(matches!(err, LegacyTlsError::NotRsa));
    }
}
