//! Connection outboxes: how other tasks (the hub's presence fan-out, switchboard rooms, the
//! shutdown path) hand events to one connection.
//!
//! This is the one hand-written primitive of the hub, kept for idle memory and for the cost of a
//! wake-up (measured with `relive-bench idle` and `presence`): every logged-in user holds an
//! outbox for as long as they are online. `tokio::sync::mpsc`'s bounded channel costs about
//! 500 bytes per connection before anything is sent (its first block of 32 slots is allocated
//! up front) and has no room for the two signals below, which would each need their own waker
//! registration per connection. This queue is a `VecDeque` and the receiver's waker behind a
//! short lock: it allocates only while events wait and gives that memory back once drained
//! (idle: ≈ 0.2 KiB per user instead of ≈ 0.7 KiB with the channel plus two signal futures).
//! The same lock carries the two signals that end a connection from outside (too slow, server
//! shutdown), so a connection waits on one waker for all of them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::OutReason;
use relive_msnp::version::{Capabilities, ProtocolVersion};
use tracing::warn;

/// Default number of events an outbox holds before its connection counts as too slow.
pub const DEFAULT_OUTBOX_CAPACITY: usize = 1024;

/// Something another task asks a connection to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write this message, encoded in the connection's dialect.
    Send(ServerMessage),
    /// Write this message, which many connections receive (presence fan-out): it is encoded
    /// once per dialect, not once per recipient.
    Broadcast(Arc<Broadcast>),
    /// Write `OUT <reason>` and close the connection (duplicate login).
    Kick(OutReason),
    /// The server is shutting down: the connection says its goodbye (`OUT SSD` on the NS) and
    /// closes. Sent by [`OutboxFactory::shutdown`], never by [`Outbox::deliver`].
    Shutdown,
    /// The reader was too slow and its outbox overflowed: close at once without writing.
    /// Returned by [`Inbox`] ahead of anything still queued.
    TooSlow,
}

/// One message for many connections, with its encodings cached per dialect.
#[derive(Debug)]
pub struct Broadcast {
    message: ServerMessage,
    /// `(dialect, encoded bytes)` for every dialect asked so far (a handful at most).
    encoded: Mutex<Vec<(ProtocolVersion, Bytes)>>,
}

impl Broadcast {
    /// `message`, not yet encoded.
    #[must_use]
    pub fn new(message: ServerMessage) -> Self {
        Self {
            message,
            encoded: Mutex::new(Vec::new()),
        }
    }

    /// The message.
    #[must_use]
    pub const fn message(&self) -> &ServerMessage {
        &self.message
    }

    /// The message's wire form in dialect `caps`, encoded by the first recipient that asks.
    #[must_use]
    pub fn encoded(&self, caps: &Capabilities) -> Bytes {
        let mut cache = self
            .encoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, bytes)) = cache.iter().find(|(v, _)| *v == caps.version) {
            return bytes.clone();
        }
        let mut buf = BytesMut::new();
        self.message.encode(caps, &mut buf);
        let bytes = buf.freeze();
        cache.push((caps.version, bytes.clone()));
        bytes
    }
}

impl PartialEq for Broadcast {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Broadcast {}

/// Identifies one connection, so a stale connection cannot unregister its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The bit that marks the stand-in of a session on another cluster node
    /// ([`Outbox::remote`]); local connections count up from 1 and never reach it.
    pub const REMOTE: u64 = 1 << 63;

    /// Whether this is the stand-in of a session on another cluster node.
    #[must_use]
    pub const fn is_remote(self) -> bool {
        self.0 & Self::REMOTE != 0
    }
}

/// The sending side of a connection: its outbox (see the module documentation for why it is
/// not a tokio channel).
#[derive(Debug)]
pub struct Outbox {
    queue: Arc<Queue>,
}

/// The receiving side of a connection's outbox.
#[derive(Debug)]
pub struct Inbox {
    queue: Arc<Queue>,
    factory: Arc<OutboxFactory>,
}

/// The shared state of one outbox.
#[derive(Debug)]
struct Queue {
    id: ConnId,
    state: Mutex<QueueState>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<Event>,
    /// Live [`Outbox`] clones.
    senders: usize,
    /// The [`Inbox`] still exists.
    receiving: bool,
    /// The receiver to wake when something arrives.
    waker: Option<Waker>,
    /// The outbox overflowed: the receiver gets [`Event::TooSlow`].
    too_slow: bool,
    /// The server is shutting down: the receiver gets [`Event::Shutdown`] (once).
    shutdown: bool,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `change` under the lock; when it says `(true, _)`, wakes the receiver once the
    /// lock is released. Returns the change's own result.
    fn update<R>(&self, change: impl FnOnce(&mut QueueState) -> (bool, R)) -> R {
        let (waker, result) = {
            let mut state = self.state();
            let (wake, result) = change(&mut state);
            (wake.then(|| state.waker.take()).flatten(), result)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }
}

/// Why [`Inbox::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is queued.
    #[error("nothing queued")]
    Empty,
    /// Nothing is queued and every [`Outbox`] is gone.
    #[error("every sender is gone")]
    Disconnected,
}

impl Inbox {
    /// The connection this inbox belongs to.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.queue.id
    }

    /// The next event, waiting for one; `None` once nothing is queued and every [`Outbox`] is
    /// gone. [`Event::TooSlow`] comes first once the outbox overflowed, and again on every call.
    pub async fn recv(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`Self::recv`] as a poll: `Pending` registers `cx`'s waker.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut state = self.queue.state();
        match take(&mut state) {
            Ok(event) => Poll::Ready(Some(event)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                register(&mut state.waker, cx);
                Poll::Pending
            }
        }
    }

    /// Ready once the outbox overflowed (the connection must close without writing); `Pending`
    /// registers `cx`'s waker and leaves every event queued (for a connection busy writing).
    pub fn poll_too_slow(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.queue.state();
        if state.too_slow {
            Poll::Ready(())
        } else {
            register(&mut state.waker, cx);
            Poll::Pending
        }
    }

    /// The next event if one is queued.
    ///
    /// # Errors
    ///
    /// Nothing is queued ([`TryRecvError::Empty`]), or nothing is and every [`Outbox`] is gone.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        take(&mut self.queue.state())
    }

    /// Whether the outbox overflowed, without taking anything.
    #[cfg(test)]
    pub(super) fn is_too_slow(&self) -> bool {
        self.queue.state().too_slow
    }

    /// Whether nothing is queued right now.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.state().events.is_empty()
    }
}

/// Takes the next event (the signals first).
fn take(state: &mut QueueState) -> Result<Event, TryRecvError> {
    if state.too_slow {
        return Ok(Event::TooSlow);
    }
    if state.shutdown {
        state.shutdown = false;
        return Ok(Event::Shutdown);
    }
    match state.events.pop_front() {
        Some(event) => {
            if state.events.is_empty() {
                // Drained: an idle connection keeps no event memory.
                state.events = VecDeque::new();
            }
            Ok(event)
        }
        None if state.senders == 0 => Err(TryRecvError::Disconnected),
        None => Err(TryRecvError::Empty),
    }
}

/// Stores `cx`'s waker unless the same one is already stored.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let too_slow = {
            let mut state = self.queue.state();
            state.receiving = false;
            state.events = VecDeque::new();
            state.waker = None;
            state.too_slow
        };
        if too_slow {
            self.factory.overflows.inc();
        }
        self.factory.live().queues.remove(&self.queue.id);
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.queue.state().senders += 1;
        Self {
            queue: Arc::clone(&self.queue),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.queue.update(|state| {
            state.senders -= 1;
            // The last sender gone: the receiver learns that nothing more will come.
            (state.senders == 0, ())
        });
    }
}

/// A handle the hub collects under its lock and delivers through after releasing it: like an
/// [`Outbox`] clone, but it does not count as a sender (no lock taken to make or drop one), so
/// it must not outlive the fan-out that made it.
#[derive(Debug, Clone)]
pub(super) struct Recipient(Arc<Queue>);

impl Recipient {
    /// [`Outbox::deliver`].
    pub(super) fn deliver(&self, event: Event) -> bool {
        deliver(&self.0, event)
    }
}

/// Queues `event` on `queue` without waiting ([`Outbox::deliver`]).
fn deliver(queue: &Queue, event: Event) -> bool {
    queue.update(|state| {
        if !state.receiving || state.too_slow {
            (false, false)
        } else if state.events.len() >= queue.capacity {
            warn!(conn = queue.id.0, "outbox full; closing slow connection");
            state.too_slow = true;
            state.events = VecDeque::new();
            (true, false)
        } else {
            state.events.push_back(event);
            (true, true)
        }
    })
}

impl Outbox {
    /// The stand-in outbox of a session that lives on another cluster node: nothing is ever
    /// queued (delivery returns `false` at once), since that node delivers to its own
    /// sessions. `id` should have [`ConnId::REMOTE`] set.
    #[must_use]
    pub fn remote(id: ConnId) -> Self {
        Self {
            queue: Arc::new(Queue {
                id,
                state: Mutex::new(QueueState {
                    senders: 1,
                    ..QueueState::default()
                }),
                capacity: 1,
            }),
        }
    }

    /// A non-counting handle for delivering after the hub's lock is released.
    pub(super) fn recipient(&self) -> Recipient {
        Recipient(Arc::clone(&self.queue))
    }

    /// The connection this outbox belongs to.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.queue.id
    }

    /// Whether the connection was found too slow (its outbox overflowed).
    #[must_use]
    pub fn is_too_slow(&self) -> bool {
        self.queue.state().too_slow
    }

    /// Queues `event` without waiting. A full outbox closes the connection: the reader is too
    /// slow, and waiting for it would stall the sender. Returns whether the event was queued.
    pub fn deliver(&self, event: Event) -> bool {
        deliver(&self.queue, event)
    }
}

/// Creates connection ids and their outboxes, and knows every live one (to shut them down).
#[derive(Debug)]
pub struct OutboxFactory {
    next_id: AtomicU64,
    capacity: usize,
    live: Mutex<Live>,
    /// Connections closed because their outbox overflowed (counted as each one closes).
    overflows: Counter,
}

/// The receiving ends that exist, by connection.
#[derive(Debug, Default)]
struct Live {
    queues: HashMap<ConnId, Weak<Queue>>,
    /// [`OutboxFactory::shutdown`] ran: later outboxes start shut down.
    shutdown: bool,
}

impl OutboxFactory {
    /// A factory whose outboxes hold `capacity` events.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            capacity: capacity.max(1),
            live: Mutex::default(),
            overflows: Counter::default(),
        }
    }

    /// How many connections were closed because they read too slowly (their outbox
    /// overflowed); shares its value with the metrics endpoint.
    #[must_use]
    pub fn overflows(&self) -> &Counter {
        &self.overflows
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new outbox and its receiving end.
    #[must_use]
    pub fn create(self: &Arc<Self>) -> (Outbox, Inbox) {
        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut live = self.live();
        let queue = Arc::new(Queue {
            id,
            state: Mutex::new(QueueState {
                senders: 1,
                receiving: true,
                shutdown: live.shutdown,
                ..QueueState::default()
            }),
            capacity: self.capacity,
        });
        live.queues.insert(id, Arc::downgrade(&queue));
        drop(live);
        (
            Outbox {
                queue: Arc::clone(&queue),
            },
            Inbox {
                queue,
                factory: Arc::clone(self),
            },
        )
    }

    /// Tells every connection, and every one created later, that the server is shutting down
    /// ([`Event::Shutdown`]).
    pub fn shutdown(&self) {
        let queues: Vec<Arc<Queue>> = {
            let mut live = self.live();
            live.shutdown = true;
            live.queues.values().filter_map(Weak::upgrade).collect()
        };
        for queue in queues {
            queue.update(|state| {
                state.shutdown = true;
                (true, ())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use relive_msnp::types::Passport;

    use super::*;

    fn kick() -> Event {
        Event::Kick(OutReason::Oth)
    }

    #[tokio::test]
    async fn an_outbox_delivers_in_order_and_wakes_a_waiting_receiver() {
        let f = Arc::new(OutboxFactory::new(8));
        let (tx, mut rx) = f.create();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second, rx)
        });
        tokio::task::yield_now().await;
        let other = tx.clone();
        assert!(tx.deliver(kick()));
        assert!(other.deliver(Event::Kick(OutReason::Ssd)));
        let (first, second, mut rx) = waiting.await.unwrap();
        assert_eq!(first, Some(kick()));
        assert_eq!(second, Some(Event::Kick(OutReason::Ssd)));
        assert!(rx.is_empty());
        // Every sender gone: what is queued still arrives, then the end.
        assert!(tx.deliver(kick()));
        drop((tx, other));
        assert_eq!(rx.recv().await, Some(kick()));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn a_full_outbox_closes_its_connection_and_a_dropped_inbox_refuses() {
        let f = Arc::new(OutboxFactory::new(2));
        let (tx, mut rx) = f.create();
        assert!(tx.deliver(kick()) && tx.deliver(kick()));
        assert!(!tx.is_too_slow());
        assert!(!tx.deliver(kick()), "the third event does not fit");
        assert!(tx.is_too_slow());
        // The receiver is told at once, and again (nothing queued is written any more).
        assert_eq!(rx.try_recv(), Ok(Event::TooSlow));
        assert_eq!(rx.try_recv(), Ok(Event::TooSlow));
        assert!(!tx.deliver(kick()));
        assert_eq!(f.overflows().get(), 0, "counted when the connection closes");
        drop(rx);
        assert_eq!(f.overflows().get(), 1);
        let (tx, rx) = f.create();
        drop(rx);
        assert!(!tx.deliver(kick()));
        assert_eq!(f.overflows().get(), 1, "a closed connection is no overflow");
    }

    #[tokio::test]
    async fn shutdown_reaches_every_live_inbox_once_and_later_ones_too() {
        let f = Arc::new(OutboxFactory::new(4));
        let (tx, mut rx) = f.create();
        let (_gone_tx, gone_rx) = f.create();
        drop(gone_rx);
        assert_eq!(
            f.live().queues.len(),
            1,
            "a dropped inbox leaves the registry"
        );
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx)
        });
        tokio::task::yield_now().await;
        f.shutdown();
        let (first, mut rx) = waiting.await.unwrap();
        assert_eq!(first, Some(Event::Shutdown));
        // Queued events still arrive after it; the signal is not repeated.
        assert!(tx.deliver(kick()));
        assert_eq!(rx.try_recv(), Ok(kick()));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let (_late_tx, mut late) = f.create();
        assert_eq!(late.try_recv(), Ok(Event::Shutdown));
    }

    #[test]
    fn a_broadcast_is_encoded_once_per_dialect() {
        let b = Broadcast::new(ServerMessage::Fln {
            handle: Passport::parse("alice@x.com").unwrap(),
        });
        let v7 = Capabilities::for_version(ProtocolVersion::MSNP7);
        let v9 = Capabilities::for_version(ProtocolVersion::MSNP9);
        assert_eq!(&b.encoded(&v7)[..], b"FLN alice@x.com\r\n");
        assert_eq!(b.encoded(&v9), b.encoded(&v9));
        assert_eq!(b.encoded.lock().unwrap().len(), 2);
    }
}
