//! Behaviour of the hub as its users see it: presence, privacy, duplicate logins, slow readers.

use std::sync::Arc;

use relive_msnp::server::ServerMessage;
use relive_msnp::types::{
    Blp, ClientCaps, FriendlyName, ListKind, ListSet, OutReason, Passport, Status, TrId,
};

use super::*;

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
        self.rx.is_too_slow()
    }
}

fn login(hub: &Hub, f: &Arc<OutboxFactory>, user: &str, contacts: &[(&str, &[ListKind])]) -> Conn {
    let (outbox, rx) = f.create();
    let id = outbox.id();
    let contacts: Vec<(Passport, ListSet)> = contacts
        .iter()
        .map(|(c, kinds)| (p(c), kinds.iter().fold(ListSet::EMPTY, |s, k| s.with(*k))))
        .collect();
    hub.register(
        &p(user),
        outbox,
        name(user.split('@').next().unwrap()),
        Blp::Al,
        &contacts,
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

/// A waker that asks the hub something when woken: it would deadlock if the hub delivered
/// while holding its lock.
struct AskHub(Arc<Hub>, std::sync::atomic::AtomicUsize);

impl std::task::Wake for AskHub {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let online = self.0.len();
        self.1.store(online, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn fan_out_delivers_after_releasing_the_lock() {
    let hub = Arc::new(Hub::new());
    let f = Arc::new(OutboxFactory::new(8));
    let (mut bob, _alice) = bob_watches_alice(&hub, &f, &[Rl], Status::Nln);
    bob.drain();
    let asker = Arc::new(AskHub(Arc::clone(&hub), 0.into()));
    let waker = std::task::Waker::from(Arc::clone(&asker));
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(bob.rx.poll_recv(&mut cx).is_pending());
    // Waking bob's connection re-enters the hub.
    hub.set_presence(&p("alice@example.com"), online(Status::Bsy), TrId(3));
    assert_eq!(asker.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(matches!(
        bob.drain().as_slice(),
        [Event::Send(ServerMessage::Nln {
            status: Status::Bsy,
            ..
        })]
    ));
}

#[test]
fn handles_are_freed_when_their_last_user_goes_offline() {
    let hub = Hub::new();
    let f = Arc::new(OutboxFactory::new(8));
    let (bob, alice) = bob_watches_alice(&hub, &f, &[Rl], Status::Nln);
    let carol = login(
        &hub,
        &f,
        "carol@example.com",
        &[("dave@example.com", &[Fl])],
    );
    assert_eq!(hub.lock().handles.len(), 4, "alice, bob, carol and dave");
    hub.unregister(&p("carol@example.com"), carol.id);
    assert_eq!(hub.lock().handles.len(), 2, "dave is on nobody's lists now");
    // A duplicate login replaces alice's references instead of adding to them.
    let again = login(&hub, &f, "alice@example.com", &[("bob@example.com", &[Rl])]);
    assert_eq!(hub.lock().handles.len(), 2);
    hub.unregister(&p("alice@example.com"), alice.id);
    hub.unregister(&p("alice@example.com"), again.id);
    hub.unregister(&p("bob@example.com"), bob.id);
    assert_eq!((hub.len(), hub.lock().handles.len()), (0, 0));
}

/// Collects what a clustered hub publishes, to apply it to another hub.
#[derive(Debug, Default)]
struct Collect(std::sync::Mutex<Vec<HubOp>>);

impl Replicate for Collect {
    fn publish(&self, op: HubOp) {
        self.0.lock().unwrap().push(op);
    }

    /// As the cluster layer does: to the holder, with the holder's own id for the session.
    fn forward(&self, op: HubOp) -> bool {
        let own = |c: ConnId| ConnId(c.0 & !ConnId::REMOTE);
        let op = match op {
            HubOp::Kick { user, conn, reason } => HubOp::Kick {
                user,
                conn: own(conn),
                reason,
            },
            HubOp::Send {
                user,
                conn,
                version,
                message,
            } => HubOp::Send {
                user,
                conn: own(conn),
                version,
                message,
            },
            op => op,
        };
        self.0.lock().unwrap().push(op);
        true
    }
}

/// Applies what `from` published to `to`, as the cluster layer does (a session of another
/// node gets a stand-in id there).
fn replay(from: &Collect, to: &Hub) {
    for op in std::mem::take(&mut *from.0.lock().unwrap()) {
        let op = match op {
            HubOp::Register {
                user,
                conn,
                name,
                blp,
                contacts,
            } => HubOp::Register {
                user,
                conn: ConnId(ConnId::REMOTE | conn.0),
                name,
                blp,
                contacts,
            },
            HubOp::Unregister { user, conn } => HubOp::Unregister {
                user,
                conn: ConnId(ConnId::REMOTE | conn.0),
            },
            op => op,
        };
        to.apply(op);
    }
}

#[test]
fn two_clustered_hubs_deliver_each_others_presence_and_rings_only_locally() {
    let (a, b) = (Hub::new(), Hub::new());
    let (ca, cb) = (Arc::new(Collect::default()), Arc::new(Collect::default()));
    assert!(a.set_replica(ca.clone()));
    assert!(b.set_replica(cb.clone()));
    let f = Arc::new(OutboxFactory::new(16));
    let both = [ListKind::Fl, ListKind::Al, ListKind::Rl];
    let mut alice = login(&a, &f, "alice@x.com", &[("bob@x.com", &both)]);
    a.set_presence(&p("alice@x.com"), online(Status::Nln), TrId(1));
    replay(&ca, &b);
    let mut bob = login(&b, &f, "bob@x.com", &[("alice@x.com", &both)]);
    // bob's ILN burst on node B shows alice of node A.
    let iln = b.set_presence(&p("bob@x.com"), online(Status::Bsy), TrId(2));
    assert_eq!(iln.len(), 1, "{iln:?}");
    assert!(bob.drain().is_empty());
    replay(&cb, &a);
    // alice (node A) is told by her own node; node B queued nothing for its stand-in.
    assert!(alice.drain().iter().any(|e| matches!(e,
        Event::Send(ServerMessage::Nln { handle, status: Status::Bsy, .. }) if handle.as_str() == "bob@x.com")));
    // A ring for alice placed on node B travels as an op and is delivered on node A.
    let rng = || ServerMessage::Qng { seconds: 1 };
    assert_eq!(b.ring(&p("bob@x.com"), &p("alice@x.com"), rng), Ok(()));
    replay(&cb, &a);
    assert_eq!(
        alice.drain(),
        vec![Event::Send(ServerMessage::Qng { seconds: 1 })]
    );
    // The snapshot of node A holds only its own session.
    let snapshot = a.local_snapshot();
    assert!(matches!(&snapshot[0], HubOp::Register { user, .. } if user.as_str() == "alice@x.com"));
    assert!(
        snapshot
            .iter()
            .all(|op| !matches!(op, HubOp::Register { user, .. } if user.as_str() == "bob@x.com"))
    );
    // bob logs out on B: alice gets FLN on A.
    b.unregister(&p("bob@x.com"), bob.id);
    replay(&cb, &a);
    assert!(alice.drain().iter().any(|e| matches!(e,
        Event::Send(ServerMessage::Fln { handle }) if handle.as_str() == "bob@x.com")));
}

#[test]
fn notices_for_sessions_of_another_node_are_forwarded_and_delivered_there() {
    let (a, b) = (Hub::new(), Hub::new());
    let (ca, cb) = (Arc::new(Collect::default()), Arc::new(Collect::default()));
    assert!(a.set_replica(ca.clone()));
    assert!(b.set_replica(cb.clone()));
    let f = Arc::new(OutboxFactory::new(16));
    let mut alice = login(&a, &f, "alice@x.com", &[]);
    a.set_dialect(
        &p("alice@x.com"),
        Capabilities::for_version(ProtocolVersion::MSNP7),
    );
    let mut bob = login(&b, &f, "bob@x.com", &[]);
    b.set_dialect(
        &p("bob@x.com"),
        Capabilities::for_version(ProtocolVersion::MSNP9),
    );
    replay(&ca, &b);
    replay(&cb, &a);
    // Each node counts only its own session in its dialect table.
    assert_eq!(
        a.sessions_by_dialect().into_iter().collect::<Vec<_>>(),
        vec![(Some(ProtocolVersion::MSNP7), 1)]
    );
    assert_eq!(a.len(), 2, "the hub itself holds both");

    // A message for bob sent on node A: handed on, nothing queued on A, delivered on B.
    let rea = ServerMessage::Qng { seconds: 7 };
    assert!(a.send_to(&p("bob@x.com"), rea.clone()));
    assert!(alice.drain().is_empty());
    replay(&ca, &b);
    assert_eq!(bob.drain(), vec![Event::Send(rea)]);

    // A broadcast on A reaches alice at once and bob when B applies it; both counted.
    let note = ServerMessage::Qng { seconds: 9 };
    assert_eq!(a.send_to_all(note.clone()), 2);
    assert_eq!(alice.drain(), vec![Event::Send(note.clone())]);
    replay(&ca, &b);
    assert_eq!(bob.drain(), vec![Event::Send(note)]);

    // A kick of bob's session (by its stand-in id on A) ends it on B; a kick naming another
    // session is not forwarded.
    let stand_in = a.conn_of(&p("bob@x.com")).unwrap();
    assert!(stand_in.is_remote());
    assert!(!a.kick(
        &p("bob@x.com"),
        Some(ConnId(ConnId::REMOTE | 999)),
        OutReason::Oth
    ));
    assert!(a.kick(&p("bob@x.com"), Some(stand_in), OutReason::Ssd));
    replay(&ca, &b);
    assert_eq!(bob.drain(), vec![Event::Kick(OutReason::Ssd)]);
    assert!(alice.drain().is_empty());

    // Single node: nothing to forward to.
    let lone = Hub::new();
    assert!(!lone.forward(HubOp::SendAll {
        message: ServerMessage::Qng { seconds: 1 }
    }));
}
