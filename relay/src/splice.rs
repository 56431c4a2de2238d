//! Bidirectional splice of two byte streams with bounded buffers, live byte counters and an
//! idle timeout: the relay's data path for every relayed transfer.
//!
//! Built on [`tokio::io::copy_bidirectional_with_sizes`] (one fixed buffer per direction, so
//! memory per relayed connection is bounded by `2 × buffer_size`), with each side wrapped in a
//! reader that counts the bytes it yields. Half-closes are propagated: when one side stops
//! sending, the other side's write half is shut down and the opposite direction keeps going,
//! which MSNFTP needs (the receiver's `BYE` comes after the sender's last block).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Default size of each direction's buffer.
pub const DEFAULT_BUFFER_BYTES: usize = 64 * 1024;
/// Default time without a byte in either direction after which a splice is torn down.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Limits of one splice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceConfig {
    /// Bytes buffered per direction.
    pub buffer_bytes: usize,
    /// Tear down after this long without traffic in either direction.
    pub idle_timeout: Duration,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        Self {
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Live byte counters of a splice, readable while it runs.
#[derive(Debug, Default)]
pub struct Counters {
    a_to_b: Arc<AtomicU64>,
    b_to_a: Arc<AtomicU64>,
    /// A total over many splices that every byte is also added to (a pool's byte counter).
    total: Option<Arc<AtomicU64>>,
}

impl Counters {
    /// Fresh counters whose bytes, both directions, are also added to `total` as they move.
    pub fn adding_to(total: Arc<AtomicU64>) -> Self {
        Self {
            total: Some(total),
            ..Self::default()
        }
    }

    /// Bytes copied from side A to side B so far.
    pub fn a_to_b(&self) -> u64 {
        self.a_to_b.load(Ordering::Relaxed)
    }

    /// Bytes copied from side B to side A so far.
    pub fn b_to_a(&self) -> u64 {
        self.b_to_a.load(Ordering::Relaxed)
    }

    fn total(&self) -> u64 {
        self.a_to_b().wrapping_add(self.b_to_a())
    }
}

/// Bytes moved by a finished splice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpliceStats {
    /// Bytes copied from side A to side B.
    pub a_to_b: u64,
    /// Bytes copied from side B to side A.
    pub b_to_a: u64,
}

/// Why a splice ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpliceError {
    /// Reading or writing one side failed.
    #[error("relay splice I/O error")]
    Io(#[from] io::Error),
    /// No byte moved for the configured idle timeout.
    #[error("relay splice idle for {0:?}")]
    Idle(Duration),
}

/// A stream whose reads are counted (and added to a shared total, if any).
struct Counted<S> {
    inner: S,
    read: Arc<AtomicU64>,
    total: Option<Arc<AtomicU64>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
            if let Some(total) = &self.total {
                total.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copies `a` ⇄ `b` until both directions reached end of stream, an I/O error, or the idle
/// timeout. `counters` can be read from elsewhere while this runs.
///
/// # Errors
///
/// [`SpliceError::Io`] if a read or write fails, [`SpliceError::Idle`] on the idle timeout.
pub async fn splice<A, B>(
    a: A,
    b: B,
    config: SpliceConfig,
    counters: &Counters,
) -> Result<SpliceStats, SpliceError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut a = Counted {
        inner: a,
        read: Arc::clone(&counters.a_to_b),
        total: counters.total.clone(),
    };
    let mut b = Counted {
        inner: b,
        read: Arc::clone(&counters.b_to_a),
        total: counters.total.clone(),
    };
    let buffer = config.buffer_bytes.max(1);
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, buffer, buffer);
    let watchdog = async {
        let mut last = counters.total();
        loop {
            tokio::time::sleep(config.idle_timeout).await;
            let now = counters.total();
            if now == last {
                return;
            }
            last = now;
        }
    };
    tokio::select! {
        result = copy => {
            let (a_to_b, b_to_a) = result?;
            Ok(SpliceStats { a_to_b, b_to_a })
        }
        () = watchdog => Err(SpliceError::Idle(config.idle_timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test]
    async fn splices_both_ways_with_half_close_and_counts_bytes() {
        let (mut client, relay_a) = duplex(8);
        let (relay_b, mut server) = duplex(8);
        let total = Arc::new(AtomicU64::new(1000));
        let counters = Counters::adding_to(Arc::clone(&total));
        let config = SpliceConfig {
            buffer_bytes: 16,
            idle_timeout: Duration::from_secs(10),
        };
        let relay = splice(relay_a, relay_b, config, &counters);
        let peers = async {
            // The receiver speaks first (MSNFTP), the sender answers with a large body.
            client.write_all(b"VER MSNFTP\r\n").await.unwrap();
            let mut line = [0u8; 12];
            server.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"VER MSNFTP\r\n");
            let data: Vec<u8> = (0..10_000u32).map(|n| n as u8).collect();
            let mut got = Vec::new();
            let send = async {
                server.write_all(&data).await.unwrap();
                server.shutdown().await.unwrap();
            };
            let receive = async { client.read_to_end(&mut got).await.unwrap() };
            tokio::join!(send, receive);
            assert_eq!(got, data);
            // After the sender closed, the receiver can still say goodbye.
            client.write_all(b"BYE 16777989\r\n").await.unwrap();
            client.shutdown().await.unwrap();
            let mut bye = Vec::new();
            server.read_to_end(&mut bye).await.unwrap();
            assert_eq!(bye, b"BYE 16777989\r\n");
        };
        let (stats, ()) = tokio::join!(relay, peers);
        let stats = stats.unwrap();
        assert_eq!(stats.a_to_b, 26);
        assert_eq!(stats.b_to_a, 10_000);
        assert_eq!(counters.a_to_b(), 26);
        assert_eq!(counters.b_to_a(), 10_000);
        assert_eq!(total.load(Ordering::Relaxed), 1000 + 26 + 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_splice_is_torn_down() {
        let (_client, relay_a) = duplex(8);
        let (relay_b, _server) = duplex(8);
        let config = SpliceConfig {
            buffer_bytes: 8,
            idle_timeout: Duration::from_secs(5),
        };
        let result = splice(relay_a, relay_b, config, &Counters::default()).await;
        assert!(matches!(result, Err(SpliceError::Idle(_))));
    }
}
