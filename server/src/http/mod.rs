//! The HTTP side of the server: the Passport nexus and login endpoints and the MSN 6
//! `MsgrConfig` document, served over plain HTTP, HTTPS (rustls) and an optional legacy-TLS
//! listener (OpenSSL) for Windows XP.
//!
//! Requests go through an axum [`Router`] ([`routes`]) inside a hyper HTTP/1.1 connection with
//! keep-alive, a header-read timeout and graceful shutdown on cancel. The first request of each
//! connection passes [`lenient`] first, which rewrites the Passport request forms of the era's
//! clients (HTTP/0.9 lines, HTTP/1.0) into HTTP/1.1 and leaves every other request to hyper's
//! strict parser. Every response's header
//! names are written in the case old clients expect ([`case`]): `PassportURLs` exactly,
//! `WWW-Authenticate`, and title case for the rest.
//!
//! Nothing here logs request headers: `Authorization` carries a password or token.
//!
//! # Layout
//!
//! - [`routes`]: the handlers.
//! - [`lenient`]: the Passport request forms of old clients, normalised.
//! - [`case`]: exact header-name case on the wire.
//! - [`tls`]: HTTPS through rustls.
//! - [`legacy`]: TLS 1.0 / 3DES through OpenSSL, and its RSA certificates.

pub mod case;
pub mod legacy;
pub mod lenient;
pub mod routes;
pub mod tls;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::passport::{Endpoints, NexusSettings, PassportService, PassportSettings, Transport};

/// How long a client may take to send a request's headers (hyper's `header_read_timeout`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long in-flight requests may run after shutdown was requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Largest request head (line plus headers) buffered, in bytes (hyper's minimum is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Errors setting up the HTTP side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A `[passport]` setting is invalid.
    #[error(transparent)]
    Settings(#[from] crate::passport::settings::PassportSettingsError),
    /// The `PassportURLs` value is not a valid header value.
    #[error("the PassportURLs value is not a valid HTTP header value")]
    HeaderValue,
}

/// Who sent a request and how; inserted into each request's extensions by the connection shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The listener kind it came through.
    pub transport: Transport,
}

/// What every HTTP connection shares: the router and the Passport service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpService {
    router: Router,
    passport: PassportService,
    nexus: Arc<NexusSettings>,
    passport_urls: Arc<RwLock<routes::NexusAnswers>>,
    website: Arc<RwLock<String>>,
    lenient: Arc<lenient::PassportPaths>,
}

impl HttpService {
    /// Builds the service: validates `settings` and resolves the `PassportURLs` value against
    /// `endpoints` (the advertised host and the listeners' ports).
    ///
    /// # Errors
    ///
    /// [`HttpError`] for invalid settings.
    pub fn new(
        passport: PassportService,
        settings: &PassportSettings,
        endpoints: &Endpoints,
    ) -> Result<Self, HttpError> {
        settings.validate()?;
        let urls = passport_urls(&settings.nexus, endpoints)?;
        let passport_urls = Arc::new(RwLock::new(urls));
        let state = routes::RouteState::new(passport.clone(), Arc::clone(&passport_urls));
        let router = routes::router(state, &settings.nexus.path);
        Ok(Self {
            router,
            passport,
            nexus: Arc::new(settings.nexus.clone()),
            passport_urls,
            website: Arc::new(RwLock::new(endpoints.website())),
            lenient: Arc::new(routes::passport_paths(&settings.nexus.path)),
        })
    }

    /// Re-resolves the `PassportURLs` value and the website URL against `endpoints`, e.g. once the listeners are
    /// bound and their real ports are known (all clones of this service see the change).
    ///
    /// # Errors
    ///
    /// [`HttpError::HeaderValue`] if the value is not a valid header value (the old one stays).
    pub fn set_endpoints(&self, endpoints: &Endpoints) -> Result<(), HttpError> {
        let urls = passport_urls(&self.nexus, endpoints)?;
        *self
            .passport_urls
            .write()
            .unwrap_or_else(PoisonError::into_inner) = urls;
        *self.website.write().unwrap_or_else(PoisonError::into_inner) = endpoints.website();
        Ok(())
    }

    /// This server's plain-HTTP base URL ([`Endpoints::website`]) as last set.
    #[must_use]
    pub fn website(&self) -> String {
        self.website
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current `PassportURLs` value, as the HTTPS listener answers it.
    #[must_use]
    pub fn passport_urls(&self) -> HeaderValue {
        self.passport_urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .tls
            .clone()
    }

    /// The Passport service the routes use (the NS consumes tickets through it).
    #[must_use]
    pub fn passport(&self) -> &PassportService {
        &self.passport
    }

    /// Adds more routes (the website) next to the Passport ones.
    #[must_use]
    pub fn merge(mut self, other: Router) -> Self {
        self.router = self.router.merge(other);
        self
    }
}

fn passport_urls(
    nexus: &NexusSettings,
    endpoints: &Endpoints,
) -> Result<routes::NexusAnswers, HttpError> {
    let value = |transport| {
        HeaderValue::from_str(&nexus.passport_urls_for(endpoints, transport))
            .map_err(|_| HttpError::HeaderValue)
    };
    Ok(routes::NexusAnswers {
        tls: value(Transport::Tls)?,
        legacy: value(Transport::LegacyTls)?,
        plain: value(Transport::Plain)?,
    })
}

/// One plain-HTTP connection: serves requests until the client closes, a timeout hits, or
/// `cancel` fires (then in-flight requests get [`SHUTDOWN_GRACE`] to finish).
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: HttpService,
    cancel: CancellationToken,
) {
    let peer = Peer {
        addr: peer,
        transport: Transport::Plain,
    };
    serve_io(stream, peer, service, cancel).await;
}

/// Serves HTTP/1.1 over any byte stream (plain TCP, or a TLS stream after its handshake), the
/// first request normalised by [`lenient`].
pub(crate) async fn serve_io<I>(io: I, peer: Peer, service: HttpService, cancel: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = tokio::select! {
        () = cancel.cancelled() => return,
        result = lenient::normalise(io, &service.lenient) => match result {
            Ok(io) => io,
            Err(error) => {
                tracing::debug!(%error, "http connection closed before its first request");
                return;
            }
        },
    };
    let cases = case::response_cases().await;
    let tower = TowerToHyperService::new(service.router);
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer);
        let call = hyper::service::Service::call(&tower, req);
        async move {
            let mut response: Response<Body> = match call.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            response.extensions_mut().extend(cases.clone());
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "http connection ended with an error");
            }
        }
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            if let Ok(Err(error)) = tokio::time::timeout(SHUTDOWN_GRACE, conn).await {
                tracing::debug!(%error, "http connection ended with an error during shutdown");
            }
        }
    }
}
