//! Relive relay: makes MSN file transfers and P2P direct connections work between clients
//! behind NAT or on VPNs.
//!
//! # Layout
//!
//! * [`rewrite`]: the pure (sans-IO) invitation rewriter the switchboard calls once per
//!   recipient in its `MSG` fan-out: MSNFTP invitations, MSNSLP `transrespbody` offers, the
//!   per-transfer decision (LAN/VPN, observed address, agent, role swap, rendezvous,
//!   switchboard fallback) and every dependent length.
//! * [`ports`]: the data plane's port pool: allocations that accept one connection from the
//!   expected peer, expire unused, and either forward to a listener ([`dial`]) or splice two
//!   rendezvous legs.
//! * [`splice`]: the bidirectional copy with bounded buffers, byte counters and idle timeout.
//! * [`dial`]: how a forward reaches the listener's local port.
//! * [`quic`], [`proto`], [`agent_hub`], [`agent`]: the companion agent over QUIC — endpoint
//!   configuration (rustls + ring), the sans-IO frames, the relay-side registry that
//!   authenticates agents and implements [`dial::Dial`], and the agent itself.
//! * [`limits`]: per-source counting (an IPv4 address or an IPv6 /64) and a budget for
//!   refusal log lines, shared with the server.
//! * [`serve`], [`control`], [`remote`]: the relay as its own process (`relive-relay serve`)
//!   driven by `relive-server` — the standalone relay, the control protocol between the two,
//!   and the server's side ([`remote::RemoteRelay`], an [`rewrite::Allocate`] over leased
//!   ports).
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

pub mod agent;
pub mod agent_hub;
pub mod control;
pub mod dial;
pub mod limits;
pub mod ports;
pub mod proto;
pub mod quic;
pub mod remote;
pub mod rewrite;
pub mod serve;
pub mod splice;
