//! Switchboard sessions between real clients: rooms of three, BYE, ACK/NAK, the 1664-byte
//! limit, single-use cookies, destroyed empty rooms.

use anyhow::{bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_tests::sb::{self, expect_msg, send_acked, send_msg, text_payload};
use relive_tests::{MsnpClient, StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

fn is_joi(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Joi { handle, .. } if handle.as_str() == who)
}

fn is_bye(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Bye { handle, .. } if handle.as_str() == who)
}

/// Three online users (MSNP7, empty lists) and alice's room with bob and carol in it.
struct Room {
    stack: TestStack,
    ns: Vec<MsnpClient>,
    alice: MsnpClient,
    bob: MsnpClient,
    carol: MsnpClient,
}

async fn room_of_three() -> anyhow::Result<Room> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut alice_ns, _) = stack.online(7, ALICE, "NLN").await?;
    let (mut bob_ns, _) = stack.online(7, BOB, "NLN").await?;
    let (mut carol_ns, _) = stack.online(7, CAROL, "NLN").await?;
    let mut alice = sb::open(&mut alice_ns, ALICE, "alice_sb").await?;
    let bob = sb::invite(&mut alice, &mut bob_ns, BOB, "bob_sb").await?;
    ensure!(
        matches!(bob.iro.as_slice(), [ServerMessage::Iro { index: 1, total: 1, handle, .. }] if handle.as_str() == ALICE),
        "bob's IRO: {:?}",
        bob.iro
    );
    alice.expect("JOI bob", |m| is_joi(m, BOB)).await?;
    let mut bob = bob.sb;
    let carol = sb::invite(&mut alice, &mut carol_ns, CAROL, "carol_sb").await?;
    // carol is told about both, numbered 1..2 of 2.
    let mut listed: Vec<(u32, u32, String)> = carol
        .iro
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Iro {
                index,
                total,
                handle,
                ..
            } => Some((*index, *total, handle.as_str().to_owned())),
            _ => None,
        })
        .collect();
    listed.sort();
    let (mut handles, numbers): (Vec<_>, Vec<_>) =
        listed.into_iter().map(|(i, n, h)| (h, (i, n))).unzip();
    handles.sort();
    ensure!(
        handles == [ALICE, BOB] && numbers == [(1, 2), (2, 2)],
        "carol's IRO: {:?}",
        carol.iro
    );
    alice.expect("JOI carol", |m| is_joi(m, CAROL)).await?;
    bob.expect("JOI carol", |m| is_joi(m, CAROL)).await?;
    Ok(Room {
        stack,
        ns: vec![alice_ns, bob_ns, carol_ns],
        alice,
        bob,
        carol: carol.sb,
    })
}

#[tokio::test]
async fn a_group_chat_of_three_with_bye_and_nak() -> anyhow::Result<()> {
    let Room {
        stack,
        ns: _ns,
        mut alice,
        mut bob,
        mut carol,
    } = room_of_three().await?;
    // Mode A: both others get the identical payload; alice gets ACK.
    let hello = text_payload("Hello both");
    send_acked(&mut alice, ALICE, &mut [&mut bob, &mut carol], &hello).await?;
    // Mode N and U: no reply to the sender; relayed to the others.
    let hi = text_payload("Hi from bob");
    send_msg(&mut bob, "N", &hi).await?;
    expect_msg(&mut alice, BOB, &hi).await?;
    expect_msg(&mut carol, BOB, &hi).await?;
    let typing = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: carol@example.com\r\n\r\n\r\n";
    send_msg(&mut carol, "U", typing).await?;
    expect_msg(&mut alice, CAROL, typing).await?;
    expect_msg(&mut bob, CAROL, typing).await?;
    // bob got nothing for his N message: the next thing he sees is carol's.
    // carol leaves.
    carol.send_line("OUT").await?;
    carol.expect_closed().await?;
    alice.expect("BYE carol", |m| is_bye(m, CAROL)).await?;
    bob.expect("BYE carol", |m| is_bye(m, CAROL)).await?;
    // Two left: still a conversation.
    send_acked(&mut bob, BOB, &mut [&mut alice], &text_payload("just us")).await?;
    // bob drops the connection without OUT: alice is told.
    drop(bob);
    alice.expect("BYE bob", |m| is_bye(m, BOB)).await?;
    // Alone: A and N are NAKed, U is not answered.
    let t = send_msg(&mut alice, "A", &text_payload("anyone?")).await?;
    alice.expect_line(&format!("NAK {t}")).await?;
    let t = send_msg(&mut alice, "N", &text_payload("anyone??")).await?;
    alice.expect_line(&format!("NAK {t}")).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_oversize_message_closes_only_its_sender() -> anyhow::Result<()> {
    let Room {
        stack,
        ns: _ns,
        mut alice,
        mut bob,
        mut carol,
    } = room_of_three().await?;
    // 1664 bytes is the largest allowed payload.
    let mut max = text_payload("");
    max.resize(1664, b'x');
    send_acked(&mut alice, ALICE, &mut [&mut bob, &mut carol], &max).await?;
    // 1665 closes alice's connection without relaying anything.
    let mut over = max.clone();
    over.push(b'y');
    send_msg(&mut alice, "A", &over).await?;
    alice.expect_closed().await?;
    bob.expect("BYE alice", |m| is_bye(m, ALICE)).await?;
    carol.expect("BYE alice", |m| is_bye(m, ALICE)).await?;
    // bob and carol carry on.
    send_acked(
        &mut bob,
        BOB,
        &mut [&mut carol],
        &text_payload("still here"),
    )
    .await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_unknown_ack_mode_closes_the_connection() -> anyhow::Result<()> {
    let Room {
        stack,
        ns: _ns,
        mut alice,
        mut bob,
        mut carol,
    } = room_of_three().await?;
    send_msg(&mut alice, "X", &text_payload("bad mode")).await?;
    alice.expect_closed().await?;
    bob.expect("BYE alice", |m| is_bye(m, ALICE)).await?;
    carol.expect("BYE alice", |m| is_bye(m, ALICE)).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn cookies_are_single_use_and_bound_to_their_user() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut alice_ns, _) = stack.online(7, ALICE, "NLN").await?;
    let (mut bob_ns, _) = stack.online(7, BOB, "NLN").await?;
    // An XFR cookie presented by someone else fails (and may be burnt; a fresh one is used
    // below).
    let stolen = sb::request_sb(&mut alice_ns).await?;
    let mut thief = stack.connect_sb("thief").await?;
    thief
        .send_line(&format!("USR 1 {BOB} {}", stolen.cookie))
        .await?;
    thief.expect_line("911 1").await?;
    thief.expect_closed().await?;
    // The rightful owner uses a cookie once …
    let ticket = sb::request_sb(&mut alice_ns).await?;
    ensure!(
        ticket.cookie != stolen.cookie,
        "XFR handed out the same cookie twice"
    );
    let mut alice_sb = MsnpClient::connect(
        ticket.addr,
        relive_msnp::client::Role::Switchboard,
        "alice_sb",
    )
    .await?;
    alice_sb
        .send_line(&format!("USR 1 {ALICE} {}", ticket.cookie))
        .await?;
    alice_sb
        .expect("USR 1 OK", |m| matches!(m, ServerMessage::SbUsrOk { .. }))
        .await?;
    // … and only once.
    let mut again = stack.connect_sb("again").await?;
    again
        .send_line(&format!("USR 1 {ALICE} {}", ticket.cookie))
        .await?;
    again.expect_line("911 1").await?;
    again.expect_closed().await?;
    // An RNG cookie works once, and differs from the XFR cookie.
    let session = sb::call(&mut alice_sb, BOB).await?;
    let rng = sb::ring(&mut bob_ns, session).await?;
    ensure!(rng.cookie != ticket.cookie, "RNG reused the XFR cookie");
    let ans = format!("ANS 1 {BOB} {} {session}", rng.cookie);
    let mut bob_sb = stack.connect_sb("bob_sb").await?;
    bob_sb.send_line(&ans).await?;
    bob_sb
        .wait_for("ANS 1 OK", |m| matches!(m, ServerMessage::AnsOk { .. }))
        .await?;
    let mut replay = stack.connect_sb("replay").await?;
    replay.send_line(&ans).await?;
    replay.expect_line("911 1").await?;
    replay.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_empty_room_is_gone() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut alice_ns, _) = stack.online(7, ALICE, "NLN").await?;
    let (mut bob_ns, _) = stack.online(7, BOB, "NLN").await?;
    let mut alice_sb = sb::open(&mut alice_ns, ALICE, "alice_sb").await?;
    let session = sb::call(&mut alice_sb, BOB).await?;
    let rng = sb::ring(&mut bob_ns, session).await?;
    // alice leaves before bob answers: the room is empty and destroyed.
    alice_sb.send_line("OUT").await?;
    alice_sb.expect_closed().await?;
    let mut bob_sb = stack.connect_sb("bob_sb").await?;
    bob_sb
        .send_line(&format!("ANS 1 {BOB} {} {session}", rng.cookie))
        .await?;
    match bob_sb.recv().await {
        Err(e) if e.to_string().contains("closed by the server") => {}
        Ok(ServerMessage::Error { .. }) => {}
        Ok(other) => bail!("joined a destroyed room: {other:?}"),
        Err(e) => return Err(e),
    }
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_sb_connection_that_never_authenticates_is_closed() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().sb_auth_timeout(1)).await?;
    let (mut alice_ns, _) = stack.online(7, ALICE, "NLN").await?;
    let mut alice_sb = sb::open(&mut alice_ns, ALICE, "alice_sb").await?;
    // Silent connection: closed after the (1 s) limit.
    let mut silent = stack.connect_sb("silent").await?;
    silent.expect_closed().await?;
    // alice authenticated before the silent one connected, so more than the limit ago; her
    // session is still served (alone: NAK).
    let t = send_msg(&mut alice_sb, "A", &text_payload("still open?")).await?;
    alice_sb.expect_line(&format!("NAK {t}")).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn with_the_relay_on_an_accept_keeps_everything_but_addresses() -> anyhow::Result<()> {
    // Transcript 13: "A relaying server MAY rewrite IP-Address/Port/PortX here (recompute the
    // MSG length); AuthCookie must pass unchanged."
    let stack = TestStack::start(StackOptions::cast().relay(true)).await?;
    let (mut alice_ns, _) = stack.online(7, ALICE, "NLN").await?;
    let (mut bob_ns, _) = stack.online(7, BOB, "NLN").await?;
    let mut alice = sb::open(&mut alice_ns, ALICE, "alice_sb").await?;
    let mut bob = sb::invite(&mut alice, &mut bob_ns, BOB, "bob_sb").await?.sb;
    alice.expect("JOI bob", |m| is_joi(m, BOB)).await?;
    let invite = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
        Application-Name: File Transfer\r\nApplication-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n\
        Invitation-Command: INVITE\r\nInvitation-Cookie: 123456\r\nApplication-File: notes.txt\r\n\
        Application-FileSize: 11\r\n\r\n";
    send_msg(&mut alice, "N", invite.as_bytes()).await?;
    bob.wait_for("the INVITE", |m| matches!(m, ServerMessage::Msg { .. }))
        .await?;
    let accept = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
        Invitation-Command: ACCEPT\r\nInvitation-Cookie: 123456\r\nIP-Address: 203.0.113.5\r\n\
        IP-Address-Internal: 192.168.1.10\r\nPort: 6891\r\nPortX: 11178\r\nAuthCookie: 98765\r\n\
        Launch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n";
    send_msg(&mut alice, "N", accept.as_bytes()).await?;
    // The decoder checks the MSG length against the bytes that follow it.
    let got = match bob.recv().await? {
        ServerMessage::Msg { from, payload, .. } if from.as_str() == ALICE => payload,
        other => bail!("expected alice's ACCEPT, got {other:?}"),
    };
    let got = String::from_utf8(got.to_vec())?;
    let is_address = |l: &&str| {
        [
            "IP-Address:",
            "IP-Address-Internal:",
            "Port:",
            "PortX:",
            "PortX-Internal:",
        ]
        .iter()
        .any(|p| l.starts_with(p))
            && *l != "Request-Data: IP-Address:"
    };
    let kept = |s: &str| -> Vec<String> {
        s.split("\r\n")
            .filter(|l| !is_address(l))
            .map(str::to_owned)
            .collect()
    };
    ensure!(
        kept(&got) == kept(accept),
        "non-address lines changed:\n{got}"
    );
    ensure!(
        got.contains("\r\nAuthCookie: 98765\r\n"),
        "AuthCookie changed:\n{got}"
    );
    stack.shutdown().await?;
    Ok(())
}
