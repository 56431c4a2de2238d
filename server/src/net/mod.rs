//! The I/O shell: accept loops, the generic connection driver, and one entry point per
//! connection kind.
//!
//! Every connection runs in a task on a shared [`TaskTracker`](tokio_util::task::TaskTracker)
//! with a child [`CancellationToken`] and a connection-cap permit ([`accept`]). On shutdown the
//! accept loops stop, connection tokens are cancelled, and [`crate::run`] waits for every task
//! before closing the store.
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

// The two below return `serve_msnp`'s future itself rather than awaiting it in an `async fn`:
// a wrapping state machine would keep its own copy of the arguments beside the inner future,
// about 0.3 KiB more for every idle user.

/// One NS (dispatch/notification) connection: the notification service over the driver.
pub fn serve_ns_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send {
    serve_msnp(stream, ctx, cancel, move |ctx, outbox| {
        crate::notification::NsService::new(ctx, peer, outbox)
    })
}

/// One switchboard connection: the switchboard service over the driver.
pub fn serve_sb_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send {
    serve_msnp(stream, ctx, cancel, move |ctx, outbox| {
        crate::switchboard::SbService::new(ctx, outbox).with_peer(peer)
    })
}

/// An MSNP connection: its outbox, the service `make` builds around it, and the driver.
async fn serve_msnp<S: conn::Service>(
    mut stream: TcpStream,
    ctx: Context,
    cancel: CancellationToken,
    make: impl FnOnce(Context, crate::hub::Outbox) -> S + Send,
) {
    let _ = stream.set_nodelay(true);
    let kill = CancellationToken::new();
    let (outbox, mut events) = ctx.outboxes.create(kill.clone());
    let mut service = make(ctx, outbox);
    conn::drive(&mut stream, &mut service, &mut events, &kill, &cancel).await;
}

/// One plain HTTP connection: nexus, login and the rest of [`crate::http`].
pub async fn serve_http_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) {
    crate::http::serve_connection(stream, peer, ctx.http.clone(), cancel).await;
}

/// One HTTPS connection through rustls; closed at once if no acceptor is configured.
pub async fn serve_https_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) {
    let Some(acceptor) = ctx.https_tls.clone() else {
        tracing::debug!("no HTTPS certificate configured; closing");
        return drop(stream);
    };
    crate::http::tls::serve_https_connection(stream, peer, ctx.http.clone(), acceptor, cancel)
        .await;
}

/// One legacy-TLS connection through OpenSSL; closed at once if no acceptor is configured.
pub async fn serve_legacy_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) {
    let Some(tls) = ctx.legacy_tls.clone() else {
        tracing::debug!("no legacy TLS certificate configured; closing");
        return drop(stream);
    };
    crate::http::legacy::serve_legacy_connection(stream, peer, ctx.http.clone(), tls, cancel).await;
}
