//! The Passport 1.4 login decision, without sockets: parse the `Authorization` header, ask the
//! rate limiter, check the secret against the store, issue a ticket.
//!
//! The header the clients send (PROTOCOL.md §2.3.3):
//!
//! ```text
//! Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=alice%40example.com,pwd=<urlenc>,<twn-params>
//! ```
//!
//! The secret is an access token (always accepted, through `Store::verify_plain`) or, if the
//! account allows password logins, its bcrypt password (`Store::verify_password`), which is only
//! accepted over TLS unless configured otherwise. Nothing here logs the header, the secret or
//! the ticket.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use relive_msnp::types::Passport;

use super::rate_limit::{Ceiling, RateLimiter, Refused};
use super::settings::PassportSettings;
use super::tickets::{Ticket, TicketError, TicketStore};
use crate::metrics::{LoginMethod, LoginResult, Logins};
use crate::secret::Secret;
use crate::store::tokens::{TokenCheck, TokenLogin};
use crate::store::{AccountId, Store, StoreError, TokenId};

pub use relive_msnp::passport::{AuthorizationError, MAX_AUTHORIZATION_BYTES, MAX_SECRET_BYTES};

/// Where time comes from. Production uses [`system_clock`]; tests inject their own.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The real monotonic clock.
#[must_use]
pub fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

/// How the login request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP.
    Plain,
    /// HTTPS through rustls (TLS 1.2/1.3).
    Tls,
    /// The legacy-TLS listener (TLS 1.0+ through OpenSSL).
    LegacyTls,
}

impl Transport {
    /// Whether the request was encrypted.
    #[must_use]
    pub const fn is_encrypted(self) -> bool {
        !matches!(self, Self::Plain)
    }
}

/// The credentials of one login request. `Debug` hides the secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The handle (`sign-in`).
    pub handle: Passport,
    /// The token or password (`pwd`).
    pub secret: Secret,
}

impl Credentials {
    /// Parses an `Authorization` header value ([`relive_msnp::passport::Authorization`]: a
    /// repeated `sign-in` or `pwd` is refused).
    ///
    /// # Errors
    ///
    /// [`AuthorizationError`].
    pub fn from_authorization(value: &str) -> Result<Self, AuthorizationError> {
        let parsed = relive_msnp::passport::Authorization::parse(value)?;
        Ok(Self {
            handle: parsed.handle,
            secret: Secret::new(parsed.secret),
        })
    }
}

/// Why the credentials of a login were refused: for the server's log only (NS and Passport
/// log it at info level with the handle, never the secret). Every client is told the same
/// (`911`, HTTP 401), so nobody learns whether an account exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginFailure {
    /// No account has this handle.
    #[error("unknown account")]
    UnknownAccount,
    /// No active token matches (nor the password, where passwords are allowed).
    #[error("wrong secret")]
    WrongSecret,
    /// The secret is one of the account's revoked tokens.
    #[error("revoked token")]
    RevokedToken,
    /// `USR TWN S`: the ticket was not accepted.
    #[error("ticket not accepted: {0}")]
    Ticket(#[from] TicketError),
}

/// Why a login did not produce a ticket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Too many recent failures from this source (HTTP 503, NS 911).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Unknown account, wrong secret, or a password where only tokens are allowed (HTTP 401).
    #[error("authentication failed: {0}")]
    Failed(LoginFailure),
    /// The store failed (HTTP 500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The Passport service: tickets, rate limiting and credential checks. Cheap to clone.
#[derive(Clone)]
pub struct PassportService {
    store: Store,
    tickets: Arc<TicketStore>,
    limiter: Arc<RateLimiter>,
    clock: Clock,
    password_over_plain_http: bool,
    logins: Logins,
    /// Cluster mode: the network-wide ticket bucket ([`Self::set_cluster_tickets`]).
    cluster: Arc<std::sync::OnceLock<crate::cluster::tickets::ClusterTickets>>,
}

impl std::fmt::Debug for PassportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassportService")
            .field("tickets", &self.tickets.len())
            .field("password_over_plain_http", &self.password_over_plain_http)
            .finish_non_exhaustive()
    }
}

impl PassportService {
    /// A service over `store` with the limits in `settings` and the system clock.
    #[must_use]
    pub fn new(store: Store, settings: &PassportSettings) -> Self {
        Self::with_clock(store, settings, system_clock())
    }

    /// A service with an injected clock (tests).
    #[must_use]
    pub fn with_clock(store: Store, settings: &PassportSettings, clock: Clock) -> Self {
        Self {
            store,
            tickets: Arc::new(TicketStore::new(settings.tickets())),
            limiter: Arc::new(RateLimiter::new(settings.rate_limit())),
            clock,
            password_over_plain_http: settings.password_over_plain_http,
            logins: Logins::new(),
            cluster: Arc::default(),
        }
    }

    /// Login attempts by method and result: Passport logins count themselves here, the NS
    /// counts its `USR` logins (the metrics endpoint reads them).
    #[must_use]
    pub fn logins(&self) -> &Logins {
        &self.logins
    }

    /// The current time of this service's clock.
    #[must_use]
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// The account store this service checks credentials against.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The ticket store (shared with the NS).
    #[must_use]
    pub fn tickets(&self) -> &Arc<TicketStore> {
        &self.tickets
    }

    /// The login rate limiter (shared with the NS, e.g. for MD5 logins, and the relay's agent
    /// check).
    #[must_use]
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// `USR TWN S <ticket>` for the handle given in `USR TWN I`: consumes the ticket.
    ///
    /// # Errors
    ///
    /// [`TicketError`]; the NS answers `911`.
    pub fn consume_ticket(
        &self,
        ticket: &str,
        handle: &Passport,
    ) -> Result<AccountId, TicketError> {
        self.tickets.consume(ticket, handle, self.now())
    }

    /// [`Self::consume_ticket`], also giving the access token the login used (`None`: the
    /// password).
    ///
    /// # Errors
    ///
    /// [`TicketError`]; the NS answers `911`.
    pub fn consume_ticket_with_token(
        &self,
        ticket: &str,
        handle: &Passport,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        self.tickets.consume_with_token(ticket, handle, self.now())
    }

    /// Cluster mode: a ticket this node does not hold is asked for on the network, so a
    /// ticket from any node logs in on any NS node, once ([`crate::cluster::tickets`]).
    pub fn set_cluster_tickets(&self, tickets: crate::cluster::tickets::ClusterTickets) {
        let _ = self.cluster.set(tickets);
    }

    /// [`Self::consume_ticket_with_token`] wherever the ticket was issued: here, else (in
    /// cluster mode) on the node that holds it.
    ///
    /// # Errors
    ///
    /// [`TicketError`]; the NS answers `911`.
    pub async fn consume_ticket_anywhere(
        &self,
        ticket: &str,
        handle: &Passport,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        match (
            self.consume_ticket_with_token(ticket, handle),
            self.cluster.get(),
        ) {
            (Err(TicketError::Unknown), Some(cluster)) => cluster.consume(ticket, handle).await,
            (here, _) => here,
        }
    }

    /// Consumes a ticket held here by its SHA-256, for another cluster node.
    ///
    /// # Errors
    ///
    /// [`TicketError`].
    pub fn consume_ticket_digest(
        &self,
        digest: &[u8; 32],
        handle: &Passport,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        self.tickets.consume_digest(digest, handle, self.now())
    }

    /// Checks `credentials` for a request from `from` over `transport` and issues a ticket.
    ///
    /// # Errors
    ///
    /// [`LoginError`].
    pub async fn login(
        &self,
        credentials: &Credentials,
        from: IpAddr,
        transport: Transport,
    ) -> Result<Ticket, LoginError> {
        let outcome = self.check_login(credentials, from, transport).await;
        let result = match &outcome {
            Ok(_) => LoginResult::Ok,
            Err(LoginError::Refused(_)) => LoginResult::Refused,
            Err(LoginError::Failed(_)) => LoginResult::Failed,
            Err(LoginError::Store(_)) => LoginResult::Error,
        };
        self.logins.record(LoginMethod::Passport, result);
        outcome
    }

    async fn check_login(
        &self,
        credentials: &Credentials,
        from: IpAddr,
        transport: Transport,
    ) -> Result<Ticket, LoginError> {
        let verified = self
            .limiter
            .attempt(
                credentials.handle.as_str(),
                from,
                &*self.clock,
                Ceiling::Wait,
                self.verify(credentials, transport),
            )
            .await??;
        match verified {
            Ok((account, token)) => {
                Ok(self
                    .tickets
                    .issue_for_token(account, token, &credentials.handle, self.now()))
            }
            Err(why) => Err(LoginError::Failed(why)),
        }
    }

    async fn verify(
        &self,
        credentials: &Credentials,
        transport: Transport,
    ) -> Result<Result<(AccountId, Option<TokenId>), LoginFailure>, StoreError> {
        let check = TokenCheck::Plain(credentials.secret.clone());
        let Some(TokenLogin {
            account,
            token,
            revoked,
            ..
        }) = self
            .store
            .token_login(&credentials.handle, check, false)
            .await?
        else {
            return Ok(Err(LoginFailure::UnknownAccount));
        };
        if token.is_some() {
            return Ok(Ok((account.id, token)));
        }
        let refused = if revoked {
            LoginFailure::RevokedToken
        } else {
            LoginFailure::WrongSecret
        };
        if revoked
            || !account.allow_password_login
            || !(transport.is_encrypted() || self.password_over_plain_http)
        {
            return Ok(Err(refused));
        }
        let checked = self
            .store
            .verify_password(&credentials.handle, &credentials.secret)
            .await?;
        Ok(checked
            .filter(|a| a.id == account.id)
            .map(|a| (a.id, None))
            .ok_or(refused))
    }
}
