//! Sans-IO MSNP core of Relive: framing, typed commands and per-dialect capabilities for
//! MSN Messenger protocol versions MSNP2 – MSNP12.
//!
//! The crate turns bytes into typed values and typed values back into bytes. It contains no
//! networking code, no async runtime and no clock: time, where it matters, is passed in.
//!
//! # Layout
//!
//! * [`verb`]: the client command names ([`verb::Verb`]) and which carry a payload.
//! * [`frame`]: incremental line/payload decoder with limits, and [`frame::Frame::encode`].
//! * [`args`]: argument cursor used by the command parsers.
//! * [`types`]: newtypes ([`types::TrId`], [`types::Passport`], [`types::ListKind`],
//!   [`types::Status`], [`types::ErrorCode`] …).
//! * [`version`]: [`version::ProtocolVersion`], [`version::negotiate`] and
//!   [`version::Capabilities`], the one table of what changed between dialects.
//! * [`client`]: client → server commands ([`client::ClientCommand`]).
//! * [`server`]: server → client messages ([`server::ServerMessage`]) encoded per dialect.
//! * [`auth`]: MD5 login and `CHL`/`QRY` challenge helpers (MD5 and MSNP11 product-key).
//! * [`passport`]: the Passport 1.4 `Authorization` header of `login2.srf` requests.
//! * [`rst`]: the MSNP12 ("Passport 3.0") SOAP `RST.srf` login request and its answers.
//! * [`mail`]: the Hotmail notifications (initial counts, new mail, active mail).
//! * [`pager`]: `PAG`/`PGD` page bodies and the `IPG` incoming page.
//! * [`psm`]: the MSNP11+ personal message (`UUX`/`UBX` XML).
//! * [`xml`]: the small bounded XML tree `psm` and `rst` use.
//! * [`session`]: pure login-phase rules for NS and SB connections.
//! * [`transcript`]: parser for the conformance transcript format (PROTOCOL.md §9).
//! * [`error`]: [`error::FrameError`] and [`error::ParseError`].
//!
//! # Not here
//!
//! Sockets, storage, presence fan-out and HTTP live in `relive-server`.

/// Builds an argument vector from values that implement `Display`.
macro_rules! words {
    ($($x:expr),* $(,)?) => {
        vec![$($x.to_string()),*]
    };
}

pub mod args;
pub mod auth;
pub mod client;
pub mod error;
pub mod frame;
pub mod mail;
pub mod pager;
pub mod passport;
pub mod psm;
pub mod rst;
pub mod server;
pub mod session;
pub mod transcript;
pub mod types;
pub mod verb;
pub mod version;
pub mod xml;
