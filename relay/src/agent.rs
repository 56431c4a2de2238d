//! The companion agent: runs on the user's PC (in the GUI, or as `relive-relay agent`),
//! keeps one QUIC connection to the relay, and carries relayed connections to the user's own
//! MSN client.
//!
//! For every relay stream it reads the allocation id, takes the matching one-shot grant the
//! relay announced on the control stream (the port from the user's own invitation), dials
//! `local_host:port` — its own machine only — and splices. A stream without a grant is
//! closed. See [`crate::proto`] for the frames.
//!
//! A front end that shows what the agent does (the GUI's Companion page) runs it with
//! [`run_agent_observed`] and receives [`AgentEvent`]s: connected, each grant, each relayed
//! connection with live byte counters, and each connection's end.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::proto::{self, Hello, Reply};
use crate::splice::{Counters, SpliceConfig, splice};

/// How long a relay stream may wait for its grant to arrive on the control stream.
pub const GRANT_WAIT: Duration = Duration::from_secs(2);
/// How long an unused grant is kept.
pub const GRANT_TTL: Duration = Duration::from_secs(120);
/// Grants kept at once; the oldest are dropped first.
const MAX_GRANTS: usize = 64;

/// Settings of an agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// The relay's QUIC address.
    pub server: SocketAddr,
    /// The name the relay's certificate is checked against.
    pub server_name: String,
    /// The account access token (never logged).
    pub token: String,
    /// Where the user's MSN client listens: this machine.
    pub local_host: IpAddr,
    /// Splice limits.
    pub splice: SpliceConfig,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .field("token", &"***")
            .field("local_host", &self.local_host)
            .finish()
    }
}

impl AgentConfig {
    /// An agent for `server` (certificate name `server_name`) with `token`, dialling
    /// 127.0.0.1.
    pub fn new(server: SocketAddr, server_name: &str, token: &str) -> Self {
        Self {
            server,
            server_name: server_name.to_owned(),
            token: token.to_owned(),
            local_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            splice: SpliceConfig::default(),
        }
    }
}

/// Why an agent connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The connection could not be started.
    #[error("cannot connect to the relay")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed.
    #[error("relay connection")]
    Connection(#[from] quinn::ConnectionError),
    /// A frame was malformed.
    #[error(transparent)]
    Proto(#[from] proto::ProtoError),
    /// The relay rejected the token.
    #[error("the relay rejected the access token")]
    Denied,
}

/// What an agent reports while it runs (see [`run_agent_observed`]). Never carries payload
/// bytes or the token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AgentEvent {
    /// The relay accepted the token; `user` is the account it belongs to.
    Connected {
        /// The account the relay authenticated.
        user: String,
    },
    /// The relay announced that allocation `id` may open the local `port` (once).
    Granted {
        /// The allocation.
        id: u64,
        /// The local port from the user's own invitation.
        port: u16,
    },
    /// A relayed connection to the local `port` started; `counters` grow while it runs
    /// (`a_to_b`: relay → local client, `b_to_a`: local client → relay).
    TransferStarted {
        /// The allocation.
        id: u64,
        /// The local port.
        port: u16,
        /// Live byte counters.
        counters: Arc<Counters>,
    },
    /// A relayed connection ended.
    TransferEnded {
        /// The allocation.
        id: u64,
        /// Bytes carried relay → local client.
        to_local: u64,
        /// Bytes carried local client → relay.
        to_relay: u64,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

/// Receives [`AgentEvent`]s; called on the agent's tasks, so it must be quick.
pub type AgentObserver = Arc<dyn Fn(AgentEvent) + Send + Sync>;

#[derive(Default)]
struct Grants {
    table: Mutex<HashMap<u64, (u16, Instant)>>,
    added: Notify,
}

impl Grants {
    fn insert(&self, id: u64, port: u16) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        table.retain(|_, (_, at)| now.saturating_duration_since(*at) < GRANT_TTL);
        if table.len() >= MAX_GRANTS
            && let Some(oldest) = table.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(id, (port, now));
        drop(table);
        self.added.notify_waiters();
    }

    fn take(&self, id: u64) -> Option<u16> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table
            .remove(&id)
            .filter(|(_, at)| at.elapsed() < GRANT_TTL)
            .map(|(port, _)| port)
    }

    /// Takes the grant for `id`, waiting up to [`GRANT_WAIT`] for it to arrive.
    async fn wait_take(&self, id: u64) -> Option<u16> {
        let deadline = Instant::now() + GRANT_WAIT;
        loop {
            let notified = self.added.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(port) = self.take(id) {
                return Some(port);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Connects to the relay through `endpoint` (an already-bound client endpoint, see
/// [`crate::quic::client_endpoint`]), authenticates, and serves relay streams until the
/// connection ends. A caller that wants to stay connected calls it again with a backoff.
///
/// # Errors
///
/// [`AgentError::Denied`] for a rejected token; otherwise why the connection ended.
pub async fn run_agent(endpoint: &quinn::Endpoint, config: &AgentConfig) -> Result<(), AgentError> {
    run_agent_observed(endpoint, config, &(Arc::new(|_| {}) as AgentObserver)).await
}

/// [`run_agent`], reporting what happens to `observer`.
///
/// # Errors
///
/// As [`run_agent`].
pub async fn run_agent_observed(
    endpoint: &quinn::Endpoint,
    config: &AgentConfig,
    observer: &AgentObserver,
) -> Result<(), AgentError> {
    let connection = endpoint
        .connect(config.server, &config.server_name)?
        .await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let hello = Hello {
        token: config.token.clone(),
    }
    .encode()?;
    send.write_all(&hello)
        .await
        .map_err(|e| proto::ProtoError::Io(e.into()))?;
    match proto::read_reply(&mut recv).await? {
        Reply::Welcome(user) => {
            tracing::info!(target: "relive_relay::agent", server = %config.server, user = %user, "agent connected to the relay");
            observer(AgentEvent::Connected { user });
        }
        Reply::Denied => {
            connection.close(0u32.into(), b"bye");
            return Err(AgentError::Denied);
        }
    }
    let grants = Arc::new(Grants::default());
    let reader = {
        let grants = Arc::clone(&grants);
        async move {
            while let Ok(Some(grant)) = proto::read_grant(&mut recv).await {
                grants.insert(grant.id, grant.port);
                observer(AgentEvent::Granted {
                    id: grant.id,
                    port: grant.port,
                });
            }
        }
    };
    let streams = async {
        loop {
            let (send, recv) = connection.accept_bi().await?;
            let grants = Arc::clone(&grants);
            let host = config.local_host;
            let splice_config = config.splice;
            let observer = Arc::clone(observer);
            tokio::spawn(async move {
                serve_stream(send, recv, &grants, host, splice_config, &observer).await;
            });
        }
    };
    tokio::select! {
        () = reader => {
            // The relay ended the control stream: the connection is over.
            connection.close(0u32.into(), b"control stream closed");
            Ok(())
        }
        result = streams => result,
    }
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    grants: &Grants,
    host: IpAddr,
    config: SpliceConfig,
    observer: &AgentObserver,
) {
    let Ok(Ok(id)) = tokio::time::timeout(GRANT_WAIT, proto::read_open(&mut recv)).await else {
        return;
    };
    let Some(port) = grants.wait_take(id).await else {
        tracing::warn!(target: "relive_relay::agent", id, "relay stream without a grant refused");
        let _ = send.reset(0u32.into());
        let _ = recv.stop(0u32.into());
        return;
    };
    let local = match tokio::net::TcpStream::connect(SocketAddr::new(host, port)).await {
        Ok(local) => local,
        Err(error) => {
            tracing::warn!(target: "relive_relay::agent", port, %error, "local MSN port not reachable");
            let _ = send.reset(0u32.into());
            return;
        }
    };
    let _ = local.set_nodelay(true);
    let counters = Arc::new(Counters::default());
    observer(AgentEvent::TransferStarted {
        id,
        port,
        counters: Arc::clone(&counters),
    });
    let result = splice(tokio::io::join(recv, send), local, config, &counters).await;
    let error = match result {
        Ok(stats) => {
            tracing::info!(
                target: "relive_relay::agent",
                port,
                to_local = stats.a_to_b,
                to_relay = stats.b_to_a,
                "relayed connection finished"
            );
            None
        }
        Err(error) => {
            tracing::info!(target: "relive_relay::agent", port, %error, "relayed connection failed");
            Some(error.to_string())
        }
    };
    observer(AgentEvent::TransferEnded {
        id,
        to_local: counters.a_to_b(),
        to_relay: counters.b_to_a(),
        error,
    });
}
