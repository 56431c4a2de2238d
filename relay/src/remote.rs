//! The server's side of a standalone relay: [`RemoteRelay`] keeps the control connection to
//! `relive-relay serve` ([`crate::serve`], protocol in [`crate::control`]) and implements
//! the rewriter's synchronous [`Allocate`] from a stock of leased ports.
//!
//! ```text
//! RemoteRelay::run ──connect, Hello(secret)──▶ relay ──Welcome
//!                  ──Lease(n)──▶ ◀──Leased[ports]             stock refilled below half
//! Allocate::forward (fan-out, sync): agent online? pop a port ──Forward{id, port, peer,
//!                  target, user}──▶ (async; the relay holds an early connection, see serve)
//! Allocate::release ──Release{id}──▶
//! ◀──Verify{credential}   the server's own Authenticate (its store) ──Verdict──▶
//! ◀──Presence{user, online}   RemoteRelay::connected, for PeerFacts::agent
//! connection lost: stock and presence cleared, reconnect after 1 s, 2 s, … 30 s
//! ```
//!
//! Limits stay the relay's: the per-user limit, expiry, expected peer and the agent's
//! one-port grants are enforced by the relay's own [`crate::ports::PortPool`] when a port is
//! armed. The server refuses synchronously what it can see (no connection, no port in stock,
//! the listener's agent offline); an arm the relay refuses later (e.g. the per-user limit)
//! is answered with `Refused` and logged, and its port then accepts nobody.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::agent_hub::Authenticate;
use crate::control::{self, ControlError, Frame, Hello};
use crate::rewrite::{Allocate, Allocated, AllocationId};

/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Leased ports the server keeps in stock by default.
pub const DEFAULT_STOCK: usize = 16;
/// Time the relay has to welcome the server.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued towards the relay.
const OUT_QUEUE: usize = 256;
/// Agent verifications run at once; more are refused at once.
const MAX_VERIFYING: usize = 16;
/// Users with a connected agent remembered at most.
const MAX_ONLINE: usize = 100_000;

/// Where and how to reach the standalone relay.
#[derive(Clone)]
pub struct RemoteConfig {
    /// Host name or IP address of the relay's QUIC endpoint.
    pub host: String,
    /// Its UDP port.
    pub port: u16,
    /// The name its certificate is checked against.
    pub server_name: String,
    /// The shared control secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .field("secret", &"***")
            .finish()
    }
}

/// Why one control session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The relay's address could not be resolved.
    #[error("cannot resolve the relay address")]
    Resolve(#[source] std::io::Error),
    /// Connecting failed.
    #[error("connecting to the relay")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or closed.
    #[error("relay connection")]
    Connection(#[from] quinn::ConnectionError),
    /// The relay refused the shared secret.
    #[error("the relay refused the control secret")]
    Denied,
    /// The relay did not answer in time.
    #[error("no welcome from the relay in time")]
    Timeout,
    /// The relay broke the protocol.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A frame only the server may send.
    #[error("unexpected control frame from the relay")]
    Unexpected,
}

#[derive(Default)]
struct State {
    out: Option<mpsc::Sender<Frame>>,
    stock: Vec<u16>,
    /// A `Lease` is outstanding.
    asked: bool,
    online: HashSet<String>,
}

struct Inner {
    state: Mutex<State>,
    next_id: AtomicU64,
    stock_target: usize,
    /// Bumped on every change of connection, stock or presence.
    changes: watch::Sender<u64>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a single step: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Asks for more ports when the stock is below half its target.
    fn refill(&self, state: &mut State) {
        if state.asked || state.stock.len() * 2 > self.stock_target {
            return;
        }
        let Some(out) = &state.out else { return };
        let want = self.stock_target.saturating_sub(state.stock.len());
        let count = u16::try_from(want).unwrap_or(u16::MAX);
        if out.try_send(Frame::Lease { count }).is_ok() {
            state.asked = true;
        }
    }
}

/// A standalone relay as the server sees it; see the module doc.
#[derive(Clone)]
pub struct RemoteRelay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state();
        f.debug_struct("RemoteRelay")
            .field("up", &state.out.is_some())
            .field("stock", &state.stock.len())
            .field("agents", &state.online.len())
            .finish()
    }
}

impl RemoteRelay {
    /// A relay handle keeping `stock` leased ports (at least 2, for a rendezvous); not
    /// connected until [`RemoteRelay::run`].
    pub fn new(stock: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(1),
                stock_target: stock.clamp(2, control::MAX_LEASED),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// Whether the control connection is up.
    pub fn is_up(&self) -> bool {
        self.inner.state().out.is_some()
    }

    /// Leased ports in stock now.
    pub fn stock(&self) -> usize {
        self.inner.state().stock.len()
    }

    /// Whether `user`'s companion agent is connected to the relay.
    pub fn connected(&self, user: &str) -> bool {
        self.inner.state().online.contains(user)
    }

    /// Waits until `condition` holds (checked after every change of connection, stock or
    /// presence).
    pub async fn wait_until(&self, condition: impl Fn(&Self) -> bool) {
        let mut rx = self.inner.changes.subscribe();
        // The sender lives in `inner`, which `self` keeps alive: this cannot fail.
        let _ = rx.wait_for(|_| condition(self)).await;
    }

    /// Keeps the control connection to the relay at `config` up until `shutdown`,
    /// reconnecting with a backoff (1 s doubling to [`MAX_BACKOFF`]). `endpoint` is a client
    /// endpoint whose default configuration trusts the relay's certificate and offers
    /// [`control::ALPN`] (see [`crate::quic::client_config_with_alpn`]); `verifier` checks
    /// agent credentials the relay forwards.
    pub async fn run(
        &self,
        endpoint: quinn::Endpoint,
        config: RemoteConfig,
        verifier: Arc<dyn Authenticate>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = tokio::time::Instant::now();
            let result = tokio::select! {
                result = self.session(&endpoint, &config, &verifier) => result,
                () = shutdown.cancelled() => break,
            };
            self.reset();
            match result {
                Err(RemoteError::Denied) => tracing::error!(
                    target: "relive_relay::remote",
                    host = %config.host,
                    "the standalone relay refused the control secret (check [relay] remote_secret_file)"
                ),
                Err(error) => tracing::warn!(
                    target: "relive_relay::remote",
                    host = %config.host,
                    %error,
                    "standalone relay connection lost"
                ),
                Ok(()) => {
                    tracing::info!(target: "relive_relay::remote", "standalone relay connection closed")
                }
            }
            if started.elapsed() > MAX_BACKOFF {
                backoff = Duration::from_secs(1);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.reset();
        endpoint.close(0u32.into(), b"shutdown");
    }

    /// Forgets the connection, the stock and presence.
    fn reset(&self) {
        *self.inner.state() = State::default();
        self.inner.changed();
    }

    async fn session(
        &self,
        endpoint: &quinn::Endpoint,
        config: &RemoteConfig,
        verifier: &Arc<dyn Authenticate>,
    ) -> Result<(), RemoteError> {
        let addr = tokio::net::lookup_host((config.host.as_str(), config.port))
            .await
            .map_err(RemoteError::Resolve)?
            .next()
            .ok_or_else(|| RemoteError::Resolve(std::io::ErrorKind::NotFound.into()))?;
        let connection = endpoint.connect(addr, &config.server_name)?.await?;
        let welcome = async {
            let (mut send, mut recv) = connection.open_bi().await?;
            let hello = Hello {
                secret: config.secret.clone(),
            };
            send.write_all(&hello.encode()?)
                .await
                .map_err(|e| ControlError::Io(e.into()))?;
            let first = control::read_frame(&mut recv).await;
            Ok::<_, RemoteError>((send, recv, first))
        };
        let (mut send, recv, first) = tokio::time::timeout(WELCOME_TIMEOUT, welcome)
            .await
            .map_err(|_| RemoteError::Timeout)??;
        match first {
            Ok(Some(Frame::Welcome)) => {}
            Ok(Some(_)) => return Err(RemoteError::Unexpected),
            Ok(None) | Err(_) => {
                let denied = matches!(
                    connection.close_reason(),
                    Some(quinn::ConnectionError::ApplicationClosed(ref close))
                        if close.error_code == control::CLOSE_DENIED.into()
                );
                // Wait briefly for the close frame if it has not arrived yet.
                if !denied {
                    let reason =
                        tokio::time::timeout(Duration::from_secs(1), connection.closed()).await;
                    if let Ok(quinn::ConnectionError::ApplicationClosed(close)) = reason
                        && close.error_code == control::CLOSE_DENIED.into()
                    {
                        return Err(RemoteError::Denied);
                    }
                    return Err(first.err().map_or(RemoteError::Unexpected, Into::into));
                }
                return Err(RemoteError::Denied);
            }
        }
        let (out_tx, mut out_rx) = mpsc::channel(OUT_QUEUE);
        {
            let mut state = self.inner.state();
            *state = State {
                out: Some(out_tx.clone()),
                ..State::default()
            };
            self.inner.refill(&mut state);
        }
        self.inner.changed();
        tracing::info!(target: "relive_relay::remote", relay = %addr, "standalone relay connected");
        let (mut frames, reader) = crate::serve::spawn_reader(recv);
        let verifying = Arc::new(Semaphore::new(MAX_VERIFYING));
        let result = async {
            loop {
                tokio::select! {
                    frame = frames.recv() => {
                        let frame = match frame {
                            None => return Ok(()),
                            Some(frame) => frame?,
                        };
                        self.handle(frame, &out_tx, verifier, &verifying)?;
                    }
                    frame = out_rx.recv() => {
                        // `out_tx` is held here: the channel never closes first.
                        let Some(frame) = frame else { return Ok(()) };
                        send.write_all(&frame.encode()?)
                            .await
                            .map_err(|e| ControlError::Io(e.into()))?;
                    }
                    error = connection.closed() => return Err(RemoteError::Connection(error)),
                }
            }
        }
        .await;
        reader.abort();
        if result.is_err() {
            connection.close(control::CLOSE_PROTOCOL.into(), b"closing");
        }
        result
    }

    fn handle(
        &self,
        frame: Frame,
        out: &mpsc::Sender<Frame>,
        verifier: &Arc<dyn Authenticate>,
        verifying: &Arc<Semaphore>,
    ) -> Result<(), RemoteError> {
        match frame {
            Frame::Leased { ports } => {
                let mut state = self.inner.state();
                state.asked = false;
                let room = control::MAX_LEASED.saturating_sub(state.stock.len());
                state.stock.extend(ports.into_iter().take(room));
                drop(state);
                self.inner.changed();
            }
            Frame::Refused { id } => {
                tracing::warn!(target: "relive_relay::remote", id, "the standalone relay refused an allocation");
            }
            Frame::Presence { user, online } => {
                let mut state = self.inner.state();
                if online {
                    if state.online.len() < MAX_ONLINE {
                        state.online.insert(user);
                    }
                } else {
                    state.online.remove(&user);
                }
                drop(state);
                self.inner.changed();
            }
            Frame::Verify {
                request,
                peer,
                credential,
            } => {
                let out = out.clone();
                match Arc::clone(verifying).try_acquire_owned() {
                    Ok(permit) => {
                        let answer = verifier.authenticate(&credential, peer);
                        tokio::spawn(async move {
                            let user = answer.await;
                            drop(permit);
                            tracing::info!(
                                target: "relive_relay::remote",
                                accepted = user.is_some(),
                                "agent verification for the standalone relay"
                            );
                            let _ = out.send(Frame::Verdict { request, user }).await;
                        });
                    }
                    Err(_) => {
                        let _ = out.try_send(Frame::Verdict {
                            request,
                            user: None,
                        });
                    }
                }
            }
            Frame::Welcome
            | Frame::Lease { .. }
            | Frame::Forward { .. }
            | Frame::Rendezvous { .. }
            | Frame::Release { .. }
            | Frame::Verdict { .. } => return Err(RemoteError::Unexpected),
        }
        Ok(())
    }

    /// Takes `count` ports from the stock and sends `arm` for them; `None` when not
    /// connected, out of stock, or the queue to the relay is full.
    fn arm(
        &self,
        count: usize,
        arm: impl FnOnce(&[(u64, u16)]) -> Frame,
    ) -> Option<Vec<Allocated>> {
        let mut state = self.inner.state();
        let out = state.out.clone()?;
        if state.stock.len() < count {
            tracing::warn!(target: "relive_relay::remote", "relay allocation refused: no leased port in stock");
            self.inner.refill(&mut state);
            return None;
        }
        let split = state.stock.len() - count;
        let ports = state.stock.split_off(split);
        let legs: Vec<(u64, u16)> = ports
            .iter()
            .map(|&port| (self.inner.next_id.fetch_add(1, Ordering::Relaxed), port))
            .collect();
        if out.try_send(arm(&legs)).is_err() {
            tracing::warn!(target: "relive_relay::remote", "relay allocation refused: control queue full");
            return None;
        }
        self.inner.refill(&mut state);
        drop(state);
        self.inner.changed();
        Some(
            legs.into_iter()
                .map(|(id, port)| Allocated {
                    id: AllocationId(id),
                    port,
                })
                .collect(),
        )
    }
}

impl Allocate for RemoteRelay {
    fn forward(
        &self,
        listener: &str,
        expected_peer: IpAddr,
        target_port: u16,
    ) -> Option<Allocated> {
        if !self.connected(listener) {
            tracing::warn!(target: "relive_relay::remote", "relay forward refused: the listener's agent is offline");
            return None;
        }
        let allocated = self.arm(1, |legs| Frame::Forward {
            id: legs[0].0,
            port: legs[0].1,
            peer: expected_peer,
            target: target_port,
            user: listener.to_owned(),
        })?;
        let first = allocated.first().copied()?;
        tracing::info!(
            target: "relive_relay::remote",
            port = first.port,
            expected = %expected_peer,
            "standalone relay port armed for an agent forward"
        );
        Some(first)
    }

    fn rendezvous(&self, owner: &str, peers: [IpAddr; 2]) -> Option<[Allocated; 2]> {
        let allocated = self.arm(2, |legs| Frame::Rendezvous {
            legs: [
                (legs[0].0, legs[0].1, peers[0]),
                (legs[1].0, legs[1].1, peers[1]),
            ],
            owner: owner.to_owned(),
        })?;
        let pair = <[Allocated; 2]>::try_from(allocated).ok()?;
        tracing::info!(
            target: "relive_relay::remote",
            first = pair[0].port,
            second = pair[1].port,
            "standalone relay ports armed for a rendezvous"
        );
        Some(pair)
    }

    fn release(&self, id: AllocationId) {
        if let Some(out) = &self.inner.state().out {
            let _ = out.try_send(Frame::Release { id: id.0 });
        }
    }
}
