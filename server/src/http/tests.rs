//! Socket-level tests of the HTTP side: every exchange goes over real TCP on 127.0.0.1:0, and
//! the responses are read as raw bytes so header spelling is checked exactly as sent.

use rustls::pki_types::pem::PemObject as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use relive_msnp::types::Passport;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[cfg(feature = "legacy-tls")]
use super::legacy::{LegacyCertPaths, LegacyTls, ensure_certificates, serve_legacy_connection};
use super::tls::{acceptor, serve_https_connection};
use super::{HttpService, serve_connection};
use crate::passport::{Clock, Endpoints, PassportService, PassportSettings, TicketError};
use crate::secret::Secret;
use crate::store::Store;
use crate::store::test_support::{fast_options, test_key};
use crate::tls::{CertPaths, ensure_certificates as ensure_main_certificates};

/// A clock the test moves by hand.
#[derive(Clone)]
struct ManualClock {
    base: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl ManualClock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap();
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn clock(&self) -> Clock {
        let this = self.clone();
        Arc::new(move || this.base + Duration::from_millis(this.offset_ms.load(Ordering::SeqCst)))
    }
}

struct Server {
    http: SocketAddr,
    https: SocketAddr,
    service: HttpService,
    store: Store,
    clock: ManualClock,
    cancel: CancellationToken,
    tracker: TaskTracker,
    dir: tempfile::TempDir,
    alice: Passport,
    alice_token: Secret,
    bob: Passport,
    bob_token: Secret,
}

impl Server {
    async fn start(settings: PassportSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_memory(test_key(), fast_options())
            .await
            .unwrap();
        let alice = Passport::parse("alice@example.com").unwrap();
        let bob = Passport::parse("bob@example.com").unwrap();
        let mut tokens = Vec::new();
        for handle in [&alice, &bob] {
            let account = store
                .create_account(handle, "Name", Secret::new("secret123".to_owned()))
                .await
                .unwrap();
            tokens.push(store.new_token(account.id, "test").await.unwrap().token);
        }
        let bob_token = tokens.pop().unwrap();
        let alice_token = tokens.pop().unwrap();

        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http, https) = (
            http_listener.local_addr().unwrap(),
            https_listener.local_addr().unwrap(),
        );
        let clock = ManualClock::new();
        let passport = PassportService::with_clock(store.clone(), &settings, clock.clock());
        let endpoints = Endpoints {
            public_host: "127.0.0.1".to_owned(),
            http_port: http.port(),
            https_port: https.port(),
            legacy_port: None,
        };
        let service = HttpService::new(passport, &settings, &endpoints).unwrap();

        let paths = CertPaths::in_data_dir(dir.path());
        ensure_main_certificates(&paths, "127.0.0.1").unwrap();
        let tls = acceptor(&paths).unwrap();

        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let svc = service.clone();
        spawn_accept(
            http_listener,
            &tracker,
            &cancel,
            move |stream, peer, cancel| serve_connection(stream, peer, svc.clone(), cancel),
        );
        let svc = service.clone();
        spawn_accept(
            https_listener,
            &tracker,
            &cancel,
            move |stream, peer, cancel| {
                serve_https_connection(stream, peer, svc.clone(), tls.clone(), cancel)
            },
        );
        Self {
            http,
            https,
            service,
            store,
            clock,
            cancel,
            tracker,
            dir,
            alice,
            alice_token,
            bob,
            bob_token,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// A minimal accept loop (the real one is `net::accept_loop`).
fn spawn_accept<F, Fut>(
    listener: TcpListener,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let inner = tracker.clone();
    let cancel = cancel.clone();
    tracker.spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = listener.accept() => accepted.unwrap(),
            };
            inner.spawn(serve(stream, peer, cancel.child_token()));
        }
    });
}

/// A raw response: the head exactly as received (status line and headers, without the final
/// blank line) and the body.
struct Raw {
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn status(&self) -> &str {
        self.head.lines().next().unwrap()
    }

    /// The header lines, exactly as sent.
    fn lines(&self) -> Vec<&str> {
        self.head.split("\r\n").skip(1).collect()
    }

    /// The value of the header spelled exactly `name`.
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.lines()
            .into_iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &str) -> Raw {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "connection closed before the end of the head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut body = buf[head_end + 4..].to_vec();
    let length = head
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(": ")?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), length);
    Raw { head, body }
}

fn login_request(handle: &str, pwd: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "GET /login2.srf HTTP/1.1\r\n\
         Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,\
         sign-in={},pwd={},lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,\
         ct=1,kpp=1,kv=5,ver=2.1.0173.1,tpf=00000000000000000000000000000000\r\n\
         User-Agent: MSMSGS\r\nHost: login.passport.com\r\nConnection: Keep-Alive\r\n\
         Cache-Control: no-cache\r\n\r\n",
        enc(handle),
        enc(pwd)
    )
}

/// MSN 7.5's `POST /RST.srf` for `handle` and `pwd`.
fn rst_request(handle: &str, pwd: &str) -> String {
    let body = relive_msnp::rst::msn75_request(handle, pwd, "lc=1033,id=507,tw=40");
    format!(
        "POST /RST.srf HTTP/1.1\r\nHost: loginnet.passport.com\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The Messenger ticket of an `RST.srf` answer, which the Passport service accepts (once)
/// for alice.
#[cfg(feature = "legacy-tls")]
fn assert_rst_ticket_for_alice(server: &Server, raw: &Raw) {
    assert_eq!(raw.status(), "HTTP/1.1 200 OK", "{}", raw.head);
    let ticket = relive_msnp::rst::messenger_ticket(&raw.body).unwrap();
    assert_ticket_accepted_for_alice(server, &ticket);
}

const SUCCESS_PREFIX: &str =
    "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='";
const SUCCESS_SUFFIX: &str = "',ru=http://messenger.msn.com";

fn ticket_of(raw: &Raw) -> String {
    assert_eq!(raw.status(), "HTTP/1.1 200 OK", "{}", raw.head);
    let info = raw.header("Authentication-Info").unwrap();
    info.strip_prefix(SUCCESS_PREFIX)
        .and_then(|rest| rest.strip_suffix(SUCCESS_SUFFIX))
        .unwrap()
        .to_owned()
}

/// The nexus answers on `stream` with `PassportURLs`.
async fn assert_nexus_answers<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let raw = exchange(
        stream,
        "GET /rdr/pprdr.asp HTTP/1.1\r\nHost: nexus.passport.com\r\n\r\n",
    )
    .await;
    assert!(raw.header("PassportURLs").is_some(), "{}", raw.head);
}

/// Once alice's account allows passwords, her password gets a ticket on `stream` that the
/// Passport service accepts for her.
async fn assert_password_login_once_allowed<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    stream: &mut S,
) {
    server
        .store
        .set_allow_password_login(&server.alice, true)
        .await
        .unwrap();
    let raw = exchange(stream, &login_request("alice@example.com", "secret123")).await;
    assert_ticket_for_alice(server, &raw);
}

/// `raw` carries a ticket the Passport service accepts (once) for alice.
fn assert_ticket_for_alice(server: &Server, raw: &Raw) {
    assert_ticket_accepted_for_alice(server, &ticket_of(raw));
}

/// The Passport service accepts `ticket` (once) for alice.
fn assert_ticket_accepted_for_alice(server: &Server, ticket: &str) {
    assert!(
        server
            .service
            .passport()
            .consume_ticket(ticket, &server.alice)
            .is_ok()
    );
}

fn assert_failed(raw: &Raw) {
    assert_eq!(raw.status(), "HTTP/1.1 401 Unauthorized", "{}", raw.head);
    assert_eq!(
        raw.header("WWW-Authenticate"),
        Some(
            "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,\
             cbtxt=The%20e-mail%20address%20or%20password%20is%20incorrect"
        )
    );
    assert!(raw.header("Authentication-Info").is_none());
}

#[tokio::test]
async fn nexus_sends_passport_urls_with_exact_header_bytes_and_keeps_the_connection() {
    let server = Server::start(PassportSettings::default()).await;
    let request = "GET /rdr/pprdr.asp HTTP/1.1\r\nHost: nexus.passport.com\r\n\r\n";
    // Over HTTPS: the official bare form, on the HTTPS port.
    let mut tls = https_connect(&server).await;
    let raw = exchange(&mut tls, request).await;
    assert_eq!(
        raw.header("PassportURLs"),
        Some(
            format!(
                "DARealm=Passport.Net,DALogin=127.0.0.1:{}/login2.srf,ConfigVersion=1",
                server.https.port()
            )
            .as_str()
        )
    );
    // Over plain HTTP (a client patched with --http-login): the login over plain HTTP too.
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    for _ in 0..2 {
        let raw = exchange(&mut conn, request).await;
        assert_eq!(raw.status(), "HTTP/1.1 200 OK");
        let expected = format!(
            "\r\nPassportURLs: DARealm=Passport.Net,DALogin=http://127.0.0.1:{}/login2.srf,ConfigVersion=1\r\n",
            server.http.port()
        );
        assert!(
            format!("{}\r\n", raw.head).contains(&expected),
            "{}",
            raw.head
        );
        assert!(raw.lines().contains(&"Content-Length: 0"), "{}", raw.head);
        assert!(raw.body.is_empty());
    }
    // The value follows the endpoints the server is told about.
    server
        .service
        .set_endpoints(&Endpoints {
            public_host: "chat.example.org".to_owned(),
            http_port: 80,
            https_port: 443,
            legacy_port: None,
        })
        .unwrap();
    let raw = exchange(&mut conn, request).await;
    assert_eq!(
        raw.header("PassportURLs"),
        Some("DARealm=Passport.Net,DALogin=http://chat.example.org:80/login2.srf,ConfigVersion=1")
    );
    let raw = exchange(&mut tls, request).await;
    assert_eq!(
        raw.header("PassportURLs"),
        Some("DARealm=Passport.Net,DALogin=chat.example.org:443/login2.srf,ConfigVersion=1")
    );
    // The shorter path relive-patch uses when the original does not fit answers the same.
    let raw = exchange(&mut tls, "GET /nexus HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        raw.header("PassportURLs"),
        Some("DARealm=Passport.Net,DALogin=chat.example.org:443/login2.srf,ConfigVersion=1")
    );
    let raw = exchange(&mut conn, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(raw.status(), "HTTP/1.1 404 Not Found");
    server.stop().await;
}

#[tokio::test]
async fn a_token_login_issues_a_single_use_ticket_bound_to_the_account() {
    let server = Server::start(PassportSettings::default()).await;
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    let raw = exchange(
        &mut conn,
        &login_request("Alice@Example.com", server.alice_token.expose()),
    )
    .await;
    let ticket = ticket_of(&raw);
    assert!(ticket.starts_with("t=") && ticket.contains("&p="));
    let passport = server.service.passport();
    let alice_id = server
        .store
        .account(&server.alice)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        passport.consume_ticket(&ticket, &server.alice),
        Ok(alice_id)
    );
    assert_eq!(
        passport.consume_ticket(&ticket, &server.alice),
        Err(TicketError::Unknown)
    );

    // A ticket issued to bob is refused for alice (and burnt).
    let raw = exchange(
        &mut conn,
        &login_request("bob@example.com", server.bob_token.expose()),
    )
    .await;
    let ticket = ticket_of(&raw);
    assert_eq!(
        passport.consume_ticket(&ticket, &server.alice),
        Err(TicketError::WrongAccount)
    );
    assert_eq!(
        passport.consume_ticket(&ticket, &server.bob),
        Err(TicketError::Unknown)
    );

    // And expires after two minutes.
    let raw = exchange(
        &mut conn,
        &login_request("alice@example.com", server.alice_token.expose()),
    )
    .await;
    let ticket = ticket_of(&raw);
    server.clock.advance(Duration::from_secs(120));
    assert_eq!(
        passport.consume_ticket(&ticket, &server.alice),
        Err(TicketError::Expired)
    );
    server.stop().await;
}

#[tokio::test]
async fn wrong_secrets_unknown_accounts_and_bad_headers_get_401() {
    let server = Server::start(PassportSettings::default()).await;
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    assert_failed(&exchange(&mut conn, &login_request("alice@example.com", "wrong")).await);
    // bob's token is not alice's.
    assert_failed(
        &exchange(
            &mut conn,
            &login_request("alice@example.com", server.bob_token.expose()),
        )
        .await,
    );
    assert_failed(
        &exchange(
            &mut conn,
            &login_request("nobody@example.com", server.alice_token.expose()),
        )
        .await,
    );
    assert_failed(&exchange(&mut conn, "GET /login2.srf HTTP/1.1\r\nHost: x\r\n\r\n").await);
    assert_failed(
        &exchange(
            &mut conn,
            "GET /login2.srf HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n",
        )
        .await,
    );
    assert!(server.service.passport().tickets().is_empty());
    server.stop().await;
}

/// A client trusting the server's CA, speaking only `version`; it keeps a session cache, so
/// connections made with one connector may resume.
fn https_connector(
    server: &Server,
    version: &'static rustls::SupportedProtocolVersion,
) -> tokio_rustls::TlsConnector {
    let ca = std::fs::read_to_string(CertPaths::in_data_dir(server.dir.path()).ca_cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn https_connect_with(
    server: &Server,
    connector: &tokio_rustls::TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("login.passport.com").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

async fn https_connect(server: &Server) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = https_connector(server, &rustls::version::TLS12);
    let tls = https_connect_with(server, &connector).await;
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    tls
}

#[tokio::test]
async fn https_clients_resume_their_tls_session_and_get_a_sha256_suite() {
    use rustls::HandshakeKind::{Full, Resumed};
    let server = Server::start(PassportSettings::default()).await;
    let login = login_request("alice@example.com", server.alice_token.expose());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let connector = https_connector(&server, version);
        let mut kinds = Vec::new();
        for _ in 0..3 {
            // One connection per login, as the clients do; each login still gets its ticket.
            let mut tls = https_connect_with(&server, &connector).await;
            kinds.push(tls.get_ref().1.handshake_kind());
            // The server picks a SHA-256 suite although rustls clients list AES-256 first.
            let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
            assert!(
                [
                    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                ]
                .contains(&suite),
                "{suite:?}"
            );
            ticket_of(&exchange(&mut tls, &login).await);
        }
        assert_eq!(
            kinds,
            [Some(Full), Some(Resumed), Some(Resumed)],
            "{:?}",
            version.version
        );
    }
    // More clients than rustls's default cache of 256 sessions all resume (as after a restart,
    // when every client logs in again).
    let connectors: Vec<_> = (0..300)
        .map(|_| https_connector(&server, &rustls::version::TLS12))
        .collect();
    for connector in &connectors {
        https_connect_with(&server, connector).await;
    }
    for (i, connector) in connectors.iter().enumerate() {
        let tls = https_connect_with(&server, connector).await;
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(Resumed),
            "client {i}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn https_serves_tls12_and_passwords_only_where_the_account_allows_them() {
    let server = Server::start(PassportSettings::default()).await;
    let mut tls = https_connect(&server).await;
    assert_nexus_answers(&mut tls).await;

    // Password logins are off by default for the account.
    assert_failed(&exchange(&mut tls, &login_request("alice@example.com", "secret123")).await);
    assert_password_login_once_allowed(&server, &mut tls).await;
    // Tokens work over HTTPS too.
    ticket_of(
        &exchange(
            &mut tls,
            &login_request("alice@example.com", server.alice_token.expose()),
        )
        .await,
    );

    // Over plain HTTP the password is refused even though the account allows it.
    let mut plain = TcpStream::connect(server.http).await.unwrap();
    assert_failed(&exchange(&mut plain, &login_request("alice@example.com", "secret123")).await);
    server.stop().await;
}

#[tokio::test]
async fn repeated_failures_get_503_and_the_user_gets_back_in_after_the_decay() {
    let settings = PassportSettings {
        login_slow_after: 2,
        login_refuse_after: 3,
        login_delay_secs: 1,
        login_decay_secs: 10,
        ..PassportSettings::default()
    };
    let server = Server::start(settings).await;
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    let wrong = login_request("alice@example.com", "wrong");
    assert_failed(&exchange(&mut conn, &wrong).await);
    assert_failed(&exchange(&mut conn, &wrong).await);
    // Third attempt too soon: slowed down.
    let raw = exchange(&mut conn, &wrong).await;
    assert_eq!(
        raw.status(),
        "HTTP/1.1 503 Service Unavailable",
        "{}",
        raw.head
    );
    assert_eq!(raw.header("Retry-After"), Some("1"));
    server.clock.advance(Duration::from_secs(1));
    assert_failed(&exchange(&mut conn, &wrong).await);
    // Three failures: refused, even with the right token.
    let right = login_request("alice@example.com", server.alice_token.expose());
    let raw = exchange(&mut conn, &right).await;
    assert_eq!(
        raw.status(),
        "HTTP/1.1 503 Service Unavailable",
        "{}",
        raw.head
    );
    // The oldest failure (t = 0) decays at t = 10.
    assert_eq!(raw.header("Retry-After"), Some("9"));
    // After the decay the legitimate user logs in.
    server.clock.advance(Duration::from_secs(10));
    ticket_of(&exchange(&mut conn, &right).await);
    server.stop().await;
}

/// Reads until the peer closes; panics if it sends anything more first.
async fn assert_closed<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the server did not close the connection")
        .ok();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

/// Writes `bytes` one per write (one TLS record each over TLS), flushing after each.
async fn write_bytewise<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    for b in bytes {
        stream.write_all(std::slice::from_ref(b)).await.unwrap();
        stream.flush().await.unwrap();
    }
}

/// Reads one response after the request was written.
async fn read_response<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Raw {
    exchange(stream, "").await
}

#[tokio::test]
async fn the_request_forms_of_old_clients_reach_the_passport_routes() {
    let server = Server::start(PassportSettings::default()).await;
    let expected_urls = format!(
        "DARealm=Passport.Net,DALogin=http://127.0.0.1:{}/login2.srf,ConfigVersion=1",
        server.http.port()
    );
    // (request, whether the server closes after answering)
    let forms: [(&str, bool); 8] = [
        ("GET /rdr/pprdr.asp\r\n\r\n", true),
        ("GET /rdr/pprdr.asp\n\n", true),
        ("GET /rdr/pprdr.asp\r\n", true),
        ("GET /rdr/pprdr.asp HTTP/1.0\r\n\r\n\r\n\r\n", true),
        (
            "GET /rdr/pprdr.asp HTTP/1.0\nConnection: Keep-Alive\n\n",
            true,
        ),
        (
            "GET /rdr/pprdr.asp HTTP/1.1\nhost: nexus.passport.com\n\n",
            false,
        ),
        (
            "GET /rdr/pprdr.asp HTTP/1.1\r\nHOST: nexus.passport.com\r\nUSER-AGENT: MSMSGS\r\n\r\n",
            false,
        ),
        (
            "get /RDR/pprdr.asp http/1.1\r\nHost: nexus.passport.com\r\n\r\n",
            false,
        ),
    ];
    for (request, closes) in forms {
        let mut conn = TcpStream::connect(server.http).await.unwrap();
        let raw = exchange(&mut conn, request).await;
        assert_eq!(raw.status(), "HTTP/1.1 200 OK", "{request:?}");
        assert_eq!(
            raw.header("PassportURLs"),
            Some(expected_urls.as_str()),
            "{request:?}"
        );
        if closes {
            assert_closed(&mut conn).await;
        } else {
            // Keep-alive as before: a second request on the same connection.
            let raw = exchange(&mut conn, "GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n").await;
            assert_eq!(raw.status(), "HTTP/1.1 200 OK", "{request:?}");
        }
    }

    // An HTTP/1.0 login without Host and with lowercase header names and bare LFs.
    let login = login_request("alice@example.com", server.alice_token.expose())
        .replace("GET /login2.srf HTTP/1.1", "GET /login2.srf HTTP/1.0")
        .replace("Authorization:", "authorization:")
        .replace("Host: login.passport.com\r\n", "")
        .replace("\r\n", "\n");
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    ticket_of(&exchange(&mut conn, &login).await);
    assert_closed(&mut conn).await;
    server.stop().await;
}

#[tokio::test]
async fn only_the_passport_paths_are_lenient() {
    let server = Server::start(PassportSettings::default()).await;
    for request in [
        "GET /\r\n\r\n",
        "GET /Config/MsgrConfig.asmx\r\n\r\n",
        "GET /rdr/pprdr.asp HTTP/1.1 trailing\r\n\r\n",
        "POST /login2.srf\r\n\r\n",
    ] {
        let mut conn = TcpStream::connect(server.http).await.unwrap();
        let raw = exchange(&mut conn, request).await;
        assert_eq!(raw.status(), "HTTP/1.1 400 Bad Request", "{request:?}");
    }
    // Other paths keep hyper's HTTP/1.0 handling: an HTTP/1.0 answer.
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    let raw = exchange(&mut conn, "GET /Config/MsgrConfig.asmx HTTP/1.0\r\n\r\n").await;
    assert_eq!(raw.status(), "HTTP/1.0 200 OK");
    // A head larger than the bound is refused as before.
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    let huge = format!(
        "GET /rdr/pprdr.asp HTTP/1.0\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(super::MAX_HEAD_BYTES)
    );
    conn.write_all(huge.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
    assert!(!reply.contains("PassportURLs"));
    server.stop().await;
}

#[tokio::test]
async fn the_http09_nexus_line_and_an_http10_login_split_into_one_byte_tls_records() {
    let server = Server::start(PassportSettings::default()).await;
    let mut tls = https_connect(&server).await;
    write_bytewise(&mut tls, b"GET /rdr/pprdr.asp\r\n\r\n").await;
    let raw = read_response(&mut tls).await;
    assert_eq!(raw.status(), "HTTP/1.1 200 OK");
    assert!(raw.header("PassportURLs").is_some(), "{}", raw.head);
    assert_closed(&mut tls).await;

    let mut tls = https_connect(&server).await;
    let login = login_request("alice@example.com", server.alice_token.expose())
        .replace(" HTTP/1.1\r\n", " HTTP/1.0\n");
    write_bytewise(&mut tls, login.as_bytes()).await;
    assert_ticket_for_alice(&server, &read_response(&mut tls).await);
    server.stop().await;
}

#[tokio::test]
async fn msgr_config_answers_get_with_the_document_and_post_with_soap() {
    let server = Server::start(PassportSettings::default()).await;
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    let raw = exchange(
        &mut conn,
        "GET /Config/MsgrConfig.asmx?op=GetClientConfig HTTP/1.1\r\nHost: config.messenger.msn.com\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status(), "HTTP/1.1 200 OK");
    assert_eq!(raw.header("Content-Type"), Some("text/xml; charset=utf-8"));
    let body = String::from_utf8(raw.body).unwrap();
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<MsgrConfig>"));
    assert!(body.ends_with("</MsgrConfig>"));
    assert!(body.contains("<Simple>") && body.contains("</Simple>"));
    // The shorter path relive-patch uses when the original does not fit.
    let short = exchange(&mut conn, "GET /config HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(short.status(), "HTTP/1.1 200 OK");
    assert_eq!(String::from_utf8(short.body).unwrap(), body);

    let soap = "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><GetClientConfig xmlns=\"http://www.msn.com/webservices/Messenger/Client\"/></soap:Body></soap:Envelope>";
    let request = format!(
        "POST /Config/MsgrConfig.asmx HTTP/1.1\r\nHost: config.messenger.msn.com\r\n\
         SOAPAction: \"http://www.msn.com/webservices/Messenger/Client/GetClientConfig\"\r\n\
         Content-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{soap}",
        soap.len()
    );
    let raw = exchange(&mut conn, &request).await;
    assert_eq!(raw.status(), "HTTP/1.1 200 OK");
    let body = String::from_utf8(raw.body).unwrap();
    assert!(body.contains("<soap:Body><GetClientConfigResponse xmlns=\"http://www.msn.com/webservices/Messenger/Client\"><GetClientConfigResult><![CDATA[<MsgrConfig>"));
    assert!(body.ends_with("</MsgrConfig>]]></GetClientConfigResult></GetClientConfigResponse></soap:Body></soap:Envelope>"));
    // The connection is still usable after a POST with a body.
    let raw = exchange(&mut conn, "GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(raw.status(), "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn cancel_closes_idle_keep_alive_connections() {
    let server = Server::start(PassportSettings::default()).await;
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    exchange(&mut conn, "GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n").await;
    server.cancel.cancel();
    let mut buf = [0u8; 16];
    assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
    server.stop().await;
}

#[cfg(feature = "legacy-tls")]
#[tokio::test]
async fn the_legacy_listener_speaks_tls10_with_3des_and_rsa_key_exchange() {
    let server = Server::start(PassportSettings::default()).await;
    let paths = LegacyCertPaths::in_data_dir(server.dir.path());
    ensure_certificates(&paths, "127.0.0.1").unwrap();
    let legacy = LegacyTls::from_files(&paths.chain, &paths.key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = server.service.clone();
    spawn_accept(listener, &server.tracker, &server.cancel, move |s, p, c| {
        serve_legacy_connection(s, p, svc.clone(), legacy.clone(), c)
    });

    use openssl::ssl::{SslConnector, SslMethod, SslVersion};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_security_level(0);
    b.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1)).unwrap();
    b.set_cipher_list("DES-CBC3-SHA@SECLEVEL=0").unwrap();
    b.set_ca_file(&paths.ca_cert).unwrap();
    let connector = b.build();
    let connect = async || {
        let ssl = connector
            .configure()
            .unwrap()
            .into_ssl("login.passport.com")
            .unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        std::pin::Pin::new(&mut tls).connect().await.unwrap();
        tls
    };
    let mut tls = connect().await;
    assert_eq!(tls.ssl().version_str(), "TLSv1");
    let cipher = tls.ssl().current_cipher().unwrap();
    assert_eq!(
        cipher.standard_name(),
        Some("TLS_RSA_WITH_3DES_EDE_CBC_SHA")
    );

    assert_nexus_answers(&mut tls).await;
    // Passwords count as encrypted here: the account allows them, the listener is TLS.
    assert_password_login_once_allowed(&server, &mut tls).await;
    // MSN 7.5's RST.srf on the same connection (XP's SChannel), with the password too.
    let raw = exchange(&mut tls, &rst_request("alice@example.com", "secret123")).await;
    assert_rst_ticket_for_alice(&server, &raw);

    // The version-less nexus line of libpurple-era clients, on a connection of its own.
    let mut tls = connect().await;
    let raw = exchange(&mut tls, "GET /rdr/pprdr.asp\r\n\r\n").await;
    assert_eq!(raw.status(), "HTTP/1.1 200 OK");
    assert!(raw.header("PassportURLs").is_some(), "{}", raw.head);
    server.stop().await;
}

#[tokio::test]
async fn logins_never_log_the_password_the_token_or_the_ticket() {
    let capture = crate::testing::LogCapture::start();

    let server = Server::start(PassportSettings::default()).await;
    let mut conn = TcpStream::connect(server.http).await.unwrap();
    let password = "Hunter2-Very-Secret";
    assert_failed(&exchange(&mut conn, &login_request("alice@example.com", password)).await);
    let ticket = ticket_of(
        &exchange(
            &mut conn,
            &login_request("alice@example.com", server.alice_token.expose()),
        )
        .await,
    );
    let t_part = crate::passport::tickets::t_part(&ticket)
        .unwrap()
        .to_owned();
    let token = server.alice_token.expose().to_owned();
    // RST.srf: a wrong password, then the token.
    let rst = exchange(&mut conn, &rst_request("alice@example.com", password)).await;
    assert_eq!(rst.body, relive_msnp::rst::AUTH_FAILED.as_bytes());
    let rst = exchange(&mut conn, &rst_request("alice@example.com", &token)).await;
    let rst_ticket = relive_msnp::rst::messenger_ticket(&rst.body).unwrap();
    let rst_t = crate::passport::tickets::t_part(&rst_ticket)
        .unwrap()
        .to_owned();
    server.stop().await;

    // Both log formats: the text `serve` writes by default and `--log-format json`.
    for logs in [capture.text(), capture.json()] {
        // The capture works: the outcomes are logged, with the handle and why.
        assert!(logs.contains("passport login failed"), "{logs}");
        assert!(logs.contains("wrong secret"), "{logs}");
        assert!(logs.contains("passport login succeeded"), "{logs}");
        assert!(logs.contains("RST.srf login failed"), "{logs}");
        assert!(logs.contains("RST.srf login succeeded"), "{logs}");
        assert!(logs.contains("alice@example.com"));
        for secret in [password, &token, &t_part, &rst_t, "Passport1.4"] {
            assert!(!logs.contains(secret), "{secret} appears in the logs");
        }
    }
    assert!(capture.json().starts_with('{'));
}
