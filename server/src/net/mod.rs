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
//! - [`serve_http_connection`] and [`serve_https_connection`] are the HTTP entry points.

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
        }
    }
}

/// One NS (dispatch/notification) connection: the notification service over the driver.
pub async fn serve_ns_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let kill = CancellationToken::new();
    let (outbox, mut events) = ctx.outboxes.create(kill.clone());
    let mut service = crate::notification::NsService::new(ctx, peer, outbox);
    conn::drive(&mut stream, &mut service, &mut events, &kill, &cancel).await;
}

/// One switchboard connection: the switchboard service over the driver.
pub async fn serve_sb_connection(
    mut stream: TcpStream,
    _peer: SocketAddr,
    ctx: Context,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let kill = CancellationToken::new();
    let (outbox, mut events) = ctx.outboxes.create(kill.clone());
    let mut service = crate::switchboard::SbService::new(ctx, outbox);
    conn::drive(&mut stream, &mut service, &mut events, &kill, &cancel).await;
}

/// One plain HTTP connection. Not implemented yet: closes at once.
pub async fn serve_http_connection(
    stream: TcpStream,
    _peer: SocketAddr,
    _ctx: Context,
    _cancel: CancellationToken,
) {
    drop(stream);
}

/// One HTTPS connection. Not implemented yet: closes at once (no TLS handshake).
pub async fn serve_https_connection(
    stream: TcpStream,
    _peer: SocketAddr,
    _ctx: Context,
    _cancel: CancellationToken,
) {
    drop(stream);
}
