//! The standalone relay (`relive-relay serve`): the data plane of the embedded relay — the
//! [`PortPool`] and the [`AgentHub`] — in its own process, driven by `relive-server` over
//! the control protocol ([`crate::control`]).
//!
//! ```text
//! relive-server ──QUIC "relive-relay-control/3"──▶ ┐  one UDP endpoint, dispatched by ALPN
//! agents        ──QUIC "relive-agent/2"──────────▶ ┘
//!   Hello(secret) → Welcome        (constant-time compare; wrong secret → closed, logged)
//!   Lease → Leased[ports]          (bound with PortPool::bind_spare, held for the server)
//!   Forward / Rendezvous           (PortPool::try_forward_on / try_rendezvous_on: the same
//!                                   limits, expiry, expected-peer check and agent dial as the
//!                                   embedded relay) → Refused on failure
//!   agent AgentHello("<handle> <token>") → Verify → server checks its store → Verdict
//!   agent (dis)connects → Presence
//! ```
//!
//! **The lease/arm race.** The server advertises a leased port in an invitation and arms it
//! right after, asynchronously; the peer could in theory connect before the `Forward` frame
//! arrives. The leased socket is already listening, so such a connection completes its TCP
//! handshake and waits in the accept backlog; once armed, the allocation accepts it and checks
//! its address like any other (a stranger is closed, the expected peer is relayed). Nothing is
//! refused for arriving early; a port never armed is closed when the control connection ends.
//!
//! **When the control connection drops**, every leased-but-unarmed port is closed, agent
//! verifications in flight are answered "no", and armed allocations run on under their
//! own limits (an unused one expires after the pool's TTL, ≈ 60 s; a transfer in progress is
//! not cut). The server reconnects with a backoff and leases afresh.
//!
//! **Several servers** ([`ServeConfig::servers`], `--servers`): by default one control
//! connection is served and a newer one (the same server, reconnecting) replaces the older.
//! In cluster mode every SB node drives this one relay: up to `servers` control connections
//! are served at once (one more replaces the oldest), each with its own leases and ids
//! (a [`Session`] per connection), each told the presence of every agent, so an agent
//! connected here is reachable from a room on any SB node; per-user limits are this relay's
//! pool's, network-wide. An agent's token is verified by the newest connected server (they
//! share one store).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::agent_hub::{AgentHub, AuthFuture, Authenticate};
use crate::control::{self, ToRelay, ToServer};
use crate::dial::Dial;
use crate::ports::{PoolConfig, PoolError, PortPool};
use crate::quic::{self, Identity, QuicError};
use crate::rewrite::{Allocate as _, AllocationId};
use crate::wire::{Redacted, WireError};

/// Time a new connection has to finish its handshake and say hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the server has to answer an agent verification.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most ports leased to the server at once.
pub const MAX_LEASED_PORTS: usize = 64;
/// Agent verifications waiting for the server at once.
const MAX_PENDING: usize = 64;
/// Server ids of armed allocations remembered for `Release` (oldest forgotten first; a
/// forgotten one still ends by itself).
const MAX_ARMED: usize = 4096;
/// Frames queued towards the server.
const OUT_QUEUE: usize = 256;

/// Why the standalone relay could not start or a control connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The port pool configuration was refused.
    #[error("relay port pool")]
    Pool(#[from] PoolError),
    /// The QUIC configuration or endpoint failed.
    #[error("relay QUIC endpoint")]
    Quic(#[from] QuicError),
    /// A relay file could not be read or written.
    #[error("relay file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A relay file has unusable contents.
    #[error("relay file {0} is unusable (delete it to generate a new one)")]
    BadFile(PathBuf),
    /// The control connection failed.
    #[error("control connection")]
    Connection(#[from] quinn::ConnectionError),
    /// A control frame could not be read or written, or was malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The control peer did not say hello in time.
    #[error("no hello in time")]
    Timeout,
    /// The shared secret did not match.
    #[error("wrong control secret")]
    Denied,
    /// A second hello.
    #[error("unexpected control message")]
    Unexpected,
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::File {
        path: path.to_owned(),
        source,
    }
}

/// Where a standalone relay keeps its identity and the control secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFiles {
    /// The relay's certificate (PEM); agents and the server trust it.
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
    /// The control secret shared with the server (mode 0600).
    pub secret: PathBuf,
}

impl RelayFiles {
    /// `relay-cert.pem`, `relay-key.pem` and `control-secret` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("relay-cert.pem"),
            key: dir.join("relay-key.pem"),
            secret: dir.join("control-secret"),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(file_error(path))?;
    file.write_all(bytes).map_err(file_error(path))
}

/// Loads the relay's certificate and key, or generates a self-signed pair for `names` (host
/// names or IP addresses agents and the server use) on first start. `true` when generated.
///
/// # Errors
///
/// [`ServeError::File`], [`ServeError::BadFile`], [`ServeError::Quic`].
pub fn load_or_create_identity(
    files: &RelayFiles,
    names: &[String],
) -> Result<(Identity, bool), ServeError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    if files.cert.exists() {
        let certs = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|_| ServeError::BadFile(files.cert.clone()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ServeError::BadFile(files.cert.clone()))?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|_| ServeError::BadFile(files.key.clone()))?;
        if certs.is_empty() {
            return Err(ServeError::BadFile(files.cert.clone()));
        }
        return Ok((Identity { certs, key }, false));
    }
    let certified = rcgen::generate_simple_self_signed(names.to_vec()).map_err(QuicError::from)?;
    write_private(&files.key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, certified.cert.pem()).map_err(file_error(&files.cert))?;
    let (identity, _) = load_or_create_identity(files, names)?;
    Ok((identity, true))
}

/// Reads a control secret file (surrounding whitespace ignored).
///
/// # Errors
///
/// [`ServeError::File`], or [`ServeError::BadFile`] when the secret is shorter than
/// [`control::MIN_SECRET_BYTES`] or longer than [`control::MAX_SECRET_BYTES`].
pub fn read_secret(path: &Path) -> Result<Vec<u8>, ServeError> {
    let text = std::fs::read(path).map_err(file_error(path))?;
    let secret = text.trim_ascii().to_vec();
    if !(control::MIN_SECRET_BYTES..=control::MAX_SECRET_BYTES).contains(&secret.len()) {
        return Err(ServeError::BadFile(path.to_owned()));
    }
    Ok(secret)
}

/// Reads the control secret at `path`, or writes a new random one (64 hex digits, mode
/// 0600) on first start. `true` when generated.
///
/// # Errors
///
/// As [`read_secret`].
pub fn load_or_create_secret(path: &Path) -> Result<(Vec<u8>, bool), ServeError> {
    use ring::rand::SecureRandom as _;
    if path.exists() {
        return Ok((read_secret(path)?, false));
    }
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| ServeError::BadFile(path.to_owned()))?;
    let text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{text}\n").as_bytes())?;
    Ok((read_secret(path)?, true))
}

/// Settings of [`run`].
#[derive(Clone)]
pub struct ServeConfig {
    /// The allocation ports (range, limits, expiry, splice buffers).
    pub pool: PoolConfig,
    /// The control secret the server must present.
    pub secret: Vec<u8>,
    /// Most server control connections served at once (1: one server; the SB nodes of a
    /// cluster: their number). One more replaces the oldest.
    pub servers: usize,
}

impl ServeConfig {
    /// One server's relay: `pool`, `secret`, [`Self::servers`] 1.
    #[must_use]
    pub const fn new(pool: PoolConfig, secret: Vec<u8>) -> Self {
        Self {
            pool,
            secret,
            servers: 1,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("pool", &self.pool)
            .field("secret", &"***")
            .field("servers", &self.servers)
            .finish()
    }
}

/// The current control connection, as the agent verifier needs it.
struct Link {
    /// The connection's `stable_id`.
    id: usize,
    connection: quinn::Connection,
    out: mpsc::Sender<ToServer>,
    pending: HashMap<u64, oneshot::Sender<Option<String>>>,
}

#[derive(Default)]
struct Shared {
    /// The servers' control connections, oldest first.
    links: Mutex<Vec<Link>>,
    next_request: AtomicU64,
}

impl Shared {
    fn links(&self) -> std::sync::MutexGuard<'_, Vec<Link>> {
        // Every update is one push, removal or map operation: a poisoned lock is consistent.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Verifies agent credentials by asking the server over the control connection, so access
/// tokens stay in the server's store. No control connection: every agent is refused.
struct ServerVerifies(Arc<Shared>);

impl Authenticate for ServerVerifies {
    fn authenticate(&self, credential: &str, from: std::net::IpAddr) -> AuthFuture {
        let shared = Arc::clone(&self.0);
        let request = shared.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let (sent, link_id) = {
            let mut links = shared.links();
            // The newest server connection: the likeliest to be alive.
            match links.last_mut() {
                Some(link) if link.pending.len() < MAX_PENDING => {
                    let frame = ToServer::Verify {
                        request,
                        peer: from,
                        credential: Redacted(credential.to_owned()),
                    };
                    link.pending.insert(request, tx);
                    let sent = link.out.try_send(frame).is_ok();
                    if !sent {
                        link.pending.remove(&request);
                    }
                    (sent, link.id)
                }
                _ => (false, 0),
            }
        };
        Box::pin(async move {
            if !sent {
                tracing::warn!(target: "relive_relay::serve", "agent refused: no server to verify it");
                return None;
            }
            let answer = tokio::time::timeout(VERIFY_TIMEOUT, rx).await;
            if let Some(link) = shared.links().iter_mut().find(|l| l.id == link_id) {
                link.pending.remove(&request);
            }
            answer.ok()?.ok()?
        })
    }
}

/// Runs the standalone relay on `endpoint` (configured with [`endpoint_config`]) until
/// `shutdown` is cancelled: the port pool, the agent hub and the server's control
/// connection; see the module doc.
///
/// # Errors
///
/// [`ServeError::Pool`] for an invalid pool configuration (nothing is served then).
pub async fn run(
    endpoint: quinn::Endpoint,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let shared = Arc::new(Shared::default());
    let servers = config.servers.max(1);
    let hub = AgentHub::new(Arc::new(ServerVerifies(Arc::clone(&shared))));
    let pool = PortPool::new(config.pool, Some(Arc::new(hub.clone()) as Arc<dyn Dial>))?;
    let secret: Arc<[u8]> = config.secret.into();
    tracing::info!(
        target: "relive_relay::serve",
        addr = ?endpoint.local_addr().ok(),
        "relay serving agents and the server's control connection"
    );
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = shutdown.cancelled() => None,
        };
        let Some(incoming) = incoming else { break };
        let Some(admission) = hub.admit(incoming.remote_address().ip()) else {
            incoming.refuse();
            continue;
        };
        let (shared, hub, pool, secret) = (
            Arc::clone(&shared),
            hub.clone(),
            pool.clone(),
            Arc::clone(&secret),
        );
        tokio::spawn(async move {
            let _admission = admission;
            let remote = incoming.remote_address();
            let connection = match tokio::time::timeout(HELLO_TIMEOUT, incoming).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    tracing::info!(target: "relive_relay::serve", %remote, %error, "QUIC handshake failed");
                    return;
                }
                Err(_) => return,
            };
            if quic::negotiated_alpn(&connection).as_deref() == Some(control::ALPN) {
                let server = (&*shared, &pool, &hub);
                if let Err(error) = serve_control(server, connection, &secret, servers).await {
                    tracing::warn!(target: "relive_relay::serve", %remote, %error, "control connection ended");
                }
            } else {
                hub.serve(connection).await;
            }
        });
    }
    endpoint.close(0u32.into(), b"shutdown");
    Ok(())
}

/// The QUIC server configuration of a standalone relay: both ALPNs on one endpoint.
///
/// # Errors
///
/// [`QuicError`].
pub fn endpoint_config(identity: Identity) -> Result<quinn::ServerConfig, QuicError> {
    quic::server_config_with_alpn(identity, &[quic::ALPN, control::ALPN])
}

/// Per-connection relay state of one control connection.
struct Session<'a> {
    pool: &'a PortPool,
    shared: &'a Shared,
    /// This control connection's `stable_id`.
    link: usize,
    leased: HashMap<u16, crate::ports::Bound>,
    armed: HashMap<u64, AllocationId>,
    armed_order: VecDeque<u64>,
}

impl Session<'_> {
    /// Handles one message from the server; returns the messages to answer with.
    fn handle(&mut self, message: ToRelay) -> Result<Vec<ToServer>, ServeError> {
        match message {
            ToRelay::Lease { count } => {
                let room = MAX_LEASED_PORTS.saturating_sub(self.leased.len());
                let mut ports = Vec::new();
                for _ in 0..usize::from(count).min(room).min(control::MAX_LEASED) {
                    let Ok(socket) = self.pool.bind_spare() else {
                        tracing::warn!(target: "relive_relay::serve", "no free port to lease");
                        break;
                    };
                    let Ok(port) = socket.port() else {
                        continue;
                    };
                    self.leased.insert(port, socket);
                    ports.push(port);
                }
                tracing::debug!(target: "relive_relay::serve", count = ports.len(), "ports leased");
                Ok(vec![ToServer::Leased { ports }])
            }
            ToRelay::Forward {
                id,
                port,
                peer,
                target,
                user,
            } => {
                let armed = self
                    .leased
                    .remove(&port)
                    .ok_or(crate::ports::AllocError::Exhausted)
                    .and_then(|socket| self.pool.try_forward_on(socket, &user, peer, target));
                match armed {
                    Ok(allocated) => {
                        self.remember(id, allocated.id);
                        Ok(Vec::new())
                    }
                    Err(error) => {
                        tracing::warn!(target: "relive_relay::serve", port, %error, "forward arm refused");
                        Ok(vec![ToServer::Refused { id }])
                    }
                }
            }
            ToRelay::Rendezvous { legs, owner } => {
                let sockets = (
                    self.leased.remove(&legs[0].1),
                    self.leased.remove(&legs[1].1),
                );
                let armed = match sockets {
                    (Some(a), Some(b)) => {
                        self.pool
                            .try_rendezvous_on([a, b], &owner, [legs[0].2, legs[1].2])
                    }
                    _ => Err(crate::ports::AllocError::Exhausted),
                };
                match armed {
                    Ok([a, b]) => {
                        self.remember(legs[0].0, a.id);
                        self.remember(legs[1].0, b.id);
                        Ok(Vec::new())
                    }
                    Err(error) => {
                        tracing::warn!(target: "relive_relay::serve", %error, "rendezvous arm refused");
                        Ok(vec![
                            ToServer::Refused { id: legs[0].0 },
                            ToServer::Refused { id: legs[1].0 },
                        ])
                    }
                }
            }
            ToRelay::Release { id } => {
                if let Some(allocation) = self.armed.remove(&id) {
                    self.pool.release(allocation);
                }
                Ok(Vec::new())
            }
            ToRelay::Verdict { request, user } => {
                let waiter = self
                    .shared
                    .links()
                    .iter_mut()
                    .find(|link| link.id == self.link)
                    .and_then(|link| link.pending.remove(&request));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(user);
                }
                Ok(Vec::new())
            }
            ToRelay::Hello { .. } => Err(ServeError::Unexpected),
        }
    }

    fn remember(&mut self, id: u64, allocation: AllocationId) {
        if self.armed_order.len() >= MAX_ARMED
            && let Some(oldest) = self.armed_order.pop_front()
        {
            self.armed.remove(&oldest);
        }
        self.armed.insert(id, allocation);
        self.armed_order.push_back(id);
    }
}

async fn serve_control(
    (shared, pool, hub): (&Shared, &PortPool, &AgentHub),
    connection: quinn::Connection,
    secret: &[u8],
    servers: usize,
) -> Result<(), ServeError> {
    let remote = connection.remote_address();
    let hello = async {
        let (send, recv) = connection.accept_bi().await?;
        let mut frames = FramedRead::new(recv, control::relay_codec());
        let hello = frames
            .next()
            .await
            .ok_or_else(|| WireError::Io(std::io::ErrorKind::UnexpectedEof.into()))??;
        Ok::<_, ServeError>((send, frames, hello))
    };
    let (send, mut frames, hello) = tokio::time::timeout(HELLO_TIMEOUT, hello)
        .await
        .map_err(|_| ServeError::Timeout)??;
    if !hello.is_hello_with(secret) {
        connection.close(control::CLOSE_DENIED.into(), b"denied");
        return Err(ServeError::Denied);
    }
    let mut send = FramedWrite::new(send, control::relay_codec());
    send.send(ToServer::Welcome).await?;
    let (out_tx, mut out_rx) = mpsc::channel(OUT_QUEUE);
    let previous = {
        let mut links = shared.links();
        links.push(Link {
            id: connection.stable_id(),
            connection: connection.clone(),
            out: out_tx,
            pending: HashMap::new(),
        });
        (links.len() > servers).then(|| links.remove(0))
    };
    if let Some(previous) = previous {
        previous
            .connection
            .close(control::CLOSE_REPLACED.into(), b"replaced");
    }
    tracing::info!(target: "relive_relay::serve", %remote, "server control connection up");
    let mut presence = hub.subscribe();
    presence.mark_changed();
    let mut online: HashSet<String> = HashSet::new();
    let mut session = Session {
        pool,
        shared,
        link: connection.stable_id(),
        leased: HashMap::new(),
        armed: HashMap::new(),
        armed_order: VecDeque::new(),
    };
    // `?` inside leaves this block only, so the clean-up below always runs.
    let result = async {
        loop {
            tokio::select! {
                // `FramedRead::next` is cancel-safe: a frame half read stays buffered.
                message = frames.next() => {
                    let answers = match message {
                        None => return Ok(()),
                        Some(Err(error)) => Err(ServeError::Wire(error)),
                        Some(Ok(message)) => session.handle(message),
                    };
                    let answers = answers.inspect_err(|_| {
                        connection.close(control::CLOSE_PROTOCOL.into(), b"protocol");
                    })?;
                    for answer in answers {
                        send.feed(answer).await?;
                    }
                    send.flush().await?;
                }
                message = out_rx.recv() => {
                    // The sender lives in `shared` until this connection is replaced.
                    let Some(message) = message else { return Ok(()) };
                    send.send(message).await?;
                }
                changed = presence.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let now: HashSet<String> = hub.users().into_iter().collect();
                    let mut updates: Vec<ToServer> = now
                        .difference(&online)
                        .map(|user| ToServer::Presence { user: user.clone(), online: true })
                        .collect();
                    updates.extend(online.difference(&now).map(|user| ToServer::Presence {
                        user: user.clone(),
                        online: false,
                    }));
                    online = now;
                    for update in updates {
                        send.feed(update).await?;
                    }
                    send.flush().await?;
                }
                error = connection.closed() => return Err(ServeError::Connection(error)),
            }
        }
    }
    .await;
    shared.links().retain(|l| l.id != connection.stable_id());
    tracing::info!(
        target: "relive_relay::serve",
        %remote,
        closed_leases = session.leased.len(),
        "server control connection down"
    );
    result
}
