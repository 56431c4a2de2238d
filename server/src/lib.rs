//! Relive server: dispatch/notification and switchboard servers, Passport endpoints, the
//! account store, certificates and configuration.
//!
//! # Layout
//!
//! - [`config`]: `relive.toml` (its commented template generated from one table of documented
//!   keys), flags and `RELIVE_*` variables (one clap struct) → validated [`config::Settings`].
//! - [`data_dir`]: first-start setup of the data directory.
//! - [`store`]: SQLite accounts, list data model, access tokens.
//! - [`secret`]: the server key and the [`secret::Secret`] wrapper that never logs.
//! - [`tls`]: local CA, server certificate, rustls configuration.
//! - [`net`]: accept loops and the per-connection entry points.
//! - [`demo`]: `serve --demo` accounts.
//! - [`doctor`]: `relive-server doctor`, the host-side checks of what stops clients connecting.
//! - [`hub`]: the in-memory registry of online users (`hub::registry`, keyed by handles the hub
//!   interns and frees), the visibility rule (`hub::privacy`), connection outboxes
//!   ([`hub::Outbox`]); presence fan-out decided under one short lock, delivered after it.
//! - [`metrics`]: the Prometheus `/metrics` endpoint and the series it serves.
//! - [`limits`]: connection pools per listener and caps per source, list-lookup throttling.
//! - [`mailbox`]: the Hotmail notifications and the inbox sign-in grants (issue 18).
//! - [`notification`]: the NS service (MSNP2–MSNP7 login, lists, presence, referrals).
//! - [`switchboard`]: SB cookies, rooms and the SB service.
//! - [`cluster`]: cluster mode (`[cluster]`): presence and delivery across nodes over NATS,
//!   heartbeats, `XFR NS`/`XFR SB` by node, signed SB cookies, tickets on any node.
//! - [`web`]: the website (accounts, tokens, contacts, connect, admin) and the `/api/`.
//!
//! The protocol itself (framing, commands, version capabilities) lives in `relive-msnp`, which
//! has no I/O. The services here are socket-free; [`net::conn`] is the thin driver that connects
//! them to sockets.

pub mod cluster;
pub mod config;
pub mod data_dir;
pub mod demo;
pub mod doctor;
pub mod http;
pub mod hub;
pub mod limits;
pub mod mailbox;
pub mod metrics;
pub mod net;
pub mod notification;
pub mod passport;
pub mod relay;
pub mod secret;
pub mod store;
pub mod switchboard;
#[cfg(test)]
mod test_pg;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod web;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::net::Kind;
use crate::store::{AccountError, ListError, Store, StoreError, TokenError};

/// Infrastructure errors of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An account operation failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A token operation failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A list operation failed.
    #[error(transparent)]
    List(#[from] ListError),
    /// Configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The server key could not be loaded.
    #[error(transparent)]
    Key(#[from] secret::KeyError),
    /// Certificates could not be generated or loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The HTTP side could not be set up.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The embedded relay could not start.
    #[error(transparent)]
    Relay(#[from] relay::RelayError),
    /// The legacy-TLS certificates could not be generated or loaded.
    #[error(transparent)]
    LegacyTls(#[from] http::legacy::LegacyTlsError),
    /// The cluster could not be joined.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// A built-in demo handle is invalid (a bug).
    #[error("built-in demo data is invalid")]
    Demo,
}

/// The four listeners, already bound (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// Dispatch / notification server.
    pub ns: TcpListener,
    /// Switchboard.
    pub sb: TcpListener,
    /// Plain HTTP.
    pub http: TcpListener,
    /// HTTPS.
    pub https: TcpListener,
    /// Legacy TLS for Windows XP (`passport.legacy_tls`), if configured.
    pub legacy_tls: Option<TcpListener>,
}

/// What every connection task shares. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Store,
    /// Who is online, with their presence and privacy data.
    pub hub: Arc<hub::Hub>,
    /// Creates connection outboxes (bounded per-connection event queues).
    pub outboxes: Arc<hub::OutboxFactory>,
    /// Switchboard cookies and rooms.
    pub switchboards: Arc<switchboard::Switchboards>,
    /// The `host:port` of this NS as clients reach it (for `XFR NS`); set by [`run_with`].
    pub ns_address: Arc<std::sync::RwLock<relive_msnp::types::Token>>,
    /// Passport: tickets for `USR TWN`, and the login rate limiter the NS shares.
    pub passport: passport::PassportService,
    /// The HTTP side (nexus, login); its `PassportURLs` is re-resolved by [`run_with`].
    pub http: http::HttpService,
    /// The rustls acceptor for the HTTPS listener; without it HTTPS connections are closed.
    pub https_tls: Option<tokio_rustls::TlsAcceptor>,
    /// The OpenSSL acceptor for the legacy listener; without it its connections are closed.
    pub legacy_tls: Option<http::legacy::LegacyTls>,
    /// Which token and client version each online session uses ([`web::Devices`]).
    pub devices: Arc<web::Devices>,
    /// The website's shared state.
    pub web: Arc<web::Web>,
    /// The series `/metrics` serves ([`metrics::serve`]).
    pub metrics: Arc<metrics::Metrics>,
    /// Connection pools per listener and caps per source (the accept loops admit through it).
    pub connection_limits: Arc<limits::connections::ConnectionLimits>,
    /// The per-account throttle of list lookups.
    pub lookups: Arc<limits::lookups::LookupThrottle>,
    /// Cluster mode: this node's membership (`None`: a single node, the default). Set by
    /// [`run_with_relay`] when the settings have a `[cluster]` node id.
    pub cluster: Option<Arc<cluster::Cluster>>,
    connections: Arc<watch::Sender<usize>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("passport", &self.passport)
            .field("https_tls", &self.https_tls.is_some())
            .field("legacy_tls", &self.legacy_tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over `settings` and `store`, with the Passport service on the system clock
    /// and no TLS acceptors (set [`Self::https_tls`] and [`Self::legacy_tls`] to serve TLS).
    ///
    /// # Errors
    ///
    /// [`Error::Http`] if the `[passport]` settings are invalid (validated settings never are).
    pub fn new(settings: Settings, store: Store) -> Result<Self, Error> {
        let passport = passport::PassportService::new(store.clone(), &settings.passport);
        Self::with_passport(settings, store, passport)
    }

    /// [`Self::new`] with a prepared Passport service (tests inject a clock through it).
    ///
    /// # Errors
    ///
    /// As [`Self::new`].
    pub fn with_passport(
        settings: Settings,
        store: Store,
        passport: passport::PassportService,
    ) -> Result<Self, Error> {
        let ns_address = Arc::new(std::sync::RwLock::new(advertised(
            &settings.public_host,
            settings.ns.port(),
        )));
        let initial = endpoints(
            &settings,
            settings.http.port(),
            settings.https.port(),
            settings.passport.legacy_tls.map(|a| a.port()),
        );
        let hub = Arc::new(hub::Hub::new());
        let devices = Arc::new(web::Devices::new());
        let switchboards = Arc::new(switchboard::Switchboards::new());
        let web = web::Web::new(web::WebParts {
            history: Arc::clone(switchboards.history()),
            config: settings.web.clone(),
            store: store.clone(),
            passport: passport.clone(),
            hub: Arc::clone(&hub),
            devices: Arc::clone(&devices),
            ns_address: Arc::clone(&ns_address),
            endpoints: initial.clone(),
            relay_quic_port: settings.relay.enabled.then_some(settings.relay.quic.port()),
            data_dir: settings.data_dir.clone(),
        });
        let http = http::HttpService::new(passport.clone(), &settings.passport, &initial)?
            .merge(http::routes::certificates(&settings.data_dir))
            .merge(web::router(Arc::clone(&web)));
        let outboxes = Arc::new(hub::OutboxFactory::new(hub::DEFAULT_OUTBOX_CAPACITY));
        let connections = Arc::new(watch::Sender::new(0));
        let metrics = Arc::new(metrics::Metrics::new(&metrics::Sources {
            logins: passport.logins(),
            store: &store,
            hub: &hub,
            outboxes: &outboxes,
            switchboards: &switchboards,
            connections: &connections,
        }));
        let connection_limits =
            Arc::new(limits::connections::ConnectionLimits::new(&settings.abuse));
        let lookups = Arc::new(limits::lookups::LookupThrottle::new(
            settings.abuse.lookup_burst,
            settings.abuse.lookups_per_minute,
        ));
        Ok(Self {
            connection_limits,
            lookups,
            settings: Arc::new(settings),
            store,
            hub,
            outboxes,
            switchboards,
            ns_address,
            devices,
            web,
            passport,
            http,
            https_tls: None,
            legacy_tls: None,
            metrics,
            cluster: None,
            connections,
        })
    }

    /// A receiver for the number of open connections (over all listeners).
    #[must_use]
    pub fn connections(&self) -> watch::Receiver<usize> {
        self.connections.subscribe()
    }
}

/// `host:port` as a token; a host that does not fit one (validated settings never do that)
/// falls back to the loopback address.
fn advertised(host: &str, port: u16) -> relive_msnp::types::Token {
    relive_msnp::types::Token::parse(&format!("{host}:{port}")).unwrap_or_else(|_| {
        #[allow(clippy::unwrap_used, reason = "a constant, valid token")]
        relive_msnp::types::Token::parse("127.0.0.1:1863").unwrap()
    })
}

/// Records the addresses clients are told: `public_host` with the NS listener's actual port,
/// and with `sb_public_port` or else the SB listener's actual port (tests bind port 0).
fn advertise(ctx: &Context, listeners: &Listeners) {
    let host = &ctx.settings.public_host;
    let port_of = |l: &TcpListener, fallback: u16| l.local_addr().map_or(fallback, |a| a.port());
    let ns = advertised(host, port_of(&listeners.ns, ctx.settings.ns.port()));
    *ctx.ns_address
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = ns;
    let sb_port = ctx
        .settings
        .sb_public_port
        .unwrap_or_else(|| port_of(&listeners.sb, ctx.settings.sb.port()));
    ctx.switchboards.set_address(advertised(host, sb_port));
    let endpoints = endpoints(
        &ctx.settings,
        port_of(&listeners.http, ctx.settings.http.port()),
        port_of(&listeners.https, ctx.settings.https.port()),
        listeners
            .legacy_tls
            .as_ref()
            .map(|l| port_of(l, ctx.settings.passport.legacy_tls.map_or(0, |a| a.port()))),
    );
    ctx.web.set_endpoints(&endpoints);
    if let Err(error) = ctx.http.set_endpoints(&endpoints) {
        tracing::warn!(%error, "cannot advertise the listeners' ports in PassportURLs");
    }
}

/// The Passport endpoints for `settings` with these listener ports.
fn endpoints(
    settings: &Settings,
    http_port: u16,
    https_port: u16,
    legacy_port: Option<u16>,
) -> passport::Endpoints {
    passport::Endpoints {
        public_host: settings.public_host.clone(),
        http_port,
        https_port,
        legacy_port,
    }
}

/// Cluster mode (the settings have a `[cluster]` node id): advertises the listeners' addresses,
/// connects to NATS and joins the network ([`cluster::Cluster::start`], its tasks on
/// `tracker`, ending with `shutdown`), and sets [`Context::cluster`]. A no-op for a single
/// node. [`run_with_relay`] calls it unless the caller already has (to wait for its peers
/// before serving).
///
/// # Errors
///
/// [`Error::Cluster`] if NATS cannot be reached or set up.
pub async fn join_cluster(
    ctx: &mut Context,
    listeners: &Listeners,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let Some(settings) = ctx.settings.cluster.clone() else {
        return Ok(());
    };
    if settings.sb && ctx.settings.relay.enabled && ctx.settings.relay.remote.is_none() {
        tracing::info!(
            "cluster mode with an embedded relay: an agent connected to this node is not seen \
             by rooms on other SB nodes; give every SB node the same [relay] remote \
             (relive-relay serve --servers <SB nodes>)"
        );
    }
    advertise(ctx, listeners);
    let view = cluster::NodeView {
        hub: Arc::clone(&ctx.hub),
        switchboards: Arc::clone(&ctx.switchboards),
        ns_address: Arc::clone(&ctx.ns_address),
        passport: ctx.passport.clone(),
        devices: Arc::clone(&ctx.devices),
    };
    let joined =
        cluster::Cluster::start(settings, ctx.store.key(), view, tracker, shutdown).await?;
    ctx.passport.set_cluster_tickets(joined.tickets().clone());
    ctx.cluster = Some(joined);
    Ok(())
}

/// Serves until `shutdown` is cancelled, then stops accepting, cancels and waits for every
/// connection task, and closes the store (after any write in flight has finished).
///
/// # Errors
///
/// The `[passport]` settings are invalid, or closing the store failed.
pub async fn run(
    settings: Settings,
    store: Store,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_with(Context::new(settings, store)?, listeners, shutdown).await
}

/// [`run`] with a prepared [`Context`] (tests use it to watch the connection count). The
/// relay runs without companion agents (no QUIC socket); see [`run_with_relay`].
///
/// # Errors
///
/// Closing the store failed, or the relay could not start.
pub async fn run_with(
    ctx: Context,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_with_relay(ctx, listeners, None, shutdown).await
}

/// [`run_with`] plus the relay's QUIC socket for companion agents (`[relay] quic`, bound by
/// the caller like the TCP listeners). The embedded relay (port pool, rewriter policy, agent
/// registry) starts here when `[relay]` enables it; see [`relay::Relay::start`].
///
/// # Errors
///
/// The relay could not start, or closing the store failed.
pub async fn run_with_relay(
    mut ctx: Context,
    listeners: Listeners,
    relay_quic: Option<std::net::UdpSocket>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    advertise(&ctx, &listeners);
    let tracker = TaskTracker::new();
    if ctx.cluster.is_none() {
        join_cluster(&mut ctx, &listeners, &tracker, &shutdown).await?;
    }
    let ctx = Arc::new(ctx);
    let relay = relay::Relay::start(
        &ctx.settings.relay,
        &ctx.settings.data_dir,
        &ctx.settings.public_host,
        &relay::StoreAuth::new(ctx.store.clone(), ctx.passport.clone()),
        relay_quic,
        &tracker,
        &shutdown,
    )?;
    ctx.switchboards.set_relay(relay.map(Arc::new));
    // The history recorder: who has it on, and its writer (ends after the connections).
    let history = Arc::clone(ctx.switchboards.history());
    match ctx.store.history_enabled_handles().await {
        Ok(handles) => history.load(handles),
        Err(error) => tracing::warn!(%error, "cannot load the history settings; recording none"),
    }
    let history_closing = CancellationToken::new();
    let history_writer = history.spawn_writer(ctx.store.clone(), history_closing.clone());
    let loops = TaskTracker::new();
    let mut all = vec![
        (Kind::Ns, listeners.ns),
        (Kind::Sb, listeners.sb),
        (Kind::Http, listeners.http),
        (Kind::Https, listeners.https),
    ];
    if let Some(legacy) = listeners.legacy_tls {
        all.push((Kind::Legacy, legacy));
    }
    for (kind, listener) in all {
        loops.spawn(net::accept_loop(
            kind,
            listener,
            Arc::clone(&ctx),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    loops.close();
    loops.wait().await;
    // The accept loops only end on shutdown; HTTP connection tokens are children of it, NS
    // and SB connections are told through their outboxes.
    ctx.outboxes.shutdown();
    let open = *ctx.connections.borrow();
    tracing::info!(open, "shutting down: waiting for connections to close");
    tracker.close();
    tracker.wait().await;
    history_closing.cancel();
    if let Some(writer) = history_writer
        && let Err(error) = writer.await
    {
        tracing::warn!(%error, "history writer failed");
    }
    ctx.store.close().await?;
    tracing::info!("shutdown complete");
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpStream;

    use super::*;
    use crate::store::test_support::*;

    async fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.unwrap()
    }

    #[tokio::test]
    async fn shutdown_closes_connections_and_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let settings = config::Config::default()
            .validate(dir.path().to_path_buf())
            .unwrap();
        let listeners = Listeners {
            ns: bind().await,
            sb: bind().await,
            http: bind().await,
            https: bind().await,
            legacy_tls: None,
        };
        let (ns, http) = (
            listeners.ns.local_addr().unwrap(),
            listeners.http.local_addr().unwrap(),
        );
        let ctx = Context::new(settings, store.clone()).unwrap();
        let mut open = ctx.connections();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run_with(ctx, listeners, shutdown.clone()));

        // An idle HTTP connection and an NS connection, both held open until shutdown.
        let mut http_client = TcpStream::connect(http).await.unwrap();
        open.wait_for(|n| *n == 1).await.unwrap();
        let mut ns_client = TcpStream::connect(ns).await.unwrap();
        open.wait_for(|n| *n == 2).await.unwrap();
        shutdown.cancel();
        // NS: told OUT SSD and closed cleanly (FIN, not reset); HTTP: closed without a word.
        let mut said = Vec::new();
        ns_client.read_to_end(&mut said).await.unwrap();
        assert_eq!(said, b"OUT SSD\r\n");
        said.clear();
        http_client.read_to_end(&mut said).await.unwrap();
        assert!(said.is_empty());
        server.await.unwrap().unwrap();
        assert_eq!(*open.borrow(), 0);
        assert!(matches!(store.accounts().await, Err(StoreError::Closed)));
    }
}
