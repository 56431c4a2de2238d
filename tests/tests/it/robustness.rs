//! Awkward and hostile clients: commands split into single bytes, garbage, oversized lines,
//! and a reader that never reads while others keep talking.

use anyhow::ensure;
use relive_msnp::auth::md5_response;
use relive_msnp::server::ServerMessage;
use relive_tests::sb::{self, send_msg, text_payload};
use relive_tests::{MsnpClient, StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

async fn send_bytewise(c: &mut MsnpClient, line: &str) -> anyhow::Result<()> {
    for b in format!("{line}\r\n").bytes() {
        c.send_raw(&[b]).await?;
    }
    Ok(())
}

#[tokio::test]
async fn commands_written_one_byte_at_a_time() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut c = stack.connect_ns("alice_bytewise").await?;
    send_bytewise(&mut c, "VER 1 MSNP7 MSNP6 CVR0").await?;
    c.set_version(relive_msnp::version::ProtocolVersion::MSNP7);
    c.expect("VER 1 MSNP7", |m| matches!(m, ServerMessage::Ver { .. }))
        .await?;
    send_bytewise(&mut c, "INF 2").await?;
    c.expect_line("INF 2 MD5").await?;
    send_bytewise(&mut c, &format!("USR 3 MD5 I {ALICE}")).await?;
    let salt = match c.recv().await? {
        ServerMessage::UsrChallenge {
            challenge: Some(s), ..
        } => s.as_str().to_owned(),
        other => anyhow::bail!("expected the challenge, got {other:?}"),
    };
    send_bytewise(
        &mut c,
        &format!("USR 4 MD5 S {}", md5_response(&salt, stack.token(ALICE))),
    )
    .await?;
    c.expect_line(&format!("USR 4 OK {ALICE} Alice 1")).await?;
    c.expect("profile", |m| matches!(m, ServerMessage::Msg { .. }))
        .await?;
    send_bytewise(&mut c, "CHG 5 NLN").await?;
    c.expect_line("CHG 5 NLN").await?;
    // A switchboard payload split byte by byte is relayed whole.
    let (mut bob_ns, _) = stack.online(7, BOB, "NLN").await?;
    let mut alice_sb = sb::open(&mut c, ALICE, "alice_sb").await?;
    let mut bob_sb = sb::invite(&mut alice_sb, &mut bob_ns, BOB, "bob_sb")
        .await?
        .sb;
    alice_sb
        .wait_for("JOI", |m| matches!(m, ServerMessage::Joi { .. }))
        .await?;
    let payload = text_payload("split into bytes");
    let mut bytes = format!("MSG 9 A {}\r\n", payload.len()).into_bytes();
    bytes.extend_from_slice(&payload);
    for b in bytes {
        alice_sb.send_raw(&[b]).await?;
    }
    sb::expect_msg(&mut bob_sb, ALICE, &payload).await?;
    alice_sb.expect_line("ACK 9").await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn garbage_closes_only_that_connection() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut bob, _) = stack.online(7, BOB, "NLN").await?;
    let garbage: [&[u8]; 5] = [
        b"\x00\x01\x02\xff\xfe\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"VER 1 MSNP7 \xc3\x28\r\n",
        b"MSG 1 A 99999999\r\n",
        &[b'A'; 9000],
    ];
    for (i, g) in garbage.iter().enumerate() {
        let mut ns = stack.connect_ns(&format!("garbage_ns_{i}")).await?;
        ns.send_raw(g).await?;
        ns.expect_closed().await?;
        let mut sb = stack.connect_sb(&format!("garbage_sb_{i}")).await?;
        sb.send_raw(g).await?;
        sb.expect_closed().await?;
    }
    // A client MSG on the NS is illegal (PROTOCOL.md §1.4): closed too.
    let (mut alice, _) = stack.online(7, ALICE, "NLN").await?;
    alice.send_payload("MSG 9 N", b"hi").await?;
    alice.expect_closed().await?;
    // bob never noticed.
    bob.sync().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn unauthenticated_commands_on_a_switchboard_close_it() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    for (i, line) in ["CAL 1 bob@example.com", "MSG 1 U 2\r\nhi", "VER 1 MSNP7"]
        .iter()
        .enumerate()
    {
        let mut sb = stack.connect_sb(&format!("sb_{i}")).await?;
        sb.send_line(line).await?;
        sb.expect_closed().await?;
    }
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_reader_that_never_reads_stalls_nobody() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut alice_ns, _) = stack.online(7, ALICE, "NLN").await?;
    let (mut bob_ns, _) = stack.online(7, BOB, "NLN").await?;
    let (mut carol_ns, _) = stack.online(7, CAROL, "NLN").await?;
    // bob's room with carol and alice; alice's SB socket has a tiny receive buffer and she
    // never reads from it after joining.
    let mut bob_sb = sb::open(&mut bob_ns, BOB, "bob_sb").await?;
    let mut carol_sb = sb::invite(&mut bob_sb, &mut carol_ns, CAROL, "carol_sb")
        .await?
        .sb;
    bob_sb
        .wait_for("JOI carol", |m| matches!(m, ServerMessage::Joi { .. }))
        .await?;
    let session = sb::call(&mut bob_sb, ALICE).await?;
    let _alice_sb = sb::answer(&mut alice_ns, ALICE, "alice_sb", session, Some(4096)).await?;
    bob_sb
        .wait_for("JOI alice", |m| matches!(m, ServerMessage::Joi { .. }))
        .await?;
    carol_sb
        .wait_for("JOI alice", |m| matches!(m, ServerMessage::Joi { .. }))
        .await?;

    // bob floods the room with ~6.5 MB (more than alice's socket buffers and outbox hold);
    // carol reads concurrently and must get every message, each within the client timeout.
    const COUNT: usize = 4000;
    let payload = {
        let mut p = text_payload("");
        p.resize(1600, b'z');
        p
    };
    let sender = async {
        for _ in 0..COUNT {
            send_msg(&mut bob_sb, "U", &payload).await?;
        }
        anyhow::Ok(())
    };
    let receiver = async {
        let mut got = 0;
        while got < COUNT {
            match carol_sb.recv().await? {
                ServerMessage::Msg {
                    from, payload: p, ..
                } => {
                    ensure!(
                        from.as_str() == BOB && p == payload,
                        "message {got} differs"
                    );
                    got += 1;
                }
                // The server may drop alice as too slow; carol is told.
                ServerMessage::Bye { handle, .. } if handle.as_str() == ALICE => {}
                other => anyhow::bail!("carol got {other:?} after {got} messages"),
            }
        }
        anyhow::Ok(())
    };
    let (sent, received) = tokio::join!(sender, receiver);
    sent?;
    received?;
    // The NS sessions still answer at once while alice's switchboard socket is stuck.
    carol_ns.sync().await?;
    bob_ns.sync().await?;
    // A message with ACK still completes for bob (alice may have been dropped meanwhile, in
    // which case bob sees BYE alice first).
    let t = send_msg(&mut bob_sb, "A", &text_payload("done")).await?;
    carol_sb
        .wait_for("bob's last message", |m| {
            matches!(m, ServerMessage::Msg { .. })
        })
        .await?;
    let (reply, skipped) = bob_sb
        .wait_for("ACK or NAK", |m| {
            matches!(m, ServerMessage::Ack { trid } | ServerMessage::Nak { trid } if trid.0 == t)
        })
        .await?;
    ensure!(
        skipped
            .iter()
            .all(|m| matches!(m, ServerMessage::Bye { handle, .. } if handle.as_str() == ALICE)),
        "unexpected before {reply:?}: {skipped:?}"
    );
    stack.shutdown().await?;
    Ok(())
}
