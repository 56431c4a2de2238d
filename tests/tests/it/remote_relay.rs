//! A standalone relay (`relive-relay serve`'s library) driven by `relive-server` with
//! `[relay] remote` carries a 10 MiB MSNFTP transfer through a companion agent, with both
//! clients behind their own masquerading router.
//!
//! Why namespaces and not plain loopback: two clients on 127.0.0.1 share one observed
//! address, so the rewriter rightly chooses the same-LAN mode and no relay is involved. The
//! testbed of [`relive_tests::netns`] gives each client its own public address. The
//! server and the relay are two processes (`relive-nat-peer remote-server` and `relay`) in the
//! public namespace, talking over the control protocol on QUIC; the scripted MSN 5.0 clients
//! and the agent are `relive-nat-peer`'s too (the same as `nat.rs`). It needs root, iproute2
//! and nftables: without them it fails in CI and is skipped elsewhere ([`relive_tests::tool`]).

use std::time::Duration;

use anyhow::anyhow;
use relive_tests::netns::{self, Node, SERVER_IP, Testbed};

const PEER: &str = env!("CARGO_BIN_EXE_relive-nat-peer");
/// Size of the transferred file.
const FILE_SIZE: usize = 10 * 1024 * 1024 + 4321;
/// Upper bound for the whole scenario's steps.
const SCENARIO: Duration = Duration::from_secs(90);

#[tokio::test]
async fn msnftp_through_a_standalone_relay_and_the_listeners_agent() -> anyhow::Result<()> {
    relive_tests::init_tracing();
    let Some(bed) = Testbed::create("rmt")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (relay_dir, data) = (dir.path().join("relay"), dir.path().join("server"));
    std::fs::create_dir(&data)?;
    let (file, out) = (dir.path().join("sent.bin"), dir.path().join("received.bin"));
    netns::write_test_file(&file, FILE_SIZE, 0x0DDB_1A5E_5BAD_5EED)?;
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();

    // The standalone relay, then the server driving it.
    let mut relay = bed.spawn(
        Node::Public,
        "relay",
        PEER,
        &["relay", &path(&relay_dir), SERVER_IP],
    )?;
    let ready = relay.line("READY", Duration::from_secs(30)).await?;
    let quic_port = ready
        .split(' ')
        .nth(1)
        .ok_or_else(|| anyhow!("relay port"))?
        .to_owned();
    let mut server = bed.spawn(
        Node::Public,
        "server",
        PEER,
        &[
            "remote-server",
            &path(&data),
            SERVER_IP,
            &format!("127.0.0.1:{quic_port}"),
            &path(&relay_dir),
        ],
    )?;
    let ready = server.line("READY", Duration::from_secs(30)).await?;
    let ports: Vec<&str> = ready.split(' ').skip(1).collect();
    let ns = format!(
        "{SERVER_IP}:{}",
        ports.first().ok_or_else(|| anyhow!("ns"))?
    );
    let https = format!(
        "{SERVER_IP}:{}",
        ports.get(1).ok_or_else(|| anyhow!("https"))?
    );
    let ca = netns::ca_file(&data);
    server
        .line_containing("standalone relay connected", Duration::from_secs(20))
        .await?;
    relay
        .line_containing("server control connection up", Duration::from_secs(5))
        .await?;

    let (alice, bob) = netns::read_tokens(&data)?;

    // Alice's agent connects to the standalone relay (its certificate, its public address);
    // the relay has the server check her token.
    let mut agent = bed.spawn(
        Node::ClientA,
        "agent",
        PEER,
        &[
            "agent",
            &format!("{SERVER_IP}:{quic_port}"),
            &path(&relay_dir.join("relay-cert.pem")),
            SERVER_IP,
            "alice@example.com",
            &alice,
        ],
    )?;
    agent
        .line_containing("agent connected to the relay", Duration::from_secs(20))
        .await?;

    // Agent mode: the sender listens on its own machine, the receiver dials the relay.
    let at = netns::ServerAt {
        ns: &ns,
        https: &https,
        ca: &ca,
    };
    let run =
        netns::msnftp_transfer(&bed, PEER, at, (&alice, &bob), (&file, &out), 0, SCENARIO).await?;
    assert_eq!(run.sender_mode, "LISTENING");
    assert_eq!(run.receiver_dials, format!("CONNECTING {SERVER_IP}"));
    assert!(run.sender_ok && run.receiver_ok, "the transfer failed");
    // The standalone relay carried it: its port allocation saw the whole file go through.
    let finished = relay
        .line_containing("relayed connection finished", Duration::from_secs(10))
        .await?;
    assert!(finished.contains("forward"), "{finished}");
    assert_eq!(netns::sha256(&out)?, netns::sha256(&file)?);
    Ok(())
}
