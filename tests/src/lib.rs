//! Harness for the end-to-end tests of whole Relive stacks over real loopback sockets.
//!
//! - [`stack`]: [`TestStack::start`] runs a real `relive-server` on `127.0.0.1:0` listeners
//!   with a temporary data directory, seeded accounts and access tokens.
//! - [`client`]: [`MsnpClient`], a scripted MSNP client (typed and raw, every wait bounded).
//! - [`replay`]: the conformance transcript runner.
//! - [`http`]: raw HTTP/1.1 over TLS 1.2 for the Passport 1.4 exchanges.
//! - [`logon`]: MD5 or Passport logins from a chosen local address (tests and the bench).
//! - [`sb`]: switchboard helpers (open, invite, messages).
//! - [`netns`]: the NAT testbed; [`p2p`]: MSN P2P/MSNSLP framing for its scripted clients.
//! - [`tool`]: the one rule for tests that need a system tool (fail in CI, skip elsewhere).
//! - [`web`]: a cookie-keeping HTTP client for the website's handler tests.
//! - [`cluster`]: nodes of a Relive cluster as `relive-server serve` child processes, and
//!   [`nats`]: the real `nats-server` they share.
//! - [`dist`]: the release binaries (static Linux, Windows) and running them under wine.
//!
//! Tests live in `tests/it/`; each test starts its own stack, so they run in parallel.

pub mod client;
pub mod cluster;
pub mod dist;
pub mod http;
pub mod logon;
pub mod msnftp;
pub mod nats;
pub mod netns;
pub mod p2p;
pub mod postgres;
pub mod replay;
pub mod sb;
pub mod stack;
pub mod tool;
pub mod web;

use std::sync::Once;

pub use client::{MsnpClient, RawFrame, TIMEOUT};
pub use replay::Replay;
pub use stack::{DataDir, StackOptions, TestStack};

/// Installs a tracing subscriber that writes through the test harness (shown only for failing
/// tests), filtered by `RUST_LOG` (default `info`). Safe to call from every test.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Another subscriber may already be installed by the test binary; keep it then.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A TCP connection to `addr` from the local address `local` (any port). Linux routes all of
/// 127/8 on `lo`, so tests and the bench can be several sources at once.
///
/// # Errors
///
/// Binding or connecting failed.
pub async fn tcp_from(
    local: std::net::IpAddr,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match local {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}
