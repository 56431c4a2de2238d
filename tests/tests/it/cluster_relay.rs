//! Relay allocations are valid cluster-wide (issue 19), end to end: one standalone relay
//! process (`relive-relay serve --servers 2`) driven by two `relive-server serve` cluster nodes
//! (roles `ns,sb`, `[relay] remote …` in their `relive.toml`), a real NATS server, and one
//! companion agent (the relay library's, over real QUIC) for the user who listens. An MSNFTP
//! transfer in a room on SB node B, then one in a room on SB node A, both reach that one agent:
//! the invitation the receiver gets names the relay's allocation, and the file arrives intact.
//!
//! Everything is on loopback, so the clients come from distinct sources (Linux routes all of
//! 127/8 on `lo`): the sender from `127.0.0.2`, the receiver from `127.0.0.3`, the relay's
//! allocation ports on `127.0.0.4` (what invitations then name; the nodes are on 127.0.0.1).
//! Two clients of one address would rightly get the same-LAN mode and no relay. The sender
//! advertises a home-LAN address (`192.168.7.2`), as an MSN client behind a router does, so
//! nothing says it is reachable and the rewriter's choice is its agent (needs `nats-server`;
//! skipped with the reason outside CI when it is missing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use relive_server::relay::engine::agent::{self, AgentEvent, AgentObserver};
use relive_server::relay::engine::quic;
use relive_tests::client::MsnpClient;
use relive_tests::cluster::{Join, Node, StandaloneRelay, node_program, relay_program};
use relive_tests::logon::{Logon, Method};
use relive_tests::msnftp::{self, field, invitation, wait_invitation, wait_line};
use relive_tests::nats::Nats;
use relive_tests::stack::{DataDir, change_status, sync_lists};
use relive_tests::{StackOptions, TestStack, netns, sb};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
/// Where the sender's client connects from.
const SENDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Where the receiver's client connects from.
const RECEIVER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// The address the sender's client believes it has (its home LAN).
const SENDER_LAN: &str = "192.168.7.2";
/// Size of each transferred file (not a multiple of the 2045-byte block).
const FILE_SIZE: usize = 1024 * 1024 + 4321;

#[tokio::test]
async fn one_standalone_relay_carries_transfers_for_rooms_on_both_sb_nodes() -> anyhow::Result<()> {
    relive_tests::init_tracing();
    let Some(nats) = Nats::start()? else {
        return Ok(());
    };
    let stack = TestStack::start(
        StackOptions::new()
            .reuse(DataDir::sqlite()?)
            .account(ALICE, "Alice")
            .account(BOB, "Bob"),
    )
    .await?;
    stack.befriend(ALICE, BOB).await?;
    let ca = stack.ca_cert.clone();
    let data = stack.shutdown().await?;
    let (program, relay_bin) =
        tokio::task::spawn_blocking(|| anyhow::Ok((node_program()?, relay_program()?))).await??;

    // The relay first, then both nodes driving it; it serves both control connections.
    let mut relay = StandaloneRelay::spawn(&relay_bin, 2).await?;
    let remote = relay.remote();
    let name = format!("r{}", std::process::id());
    let join = Join {
        program: &program,
        data: &data,
        nats: nats.url(),
        name: &name,
        relay: Some(&remote),
    };
    let mut nodes = Vec::new();
    for id in ["n1", "n2"] {
        nodes.push(Node::spawn_in(&join, id, "ns,sb", 1).await?);
    }
    for node in &mut nodes {
        node.ready().await?;
    }
    relay.wait_log("server control connection up", 2).await?;

    // Alice's agent connects to the relay, which has a node verify her token.
    let (events, mut agent_events) = mpsc::unbounded_channel();
    let observer: AgentObserver = Arc::new(move |event| {
        let _ = events.send(event);
    });
    let trusted = relive_server::relay::trust_anchors(&std::fs::read(relay.cert())?);
    let endpoint = quic::client_endpoint(
        quic::client_config(&trusted)?,
        std::net::UdpSocket::bind("127.0.0.1:0")?,
    )?;
    let credential = format!("{ALICE} {}", data.token(ALICE).context("token")?);
    let config = agent::AgentConfig::new(relay.quic, StandaloneRelay::NAME, &credential);
    let agent_task =
        tokio::spawn(async move { agent::run_agent_observed(&endpoint, &config, &observer).await });
    relive_tests::client::within("the agent's welcome", async {
        while let Some(event) = agent_events.recv().await {
            if let AgentEvent::Connected { user } = event {
                ensure!(user == ALICE, "the agent is {user}");
                return Ok(());
            }
        }
        anyhow::bail!("the agent stopped")
    })
    .await?;

    // Alice on node A, Bob on node B, each from an address of their own.
    let online = |i: usize, handle: &'static str, from: IpAddr| {
        let (node, ca, data) = (&nodes[i], &ca, &data);
        async move {
            let logon = Logon::new(Method::Md5, node.ns, node.https, ca, Some(from)).await?;
            let mut c = logon
                .login(handle, data.token(handle).context("token")?)
                .await?;
            sync_lists(&mut c).await?;
            change_status(&mut c, "NLN").await?;
            anyhow::Ok(c)
        }
    };
    let mut alice = (online(0, ALICE, SENDER).await?, ALICE, SENDER);
    let mut bob = (online(1, BOB, RECEIVER).await?, BOB, RECEIVER);
    let dir = tempfile::tempdir()?;

    // A room on node B: Bob opens it (his NS node has the fewest rooms), Alice answers the
    // RNG that crossed over NATS, then sends Bob a file through her agent. Then a room on
    // node A, opened by Alice; Bob (logged in on node B) answers there, and the same agent
    // carries the file again.
    for (node, bob_opens) in [(1, true), (0, false)] {
        let (mut alice_sb, mut bob_sb) = if bob_opens {
            let (b, a) = room(&mut bob, &mut alice, nodes[node].sb).await?;
            (a, b)
        } else {
            room(&mut alice, &mut bob, nodes[node].sb).await?
        };
        let id = &nodes[node].id;
        transfer(
            (&mut alice_sb, &mut bob_sb),
            &dir.path().join(id),
            &mut relay,
            &mut agent_events,
        )
        .await
        .with_context(|| format!("the transfer in the room on node {id}"))?;
    }

    agent_task.abort();
    drop(nats);
    Ok(())
}

/// A user: the NS connection, the handle, the source address of every connection.
type User = (MsnpClient, &'static str, IpAddr);

/// `opener` opens a room (`XFR SB`), which must be on the SB node at `sb`, and calls
/// `callee`, who answers the `RNG` there; both connections, after the opener sees `JOI`.
async fn room(
    (opener_ns, opener, opener_ip): &mut User,
    (callee_ns, callee, callee_ip): &mut User,
    sb: SocketAddr,
) -> anyhow::Result<(MsnpClient, MsnpClient)> {
    let mut opener_sb = sb::open_from(opener_ns, opener, "opener_sb", Some(*opener_ip)).await?;
    ensure!(
        opener_sb.peer_addr() == sb,
        "{opener}'s room is at {}, not {sb}",
        opener_sb.peer_addr()
    );
    let session = sb::call(&mut opener_sb, callee).await?;
    let (joined, at) = sb::answer_from(callee_ns, callee, "callee_sb", session, *callee_ip).await?;
    ensure!(at == sb, "the RNG points at {at}, not {sb}");
    wait_line(&mut opener_sb, "JOI ").await?;
    Ok((opener_sb, joined.sb))
}

/// Alice (`sbs.0`) sends Bob (`sbs.1`) a file over MSNFTP in their room: she listens on her
/// own machine and advertises her LAN address; the ACCEPT Bob gets must name the relay's
/// allocation, which he dials; the relay forwards it over her agent to her listener. Checks
/// the bytes, the relay's log of that allocation and the agent's report of it. `stem` names
/// the files.
async fn transfer(
    (alice, bob): (&mut MsnpClient, &mut MsnpClient),
    stem: &Path,
    relay: &mut StandaloneRelay,
    agent_events: &mut mpsc::UnboundedReceiver<AgentEvent>,
) -> anyhow::Result<()> {
    let (file, out) = (stem.with_extension("sent"), stem.with_extension("received"));
    netns::write_test_file(&file, FILE_SIZE, 0x5EED_C1D5_7E12_0019)?;
    let size = FILE_SIZE as u64;
    sb::send_msg(
        alice,
        "N",
        &invitation(&format!(
            "Application-Name: File Transfer\r\n\
             Application-GUID: {{5D3E02AB-6190-11d3-BBBB-00C04F795683}}\r\n\
             Invitation-Command: INVITE\r\nInvitation-Cookie: 19\r\n\
             Application-File: payload.bin\r\nApplication-FileSize: {size}\r\n\r\n"
        )),
    )
    .await?;
    let invite = wait_invitation(bob, "INVITE").await?;
    ensure!(field(&invite, "Application-FileSize") == Some(size.to_string().as_str()));
    sb::send_msg(
        bob,
        "N",
        &invitation(
            "Invitation-Command: ACCEPT\r\nInvitation-Cookie: 19\r\n\
             Launch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n",
        ),
    )
    .await?;
    wait_invitation(alice, "ACCEPT").await?;
    // Where the agent (on Alice's machine) reaches her client.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    sb::send_msg(
        alice,
        "N",
        &invitation(&format!(
            "Invitation-Command: ACCEPT\r\nInvitation-Cookie: 19\r\n\
             IP-Address: {SENDER_LAN}\r\nIP-Address-Internal: {SENDER_LAN}\r\nPort: {port}\r\n\
             AuthCookie: 8086\r\nLaunch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n"
        )),
    )
    .await?;
    let accept = wait_invitation(bob, "ACCEPT").await?;
    let relay_ip = relay.remote().public_ip.to_string();
    ensure!(
        field(&accept, "IP-Address") == Some(relay_ip.as_str()),
        "the ACCEPT names {:?}, not the relay's {relay_ip}",
        field(&accept, "IP-Address")
    );
    let allocation: u16 = field(&accept, "Port").context("no Port")?.parse()?;
    ensure!(
        field(&accept, "AuthCookie") == Some("8086"),
        "the AuthCookie changed"
    );

    let sending = async {
        let (stream, from) = listener.accept().await?;
        // The agent dials from this machine, never the receiver itself.
        ensure!(from.ip().is_loopback(), "connection from {from}");
        msnftp::serve_file(stream, "8086", &file, size).await
    };
    let receiving = async {
        let relay_at = SocketAddr::new(relay_ip.parse()?, allocation);
        let stream = relive_tests::tcp_from(RECEIVER, relay_at).await?;
        msnftp::fetch_file(stream, BOB, "8086", size, &out).await
    };
    tokio::time::timeout(relive_tests::TIMEOUT * 4, async {
        tokio::try_join!(sending, receiving)
    })
    .await
    .context("the transfer timed out")??;
    ensure!(
        netns::sha256(&out)? == netns::sha256(&file)?,
        "the received file differs"
    );

    // The relay's allocation carried it, through the agent.
    let finished = relay.wait_log("relayed connection finished", 1).await?;
    ensure!(
        finished.contains("forward") && finished.contains(&format!("port={allocation} ")),
        "{finished}"
    );
    relive_tests::client::within("the agent's report", async {
        while let Some(event) = agent_events.recv().await {
            if let AgentEvent::TransferEnded {
                to_relay, error, ..
            } = event
            {
                ensure!(error.is_none(), "the agent's connection failed: {error:?}");
                ensure!(to_relay > size, "the agent carried {to_relay} bytes");
                return Ok(());
            }
        }
        anyhow::bail!("the agent stopped")
    })
    .await
}
