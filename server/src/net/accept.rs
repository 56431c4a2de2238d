//! Accept loops: one per listener, each spawning a task per connection with a span, a child
//! cancellation token and a connection-cap permit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::{
    Kind, serve_http_connection, serve_https_connection, serve_legacy_connection,
    serve_ns_connection, serve_sb_connection,
};
use crate::Context;

/// Longest pause after a failing `accept` (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(2);

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
        let span = tracing::info_span!(
            "conn",
            kind = kind.as_str(),
            peer = %peer,
            id = next_id,
            user = tracing::field::Empty
        );
        let cancel = shutdown.child_token();
        let ctx = ctx.clone();
        tracker.spawn(
            async move {
                let _gauge = Gauge::new(ctx.clone());
                let _permit = permit;
                tracing::debug!("accepted");
                // Each kind's future is boxed at its own size: inline, every task would be as
                // large as the largest of them (a TLS handshake's), idle NS connections too.
                let serve: Pin<Box<dyn Future<Output = ()> + Send>> = match kind {
                    Kind::Ns => Box::pin(serve_ns_connection(stream, peer, ctx, cancel)),
                    Kind::Sb => Box::pin(serve_sb_connection(stream, peer, ctx, cancel)),
                    Kind::Http => Box::pin(serve_http_connection(stream, peer, ctx, cancel)),
                    Kind::Https => Box::pin(serve_https_connection(stream, peer, ctx, cancel)),
                    Kind::Legacy => Box::pin(serve_legacy_connection(stream, peer, ctx, cancel)),
                };
                serve.await;
                tracing::debug!("closed");
            }
            .instrument(span),
        );
    }
    tracing::debug!(listener = kind.as_str(), "stopped accepting");
}
