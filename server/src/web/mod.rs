//! The website: people register, sign in and run their own account (tokens, contacts and
//! privacy, connecting a client); admins run the server (users online, accounts, invite
//! codes, broadcasts, maintenance) and a JSON management API under `/api/` with an OpenAPI
//! document generated from its handlers.
//!
//! Served by the same axum stack as Passport on the plain HTTP and HTTPS listeners
//! ([`crate::http::HttpService::merge`]). Server-rendered HTML (maud), one small stylesheet,
//! no JavaScript needed.
//!
//! Security: the session cookie is `HttpOnly`, `SameSite=Strict`, and `Secure` when the request
//! came over TLS; every form carries a CSRF token that must equal the visitor's `relive_csrf`
//! cookie (double submit, compared in constant time); every response carries a CSP without
//! scripts, `frame-ancestors 'none'`, `nosniff` and no referrer. Sign-in goes through the
//! Passport rate limiter ([`crate::passport::RateLimiter::attempt`]) under the handle and the
//! source address, and so does a password reset; register, sign-in and reset answer alike
//! whether or not a handle exists.
//!
//! Password resets: the server sends no mail, so an admin issues a one-time code (admin page,
//! `POST /api/accounts/{handle}/reset-code`, or `relive-server user reset-code EMAIL`; 24 hours,
//! stored hashed, a new one replaces the old) and the owner sets a new password with it on
//! `/reset`, which ends the account's website sessions and leaves its tokens alone.
//! Nothing here logs a password, token, session id, API key or reset code.
//!
//! # Layout
//!
//! - [`devices`]: which token and client version each online session uses.
//! - [`pages`]: the user pages.
//! - [`history`]: the opt-in message history (setting, list, view, search, export, delete).
//! - [`mail`]: the mailbox and pager pages and the Messenger's inbox sign-in (`POST /`).
//! - [`admin`]: the admin pages and the actions the API shares.
//! - [`api`]: the JSON API and its OpenAPI document.

pub mod admin;
pub mod api;
pub mod devices;
pub mod history;
pub mod mail;
pub mod pages;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use relive_msnp::types::Token;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use tokio_util::sync::CancellationToken;

pub use devices::Devices;

use crate::http::Peer;
use crate::hub::Hub;
use crate::passport::{Endpoints, PassportService, Transport};
use crate::store::{Account, Store, StoreError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "relive_session";

/// The CSRF cookie (double submit: every form repeats its value).
pub const CSRF_COOKIE: &str = "relive_csrf";

/// Shortest password the website accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// The `Content-Security-Policy` of every page: only this site's stylesheet and its one small
/// script (the optional copy button), no inline code, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'";

/// Who may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone.
    #[default]
    Open,
    /// Anyone with an unused invite code from an admin.
    Invite,
    /// Nobody (the operator creates accounts with `relive-server user add`).
    Closed,
}

/// The `[web]` table of `relive.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Who may register: `open`, `invite` or `closed`.
    pub registration: Registration,
}

/// A maintenance countdown in progress.
#[derive(Debug)]
struct Maintenance {
    ends: Instant,
    cancel: CancellationToken,
}

/// What the website's handlers share. Built once per server ([`crate::Context`]).
pub struct Web {
    config: WebConfig,
    store: Store,
    passport: PassportService,
    hub: Arc<Hub>,
    devices: Arc<Devices>,
    history: Arc<crate::switchboard::History>,
    ns_address: Arc<RwLock<Token>>,
    endpoints: RwLock<Endpoints>,
    relay_quic_port: Option<u16>,
    data_dir: PathBuf,
    started: Instant,
    /// A bcrypt hash at the store's cost, checked when a handle has no account so a failed
    /// sign-in takes as long either way.
    dummy_hash: OnceLock<String>,
    maintenance: Mutex<Option<Maintenance>>,
    /// The inbox sign-in grants of the sessions online ([`crate::mailbox`]).
    inbox: crate::mailbox::InboxGrants,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What [`Web::new`] is built from.
#[derive(Debug)]
pub struct WebParts {
    /// The `[web]` settings.
    pub config: WebConfig,
    /// The store.
    pub store: Store,
    /// Passport (its rate limiter guards sign-in).
    pub passport: PassportService,
    /// Who is online.
    pub hub: Arc<Hub>,
    /// Sessions' devices.
    pub devices: Arc<Devices>,
    /// The switchboard's history recorder (the setting takes effect there at once).
    pub history: Arc<crate::switchboard::History>,
    /// The NS address clients are told.
    pub ns_address: Arc<RwLock<Token>>,
    /// The HTTP(S) endpoints (re-set once listeners are bound).
    pub endpoints: Endpoints,
    /// The relay's QUIC port, when companion agents are enabled.
    pub relay_quic_port: Option<u16>,
    /// The data directory (certificates).
    pub data_dir: PathBuf,
}

impl Web {
    /// The shared state.
    #[must_use]
    pub fn new(parts: WebParts) -> Arc<Self> {
        Arc::new(Self {
            config: parts.config,
            store: parts.store,
            passport: parts.passport,
            hub: parts.hub,
            devices: parts.devices,
            history: parts.history,
            ns_address: parts.ns_address,
            endpoints: RwLock::new(parts.endpoints),
            relay_quic_port: parts.relay_quic_port,
            data_dir: parts.data_dir,
            started: Instant::now(),
            dummy_hash: OnceLock::new(),
            maintenance: Mutex::new(None),
            inbox: crate::mailbox::InboxGrants::new(),
        })
    }

    /// Records the listeners' real ports (the connect page names them).
    pub fn set_endpoints(&self, endpoints: &Endpoints) {
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = endpoints.clone();
    }

    fn endpoints(&self) -> Endpoints {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn ns_address(&self) -> String {
        self.ns_address
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_str()
            .to_owned()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The hub.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The inbox sign-in grants.
    #[must_use]
    pub fn inbox(&self) -> &crate::mailbox::InboxGrants {
        &self.inbox
    }

    /// This server's plain-HTTP base URL (no trailing slash).
    #[must_use]
    pub fn website(&self) -> String {
        self.endpoints().website()
    }
}

/// The website's routes (merged next to Passport's).
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(pages::home).post(mail::root_post))
        .route("/style.css", get(stylesheet))
        .route("/copy.js", get(copy_script))
        .route("/register", get(pages::register_form).post(pages::register))
        .route("/signin", get(pages::signin_form).post(pages::signin))
        .route("/signout", post(pages::signout))
        .route("/reset", get(pages::reset_form).post(pages::reset))
        .route("/account", get(pages::account))
        .route("/account/name", post(pages::change_name))
        .route("/account/password", post(pages::change_password))
        .route("/account/delete", post(pages::delete_account))
        .route("/tokens", get(pages::tokens).post(pages::create_token))
        .route("/tokens/revoke", post(pages::revoke_token))
        .route("/contacts", get(pages::contacts))
        .route("/contacts/privacy", post(pages::privacy))
        .route("/contacts/block", post(pages::block))
        .route("/connect", get(pages::connect))
        .route("/connect/relive.reg", get(pages::reg_file))
        .merge(history::routes())
        .merge(mail::routes())
        .merge(admin::routes())
        .merge(api::routes())
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(web)
}

/// Adds the security headers to every website response.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

async fn copy_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("copy.js"),
    )
        .into_response()
}

/// A failure of a website handler: logged, answered with a plain error page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An account operation failed unexpectedly.
    #[error(transparent)]
    Account(#[from] crate::store::AccountError),
    /// A token operation failed unexpectedly.
    #[error(transparent)]
    Token(#[from] crate::store::TokenError),
    /// A list operation failed unexpectedly.
    #[error(transparent)]
    List(#[from] crate::store::ListError),
    /// The CSRF token of a form did not match.
    #[error("CSRF token missing or wrong")]
    Csrf,
    /// Not signed in / not an admin.
    #[error("forbidden")]
    Forbidden,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired. Go back, reload the page and try again.",
            ),
            Self::Forbidden => (StatusCode::FORBIDDEN, "You may not do that."),
            other => {
                tracing::error!(error = %other, "website: request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the server. Try again later.",
                )
            }
        };
        (
            status,
            shell("Error", None, false, "", &html! { p.notice { (text) } }),
        )
            .into_response()
    }
}

/// The cookie named `name` in `headers`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Who is asking: their session's account (if signed in), their CSRF token, and how the request
/// arrived. An extractor every website handler takes.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The signed-in account.
    pub account: Option<Account>,
    /// Whether that account is an admin.
    pub admin: bool,
    /// The session cookie value, when signed in.
    session: Option<String>,
    /// The CSRF token forms must repeat.
    pub csrf: String,
    /// Whether the CSRF cookie must be set with this response.
    new_csrf: bool,
    /// The request came over TLS (cookies get `Secure`).
    pub secure: bool,
    /// The client's address.
    pub ip: std::net::IpAddr,
}

impl FromRequestParts<Arc<Web>> for Visitor {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, WebError> {
        let peer = parts.extensions.get::<Peer>().copied();
        let secure = peer.is_some_and(|p| p.transport != Transport::Plain);
        let ip = peer.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |p| p.addr.ip());
        let session = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|v| v.len() <= 64)
            .map(str::to_owned);
        let account = match &session {
            Some(id) => web.store.web_session(id).await?,
            None => None,
        };
        let admin = match &account {
            Some(a) => web.store.is_admin(a.id).await?,
            None => false,
        };
        let (csrf, new_csrf) = match cookie(&parts.headers, CSRF_COOKIE).filter(|v| {
            (20..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            Some(v) => (v.to_owned(), false),
            None => (crate::store::web::random_secret(24)?, true),
        };
        Ok(Self {
            session: session.filter(|_| account.is_some()),
            account,
            admin,
            csrf,
            new_csrf,
            secure,
            ip,
        })
    }
}

impl Visitor {
    /// Checks a form's CSRF token against the cookie (a fresh cookie never matches a form).
    ///
    /// # Errors
    ///
    /// [`WebError::Csrf`].
    pub fn check(&self, form_token: &str) -> Result<(), WebError> {
        if self.new_csrf || !bool::from(self.csrf.as_bytes().ct_eq(form_token.as_bytes())) {
            return Err(WebError::Csrf);
        }
        Ok(())
    }

    /// The signed-in account.
    ///
    /// # Errors
    ///
    /// [`WebError::Forbidden`] when nobody is signed in.
    pub fn account(&self) -> Result<&Account, WebError> {
        self.account.as_ref().ok_or(WebError::Forbidden)
    }

    fn cookie_attrs(&self) -> &'static str {
        if self.secure {
            "; Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// A `Set-Cookie` value for the session.
    fn session_cookie(&self, value: &str) -> String {
        format!(
            "{SESSION_COOKIE}={value}{}; Max-Age={}",
            self.cookie_attrs(),
            crate::store::web::SESSION_LIFETIME_SECS
        )
    }

    /// A `Set-Cookie` value that removes the session cookie.
    fn clear_session_cookie(&self) -> String {
        format!("{SESSION_COOKIE}={}; Max-Age=0", self.cookie_attrs())
    }

    /// A full HTML page for this visitor (sets the CSRF cookie when it is new).
    pub fn page(&self, title: &str, body: &Markup) -> Response {
        let mut response =
            shell(title, self.account.as_ref(), self.admin, &self.csrf, body).into_response();
        self.with_csrf_cookie(&mut response);
        response
    }

    fn with_csrf_cookie(&self, response: &mut Response) {
        if self.new_csrf
            && let Ok(v) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}={}{}",
                self.csrf,
                self.cookie_attrs()
            ))
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// `303 See Other` to `to`, with extra `Set-Cookie` values.
fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .body(Body::empty())
        .unwrap_or_default();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A hidden CSRF field for a form.
fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// The page around `body`: header with the buddy logo and navigation, footer.
fn shell(title: &str, account: Option<&Account>, admin: bool, csrf: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Relive" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header.top {
                    a.brand href="/" {
                        span.buddy.green {} span.buddy.blue {}
                        " Relive " small { "Messenger" }
                    }
                    nav {
                        @if let Some(a) = account {
                            a href="/mail" { "Mail" }
                            a href="/mobile" { "Mobile" }
                            a href="/tokens" { "Tokens" }
                            a href="/contacts" { "Contacts" }
                            a href="/history" { "History" }
                            a href="/connect" { "Connect" }
                            a href="/account" { "Account" }
                            @if admin { a href="/admin" { "Admin" } }
                            form.inline method="post" action="/signout" {
                                (csrf_field(csrf))
                                button.link type="submit" title=(a.email.as_str()) { "Sign out" }
                            }
                        } @else {
                            a href="/connect" { "Connect" }
                            a href="/signin" { "Sign in" }
                            a href="/register" { "Register" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { "Relive — a home for MSN Messenger 1.0–7.5. " (PreEscaped("&middot;")) " No JavaScript needed." }
                script src="/copy.js" defer {}
            }
        }
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), for the CLI and the pages.
#[must_use]
pub fn format_utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole i64 day range we store.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn when(unix: i64) -> String {
    let mut text = format_utc(unix);
    text.truncate(16);
    text.push_str(" UTC");
    text
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xrelive_csrf=no; relive_csrf=yes"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("yes"));
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
    }
}
