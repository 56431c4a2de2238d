//! End-to-end tests: whole Relive stacks on loopback ports, driven by scripted MSNP clients.
//! Every test starts its own stack (`relive_tests::TestStack`), so tests run in parallel.

/// One test per conformance transcript that concerns MSNP2–7 or the switchboard.
mod transcripts;

/// Logging in: every MD5 dialect, tokens, revoked tokens, unknown accounts, CTP.
mod login;

/// List management: ADD/REM with RL notifications, groups, list versions across restarts.
mod contacts;

/// Presence fan-out: HDN, block/unblock, BLP, name changes, duplicate login.
mod presence;

/// Switchboard sessions: group chat, BYE, NAK, limits, cookies.
mod switchboard;

/// What a newcomer and a conformance probe tripped over: PNG before login, orphan BPRs, links
/// without the HTTP port, too-new dialects.
mod fit;

/// Hostile or awkward clients: split writes, garbage, a reader that never reads.
mod robustness;

/// Attackers: a connection flood from one address, wrong tokens from one and from many
/// addresses, probing handles through every list command and the agent.
mod hardening;

/// The Wireshark MSNMS dissector recognises our NS traffic (skipped without `tshark`).
mod tshark;

/// File transfer across NAT in network namespaces, with and without the relay (root only).
mod nat;

/// MSNP8/9 with Passport 1.4 over HTTPS: transcripts, MSNObjects, P2P switchboard messages.
mod msnp8;

/// A standalone relay driven by the server (`[relay] remote`) carries a transfer (root only).
mod remote_relay;

/// What each client generation sends to the Passport endpoints, replayed byte for byte.
mod real_clients;
