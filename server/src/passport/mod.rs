//! Passport 1.4 ("TWN") for MSNP8+: the login service behind `login2.srf`, the tickets it issues
//! and `USR TWN S` consumes, and the brute-force limiter both sides share. No sockets here: the
//! HTTP endpoints live in [`crate::http`].
//!
//! # Flow
//!
//! ```text
//! NS:    USR 6 TWN I alice@example.com  →  USR 6 TWN S <twn-params>
//! HTTPS: GET /rdr/pprdr.asp             →  PassportURLs: DARealm=...,DALogin=<host>/login2.srf
//! HTTPS: GET /login2.srf (Authorization: Passport1.4 ...,sign-in=..,pwd=..)
//!        → PassportService::login → Authentication-Info: ...from-PP='t=...&p=...'
//! NS:    USR 7 TWN S t=...&p=...        →  PassportService::consume_ticket → USR 7 OK ... | 911
//! ```
//!
//! # Layout
//!
//! - [`settings`]: [`PassportSettings`] (the `[passport]` config table) and the `PassportURLs`
//!   value built from it.
//! - [`login`]: `Authorization` parsing and [`PassportService`].
//! - [`tickets`]: single-use, account-bound, short-lived tickets.
//! - [`rate_limit`]: failures per (account, source) → slow down → refuse that source; per
//!   source → refuse a sprayer; per account → only ever delay (lockout-free), with decay.

pub mod login;
pub mod rate_limit;
pub mod settings;
pub mod tickets;

pub use login::{
    AuthorizationError, Clock, Credentials, LoginError, LoginFailure, PassportService, Transport,
    system_clock,
};
pub use rate_limit::{RateLimitSettings, RateLimiter, Refused};
pub use settings::{DaLoginPort, Endpoints, NamedPort, NexusSettings, PassportSettings};
pub use tickets::{Ticket, TicketError, TicketSettings, TicketStore};
