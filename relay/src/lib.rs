//! Relive relay: makes MSN file transfers and P2P direct connections work between clients
//! behind NAT or on VPNs.
//!
//! # Layout
//!
//! Always built (what every user needs, no QUIC, no TLS):
//!
//! * [`rewrite`]: the pure (sans-IO) invitation rewriter the switchboard calls once per
//!   recipient in its `MSG` fan-out: MSNFTP invitations, MSNSLP `transrespbody` offers, the
//!   per-transfer decision (LAN/VPN, observed address, agent, role swap, rendezvous,
//!   switchboard fallback) and every dependent length. Which client generation a dialect is
//!   comes from `relive-msnp`'s capabilities table.
//! * [`ports`]: the data plane's port pool: allocations that accept one connection from the
//!   expected peer, expire unused, and either forward to a listener ([`dial`]) or splice two
//!   rendezvous legs.
//! * [`splice`]: the bidirectional copy with bounded buffers, byte counters and idle timeout.
//! * [`dial`]: how a forward reaches the listener's local port.
//! * [`limits`]: per-source counting (an IPv4 address or an IPv6 /64) and a budget for
//!   refusal log lines, shared with the server.
//! * [`backoff`]: the workspace's one reconnect-with-backoff schedule and retry loop (the
//!   agent, the server's control connection to a standalone relay, the server's accept loops).
//! * [`wire`]: the framing both relay protocols share: serde values encoded with postcard in
//!   tokio-util `LengthDelimitedCodec` frames with a bounded length.
//!
//! Feature `agent` (what `relive-gui` uses): [`quic`] (client side), [`proto`] (the agent
//! protocol) and [`agent`] (the companion agent and its reconnect loop,
//! [`agent::keep_connected`]).
//!
//! Feature `relay` (what `relive-server` uses): [`quic`] (server side, certificates with
//! rcgen), [`proto`], [`agent_hub`] (the relay side of the agents; authenticates them and
//! implements [`dial::Dial`]), and the relay as its own process driven by `relive-server` —
//! [`serve`] (the standalone relay), [`control`] (the control protocol between the two) and
//! [`remote`] (the server's side, [`remote::RemoteRelay`], an [`rewrite::Allocate`] over leased
//! ports).
//!
//! Feature `cli` (default; only the `relive-relay` binary needs it): both of the above plus
//! clap, anyhow and the log subscriber (through `relive-cli`). Libraries depend on this crate
//! with `default-features = false` and name the features they use.
//!
//! # Embedding (what `relive-server` does)
//!
//! ```no_run
//! # async fn embed(quic_socket: std::net::UdpSocket) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use relive_relay::{agent_hub::{AgentHub, StaticTokens}, dial::Dial, ports::{PoolConfig, PortPool}, quic};
//!
//! // Agents: QUIC on an already-bound UDP socket; the server authenticates tokens itself
//! // (its own `Authenticate` over the store; a fixed table here).
//! let identity = quic::Identity::self_signed(&["relay.example".to_owned()])?;
//! let endpoint = quic::server_endpoint(quic::server_config(identity)?, quic_socket)?;
//! let hub = AgentHub::new(Arc::new(StaticTokens::new([("token".into(), "alice@example.com".into())])));
//! tokio::spawn({ let hub = hub.clone(); async move { hub.run(endpoint).await } });
//!
//! // Ports: forwards go through the agents.
//! let dial: Arc<dyn Dial> = Arc::new(hub.clone());
//! let pool = PortPool::new(PoolConfig::new("0.0.0.0".parse()?, 6891..=6990), Some(dial))?;
//!
//! // Per switchboard session: a `rewrite::RoomRelay`; per recipient of every MSG:
//! // `room.rewrite(&policy, &pool, &hop, payload, Instant::now())`, with
//! // `PeerFacts::agent = hub.connected(handle)` (see the `rewrite` module).
//! # Ok(()) }
//! ```
//!
//! What this crate does not do: it never speaks MSNP itself (the server's `msnp` core does),
//! and the rewriter never touches sockets or the clock (the caller passes `now`).

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "relay")]
pub mod agent_hub;
pub mod backoff;
#[cfg(feature = "relay")]
pub mod control;
pub mod dial;
pub mod limits;
pub mod ports;
#[cfg(any(feature = "agent", feature = "relay"))]
pub mod proto;
#[cfg(any(feature = "agent", feature = "relay"))]
pub mod quic;
#[cfg(feature = "relay")]
pub mod remote;
pub mod rewrite;
#[cfg(feature = "relay")]
pub mod serve;
pub mod splice;
pub mod wire;
