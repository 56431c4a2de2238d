//! Cluster mode (`[cluster]`, `serve --node-id`): several Relive nodes on one network, joined
//! by one NATS server (core subjects only: no JetStream).
//!
//! - **Presence and delivery** (`hub::replica`): every node's hub holds every online
//!   user; each node publishes the changes of its own sessions, in order, on
//!   `relive.<cluster>.ops`, and applies everyone else's. A node delivers only to its own
//!   sessions, so a watcher on node B learns of a user on node A when B applies A's change.
//!   One queue and one NATS connection per node keep each user's changes in order.
//! - **Never blocking on a peer**: the hub hands changes to a bounded queue
//!   ([`OUTGOING_CAPACITY`]) without waiting; when it is full (NATS unreachable) the change is
//!   dropped, counted and logged, and the queue keeps going. A slow peer is NATS's business:
//!   the server cuts a slow consumer, never slows the publisher. What a peer missed is soft
//!   state: it resyncs with a snapshot when it next joins (`on_heartbeat`).
//! - **Duplicate login across nodes**: every registration carries a login epoch (milliseconds,
//!   unique per node); of two sessions of one user the later epoch (then the higher node id)
//!   wins on every node, and the node holding the loser sends it `OUT OTH`.
//! - **Membership**: every node publishes a [`wire::Heartbeat`] on `relive.<cluster>.hb`
//!   ([`ClusterSettings::heartbeat`]); a peer silent for [`ClusterSettings::dead_after`], or
//!   that said it is leaving, is dropped: its users go offline for everyone (`FLN`) and nobody
//!   is referred to it any more. A node seen for the first time is sent a snapshot of every
//!   node's sessions on `relive.<cluster>.to.<node>`.
//! - **Referrals** ([`Cluster::pick_ns`], [`Cluster::pick_sb`]): `XFR NS` from a dispatch
//!   node by rendezvous hash of the handle over the live NS nodes; `XFR SB` to the SB node
//!   with the least load, with a cookie signed for that node ([`cookie`]).
//! - **Login rate limits**: every failure and success a node's limiter records is published
//!   with the hub's changes and counted by every node, so the limits hold network-wide.
//! - **Passport tickets** ([`tickets`]): asked for by request/reply from the node that issued
//!   them, which consumes them under its own lock: valid on any NS node, once.
//! - **Website notices** (`Hub::kick`, `Hub::send_to`, `Hub::send_to_all`, token
//!   revocation) for a session of another node are forwarded ([`Replicate::forward`]) to the
//!   node holding it on `relive.<cluster>.to.<node>`, through the same queue as the changes;
//!   a broadcast goes once on `.ops` and each node delivers it to its own sessions.
//! - **NATS reconnects**: on every (re)connection a node sends its full snapshot
//!   ([`WireOp::Sync`]) to everyone and asks for theirs ([`WireOp::Want`]), so changes lost
//!   while NATS was unreachable are made good on both sides.

pub mod cookie;
pub mod tickets;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt as _;
use relive_msnp::types::Passport;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::hub::{ConnId, Hub, HubOp, Replicate};
use crate::switchboard::Switchboards;
use wire::{Envelope, Heartbeat, WireOp};

/// Changes waiting to be published before new ones are dropped.
pub const OUTGOING_CAPACITY: usize = 65_536;
/// Most changes in one NATS message.
const BATCH: usize = 512;

/// The `[cluster]` table as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id; unset: single node (everything else in the table is ignored).
    pub node_id: Option<String>,
    /// The NATS server.
    pub nats_url: String,
    /// The network's name: the subject prefix every node of one network shares.
    pub name: String,
    /// What this node serves: any of "ns", "sb", "ds".
    pub roles: Vec<String>,
    /// Milliseconds between heartbeats.
    pub heartbeat_ms: u64,
    /// A peer silent this long (milliseconds) is taken for dead.
    pub dead_after_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            name: "relive".to_owned(),
            roles: vec!["ns".to_owned(), "sb".to_owned()],
            heartbeat_ms: 1000,
            dead_after_ms: 3500,
        }
    }
}

/// Validated cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's id.
    pub node_id: String,
    /// The NATS server URL.
    pub nats_url: String,
    /// The subject prefix token.
    pub name: String,
    /// Serves logins.
    pub ns: bool,
    /// Serves switchboards.
    pub sb: bool,
    /// Refers logins to NS nodes (`XFR NS`) instead of serving them.
    pub ds: bool,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence after which a peer is dead.
    pub dead_after: Duration,
}

/// Why `[cluster]` is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ClusterConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

fn subject_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterConfig {
    /// Validates; `Ok(None)` without a `node_id` (single node).
    ///
    /// # Errors
    /// [`ClusterConfigError`] naming the first bad key.
    pub fn validate(self) -> Result<Option<ClusterSettings>, ClusterConfigError> {
        let Some(node_id) = self.node_id else {
            return Ok(None);
        };
        let bad = |key, reason| Err(ClusterConfigError { key, reason });
        if !subject_token(&node_id) {
            return bad(
                "cluster.node_id",
                "must be 1-64 letters, digits, '-' or '_'",
            );
        }
        if !subject_token(&self.name) {
            return bad("cluster.name", "must be 1-64 letters, digits, '-' or '_'");
        }
        if !self.nats_url.starts_with("nats://") && !self.nats_url.starts_with("tls://") {
            return bad("cluster.nats_url", "must be a nats:// or tls:// URL");
        }
        let mut roles = (false, false, false);
        for role in &self.roles {
            match role.as_str() {
                "ns" => roles.0 = true,
                "sb" => roles.1 = true,
                "ds" => roles.2 = true,
                _ => {
                    return bad(
                        "cluster.roles",
                        "each role must be \"ns\", \"sb\" or \"ds\"",
                    );
                }
            }
        }
        if roles == (false, false, false) {
            return bad("cluster.roles", "a node needs at least one role");
        }
        if !(50..=60_000).contains(&self.heartbeat_ms) || self.dead_after_ms < 2 * self.heartbeat_ms
        {
            return bad(
                "cluster.heartbeat_ms",
                "heartbeat_ms must be 50..=60000 and dead_after_ms at least twice it",
            );
        }
        Ok(Some(ClusterSettings {
            node_id,
            nats_url: self.nats_url,
            name: self.name,
            ns: roles.0,
            sb: roles.1,
            ds: roles.2,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            dead_after: Duration::from_millis(self.dead_after_ms),
        }))
    }
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// NATS refused or could not be reached.
    #[error("connecting to NATS at {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Subscribing or setting up the ticket bucket failed.
    #[error("setting up NATS: {0}")]
    Setup(String),
}

/// A live peer.
#[derive(Debug, Clone)]
struct Peer {
    beat: Heartbeat,
    seen: Instant,
}

/// A session of another node, as this node knows it.
#[derive(Debug, Clone, Copy)]
struct RemoteSession {
    /// Its connection id on its node.
    conn: u64,
    epoch: u64,
    stub: ConnId,
}

#[derive(Debug, Default)]
struct State {
    peers: HashMap<String, Peer>,
    /// User → (node, session) for every session of another node.
    remote: HashMap<Passport, (String, RemoteSession)>,
    /// User → (connection, epoch) for this node's own sessions.
    local: HashMap<Passport, (ConnId, u64)>,
    next_stub: u64,
    last_epoch: u64,
}

/// Outgoing traffic, in order.
#[derive(Debug)]
enum Outgoing {
    Op(WireOp),
    /// One envelope for one node (a snapshot for a joining node, a notice for a session it
    /// holds), or for every node (`None`: a snapshot after reconnecting to NATS).
    To(Option<String>, Vec<WireOp>),
}

/// The shared part the hub's [`Replicate`] and the tasks use.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    tx: mpsc::Sender<Outgoing>,
    dropped: AtomicU64,
    /// The ids of the live peers, sorted, sent on each change ([`Cluster::watch_peers`]).
    peer_ids: watch::Sender<Vec<String>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the live peers after `state.peers` changed (under the state lock, so the
    /// watchers see the changes in order).
    fn peers_changed(&self, state: &State) {
        let mut ids: Vec<String> = state.peers.keys().cloned().collect();
        ids.sort();
        self.peer_ids.send_replace(ids);
    }

    fn send(&self, item: Outgoing) -> bool {
        if self.tx.try_send(item).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(
                    dropped = n,
                    "cluster outgoing queue full or closed; change dropped"
                );
            }
            return false;
        }
        true
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Replicate for Shared {
    fn publish(&self, op: HubOp) {
        // Under the state lock: the order of the queue is the order of the changes, and a
        // snapshot (taken under the same lock) is never overtaken by an older change.
        let mut state = self.state();
        let epoch = match &op {
            HubOp::Register { user, conn, .. } => {
                let epoch = now_ms().max(state.last_epoch + 1);
                state.last_epoch = epoch;
                state.local.insert(user.clone(), (*conn, epoch));
                state.remote.remove(user);
                epoch
            }
            HubOp::Unregister { user, conn } => {
                if state.local.get(user).is_some_and(|(c, _)| c == conn) {
                    state.local.remove(user);
                }
                0
            }
            _ => 0,
        };
        if let Some(wire) = WireOp::from_op(&op, epoch) {
            self.send(Outgoing::Op(wire));
        }
    }

    fn forward(&self, op: HubOp) -> bool {
        let state = self.state();
        let (user, stub) = match &op {
            HubOp::SendAll { .. } => {
                return WireOp::from_op(&op, 0).is_some_and(|w| self.send(Outgoing::Op(w)));
            }
            HubOp::Kick { user, conn, .. }
            | HubOp::Send { user, conn, .. }
            | HubOp::Revoke { user, conn, .. } => (user, *conn),
            _ => return false,
        };
        // Only to the node holding the session, with its own id for it.
        let Some((node, session)) = state.remote.get(user).filter(|(_, s)| s.stub == stub) else {
            return false;
        };
        let theirs = ConnId(session.conn);
        let op = match op {
            HubOp::Kick { user, reason, .. } => HubOp::Kick {
                user,
                conn: theirs,
                reason,
            },
            HubOp::Send {
                user,
                version,
                message,
                ..
            } => HubOp::Send {
                user,
                conn: theirs,
                version,
                message,
            },
            HubOp::Revoke { user, token, .. } => HubOp::Revoke {
                user,
                conn: theirs,
                token,
            },
            _ => return false,
        };
        WireOp::from_op(&op, 0)
            .is_some_and(|w| self.send(Outgoing::To(Some(node.clone()), vec![w])))
    }
}

impl crate::passport::rate_limit::LimitSink for Shared {
    fn failure(&self, handle: &str, addr: std::net::IpAddr) {
        let _state = self.state();
        self.send(Outgoing::Op(WireOp::Fail {
            u: handle.to_owned(),
            a: addr,
        }));
    }

    fn success(&self, handle: &str, addr: std::net::IpAddr) {
        let _state = self.state();
        self.send(Outgoing::Op(WireOp::Pass {
            u: handle.to_owned(),
            a: addr,
        }));
    }
}

/// This node's membership of the cluster: the NATS connection, the peers, the ticket bucket.
#[derive(Debug)]
pub struct Cluster {
    settings: ClusterSettings,
    shared: Arc<Shared>,
    cookies: cookie::CookieKey,
    tickets: tickets::ClusterTickets,
}

/// The subjects of one network.
#[derive(Debug, Clone)]
struct Subjects {
    ops: String,
    hb: String,
    to_prefix: String,
    ticket: String,
    all: String,
}

impl Subjects {
    fn new(name: &str) -> Self {
        Self {
            ops: format!("relive.{name}.ops"),
            hb: format!("relive.{name}.hb"),
            to_prefix: format!("relive.{name}.to."),
            ticket: format!("relive.{name}.ticket"),
            all: format!("relive.{name}.>"),
        }
    }
}

/// What the heartbeat needs from the node.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The hub.
    pub hub: Arc<Hub>,
    /// The switchboards (its address and rooms).
    pub switchboards: Arc<Switchboards>,
    /// The NS address clients reach.
    pub ns_address: Arc<std::sync::RwLock<relive_msnp::types::Token>>,
    /// Passport (answers other nodes' questions for tickets issued here).
    pub passport: crate::passport::PassportService,
    /// Which token each of this node's sessions logged in with (token revocations made on
    /// another node's website).
    pub devices: Arc<crate::web::Devices>,
}

impl Cluster {
    /// Connects to NATS, joins the network and starts the node's tasks on `tracker` (they
    /// end with `shutdown`, after telling the peers this node leaves). From now on `view.hub`
    /// publishes every change.
    ///
    /// # Errors
    /// [`ClusterError`] if NATS cannot be reached or set up.
    pub async fn start(
        settings: ClusterSettings,
        key: &crate::secret::ServerKey,
        view: NodeView,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        // Every (re)connection: resync with the peers (`resync`), what was published while
        // the connection was down may be lost.
        let connected = Arc::new(tokio::sync::Notify::new());
        let on_connect = Arc::clone(&connected);
        let client = async_nats::ConnectOptions::new()
            .name(format!("relive-{}", settings.node_id))
            .event_callback(move |event| {
                let on_connect = Arc::clone(&on_connect);
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            info!("NATS connected");
                            on_connect.notify_one();
                        }
                        other => warn!(event = %other, "NATS event"),
                    }
                }
            })
            .connect(&settings.nats_url)
            .await
            .map_err(|e| ClusterError::Connect {
                url: settings.nats_url.clone(),
                message: e.to_string(),
            })?;
        let subjects = Subjects::new(&settings.name);
        let subscriber = client
            .subscribe(subjects.all.clone())
            .await
            .map_err(|e| ClusterError::Setup(e.to_string()))?;
        let tickets = tickets::ClusterTickets::new(client.clone(), subjects.ticket.clone());
        let (tx, rx) = mpsc::channel(OUTGOING_CAPACITY);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            tx,
            dropped: AtomicU64::new(0),
            peer_ids: watch::Sender::new(Vec::new()),
        });
        let cluster = Arc::new(Self {
            cookies: cookie::CookieKey::derive(key, &settings.name),
            settings,
            shared: Arc::clone(&shared),
            tickets,
        });
        view.hub
            .set_replica(Arc::clone(&shared) as Arc<dyn Replicate>);
        view.passport
            .rate_limiter()
            .set_sink(shared as Arc<dyn crate::passport::rate_limit::LimitSink>);
        tracker.spawn(publisher(
            client.clone(),
            subjects.clone(),
            cluster.settings.node_id.clone(),
            rx,
            shutdown.clone(),
        ));
        tracker.spawn(Arc::clone(&cluster).inbound(
            client.clone(),
            subscriber,
            view.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(Arc::clone(&cluster).resync(connected, view.hub.clone(), shutdown.clone()));
        tracker.spawn(Arc::clone(&cluster).beat(client, subjects, view, shutdown.clone()));
        info!(node = %cluster.settings.node_id, "joined the cluster");
        Ok(cluster)
    }

    /// The settings.
    #[must_use]
    pub const fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The switchboard cookie signer.
    #[must_use]
    pub const fn cookies(&self) -> &cookie::CookieKey {
        &self.cookies
    }

    /// The cluster-wide Passport tickets.
    #[must_use]
    pub const fn tickets(&self) -> &tickets::ClusterTickets {
        &self.tickets
    }

    /// Changes dropped because the outgoing queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The NS node `handle` logs in on: rendezvous (highest random weight) hashing over the
    /// live NS nodes (this one included when it serves NS), so a user keeps their node while
    /// it lives and only the users of a node that leaves move. `None`: no NS node is live.
    #[must_use]
    pub fn pick_ns(&self, handle: &Passport, own_ns: &str) -> Option<String> {
        let state = self.shared.state();
        let mut candidates: Vec<(&str, &str)> = state
            .peers
            .iter()
            .filter(|(_, p)| p.beat.ns && !p.beat.leaving)
            .map(|(id, p)| (id.as_str(), p.beat.ns_addr.as_str()))
            .collect();
        if self.settings.ns {
            candidates.push((self.settings.node_id.as_str(), own_ns));
        }
        candidates
            .into_iter()
            .max_by_key(|(id, _)| hrw(id, handle.as_str()))
            .map(|(_, addr)| addr.to_owned())
    }

    /// The SB node with the least load (`(node id, address)`): this node's own `load` and
    /// address count when it serves SB. `None`: no SB node is live.
    #[must_use]
    pub fn pick_sb(&self, own_load: u64, own_sb: &str) -> Option<(String, String)> {
        let state = self.shared.state();
        let mut best: Option<(u64, &str, &str)> =
            self.settings
                .sb
                .then_some((own_load, self.settings.node_id.as_str(), own_sb));
        for (id, p) in &state.peers {
            if p.beat.sb && !p.beat.leaving && best.is_none_or(|(l, ..)| p.beat.load < l) {
                best = Some((p.beat.load, id, &p.beat.sb_addr));
            }
        }
        best.map(|(_, id, addr)| (id.to_owned(), addr.to_owned()))
    }

    /// The ids of the live peers (not this node).
    #[must_use]
    pub fn peers(&self) -> Vec<String> {
        self.shared.peer_ids.borrow().clone()
    }

    /// The ids of the live peers (sorted, not this node), updated whenever one joins or
    /// leaves: what `serve` prints as `cluster peers: …`.
    #[must_use]
    pub fn watch_peers(&self) -> watch::Receiver<Vec<String>> {
        self.shared.peer_ids.subscribe()
    }

    async fn inbound(
        self: Arc<Self>,
        client: async_nats::Client,
        mut subscriber: async_nats::Subscriber,
        view: NodeView,
        shutdown: CancellationToken,
    ) {
        let hub = &view.hub;
        let subjects = Subjects::new(&self.settings.name);
        let to_me = format!("{}{}", subjects.to_prefix, self.settings.node_id);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                m = subscriber.next() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            let subject = message.subject.as_str();
            if subject == subjects.hb {
                match serde_json::from_slice::<Heartbeat>(&message.payload) {
                    Ok(beat) if beat.node != self.settings.node_id => {
                        self.on_heartbeat(beat, hub);
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "bad heartbeat"),
                }
            } else if subject == subjects.ops || subject == to_me {
                match serde_json::from_slice::<Envelope>(&message.payload) {
                    Ok(env) if env.node != self.settings.node_id => self.apply(env, &view),
                    Ok(_) => {}
                    Err(error) => warn!(%error, "bad cluster message"),
                }
            } else if subject == subjects.ticket
                && let Some(reply) = message.reply.clone()
                && let Some(answer) = tickets::answer(&view.passport, &message.payload)
                && let Err(error) = client.publish(reply, answer).await
            {
                warn!(%error, "cannot answer a ticket question");
            }
        }
        let _ = subscriber.unsubscribe().await;
    }

    /// A peer's heartbeat: a node seen for the first time gets a snapshot of this node's
    /// sessions; a node that leaves is dropped.
    fn on_heartbeat(&self, beat: Heartbeat, hub: &Hub) {
        if beat.leaving {
            info!(node = %beat.node, "peer leaves the cluster");
            self.drop_peer(&beat.node, hub);
            return;
        }
        let node = beat.node.clone();
        let mut state = self.shared.state();
        let new = state
            .peers
            .insert(
                node.clone(),
                Peer {
                    beat,
                    seen: Instant::now(),
                },
            )
            .is_none();
        if new {
            info!(%node, "peer joined");
            self.shared.peers_changed(&state);
            let ops = snapshot(&state, hub);
            self.shared.send(Outgoing::To(Some(node), ops));
        }
    }

    /// After every (re)connection to NATS: tells every node this node's sessions (a full
    /// snapshot: they forget what it does not list) and asks each for its own
    /// ([`WireOp::Want`]), so that changes lost while the connection was down (either way)
    /// are made good. Sent under the state lock like any change, so no older change
    /// overtakes it.
    async fn resync(
        self: Arc<Self>,
        connected: Arc<tokio::sync::Notify>,
        hub: Arc<Hub>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = connected.notified() => {}
            }
            let state = self.shared.state();
            let mut ops = vec![WireOp::Want];
            ops.extend(snapshot(&state, &hub));
            debug!(sessions = state.local.len(), "resyncing with the cluster");
            self.shared.send(Outgoing::To(None, ops));
        }
    }

    /// Forgets a peer and every session it held (their watchers get `FLN`).
    fn drop_peer(&self, node: &str, hub: &Hub) {
        {
            let mut state = self.shared.state();
            if state.peers.remove(node).is_some() {
                self.shared.peers_changed(&state);
            }
        }
        self.forget_sessions(node, hub, |_| false, "peer's users are offline");
    }

    /// Forgets the sessions of `node` that `keep` does not keep; their watchers get `FLN`.
    fn forget_sessions(&self, node: &str, hub: &Hub, keep: impl Fn(&str) -> bool, why: &str) {
        let gone: Vec<(Passport, ConnId)> = {
            let mut state = self.shared.state();
            let users: Vec<Passport> = state
                .remote
                .iter()
                .filter(|(u, (n, _))| n == node && !keep(u.as_str()))
                .map(|(u, _)| u.clone())
                .collect();
            users
                .into_iter()
                .filter_map(|u| state.remote.remove(&u).map(|(_, s)| (u, s.stub)))
                .collect()
        };
        if !gone.is_empty() {
            info!(%node, users = gone.len(), "{why}");
        }
        for (user, stub) in gone {
            hub.apply(HubOp::Unregister { user, conn: stub });
        }
    }

    fn apply(&self, env: Envelope, view: &NodeView) {
        let hub = &view.hub;
        let limiter = view.passport.rate_limiter();
        // A node that sends is alive (a snapshot after a NATS outage may come before its
        // next heartbeat).
        if let Some(peer) = self.shared.state().peers.get_mut(&env.node) {
            peer.seen = Instant::now();
        }
        // A full snapshot: the sessions of that node it lists.
        let mut listed: Option<std::collections::HashSet<String>> = None;
        for op in env.ops {
            let conn = match &op {
                WireOp::Sync => {
                    listed = Some(std::collections::HashSet::new());
                    continue;
                }
                WireOp::Want => {
                    let state = self.shared.state();
                    let ops = snapshot(&state, hub);
                    self.shared.send(Outgoing::To(Some(env.node.clone()), ops));
                    continue;
                }
                WireOp::Rvk { u, c, k } => {
                    if let Ok(user) = Passport::parse(u)
                        && hub.conn_of(&user) == Some(ConnId(*c))
                    {
                        view.devices
                            .revoked_here(hub, &user, crate::store::TokenId(*k));
                    }
                    continue;
                }
                WireOp::Fail { u, a } => {
                    limiter.remote_failure(u, *a, view.passport.now());
                    continue;
                }
                WireOp::Pass { u, a } => {
                    limiter.remote_success(u, *a);
                    continue;
                }
                WireOp::Reg { u, c, e, .. } => {
                    if let Some(listed) = &mut listed {
                        listed.insert(u.clone());
                    }
                    let Ok(user) = Passport::parse(u) else {
                        continue;
                    };
                    let mut state = self.shared.state();
                    let newer =
                        |(epoch, node): (u64, &str)| (*e, env.node.as_str()) > (epoch, node);
                    if let Some((_, epoch)) = state.local.get(&user)
                        && !newer((*epoch, &self.settings.node_id))
                    {
                        // This node's session is the later login: the other node closes its
                        // own when it applies ours.
                        continue;
                    }
                    if let Some((node, s)) = state.remote.get(&user)
                        && !newer((s.epoch, node))
                    {
                        continue;
                    }
                    state.next_stub += 1;
                    let stub = ConnId(ConnId::REMOTE | state.next_stub);
                    state.local.remove(&user);
                    state.remote.insert(
                        user,
                        (
                            env.node.clone(),
                            RemoteSession {
                                conn: *c,
                                epoch: *e,
                                stub,
                            },
                        ),
                    );
                    stub
                }
                WireOp::Unreg { u, c } => {
                    let Ok(user) = Passport::parse(u) else {
                        continue;
                    };
                    let mut state = self.shared.state();
                    match state.remote.get(&user) {
                        Some((node, s)) if *node == env.node && s.conn == *c => {
                            let stub = s.stub;
                            state.remote.remove(&user);
                            stub
                        }
                        _ => continue,
                    }
                }
                other => {
                    // A change about a user's own session counts only from the node that holds
                    // it (a late change from a replaced session is ignored).
                    if let Some(owner) = other.owner() {
                        let state = self.shared.state();
                        let holds = Passport::parse(owner)
                            .ok()
                            .and_then(|u| state.remote.get(&u).map(|(n, _)| n == &env.node));
                        if holds != Some(true) {
                            continue;
                        }
                    }
                    ConnId(0)
                }
            };
            match op.to_op(conn) {
                Some(op) => hub.apply(op),
                None => debug!(node = %env.node, "unparsable cluster change ignored"),
            }
        }
        // A full snapshot: the sender's sessions it does not list ended while their `Unreg`
        // was lost.
        if let Some(listed) = listed {
            let why = "sessions missing from a peer's snapshot are offline";
            self.forget_sessions(&env.node, hub, |u| listed.contains(u), why);
        }
    }

    async fn beat(
        self: Arc<Self>,
        client: async_nats::Client,
        subjects: Subjects,
        view: NodeView,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.settings.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let leaving = tokio::select! {
                () = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            let beat = self.heartbeat(&view, leaving);
            if let Ok(payload) = serde_json::to_vec(&beat)
                && let Err(error) = client.publish(subjects.hb.clone(), payload.into()).await
            {
                warn!(%error, "cannot publish the heartbeat");
            }
            if leaving {
                let _ = client.flush().await;
                break;
            }
            let dead: Vec<String> = {
                let state = self.shared.state();
                state
                    .peers
                    .iter()
                    .filter(|(_, p)| p.seen.elapsed() > self.settings.dead_after)
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            for node in dead {
                warn!(%node, "peer missed its heartbeats; taking it for dead");
                self.drop_peer(&node, &view.hub);
            }
        }
    }

    fn heartbeat(&self, view: &NodeView, leaving: bool) -> Heartbeat {
        let local = self.shared.state().local.len() as u64;
        Heartbeat {
            node: self.settings.node_id.clone(),
            ns: self.settings.ns,
            sb: self.settings.sb,
            ns_addr: view
                .ns_address
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_str()
                .to_owned(),
            sb_addr: view.switchboards.address().as_str().to_owned(),
            load: self.load(view.switchboards.rooms() as u64, local),
            leaving,
        }
    }

    /// The load this node announces: its rooms on an SB node, its sessions otherwise.
    #[must_use]
    pub fn load(&self, rooms: u64, sessions: u64) -> u64 {
        if self.settings.sb { rooms } else { sessions }
    }

    /// This node's own sessions.
    #[must_use]
    pub fn local_sessions(&self) -> u64 {
        self.shared.state().local.len() as u64
    }
}

/// This node's sessions as a full snapshot ([`WireOp::Sync`] first), with each
/// registration's login epoch. Taken with the state lock held (`state`), so that it is
/// queued in order with the changes.
fn snapshot(state: &State, hub: &Hub) -> Vec<WireOp> {
    let mut ops = vec![WireOp::Sync];
    ops.extend(hub.local_snapshot().iter().filter_map(|op| {
        let epoch = match op {
            HubOp::Register { user, .. } => state.local.get(user).map_or(0, |l| l.1),
            _ => 0,
        };
        WireOp::from_op(op, epoch)
    }));
    ops
}

/// The rendezvous weight of `node` for `handle`.
fn hrw(node: &str, handle: &str) -> u64 {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{node}\u{0}{handle}").as_bytes(),
    );
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Publishes the outgoing queue, in order, batching what is waiting into one message.
async fn publisher(
    client: async_nats::Client,
    subjects: Subjects,
    node: String,
    mut rx: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            item = rx.recv() => item,
            // What is queued by now still goes out (the last sessions' goodbyes).
            () = shutdown.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else {
            break;
        };
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Op(op) => {
                    batch.push(op);
                    if batch.len() < BATCH
                        && let Ok(more) = rx.try_recv()
                    {
                        next = Some(more);
                        continue;
                    }
                    flush(&client, &subjects.ops, &node, &mut batch).await;
                }
                Outgoing::To(peer, ops) => {
                    flush(&client, &subjects.ops, &node, &mut batch).await;
                    let mut ops = ops;
                    let subject = peer.map_or_else(
                        || subjects.ops.clone(),
                        |peer| format!("{}{peer}", subjects.to_prefix),
                    );
                    flush(&client, &subject, &node, &mut ops).await;
                }
            }
        }
        flush(&client, &subjects.ops, &node, &mut batch).await;
    }
    let _ = client.flush().await;
}

async fn flush(client: &async_nats::Client, subject: &str, node: &str, ops: &mut Vec<WireOp>) {
    if ops.is_empty() {
        return;
    }
    let env = Envelope {
        node: node.to_owned(),
        ops: std::mem::take(ops),
    };
    match serde_json::to_vec(&env) {
        Ok(payload) => {
            if let Err(error) = client
                .publish(subject.to_owned(), Bytes::from(payload))
                .await
            {
                warn!(%error, changes = env.ops.len(), "cannot publish cluster changes; dropped");
            }
        }
        Err(error) => warn!(%error, "cannot encode cluster changes"),
    }
}
