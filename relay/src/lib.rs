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
//! * [`dial`]: how a forward reaches the listener's local port (the QUIC agent plugs in here).
//!
//! What this crate does not do: it never speaks MSNP itself (the server's `msnp` core does),
//! and the rewriter never touches sockets or the clock (the caller passes `now`).

pub mod dial;
pub mod ports;
pub mod rewrite;
pub mod splice;
