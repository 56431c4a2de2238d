//! The presence hub: the in-memory registry of every logged-in notification session.
//!
//! For each online user the hub keeps the session's outbox, its presence (status, client caps,
//! MSNObject), its friendly name and its own privacy data (BLP and the list bits of every
//! contact). That is everything needed to decide, under one short lock and without touching the
//! database, who may see whom (PROTOCOL.md §2.8):
//!
//! * `owner` **blocks** `viewer` when `viewer` is on `owner`'s BL; otherwise when `viewer` is on
//!   `owner`'s AL they are allowed; otherwise `owner` blocks `viewer` iff `owner`'s BLP is `BL`
//!   (Escargot's `_is_blocking`).
//! * `owner`'s `NLN`/`FLN` go to every online user on `owner`'s RL (they have `owner` on their FL)
//!   whom `owner` does not block. A hidden (`HDN`) user looks offline to everybody.
//! * MSNP11+: `owner`'s personal message (`UUX`) goes as `UBX` to the same watchers, but only
//!   to those whose dialect has it ([`Capabilities::psm`]): right away, after `owner`'s `ILN` in
//!   a watcher's first burst (and after `ADD`/`ADC` FL), and after the `NLN` that shows `owner`
//!   coming online (from offline, hidden or blocked). An MSNP2–10 watcher never gets one.
//!
//! Events are version-neutral [`ServerMessage`] values; each connection encodes them in its own
//! dialect. Outboxes are bounded: when a reader is too slow and its outbox is full, the hub
//! cancels that one connection instead of waiting for it, so nobody else is ever stalled.
//!
//! The hub never holds its lock across an `.await`; every method is synchronous and short.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;

use relive_msnp::psm::PersonalMessage;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{
    Blp, ClientCaps, ErrorCode, FriendlyName, ListKind, ListSet, MsnObject, OutReason, Passport,
    Status, TrId,
};
use relive_msnp::version::{Capabilities, ProtocolVersion};
use tracing::{debug, warn};

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

/// The sending side of a connection: its outbox.
///
/// The queue is ours rather than tokio's bounded channel, for idle memory and for the cost of a
/// wake-up: every logged-in user holds one for as long as they are online, and tokio's channel
/// costs about 500 bytes before anything is sent (its first block of 32 slots is allocated up
/// front). This one is a `VecDeque` and the receiver's waker behind a short lock, allocates only
/// while events wait, and gives that memory back once drained. The same lock carries the two
/// signals that end a connection from outside (too slow, server shutdown), so a connection
/// waits on one waker for all of them.
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

impl Outbox {
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
        self.queue.update(|state| {
            if !state.receiving || state.too_slow {
                (false, false)
            } else if state.events.len() >= self.queue.capacity {
                warn!(
                    conn = self.queue.id.0,
                    "outbox full; closing slow connection"
                );
                state.too_slow = true;
                state.events = VecDeque::new();
                (true, false)
            } else {
                state.events.push_back(event);
                (true, true)
            }
        })
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

/// What a user shows to others once they have sent `CHG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The status from the last `CHG` (never `FLN`).
    pub status: Status,
    /// Client capabilities (MSNP8+; 0 before).
    pub caps: ClientCaps,
    /// The display-picture object (MSNP9+).
    pub msn_object: Option<MsnObject>,
}

impl Presence {
    /// Whether others see this user online (`HDN` looks offline).
    #[must_use]
    pub fn is_visible(&self) -> bool {
        self.status != Status::Hdn
    }
}

/// The privacy and list data of a user, loaded from the store at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListView {
    /// The user's privacy default.
    pub blp: Blp,
    /// List membership of each contact in this user's lists (FL/AL/BL/RL bits).
    contacts: ContactBits,
}

impl Default for ListView {
    fn default() -> Self {
        Self {
            blp: Blp::Al,
            contacts: ContactBits::default(),
        }
    }
}

impl ListView {
    /// Lists with privacy default `blp` and `contacts` (later entries for the same handle
    /// replace earlier ones; empty sets are left out).
    #[must_use]
    pub fn new<'a>(blp: Blp, contacts: impl IntoIterator<Item = (&'a Passport, ListSet)>) -> Self {
        let mut all: Vec<(u32, ListSet)> = contacts
            .into_iter()
            .map(|(p, b)| (intern(p.as_str()), b))
            .collect();
        // Stable sort, then keep the last entry of each handle.
        all.sort_by_key(|&(id, _)| id);
        let mut unique: Vec<(u32, ListSet)> = Vec::with_capacity(all.len());
        for (id, bits) in all {
            match unique.last_mut() {
                Some(last) if last.0 == id => last.1 = bits,
                _ => unique.push((id, bits)),
            }
        }
        unique.retain(|(_, b)| *b != ListSet::EMPTY);
        Self {
            blp,
            contacts: ContactBits {
                entries: unique.into_boxed_slice(),
            },
        }
    }

    /// The bits `contact` has in these lists.
    #[must_use]
    pub fn bits<Q: Borrow<str> + ?Sized>(&self, contact: &Q) -> ListSet {
        self.contacts
            .get(contact.borrow())
            .unwrap_or(ListSet::EMPTY)
    }

    /// Every contact with its bits, in handle order.
    pub fn contacts(&self) -> impl Iterator<Item = (&'static str, ListSet)> + use<> {
        self.contacts.iter()
    }

    /// Whether the owner of these lists blocks `viewer` (PROTOCOL.md §2.8).
    #[must_use]
    pub fn blocks<Q: Borrow<str> + ?Sized>(&self, viewer: &Q) -> bool {
        let bits = self.bits(viewer);
        if bits.contains(ListKind::Bl) {
            true
        } else if bits.contains(ListKind::Al) {
            false
        } else {
            self.blp == Blp::Bl
        }
    }

    fn set_bits(&mut self, contact: &Passport, bits: ListSet) {
        self.contacts.set(contact.as_str(), bits);
    }
}

/// Every handle that any user's lists have mentioned, stored once for the whole process and
/// numbered, so a user's contact table holds 4-byte ids instead of copies of the handles (50
/// contacts: about 1 KiB less per online user). Entries are never removed: they are bounded by
/// the accounts the server has had since it started (a deleted account's handle stays until a
/// restart), a few dozen bytes each.
#[derive(Debug, Default)]
struct Handles {
    ids: HashMap<&'static str, u32>,
    names: Vec<&'static str>,
}

static HANDLES: std::sync::LazyLock<std::sync::RwLock<Handles>> =
    std::sync::LazyLock::new(Default::default);

fn handles() -> std::sync::RwLockReadGuard<'static, Handles> {
    HANDLES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The id of `handle`, numbering it if it is new.
fn intern(handle: &str) -> u32 {
    if let Some(&id) = handles().ids.get(handle) {
        return id;
    }
    let mut all = HANDLES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&id) = all.ids.get(handle) {
        return id;
    }
    // Far fewer than 2^32 accounts can exist; the cap only keeps the arithmetic total.
    let id = u32::try_from(all.names.len()).unwrap_or(u32::MAX);
    let name: &'static str = Box::leak(handle.to_owned().into_boxed_str());
    all.names.push(name);
    all.ids.insert(name, id);
    id
}

/// A user's contacts and their list bits, packed for memory: every online user holds one, of
/// up to a few hundred entries, for as long as they are online. Each entry is the contact's
/// handle id ([`Handles`]) and its bits (8 bytes), sorted by id. Lookups are one hash lookup
/// and a binary search; changes (rare: `ADD`/`REM`/RL updates) rebuild it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ContactBits {
    entries: Box<[(u32, ListSet)]>,
}

impl ContactBits {
    /// Sets the bits of `contact` (`EMPTY`: removes it).
    fn set(&mut self, contact: &str, bits: ListSet) {
        let id = if bits == ListSet::EMPTY {
            match handles().ids.get(contact) {
                Some(&id) => id,
                // Never numbered, so on nobody's lists.
                None => return,
            }
        } else {
            intern(contact)
        };
        let mut entries = std::mem::take(&mut self.entries).into_vec();
        match entries.binary_search_by_key(&id, |&(i, _)| i) {
            Ok(at) if bits == ListSet::EMPTY => {
                entries.remove(at);
            }
            Ok(at) => entries[at].1 = bits,
            Err(_) if bits == ListSet::EMPTY => {}
            Err(at) => entries.insert(at, (id, bits)),
        }
        self.entries = entries.into_boxed_slice();
    }

    fn get(&self, contact: &str) -> Option<ListSet> {
        let id = *handles().ids.get(contact)?;
        let at = self.entries.binary_search_by_key(&id, |&(i, _)| i).ok()?;
        Some(self.entries[at].1)
    }

    /// Every entry, in handle order.
    fn iter(&self) -> impl Iterator<Item = (&'static str, ListSet)> + use<> {
        let mut all: Vec<(&'static str, ListSet)> = {
            let names = handles();
            self.entries
                .iter()
                .filter_map(|&(id, bits)| Some((*names.names.get(id as usize)?, bits)))
                .collect()
        };
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }
}

/// A logged-in notification session as the hub sees it.
#[derive(Debug)]
struct Entry {
    outbox: Outbox,
    /// The session's dialect, if its connection told us ([`Hub::set_dialect`]).
    dialect: Option<Capabilities>,
    name: FriendlyName,
    presence: Option<Presence>,
    /// The personal message set with `UUX` this session (MSNP11+), if any.
    personal: Option<PersonalMessage>,
    lists: ListView,
}

impl Entry {
    /// Whether this session's dialect has personal messages (gets `UBX`).
    fn wants_personal(&self) -> bool {
        self.dialect.is_some_and(|c| c.psm)
    }

    /// This user's `UBX`, when a personal message is set.
    fn ubx(&self, handle: &Passport) -> Option<ServerMessage> {
        self.personal.as_ref().map(|message| ServerMessage::Ubx {
            handle: handle.clone(),
            message: message.clone(),
        })
    }

    /// Presence as others see it: `None` when offline, hidden or not yet `CHG`ed.
    fn visible_presence(&self) -> Option<&Presence> {
        self.presence.as_ref().filter(|p| p.is_visible())
    }

    /// Whether this session receives presence events (it has sent its first `CHG`).
    fn wants_presence(&self) -> bool {
        self.presence.is_some()
    }

    fn nln(&self, handle: &Passport) -> Option<ServerMessage> {
        self.visible_presence().map(|p| ServerMessage::Nln {
            status: p.status,
            handle: handle.clone(),
            name: self.name.clone(),
            caps: p.caps,
            msn_object: p.msn_object.clone(),
        })
    }

    fn iln(&self, handle: &Passport, trid: TrId) -> Option<ServerMessage> {
        self.visible_presence().map(|p| ServerMessage::Iln {
            trid,
            status: p.status,
            handle: handle.clone(),
            name: self.name.clone(),
            caps: p.caps,
            msn_object: p.msn_object.clone(),
        })
    }
}

/// Why the hub refused to ring someone on a switchboard's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The callee is offline, hidden, not yet online, or blocks the caller (all look alike).
    #[error("callee unreachable")]
    Unreachable,
    /// The callee's outbox was full; its connection is being closed.
    #[error("callee too slow")]
    Overloaded,
}

impl RingError {
    /// The MSNP error code a `CAL` gets for this (217 in every case, so nothing leaks).
    #[must_use]
    pub const fn code(self) -> ErrorCode {
        ErrorCode::NotOnline
    }
}

/// One logged-in session as [`Hub::online`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineUser {
    /// Handle.
    pub handle: Passport,
    /// The session's connection.
    pub conn: ConnId,
    /// Dialect, once the connection told the hub.
    pub dialect: Option<ProtocolVersion>,
    /// Status, once the session sent its first `CHG`.
    pub status: Option<Status>,
}

/// The registry of online users. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Hub {
    users: Mutex<HashMap<Passport, Entry>>,
}

impl Hub {
    /// An empty hub.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Passport, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters
        // more than losing every session, so keep serving with the data as it is.
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of logged-in sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nobody is logged in.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Registers a freshly authenticated session. An older session of the same user is told
    /// `OUT OTH` and closed; people who saw it online get `FLN` until the new session sends `CHG`.
    pub fn register(&self, user: &Passport, outbox: Outbox, name: FriendlyName, lists: ListView) {
        let mut users = self.lock();
        let entry = Entry {
            outbox,
            dialect: None,
            name,
            presence: None,
            personal: None,
            lists,
        };
        if let Some(old) = users.insert(user.clone(), entry) {
            debug!(user = %user.as_str(), "duplicate login; closing the older session");
            old.outbox.deliver(Event::Kick(OutReason::Oth));
            if old.visible_presence().is_some() {
                fan_out(
                    &users,
                    user,
                    &old,
                    &ServerMessage::Fln {
                        handle: user.clone(),
                    },
                );
            }
        }
    }

    /// Removes `user`'s session `id` (a no-op if a newer session replaced it) and tells the
    /// people who saw it online that it went offline.
    pub fn unregister(&self, user: &Passport, id: ConnId) {
        let mut users = self.lock();
        if users.get(user).is_none_or(|e| e.outbox.id() != id) {
            return;
        }
        if let Some(entry) = users.remove(user)
            && entry.visible_presence().is_some()
        {
            fan_out(
                &users,
                user,
                &entry,
                &ServerMessage::Fln {
                    handle: user.clone(),
                },
            );
        }
    }

    /// Applies a `CHG`: stores the presence and sends `NLN` (or `FLN` when going hidden) to every
    /// watcher allowed to see it. On the session's first `CHG`, returns the `ILN` burst: one line
    /// per online FL contact who does not block `user`, all with `trid`.
    pub fn set_presence(
        &self,
        user: &Passport,
        presence: Presence,
        trid: TrId,
    ) -> Vec<ServerMessage> {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return Vec::new();
        };
        let first = entry.presence.is_none();
        let was_visible = entry.visible_presence().is_some();
        let unchanged = entry.presence.as_ref() == Some(&presence);
        entry.presence = Some(presence);
        let Some(entry) = users.get(user) else {
            return Vec::new();
        };
        if !unchanged {
            if let Some(nln) = entry.nln(user) {
                fan_out(&users, user, entry, &nln);
                // Coming online: the watchers that have personal messages get it after the NLN.
                if let (false, Some(ubx)) = (was_visible, entry.ubx(user)) {
                    fan_out_personal(&users, user, entry, &ubx);
                }
            } else if was_visible {
                fan_out(
                    &users,
                    user,
                    entry,
                    &ServerMessage::Fln {
                        handle: user.clone(),
                    },
                );
            }
        }
        if !first {
            return Vec::new();
        }
        let personal = entry.wants_personal();
        entry
            .lists
            .contacts()
            .filter(|(_, bits)| bits.contains(ListKind::Fl))
            .flat_map(|(contact, _)| initial_presence(&users, user, contact, trid, personal))
            .collect()
    }

    /// The `ILN` for `contact` as `viewer` may see it right now (after `ADD`/`ADC` FL), and its
    /// `UBX` for a viewer with personal messages; empty if `contact` is offline, hidden or
    /// blocks `viewer`.
    #[must_use]
    pub fn iln_for(&self, viewer: &Passport, contact: &Passport, trid: TrId) -> Vec<ServerMessage> {
        let users = self.lock();
        let personal = users.get(viewer).is_some_and(Entry::wants_personal);
        initial_presence(&users, viewer, contact.as_str(), trid, personal)
    }

    /// Applies a `UUX`: stores `user`'s personal message and, if `user` is visible, sends it as
    /// `UBX` to every watcher allowed to see `user` whose dialect has personal messages.
    pub fn set_personal(&self, user: &Passport, message: PersonalMessage) {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return;
        };
        entry.personal = Some(message);
        let Some(entry) = users.get(user) else {
            return;
        };
        if entry.visible_presence().is_some()
            && let Some(ubx) = entry.ubx(user)
        {
            fan_out_personal(&users, user, entry, &ubx);
        }
    }

    /// The client caps `user` announced in its last `CHG`, if online (switchboard `IRO`/`JOI`
    /// carry them from MSNP12).
    #[must_use]
    pub fn caps_of(&self, user: &Passport) -> Option<ClientCaps> {
        self.lock()
            .get(user)
            .and_then(|e| e.presence.as_ref())
            .map(|p| p.caps)
    }

    /// Applies a change of `user`'s own friendly name; watchers get a fresh `NLN`.
    pub fn set_name(&self, user: &Passport, name: FriendlyName) {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return;
        };
        entry.name = name;
        let Some(entry) = users.get(user) else {
            return;
        };
        if let Some(nln) = entry.nln(user) {
            fan_out(&users, user, entry, &nln);
        }
    }

    /// Records the dialect of `user`'s session (so a switchboard invitation can carry it).
    pub fn set_dialect(&self, user: &Passport, caps: Capabilities) {
        if let Some(entry) = self.lock().get_mut(user) {
            entry.dialect = Some(caps);
        }
    }

    /// Logged-in sessions per dialect (`None`: not yet told, [`Hub::set_dialect`]). Walks
    /// every session under the lock: for a scrape now and then, not for a hot path.
    #[must_use]
    pub fn sessions_by_dialect(&self) -> BTreeMap<Option<ProtocolVersion>, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.lock().values() {
            *counts.entry(entry.dialect.map(|c| c.version)).or_insert(0) += 1;
        }
        counts
    }

    /// The dialect of `user`'s session, if online and known.
    #[must_use]
    pub fn dialect_of(&self, user: &Passport) -> Option<Capabilities> {
        self.lock().get(user).and_then(|e| e.dialect)
    }

    /// The friendly name of an online user.
    #[must_use]
    pub fn name_of(&self, user: &Passport) -> Option<FriendlyName> {
        self.lock().get(user).map(|e| e.name.clone())
    }

    /// Applies a change to the bits `contact` has in `user`'s lists, after the store made it
    /// durable. If that changes whether `contact` may see `user` (BL/AL edits), `contact` gets
    /// `FLN user` or `NLN user` accordingly.
    pub fn set_contact_bits(&self, user: &Passport, contact: &Passport, bits: ListSet) {
        self.update_privacy(user, |lists| lists.set_bits(contact, bits));
    }

    /// Applies a `BLP` change; watchers whose visibility flips get `FLN`/`NLN`.
    pub fn set_blp(&self, user: &Passport, blp: Blp) {
        self.update_privacy(user, |lists| lists.blp = blp);
    }

    fn update_privacy(&self, user: &Passport, change: impl FnOnce(&mut ListView)) {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return;
        };
        let before = entry.lists.clone();
        change(&mut entry.lists);
        let Some(entry) = users.get(user) else {
            return;
        };
        let Some(nln) = entry.nln(user) else {
            return;
        };
        // Only watchers (RL before or after) can notice; compare their visibility.
        let mut watchers: Vec<&str> = before
            .contacts()
            .chain(entry.lists.contacts())
            .filter(|(_, bits)| bits.contains(ListKind::Rl))
            .map(|(c, _)| c)
            .collect();
        watchers.sort_unstable();
        watchers.dedup();
        for watcher in watchers {
            let saw = before.bits(watcher).contains(ListKind::Rl) && !before.blocks(watcher);
            let sees =
                entry.lists.bits(watcher).contains(ListKind::Rl) && !entry.lists.blocks(watcher);
            let event = match (saw, sees) {
                (true, false) => ServerMessage::Fln {
                    handle: user.clone(),
                },
                (false, true) => nln.clone(),
                _ => continue,
            };
            if let Some(w) = users.get(watcher).filter(|w| w.wants_presence()) {
                let appears = matches!(event, ServerMessage::Nln { .. });
                w.outbox.deliver(Event::Send(event));
                if let (true, true, Some(ubx)) = (appears, w.wants_personal(), entry.ubx(user)) {
                    w.outbox.deliver(Event::Send(ubx));
                }
            }
        }
    }

    /// Delivers `message` to `user` if online, first applying `bits` as the new list bits of
    /// `about` in `user`'s lists (server-initiated `ADD 0 RL` / `REM 0 RL`).
    pub fn notify_list_change(
        &self,
        user: &Passport,
        about: &Passport,
        bits: ListSet,
        message: ServerMessage,
    ) {
        let mut users = self.lock();
        if let Some(entry) = users.get_mut(user) {
            entry.lists.set_bits(about, bits);
            entry.outbox.deliver(Event::Send(message));
        }
    }

    /// Rings `callee` for a switchboard invitation from `caller`: `ring` builds the `RNG` message
    /// once the callee is known to be reachable (online, not hidden, not blocking the caller).
    ///
    /// # Errors
    /// [`RingError`] when the callee cannot be rung; the `CAL` gets `217` either way.
    pub fn ring(
        &self,
        caller: &Passport,
        callee: &Passport,
        ring: impl FnOnce() -> ServerMessage,
    ) -> Result<(), RingError> {
        let users = self.lock();
        let entry = users.get(callee).ok_or(RingError::Unreachable)?;
        if entry.visible_presence().is_none() || entry.lists.blocks(caller) {
            return Err(RingError::Unreachable);
        }
        if entry.outbox.deliver(Event::Send(ring())) {
            Ok(())
        } else {
            Err(RingError::Overloaded)
        }
    }

    /// Whether `user` is online and visible (used by `XFR SB` and `CAL` checks).
    #[must_use]
    pub fn is_visible(&self, user: &Passport) -> bool {
        self.lock()
            .get(user)
            .is_some_and(|e| e.visible_presence().is_some())
    }

    /// Everyone logged in now, by handle: dialect (if told) and status (if `CHG`ed). For the
    /// website's admin pages: walks every session under the lock.
    #[must_use]
    pub fn online(&self) -> Vec<OnlineUser> {
        let mut all: Vec<OnlineUser> = self
            .lock()
            .iter()
            .map(|(handle, e)| OnlineUser {
                handle: handle.clone(),
                conn: e.outbox.id(),
                dialect: e.dialect.map(|c| c.version),
                status: e.presence.as_ref().map(|p| p.status),
            })
            .collect();
        all.sort_by(|a, b| a.handle.as_str().cmp(b.handle.as_str()));
        all
    }

    /// Ends `user`'s session with `OUT <reason>`, if it is session `id` (or any session when
    /// `id` is `None`). Returns whether a session was told.
    pub fn kick(&self, user: &Passport, id: Option<ConnId>, reason: OutReason) -> bool {
        let users = self.lock();
        match users.get(user) {
            Some(e) if id.is_none_or(|id| e.outbox.id() == id) => {
                e.outbox.deliver(Event::Kick(reason));
                true
            }
            _ => false,
        }
    }

    /// Sends `message` to `user`'s session, if online (a change made elsewhere, e.g. on the
    /// website, that the client must learn as if the server had initiated it).
    pub fn send_to(&self, user: &Passport, message: ServerMessage) -> bool {
        self.lock()
            .get(user)
            .is_some_and(|e| e.outbox.deliver(Event::Send(message)))
    }

    /// Sends `message` to every logged-in session (encoded once per dialect); returns how many
    /// sessions it was queued for.
    pub fn send_to_all(&self, message: ServerMessage) -> usize {
        let broadcast = Arc::new(Broadcast::new(message));
        self.lock()
            .values()
            .filter(|e| e.outbox.deliver(Event::Broadcast(Arc::clone(&broadcast))))
            .count()
    }
}

/// What `viewer` learns about `contact` when it comes online or adds it: its `ILN` with `trid`
/// and, for a viewer with personal messages, its `UBX`; nothing when `contact` is offline,
/// hidden or blocks `viewer`.
fn initial_presence(
    users: &HashMap<Passport, Entry>,
    viewer: &Passport,
    contact: &str,
    trid: TrId,
    personal: bool,
) -> Vec<ServerMessage> {
    let Some((contact, other)) = users.get_key_value(contact) else {
        return Vec::new();
    };
    if other.lists.blocks(viewer.as_str()) {
        return Vec::new();
    }
    let Some(iln) = other.iln(contact, trid) else {
        return Vec::new();
    };
    let ubx = other.ubx(contact).filter(|_| personal);
    std::iter::once(iln).chain(ubx).collect()
}

/// Sends `message` about `user` (whose hub entry is `entry`) to every online watcher that
/// `user` does not block.
fn fan_out(
    users: &HashMap<Passport, Entry>,
    user: &Passport,
    entry: &Entry,
    message: &ServerMessage,
) {
    fan_out_to(users, user, entry, message, Entry::wants_presence);
}

/// [`fan_out`] of a `UBX`: only to watchers whose dialect has personal messages.
fn fan_out_personal(
    users: &HashMap<Passport, Entry>,
    user: &Passport,
    entry: &Entry,
    message: &ServerMessage,
) {
    fan_out_to(users, user, entry, message, |w| {
        w.wants_presence() && w.wants_personal()
    });
}

fn fan_out_to(
    users: &HashMap<Passport, Entry>,
    user: &Passport,
    entry: &Entry,
    message: &ServerMessage,
    wants: impl Fn(&Entry) -> bool,
) {
    // Encoded once per dialect however many watchers get it.
    let mut shared: Option<Arc<Broadcast>> = None;
    for (watcher, bits) in entry.lists.contacts() {
        if !bits.contains(ListKind::Rl) || entry.lists.blocks(watcher) || watcher == user.as_str() {
            continue;
        }
        if let Some(w) = users.get(watcher).filter(|w| wants(w)) {
            let message = shared.get_or_insert_with(|| Arc::new(Broadcast::new(message.clone())));
            w.outbox.deliver(Event::Broadcast(Arc::clone(message)));
        }
    }
}

#[cfg(test)]
mod tests {
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
            handle: p("alice@x.com"),
        });
        let v7 = Capabilities::for_version(ProtocolVersion::MSNP7);
        let v9 = Capabilities::for_version(ProtocolVersion::MSNP9);
        assert_eq!(&b.encoded(&v7)[..], b"FLN alice@x.com\r\n");
        assert_eq!(b.encoded(&v9), b.encoded(&v9));
        assert_eq!(b.encoded.lock().unwrap().len(), 2);
    }

    fn p(s: &str) -> Passport {
        Passport::parse(s).unwrap()
    }

    fn name(s: &str) -> FriendlyName {
        FriendlyName::parse(s).unwrap()
    }

    fn online(status: Status) -> Presence {
        Presence {
            status,
            caps: ClientCaps(0),
            msn_object: None,
        }
    }

    #[test]
    fn list_views_pack_look_up_and_change_contacts() {
        let fl = ListSet::EMPTY.with(ListKind::Fl);
        let bl = ListSet::EMPTY.with(ListKind::Bl);
        let al = ListSet::EMPTY.with(ListKind::Al);
        let (c, a, b) = (p("carol@x.com"), p("alice@x.com"), p("bob@x.com"));
        // Unsorted input, a duplicate (the later wins) and an empty set (left out).
        let mut v = ListView::new(
            Blp::Bl,
            [(&c, fl), (&a, fl), (&c, al), (&b, ListSet::EMPTY)],
        );
        let all: Vec<_> = v.contacts().collect();
        assert_eq!(all, vec![("alice@x.com", fl), ("carol@x.com", al)]);
        assert_eq!(v.bits(&a), fl);
        assert_eq!(v.bits("carol@x.com"), al);
        assert_eq!(v.bits(&b), ListSet::EMPTY);
        // BLP BL: blocked unless on AL.
        assert!(v.blocks(&a) && !v.blocks(&c) && v.blocks("nobody@x.com"));
        v.set_bits(&b, bl);
        v.set_bits(&a, ListSet::EMPTY);
        v.set_bits(&c, al.with(ListKind::Rl));
        let all: Vec<_> = v.contacts().collect();
        assert_eq!(
            all,
            vec![("bob@x.com", bl), ("carol@x.com", al.with(ListKind::Rl))]
        );
        assert!(v.blocks(&b));
        assert_eq!(ListView::default().contacts().count(), 0);
    }

    struct Conn {
        rx: Inbox,
        id: ConnId,
    }

    impl Conn {
        /// Everything queued, with broadcasts as plain sends.
        fn drain(&mut self) -> Vec<Event> {
            let mut out = Vec::new();
            while let Ok(e) = self.rx.try_recv() {
                out.push(match e {
                    Event::Broadcast(b) => Event::Send(b.message().clone()),
                    e => e,
                });
            }
            out
        }

        fn is_too_slow(&self) -> bool {
            self.rx.queue.state().too_slow
        }
    }

    fn login(
        hub: &Hub,
        f: &Arc<OutboxFactory>,
        user: &str,
        contacts: &[(&str, &[ListKind])],
    ) -> Conn {
        let (outbox, rx) = f.create();
        let id = outbox.id();
        let mut lists = ListView::default();
        for (c, kinds) in contacts {
            let bits = kinds.iter().fold(ListSet::EMPTY, |s, k| s.with(*k));
            lists.set_bits(&p(c), bits);
        }
        hub.register(
            &p(user),
            outbox,
            name(user.split('@').next().unwrap()),
            lists,
        );
        Conn { rx, id }
    }

    use ListKind::{Al, Bl, Fl, Rl};

    /// bob is online (`NLN`) with alice on his FL; alice then logs in with `alice_bits` as bob's
    /// bits in her lists and sets `status`. Returns (bob, alice).
    fn bob_watches_alice(
        hub: &Hub,
        f: &Arc<OutboxFactory>,
        alice_bits: &[ListKind],
        status: Status,
    ) -> (Conn, Conn) {
        let bob = login(hub, f, "bob@example.com", &[("alice@example.com", &[Fl])]);
        hub.set_presence(&p("bob@example.com"), online(Status::Nln), TrId(1));
        let alice = login(
            hub,
            f,
            "alice@example.com",
            &[("bob@example.com", alice_bits)],
        );
        hub.set_presence(&p("alice@example.com"), online(status), TrId(2));
        (bob, alice)
    }

    #[test]
    fn first_chg_gets_iln_for_visible_fl_contacts_and_watchers_get_nln() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        let mut bob = login(
            &hub,
            &f,
            "bob@example.com",
            &[("alice@example.com", &[Fl, Al, Rl])],
        );
        assert!(
            hub.set_presence(&p("bob@example.com"), online(Status::Bsy), TrId(1))
                .is_empty()
        );
        let mut alice = login(
            &hub,
            &f,
            "alice@example.com",
            &[("bob@example.com", &[Fl, Al, Rl])],
        );
        let ilns = hub.set_presence(&p("alice@example.com"), online(Status::Nln), TrId(9));
        assert_eq!(ilns.len(), 1);
        assert!(matches!(
            &ilns[0],
            ServerMessage::Iln {
                trid: TrId(9),
                status: Status::Bsy,
                ..
            }
        ));
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Nln {
                status: Status::Nln,
                ..
            })]
        ));
        assert!(alice.drain().is_empty());
    }

    #[test]
    fn blocked_watcher_never_learns_presence_or_name() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        // alice blocks bob; bob watches alice.
        let (mut bob, _alice) = bob_watches_alice(&hub, &f, &[Bl, Rl], Status::Nln);
        hub.set_name(&p("alice@example.com"), name("NewName"));
        assert!(bob.drain().is_empty());
        assert!(
            hub.iln_for(&p("bob@example.com"), &p("alice@example.com"), TrId(3))
                .is_empty()
        );
        let ring = hub.ring(&p("bob@example.com"), &p("alice@example.com"), || {
            ServerMessage::Fln {
                handle: p("x@example.com"),
            }
        });
        assert_eq!(ring, Err(RingError::Unreachable));
    }

    #[test]
    fn bl_add_and_remove_while_online_flip_fln_and_nln() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        let (mut bob, _alice) = bob_watches_alice(&hub, &f, &[Al, Rl], Status::Awy);
        assert_eq!(bob.drain().len(), 1);
        let block = ListSet::EMPTY.with(Bl).with(Rl);
        hub.set_contact_bits(&p("alice@example.com"), &p("bob@example.com"), block);
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Fln { .. })]
        ));
        let allow = ListSet::EMPTY.with(Al).with(Rl);
        hub.set_contact_bits(&p("alice@example.com"), &p("bob@example.com"), allow);
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Nln {
                status: Status::Awy,
                ..
            })]
        ));
    }

    #[test]
    fn blp_bl_hides_from_watchers_not_on_al() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        let (mut bob, _alice) = bob_watches_alice(&hub, &f, &[Rl], Status::Nln);
        assert_eq!(bob.drain().len(), 1);
        hub.set_blp(&p("alice@example.com"), Blp::Bl);
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Fln { .. })]
        ));
        hub.set_blp(&p("alice@example.com"), Blp::Al);
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Nln { .. })]
        ));
    }

    #[test]
    fn hidden_looks_offline_and_cannot_be_rung() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        let (mut bob, _alice) = bob_watches_alice(&hub, &f, &[Rl], Status::Hdn);
        assert!(bob.drain().is_empty(), "HDN after login sends nothing");
        hub.set_presence(&p("alice@example.com"), online(Status::Nln), TrId(3));
        assert_eq!(bob.drain().len(), 1);
        hub.set_presence(&p("alice@example.com"), online(Status::Hdn), TrId(4));
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Fln { .. })]
        ));
        assert!(!hub.is_visible(&p("alice@example.com")));
        let ring = hub.ring(&p("bob@example.com"), &p("alice@example.com"), || {
            ServerMessage::Fln {
                handle: p("x@example.com"),
            }
        });
        assert_eq!(ring, Err(RingError::Unreachable));
    }

    #[test]
    fn duplicate_login_kicks_old_session_and_old_id_cannot_unregister_new() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        let (mut bob, mut first) = bob_watches_alice(&hub, &f, &[Rl], Status::Nln);
        bob.drain();
        let second = login(&hub, &f, "alice@example.com", &[("bob@example.com", &[Rl])]);
        assert_eq!(first.drain(), vec![Event::Kick(OutReason::Oth)]);
        assert!(matches!(
            bob.drain().as_slice(),
            [Event::Send(ServerMessage::Fln { .. })]
        ));
        hub.unregister(&p("alice@example.com"), first.id);
        assert_eq!(hub.len(), 2, "stale id must not remove the new session");
        hub.unregister(&p("alice@example.com"), second.id);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn full_outbox_closes_only_the_slow_connection() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(1));
        let (slow, _alice) = bob_watches_alice(&hub, &f, &[Rl], Status::Nln);
        assert!(!slow.is_too_slow());
        hub.set_presence(&p("alice@example.com"), online(Status::Awy), TrId(3));
        assert!(slow.is_too_slow());
    }

    #[test]
    fn rl_notification_updates_lists_so_later_presence_reaches_the_new_watcher() {
        let hub = Hub::new();
        let f = Arc::new(OutboxFactory::new(8));
        let mut alice = login(&hub, &f, "alice@example.com", &[]);
        hub.set_presence(&p("alice@example.com"), online(Status::Nln), TrId(1));
        let mut bob = login(&hub, &f, "bob@example.com", &[]);
        hub.set_presence(&p("bob@example.com"), online(Status::Nln), TrId(2));
        // alice adds bob to FL: bob's RL gains alice.
        hub.set_contact_bits(
            &p("alice@example.com"),
            &p("bob@example.com"),
            ListSet::EMPTY.with(Fl),
        );
        let add = ServerMessage::Fln {
            handle: p("alice@example.com"),
        };
        hub.notify_list_change(
            &p("bob@example.com"),
            &p("alice@example.com"),
            ListSet::EMPTY.with(Rl),
            add,
        );
        assert_eq!(bob.drain().len(), 1);
        assert_eq!(
            hub.iln_for(&p("alice@example.com"), &p("bob@example.com"), TrId(5))
                .len(),
            1
        );
        hub.set_presence(&p("bob@example.com"), online(Status::Brb), TrId(6));
        assert!(matches!(
            alice.drain().as_slice(),
            [Event::Send(ServerMessage::Nln {
                status: Status::Brb,
                ..
            })]
        ));
    }
}
