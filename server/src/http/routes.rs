//! The HTTP handlers: Passport nexus, Passport login, MsgrConfig.
//!
//! ```text
//! GET  /rdr/pprdr.asp            → 200, PassportURLs: DARealm=...,DALogin=...
//! GET  /login2.srf               → 200 Authentication-Info (ticket) | 401 WWW-Authenticate | 503
//! POST /RST.srf                  → 200 text/xml WS-Trust tokens (ticket) | 200 SOAP fault | 400 | 503
//! POST /                         → 200, empty (MSN 7.5's "key port" probe of the login server)
//! GET  /Config/MsgrConfig.asmx   → 200 text/xml <MsgrConfig> document
//! POST /Config/MsgrConfig.asmx   → 200 text/xml SOAP GetClientConfigResponse wrapping it
//! GET  /mail /profile /download  → 200 text/html: what this server offers there today
//! GET  /                         → the website's home ([`crate::web`])
//! GET  /relive-ca.crt            → 200 the CA certificate clients trust (PEM) | 404
//! GET  /relive-ca-legacy.crt     → 200 the legacy-TLS (RSA) CA for Windows XP | 404
//! ```
//!
//! `/nexus` and `/config` answer like the nexus and MsgrConfig: relive-patch writes these
//! shorter paths into a client when the original URL would not fit with the host and port.
//! The certificates ([`certificates`]) are public (a client must trust them anyway): the
//! desktop app fetches `relive-ca.crt` over plain HTTP and shows its fingerprint to compare
//! with the one `relive-server` prints.
//!
//! The last four are where the NS's `URL` and `CVR` links point (the client opens them in a
//! browser); they say plainly what exists, until the website replaces them.
//!
//! The login route is also served at the configured `nexus.path` when that differs.
//!
//! `RST.srf` (MSNP12, MSN 7.5; [`relive_msnp::rst`]) checks the credentials of the SOAP request
//! through the same [`PassportService::login`] as `login2.srf`, so it issues the same tickets,
//! counts against the same rate limiter and tells an unknown account from a wrong secret no
//! more than `login2.srf` does: both get the same `wsse:FailedAuthentication` fault, byte for
//! byte (HTTP 200, as the PP3-era clients expect; see the module doc of `relive_msnp::rst`).
//! A rate-limited request gets `503` with `Retry-After`, as at `login2.srf`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rand::RngCore as _;
use relive_msnp::rst::{self, RstRequest};
use relive_msnp::types::Passport;

use super::Peer;
use super::legacy::LegacyCertPaths;
use super::lenient::PassportPaths;
use crate::passport::{Credentials, LoginError, PassportService, Transport};
use crate::secret::Secret;
use crate::tls::CertPaths;

/// The nexus path (`PassportURLs`).
pub const NEXUS_PATH: &str = "/rdr/pprdr.asp";

/// The Passport 1.4 login path.
pub const LOGIN_PATH: &str = "/login2.srf";

/// The MSNP12 (Passport 3.0, WS-Trust) login path.
pub const RST_PATH: &str = "/RST.srf";

/// How long the tokens `RST.srf` issues say they live: a day, as the service said, so a client
/// clock a few minutes off does not see them expire at once. (The ticket inside is single-use
/// and expires after `passport.ticket_lifetime_secs` whatever this says.)
const RST_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

const MSGR_CONFIG_PATH: &str = "/Config/MsgrConfig.asmx";

/// The shorter nexus path (relive-patch's `SHORT_PATHS`).
pub const SHORT_NEXUS_PATH: &str = "/nexus";

/// The shorter MsgrConfig path (relive-patch's `SHORT_PATHS`).
pub const SHORT_MSGR_CONFIG_PATH: &str = "/config";

/// Where the CA certificate clients trust is published (the file `cert export` writes).
pub const CA_PATH: &str = "/relive-ca.crt";

/// Where the legacy-TLS CA certificate is published, when there is one.
pub const LEGACY_CA_PATH: &str = "/relive-ca-legacy.crt";

/// The pages the NS links to: `CVR`'s info and download links, `URL`'s mail and profile links.
pub const LINKED_PAGES: [&str; 3] = ["/", "/profile", "/download"];

/// The nexus header name, spelled as the clients look it up (see [`super::case`]).
pub const PASSPORT_URLS: HeaderName = HeaderName::from_static("passporturls");

/// The login success header.
pub const AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("authentication-info");

/// The `WWW-Authenticate` value of a failed login (transcript 11): libpurple shows the
/// URL-decoded `cbtxt`.
pub const LOGIN_FAILED: &str = "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,\
cbtxt=The%20e-mail%20address%20or%20password%20is%20incorrect";

/// Where the client goes after a login (`ru=`), as the official service said.
const RETURN_URL: &str = "http://messenger.msn.com";

/// The configuration document MSN Messenger 6+ fetches at sign-in. Minimal: no tabs, no
/// "MSN Today", phone dialer off. The element names follow what revival servers answer
/// (Escargot, CrossTalk) and yellows111's MsgrConfig notes: a `<MsgrConfig>` root with a
/// `<Simple>` section; a failed or empty fetch only removes that UI (PROTOCOL.md §6).
pub const MSGR_CONFIG: &str = "<MsgrConfig>\
<Simple>\
<Config><ExpiresInDays>0</ExpiresInDays></Config>\
<DisablePhoneDialer>1</DisablePhoneDialer>\
<Relay><Enabled>0</Enabled></Relay>\
</Simple>\
</MsgrConfig>";

/// The nexus's `PassportURLs` value for each kind of listener
/// ([`crate::passport::NexusSettings::passport_urls_for`]).
#[derive(Debug, Clone)]
pub struct NexusAnswers {
    /// Over HTTPS (rustls).
    pub tls: HeaderValue,
    /// Over the legacy-TLS listener.
    pub legacy: HeaderValue,
    /// Over plain HTTP.
    pub plain: HeaderValue,
}

/// State of the routes.
#[derive(Debug, Clone)]
pub struct RouteState {
    passport: PassportService,
    passport_urls: Arc<RwLock<NexusAnswers>>,
}

impl RouteState {
    /// State answering the nexus with the current value of `passport_urls`.
    #[must_use]
    pub const fn new(passport: PassportService, passport_urls: Arc<RwLock<NexusAnswers>>) -> Self {
        Self {
            passport,
            passport_urls,
        }
    }
}

/// The router. `login_path` is the configured `DALogin` path (served besides `/login2.srf`).
pub fn router(state: RouteState, login_path: &str) -> Router {
    let mut router = Router::new()
        .route(NEXUS_PATH, get(nexus))
        .route(SHORT_NEXUS_PATH, get(nexus))
        .route(LOGIN_PATH, get(login))
        .route(
            RST_PATH,
            post(rst_login).layer(DefaultBodyLimit::max(rst::MAX_REQUEST_BYTES)),
        );
    for path in [MSGR_CONFIG_PATH, SHORT_MSGR_CONFIG_PATH] {
        router = router.route(path, get(msgr_config_get).post(msgr_config_post));
    }
    // `/` is the website's home ([`crate::web`]), which also answers MSN 7.5's empty
    // `POST /` probe of the login server ([`key_port_probe`]).
    for path in LINKED_PAGES.into_iter().filter(|p| *p != "/") {
        router = router.route(path, get(linked_page));
    }
    if is_extra_login_path(login_path) {
        router = router.route(login_path, get(login));
    }
    router.fallback(not_found).with_state(state)
}

/// The Passport paths [`router`] serves for `login_path`: the ones whose requests
/// [`super::lenient`] normalises.
#[must_use]
pub fn passport_paths(login_path: &str) -> PassportPaths {
    let extra = is_extra_login_path(login_path).then_some(login_path);
    PassportPaths::new(
        [NEXUS_PATH, SHORT_NEXUS_PATH, LOGIN_PATH, RST_PATH]
            .into_iter()
            .chain(extra),
    )
}

/// Whether `login_path` gets a route of its own: only plain literal paths (axum would treat
/// `{x}`, `*x` or `:x` segments specially, and panics on a route that is already taken).
fn is_extra_login_path(login_path: &str) -> bool {
    let literal = login_path.starts_with('/')
        && login_path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._~-".contains(&b));
    literal
        && ![
            NEXUS_PATH,
            SHORT_NEXUS_PATH,
            LOGIN_PATH,
            RST_PATH,
            MSGR_CONFIG_PATH,
            SHORT_MSGR_CONFIG_PATH,
            CA_PATH,
            LEGACY_CA_PATH,
        ]
        .contains(&login_path)
        && !LINKED_PAGES.contains(&login_path)
}

async fn nexus(State(state): State<RouteState>, Extension(peer): Extension<Peer>) -> Response {
    let urls = {
        let answers = state
            .passport_urls
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match peer.transport {
            Transport::Tls => answers.tls.clone(),
            Transport::LegacyTls => answers.legacy.clone(),
            Transport::Plain => answers.plain.clone(),
        }
    };
    ([(PASSPORT_URLS, urls)], Body::empty()).into_response()
}

/// Lines about refused logins: a source that keeps guessing gets a few a minute, the rest
/// are counted in the next one.
static REFUSAL_LOG: relive_relay::limits::LogBudget =
    relive_relay::limits::LogBudget::new(10, std::time::Duration::from_secs(60));

fn failed() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(LOGIN_FAILED),
        )],
        Body::empty(),
    )
        .into_response()
}

async fn login(
    State(state): State<RouteState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(Credentials::from_authorization);
    let credentials = match credentials {
        Some(Ok(c)) => c,
        Some(Err(error)) => {
            tracing::info!(%error, "login2.srf: unusable Authorization header");
            return failed();
        }
        None => return failed(),
    };
    match state
        .passport
        .login(&credentials, peer.addr.ip(), peer.transport)
        .await
    {
        Ok(ticket) => {
            tracing::info!(handle = %credentials.handle, "passport login succeeded");
            let info = format!(
                "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,\
                 from-PP='{}',ru={RETURN_URL}",
                ticket.expose()
            );
            match HeaderValue::from_str(&info) {
                Ok(value) => ([(AUTHENTICATION_INFO, value)], Body::empty()).into_response(),
                // Tickets are base64url; this cannot happen, but never panic on it.
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Err(error) => login_failed("passport", &credentials, &peer, error, failed),
    }
}

/// The answer of both login endpoints (`login2.srf` logs as "passport", `RST.srf`) to a login
/// that did not issue a ticket, with its log line (the handle and why; never the secret): the
/// endpoint's own failure for wrong credentials, `503` for a rate-limited one, `500` for a
/// store failure.
fn login_failed(
    endpoint: &'static str,
    credentials: &Credentials,
    peer: &Peer,
    error: LoginError,
    failed: impl FnOnce() -> Response,
) -> Response {
    match error {
        LoginError::Failed(why) => {
            tracing::info!(handle = %credentials.handle, reason = %why, "{endpoint} login failed");
            failed()
        }
        LoginError::Refused(refused) => {
            if let Some(suppressed) = REFUSAL_LOG.take(std::time::Instant::now()) {
                tracing::warn!(
                    handle = %credentials.handle,
                    peer = %peer.addr,
                    suppressed,
                    "{endpoint} login rate-limited"
                );
            }
            rate_limited(&refused)
        }
        LoginError::Store(error) => {
            tracing::error!(%error, "{endpoint} login: store failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `503` with `Retry-After` (whole seconds, rounded up so a client that waits that long is
/// allowed): the answer of both login endpoints to a rate-limited request.
fn rate_limited(refused: &crate::passport::Refused) -> Response {
    let secs = refused.retry_after.as_secs() + u64::from(refused.retry_after.subsec_nanos() > 0);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from(secs))],
        Body::empty(),
    )
        .into_response()
}

/// A SOAP answer of `RST.srf`.
fn soap(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `POST /RST.srf`: the MSNP12 login (module doc).
async fn rst_login(
    State(state): State<RouteState>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> Response {
    let request = match RstRequest::parse(&body) {
        Ok(r) => r,
        Err(error) => {
            tracing::info!(%error, bytes = body.len(), "RST.srf: not a token request");
            return soap(StatusCode::BAD_REQUEST, rst::BAD_REQUEST.to_owned());
        }
    };
    let failed = || soap(StatusCode::OK, rst::AUTH_FAILED.to_owned());
    // A user name that is no handle fails like an unknown account (as at login2.srf).
    let Ok(handle) = Passport::parse(&request.username) else {
        tracing::info!("RST.srf: the user name is not a valid handle");
        return failed();
    };
    let credentials = Credentials {
        handle,
        secret: Secret::new(request.password.clone()),
    };
    match state
        .passport
        .login(&credentials, peer.addr.ip(), peer.transport)
        .await
    {
        Ok(ticket) => {
            tracing::info!(handle = %credentials.handle, "RST.srf login succeeded");
            let member_id = match state.passport.store().account(&credentials.handle).await {
                Ok(Some(a)) => a.member_id,
                Ok(None) => 0,
                Err(error) => {
                    tracing::error!(%error, "RST.srf: store failed");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut proof = [0u8; 24];
            rand::rng().fill_bytes(&mut proof);
            let proof_key = base64::engine::general_purpose::STANDARD.encode(proof);
            let body = rst::issued(
                &request,
                &rst::Issued {
                    handle: credentials.handle.as_str(),
                    member_id,
                    ticket: ticket.expose(),
                    now,
                    lifetime: RST_TOKEN_LIFETIME_SECS,
                    proof_key: &proof_key,
                },
            );
            soap(StatusCode::OK, body)
        }
        Err(error) => login_failed("RST.srf", &credentials, &peer, error, failed),
    }
}

/// `POST /` with no content: MSN 7.5 checks that the login server's port answers.
pub(crate) async fn key_port_probe() -> StatusCode {
    StatusCode::OK
}

fn xml(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn msgr_config_get() -> Response {
    xml(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n{MSGR_CONFIG}"
    ))
}

async fn msgr_config_post() -> Response {
    xml(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\
         <soap:Body>\
         <GetClientConfigResponse xmlns=\"http://www.msn.com/webservices/Messenger/Client\">\
         <GetClientConfigResult><![CDATA[{MSGR_CONFIG}]]></GetClientConfigResult>\
         </GetClientConfigResponse>\
         </soap:Body>\
         </soap:Envelope>"
    ))
}

/// A page the client's buttons open ([`LINKED_PAGES`]): what this server has there today.
async fn linked_page(uri: axum::http::Uri) -> Response {
    let dialects = relive_msnp::version::ProtocolVersion::IMPLEMENTED;
    let what = match uri.path() {
        "/mail" => "There is no mail service on this server.".to_owned(),
        "/download" => format!(
            "Keep the MSN Messenger you have: this server speaks {} to {} and never asks a \
             client to upgrade. relive-patch or relive-gui points a client at this server: \
             <a href=\"/connect\">connect your client</a>.",
            dialects.start(),
            dialects.end()
        ),
        _ => "Profiles are not kept on this server.".to_owned(),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Relive</title></head>\
             <body><h1>Relive</h1><p>{what}</p></body></html>\n"
        ),
    )
        .into_response()
}

/// The routes publishing the CA certificates from `data_dir` ([`CA_PATH`],
/// [`LEGACY_CA_PATH`]). Each request reads the file, so a new CA is served at once, and a
/// missing one is a 404.
pub fn certificates(data_dir: &Path) -> Router {
    let ca = CertPaths::in_data_dir(data_dir).ca_cert;
    let legacy = LegacyCertPaths::in_data_dir(data_dir).ca_cert;
    Router::new()
        .route(
            CA_PATH,
            get(move || certificate(ca.clone(), "relive-ca.crt")),
        )
        .route(
            LEGACY_CA_PATH,
            get(move || certificate(legacy.clone(), "relive-ca-legacy.crt")),
        )
}

/// A PEM certificate file, as browsers offer to install it (`application/x-x509-ca-cert`).
async fn certificate(path: PathBuf, name: &'static str) -> Response {
    match tokio::fs::read(&path).await {
        Ok(pem) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-x509-ca-cert"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                        .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
                ),
            ],
            pem,
        )
            .into_response(),
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "certificate not served");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}
