//! The relay side of the companion agents: accepts their QUIC connections, authenticates
//! them by account token, keeps one connection per user, and opens a QUIC stream to the
//! right agent for each relayed TCP connection (it implements [`Dial`]).
//!
//! ```text
//! agent ──QUIC──▶ AgentHub::run          Hello(token) → Authenticate → Welcome(user)
//! PortPool::try_forward ─ announce ─▶    Grant{id, port} on the user's control stream
//! visitor connects to the relay port ─▶  dial: open_bi, Open{id}, splice
//! ```
//!
//! A newer connection of the same user replaces the older one. Tokens are never logged.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::dial::{BoxedStream, Dial, DialFuture};
use crate::limits::{LogBudget, SourceCounts, SourceKey};
use crate::proto::{self, Grant, Reply};
use crate::rewrite::AllocationId;

/// Time an agent has to open its control stream and say hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Grants queued for one agent before further announcements are refused.
const GRANT_QUEUE: usize = 64;
/// QUIC connections (handshaking or established) one source (an IPv4 address or an IPv6 /64)
/// may hold with the endpoint at once: one agent per user, a few users behind one NAT. More
/// are refused before their handshake costs anything.
pub const MAX_CONNECTIONS_PER_SOURCE: u32 = 16;
/// QUIC connections the endpoint holds at once.
pub const MAX_CONNECTIONS: usize = 10_000;
/// QUIC close code: authentication failed.
pub const CLOSE_DENIED: u32 = 1;
/// QUIC close code: replaced by a newer connection of the same user.
pub const CLOSE_REPLACED: u32 = 2;

/// The future an [`Authenticate`] returns: the user the token belongs to.
pub type AuthFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Maps an agent's access token to its user. The server implements it over its store (and
/// its login limiter, which is why the agent's address comes along).
pub trait Authenticate: Send + Sync + 'static {
    /// The user (handle) `token`, presented by an agent at `from`, belongs to, or `None`.
    fn authenticate(&self, token: &str, from: IpAddr) -> AuthFuture;
}

/// A fixed token table (tests, a standalone relay). Only SHA-256 digests of the tokens are
/// kept, so the table itself holds no usable secret.
pub struct StaticTokens {
    users: HashMap<[u8; 32], String>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.users.len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl StaticTokens {
    /// A table of `(token, user)` pairs.
    pub fn new<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Self {
            users: pairs
                .into_iter()
                .map(|(token, user)| (digest(&token), user))
                .collect(),
        }
    }
}

impl Authenticate for StaticTokens {
    fn authenticate(&self, token: &str, _from: IpAddr) -> AuthFuture {
        let user = self.users.get(&digest(token)).cloned();
        Box::pin(async move { user })
    }
}

struct Link {
    connection: quinn::Connection,
    grants: mpsc::Sender<Grant>,
}

struct HubInner {
    auth: Arc<dyn Authenticate>,
    /// Connections per source (see [`MAX_CONNECTIONS_PER_SOURCE`]).
    sources: SourceCounts,
    /// Lines about refused connections.
    refusals: LogBudget,
    agents: Mutex<HashMap<String, Link>>,
    /// Bumped on every (un)registration, for [`AgentHub::wait_for`].
    changes: watch::Sender<u64>,
}

impl HubInner {
    fn agents(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        // Every update is a single insert or remove: a poisoned map is still consistent.
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Registry of connected companion agents; see the module doc.
#[derive(Clone)]
pub struct AgentHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHub")
            .field("agents", &self.inner.agents().len())
            .finish()
    }
}

impl AgentHub {
    /// A hub that authenticates agents with `auth`.
    pub fn new(auth: Arc<dyn Authenticate>) -> Self {
        Self {
            inner: Arc::new(HubInner {
                auth,
                sources: SourceCounts::new(MAX_CONNECTIONS_PER_SOURCE, MAX_CONNECTIONS),
                refusals: LogBudget::new(10, Duration::from_secs(60)),
                agents: Mutex::new(HashMap::new()),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// Whether `user`'s agent is connected now (what the rewriter's `PeerFacts::agent` is
    /// filled from).
    pub fn connected(&self, user: &str) -> bool {
        self.inner.agents().contains_key(user)
    }

    /// Waits until `user`'s agent is connected.
    pub async fn wait_for(&self, user: &str) {
        let mut rx = self.inner.changes.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = rx.wait_for(|_| self.connected(user)).await;
    }

    /// The users whose agents are connected now.
    pub fn users(&self) -> Vec<String> {
        self.inner.agents().keys().cloned().collect()
    }

    /// A receiver that changes whenever an agent connects or disconnects (a standalone
    /// relay reports presence to its server from it; see [`AgentHub::users`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Serves one agent on a connection already established on an endpoint shared with
    /// other protocols (a standalone relay dispatches by ALPN), until it ends.
    pub async fn serve(&self, connection: quinn::Connection) {
        let remote = connection.remote_address();
        let hello = async {
            let (send, mut recv) = connection.accept_bi().await?;
            let hello = proto::read_hello(&mut recv).await?;
            Ok::<_, HubError>((send, recv, hello))
        };
        let result = match tokio::time::timeout(HELLO_TIMEOUT, hello).await {
            Err(_) => Err(HubError::Timeout),
            Ok(Err(error)) => Err(error),
            Ok(Ok((send, recv, hello))) => {
                serve_hello(Arc::clone(&self.inner), connection, send, recv, hello).await
            }
        };
        if let Err(error) = result {
            tracing::info!(target: "relive_relay::agent", %remote, %error, "agent connection ended");
        }
    }

    /// A place for one more connection from `from` (held until the [`Admission`] is dropped),
    /// or `None` when that source, or the endpoint, holds its share already (the refusal is
    /// logged within a budget).
    pub fn admit(&self, from: IpAddr) -> Option<Admission> {
        let source = SourceKey::of(from);
        match self.inner.sources.acquire(source) {
            Ok(()) => Some(Admission {
                inner: Arc::clone(&self.inner),
                source,
            }),
            Err(why) => {
                if let Some(suppressed) = self.inner.refusals.take(std::time::Instant::now()) {
                    tracing::warn!(
                        target: "relive_relay::agent",
                        %source,
                        %why,
                        suppressed,
                        "QUIC connection refused"
                    );
                }
                None
            }
        }
    }

    /// Accepts agent connections on `endpoint` until it is closed (at most
    /// [`MAX_CONNECTIONS_PER_SOURCE`] per source at once).
    pub async fn run(&self, endpoint: quinn::Endpoint) {
        while let Some(incoming) = endpoint.accept().await {
            let Some(admission) = self.admit(incoming.remote_address().ip()) else {
                incoming.refuse();
                continue;
            };
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                let _admission = admission;
                let remote = incoming.remote_address();
                if let Err(error) = serve_agent(inner, incoming).await {
                    tracing::info!(target: "relive_relay::agent", %remote, %error, "agent connection ended");
                }
            });
        }
    }
}

/// One connection's place in the per-source count; given back when dropped.
pub struct Admission {
    inner: Arc<HubInner>,
    source: SourceKey,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("source", &self.source)
            .finish()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.inner.sources.release(self.source);
    }
}

/// Why one agent connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The QUIC connection failed or closed.
    #[error("QUIC connection")]
    Connection(#[from] quinn::ConnectionError),
    /// The agent did not say hello in time.
    #[error("no hello from the agent in time")]
    Timeout,
    /// The hello was malformed.
    #[error(transparent)]
    Proto(#[from] proto::ProtoError),
    /// The token was not accepted.
    #[error("agent token rejected")]
    Denied,
}

async fn serve_agent(inner: Arc<HubInner>, incoming: quinn::Incoming) -> Result<(), HubError> {
    let handshake = async {
        let connection = incoming.await?;
        let (send, mut recv) = connection.accept_bi().await?;
        let hello = proto::read_hello(&mut recv).await?;
        Ok::<_, HubError>((connection, send, recv, hello))
    };
    let (connection, send, recv, hello) = tokio::time::timeout(HELLO_TIMEOUT, handshake)
        .await
        .map_err(|_| HubError::Timeout)??;
    serve_hello(inner, connection, send, recv, hello).await
}

async fn serve_hello(
    inner: Arc<HubInner>,
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    _recv: quinn::RecvStream,
    hello: proto::Hello,
) -> Result<(), HubError> {
    let remote = connection.remote_address();
    let Some(user) = inner.auth.authenticate(&hello.token, remote.ip()).await else {
        tracing::warn!(target: "relive_relay::agent", %remote, "agent token rejected");
        let _ = send.write_all(&Reply::Denied.encode()).await;
        let _ = send.finish();
        // Give the reply a moment to arrive before closing.
        let _ = tokio::time::timeout(Duration::from_secs(1), connection.closed()).await;
        connection.close(CLOSE_DENIED.into(), b"denied");
        return Err(HubError::Denied);
    };
    send.write_all(&Reply::Welcome(user.clone()).encode())
        .await
        .map_err(|e| HubError::Proto(proto::ProtoError::Io(e.into())))?;
    let (grants_tx, mut grants_rx) = mpsc::channel(GRANT_QUEUE);
    let previous = inner.agents().insert(
        user.clone(),
        Link {
            connection: connection.clone(),
            grants: grants_tx,
        },
    );
    if let Some(previous) = previous {
        previous
            .connection
            .close(CLOSE_REPLACED.into(), b"replaced");
    }
    inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    tracing::info!(target: "relive_relay::agent", %remote, user = %user, "agent connected");

    let result = loop {
        tokio::select! {
            grant = grants_rx.recv() => {
                let Some(grant) = grant else { break Ok(()) };
                if let Err(e) = send.write_all(&grant.encode()).await {
                    break Err(HubError::Proto(proto::ProtoError::Io(e.into())));
                }
            }
            error = connection.closed() => break Err(HubError::Connection(error)),
        }
    };
    {
        let mut agents = inner.agents();
        if agents
            .get(&user)
            .is_some_and(|link| link.connection.stable_id() == connection.stable_id())
        {
            agents.remove(&user);
        }
    }
    inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    tracing::info!(target: "relive_relay::agent", %remote, user = %user, "agent disconnected");
    result
}

impl Dial for AgentHub {
    fn announce(&self, listener: &str, id: AllocationId, port: u16) -> bool {
        let agents = self.inner.agents();
        let Some(link) = agents.get(listener) else {
            return false;
        };
        link.grants.try_send(Grant { id: id.0, port }).is_ok()
    }

    fn dial(&self, listener: &str, id: AllocationId, _port: u16) -> DialFuture {
        let connection = self
            .inner
            .agents()
            .get(listener)
            .map(|link| link.connection.clone());
        Box::pin(async move {
            let connection = connection.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotConnected, "agent offline")
            })?;
            let (mut send, recv) = connection.open_bi().await?;
            proto::write_open(&mut send, id.0)
                .await
                .map_err(std::io::Error::other)?;
            Ok(Box::new(tokio::io::join(recv, send)) as BoxedStream)
        })
    }
}
