//! The I/O shell: accept loops, the generic connection driver, and one entry point per
//! connection kind.
//!
//! Every connection runs in a task on a shared [`TaskTracker`](tokio_util::task::TaskTracker)
//! with its place in its listener's pool ([`accept`], [`crate::limits::connections`]). On
//! shutdown the accept loops stop, HTTP connections' child [`CancellationToken`]s are
//! cancelled, NS and SB connections get [`crate::hub::Event::Shutdown`] through their outboxes,
//! and [`crate::run`] waits for every task before closing the store.
//!
//! - [`accept`]: the accept loops.
//! - [`conn`]: the driver that turns a socket into commands for a [`conn::Service`] and writes
//!   its replies; the NS ([`crate::notification`]) and SB ([`crate::switchboard`]) plug in here.
//! - [`serve_http_connection`], [`serve_https_connection`] and [`serve_legacy_connection`] are
//!   the HTTP entry points (over [`crate::http`]).

pub mod accept;
pub mod conn;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::Context;

pub(crate) use accept::accept_loop;

/// Which listener a connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Dispatch / notification server.
    Ns,
    /// Switchboard.
    Sb,
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
    /// Legacy TLS (Windows XP).
    Legacy,
}

impl Kind {
    /// Short name for logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Sb => "sb",
            Self::Http => "http",
            Self::Https => "https",
            Self::Legacy => "legacy",
        }
    }
}

// The two below are plain functions returning the driver itself: an `async fn` wrapper would
// keep its own copy of the arguments beside the driver in every idle user's task.

/// Serves one NS (dispatch/notification) connection until it ends.
pub fn serve_ns_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<Context>,
) -> impl Future<Output = ()> + Send + use<> {
    let (outbox, inbox) = ctx.outboxes.create();
    let service = crate::notification::NsService::new(Arc::clone(ctx), peer, outbox);
    serve_msnp(stream, service, inbox)
}

/// Serves one SB connection until it ends.
pub fn serve_sb_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<Context>,
) -> impl Future<Output = ()> + Send + use<> {
    let (outbox, inbox) = ctx.outboxes.create();
    let service = crate::switchboard::SbService::new(Arc::clone(ctx), outbox).with_peer(peer);
    serve_msnp(stream, service, inbox)
}

fn serve_msnp<S: conn::Service>(
    stream: TcpStream,
    service: S,
    inbox: crate::hub::Inbox,
) -> conn::Connection<S, TcpStream> {
    let _ = stream.set_nodelay(true);
    conn::Connection::new(stream, service, inbox)
}

/// A connection's future, boxed at its own size.
pub type Serve = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// One plain HTTP connection: nexus, login and the rest of [`crate::http`].
pub fn serve_http_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context,
    cancel: CancellationToken,
) -> Serve {
    Box::pin(crate::http::serve_connection(
        stream,
        peer,
        ctx.http.clone(),
        cancel,
    ))
}

/// One HTTPS connection through rustls; closed at once if no acceptor is configured.
pub fn serve_https_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context,
    cancel: CancellationToken,
) -> Serve {
    with_acceptor(ctx.https_tls.as_ref(), "https", |acceptor| {
        let http = ctx.http.clone();
        Box::pin(crate::http::tls::serve_https_connection(
            stream, peer, http, acceptor, cancel,
        ))
    })
}

/// One legacy-TLS connection through OpenSSL; closed at once if no acceptor is configured.
pub fn serve_legacy_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context,
    cancel: CancellationToken,
) -> Serve {
    with_acceptor(ctx.legacy_tls.as_ref(), "legacy", |tls| {
        let http = ctx.http.clone();
        Box::pin(crate::http::legacy::serve_legacy_connection(
            stream, peer, http, tls, cancel,
        ))
    })
}

/// `serve` with the listener's TLS acceptor, or, without one, a connection closed at once.
fn with_acceptor<T: Clone>(
    acceptor: Option<&T>,
    listener: &'static str,
    serve: impl FnOnce(T) -> Serve,
) -> Serve {
    match acceptor {
        Some(acceptor) => serve(acceptor.clone()),
        None => {
            tracing::debug!(listener, "no certificate configured; closing");
            Box::pin(std::future::ready(()))
        }
    }
}
