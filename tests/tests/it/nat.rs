//! File transfer across NAT (issue 5): real network namespaces with masquerading routers
//! ([`relive_tests::netns`]), the server and two scripted MSN 5.0 clients as
//! `relive-nat-peer` processes inside them, and a 10 MiB MSNFTP transfer.
//!
//! * relay off: the receiver is sent to the sender's private address and cannot connect;
//!   both sides fail within a bounded time.
//! * relay on, no software on the clients: MSNFTP rendezvous (both dial relay ports that the
//!   relay splices); the received file is byte-identical (SHA-256 of both ends compared).
//! * relay on and a companion agent (QUIC, authenticated with the user's access token) on the
//!   sender's machine: the sender listens as usual, the receiver is pointed at a relay port
//!   that the relay forwards over the agent's connection; identical file.
//! * relay on, rendezvous off, no agent, and router A forwards the sender's MSNFTP port 6891:
//!   the relay has no evidence the sender is reachable, so it rewrites `IP-Address` to the
//!   sender's observed address (mode a, logged `unverified`); the receiver dials router A's
//!   public address and the forward carries it to the sender; identical file.
//!
//! Each test skips (printing why) when not run as root or without iproute2/nftables.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use relive_tests::netns::{Node, SERVER_IP, Testbed};

const PEER: &str = env!("CARGO_BIN_EXE_relive-nat-peer");
/// Size of the transferred file.
const FILE_SIZE: usize = 10 * 1024 * 1024 + 12_345;
/// Upper bound for one whole scenario's processes.
const SCENARIO: Duration = Duration::from_secs(90);

/// Deterministic, incompressible-looking test data (xorshift64).
fn test_file(path: &std::path::Path) -> anyhow::Result<()> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(FILE_SIZE + 8);
    while data.len() < FILE_SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(FILE_SIZE);
    std::fs::write(path, data)?;
    Ok(())
}

/// SHA-256 of a file with coreutils' `sha256sum`.
fn sha256(path: &std::path::Path) -> anyhow::Result<String> {
    let out = std::process::Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum failed");
    String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no sha256sum output"))
}

/// How the server and clients are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `[relay] enabled = false`.
    Off,
    /// Relay on (MSNFTP rendezvous on), no software besides the clients.
    Plain,
    /// Relay on, and a companion agent on the sender's (listener's) machine.
    Agent,
    /// Relay on, rendezvous off, no agent; router A forwards [`FORWARDED_PORT`] to the sender,
    /// which listens there.
    Forwarded,
}

/// The port a user forwards for MSN file transfers (the first of the official 6891–6900).
const FORWARDED_PORT: u16 = 6891;

/// The outcome of one transfer attempt.
struct Outcome {
    /// The sender's `LISTENING` or `DIALLING <ip>`.
    sender_mode: String,
    /// The receiver's `CONNECTING <ip>`.
    receiver_dials: String,
    sender_ok: bool,
    receiver_ok: bool,
    elapsed: Duration,
    sent_sha: String,
    received_sha: Option<String>,
    /// The server's `rewrote field` log lines (the relay's rewrites), in order.
    rewrites: Vec<String>,
}

/// Runs the server (relay on or off) and one MSNFTP transfer from client A to client B.
async fn transfer(tag: &str, mode: Mode) -> anyhow::Result<Option<Outcome>> {
    let relay = mode != Mode::Off;
    relive_tests::init_tracing();
    let Some(bed) = Testbed::create(tag)? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    std::fs::create_dir(&data)?;
    let file = dir.path().join("sent.bin");
    let out = dir.path().join("received.bin");
    test_file(&file)?;
    let data_s = data.to_string_lossy().into_owned();
    let mut server = bed.spawn(
        Node::Public,
        "server",
        PEER,
        &[
            "server",
            &data_s,
            SERVER_IP,
            if relay { "on" } else { "off" },
            if mode == Mode::Plain { "on" } else { "off" },
        ],
    )?;
    if mode == Mode::Forwarded {
        bed.forward_port(Node::RouterA, FORWARDED_PORT)?;
    }
    let ready = server.line("READY", Duration::from_secs(30)).await?;
    let ports: Vec<&str> = ready.split(' ').skip(1).collect();
    let (ns, http) = (
        format!(
            "{SERVER_IP}:{}",
            ports.first().ok_or_else(|| anyhow!("ns port"))?
        ),
        format!(
            "{SERVER_IP}:{}",
            ports.get(1).ok_or_else(|| anyhow!("http port"))?
        ),
    );
    let tokens = std::fs::read_to_string(data.join("tokens")).context("tokens")?;
    let token = |handle: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(handle)?.strip_prefix(' '))
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token for {handle}"))
    };
    let (alice, bob) = (token("alice@example.com")?, token("bob@example.com")?);
    // The agent runs on client A's machine (the file's sender listens there).
    let _agent = if mode == Mode::Agent {
        let quic = format!(
            "{SERVER_IP}:{}",
            ports.get(2).ok_or_else(|| anyhow!("quic port"))?
        );
        let ca = data
            .join("tls")
            .join("relive-ca.crt")
            .to_string_lossy()
            .into_owned();
        let mut agent = bed.spawn(
            Node::ClientA,
            "agent",
            PEER,
            &["agent", &quic, &ca, SERVER_IP, "alice@example.com", &alice],
        )?;
        agent
            .line_containing("agent connected to the relay", Duration::from_secs(20))
            .await?;
        Some(agent)
    } else {
        None
    };
    let out_s = out.to_string_lossy().into_owned();
    let file_s = file.to_string_lossy().into_owned();
    let mut receiver = bed.spawn(
        Node::ClientB,
        "receiver",
        PEER,
        &["receive", &ns, &http, "bob@example.com", &bob, &out_s],
    )?;
    receiver.line("ONLINE", Duration::from_secs(20)).await?;
    let start = Instant::now();
    let mut sender = bed.spawn(
        Node::ClientA,
        "sender",
        PEER,
        &[
            "send",
            &ns,
            &http,
            "alice@example.com",
            &alice,
            "bob@example.com",
            &file_s,
            &if mode == Mode::Forwarded {
                FORWARDED_PORT
            } else {
                0
            }
            .to_string(),
        ],
    )?;
    let sender_mode = sender.line("", SCENARIO).await?;
    let receiver_dials = receiver.line("CONNECTING", SCENARIO).await?;
    let receiver_ok = receiver.exit(SCENARIO).await?;
    let sender_ok = sender.exit(SCENARIO).await?;
    let elapsed = start.elapsed();
    let received_sha = if out.exists() {
        Some(sha256(&out)?)
    } else {
        None
    };
    let mut rewrites = Vec::new();
    while let Ok(line) = server
        .line_containing("rewrote field", Duration::from_millis(500))
        .await
    {
        rewrites.push(line);
    }
    Ok(Some(Outcome {
        rewrites,
        sender_mode,
        receiver_dials,
        sender_ok,
        receiver_ok,
        elapsed,
        sent_sha: sha256(&file)?,
        received_sha,
    }))
}

#[tokio::test]
async fn msnftp_across_two_nats_fails_without_the_relay() -> anyhow::Result<()> {
    let Some(o) = transfer("off", Mode::Off).await? else {
        return Ok(());
    };
    // Untouched invitation: the receiver is sent to client A's private address.
    assert_eq!(o.sender_mode, "LISTENING");
    assert_eq!(o.receiver_dials, "CONNECTING 10.200.1.2");
    assert!(
        !o.receiver_ok,
        "the receiver cannot reach a private address"
    );
    assert!(!o.sender_ok, "nobody reaches the listening sender");
    assert!(
        o.elapsed < Duration::from_secs(40),
        "failed only after {:?}",
        o.elapsed
    );
    assert_ne!(o.received_sha.as_deref(), Some(o.sent_sha.as_str()));
    Ok(())
}

#[tokio::test]
async fn msnftp_across_two_nats_works_by_rendezvous_through_the_relay() -> anyhow::Result<()> {
    let Some(o) = transfer("rdv", Mode::Plain).await? else {
        return Ok(());
    };
    // Rendezvous: both dial the relay (the server's address) and are spliced.
    assert_eq!(o.sender_mode, format!("DIALLING {SERVER_IP}"));
    assert_eq!(o.receiver_dials, format!("CONNECTING {SERVER_IP}"));
    assert!(
        o.sender_ok && o.receiver_ok,
        "transfer failed after {:?}",
        o.elapsed
    );
    assert_eq!(o.received_sha.as_deref(), Some(o.sent_sha.as_str()));
    Ok(())
}

#[tokio::test]
async fn msnftp_across_two_nats_works_through_the_listeners_agent() -> anyhow::Result<()> {
    let Some(o) = transfer("agt", Mode::Agent).await? else {
        return Ok(());
    };
    // Agent mode: the sender listens on its own machine; the receiver dials the relay.
    assert_eq!(o.sender_mode, "LISTENING");
    assert_eq!(o.receiver_dials, format!("CONNECTING {SERVER_IP}"));
    assert!(
        o.sender_ok && o.receiver_ok,
        "transfer failed after {:?}",
        o.elapsed
    );
    assert_eq!(o.received_sha.as_deref(), Some(o.sent_sha.as_str()));
    Ok(())
}

#[tokio::test]
async fn msnftp_across_two_nats_works_to_a_forwarded_port_by_the_observed_address()
-> anyhow::Result<()> {
    let Some(o) = transfer("fwd", Mode::Forwarded).await? else {
        return Ok(());
    };
    // Observed mode: the receiver dials router A's public address, which forwards the port.
    assert_eq!(o.sender_mode, "LISTENING");
    assert_eq!(
        o.receiver_dials,
        format!("CONNECTING {}", relive_tests::netns::ROUTER_A_IP)
    );
    assert!(
        o.sender_ok && o.receiver_ok,
        "transfer failed after {:?}",
        o.elapsed
    );
    assert_eq!(o.received_sha.as_deref(), Some(o.sent_sha.as_str()));
    // Exactly one field changed, IP-Address, private → observed, and it is logged unverified.
    assert_eq!(o.rewrites.len(), 1, "{:?}", o.rewrites);
    let line = &o.rewrites[0];
    for part in [
        "protocol=\"msnftp\"",
        "mode=\"observed\"",
        "unverified=true",
        "field=\"IP-Address\"",
        "from=\"10.200.1.2\"",
        &format!("to=\"{}\"", relive_tests::netns::ROUTER_A_IP),
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    Ok(())
}
