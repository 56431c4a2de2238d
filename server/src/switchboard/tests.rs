//! Tests of the switchboard: service level (real hub and NS sessions, no sockets), following
//! transcripts 08 and 09, plus the auth timeout through the driver under paused time.

use std::time::Duration;

use bytes::Bytes;
use relive_msnp::types::Passport;

use super::*;
use crate::Context;
use crate::notification::NsService;
use crate::testing::{Harness, account, context};

/// The cookie at the end of an `XFR ... CKI <cookie>` line, or in an `RNG` line.
/// A room participant with no client caps.
fn who(handle: &str, name: &str) -> Participant {
    Participant {
        user: Passport::parse(handle).unwrap(),
        name: relive_msnp::types::FriendlyName::parse(name).unwrap(),
        caps: relive_msnp::types::ClientCaps(0),
    }
}

fn cookie_of(line: &str, after: &str) -> String {
    let rest = line.split(after).nth(1).unwrap();
    rest.split(' ').next().unwrap().to_owned()
}

struct World {
    ctx: Context,
    ns: Vec<Harness<NsService>>,
}

/// Users alice, bob and carol logged in on the NS (MSNP8-free: MSNP7), online and allowed.
async fn world(dir: &std::path::Path) -> World {
    let ctx = context(dir, |_| {}).await;
    let mut ns = Vec::new();
    for (h, n) in [
        ("alice@example.com", "Alice"),
        ("bob@example.com", "Bob"),
        ("carol@example.com", "Carol"),
    ] {
        let t = account(&ctx, h, n).await;
        ns.push(Harness::login(&ctx, "MSNP7", h, &t).await);
    }
    World { ctx, ns }
}

impl World {
    /// Opens alice's room: XFR on her NS, USR on a new SB connection.
    async fn open_room(&mut self, who: usize, handle: &str) -> Harness<SbService> {
        let xfr = self.ns[who].send("XFR 20 SB").await;
        let cookie = cookie_of(&xfr[0], "CKI ");
        let mut sb = Harness::sb(&self.ctx);
        let name = self
            .ctx
            .hub
            .name_of(&Passport::parse(handle).unwrap())
            .unwrap();
        assert_eq!(
            sb.send(&format!("USR 1 {handle} {cookie}")).await,
            [format!("USR 1 OK {handle} {name}")]
        );
        sb
    }

    /// `CAL` from `caller` and `ANS` by `callee` (index into `ns`); returns the callee's SB.
    async fn invite(
        &mut self,
        caller: &mut Harness<SbService>,
        trid: u32,
        callee: usize,
        handle: &str,
    ) -> (Harness<SbService>, Vec<String>) {
        let cal = caller.send(&format!("CAL {trid} {handle}")).await;
        let session = cal[0]
            .strip_prefix(&format!("CAL {trid} RINGING "))
            .unwrap()
            .to_owned();
        let rng = self.ns[callee].events();
        assert_eq!(rng.len(), 1, "{rng:?}");
        assert!(rng[0].starts_with(&format!("RNG {session} 127.0.0.1:1864 CKI ")));
        let cookie = cookie_of(&rng[0], "CKI ");
        let mut sb = Harness::sb(&self.ctx);
        let lines = sb.send(&format!("ANS 1 {handle} {cookie} {session}")).await;
        (sb, lines)
    }
}

#[tokio::test]
async fn invite_join_messages_acks_and_bye() {
    // Transcript 08.
    let dir = tempfile::tempdir().unwrap();
    let mut w = world(dir.path()).await;
    let mut alice = w.open_room(0, "alice@example.com").await;
    let xfr_cookie_reuse = {
        let xfr = w.ns[0].send("XFR 21 SB").await;
        cookie_of(&xfr[0], "CKI ")
    };
    let (mut bob, lines) = w.invite(&mut alice, 2, 1, "bob@example.com").await;
    assert_eq!(lines, ["IRO 1 1 1 alice@example.com Alice", "ANS 1 OK"]);
    assert_eq!(alice.events(), ["JOI bob@example.com Bob"]);

    // U: relayed, no reply. The recipient gets the sender's exact bytes, shared not copied.
    let typing = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: alice@example.com\r\n\r\n";
    assert!(alice.send_payload("MSG 3 U", typing).await.is_empty());
    assert_eq!(
        bob.events(),
        [
            format!("MSG alice@example.com Alice {}", typing.len()),
            typing.to_owned()
        ]
    );
    // A: ACK after delivery.
    let text = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nHello";
    assert_eq!(alice.send_payload("MSG 4 A", text).await, ["ACK 4"]);
    assert_eq!(bob.events()[1], text);
    // N: nothing back on success.
    assert!(bob.send_payload("MSG 2 N", "hi").await.is_empty());
    assert_eq!(alice.events(), ["MSG bob@example.com Bob 2", "hi"]);
    // Bob leaves: Alice gets BYE; alone, her A message is NAKed.
    assert!(bob.send("OUT").await.is_empty());
    bob.finish();
    assert_eq!(alice.events(), ["BYE bob@example.com"]);
    assert_eq!(alice.send_payload("MSG 5 A", "x").await, ["NAK 5"]);
    assert_eq!(alice.send_payload("MSG 6 N", "x").await, ["NAK 6"]);
    assert!(alice.send("OUT").await.is_empty());
    alice.finish();
    assert_eq!(
        w.ctx.switchboards.room_count(),
        0,
        "empty rooms are destroyed"
    );
    // The second XFR cookie is still good once; the used one is not.
    let mut again = Harness::sb(&w.ctx);
    assert!(
        again
            .send(&format!("USR 1 alice@example.com {xfr_cookie_reuse}"))
            .await[0]
            .starts_with("USR 1 OK")
    );
    let mut twice = Harness::sb(&w.ctx);
    assert_eq!(
        twice
            .send(&format!("USR 1 alice@example.com {xfr_cookie_reuse}"))
            .await,
        ["911 1"]
    );
    assert!(twice.is_closed());
}

#[tokio::test]
async fn relayed_payload_is_the_same_allocation_for_every_recipient() {
    let members_payload = Bytes::from_static(b"hello there");
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let sbs = Switchboards::new();
    let p = |s: &str| Passport::parse(s).unwrap();
    let n = |s: &str| relive_msnp::types::FriendlyName::parse(s).unwrap();
    let mut rxs = Vec::new();
    let mut outboxes = Vec::new();
    for _ in 0..3 {
        let (o, rx) = ctx.outboxes.create();
        outboxes.push(o);
        rxs.push(rx);
    }
    let room = sbs.create_room(
        &who("a@example.com", "A"),
        outboxes[0].clone(),
        Seat::default(),
    );
    sbs.join(
        room,
        &who("b@example.com", "B"),
        outboxes[1].clone(),
        Seat::default(),
    )
    .unwrap();
    sbs.join(
        room,
        &who("c@example.com", "C"),
        outboxes[2].clone(),
        Seat::default(),
    )
    .unwrap();
    for rx in &mut rxs {
        while rx.try_recv().is_ok() {} // the JOIs
    }
    let d = sbs.relay(
        room,
        outboxes[0].id(),
        &p("a@example.com"),
        &n("A"),
        &members_payload,
    );
    assert!(d.complete() && d.recipients == 2);
    assert!(rxs[0].try_recv().is_err(), "no echo to the sender");
    for rx in &mut rxs[1..] {
        let Ok(Event::Send(ServerMessage::Msg { payload: got, .. })) = rx.try_recv() else {
            panic!("no MSG relayed");
        };
        assert_eq!(got, members_payload);
        assert_eq!(got.as_ptr(), members_payload.as_ptr(), "shared, not copied");
    }
}

#[tokio::test]
async fn cal_errors_bad_cookie_nak_and_bad_ack_mode() {
    // Transcript 09.
    let dir = tempfile::tempdir().unwrap();
    let mut w = world(dir.path()).await;
    let mut mallory = Harness::sb(&w.ctx);
    assert_eq!(
        mallory.send("USR 1 mallory@example.com 1111.2222").await,
        ["911 1"]
    );
    assert!(mallory.is_closed());
    // Carol goes offline.
    w.ns[2].finish();
    let mut alice = w.open_room(0, "alice@example.com").await;
    assert_eq!(alice.send("CAL 2 carol@example.com").await, ["217 2"]);
    assert_eq!(alice.send("CAL 3 not-an-address").await, ["208 3"]);
    assert_eq!(alice.send("CAL 4 nobody@example.com").await, ["217 4"]);
    let ring = alice.send("CAL 5 bob@example.com").await;
    assert!(ring[0].starts_with("CAL 5 RINGING "));
    assert_eq!(alice.send("CAL 6 bob@example.com").await, ["215 6"]);
    assert_eq!(alice.send("CAL 7 alice@example.com").await, ["215 7"]);
    // Bob has not answered: nobody to deliver to.
    assert_eq!(alice.send_payload("MSG 8 A", "x").await, ["NAK 8"]);
    // D needs MSNP9; this session is MSNP7.
    assert!(alice.send_payload("MSG 9 D", "x").await.is_empty());
    assert!(alice.is_closed());
    let mut alice = w.open_room(0, "alice@example.com").await;
    assert!(alice.send_payload("MSG 7 a", "abcd").await.is_empty());
    assert!(alice.is_closed());
    // The RNG cookie for Bob cannot open a room of his own, nor join with another handle.
    let rng = w.ns[1].events();
    let cookie = cookie_of(&rng[0], "CKI ");
    let mut bob = Harness::sb(&w.ctx);
    assert_eq!(
        bob.send(&format!("USR 1 bob@example.com {cookie}")).await,
        ["911 1"]
    );
}

#[tokio::test]
async fn blocked_or_hidden_callee_is_217_and_hidden_caller_is_913() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = world(dir.path()).await;
    let mut alice = w.open_room(0, "alice@example.com").await;
    // Bob blocks Alice: she cannot ring him.
    w.ns[1].send("ADD 30 BL alice@example.com Alice").await;
    assert_eq!(alice.send("CAL 2 bob@example.com").await, ["217 2"]);
    // Carol hides: same answer.
    w.ns[2].send("CHG 31 HDN").await;
    assert_eq!(alice.send("CAL 3 carol@example.com").await, ["217 3"]);
    // Alice hides: she may not invite anybody.
    w.ns[0].send("CHG 32 HDN").await;
    assert_eq!(alice.send("CAL 4 carol@example.com").await, ["913 4"]);
    assert!(w.ns[1].events().is_empty() && w.ns[2].events().is_empty());
}

#[tokio::test]
async fn group_chat_of_three() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = world(dir.path()).await;
    let mut alice = w.open_room(0, "alice@example.com").await;
    let (mut bob, _) = w.invite(&mut alice, 2, 1, "bob@example.com").await;
    let (mut carol, lines) = w.invite(&mut alice, 3, 2, "carol@example.com").await;
    assert_eq!(
        lines,
        [
            "IRO 1 1 2 alice@example.com Alice",
            "IRO 1 2 2 bob@example.com Bob",
            "ANS 1 OK"
        ]
    );
    assert_eq!(
        alice.events(),
        ["JOI bob@example.com Bob", "JOI carol@example.com Carol"]
    );
    assert_eq!(bob.events(), ["JOI carol@example.com Carol"]);
    assert_eq!(carol.send_payload("MSG 2 A", "hey all").await, ["ACK 2"]);
    assert_eq!(alice.events(), ["MSG carol@example.com Carol 7", "hey all"]);
    assert_eq!(bob.events(), ["MSG carol@example.com Carol 7", "hey all"]);
    // Carol's connection drops without OUT.
    carol.finish();
    assert_eq!(alice.events(), ["BYE carol@example.com"]);
    assert_eq!(bob.events(), ["BYE carol@example.com"]);
    assert_eq!(w.ctx.switchboards.room_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn unauthenticated_sb_connection_is_closed_after_the_auth_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let (mut client, server) = tokio::io::duplex(64);
    let (outbox, events) = ctx.outboxes.create();
    let svc = SbService::new(std::sync::Arc::new(ctx.clone()), outbox);
    let start = tokio::time::Instant::now();
    let driver = tokio::spawn(crate::net::conn::Connection::new(server, svc, events));
    let mut buf = [0u8; 16];
    let n = tokio::io::AsyncReadExt::read(&mut client, &mut buf)
        .await
        .unwrap();
    assert_eq!(n, 0, "closed without a word");
    let waited = start.elapsed();
    assert!(
        waited >= ctx.settings.sb_auth_timeout
            && waited < ctx.settings.sb_auth_timeout + Duration::from_secs(1),
        "{waited:?}"
    );
    driver.await.unwrap();
}

/// Two members behind different NATs (MSN 5, public addresses), the relay on with rendezvous:
/// a plain text message still passes as the same bytes; the file sender's INVITE passes; the
/// receiver's plain ACCEPT becomes a `Sender-Connect` ACCEPT for the sender and a synthesized
/// listener ACCEPT back to the receiver, naming two different relay ports.
#[tokio::test]
async fn relay_rewrites_an_msnftp_rendezvous_in_the_fan_out() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let relay_config = crate::relay::RelayConfig {
        public_ip: Some("127.0.0.1".parse().unwrap()),
        bind_ip: Some("127.0.0.1".parse().unwrap()),
        port_min: 0,
        port_max: 0,
        msnftp_rendezvous: true,
        ..crate::relay::RelayConfig::default()
    };
    let settings = relay_config.validate("relay.example").unwrap();
    let tasks = tokio_util::task::TaskTracker::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = crate::relay::Relay::start(
        &settings,
        dir.path(),
        "relay.example",
        &crate::relay::StoreAuth::new(ctx.store.clone(), ctx.passport.clone()),
        None,
        &tasks,
        &stop,
    )
    .unwrap()
    .unwrap();
    let sbs = Switchboards::new();
    sbs.set_relay(Some(std::sync::Arc::new(relay)));
    let p = |s: &str| Passport::parse(s).unwrap();
    let n = |s: &str| relive_msnp::types::FriendlyName::parse(s).unwrap();
    let caps = relive_msnp::version::Capabilities::for_version(
        relive_msnp::version::ProtocolVersion::MSNP8,
    );
    // Both dial the relay from loopback in this test; the server saw them at these addresses.
    let seat = |ip: &str| Seat::new(Some(ip.parse().unwrap()), &caps);
    let (a_out, mut a_rx) = ctx.outboxes.create();
    let (b_out, mut b_rx) = ctx.outboxes.create();
    let room = sbs.create_room(
        &who("a@example.com", "A"),
        a_out.clone(),
        seat("203.0.113.11"),
    );
    sbs.join(
        room,
        &who("b@example.com", "B"),
        b_out.clone(),
        seat("198.51.100.12"),
    )
    .unwrap();
    while a_rx.try_recv().is_ok() {} // the JOI
    let next = |rx: &mut crate::hub::Inbox| match rx.try_recv() {
        Ok(Event::Send(ServerMessage::Msg { from, payload, .. })) => (from.to_string(), payload),
        other => panic!("expected a MSG, got {other:?}"),
    };

    let text = Bytes::from_static(
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi",
    );
    assert!(
        sbs.relay(room, a_out.id(), &p("a@example.com"), &n("A"), &text)
            .complete()
    );
    let (_, got) = next(&mut b_rx);
    assert_eq!(
        got.as_ptr(),
        text.as_ptr(),
        "untouched messages are not copied"
    );

    let head = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n";
    let invite = Bytes::from(format!(
        "{head}Application-Name: File Transfer\r\nApplication-GUID: {{5D3E02AB-6190-11d3-BBBB-00C04F795683}}\r\n\
         Invitation-Command: INVITE\r\nInvitation-Cookie: 77\r\nApplication-File: f.bin\r\n\
         Application-FileSize: 10\r\n\r\n"
    ));
    assert!(
        sbs.relay(room, a_out.id(), &p("a@example.com"), &n("A"), &invite)
            .complete()
    );
    assert_eq!(next(&mut b_rx).1, invite);

    let accept = Bytes::from(format!(
        "{head}Invitation-Command: ACCEPT\r\nInvitation-Cookie: 77\r\nLaunch-Application: FALSE\r\n\
         Request-Data: IP-Address:\r\n\r\n"
    ));
    assert!(
        sbs.relay(room, b_out.id(), &p("b@example.com"), &n("B"), &accept)
            .complete()
    );
    // The sender: a Sender-Connect ACCEPT naming the relay, with a correct length (the
    // encoder writes it from the payload it gets).
    let (from, to_a) = next(&mut a_rx);
    assert_eq!(from, "b@example.com");
    let to_a = String::from_utf8(to_a.to_vec()).unwrap();
    assert!(to_a.contains("Sender-Connect: TRUE\r\n"), "{to_a}");
    assert!(to_a.contains("IP-Address: 127.0.0.1\r\n"), "{to_a}");
    // The receiver: a synthesized ACCEPT "from the sender" pointing it at the other port.
    let (from, to_b) = next(&mut b_rx);
    assert_eq!(from, "a@example.com");
    let to_b = String::from_utf8(to_b.to_vec()).unwrap();
    assert!(to_b.contains("IP-Address: 127.0.0.1\r\n"), "{to_b}");
    let port = |s: &str| -> u16 {
        s.lines()
            .find_map(|l| l.strip_prefix("Port: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_ne!(port(&to_a), port(&to_b));
    assert!(a_rx.try_recv().is_err() && b_rx.try_recv().is_err());
    stop.cancel();
}

#[test]
fn only_invitations_and_p2p_messages_are_offered_to_the_rewriter() {
    use super::may_need_rewriting;
    let text = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\
                 X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\nhi";
    let typing =
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: a@b.c\r\n\r\n\r\n";
    assert!(!may_need_rewriting(text));
    assert!(!may_need_rewriting(typing));
    assert!(may_need_rewriting(
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nInvitation-Command: INVITE\r\n"
    ));
    assert!(may_need_rewriting(
        b"MIME-Version: 1.0\r\ncontent-type: APPLICATION/X-MSNMSGRP2P\r\nP2P-Dest: a@b.c\r\n\r\n"
    ));
    // Beyond the head window, or a payload too large to inspect: not offered.
    let mut late = vec![b'a'; 2000];
    late.extend_from_slice(b"Content-Type: text/x-msmsgsinvite\r\n\r\n");
    assert!(!may_need_rewriting(&late));
    let mut huge = b"Content-Type: text/x-msmsgsinvite\r\n\r\n".to_vec();
    huge.resize(relive_relay::rewrite::MAX_INSPECTED_PAYLOAD + 1, b'x');
    assert!(!may_need_rewriting(&huge));
}

/// What [`Switchboards::ring_pager`] delivers in these tests: one payload for page `id`.
fn delivery(account: i64, id: i64) -> PagerDelivery {
    PagerDelivery {
        account: AccountId(account),
        messages: vec![Bytes::from_static(b"page")],
        page_ids: vec![id],
    }
}

#[tokio::test]
async fn a_pager_room_waits_for_its_user_drops_what_it_hears_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let sbs = Switchboards::new();
    let (bob, carol) = (
        who("bob@example.com", "Bob"),
        who("carol@example.com", "Carol"),
    );
    let pager = who(relive_msnp::pager::VIRTUAL_HANDLE, "Pager");
    let caps = Capabilities::for_version(relive_msnp::version::ProtocolVersion::MSNP5);
    let now = Instant::now();
    let (first, first_cookie) = sbs.ring_pager(pager.clone(), &bob, caps, delivery(1, 1), now);
    // Bob rung again (a new login): the unanswered room is replaced, its cookie finds it gone.
    let (_, cookie) = sbs.ring_pager(pager.clone(), &bob, caps, delivery(1, 2), now);
    assert_eq!(sbs.room_count(), 1);
    let old = sbs.redeem(&first_cookie, &bob.user, now).unwrap();
    assert_eq!(old.purpose, Purpose::Join(first));
    let (o, mut rx) = ctx.outboxes.create();
    assert_eq!(
        sbs.join(first, &bob, o.clone(), Seat::default()),
        Err(JoinError::Gone)
    );
    // The new cookie is bob's, for the new room; IRO names the virtual contact.
    assert!(sbs.redeem(&cookie, &carol.user, now).is_none(), "burnt");
    let (_, cookie) = sbs.ring_pager(pager.clone(), &bob, caps, delivery(1, 2), now);
    let grant = sbs.redeem(&cookie, &bob.user, now).unwrap();
    let Purpose::Join(room) = grant.purpose else {
        panic!("{grant:?}")
    };
    assert_eq!(grant.caps, caps);
    assert!(sbs.is_present_or_invited(room, &bob.user));
    let present = sbs.join(room, &bob, o.clone(), Seat::default()).unwrap();
    assert_eq!(present, vec![pager.clone()]);
    // What bob tells it counts as delivered and goes nowhere (no echo, no history).
    let said = Bytes::from_static(b"MIME-Version: 1.0\r\n\r\nhello pager");
    assert!(
        sbs.relay(room, o.id(), &bob.user, &bob.name, &said)
            .complete()
    );
    assert!(rx.try_recv().is_err());
    // Only bob takes the pages, once; then the contact is gone and a MSG is NAKed.
    assert!(sbs.take_pager(room, &carol.user).is_none());
    assert_eq!(
        sbs.take_pager(room, &bob.user),
        Some((pager.clone(), delivery(1, 2)))
    );
    assert!(sbs.take_pager(room, &bob.user).is_none());
    assert!(
        !sbs.relay(room, o.id(), &bob.user, &bob.name, &said)
            .complete()
    );
    // Carol never answers: her room goes once the cookie lifetime is over (bob's, with bob
    // in it, stays).
    let _ = sbs.ring_pager(pager.clone(), &carol, caps, delivery(2, 3), now);
    assert_eq!(sbs.room_count(), 2);
    let dave = who("dave@example.com", "Dave");
    let (dave_room, _) = sbs.ring_pager(pager, &dave, caps, delivery(3, 4), now + COOKIE_LIFETIME);
    assert_eq!(sbs.room_count(), 2);
    assert!(sbs.is_present_or_invited(room, &bob.user));
    assert!(sbs.is_present_or_invited(dave_room, &dave.user));
}

/// Bob (allowing pages) has one page from alice waiting: his account and the page's id.
async fn page_for_bob(ctx: &Context) -> (AccountId, i64) {
    let mut accounts = Vec::new();
    for (handle, name) in [("alice@example.com", "Alice"), ("bob@example.com", "Bob")] {
        account(ctx, handle, name).await;
        let handle = Passport::parse(handle).unwrap();
        accounts.push(ctx.store.account(&handle).await.unwrap().unwrap());
    }
    let (alice, bob) = (&accounts[0], &accounts[1]);
    ctx.store
        .set_phone(bob.id, crate::store::PhoneProp::Mob, Some("Y"))
        .await
        .unwrap();
    let page = crate::store::pages::NewPage {
        text: "hi".to_owned(),
        callback: None,
    };
    let (_, id) = ctx
        .store
        .send_page(alice.id, &alice.email, &bob.email, page)
        .await
        .unwrap()
        .unwrap();
    (bob.id, id)
}

/// Through the driver over a 64-byte pipe: the page is marked delivered only once the socket
/// took the virtual contact's messages; a client that goes away first keeps it waiting.
#[tokio::test]
async fn pages_are_marked_delivered_only_once_written() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for reads in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), |_| {}).await;
        let (bob, id) = page_for_bob(&ctx).await;
        let pending = || async { ctx.store.pending_pages(bob).await.unwrap().len() };
        let big = Bytes::from(vec![b'x'; 4096]);
        let (session, cookie) = ctx.switchboards.ring_pager(
            who(relive_msnp::pager::VIRTUAL_HANDLE, "Pager"),
            &who("bob@example.com", "Bob"),
            Capabilities::for_version(relive_msnp::version::ProtocolVersion::MSNP5),
            PagerDelivery {
                account: bob,
                messages: vec![big],
                page_ids: vec![id],
            },
            Instant::now(),
        );
        let (client, server) = tokio::io::duplex(64);
        let (outbox, inbox) = ctx.outboxes.create();
        let svc = SbService::new(std::sync::Arc::new(ctx.clone()), outbox);
        let driver = tokio::spawn(crate::net::conn::Connection::new(server, svc, inbox));
        let (mut r, mut w) = tokio::io::split(client);
        w.write_all(format!("ANS 1 bob@example.com {cookie} {}\r\n", session.0).as_bytes())
            .await
            .unwrap();
        // 4 KiB do not fit the pipe: not written yet, so not delivered.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pending().await, 1);
        if reads {
            let end = b"BYE pager@pager.invalid\r\n";
            let mut got = Vec::new();
            while !got.ends_with(end) {
                let mut b = [0u8; 1024];
                let n = r.read(&mut b).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&b[..n]);
            }
            tokio::time::timeout(Duration::from_secs(20), async {
                while pending().await != 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the page was never marked delivered");
            drop((r, w));
        } else {
            drop((r, w));
        }
        tokio::time::timeout(Duration::from_secs(20), driver)
            .await
            .unwrap()
            .unwrap();
        if !reads {
            // Give a (wrong) marking task the time it would need.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(pending().await, 1, "marked delivered without being written");
        }
    }
}
