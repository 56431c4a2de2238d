//! Relay port allocations: the TCP ports the rewriter advertises in place of a listener's
//! own address.
//!
//! Rules (DESIGN.md "Relay", P2P.md §4.3): a port comes from the configured range, accepts
//! exactly **one** connection, only from the expected peer's observed IP (anything else is
//! refused and logged), and is closed again if nobody connects within the unused lifetime
//! (≈ 60 s). A user holds at most `per_user_limit` allocations at once. The relay is never an
//! open proxy: a forward only reaches the port that appeared in the listener's own invitation,
//! on that listener's machine (through a [`Dial`]); a rendezvous only splices its own two legs.
//!
//! Every allocation listens on its port `P` **and on `P ^ 0x3141`** (P2P.md §1.3, §4.3 step 1):
//! the rewriter advertises `PortX = P ^ 0x3141` and some MSNFTP clients connect there (or try
//! both at once); the first connection from the expected peer on either port wins and both
//! close. How `P` is chosen:
//!
//! * OS-chosen ports (`0..=0`, tests): the OS picks `P`; if `P ^ 0x3141` is busy, `P` is
//!   given back and another is tried, at most [`MAX_PAIR_ATTEMPTS`] times.
//! * A configured range: only ports whose partner `P ^ 0x3141` is also in the range are
//!   candidates (the operator opened the range in the firewall, nothing else); a candidate
//!   whose partner is busy is skipped, at most [`MAX_PAIR_ATTEMPTS`] partner failures per
//!   allocation.
//! * When no pair can be had either way, `P` alone: `PortX` is a client's second chance, and
//!   a refused allocation would fail the transfer. (Seen with OS-chosen ports while 20,000
//!   connections held the even ephemeral ports that `connect` prefers: every odd `P` from
//!   `bind` had a busy even partner.) [`AllocError::Exhausted`] only when no port is free.
//! * A range with no such pair at all (XOR 0x3141 flips bits 12 and 13, so e.g. the default
//!   6891–6990 has none; 49152–65535 pairs every port): allocations use `P` alone and a
//!   debug line at start says so — `PortX` is still advertised as `P ^ 0x3141` (clients that
//!   only read `Port` are unaffected; one that tries `PortX` falls back to `Port`).
//!
//! [`accept_one`], [`serve_forward`] and [`serve_rendezvous`] take already-bound
//! [`Listeners`]; [`PortPool`] binds ports from the range and runs them as tasks. [`PortPool`]
//! implements the rewriter's [`Allocate`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::dial::Dial;
use crate::limits::LogBudget;
use crate::rewrite::{Allocate, Allocated, AllocationId, PORTX_XOR};
use crate::splice::{Counters, SpliceConfig, SpliceError, SpliceStats, splice};

/// Default lifetime of an allocation nobody connects to.
pub const DEFAULT_UNUSED_TTL: Duration = Duration::from_secs(60);
/// Default number of concurrent allocations per user.
pub const DEFAULT_PER_USER_LIMIT: usize = 4;
/// Lines about connections from unexpected addresses: at most this many a minute, the rest
/// counted (`suppressed`), so probing the relay's ports cannot fill the log.
static REFUSAL_LOG: LogBudget = LogBudget::new(10, Duration::from_secs(60));
/// How many times one allocation may find `P ^ 0x3141` busy before it is refused.
pub const MAX_PAIR_ATTEMPTS: usize = 32;

/// The listening sockets of one allocation: `P`, and `P ^ 0x3141` when it could be bound.
#[derive(Debug)]
pub struct Listeners {
    /// The advertised `Port`.
    pub port: TcpListener,
    /// The advertised `PortX` (`port ^ 0x3141`).
    pub portx: Option<TcpListener>,
}

impl Listeners {
    /// Just `port` (no `PortX` listener).
    pub fn single(port: TcpListener) -> Self {
        Self { port, portx: None }
    }

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.portx {
            None => self.port.accept().await,
            // `accept` is cancel-safe: the losing branch loses no connection.
            Some(portx) => tokio::select! {
                accepted = self.port.accept() => accepted,
                accepted = portx.accept() => accepted,
            },
        }
    }
}

/// Settings of a [`PortPool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Address to bind allocation ports on.
    pub bind_ip: IpAddr,
    /// Ports to allocate from. `0..=0` lets the OS choose (tests).
    pub ports: RangeInclusive<u16>,
    /// Close an allocation nobody connected to after this long.
    pub unused_ttl: Duration,
    /// Concurrent allocations one user may hold (a rendezvous holds two).
    pub per_user_limit: usize,
    /// Buffers and idle timeout of the splices.
    pub splice: SpliceConfig,
}

impl PoolConfig {
    /// Defaults for `bind_ip` and `ports`.
    pub fn new(bind_ip: IpAddr, ports: RangeInclusive<u16>) -> Self {
        Self {
            bind_ip,
            ports,
            unused_ttl: DEFAULT_UNUSED_TTL,
            per_user_limit: DEFAULT_PER_USER_LIMIT,
            splice: SpliceConfig::default(),
        }
    }
}

/// Why an allocation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocError {
    /// Every port in the range is in use.
    #[error("no free port in the relay range")]
    Exhausted,
    /// The user already holds the maximum number of allocations.
    #[error("per-user relay allocation limit reached")]
    UserLimit,
    /// There is no way to reach the listener (no dialer, or its agent is offline).
    #[error("listener not reachable through an agent")]
    Unreachable,
}

/// Why a [`PortPool`] could not be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// The port range is empty or the per-user limit is zero.
    #[error("invalid relay pool configuration: {0}")]
    Config(&'static str),
    /// [`PortPool::new`] was called outside a tokio runtime.
    #[error("relay pool needs a tokio runtime")]
    NoRuntime,
}

/// Why a relayed connection ended without a splice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Nobody (or only strangers) connected before the deadline.
    #[error("relay allocation expired unused")]
    Expired,
    /// Accepting failed.
    #[error("relay accept failed")]
    Accept(#[source] io::Error),
    /// Dialling the listener failed.
    #[error("relay dial to the listener failed")]
    Dial(#[source] io::Error),
    /// The splice ended with an error.
    #[error(transparent)]
    Splice(#[from] SpliceError),
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Accepts connections on `listeners` (`P` or `P ^ 0x3141`, whichever is dialled first) until
/// one comes from `expected_peer` or `deadline` passes. Connections from other addresses are
/// closed at once.
///
/// # Errors
///
/// [`RelayError::Expired`] at the deadline, [`RelayError::Accept`] if accepting fails.
pub async fn accept_one(
    listeners: &Listeners,
    expected_peer: IpAddr,
    deadline: Instant,
) -> Result<TcpStream, RelayError> {
    loop {
        let (stream, peer) = match tokio::time::timeout_at(deadline, listeners.accept()).await {
            Err(_) => return Err(RelayError::Expired),
            Ok(Err(e)) => return Err(RelayError::Accept(e)),
            Ok(Ok(accepted)) => accepted,
        };
        if same_ip(peer.ip(), expected_peer) {
            // Nagle only delays the small MSNFTP/DC handshake lines.
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
        if let Some(suppressed) = REFUSAL_LOG.take(std::time::Instant::now()) {
            tracing::warn!(
                target: "relive_relay::ports",
                %peer,
                expected = %expected_peer,
                suppressed,
                "refused relay connection from an unexpected address"
            );
        }
    }
}

/// Agent forward: accepts one connection from `expected_peer` on `listener`, opens a stream
/// to `target` = (user, allocation, port) through `dial` (announced before), and splices
/// the two, counting the bytes in `counters`.
///
/// # Errors
///
/// See [`RelayError`].
pub async fn serve_forward(
    listener: Listeners,
    expected_peer: IpAddr,
    deadline: Instant,
    dial: &dyn Dial,
    target: (&str, AllocationId, u16),
    config: SpliceConfig,
    counters: &Counters,
) -> Result<SpliceStats, RelayError> {
    let (user, id, port) = target;
    let visitor = accept_one(&listener, expected_peer, deadline).await?;
    drop(listener);
    let upstream = dial.dial(user, id, port).await.map_err(RelayError::Dial)?;
    Ok(splice(visitor, upstream, config, counters).await?)
}

/// Rendezvous: accepts one connection on each listener (leg `i` only from `expected[i]`)
/// and splices them, counting the bytes in `counters`. Either leg may come first; the first
/// waits for the second.
///
/// # Errors
///
/// See [`RelayError`]; if one leg expires the other is closed.
pub async fn serve_rendezvous(
    legs: [Listeners; 2],
    expected: [IpAddr; 2],
    deadline: Instant,
    config: SpliceConfig,
    counters: &Counters,
) -> Result<SpliceStats, RelayError> {
    let [a, b] = legs;
    let (sa, sb) = tokio::try_join!(
        accept_one(&a, expected[0], deadline),
        accept_one(&b, expected[1], deadline)
    )?;
    drop((a, b));
    Ok(splice(sa, sb, config, counters).await?)
}

/// What a [`PortPool`] has done since it was created (for monitoring; every value only grows).
#[derive(Debug, Default)]
pub struct PoolTotals {
    allocated: AtomicU64,
    relayed: AtomicU64,
    failed: AtomicU64,
    expired: AtomicU64,
    /// Bytes carried in both directions, added as they move.
    bytes: Arc<AtomicU64>,
}

impl PoolTotals {
    /// Allocations made (a forward counts one, a rendezvous two).
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Relayed connections that finished normally.
    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::Relaxed)
    }

    /// Relayed connections that ended with an error (dial, I/O, idle timeout).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Allocations nobody (or only strangers) connected to before they expired.
    pub fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Bytes relayed, both directions, including those of transfers still running.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts how a relayed connection (or an allocation) ended.
    fn ended(&self, result: &Result<SpliceStats, RelayError>) {
        let counter = match result {
            Ok(_) => &self.relayed,
            Err(RelayError::Expired) => &self.expired,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Relay port allocator over a configured TCP range; see the module doc.
#[derive(Clone)]
pub struct PortPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PortPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortPool")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: PoolConfig,
    /// The range has ports whose `P ^ 0x3141` is in it too (or the OS chooses).
    pairs: bool,
    dial: Option<Arc<dyn Dial>>,
    runtime: Handle,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// Allocations held, published for [`PortPool::wait_idle`].
    active: watch::Sender<usize>,
    totals: PoolTotals,
}

#[derive(Default)]
struct State {
    /// Next port offset to try in the range.
    cursor: u32,
    /// Allocations held per user.
    per_user: HashMap<String, usize>,
    /// Cancel handles of live allocations (waiting or relaying).
    waiting: HashMap<AllocationId, oneshot::Sender<()>>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives a user's allocations back when its task ends, however it ends.
struct Lease {
    inner: Arc<Inner>,
    owner: String,
    ids: Vec<AllocationId>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        for id in &self.ids {
            state.waiting.remove(id);
        }
        if let Some(count) = state.per_user.get_mut(&self.owner) {
            *count = count.saturating_sub(self.ids.len());
            if *count == 0 {
                state.per_user.remove(&self.owner);
            }
        }
        self.inner
            .active
            .send_replace(state.per_user.values().sum());
    }
}

impl PortPool {
    /// A pool binding ports per `config`; `dial` reaches listeners for agent forwards (none:
    /// forwards are refused). Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`PoolError::Config`] for an empty range or a zero limit, [`PoolError::NoRuntime`].
    pub fn new(config: PoolConfig, dial: Option<Arc<dyn Dial>>) -> Result<Self, PoolError> {
        if config.ports.is_empty() {
            return Err(PoolError::Config("empty port range"));
        }
        if config.per_user_limit == 0 {
            return Err(PoolError::Config("per-user limit is zero"));
        }
        let runtime = Handle::try_current().map_err(|_| PoolError::NoRuntime)?;
        let pairs = *config.ports.start() == 0
            || config
                .ports
                .clone()
                .any(|p| config.ports.contains(&(p ^ PORTX_XOR)));
        if !pairs {
            // Not a warning: the default range does not pair (no small range can) and MSNFTP
            // works without PortX, which only serves as the receiver's second try.
            tracing::debug!(
                target: "relive_relay::ports",
                min = config.ports.start(),
                max = config.ports.end(),
                "no port P in the relay range has P ^ 0x3141 in it too: allocations will not \
                 listen on PortX (a range such as 49152-65535 pairs every port)"
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                pairs,
                config,
                dial,
                runtime,
                next_id: AtomicU64::new(1),
                state: Mutex::new(State::default()),
                active: watch::Sender::new(0),
                totals: PoolTotals::default(),
            }),
        })
    }

    /// What this pool has done since it was created.
    pub fn totals(&self) -> &PoolTotals {
        &self.inner.totals
    }

    /// Allocations currently held (waiting or carrying a transfer).
    pub fn active(&self) -> usize {
        self.inner.state().per_user.values().sum()
    }

    /// Waits until no allocation is held (all expired, released or finished).
    pub async fn wait_idle(&self) {
        let mut rx = self.inner.active.subscribe();
        // The sender lives in `inner`, which `self` keeps alive: this cannot fail.
        let _ = rx.wait_for(|&n| n == 0).await;
    }

    /// Allocates a forward port; see [`Allocate::forward`].
    ///
    /// # Errors
    ///
    /// See [`AllocError`].
    pub fn try_forward(
        &self,
        listener: &str,
        expected_peer: IpAddr,
        target_port: u16,
    ) -> Result<Allocated, AllocError> {
        self.forward_on(Vec::new(), listener, expected_peer, target_port)
    }

    fn forward_on(
        &self,
        prebound: Vec<Bound>,
        listener: &str,
        expected_peer: IpAddr,
        target_port: u16,
    ) -> Result<Allocated, AllocError> {
        let Some(dial) = self.inner.dial.clone() else {
            return Err(AllocError::Unreachable);
        };
        let (lease, mut bound, mut cancels) = self.reserve(listener, 1, prebound)?;
        let (id, sockets, port) = bound.remove(0);
        if !dial.announce(listener, id, target_port) {
            return Err(AllocError::Unreachable);
        }
        let cancel = cancels.remove(0);
        let config = self.inner.config.splice;
        let deadline = Instant::now() + self.inner.config.unused_ttl;
        let user = listener.to_owned();
        let _guard = self.inner.runtime.enter();
        let portx = sockets.portx.is_some();
        let listener = sockets.into_tokio()?;
        let inner = Arc::clone(&self.inner);
        inner.totals.allocated.fetch_add(1, Ordering::Relaxed);
        self.inner.runtime.spawn(async move {
            let _lease = lease;
            let counters = Counters::adding_to(Arc::clone(&inner.totals.bytes));
            let serve = serve_forward(
                listener,
                expected_peer,
                deadline,
                &*dial,
                (&user, id, target_port),
                config,
                &counters,
            );
            tokio::select! {
                result = serve => {
                    inner.totals.ended(&result);
                    log_end("forward", port, &result);
                }
                // Released (the transfer was cancelled): waiting or relaying, it ends here.
                _ = cancel => tracing::debug!(target: "relive_relay::ports", port, "allocation released"),
            }
        });
        tracing::info!(
            target: "relive_relay::ports",
            port,
            portx,
            expected = %expected_peer,
            "relay port allocated for an agent forward"
        );
        Ok(Allocated { id, port })
    }

    /// Allocates a rendezvous pair; see [`Allocate::rendezvous`].
    ///
    /// # Errors
    ///
    /// See [`AllocError`].
    pub fn try_rendezvous(
        &self,
        owner: &str,
        peers: [IpAddr; 2],
    ) -> Result<[Allocated; 2], AllocError> {
        self.rendezvous_on(Vec::new(), owner, peers)
    }

    fn rendezvous_on(
        &self,
        prebound: Vec<Bound>,
        owner: &str,
        peers: [IpAddr; 2],
    ) -> Result<[Allocated; 2], AllocError> {
        let (lease, bound, cancels) = self.reserve(owner, 2, prebound)?;
        let _guard = self.inner.runtime.enter();
        let mut listeners = Vec::with_capacity(2);
        let mut out = Vec::with_capacity(2);
        for (id, sockets, port) in bound {
            listeners.push(sockets.into_tokio()?);
            out.push(Allocated { id, port });
        }
        let (Ok([la, lb]), Ok([ca, cb]), Ok(allocated)) = (
            <[Listeners; 2]>::try_from(listeners),
            <[oneshot::Receiver<()>; 2]>::try_from(cancels),
            <[Allocated; 2]>::try_from(out),
        ) else {
            return Err(AllocError::Exhausted);
        };
        let config = self.inner.config.splice;
        let deadline = Instant::now() + self.inner.config.unused_ttl;
        let port = allocated[0].port;
        let inner = Arc::clone(&self.inner);
        inner.totals.allocated.fetch_add(2, Ordering::Relaxed);
        self.inner.runtime.spawn(async move {
            let _lease = lease;
            let counters = Counters::adding_to(Arc::clone(&inner.totals.bytes));
            let serve = serve_rendezvous([la, lb], peers, deadline, config, &counters);
            tokio::select! {
                result = serve => {
                    inner.totals.ended(&result);
                    log_end("rendezvous", port, &result);
                }
                _ = ca => tracing::debug!(target: "relive_relay::ports", port, "allocation released"),
                _ = cb => tracing::debug!(target: "relive_relay::ports", port, "allocation released"),
            }
        });
        tracing::info!(
            target: "relive_relay::ports",
            first = allocated[0].port,
            second = allocated[1].port,
            "relay ports allocated for a rendezvous"
        );
        Ok(allocated)
    }

    /// Checks the user limit, binds `count` ports (taking `prebound` ones first) and
    /// registers their cancel handles.
    #[allow(clippy::type_complexity)]
    fn reserve(
        &self,
        owner: &str,
        count: usize,
        prebound: Vec<Bound>,
    ) -> Result<
        (
            Lease,
            Vec<(AllocationId, Bound, u16)>,
            Vec<oneshot::Receiver<()>>,
        ),
        AllocError,
    > {
        let inner = &self.inner;
        let mut state = inner.state();
        let held = state.per_user.get(owner).copied().unwrap_or(0);
        if held + count > inner.config.per_user_limit {
            return Err(AllocError::UserLimit);
        }
        let mut bound = Vec::with_capacity(count);
        let mut prebound = prebound.into_iter();
        for _ in 0..count {
            let socket = match prebound.next() {
                Some(socket) => socket,
                None => bind_pair(&inner.config, inner.pairs, &mut state.cursor)?,
            };
            let port = socket
                .port
                .local_addr()
                .map_err(|_| AllocError::Exhausted)?
                .port();
            let id = AllocationId(inner.next_id.fetch_add(1, Ordering::Relaxed));
            bound.push((id, socket, port));
        }
        let mut cancels = Vec::with_capacity(count);
        for (id, _, _) in &bound {
            let (tx, rx) = oneshot::channel();
            state.waiting.insert(*id, tx);
            cancels.push(rx);
        }
        *state.per_user.entry(owner.to_owned()).or_insert(0) += count;
        inner.active.send_replace(state.per_user.values().sum());
        let lease = Lease {
            inner: Arc::clone(inner),
            owner: owner.to_owned(),
            ids: bound.iter().map(|(id, _, _)| *id).collect(),
        };
        Ok((lease, bound, cancels))
    }
}

/// Leased ports, for a standalone relay driven by a server (`crate::serve`): the server
/// is handed bound ports ahead of time ([`PortPool::bind_spare`]) so that its synchronous
/// allocator can advertise one at once; arming a leased port later goes through the same
/// limits, dialer, expiry and tasks as [`PortPool::try_forward`] / [`PortPool::try_rendezvous`].
/// A connection that arrives between the lease and the arm waits in the socket's accept
/// backlog and is judged (expected peer or not) when the allocation is armed.
impl PortPool {
    /// Binds one free port of the range (with its `P ^ 0x3141` partner, as every allocation)
    /// without allocating it (it counts against no user until armed).
    ///
    /// # Errors
    ///
    /// [`AllocError::Exhausted`].
    pub fn bind_spare(&self) -> Result<Bound, AllocError> {
        let mut state = self.inner.state();
        bind_pair(&self.inner.config, self.inner.pairs, &mut state.cursor)
    }

    /// [`PortPool::try_forward`] on a port from [`PortPool::bind_spare`].
    ///
    /// # Errors
    ///
    /// See [`AllocError`]; the sockets are closed on error.
    pub fn try_forward_on(
        &self,
        socket: Bound,
        listener: &str,
        expected_peer: IpAddr,
        target_port: u16,
    ) -> Result<Allocated, AllocError> {
        self.forward_on(vec![socket], listener, expected_peer, target_port)
    }

    /// [`PortPool::try_rendezvous`] on two ports from [`PortPool::bind_spare`].
    ///
    /// # Errors
    ///
    /// See [`AllocError`]; the sockets are closed on error.
    pub fn try_rendezvous_on(
        &self,
        sockets: [Bound; 2],
        owner: &str,
        peers: [IpAddr; 2],
    ) -> Result<[Allocated; 2], AllocError> {
        self.rendezvous_on(sockets.into(), owner, peers)
    }
}

/// The bound (not yet registered with tokio) sockets of one allocation: `P`, and
/// `P ^ 0x3141` when the range pairs ports.
#[derive(Debug)]
pub struct Bound {
    port: std::net::TcpListener,
    portx: Option<std::net::TcpListener>,
}

impl Bound {
    /// The advertised port `P`.
    ///
    /// # Errors
    ///
    /// The socket's address cannot be read.
    pub fn port(&self) -> io::Result<u16> {
        Ok(self.port.local_addr()?.port())
    }

    fn into_tokio(self) -> Result<Listeners, AllocError> {
        let tokio = |s| TcpListener::from_std(s).map_err(|_| AllocError::Exhausted);
        Ok(Listeners {
            port: tokio(self.port)?,
            portx: self.portx.map(tokio).transpose()?,
        })
    }
}

fn bind(ip: IpAddr, port: u16) -> Option<std::net::TcpListener> {
    let socket = std::net::TcpListener::bind(SocketAddr::new(ip, port)).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

/// Binds `P` and `P ^ 0x3141` (see the module doc for how `P` is chosen); `pairs == false`:
/// `P` alone. When no pair can be had (every partner busy), `P` alone rather than no port:
/// `PortX` is only a client's second chance, a refused allocation fails the transfer.
fn bind_pair(config: &PoolConfig, pairs: bool, cursor: &mut u32) -> Result<Bound, AllocError> {
    let ip = config.bind_ip;
    let start = u32::from(*config.ports.start());
    let alone = |port| {
        tracing::debug!(target: "relive_relay::ports", "no free P ^ 0x3141 partner: P alone");
        Ok(Bound { port, portx: None })
    };
    if start == 0 {
        let mut first = None;
        for _ in 0..MAX_PAIR_ATTEMPTS {
            let port = bind(ip, 0).ok_or(AllocError::Exhausted)?;
            let p = port.local_addr().map_err(|_| AllocError::Exhausted)?.port();
            if p ^ PORTX_XOR != 0
                && let Some(portx) = bind(ip, p ^ PORTX_XOR)
            {
                return Ok(Bound {
                    port,
                    portx: Some(portx),
                });
            }
            first.get_or_insert(port);
        }
        return first.map_or(Err(AllocError::Exhausted), alone);
    }
    let len = u32::from(*config.ports.end()) - start + 1;
    let port_at = |offset: u32| u16::try_from(start + offset).unwrap_or(u16::MAX);
    if pairs {
        let mut partner_failures = 0;
        for step in 0..len {
            let offset = (*cursor + step) % len;
            let p = port_at(offset);
            if !config.ports.contains(&(p ^ PORTX_XOR)) {
                continue;
            }
            let Some(port) = bind(ip, p) else {
                continue;
            };
            if let Some(portx) = bind(ip, p ^ PORTX_XOR) {
                *cursor = (offset + 1) % len;
                return Ok(Bound {
                    port,
                    portx: Some(portx),
                });
            }
            partner_failures += 1;
            if partner_failures >= MAX_PAIR_ATTEMPTS {
                break;
            }
        }
    }
    for step in 0..len {
        let offset = (*cursor + step) % len;
        // start + offset ≤ end ≤ u16::MAX.
        if let Some(port) = bind(ip, port_at(offset)) {
            *cursor = (offset + 1) % len;
            return if pairs {
                alone(port)
            } else {
                Ok(Bound { port, portx: None })
            };
        }
    }
    Err(AllocError::Exhausted)
}

fn log_end(kind: &'static str, port: u16, result: &Result<SpliceStats, RelayError>) {
    match result {
        Ok(stats) => tracing::info!(
            target: "relive_relay::ports",
            kind,
            port,
            a_to_b = stats.a_to_b,
            b_to_a = stats.b_to_a,
            "relayed connection finished"
        ),
        Err(RelayError::Expired) => {
            tracing::info!(target: "relive_relay::ports", kind, port, "relay allocation expired unused");
        }
        Err(error) => {
            tracing::warn!(target: "relive_relay::ports", kind, port, %error, "relayed connection failed");
        }
    }
}

impl Allocate for PortPool {
    fn forward(
        &self,
        listener: &str,
        expected_peer: IpAddr,
        target_port: u16,
    ) -> Option<Allocated> {
        self.try_forward(listener, expected_peer, target_port)
            .map_err(|error| {
                tracing::warn!(target: "relive_relay::ports", %error, "relay forward refused");
            })
            .ok()
    }

    fn rendezvous(&self, owner: &str, peers: [IpAddr; 2]) -> Option<[Allocated; 2]> {
        self.try_rendezvous(owner, peers)
            .map_err(|error| {
                tracing::warn!(target: "relive_relay::ports", %error, "relay rendezvous refused");
            })
            .ok()
    }

    fn release(&self, id: AllocationId) {
        if let Some(cancel) = self.inner.state().waiting.remove(&id) {
            let _ = cancel.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial::TcpDial;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn pool(limit: usize, dial: bool) -> PortPool {
        let mut config = PoolConfig::new(LOCAL, 0..=0);
        config.per_user_limit = limit;
        let dial: Option<Arc<dyn Dial>> = if dial {
            Some(Arc::new(TcpDial { host: LOCAL }))
        } else {
            None
        };
        PortPool::new(config, dial).unwrap()
    }

    /// An echo server standing in for the listener's MSNFTP socket; returns its port.
    async fn echo_server() -> u16 {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        port
    }

    async fn connect_from(source: IpAddr, port: u16) -> io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(SocketAddr::new(LOCAL, port)).await
    }

    #[tokio::test]
    async fn forward_accepts_one_connection_from_the_expected_peer_only() {
        let pool = pool(4, true);
        let target = echo_server().await;
        let allocated = pool
            .try_forward("alice@example.com", LOCAL, target)
            .unwrap();
        assert_eq!(pool.active(), 1);
        // A stranger is closed without being forwarded.
        let mut stranger = connect_from(OTHER, allocated.port).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(stranger.read(&mut buf).await.unwrap(), 0);
        // The expected peer gets through to the listener.
        let mut peer = connect_from(LOCAL, allocated.port).await.unwrap();
        peer.write_all(b"VER MSNFTP\r\n").await.unwrap();
        let mut line = [0u8; 12];
        peer.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"VER MSNFTP\r\n");
        // The port accepted its one connection and is closed now.
        assert!(connect_from(LOCAL, allocated.port).await.is_err());
        // The bytes count while the transfer runs: 12 each way so far.
        assert_eq!(pool.totals().bytes(), 24);
        drop(peer);
        pool.wait_idle().await;
        assert_eq!(pool.active(), 0);
        let totals = pool.totals();
        assert_eq!(
            (totals.allocated(), totals.relayed(), totals.failed()),
            (1, 1, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unused_allocation_expires() {
        let pool = pool(4, true);
        let allocated = pool.try_forward("alice@example.com", LOCAL, 9).unwrap();
        pool.wait_idle().await;
        assert!(connect_from(LOCAL, allocated.port).await.is_err());
        assert_eq!((pool.totals().expired(), pool.totals().relayed()), (1, 0));
    }

    #[tokio::test]
    async fn release_closes_a_waiting_allocation() {
        let pool = pool(4, true);
        let allocated = pool.try_forward("alice@example.com", LOCAL, 9).unwrap();
        pool.release(allocated.id);
        pool.wait_idle().await;
        assert!(connect_from(LOCAL, allocated.port).await.is_err());
    }

    #[tokio::test]
    async fn per_user_limit_and_missing_dialer_are_enforced() {
        let pool1 = pool(2, true);
        pool1.try_forward("alice@example.com", LOCAL, 9).unwrap();
        assert_eq!(
            pool1.try_rendezvous("alice@example.com", [LOCAL, LOCAL]),
            Err(AllocError::UserLimit)
        );
        pool1
            .try_rendezvous("bob@example.com", [LOCAL, LOCAL])
            .unwrap();
        assert_eq!(pool1.active(), 3);
        assert_eq!(
            pool(2, false).try_forward("alice@example.com", LOCAL, 9),
            Err(AllocError::Unreachable)
        );
    }

    #[tokio::test]
    async fn exhausted_range_is_reported() {
        let taken = std::net::TcpListener::bind((LOCAL, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let pool = PortPool::new(PoolConfig::new(LOCAL, port..=port), None).unwrap();
        assert_eq!(
            pool.try_rendezvous("bob@example.com", [LOCAL, LOCAL]),
            Err(AllocError::Exhausted)
        );
        assert_eq!(pool.active(), 0);
        let (start, end) = (2, 1);
        assert!(PortPool::new(PoolConfig::new(LOCAL, start..=end), None).is_err());
    }

    #[tokio::test]
    async fn rendezvous_splices_two_outbound_legs() {
        let pool = pool(4, false);
        let [p1, p2] = pool
            .try_rendezvous("alice@example.com", [LOCAL, OTHER])
            .unwrap();
        // The receiver connects first and speaks first; its bytes wait for the sender.
        let mut receiver = connect_from(LOCAL, p1.port).await.unwrap();
        receiver.write_all(b"VER MSNFTP\r\n").await.unwrap();
        // Leg 2 only admits the sender's address.
        let mut wrong = connect_from(LOCAL, p2.port).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(wrong.read(&mut buf).await.unwrap(), 0);
        let mut sender = connect_from(OTHER, p2.port).await.unwrap();
        let mut line = [0u8; 12];
        sender.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"VER MSNFTP\r\n");
        sender.write_all(b"VER MSNFTP\r\n").await.unwrap();
        sender.shutdown().await.unwrap();
        let mut back = Vec::new();
        receiver.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"VER MSNFTP\r\n");
        drop(receiver);
        pool.wait_idle().await;
        let totals = pool.totals();
        assert_eq!(
            (totals.allocated(), totals.relayed(), totals.bytes()),
            (2, 1, 24)
        );
    }

    #[tokio::test]
    async fn allocation_listens_on_port_and_portx_and_takes_the_first_connection() {
        let pool = pool(4, true);
        let target = echo_server().await;
        let allocated = pool
            .try_forward("alice@example.com", LOCAL, target)
            .unwrap();
        let portx = allocated.port ^ PORTX_XOR;
        // A stranger on PortX is closed, like on Port.
        let mut stranger = connect_from(OTHER, portx).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(stranger.read(&mut buf).await.unwrap(), 0);
        // The expected peer dials PortX (as a client reading `PortX` does) and is forwarded.
        let mut peer = connect_from(LOCAL, portx).await.unwrap();
        peer.write_all(b"VER MSNFTP\r\n").await.unwrap();
        let mut line = [0u8; 12];
        peer.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"VER MSNFTP\r\n");
        // One connection per allocation: both ports are closed now.
        assert!(connect_from(LOCAL, allocated.port).await.is_err());
        assert!(connect_from(LOCAL, portx).await.is_err());
        drop(peer);
        pool.wait_idle().await;
    }

    #[tokio::test]
    async fn rendezvous_legs_accept_on_portx_too() {
        let pool = pool(4, false);
        let [p1, p2] = pool
            .try_rendezvous("alice@example.com", [LOCAL, OTHER])
            .unwrap();
        let mut receiver = connect_from(LOCAL, p1.port ^ PORTX_XOR).await.unwrap();
        let mut sender = connect_from(OTHER, p2.port).await.unwrap();
        receiver.write_all(b"VER MSNFTP\r\n").await.unwrap();
        let mut line = [0u8; 12];
        sender.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"VER MSNFTP\r\n");
        drop((receiver, sender));
        pool.wait_idle().await;
    }

    /// Whether nothing listens on `port` of the loopback address right now.
    fn free(port: u16) -> bool {
        std::net::TcpListener::bind((LOCAL, port)).is_ok()
    }

    /// A range with exactly two `P ^ 0x3141` pairs, `a`↔`b` and `a+1`↔`b-1` (`a` < `b`), and
    /// `a`, `a+1` and `b-1` free right now: `(a - 23)..=b`, like 20777..=24577 (pairs
    /// 20800↔24577, 20801↔24576). Chosen at run time among the bases whose bits 13, 12, 8, 6
    /// and 0 are 0, 1, 1, 1, 0 (so `a ^ 0x3141` = `a + 0xEC1` and `a+1` pairs with `b-1`).
    fn two_pair_range() -> (RangeInclusive<u16>, u16) {
        let mut candidates: Vec<u16> = (0u16..=0xffff)
            .filter(|p| p & 0x3141 == 0x1140 && (10_000..=60_000).contains(p))
            .collect();
        // Start somewhere else on every run, so parallel runs rarely pick the same range.
        let skew = usize::try_from(std::process::id()).unwrap_or(0) % candidates.len();
        candidates.rotate_left(skew);
        for a in candidates {
            let b = a ^ PORTX_XOR;
            let range = (a - 23)..=b;
            let pairable: Vec<u16> = range
                .clone()
                .filter(|p| range.contains(&(p ^ PORTX_XOR)))
                .collect();
            if pairable == [a, a + 1, b - 1, b] && [a, a + 1, b - 1].into_iter().all(free) {
                return (range, a);
            }
        }
        panic!("no range with two free port pairs on 127.0.0.1");
    }

    /// A range of 100 ports starting at one the OS just handed out (no range this small has a
    /// `P ^ 0x3141` pair: the XOR moves a port at least ~3.8k away).
    fn hundred_ports() -> RangeInclusive<u16> {
        let probe = std::net::TcpListener::bind((LOCAL, 0)).unwrap();
        let start = probe.local_addr().unwrap().port().min(u16::MAX - 99);
        start..=start + 99
    }

    #[tokio::test]
    async fn range_allocation_pairs_port_and_portx_and_skips_a_busy_partner() {
        let (range, a) = two_pair_range();
        let b = a ^ PORTX_XOR;
        // The first candidate's partner is busy (held here, or by someone else).
        let _busy = std::net::TcpListener::bind((LOCAL, b));
        let dial: Arc<dyn Dial> = Arc::new(TcpDial { host: LOCAL });
        let pool = PortPool::new(PoolConfig::new(LOCAL, range.clone()), Some(dial)).unwrap();
        let leg = pool.try_forward("bob@example.com", LOCAL, 9).unwrap();
        // `a` was skipped (its partner is busy); the pair a+1 / b-1 was taken whole.
        assert_eq!(leg.port, a + 1);
        let portx = leg.port ^ PORTX_XOR;
        assert_eq!(portx, b - 1);
        assert!(!free(leg.port) && !free(portx));
        // No pair is left (b busy, a's partner busy, b-1 held as a partner): the next
        // allocation takes a port alone rather than failing the transfer.
        let alone = pool.try_forward("bob@example.com", LOCAL, 9).unwrap();
        assert!(range.contains(&alone.port) && alone.port != leg.port);
        assert!(!free(alone.port));
        let partner = alone.port ^ PORTX_XOR;
        assert!(partner == b || !range.contains(&partner) || free(partner));
    }

    #[tokio::test]
    async fn range_without_pairs_allocates_port_alone() {
        let range = hundred_ports();
        // Which partners nobody else holds, so a held one below is the pool's doing.
        let partner_free: HashMap<u16, bool> = range
            .clone()
            .map(|p| (p ^ PORTX_XOR, free(p ^ PORTX_XOR)))
            .collect();
        let pool = PortPool::new(PoolConfig::new(LOCAL, range.clone()), None).unwrap();
        assert!(!pool.inner.pairs);
        let [a, b] = pool
            .try_rendezvous("bob@example.com", [LOCAL, LOCAL])
            .unwrap();
        for leg in [a, b] {
            assert!(range.contains(&leg.port));
            assert!(!free(leg.port));
            // PortX is not listened on (it is outside the operator's range).
            let partner = leg.port ^ PORTX_XOR;
            assert!(!partner_free[&partner] || free(partner));
        }
    }
}
