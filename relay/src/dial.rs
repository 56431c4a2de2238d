//! How the relay reaches a listener's local port for an agent forward.
//!
//! In production the companion agent on the listener's machine dials its own
//! `127.0.0.1:<port>` at the relay's request over QUIC ([`crate::agent_hub::AgentHub`]
//! implements [`Dial`]); the relay only sees a byte stream. [`TcpDial`] dials `host:port` over plain TCP, which is
//! what the agent does on its side, and what a relay on the listener's own host can do.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::rewrite::AllocationId;

/// A byte stream of any transport (TCP, a QUIC bi-stream joined with `tokio::io::join`, …).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A boxed [`Stream`].
pub type BoxedStream = Box<dyn Stream>;

/// The future a [`Dial`] returns.
pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<BoxedStream>> + Send>>;

/// Opens a stream to `port` on the machine of the user `listener`.
pub trait Dial: Send + Sync + 'static {
    /// Called when forward allocation `id` is made for `port` (taken from `listener`'s own
    /// invitation): an agent is told that one stream for `id` may reach `port`. Returns
    /// `false` if `listener` cannot be reached (no agent connected); the allocation is then
    /// refused.
    fn announce(&self, listener: &str, id: AllocationId, port: u16) -> bool;
    /// Opens the stream for allocation `id`, announced before.
    fn dial(&self, listener: &str, id: AllocationId, port: u16) -> DialFuture;
}

/// Dials `host:port` over TCP for every listener.
#[derive(Debug, Clone, Copy)]
pub struct TcpDial {
    /// The host to dial.
    pub host: IpAddr,
}

impl Dial for TcpDial {
    fn announce(&self, _listener: &str, _id: AllocationId, _port: u16) -> bool {
        true
    }

    fn dial(&self, _listener: &str, _id: AllocationId, port: u16) -> DialFuture {
        let addr = SocketAddr::new(self.host, port);
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxedStream)
        })
    }
}
