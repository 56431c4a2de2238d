//! End-to-end tests: whole Relive stacks on loopback ports, driven by scripted MSNP clients.
//! Every test starts its own stack (`relive_tests::TestStack`), so tests run in parallel.

/// One test per conformance transcript that concerns MSNP2–7 or the switchboard.
mod transcripts;

/// Logging in: every MD5 dialect, tokens, revoked tokens, unknown accounts, CTP.
mod login;

/// List management: ADD/REM with RL notifications, groups, list versions across restarts.
mod contacts;

/// The PostgreSQL store: `migrate-store` from SQLite, then old tokens and lists on PostgreSQL.
mod store;

/// Presence fan-out: HDN, block/unblock, BLP, name changes, duplicate login.
mod presence;

/// Switchboard sessions: group chat, BYE, NAK, limits, cookies.
mod switchboard;

/// What a newcomer and a conformance probe tripped over: PNG before login, orphan BPRs, links
/// without the HTTP port, too-new dialects, the CA over HTTP, the port plan end to end.
mod fit;

/// Hostile or awkward clients: split writes, garbage, a reader that never reads.
mod robustness;

/// Attackers: a connection flood from one address, wrong tokens from one and from many
/// addresses, probing handles through every list command and the agent.
mod hardening;

/// The Wireshark MSNMS dissector recognises our NS traffic (needs `tshark`).
mod tshark;

/// File transfer across NAT in network namespaces, with and without the relay (needs root).
mod nat;

/// MSNP8/9 with Passport 1.4 over HTTPS: transcripts, MSNObjects, P2P switchboard messages.
mod msnp8;

/// MSNP10 (MSN 6.1/6.2): the address book by GUID, with a scripted MSN 6.2.
mod msnp10;

/// MSNP11/12 (MSN 7.0/7.5): RST.srf over HTTPS, SBS, GCF, the MSNP11 challenge, UUX/UBX.
mod msnp12;

/// The local Hotmail (issue 18): mail notifications per dialect, the inbox sign-in.
mod mail;

/// Pagers (issue 18): PAG/PGD stored for offline contacts, IPG at login, privacy.
mod pages;

/// MSN 4.7, 6.0, 7.0 and 7.5 in one contact list and one conversation.
mod mixed;

/// msnp11-sdk, a real MSNP11 client from crates.io, over real sockets.
mod sdk;

/// A standalone relay driven by the server (`[relay] remote`) carries a transfer (needs root).
mod remote_relay;

/// What each client generation sends to the Passport endpoints, replayed byte for byte.
mod real_clients;

/// `/metrics` scraped while clients log in, fail, chat and leave: the numbers move.
mod metrics;

/// The container image: built from scratch with podman, run, an MSNP7 login (podman, musl).
mod container;

/// The Windows relive-server.exe serves an MSNP7 login under wine (mingw-w64, wine64).
mod windows;

/// The website and its `/api/`: register, sign in, tokens, contacts, admin, OpenAPI.
mod website;

/// The website in headless Chromium over WebDriver (needs `chromium`, `chromium-driver`).
mod browser;

/// The opt-in message history: MSNP7/9/11 rooms, consent, export and delete, sealed at rest,
/// and its pages in Chromium.
mod history;

/// Cluster mode: a dispatch, two NS and two SB nodes over a real `nats-server`, one killed
/// with SIGKILL (needs `nats-server`).
mod cluster;

/// Cluster mode: website notices (broadcast, mail, revocation, kicks, maintenance) reaching
/// sessions on another node, and presence converging after a NATS restart (needs
/// `nats-server`).
mod cluster_notices;

/// Cluster mode: one standalone relay (`relive-relay serve --servers 2`) for two SB nodes; an
/// MSNFTP transfer in a room on each reaches one companion agent (needs `nats-server`).
mod cluster_relay;
