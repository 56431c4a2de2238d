//! Passport 1.4 tickets: the `from-PP` value `login2.srf` hands out and `USR TWN S` consumes.
//!
//! A ticket is random (40 bytes from the operating system's generator, well over 128 bits),
//! URL-safe, and shaped like the official ones so clients copy it without surprises:
//!
//! ```text
//! t=<32 base64url characters>&p=<22 base64url characters>
//! ```
//!
//! It is single-use, bound to the account (and handle) it was issued for, and expires after a
//! lifetime of at most [`MAX_TICKET_LIFETIME`]. The store keeps only a SHA-256 of each ticket,
//! so a look-up's timing depends on the hash, never on how much of a guessed ticket matched, and
//! a memory dump does not reveal usable tickets. Memory is bounded: expired tickets are purged
//! on every call, and when [`TicketSettings::capacity`] is reached the oldest ticket is dropped
//! (every ticket has the same lifetime, so the oldest is the one closest to expiring).
//!
//! Time is passed in (`now`), so tests drive expiry without sleeping.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use relive_msnp::types::Passport;
use ring::digest;

use crate::store::{AccountId, TokenId};

/// Longest lifetime a ticket may have: the client uses it within seconds of receiving it.
pub const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(120);

/// Longest ticket string `consume` looks at; anything longer is unknown without hashing it.
pub const MAX_TICKET_BYTES: usize = 256;

/// Random bytes in the `t` part.
const T_BYTES: usize = 24;
/// Random bytes in the `p` part.
const P_BYTES: usize = 16;

/// Why a ticket was not accepted. The NS answers every variant with `911`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Never issued, already used, or purged.
    #[error("unknown or already used ticket")]
    Unknown,
    /// Issued, but its lifetime is over.
    #[error("ticket expired")]
    Expired,
    /// Issued for another account. The ticket is burnt all the same.
    #[error("ticket was issued for another account")]
    WrongAccount,
}

/// Limits of the ticket store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketSettings {
    /// How long a ticket stays valid (clamped to [`MAX_TICKET_LIFETIME`]).
    pub lifetime: Duration,
    /// Most tickets held at once.
    pub capacity: usize,
}

impl Default for TicketSettings {
    fn default() -> Self {
        Self {
            lifetime: MAX_TICKET_LIFETIME,
            capacity: 10_000,
        }
    }
}

/// A freshly issued ticket. `Debug` and `Display` print `***`; [`Ticket::expose`] gives the
/// value to put on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket(String);

impl Ticket {
    /// The whole `t=...&p=...` value, for `from-PP='...'`.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `t` part (without `t=`), which the MSNP8 profile message repeats as `MSPAuth`.
    #[must_use]
    pub fn t_part(&self) -> &str {
        t_part(&self.0).unwrap_or_default()
    }
}

/// The `t` value of a `t=...&p=...` ticket string, if it has that shape.
#[must_use]
pub fn t_part(ticket: &str) -> Option<&str> {
    ticket
        .strip_prefix("t=")
        .map(|rest| rest.split_once('&').map_or(rest, |(t, _)| t))
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket(***)")
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

type Digest = [u8; 32];

/// The SHA-256 of a ticket, the only form in which tickets are kept (or asked for across
/// cluster nodes).
#[must_use]
pub fn digest(ticket: &str) -> [u8; 32] {
    hash(ticket)
}

fn hash(ticket: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, ticket.as_bytes()).as_ref());
    out
}

#[derive(Debug)]
struct Entry {
    account: AccountId,
    /// The access token the login used (`None`: the password).
    token: Option<TokenId>,
    handle: Passport,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<Digest, Entry>,
    /// Issue order (= expiry order). May hold digests already consumed; they are skipped.
    order: VecDeque<(Digest, Instant)>,
}

impl Inner {
    fn purge(&mut self, now: Instant) {
        while let Some(&(digest, expires)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.live.remove(&digest);
        }
    }

    fn make_room(&mut self, capacity: usize) {
        while self.order.len() >= capacity {
            let Some((digest, _)) = self.order.pop_front() else {
                break;
            };
            self.live.remove(&digest);
        }
    }
}

/// The in-memory ticket store. Shared behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct TicketStore {
    settings: TicketSettings,
    inner: Mutex<Inner>,
}

impl TicketStore {
    /// An empty store. A zero capacity is treated as one.
    #[must_use]
    pub fn new(settings: TicketSettings) -> Self {
        Self {
            settings: TicketSettings {
                lifetime: settings.lifetime.min(MAX_TICKET_LIFETIME),
                capacity: settings.capacity.max(1),
            },
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections never panic half-way through an update that matters: at worst
        // a ticket is missing, which only means one failed login.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a new ticket for `account` / `handle`, valid from `now` for the configured lifetime.
    #[must_use]
    pub fn issue(&self, account: AccountId, handle: &Passport, now: Instant) -> Ticket {
        self.issue_for_token(account, None, handle, now)
    }

    /// [`Self::issue`] remembering which access token the login used, so the session the
    /// ticket opens can be ended when that token is revoked.
    #[must_use]
    pub fn issue_for_token(
        &self,
        account: AccountId,
        token: Option<TokenId>,
        handle: &Passport,
        now: Instant,
    ) -> Ticket {
        let mut raw = [0u8; T_BYTES + P_BYTES];
        rand::rng().fill_bytes(&mut raw);
        let (t, p) = raw.split_at(T_BYTES);
        let ticket = format!(
            "t={}&p={}",
            URL_SAFE_NO_PAD.encode(t),
            URL_SAFE_NO_PAD.encode(p)
        );
        let digest = hash(&ticket);
        let expires = now + self.settings.lifetime;
        let mut inner = self.lock();
        inner.purge(now);
        inner.make_room(self.settings.capacity);
        inner.order.push_back((digest, expires));
        inner.live.insert(
            digest,
            Entry {
                account,
                token,
                handle: handle.clone(),
                expires,
            },
        );
        Ticket(ticket)
    }

    /// Consumes `ticket` for `handle` (the handle the client gave in `USR TWN I`): succeeds once,
    /// if the ticket was issued for that handle and has not expired, with the account it was
    /// issued for. Any presented ticket that was live is removed, whatever the outcome.
    ///
    /// # Errors
    ///
    /// [`TicketError`]; the NS answers `911` to all of them.
    pub fn consume(
        &self,
        ticket: &str,
        handle: &Passport,
        now: Instant,
    ) -> Result<AccountId, TicketError> {
        self.consume_with_token(ticket, handle, now)
            .map(|(account, _)| account)
    }

    /// [`Self::consume`], also giving the access token the login used.
    ///
    /// # Errors
    ///
    /// As [`Self::consume`].
    pub fn consume_with_token(
        &self,
        ticket: &str,
        handle: &Passport,
        now: Instant,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        if ticket.len() > MAX_TICKET_BYTES {
            return Err(TicketError::Unknown);
        }
        self.consume_digest(&hash(ticket), handle, now)
    }

    /// [`Self::consume_with_token`] by the ticket's SHA-256 ([`digest`](fn@digest)): how another cluster
    /// node asks for a ticket issued here without sending the ticket itself.
    ///
    /// # Errors
    ///
    /// As [`Self::consume`].
    pub fn consume_digest(
        &self,
        digest: &[u8; 32],
        handle: &Passport,
        now: Instant,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        let digest = *digest;
        let mut inner = self.lock();
        let entry = inner.live.remove(&digest);
        inner.purge(now);
        let entry = entry.ok_or(TicketError::Unknown)?;
        if entry.expires <= now {
            return Err(TicketError::Expired);
        }
        if entry.handle != *handle {
            return Err(TicketError::WrongAccount);
        }
        Ok((entry.account, entry.token))
    }

    /// Number of live (issued, unused, not yet purged) tickets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether no ticket is live.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Passport {
        Passport::parse("alice@example.com").unwrap()
    }

    fn bob() -> Passport {
        Passport::parse("bob@example.com").unwrap()
    }

    fn store(capacity: usize) -> TicketStore {
        TicketStore::new(TicketSettings {
            lifetime: Duration::from_secs(60),
            capacity,
        })
    }

    #[test]
    fn tickets_are_shaped_like_passport_ones_random_and_do_not_show_in_debug() {
        let tickets = store(10);
        let now = Instant::now();
        let a = tickets.issue(AccountId(1), &alice(), now);
        let b = tickets.issue(AccountId(1), &alice(), now);
        assert_ne!(a, b);
        let text = a.expose();
        let (t, p) = text.split_once('&').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        let p = p.strip_prefix("p=").unwrap();
        assert_eq!(t.len(), 32);
        assert_eq!(p.len(), 22);
        assert_eq!(a.t_part(), t);
        let url_safe = |s: &str| {
            s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        };
        assert!(url_safe(t) && url_safe(p));
        assert_eq!(format!("{a:?} {a}"), "Ticket(***) ***");
    }

    #[test]
    fn a_ticket_is_single_use_and_bound_to_its_handle() {
        let tickets = store(10);
        let now = Instant::now();
        let a = tickets.issue(AccountId(7), &alice(), now);
        assert_eq!(tickets.consume(a.expose(), &alice(), now), Ok(AccountId(7)));
        assert_eq!(
            tickets.consume(a.expose(), &alice(), now),
            Err(TicketError::Unknown)
        );

        let b = tickets.issue(AccountId(7), &alice(), now);
        assert_eq!(
            tickets.consume(b.expose(), &bob(), now),
            Err(TicketError::WrongAccount)
        );
        // Presenting it for the wrong account burnt it.
        assert_eq!(
            tickets.consume(b.expose(), &alice(), now),
            Err(TicketError::Unknown)
        );
        assert_eq!(
            tickets.consume("t=bogus&p=bogus", &alice(), now),
            Err(TicketError::Unknown)
        );
        assert_eq!(
            tickets.consume(&"x".repeat(MAX_TICKET_BYTES + 1), &alice(), now),
            Err(TicketError::Unknown)
        );
        assert!(tickets.is_empty());
    }

    #[test]
    fn tickets_expire_after_their_lifetime_and_are_purged() {
        let tickets = store(10);
        let start = Instant::now();
        let a = tickets.issue(AccountId(1), &alice(), start);
        let b = tickets.issue(AccountId(1), &alice(), start);
        let almost = start + Duration::from_secs(59);
        assert_eq!(
            tickets.consume(a.expose(), &alice(), almost),
            Ok(AccountId(1))
        );
        let later = start + Duration::from_secs(60);
        // b is still in the map when it is looked up, so it is reported as expired...
        let c = tickets.issue(AccountId(1), &alice(), almost);
        assert_eq!(
            tickets.consume(b.expose(), &alice(), later),
            Err(TicketError::Expired)
        );
        // ...and an expired ticket nobody presents is purged by the next call.
        let d = tickets.issue(AccountId(1), &alice(), later);
        assert_eq!(tickets.len(), 2);
        let much_later = later + Duration::from_secs(120);
        assert_eq!(
            tickets.consume(c.expose(), &alice(), much_later),
            Err(TicketError::Expired)
        );
        assert_eq!(
            tickets.consume(d.expose(), &alice(), much_later),
            Err(TicketError::Unknown)
        );
        assert!(tickets.is_empty());
    }

    #[test]
    fn the_lifetime_is_capped_at_two_minutes() {
        let tickets = TicketStore::new(TicketSettings {
            lifetime: Duration::from_secs(3600),
            capacity: 10,
        });
        let start = Instant::now();
        let a = tickets.issue(AccountId(1), &alice(), start);
        assert_eq!(
            tickets.consume(a.expose(), &alice(), start + MAX_TICKET_LIFETIME),
            Err(TicketError::Expired)
        );
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_oldest_ticket() {
        let tickets = store(3);
        let now = Instant::now();
        let issued: Vec<_> = (0..5)
            .map(|i| tickets.issue(AccountId(i), &alice(), now))
            .collect();
        assert_eq!(tickets.len(), 3);
        assert_eq!(
            tickets.consume(issued[0].expose(), &alice(), now),
            Err(TicketError::Unknown)
        );
        assert_eq!(
            tickets.consume(issued[4].expose(), &alice(), now),
            Ok(AccountId(4))
        );
        // Consumed tickets leave stale order entries; they never let the queue grow past the cap.
        for i in 0..20 {
            let t = tickets.issue(AccountId(i), &alice(), now);
            assert!(tickets.consume(t.expose(), &alice(), now).is_ok());
        }
        assert!(tickets.lock().order.len() <= 3);
    }
}
