//! Accept loops: one per listener, each admitting a connection through the listener's pool
//! and its source's cap ([`crate::limits::connections`]; a refused one is closed at once) and
//! spawning a task per connection with a span and its admission (and, for HTTP, a child
//! cancellation token and the connection's lifetime limit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::{
    Kind, Serve, serve_http_connection, serve_https_connection, serve_legacy_connection,
    serve_ns_connection, serve_sb_connection,
};
use crate::Context;
use crate::limits::connections::Admission;

/// Longest pause after a failing `accept` (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(2);

/// A connection's future with what it holds for its whole life: the open-connection gauge
/// (decremented however the task ends) and its place in its listener's pool. Built before the
/// task is spawned, so the task holds no `async` wrapper with copies of its arguments.
struct Guarded {
    serve: Serve,
    gauge: Arc<watch::Sender<usize>>,
    _admission: Admission,
}

impl Guarded {
    fn new(serve: Serve, gauge: &Arc<watch::Sender<usize>>, admission: Admission) -> Self {
        gauge.send_modify(|n| *n += 1);
        Self {
            serve,
            gauge: Arc::clone(gauge),
            _admission: admission,
        }
    }
}

impl Future for Guarded {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        ready!(self.serve.as_mut().poll(cx));
        tracing::debug!("closed");
        Poll::Ready(())
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.gauge.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// `serve`, ended (the socket dropped, so closed) once `lifetime` has passed.
fn limited(serve: Serve, lifetime: Duration) -> Serve {
    Box::pin(async move {
        if tokio::time::timeout(lifetime, serve).await.is_err() {
            tracing::debug!(?lifetime, "http connection lifetime reached; closing");
        }
    })
}

/// Accepts connections on `listener` until `shutdown` is cancelled.
pub(crate) async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    ctx: Arc<Context>,
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
        // Refused: closed at once (the refusal is logged within a budget).
        let Ok(admission) = ctx.connection_limits.admit(kind, peer.ip()) else {
            continue;
        };
        next_id += 1;
        let span = tracing::info_span!(
            "conn",
            kind = kind.as_str(),
            peer = %peer,
            id = next_id,
            user = tracing::field::Empty
        );
        span.in_scope(|| tracing::debug!("accepted"));
        // Each kind's future is boxed at its own size: inline, every task would be as large
        // as the largest of them (a TLS handshake's), idle NS connections too. NS and SB
        // connections learn of a shutdown through their outboxes and keep their own login
        // deadlines; HTTP ones get a child token and a lifetime counted from now, which no
        // trickle of bytes extends.
        let lifetime = ctx.settings.abuse.http_connection;
        let serve: Serve = match kind {
            Kind::Ns => Box::pin(serve_ns_connection(stream, peer, &ctx)),
            Kind::Sb => Box::pin(serve_sb_connection(stream, peer, &ctx)),
            Kind::Http => limited(
                serve_http_connection(stream, peer, &ctx, shutdown.child_token()),
                lifetime,
            ),
            Kind::Https => limited(
                serve_https_connection(stream, peer, &ctx, shutdown.child_token()),
                lifetime,
            ),
            Kind::Legacy => limited(
                serve_legacy_connection(stream, peer, &ctx, shutdown.child_token()),
                lifetime,
            ),
        };
        tracker.spawn(Guarded::new(serve, &ctx.connections, admission).instrument(span));
    }
    tracing::debug!(listener = kind.as_str(), "stopped accepting");
}
