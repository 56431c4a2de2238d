//! HTTPS through rustls: the server certificate generated at first start ([`crate::tls`]),
//! TLS 1.2 and 1.3 with the ring provider's default suites, and ALPN `http/1.1` (clients that
//! send no ALPN, like WinINet on old Windows, are served the same).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{HttpService, Peer, serve_io};
use crate::passport::Transport;
use crate::tls::{CertPaths, TlsError};

/// How long a client may take to complete a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The acceptor for the HTTPS listener, from the certificate files in `paths`.
///
/// # Errors
///
/// [`TlsError`] if the files are missing or rustls rejects them.
pub fn acceptor(paths: &CertPaths) -> Result<TlsAcceptor, TlsError> {
    let config = crate::tls::server_config(paths)?;
    Ok(acceptor_from_config(&config))
}

/// TLS sessions the HTTPS listener keeps for resumption (TLS 1.2 session ids, TLS 1.3
/// tickets), a few hundred bytes each. Every Passport login opens a new connection; a client
/// that resumes skips the key exchange and the certificate signature, so after a restart the
/// server can serve thousands of clients that each resume (rustls keeps 256 by default).
pub const SESSION_CACHE: usize = 8192;

/// The acceptor for an existing rustls configuration, with ALPN `http/1.1` added and a
/// [`SESSION_CACHE`]-entry session cache.
#[must_use]
pub fn acceptor_from_config(config: &Arc<rustls::ServerConfig>) -> TlsAcceptor {
    let mut config = rustls::ServerConfig::clone(config);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    TlsAcceptor::from(Arc::new(config))
}

/// One HTTPS connection: TLS handshake (bounded by [`HANDSHAKE_TIMEOUT`] and `cancel`), then
/// HTTP/1.1 as in [`super::serve_connection`].
pub async fn serve_https_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: HttpService,
    acceptor: TlsAcceptor,
    cancel: CancellationToken,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let tls = tokio::select! {
        () = cancel.cancelled() => return,
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
    };
    let peer = Peer {
        addr: peer,
        transport: Transport::Tls,
    };
    serve_io(tls, peer, service, cancel).await;
}
