//! The I/O shell: accept loops for the four listeners and one entry point per connection kind.
//!
//! Every connection runs in a task on a shared [`TaskTracker`] with a child [`CancellationToken`]
//! and a connection-cap permit. On shutdown the accept loops stop, connection tokens are
//! cancelled, and [`crate::run`] waits for every task before closing the store.
//!
//! The per-connection functions are where the protocols go:
//! - [`serve_ns_connection`] and [`serve_sb_connection`] do not speak MSNP yet: they hold the
//!   connection, discarding what the client sends, until it closes or the server shuts down.
//!   The NS/SB handlers on top of `relive_msnp` replace their bodies.
//! - [`serve_http_connection`] and [`serve_https_connection`] accept and close: the Passport and
//!   website endpoints come later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::Context;

/// Longest pause after a failing `accept` (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(2);

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

/// Decrements the open-connection gauge when a connection task ends, however it ends.
struct Gauge(Context);

impl Gauge {
    fn new(ctx: Context) -> Self {
        ctx.connections.send_modify(|n| *n += 1);
        Self(ctx)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.connections.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Accepts connections on `listener` until `shutdown` is cancelled.
pub(crate) async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    ctx: Context,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(10);
    let mut next_id: u64 = 0;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(error) => {
                tracing::warn!(listener = kind.as_str(), %error, "accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(listener = kind.as_str(), %peer, "connection limit reached, refusing");
            continue;
        };
        next_id += 1;
        let span = tracing::info_span!("conn", kind = kind.as_str(), peer = %peer, id = next_id);
        let cancel = shutdown.child_token();
        let ctx = ctx.clone();
        tracker.spawn(
            async move {
                let _gauge = Gauge::new(ctx.clone());
                let _permit = permit;
                tracing::debug!("accepted");
                match kind {
                    Kind::Ns => serve_ns_connection(stream, peer, ctx, cancel).await,
                    Kind::Sb => serve_sb_connection(stream, peer, ctx, cancel).await,
                    Kind::Http => serve_http_connection(stream, peer, ctx, cancel).await,
                    Kind::Https => serve_https_connection(stream, peer, ctx, cancel).await,
                }
                tracing::debug!("closed");
            }
            .instrument(span),
        );
    }
    tracing::debug!(listener = kind.as_str(), "stopped accepting");
}

/// Reads and discards until the peer closes, a read fails, or `cancel` fires.
async fn hold_until_closed(mut stream: TcpStream, cancel: CancellationToken) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    // Dropping the stream sends FIN; nothing is buffered for writing.
}

/// One NS (dispatch/notification) connection. Placeholder: holds the connection without
/// speaking MSNP; the notification service replaces this body.
pub async fn serve_ns_connection(
    stream: TcpStream,
    _peer: SocketAddr,
    _ctx: Context,
    cancel: CancellationToken,
) {
    hold_until_closed(stream, cancel).await;
}

/// One switchboard connection. Placeholder: holds the connection without speaking MSNP; the
/// switchboard service replaces this body.
pub async fn serve_sb_connection(
    stream: TcpStream,
    _peer: SocketAddr,
    _ctx: Context,
    cancel: CancellationToken,
) {
    hold_until_closed(stream, cancel).await;
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
