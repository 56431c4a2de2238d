//! The companion agent: runs on the user's PC (in the GUI, or as `relive-relay agent`),
//! keeps one QUIC connection to the relay, and carries relayed connections to the user's own
//! MSN client.
//!
//! For every relay stream it reads the allocation id, takes the matching one-shot grant the
//! relay announced on the control stream (the port from the user's own invitation), dials
//! `local_host:port` — its own machine only — and splices. A stream without a grant is
//! closed. See [`crate::proto`] for the frames.
//!
//! [`keep_connected`] is the agent as its front ends run it (`relive-relay agent`, the GUI's
//! Companion page): [`run_agent_observed`] again and again, with the workspace's one
//! reconnect backoff ([`crate::backoff`]), until the relay rejects the token. It reports
//! [`AgentEvent`]s: connecting, connected, each grant, each relayed connection with live byte
//! counters, each connection's end, and each loss of the relay with the pause before the next
//! attempt.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::backoff::{Backoff, retry};
use crate::proto::{self, AgentHello, ToAgent};
use crate::splice::{Counters, SpliceConfig, splice};
use crate::wire::{Redacted, WireError};

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
    /// A frame could not be read or written.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The relay rejected the token.
    #[error("the relay rejected the access token")]
    Denied,
}

/// What an agent reports while it runs (see [`run_agent_observed`]). Never carries payload
/// bytes or the token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AgentEvent {
    /// Connecting to the relay ([`keep_connected`]).
    Connecting,
    /// The connection to the relay ended; the next attempt follows in `retry_in`
    /// ([`keep_connected`]).
    Disconnected {
        /// Why (the error and its sources), or that the relay closed the connection.
        error: String,
        /// The pause before the next attempt.
        retry_in: Duration,
    },
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
    let (send, recv) = connection.open_bi().await?;
    // The send half stays open (and in scope) for the connection's life: the relay reads
    // its end as the agent leaving.
    let mut send = FramedWrite::new(send, proto::agent_codec());
    send.send(AgentHello {
        token: Redacted(config.token.clone()),
    })
    .await?;
    let mut inbound = FramedRead::new(recv, proto::agent_codec());
    match inbound.next().await {
        Some(Ok(ToAgent::Welcome { user })) => {
            tracing::info!(target: "relive_relay::agent", server = %config.server, user = %user, "agent connected to the relay");
            observer(AgentEvent::Connected { user });
        }
        Some(Ok(ToAgent::Denied)) => {
            connection.close(0u32.into(), b"bye");
            return Err(AgentError::Denied);
        }
        Some(Ok(ToAgent::Grant(_))) => return Err(WireError::Malformed.into()),
        Some(Err(error)) => return Err(error.into()),
        None => return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()).into()),
    }
    let grants = Arc::new(Grants::default());
    let reader = {
        let grants = Arc::clone(&grants);
        async move {
            while let Some(Ok(ToAgent::Grant(grant))) = inbound.next().await {
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

/// The agent as its front ends run it: [`run_agent_observed`] again and again, pausing
/// after each lost connection by [`Backoff::RECONNECT`] (1 s doubling to 30 s, from 1 s
/// again after a connection that held), and reporting [`AgentEvent::Connecting`] before and
/// [`AgentEvent::Disconnected`] after each attempt. It returns only when the relay rejects
/// the token ([`AgentError::Denied`]), which retrying cannot mend; drop the future to stop it.
pub async fn keep_connected(
    endpoint: &quinn::Endpoint,
    config: &AgentConfig,
    observer: &AgentObserver,
) -> AgentError {
    retry(
        Backoff::RECONNECT,
        || {
            observer(AgentEvent::Connecting);
            async move {
                match run_agent_observed(endpoint, config, observer).await {
                    Err(AgentError::Denied) => ControlFlow::Break(AgentError::Denied),
                    Ok(()) => ControlFlow::Continue("the relay closed the connection".to_owned()),
                    Err(error) => ControlFlow::Continue(error_chain(&error)),
                }
            }
        },
        |error, retry_in| {
            tracing::warn!(target: "relive_relay::agent", %error, seconds = retry_in.as_secs(), "relay connection lost; reconnecting");
            observer(AgentEvent::Disconnected { error, retry_in });
        },
    )
    .await
}

/// `error` and its sources, `": "`-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn serve_stream(
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    grants: &Grants,
    host: IpAddr,
    config: SpliceConfig,
    observer: &AgentObserver,
) {
    let Ok(Ok((proto::Open { id }, recv))) =
        tokio::time::timeout(GRANT_WAIT, proto::read_open(recv)).await
    else {
        return;
    };
    let Some(port) = grants.wait_take(id).await else {
        tracing::warn!(target: "relive_relay::agent", id, "relay stream without a grant refused");
        let _ = send.reset(0u32.into());
        let _ = recv.into_inner().1.stop(0u32.into());
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
