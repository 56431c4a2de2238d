//! `TestStack`: one whole `relive-server` on `127.0.0.1:0` listeners with a temporary data
//! directory (real SQLite file), seeded accounts and access tokens, and clean shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use relive_msnp::auth::{md5_response, qry_answer};
use relive_msnp::client::Role;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::AuthMethod;
use relive_msnp::version::ProtocolVersion;
use relive_server::config::Config;
use relive_server::passport::{DaLoginPort, NamedPort, NexusSettings};
use relive_server::relay::RelayConfig;
use relive_server::secret::Secret;
use relive_server::store::{Account, AccountId, Store, parse_handle};
use relive_server::tls::CertPaths;
use relive_server::{Context, Listeners};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::MsnpClient;
use crate::replay::QRY_CLIENT_ID;

/// The product id MSNP11+ scripted clients answer challenges with (MSN 7.0's research vector
/// id; PROTOCOL.md §8).
pub const QRY_PRODUCT_ID: &str = "PROD0090YUAUV{2B";

/// The website password of every account [`TestStack::start`] seeds.
pub const SEEDED_PASSWORD: &str = "password-not-used";

/// bcrypt cost for seeded accounts (the minimum: tests do not measure hashing).
const TEST_BCRYPT_COST: u32 = 4;
/// How long a clean shutdown may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// An account to create before the server starts.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    /// Handle, e.g. `alice@example.com`.
    pub handle: String,
    /// Friendly name in wire form, e.g. `Alice`.
    pub name: String,
}

/// What [`TestStack::start`] sets up (defaults: no accounts, challenges off, relay off).
#[derive(Debug, Default)]
pub struct StackOptions {
    accounts: Vec<AccountSpec>,
    chl: bool,
    sb_auth_timeout_secs: Option<u64>,
    chl_timeout_secs: Option<u64>,
    relay: bool,
    dispatch: Option<SocketAddr>,
    data: Option<DataDir>,
    configure: Vec<fn(&mut Config)>,
}

impl StackOptions {
    /// No accounts, challenges off, a fresh data directory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an account (with one access token) to create.
    #[must_use]
    pub fn account(mut self, handle: &str, name: &str) -> Self {
        self.accounts.push(AccountSpec {
            handle: handle.to_owned(),
            name: name.to_owned(),
        });
        self
    }

    /// The usual cast: `alice@example.com` "Alice", `bob@example.com` "Bob",
    /// `carol@example.com` "Carol".
    #[must_use]
    pub fn cast() -> Self {
        Self::new()
            .account("alice@example.com", "Alice")
            .account("bob@example.com", "Bob")
            .account("carol@example.com", "Carol")
    }

    /// Turns `CHL` challenges (MSNP6+) on or off.
    #[must_use]
    pub const fn chl(mut self, on: bool) -> Self {
        self.chl = on;
        self
    }

    /// Closes switchboard connections that have not authenticated after `secs` seconds.
    #[must_use]
    pub const fn sb_auth_timeout(mut self, secs: u64) -> Self {
        self.sb_auth_timeout_secs = Some(secs);
        self
    }

    /// Disconnects clients that have not answered a `CHL` after `secs` seconds.
    #[must_use]
    pub const fn chl_timeout(mut self, secs: u64) -> Self {
        self.chl_timeout_secs = Some(secs);
        self
    }

    /// Turns the embedded relay (invitation rewriting) on; it is off by default so switchboard
    /// payloads are relayed byte for byte.
    #[must_use]
    pub const fn relay(mut self, on: bool) -> Self {
        self.relay = on;
        self
    }

    /// Makes the nexus answer `PassportURLs: DALogin=http://127.0.0.1:<http port>/login2.srf`
    /// and nothing else, as msnp11-sdk needs (it takes the whole value, minus `DALogin=`, as
    /// the login URL, and trusts no private CA; research notes for issue 16, §5.3).
    #[must_use]
    pub fn sdk_nexus(self) -> Self {
        self.configure(|config| {
            config.passport.nexus = NexusSettings {
                realm: String::new(),
                scheme: "http".to_owned(),
                port: DaLoginPort::Named(NamedPort::Http),
                extra: Vec::new(),
                ..NexusSettings::default()
            };
        })
    }

    /// Makes this stack a dispatch server in front of the notification server at `ns`: its NS
    /// listener is bound on `127.0.0.2` at `ns`'s port, it calls itself `127.0.0.2`, and it
    /// answers `USR … I` with `XFR … NS <ns>` (PROTOCOL.md §1.2: the referral keeps the port).
    #[must_use]
    pub const fn dispatch_to(mut self, ns: SocketAddr) -> Self {
        self.dispatch = Some(ns);
        self
    }

    /// Changes the configuration before the server starts (after the settings above), e.g.
    /// `[limits]` for the hardening tests.
    #[must_use]
    pub fn configure(mut self, edit: fn(&mut Config)) -> Self {
        self.configure.push(edit);
        self
    }

    /// Starts on the data directory of a stack that was shut down (a restart).
    #[must_use]
    pub fn reuse(mut self, data: DataDir) -> Self {
        self.data = Some(data);
        self
    }
}

/// A data directory and the tokens issued in it; survives [`TestStack::shutdown`] so a test
/// can restart a server on the same state.
#[derive(Debug)]
pub struct DataDir {
    dir: tempfile::TempDir,
    tokens: HashMap<String, String>,
    /// The PostgreSQL database of this data directory, when the stack runs on PostgreSQL.
    store_url: Option<String>,
}

impl DataDir {
    /// A fresh data directory on the embedded SQLite store, whatever `RELIVE_TEST_STORE` says
    /// (for tests that start from `relive.db`, such as `migrate-store`).
    ///
    /// # Errors
    ///
    /// The temporary directory could not be made.
    pub fn sqlite() -> anyhow::Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
            tokens: HashMap::new(),
            store_url: None,
        })
    }

    /// From now on, stacks on this data directory keep their data in the PostgreSQL database
    /// `url` (after `migrate-store` copied `relive.db` there).
    pub fn use_postgres(&mut self, url: &str) {
        self.store_url = Some(url.to_owned());
    }

    /// The data directory itself (`relive.db`, `secret.key`, `relive.toml`, `tls/`).
    #[must_use]
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The PostgreSQL URL of this data directory's store; `None`: SQLite (`relive.db`).
    #[must_use]
    pub fn store_url(&self) -> Option<&str> {
        self.store_url.as_deref()
    }
}

/// Whether the stacks run on PostgreSQL: `RELIVE_TEST_STORE=postgres` (the CI runs the
/// end-to-end suite once so). Otherwise the embedded SQLite file, as a user's server.
#[must_use]
pub fn on_postgres() -> bool {
    std::env::var("RELIVE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// Skips the running test when the stacks run on PostgreSQL (`RELIVE_TEST_STORE=postgres`),
/// because it does not exercise the store under test (it runs a release binary on its own data
/// directory) or reads the SQLite file itself: prints why and returns `true` (the caller
/// returns).
#[must_use]
pub fn skip_on_postgres(why: &str) -> bool {
    if on_postgres() {
        use std::io::Write as _;
        let thread = std::thread::current();
        // Straight to the terminal, past the harness's capture (as `tool::skip`).
        let _ = writeln!(
            std::io::stderr(),
            "skipping {} on PostgreSQL: {why}",
            thread.name().unwrap_or("a test")
        );
        return true;
    }
    false
}

impl DataDir {
    /// The server's SQLite database file (`<data-dir>/relive.db`; `-wal` beside it).
    #[must_use]
    pub fn database(&self) -> std::path::PathBuf {
        self.path().join("relive.db")
    }

    /// The access token seeded for `handle`, if any.
    #[must_use]
    pub fn token(&self, handle: &str) -> Option<&str> {
        self.tokens.get(handle).map(String::as_str)
    }
}

/// A running server on loopback ports.
#[derive(Debug)]
pub struct TestStack {
    /// Dispatch / notification server address.
    pub ns: SocketAddr,
    /// Switchboard address.
    pub sb: SocketAddr,
    /// Plain HTTP address.
    pub http: SocketAddr,
    /// HTTPS address.
    pub https: SocketAddr,
    /// The Prometheus `/metrics` listener (served as `serve` does, on its own listener).
    pub metrics: SocketAddr,
    /// The server's store (shared with the server), for preparing and inspecting state.
    pub store: Store,
    /// The generated CA certificate (PEM) that signed the HTTPS certificate.
    pub ca_cert: std::path::PathBuf,
    /// The server's connection pools (what it admitted and refused, per listener).
    pub connection_limits: std::sync::Arc<relive_server::limits::connections::ConnectionLimits>,
    /// The server's Passport service (its login limiter, for the hardening tests).
    pub passport: relive_server::passport::PassportService,
    data: Option<DataDir>,
    open: watch::Receiver<usize>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), relive_server::Error>>>,
}

async fn bind() -> anyhow::Result<TcpListener> {
    Ok(TcpListener::bind("127.0.0.1:0").await?)
}

impl TestStack {
    /// Binds the four listeners on `127.0.0.1:0`, prepares the data directory (key, database,
    /// certificates), seeds the accounts with one token each, and spawns the server.
    ///
    /// # Errors
    ///
    /// Any setup step failed.
    pub async fn start(opts: StackOptions) -> anyhow::Result<Self> {
        crate::init_tracing();
        let ns_listener = match opts.dispatch {
            // The same port as the NS it refers to, on another loopback address.
            Some(ns) => TcpListener::bind(("127.0.0.2", ns.port()))
                .await
                .context("binding the dispatch server on 127.0.0.2")?,
            None => bind().await?,
        };
        let listeners = Listeners {
            ns: ns_listener,
            sb: bind().await?,
            http: bind().await?,
            https: bind().await?,
            legacy_tls: None,
        };
        let (ns, sb, http, https) = (
            listeners.ns.local_addr()?,
            listeners.sb.local_addr()?,
            listeners.http.local_addr()?,
            listeners.https.local_addr()?,
        );
        let mut data = match opts.data {
            Some(d) => d,
            None => DataDir {
                dir: tempfile::tempdir()?,
                tokens: HashMap::new(),
                store_url: if on_postgres() {
                    crate::postgres::database()
                } else {
                    None
                },
            },
        };
        let defaults = Config::default();
        let mut config = Config {
            ns,
            sb,
            http,
            https,
            public_host: if opts.dispatch.is_some() {
                "127.0.0.2".to_owned()
            } else {
                "127.0.0.1".to_owned()
            },
            ns_referral_host: opts.dispatch.map(|ns| ns.ip().to_string()),
            bcrypt_cost: TEST_BCRYPT_COST,
            chl: opts.chl,
            sb_auth_timeout_secs: opts
                .sb_auth_timeout_secs
                .unwrap_or(defaults.sb_auth_timeout_secs),
            chl_timeout_secs: opts.chl_timeout_secs.unwrap_or(defaults.chl_timeout_secs),
            // Off unless asked for: MSNP2–7 switchboards relay payloads byte for byte. When on,
            // allocations still come from the OS (port 0) on loopback.
            relay: RelayConfig {
                enabled: opts.relay,
                bind_ip: Some(IpAddr::from([127, 0, 0, 1])),
                port_min: 0,
                port_max: 0,
                ..RelayConfig::default()
            },
            store: relive_server::config::StoreConfig {
                url: data.store_url.clone(),
                ..relive_server::config::StoreConfig::default()
            },
            ..defaults
        };
        for edit in &opts.configure {
            edit(&mut config);
        }
        let settings = config.validate(data.dir.path().join("data"))?;
        let (store, _certs) = relive_server::data_dir::prepare(&settings).await?;
        for a in &opts.accounts {
            let email = parse_handle(&a.handle)?;
            let account = store
                .create_account(&email, &a.name, Secret::new(SEEDED_PASSWORD.to_owned()))
                .await
                .with_context(|| format!("creating {}", a.handle))?;
            let token = store.new_token(account.id, "e2e").await?;
            data.tokens
                .insert(a.handle.clone(), token.token.expose().to_owned());
        }
        let cert_paths = CertPaths::in_data_dir(&settings.data_dir);
        let ca_cert = cert_paths.ca_cert.clone();
        let mut ctx = Context::new(settings, store.clone())?;
        // As main.rs does: without an acceptor the HTTPS listener closes every connection.
        ctx.https_tls = Some(relive_server::http::tls::acceptor(&cert_paths)?);
        let open = ctx.connections();
        let connection_limits = std::sync::Arc::clone(&ctx.connection_limits);
        let passport = ctx.passport.clone();
        let shutdown = CancellationToken::new();
        let metrics_listener = bind().await?;
        let metrics = metrics_listener.local_addr()?;
        tokio::spawn(relive_server::metrics::serve(
            std::sync::Arc::clone(&ctx.metrics),
            metrics_listener,
            shutdown.clone(),
        ));
        let task = tokio::spawn(relive_server::run_with(ctx, listeners, shutdown.clone()));
        Ok(Self {
            ns,
            sb,
            http,
            https,
            metrics,
            store,
            ca_cert,
            connection_limits,
            passport,
            data: Some(data),
            open,
            shutdown,
            task: Some(task),
        })
    }

    /// The access token issued for `handle` at seeding.
    ///
    /// # Panics
    ///
    /// `handle` was not seeded (a bug in the test).
    #[must_use]
    pub fn token(&self, handle: &str) -> &str {
        self.data
            .as_ref()
            .and_then(|d| d.tokens.get(handle))
            .map_or_else(|| panic!("{handle} was not seeded"), String::as_str)
    }

    /// `a` and `b` have each other on FL (and so on RL), stored before anyone logs in.
    ///
    /// # Errors
    ///
    /// No such account, or the store failed.
    pub async fn befriend(&self, a: &str, b: &str) -> anyhow::Result<()> {
        for (owner, other) in [(a, b), (b, a)] {
            let name = self.account(other).await?.friendly_name;
            self.store
                .add_to_list(
                    self.id(owner).await?,
                    relive_server::store::ListKind::Fl,
                    &parse_handle(other)?,
                    name.as_str(),
                    None,
                )
                .await?;
        }
        Ok(())
    }

    /// The stored account of `handle`.
    ///
    /// # Errors
    ///
    /// No such account, or the store failed.
    pub async fn account(&self, handle: &str) -> anyhow::Result<Account> {
        self.store
            .account(&parse_handle(handle)?)
            .await?
            .ok_or_else(|| anyhow!("no account {handle}"))
    }

    /// The account id of `handle`.
    ///
    /// # Errors
    ///
    /// No such account, or the store failed.
    pub async fn id(&self, handle: &str) -> anyhow::Result<AccountId> {
        Ok(self.account(handle).await?.id)
    }

    /// Bumps `handle`'s list version to `target` through real list changes (setting and
    /// clearing a phone property), to reproduce a transcript's starting version.
    ///
    /// # Errors
    ///
    /// The version is already above `target`, or the store failed.
    pub async fn bump_list_version(&self, handle: &str, target: u32) -> anyhow::Result<()> {
        use relive_server::store::PhoneProp;
        let id = self.id(handle).await?;
        let mut version = self.account(handle).await?.list_version;
        ensure!(
            version <= target,
            "{handle} is already at version {version}"
        );
        let mut set = false;
        while version < target {
            let value = (!set).then_some("1");
            version = self.store.set_phone(id, PhoneProp::Phw, value).await?;
            set = !set;
        }
        if set {
            bail!("odd number of bumps for {handle}: PHW left set; pick an even distance");
        }
        Ok(())
    }

    /// A new connection to the NS.
    ///
    /// # Errors
    ///
    /// The connection failed.
    pub async fn connect_ns(&self, label: &str) -> anyhow::Result<MsnpClient> {
        MsnpClient::connect(self.ns, Role::Notification, label).await
    }

    /// A new connection to the SB listener.
    ///
    /// # Errors
    ///
    /// The connection failed.
    pub async fn connect_sb(&self, label: &str) -> anyhow::Result<MsnpClient> {
        MsnpClient::connect(self.sb, Role::Switchboard, label).await
    }

    /// Connects and logs `handle` in with MD5 and its token in dialect `version` (MSNP2–7);
    /// returns the session right after the profile message.
    ///
    /// # Errors
    ///
    /// Any step of the login did not go as PROTOCOL.md §2.3.2 describes.
    pub async fn login(&self, version: u8, handle: &str) -> anyhow::Result<MsnpClient> {
        let mut c = self.connect_ns(&ns_label(handle)).await?;
        login_md5(&mut c, version, handle, self.token(handle)).await?;
        Ok(c)
    }

    /// Logs `handle` in as a client of dialect `version` would: MD5 for MSNP2–7
    /// ([`TestStack::login`]), Passport 1.4 from MSNP8 ([`TestStack::login_twn`]).
    ///
    /// # Errors
    ///
    /// Any step of the login failed.
    pub async fn login_as(&self, version: u8, handle: &str) -> anyhow::Result<MsnpClient> {
        if version <= 7 {
            self.login(version, handle).await
        } else {
            self.login_twn(version, handle).await
        }
    }

    /// Signs `handle` (a seeded account) in on the website with [`SEEDED_PASSWORD`].
    ///
    /// # Errors
    ///
    /// HTTP failed, or the sign-in did not land on `/`.
    pub async fn web_for(&self, handle: &str) -> anyhow::Result<crate::web::WebClient> {
        let mut web = crate::web::WebClient::new(self.http);
        let r = web
            .post(
                "/signin",
                &[("email", handle), ("password", SEEDED_PASSWORD)],
            )
            .await?;
        ensure!(
            crate::web::location(&r) == Some("/"),
            "sign-in of {handle}: {r:?}"
        );
        Ok(web)
    }

    /// A TLS 1.2 client trusting exactly this stack's generated CA.
    ///
    /// # Errors
    ///
    /// The CA file is unusable.
    pub fn tls_connector(&self) -> anyhow::Result<tokio_rustls::TlsConnector> {
        crate::http::tls12_connector(&self.ca_cert)
    }

    /// One HTTPS request (`request`: the whole head, ending in an empty line) on a new
    /// connection to the HTTPS listener.
    ///
    /// # Errors
    ///
    /// TLS or HTTP failed.
    pub async fn https_request(&self, request: &str) -> anyhow::Result<crate::http::Response> {
        self.https_request_bytes(request.as_bytes()).await
    }

    /// [`TestStack::https_request`] with the request as bytes.
    ///
    /// # Errors
    ///
    /// TLS or HTTP failed.
    pub async fn https_request_bytes(
        &self,
        request: &[u8],
    ) -> anyhow::Result<crate::http::Response> {
        let mut tls = crate::http::connect_tls(&self.tls_connector()?, self.https).await?;
        crate::http::exchange(&mut tls, request).await
    }

    /// Asks the nexus (`GET /rdr/pprdr.asp` over HTTPS) where to log in; returns the `DALogin`
    /// host (with port, if any) and path (without its leading `/`).
    ///
    /// # Errors
    ///
    /// TLS or HTTP failed, or the answer lacks a usable `DALogin`.
    pub async fn da_login(&self) -> anyhow::Result<(String, String)> {
        da_login_at(&self.tls_connector()?, self.https, None).await
    }

    /// The Passport 1.4 exchange MSN 5.0–7.x does over HTTPS: `GET /rdr/pprdr.asp`, then
    /// `GET /<DALogin path>` with `Authorization: Passport1.4 ...,pwd=<secret>,<twn_params>`.
    /// Returns the `login2.srf` response (200 with a ticket, or 401).
    ///
    /// # Errors
    ///
    /// TLS or HTTP failed, or the nexus answer lacks `DALogin`.
    pub async fn passport_login(
        &self,
        handle: &str,
        secret: &str,
        twn_params: &str,
    ) -> anyhow::Result<crate::http::Response> {
        let (host, path) = self.da_login().await?;
        self.https_request(&login2_request(&host, &path, handle, secret, twn_params))
            .await
    }

    /// The MSNP12 login MSN 7.5 does over HTTPS: `POST /RST.srf` with its SOAP body for
    /// `handle` and `secret` (the `USR TWN S` parameters as policy). Returns the response.
    ///
    /// # Errors
    ///
    /// TLS or HTTP failed.
    pub async fn rst_login(
        &self,
        handle: &str,
        secret: &str,
        twn_params: &str,
    ) -> anyhow::Result<crate::http::Response> {
        self.https_request(&rst_request(handle, secret, twn_params))
            .await
    }

    /// Logs `handle` in as MSN 7.5 does (MSNP12): `VER 1 MSNP12 MSNP11 MSNP10 CVR0`, `CVR` of
    /// 7.5.0324, `USR TWN I`, `POST /RST.srf` over HTTPS (against the stack's generated CA)
    /// with the seeded access token as password, the `Compact1` token in `USR TWN S`; consumes
    /// `USR OK`, `SBS 0 null` and the profile message.
    ///
    /// # Errors
    ///
    /// Any step went otherwise.
    pub async fn login_rst(&self, handle: &str) -> anyhow::Result<MsnpClient> {
        let mut c = self.connect_ns(&ns_label(handle)).await?;
        let versions = [
            ProtocolVersion::MSNP12,
            ProtocolVersion::MSNP11,
            ProtocolVersion::MSNP10,
        ];
        login_with_ticket(&mut c, &versions, "7.5.0324", handle, |params| async move {
            let res = self.rst_login(handle, self.token(handle), &params).await?;
            ensure!(
                res.status_line == "HTTP/1.1 200 OK",
                "RST.srf: {}",
                res.status_line
            );
            relive_msnp::rst::messenger_ticket(&res.body)
                .ok_or_else(|| anyhow!("RST.srf: no Compact1 token in the answer"))
        })
        .await?;
        Ok(c)
    }

    /// Logs `handle` in with Passport 1.4 in dialect `version` (MSNP8+): `VER` (offering
    /// `version` and MSNP8), `CVR`, `USR TWN I`, the real HTTPS nexus and `login2.srf` exchange
    /// with the seeded access token as `pwd`, then `USR TWN S <ticket>`; consumes `USR OK` and
    /// the profile message.
    ///
    /// # Errors
    ///
    /// Any step of the login did not go as PROTOCOL.md §2.3.3 describes.
    pub async fn login_twn(&self, version: u8, handle: &str) -> anyhow::Result<MsnpClient> {
        let mut c = self.connect_ns(&ns_label(handle)).await?;
        login_twn_with(&mut c, version, handle, |twn_params| async move {
            self.passport_login(handle, self.token(handle), &twn_params)
                .await
        })
        .await?;
        Ok(c)
    }

    /// Logs `handle` in through the nexus and `login2.srf` (HTTPS) as the client `client`
    /// (e.g. `6.2.0205`) offering the dialects `offer` (MSN 6.2: MSNP10 and MSNP9).
    ///
    /// # Errors
    ///
    /// Any step went otherwise.
    pub async fn login_passport_as(
        &self,
        offer: &[ProtocolVersion],
        client: &str,
        handle: &str,
    ) -> anyhow::Result<MsnpClient> {
        let mut c = self.connect_ns(&ns_label(handle)).await?;
        login_with_ticket(&mut c, offer, client, handle, |twn_params| async move {
            login2_ticket(
                &self
                    .passport_login(handle, self.token(handle), &twn_params)
                    .await?,
            )
        })
        .await?;
        Ok(c)
    }

    /// [`TestStack::login`], then `SYN 0` (whole dump consumed) and `CHG` to `status`, with its
    /// echo and the `ILN` burst consumed; returns the session and the `ILN`s.
    ///
    /// # Errors
    ///
    /// Any step failed.
    pub async fn online(
        &self,
        version: u8,
        handle: &str,
        status: &str,
    ) -> anyhow::Result<(MsnpClient, Vec<ServerMessage>)> {
        let mut c = self.login(version, handle).await?;
        sync_lists(&mut c).await?;
        let ilns = change_status(&mut c, status).await?;
        Ok((c, ilns))
    }

    /// Cancels the server, waits for it to finish and reports its result; returns the data
    /// directory for a restart.
    ///
    /// # Errors
    ///
    /// The server task failed, panicked or did not stop in time.
    pub async fn shutdown(mut self) -> anyhow::Result<DataDir> {
        self.shutdown.cancel();
        let task = self
            .task
            .take()
            .ok_or_else(|| anyhow!("already shut down"))?;
        let res = tokio::time::timeout(SHUTDOWN_TIMEOUT, task)
            .await
            .map_err(|_| anyhow!("server did not shut down within {SHUTDOWN_TIMEOUT:?}"))?;
        res.context("server task panicked")?
            .context("server returned an error")?;
        ensure!(
            *self.open.borrow() == 0,
            "connections still counted after shutdown"
        );
        self.data
            .take()
            .ok_or_else(|| anyhow!("data directory already taken"))
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The usual label of `handle`'s NS connection: `alice@example.com` → `alice_ns`.
#[must_use]
pub fn ns_label(handle: &str) -> String {
    format!("{}_ns", handle.split('@').next().unwrap_or(handle))
}

/// Runs `VER`, `INF`, `USR MD5 I`, `USR MD5 S` on `c` in dialect `version` with `secret` and
/// consumes `USR OK` and the profile message. Sets the client's dialect.
///
/// # Errors
///
/// Any reply differs from PROTOCOL.md §2.2–§2.4.
pub async fn login_md5(
    c: &mut MsnpClient,
    version: u8,
    handle: &str,
    secret: &str,
) -> anyhow::Result<()> {
    let v = ProtocolVersion::new(version).ok_or_else(|| anyhow!("bad version {version}"))?;
    let t = c.trid();
    c.send_line(&format!("VER {t} {v} CVR0")).await?;
    c.set_version(v);
    c.expect(&format!("VER {t} {v}"), |m| {
        matches!(m, ServerMessage::Ver { trid, versions, .. } if *trid == t && versions.first() == Some(&v))
    })
    .await?;
    let t = c.trid();
    c.send_line(&format!("INF {t}")).await?;
    c.expect(
        &format!("INF {t} MD5"),
        |m| matches!(m, ServerMessage::Inf { trid, method: AuthMethod::Md5 } if *trid == t),
    )
    .await?;
    let salt = md5_challenge(c, handle).await?;
    let t = c.trid();
    c.send_line(&format!("USR {t} MD5 S {}", md5_response(&salt, secret)))
        .await?;
    let want_handle = handle.to_owned();
    c.expect(&format!("USR {t} OK {handle}"), |m| {
        matches!(m, ServerMessage::UsrOk { trid, handle, .. } if *trid == t && handle.as_str() == want_handle)
    })
    .await?;
    let profile = c
        .expect("the profile MSG from Hotmail", |m| {
            matches!(m, ServerMessage::Msg { from, payload, .. }
            if from.as_str() == "Hotmail"
            && payload.windows(29).any(|w| w == b"Content-Type: text/x-msmsgspr"))
        })
        .await?;
    if let ServerMessage::Msg { payload, .. } = profile {
        c.set_profile(payload);
    }
    Ok(())
}

/// Asks the nexus at `https` (`GET /rdr/pprdr.asp`, trusting what `connector` trusts, from
/// the local address `from` or any) where to
/// log in; returns the `DALogin` host (with port, if any) and path (without its leading `/`).
///
/// # Errors
///
/// TLS or HTTP failed, or the answer lacks a usable `DALogin`.
pub async fn da_login_at(
    connector: &tokio_rustls::TlsConnector,
    https: SocketAddr,
    from: Option<IpAddr>,
) -> anyhow::Result<(String, String)> {
    let mut tls = crate::http::connect_tls_from(connector, https, from).await?;
    let request = b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: nexus.passport.com\r\n\r\n";
    crate::http::ask_nexus(&mut tls, request, request.len()).await
}

/// The `login2.srf` request of the Passport 1.4 exchange: `GET /<path>` on `host` with
/// `Authorization: Passport1.4 ...,sign-in=<handle>,pwd=<secret>,<twn_params>`.
#[must_use]
pub fn login2_request(
    host: &str,
    path: &str,
    handle: &str,
    secret: &str,
    twn_params: &str,
) -> String {
    let sign_in = handle.replace('@', "%40");
    format!(
        "GET /{path} HTTP/1.1\r\nAuthorization: Passport1.4 OrgVerb=GET,\
         OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={sign_in},pwd={secret},\
         {twn_params}\r\nUser-Agent: MSMSGS\r\nHost: {host}\r\n\
         Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n"
    )
}

/// Logs `handle` in with Passport 1.4 in dialect `version` (MSNP8+) on the NS connection `c`:
/// `VER` (offering `version` and MSNP8), `CVR`, `USR TWN I`, then `passport` with the `TWN S`
/// parameters (it does the HTTPS `login2.srf` exchange and returns the response), then
/// `USR TWN S <ticket>`; consumes `USR OK` (and, MSNP11+, `SBS`) and the profile message.
///
/// # Errors
///
/// Any step of the login did not go as PROTOCOL.md §2.3.3 describes.
pub async fn login_twn_with<F, Fut>(
    c: &mut MsnpClient,
    version: u8,
    handle: &str,
    passport: F,
) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<crate::http::Response>>,
{
    let v = ProtocolVersion::new(version).ok_or_else(|| anyhow!("bad version {version}"))?;
    login_with_ticket(
        c,
        &[v, ProtocolVersion::MSNP8],
        "6.2.0205",
        handle,
        |twn_params| async move { login2_ticket(&passport(twn_params).await?) },
    )
    .await
}

/// The ticket of a successful `login2.srf` answer.
///
/// # Errors
///
/// Not `200 OK`, or no ticket in `Authentication-Info`.
pub fn login2_ticket(res: &crate::http::Response) -> anyhow::Result<String> {
    ensure!(
        res.status_line == "HTTP/1.1 200 OK",
        "login2.srf: {}",
        res.status_line
    );
    res.header("Authentication-Info")
        .and_then(crate::http::ticket_of)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login2.srf: no ticket"))
}

/// The Passport login on `c`: `VER` offering `offer` (the first is expected back), `CVR` of
/// `MSNMSGR <client>`, `USR TWN I`, then `ticket` with the `TWN S` parameters (it does the
/// HTTPS part and returns the ticket), then `USR TWN S <ticket>`; consumes `USR OK`, `SBS 0
/// null` where the dialect sends it, and the profile message. Sets the client's dialect.
///
/// # Errors
///
/// Any step went otherwise.
pub async fn login_with_ticket<F, Fut>(
    c: &mut MsnpClient,
    offer: &[ProtocolVersion],
    client: &str,
    handle: &str,
    ticket: F,
) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    let v = *offer.first().ok_or_else(|| anyhow!("no dialect offered"))?;
    let offered: Vec<String> = offer.iter().map(ToString::to_string).collect();
    let t = c.trid();
    c.send_line(&format!("VER {t} {} CVR0", offered.join(" ")))
        .await?;
    c.set_version(v);
    let line = c.recv_raw().await?.line();
    ensure!(
        line == format!("VER {t} {v}") || line == format!("VER {t} {v} CVR0"),
        "expected VER {t} {v}, got {line:?}"
    );
    let t = c.trid();
    c.send_line(&format!(
        "CVR {t} 0x0409 winnt 5.1 i386 MSNMSGR {client} MSMSGS {handle}"
    ))
    .await?;
    let line = c.recv_raw().await?.line();
    ensure!(
        line.starts_with(&format!("CVR {t} ")),
        "expected CVR, got {line:?}"
    );
    let t = c.trid();
    c.send_line(&format!("USR {t} TWN I {handle}")).await?;
    let line = c.recv_raw().await?.line();
    let twn_params = line
        .strip_prefix(&format!("USR {t} TWN S "))
        .ok_or_else(|| anyhow!("expected USR {t} TWN S, got {line:?}"))?
        .to_owned();
    let ticket = ticket(twn_params).await?;
    let t = c.trid();
    c.send_line(&format!("USR {t} TWN S {ticket}")).await?;
    let line = c.recv_raw().await?.line();
    ensure!(
        line.starts_with(&format!("USR {t} OK {handle} ")),
        "expected USR {t} OK, got {line:?}"
    );
    let mut profile = c.recv_raw().await?;
    if c.caps().sbs {
        ensure!(
            profile.line() == "SBS 0 null",
            "expected SBS 0 null, got {:?}",
            profile.line()
        );
        profile = c.recv_raw().await?;
    }
    ensure!(
        profile.line().starts_with("MSG Hotmail Hotmail "),
        "expected the profile, got {:?}",
        profile.line()
    );
    if let Some(payload) = profile.payload() {
        c.set_profile(payload.clone());
    }
    Ok(())
}

/// The `RST.srf` request MSN 7.5 posts (its SOAP body from
/// [`relive_msnp::rst::msn75_request`], in an HTTP/1.1 POST as WinINet sends it).
#[must_use]
pub fn rst_request(handle: &str, secret: &str, twn_params: &str) -> String {
    let body = relive_msnp::rst::msn75_request(handle, secret, twn_params);
    format!(
        "POST /RST.srf HTTP/1.1\r\nAccept: text/*\r\nUser-Agent: MSMSGS\r\n\
         Content-Type: text/xml; charset=utf-8\r\nHost: loginnet.passport.com\r\n\
         Content-Length: {}\r\nConnection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `USR trid MD5 I handle` and returns the challenge from `USR trid MD5 S <salt>`.
///
/// # Errors
///
/// A different reply.
pub async fn md5_challenge(c: &mut MsnpClient, handle: &str) -> anyhow::Result<String> {
    let t = c.trid();
    c.send_line(&format!("USR {t} MD5 I {handle}")).await?;
    match c.recv().await? {
        ServerMessage::UsrChallenge {
            trid,
            method: AuthMethod::Md5,
            challenge: Some(salt),
        } if trid == t => Ok(salt.as_str().to_owned()),
        other => bail!(
            "{}: expected USR {t} MD5 S <salt>, got {other:?}",
            c.label()
        ),
    }
}

/// Sends `SYN trid 0` (MSNP10+: `SYN trid 0 0`) and consumes the reply: the `SYN` line and
/// whatever dump follows (the end is found with a `PNG` round trip, since a server whose
/// version is still 0 may answer with the `SYN` line alone). Returns the list version (0 from
/// MSNP10) and the lines after `SYN`.
///
/// # Errors
///
/// No `SYN` reply first.
pub async fn sync_lists(c: &mut MsnpClient) -> anyhow::Result<(u32, Vec<ServerMessage>)> {
    let t = c.trid();
    let nothing_cached = if c.caps().abch { "0 0" } else { "0" };
    c.send_line(&format!("SYN {t} {nothing_cached}")).await?;
    let version = match c.recv().await? {
        ServerMessage::Syn { trid, version, .. } if trid == t => version,
        other => bail!("{}: expected SYN {t} <v>, got {other:?}", c.label()),
    };
    c.send_line("PNG").await?;
    let mut lines = Vec::new();
    loop {
        match c.recv().await? {
            ServerMessage::Qng { .. } => return Ok((version, lines)),
            m => lines.push(m),
        }
    }
}

/// Sends `CHG trid status` and consumes the echo and the `ILN` burst (which ends at the next
/// `PNG` round trip: the burst is sent before the server reads our `PNG`), `UBX` lines
/// (MSNP11+) included. A `CHL` met on the way is answered correctly.
///
/// # Errors
///
/// No echo.
pub async fn change_status(c: &mut MsnpClient, status: &str) -> anyhow::Result<Vec<ServerMessage>> {
    let t = c.trid();
    c.send_line(&format!("CHG {t} {status}")).await?;
    c.expect(&format!("CHG {t} {status}"), |m| {
        matches!(m, ServerMessage::Chg { trid, status: s, .. } if *trid == t && s.as_str() == status)
    })
    .await?;
    c.send_line("PNG").await?;
    let mut ilns = Vec::new();
    loop {
        match c.recv().await? {
            ServerMessage::Qng { .. } => return Ok(ilns),
            m @ ServerMessage::Iln { trid, .. } if trid == t => ilns.push(m),
            // MSNP11+: a contact's personal message follows its ILN.
            m @ ServerMessage::Ubx { .. } => ilns.push(m),
            // With challenges on, answer like MSN 4.x (or, MSNP11+, MSN 7.0) would and take the
            // acknowledgement.
            ServerMessage::Chl { challenge, .. } => {
                let scheme = c.caps().qry;
                let id = match scheme {
                    relive_msnp::version::QryScheme::Md5 => QRY_CLIENT_ID,
                    relive_msnp::version::QryScheme::ProductKey => QRY_PRODUCT_ID,
                };
                let answer = qry_answer(scheme, challenge.as_str(), id)
                    .ok_or_else(|| anyhow!("no key for {id}"))?;
                let q = c.trid();
                c.send_payload(&format!("QRY {q} {id}"), answer.as_bytes())
                    .await?;
            }
            ServerMessage::QryAck { .. } => {}
            other => bail!(
                "{}: expected ILN {t} lines then QNG, got {other:?}",
                c.label()
            ),
        }
    }
}
