//! Cluster mode end to end (issue 19): a real `nats-server` and five `relive-server serve`
//! processes on `127.0.0.1:0` — one dispatch, two NS, two SB — each with its own data
//! directory (the same `secret.key` and CA copied in, as README says), sharing one PostgreSQL
//! database ([`relive_tests::cluster`]; needs `nats-server` and PostgreSQL, skipped with the
//! reason outside CI when either is missing). Users on different NS nodes log in (MD5 and
//! Passport, the ticket from one node used on another), see each other, chat one-to-one and three-way through SB nodes, change
//! lists and block; a duplicate login on another node gets `OUT OTH`; then one NS node is
//! killed with SIGKILL: its users log in again through the dispatch and find every
//! acknowledged change, and nobody else is disturbed; finally an SB node is drained
//! (SIGTERM) and no room is sent to it any more.

use std::net::SocketAddr;

use anyhow::{Context as _, bail, ensure};
use relive_msnp::client::Role;
use relive_msnp::server::ServerMessage;
use relive_server::store::ListKind;
use relive_tests::cluster::{Node, node_program};
use relive_tests::logon::{Logon, Method};
use relive_tests::nats::Nats;
use relive_tests::stack::{DataDir, change_status, sync_lists};
use relive_tests::{MsnpClient, StackOptions, TestStack, sb};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";

/// Asks the dispatch node where `handle` logs in (`XFR NS`), as MSN 1.x–6.x clients do.
async fn referral(ds: SocketAddr, handle: &str) -> anyhow::Result<SocketAddr> {
    let mut c = MsnpClient::connect(ds, Role::Notification, "ds").await?;
    c.send_line("VER 1 MSNP7 CVR0").await?;
    c.expect("VER", |m| matches!(m, ServerMessage::Ver { .. }))
        .await?;
    c.send_line("INF 2").await?;
    c.expect("INF", |m| matches!(m, ServerMessage::Inf { .. }))
        .await?;
    c.send_line(&format!("USR 3 MD5 I {handle}")).await?;
    match c.recv().await? {
        ServerMessage::XfrNs { addr, .. } => Ok(addr.as_str().parse()?),
        other => bail!("expected XFR 3 NS, got {other:?}"),
    }
}

fn is_nln(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Nln { handle, .. } if handle.as_str() == who)
}

fn is_fln(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Fln { handle } if handle.as_str() == who)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ns_two_sb_one_dispatch_survive_losing_an_ns_node() -> anyhow::Result<()> {
    let Some(nats) = Nats::start()? else {
        return Ok(());
    };
    // One PostgreSQL database for every node.
    let Some(url) = relive_tests::postgres::database() else {
        return Ok(());
    };
    let mut shared = DataDir::sqlite()?;
    shared.use_postgres(&url);
    // The shared data directory: accounts with tokens, alice, bob and carol all friends.
    let stack = TestStack::start(
        StackOptions::new()
            .reuse(shared)
            .account(ALICE, "Alice")
            .account(BOB, "Bob")
            .account(CAROL, "Carol")
            .account(DAVE, "Dave"),
    )
    .await?;
    for (a, b) in [(ALICE, BOB), (ALICE, CAROL), (BOB, CAROL)] {
        stack.befriend(a, b).await?;
    }
    let ca = stack.ca_cert.clone();
    let data = stack.shutdown().await?;
    let token = |h: &str| data.token(h).map(str::to_owned).context("token");
    let name = format!("t{}", std::process::id());
    let program = tokio::task::spawn_blocking(node_program).await??;
    let mut nodes = Vec::new();
    for (id, roles) in [
        ("ds", "ds"),
        ("ns1", "ns"),
        ("ns2", "ns"),
        ("sb1", "sb"),
        ("sb2", "sb"),
    ] {
        nodes.push(Node::spawn(&program, &data, nats.url(), &name, id, roles, 4).await?);
    }
    for node in &mut nodes {
        node.ready().await?;
    }
    let [ds, ns1, ns2, sb1, sb2] = &mut nodes[..] else {
        bail!("five nodes");
    };
    let sbs = [sb1.sb, sb2.sb];

    // The dispatch refers every login to one of the NS nodes, never to itself or an SB node.
    for handle in [ALICE, BOB, CAROL, DAVE] {
        let to = referral(ds.ns, handle).await?;
        ensure!(to == ns1.ns || to == ns2.ns, "{handle} referred to {to}");
    }

    // alice on ns1 (MD5, MSNP7); bob on ns2 through Passport with his ticket from ns1's
    // login2.srf; carol on ns2 (MD5).
    let md5_ns1 = Logon::new(Method::Md5, ns1.ns, ns1.https, &ca, None).await?;
    let md5_ns2 = Logon::new(Method::Md5, ns2.ns, ns2.https, &ca, None).await?;
    let twn_ns2_ticket_from_ns1 =
        Logon::new(Method::Passport, ns2.ns, ns1.https, &ca, None).await?;
    let mut alice = md5_ns1.login(ALICE, &token(ALICE)?).await?;
    sync_lists(&mut alice).await?;
    change_status(&mut alice, "NLN").await?;
    let mut bob = twn_ns2_ticket_from_ns1.login(BOB, &token(BOB)?).await?;
    sync_lists(&mut bob).await?;
    let ilns = change_status(&mut bob, "NLN").await?;
    ensure!(
        ilns.iter()
            .any(|m| matches!(m, ServerMessage::Iln { handle, .. } if handle.as_str() == ALICE)),
        "bob's ILN burst lacks alice on the other node: {ilns:?}"
    );
    alice.wait_for("NLN bob", |m| is_nln(m, BOB)).await?;
    let mut carol = md5_ns2.login(CAROL, &token(CAROL)?).await?;
    sync_lists(&mut carol).await?;
    change_status(&mut carol, "AWY").await?;
    alice.wait_for("NLN carol", |m| is_nln(m, CAROL)).await?;

    // A name change on ns2 reaches alice on ns1.
    bob.send_line(&format!("REA 50 {BOB} Bobby")).await?;
    bob.wait_for("REA 50", |m| matches!(m, ServerMessage::Rea { .. }))
        .await?;
    alice
        .wait_for("NLN bob Bobby", |m| {
            matches!(m, ServerMessage::Nln { handle, name, .. }
                if handle.as_str() == BOB && name.as_str() == "Bobby")
        })
        .await?;

    // One-to-one across nodes: bob (ns2) opens a switchboard on the least loaded SB node,
    // rings alice (ns1), who answers on that SB node.
    let mut bob_sb = sb::open(&mut bob, BOB, "bob_sb").await?;
    ensure!(sbs.contains(&bob_sb.peer_addr()), "XFR SB to a non-SB node");
    let mut alice_sb = sb::invite(&mut bob_sb, &mut alice, ALICE, "alice_sb")
        .await?
        .sb;
    bob_sb
        .wait_for("JOI alice", |m| matches!(m, ServerMessage::Joi { .. }))
        .await?;
    let hello = sb::text_payload("hello across nodes");
    sb::send_msg(&mut bob_sb, "N", &hello).await?;
    sb::expect_msg(&mut alice_sb, BOB, &hello).await?;
    // Three-way: carol (ns2) joins the same room.
    let mut carol_sb = sb::invite(&mut bob_sb, &mut carol, CAROL, "carol_sb")
        .await?
        .sb;
    for sb in [&mut bob_sb, &mut alice_sb] {
        sb.wait_for(
            "JOI carol",
            |m| matches!(m, ServerMessage::Joi { handle, .. } if handle.as_str() == CAROL),
        )
        .await?;
    }
    let all = sb::text_payload("hello all three");
    sb::send_msg(&mut alice_sb, "N", &all).await?;
    sb::expect_msg(&mut bob_sb, ALICE, &all).await?;
    sb::expect_msg(&mut carol_sb, ALICE, &all).await?;
    // A second XFR SB goes to the other SB node once its heartbeat (every 200 ms) tells that
    // the first has a room now.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let second = loop {
        let ticket = sb::request_sb(&mut alice).await?;
        ensure!(sbs.contains(&ticket.addr), "XFR SB to {}", ticket.addr);
        if ticket.addr != bob_sb.peer_addr() {
            break ticket;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "every room on {}",
            ticket.addr
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Its cookie is signed for that node: presented to the other SB node it is refused.
    let mut wrong = MsnpClient::connect(bob_sb.peer_addr(), Role::Switchboard, "wrong").await?;
    wrong
        .send_line(&format!("USR 1 {ALICE} {}", second.cookie))
        .await?;
    wrong.expect_line("911 1").await?;

    // List changes across nodes: carol (ns2) drops alice (ns1) from her FL and adds her
    // back; alice is told (REM/ADD RL).
    carol.send_line(&format!("REM 60 FL {ALICE}")).await?;
    carol
        .wait_for("REM 60", |m| matches!(m, ServerMessage::Rem { .. }))
        .await?;
    alice
        .wait_for("REM 0 RL carol", |m| {
            matches!(m, ServerMessage::Rem { list: ListKind::Rl, handle, .. } if handle.as_str() == CAROL)
        })
        .await?;
    carol.send_line(&format!("ADD 61 FL {ALICE} Alice")).await?;
    carol
        .wait_for("ADD 61", |m| matches!(m, ServerMessage::Add { .. }))
        .await?;
    alice
        .wait_for("ADD 0 RL carol", |m| {
            matches!(m, ServerMessage::Add { list: ListKind::Rl, handle, .. } if handle.as_str() == CAROL)
        })
        .await?;

    // alice (ns1) blocks bob (ns2): bob sees her go offline and cannot call her.
    alice.send_line(&format!("ADD 70 BL {BOB} Bob")).await?;
    alice
        .wait_for("ADD 70 BL", |m| {
            matches!(
                m,
                ServerMessage::Add {
                    list: ListKind::Bl,
                    ..
                }
            )
        })
        .await?;
    bob.wait_for("FLN alice", |m| is_fln(m, ALICE)).await?;
    let mut bob_sb2 = sb::open(&mut bob, BOB, "bob_sb2").await?;
    bob_sb2.send_line(&format!("CAL 2 {ALICE}")).await?;
    bob_sb2.expect_line("217 2").await?;

    // Duplicate login across nodes: dave on ns1, then on ns2; the first gets OUT OTH.
    let mut dave1 = md5_ns1.login(DAVE, &token(DAVE)?).await?;
    sync_lists(&mut dave1).await?;
    let _dave2 = md5_ns2.login(DAVE, &token(DAVE)?).await?;
    dave1
        .wait_for("OUT OTH", |m| matches!(m, ServerMessage::Out { .. }))
        .await?;
    dave1.expect_closed().await?;

    // kill -9 ns1: alice's connection drops; bob and carol see her go offline.
    ns1.kill().await?;
    alice.expect_closed().await?;
    carol.wait_for("FLN alice", |m| is_fln(m, ALICE)).await?;
    // alice logs in again through the dispatch, which only knows ns2 now.
    let to = loop {
        let to = referral(ds.ns, ALICE).await?;
        if to == ns2.ns {
            break to;
        }
        ensure!(to == ns1.ns, "referred to {to}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let again = Logon::new(Method::Md5, to, ns2.https, &ca, None).await?;
    let mut alice = again.login(ALICE, &token(ALICE)?).await?;
    let (_, lists) = sync_lists(&mut alice).await?;
    ensure!(
        lists.iter().any(|m| matches!(m, ServerMessage::LstEntry { list: ListKind::Bl, contact: Some(c), .. } if c.handle.as_str() == BOB)),
        "bob is not on alice's BL after the crash: {lists:?}"
    );
    change_status(&mut alice, "NLN").await?;
    carol.wait_for("NLN alice", |m| is_nln(m, ALICE)).await?;
    // Nobody else was disturbed: bob and carol are still connected and in their room.
    let still = sb::text_payload("still here");
    sb::send_msg(&mut carol_sb, "N", &still).await?;
    sb::expect_msg(&mut bob_sb, CAROL, &still).await?;
    bob.sync().await?;
    carol.sync().await?;

    // sb2 is drained (SIGTERM): it says it leaves, and every new room goes to sb1.
    sb2.terminate().await?;
    // ns2 hears the goodbye asynchronously: at most a moment after the process exited.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while sb::request_sb(&mut carol).await?.addr != sb1.sb {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "sb2 still chosen after it left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let ticket = sb::request_sb(&mut carol).await?;
        ensure!(
            ticket.addr == sb1.sb,
            "XFR SB to {} after sb2 left",
            ticket.addr
        );
    }
    Ok(())
}
