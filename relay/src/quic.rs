//! QUIC endpoints for the relay ↔ companion-agent connection (quinn over rustls with ring,
//! the workspace's only crypto provider, built with `builder_with_provider`).
//!
//! The relay presents a certificate (generated with rcgen on first start, or loaded); the
//! agent trusts exactly the certificates it is given (the relay's own, or the server's
//! exported CA), never the system roots. The agent sends keep-alives every
//! [`KEEP_ALIVE`] so home NATs that expire idle UDP mappings after 30 s keep the path open.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
#[cfg(feature = "relay")]
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::CertificateDer;
#[cfg(feature = "relay")]
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

pub use crate::proto::ALPN;
/// Agent keep-alive interval (≤ 15 s, P2P.md §4.3).
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Idle time after which either side drops the connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-stream flow-control window: large enough for > 1 Gbit/s on a LAN-like RTT.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// Connection flow-control window.
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Connection attempts the relay keeps in its handshake queue at once.
#[cfg(feature = "relay")]
const MAX_INCOMING: usize = 256;

/// Why a QUIC endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// Certificate generation failed.
    #[cfg(feature = "relay")]
    #[error("certificate generation failed")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was rejected.
    #[error("TLS configuration rejected")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration cannot be used for QUIC.
    #[error("TLS configuration unusable for QUIC")]
    NoInitialCipherSuite,
    /// Binding the endpoint to its socket failed.
    #[error("QUIC endpoint I/O")]
    Io(#[from] std::io::Error),
}

/// The relay's certificate and key.
#[cfg(feature = "relay")]
pub struct Identity {
    /// Certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

#[cfg(feature = "relay")]
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certs", &self.certs.len())
            .field("key", &"***")
            .finish()
    }
}

#[cfg(feature = "relay")]
impl Identity {
    /// A fresh self-signed certificate for `names` (host names or IP addresses).
    ///
    /// # Errors
    ///
    /// [`QuicError::Certificate`].
    pub fn self_signed(names: &[String]) -> Result<Self, QuicError> {
        let certified = rcgen::generate_simple_self_signed(names.to_vec())?;
        Ok(Self {
            certs: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                certified.signing_key.serialize_der(),
            )),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport(keep_alive: Option<Duration>) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(keep_alive)
        .stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into())
        .send_window(u64::from(CONNECTION_WINDOW));
    // 30 s always fits quinn's idle-timeout range.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    Arc::new(transport)
}

#[cfg(feature = "relay")]
/// The relay side's QUIC configuration.
///
/// # Errors
///
/// [`QuicError::Tls`] for an unusable key, [`QuicError::NoInitialCipherSuite`].
pub fn server_config(identity: Identity) -> Result<quinn::ServerConfig, QuicError> {
    server_config_with_alpn(identity, &[ALPN])
}

#[cfg(feature = "relay")]
/// [`server_config`] offering the application protocols `alpn` (a standalone relay offers
/// [`ALPN`] and [`crate::control::ALPN`] on one endpoint; see [`negotiated_alpn`]).
///
/// # Errors
///
/// As [`server_config`].
pub fn server_config_with_alpn(
    identity: Identity,
    alpn: &[&[u8]],
) -> Result<quinn::ServerConfig, QuicError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.certs, identity.key)?;
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let crypto = QuicServerConfig::try_from(tls).map_err(|_| QuicError::NoInitialCipherSuite)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config
        .transport_config(transport(None))
        .max_incoming(MAX_INCOMING);
    Ok(config)
}

/// The agent side's QUIC configuration, trusting exactly `trusted`.
///
/// # Errors
///
/// [`QuicError::Tls`] if a certificate is unusable as a trust anchor.
pub fn client_config(
    trusted: &[CertificateDer<'static>],
) -> Result<quinn::ClientConfig, QuicError> {
    client_config_with_alpn(trusted, ALPN)
}

/// [`client_config`] for the application protocol `alpn`.
///
/// # Errors
///
/// As [`client_config`].
pub fn client_config_with_alpn(
    trusted: &[CertificateDer<'static>],
    alpn: &[u8],
) -> Result<quinn::ClientConfig, QuicError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.clone())?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|_| QuicError::NoInitialCipherSuite)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(Some(KEEP_ALIVE)));
    Ok(config)
}

#[cfg(feature = "relay")]
/// The application protocol negotiated on `connection` (`None` if there was none).
pub fn negotiated_alpn(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

#[cfg(feature = "relay")]
/// A relay endpoint on an already-bound UDP socket.
///
/// # Errors
///
/// [`QuicError::Io`] (also when called outside a tokio runtime).
pub fn server_endpoint(
    config: quinn::ServerConfig,
    socket: UdpSocket,
) -> Result<quinn::Endpoint, QuicError> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for QUIC"))?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        runtime,
    )?)
}

/// An agent endpoint on an already-bound UDP socket.
///
/// # Errors
///
/// [`QuicError::Io`] (also when called outside a tokio runtime).
pub fn client_endpoint(
    config: quinn::ClientConfig,
    socket: UdpSocket,
) -> Result<quinn::Endpoint, QuicError> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for QUIC"))?;
    let mut endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}
