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
//! MSNSLP (MSN 6.x, MSNP9, P2P messages in `MSG D`): without the relay the offerer cannot reach
//! the listening answerer; with the relay and nothing else the answer arrives rewritten to the
//! switchboard fallback; with the answerer's agent the offerer connects to a relay port, does the
//! `foo` + nonce handshake and sends the file as P2P data packets (identical file); when the
//! offerer's router forwards the port it mapped (`UPnPNat: true`) and the answerer cannot
//! listen, the offerer's own listening INVITE passes in observed mode and the answerer
//! connects through the forward (identical file).
//!
//! Each test needs root, iproute2 and nftables: without them it fails in CI and is skipped
//! elsewhere ([`relive_tests::tool`]).

use std::time::Duration;

use anyhow::anyhow;
use relive_tests::netns::{self, Node, Proc, ROUTER_A_IP, ROUTER_B_IP, SERVER_IP, Testbed};

const PEER: &str = env!("CARGO_BIN_EXE_relive-nat-peer");
/// Size of the transferred file.
const FILE_SIZE: usize = 10 * 1024 * 1024 + 12_345;
/// Upper bound for one whole scenario's processes.
const SCENARIO: Duration = Duration::from_secs(90);

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

/// A server running in the public namespace, with what clients need to reach it.
struct Server {
    proc: Proc,
    /// `ip:port` of the NS, the HTTPS (Passport) listener and the relay's QUIC endpoint.
    ns: String,
    https: String,
    quic: String,
    /// The CA certificate clients trust.
    ca: String,
    /// (alice's, bob's) access tokens.
    tokens: (String, String),
}

impl Server {
    /// Starts `relive-nat-peer server` with its data in `dir`.
    async fn start(
        bed: &Testbed,
        dir: &std::path::Path,
        relay: bool,
        rendezvous: bool,
    ) -> anyhow::Result<Self> {
        let data = dir.join("server");
        std::fs::create_dir(&data)?;
        let data_s = data.to_string_lossy().into_owned();
        let on_off = |b: bool| if b { "on" } else { "off" };
        let mut proc = bed.spawn(
            Node::Public,
            "server",
            PEER,
            &[
                "server",
                &data_s,
                SERVER_IP,
                on_off(relay),
                on_off(rendezvous),
            ],
        )?;
        let ready = proc.line("READY", Duration::from_secs(30)).await?;
        let ports: Vec<&str> = ready.split(' ').skip(1).collect();
        let addr = |i: usize| {
            ports
                .get(i)
                .map(|p| format!("{SERVER_IP}:{p}"))
                .ok_or_else(|| anyhow!("READY without port {i}"))
        };
        Ok(Self {
            ns: addr(0)?,
            https: addr(1)?,
            quic: addr(2)?,
            ca: netns::ca_file(&data),
            tokens: netns::read_tokens(&data)?,
            proc,
        })
    }

    /// Runs the companion agent of `handle` (with `token`) on `node` until it is connected.
    async fn agent(
        &self,
        bed: &Testbed,
        node: Node,
        handle: &str,
        token: &str,
    ) -> anyhow::Result<Proc> {
        let mut agent = bed.spawn(
            node,
            "agent",
            PEER,
            &["agent", &self.quic, &self.ca, SERVER_IP, handle, token],
        )?;
        agent
            .line_containing("agent connected to the relay", Duration::from_secs(20))
            .await?;
        Ok(agent)
    }

    /// The server's `rewrote field` log lines printed so far (waits briefly for more).
    async fn rewrites(&mut self) -> Vec<String> {
        self.log_lines("rewrote field").await
    }

    /// The server's MSNSLP `direct-connection offer` decision log lines printed so far.
    async fn decisions(&mut self) -> Vec<String> {
        self.log_lines("direct-connection offer").await
    }

    async fn log_lines(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self
            .proc
            .line_containing(needle, Duration::from_millis(500))
            .await
        {
            lines.push(line);
        }
        lines
    }
}

/// Runs the server (relay on or off) and one MSNFTP transfer from client A to client B.
async fn transfer(tag: &str, mode: Mode) -> anyhow::Result<Option<Outcome>> {
    relive_tests::init_tracing();
    let Some(bed) = Testbed::create(tag)? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("sent.bin");
    let out = dir.path().join("received.bin");
    netns::write_test_file(&file, FILE_SIZE, 0x9E37_79B9_7F4A_7C15)?;
    let mut server =
        Server::start(&bed, dir.path(), mode != Mode::Off, mode == Mode::Plain).await?;
    if mode == Mode::Forwarded {
        bed.forward_port(Node::RouterA, FORWARDED_PORT)?;
    }
    let (ns, https, ca) = (server.ns.clone(), server.https.clone(), server.ca.clone());
    let (alice, bob) = server.tokens.clone();
    // The agent runs on client A's machine (the file's sender listens there).
    let _agent = if mode == Mode::Agent {
        Some(
            server
                .agent(&bed, Node::ClientA, "alice@example.com", &alice)
                .await?,
        )
    } else {
        None
    };
    let at = netns::ServerAt {
        ns: &ns,
        https: &https,
        ca: &ca,
    };
    let listen_port = if mode == Mode::Forwarded {
        FORWARDED_PORT
    } else {
        0
    };
    let run = netns::msnftp_transfer(
        &bed,
        PEER,
        at,
        (&alice, &bob),
        (&file, &out),
        listen_port,
        SCENARIO,
    )
    .await?;
    let received_sha = if out.exists() {
        Some(netns::sha256(&out)?)
    } else {
        None
    };
    let rewrites = server.rewrites().await;
    Ok(Some(Outcome {
        rewrites,
        sender_mode: run.sender_mode,
        receiver_dials: run.receiver_dials,
        sender_ok: run.sender_ok,
        receiver_ok: run.receiver_ok,
        elapsed: run.elapsed,
        sent_sha: netns::sha256(&file)?,
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
    assert_eq!(o.receiver_dials, format!("CONNECTING {}", ROUTER_A_IP));
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
        &format!("to=\"{}\"", ROUTER_A_IP),
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    Ok(())
}

/// What one MSNSLP direct-connection negotiation (alice offers from client A, bob answers
/// from client B, listening) produced.
struct SlpRun {
    /// The fields of the offerer's `ANSWER` line: what arrived in the 200 OK transrespbody.
    answer: std::collections::HashMap<String, String>,
    /// The port bob listens on.
    listening: u16,
    /// The `TotalSize` of bob's 200 OK as he sent it (the offerer's `total` is what arrived).
    sent_total: u64,
    /// bob's `ACK-OK`: the offerer's ACK reported the size bob sent.
    ack_ok: bool,
    /// The offerer's line after the answer: `FALLBACK`, `CONNECTED <addr>` or `DC-FAILED`.
    outcome: String,
    /// Both ends completed the transfer, and the SHA-256 of both files.
    transferred: bool,
    sent_sha: String,
    received_sha: Option<String>,
}

/// The two MSNSLP clients of one round: bob answers on client B (`answer_listen`: a port,
/// `0` for any, or `no-listen`), then alice offers the test file from client A
/// (`offer_mode`: `plain` or `upnp:PORT`). Returns (offerer, answerer, sent file, received
/// file).
async fn spawn_slp_pair(
    bed: &Testbed,
    server: &Server,
    dir: &std::path::Path,
    round: &str,
    offer_mode: &str,
    answer_listen: &str,
) -> anyhow::Result<(Proc, Proc, std::path::PathBuf, std::path::PathBuf)> {
    let file = dir.join(format!("slp-sent-{round}.bin"));
    let out = dir.join(format!("slp-received-{round}.bin"));
    netns::write_test_file(&file, FILE_SIZE, 0x9E37_79B9_7F4A_7C15)?;
    let (alice, bob) = &server.tokens;
    let (file_s, out_s) = (
        file.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    );
    let mut answerer = bed.spawn(
        Node::ClientB,
        "slp-answerer",
        PEER,
        &[
            "slp-answer",
            &server.ns,
            &server.https,
            &server.ca,
            "bob@example.com",
            bob,
            &out_s,
            answer_listen,
        ],
    )?;
    answerer.line("ONLINE", Duration::from_secs(20)).await?;
    let offerer = bed.spawn(
        Node::ClientA,
        "slp-offerer",
        PEER,
        &[
            "slp-offer",
            &server.ns,
            &server.https,
            &server.ca,
            "alice@example.com",
            alice,
            "bob@example.com",
            &file_s,
            offer_mode,
        ],
    )?;
    Ok((offerer, answerer, file, out))
}

/// The `key=value` fields of a peer's `ANSWER`/`OFFER` line.
fn fields_of(line: &str) -> std::collections::HashMap<String, String> {
    line.split(' ')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// One MSNSLP negotiation and, if the answer says `Listening: true`, a direct connection and
/// a P2P transfer of the test file.
async fn slp_negotiation(
    bed: &Testbed,
    server: &Server,
    dir: &std::path::Path,
    round: &str,
) -> anyhow::Result<SlpRun> {
    let (mut offerer, mut answerer, file, out) =
        spawn_slp_pair(bed, server, dir, round, "plain", "0").await?;
    let answer = fields_of(&offerer.line("ANSWER ", Duration::from_secs(30)).await?);
    let listening_line = answerer.line("LISTENING ", Duration::from_secs(5)).await?;
    let mut parts = listening_line.split(' ').skip(1);
    let listening = parts.next().unwrap_or_default().parse()?;
    let sent_total = parts.next().unwrap_or_default().parse()?;
    let ack_ok = answerer
        .line("ACK-OK", Duration::from_secs(5))
        .await
        .is_ok();
    let outcome = offerer.line("", Duration::from_secs(15)).await?;
    let transferred = if outcome.starts_with("CONNECTED ") {
        let offerer_ok = offerer.exit(SCENARIO).await?;
        answerer.exit(SCENARIO).await? && offerer_ok
    } else {
        // FALLBACK or DC-FAILED: nobody will connect; bob would wait out his accept timeout.
        false
    };
    let received_sha = if transferred {
        Some(netns::sha256(&out)?)
    } else {
        None
    };
    Ok(SlpRun {
        answer,
        listening,
        sent_total,
        ack_ok,
        outcome,
        transferred,
        sent_sha: netns::sha256(&file)?,
        received_sha,
    })
}

fn field<'a>(run: &'a SlpRun, name: &str) -> &'a str {
    run.answer.get(name).map_or("", String::as_str)
}

#[tokio::test]
async fn msnslp_direct_connection_across_two_nats_fails_without_the_relay() -> anyhow::Result<()> {
    relive_tests::init_tracing();
    let Some(bed) = Testbed::create("slp-off")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let server = Server::start(&bed, dir.path(), false, false).await?;
    let run = slp_negotiation(&bed, &server, dir.path(), "off").await?;
    // Untouched: bob's private address and his router's address (ClientIP), neither of which
    // alice can reach.
    assert_eq!(field(&run, "listening"), "true");
    assert_eq!(field(&run, "int"), "10.200.2.2");
    assert_eq!(field(&run, "ext"), ROUTER_B_IP);
    assert_eq!(field(&run, "extport"), run.listening.to_string());
    assert_eq!(field(&run, "total"), run.sent_total.to_string());
    assert!(run.ack_ok);
    assert_eq!(run.outcome, "DC-FAILED");
    assert!(!run.transferred);
    Ok(())
}

#[tokio::test]
async fn msnslp_direct_connection_across_two_nats_through_the_relay() -> anyhow::Result<()> {
    relive_tests::init_tracing();
    let Some(bed) = Testbed::create("slp-on")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&bed, dir.path(), true, false).await?;

    // Nothing applies (nobody reachable, no agent): the switchboard fallback arrives —
    // `Listening: false`, zero nonce, no addresses — with every length fixed (checked by the
    // offerer) and the ACK mapped back to the size bob sent.
    let run = slp_negotiation(&bed, &server, dir.path(), "fallback").await?;
    assert_eq!(field(&run, "listening"), "false");
    assert_eq!(field(&run, "nonce"), "zero");
    for f in ["ext", "extport", "int", "intport"] {
        assert_eq!(field(&run, f), "-", "{f}");
    }
    assert_eq!(field(&run, "msgs"), "1");
    // The body shrank: every length was fixed on the way, and bob's ACK check saw his size.
    assert!(field(&run, "total").parse::<u64>()? < run.sent_total);
    assert!(run.ack_ok, "the ACK was not mapped back to bob's size");
    assert_eq!(run.outcome, "FALLBACK");
    let rewrites = server.rewrites().await;
    assert!(
        rewrites
            .iter()
            .any(|l| l.contains("mode=\"switchboard-fallback\"")
                && l.contains("field=\"Listening\"")),
        "{rewrites:?}"
    );

    // Bob runs the companion agent: mode (b), every address points at a relay port that the
    // relay carries over the agent's QUIC connection to bob's listening port.
    let _agent = server
        .agent(&bed, Node::ClientB, "bob@example.com", &server.tokens.1)
        .await?;
    let run = slp_negotiation(&bed, &server, dir.path(), "agent").await?;
    assert_eq!(field(&run, "listening"), "true");
    assert_eq!(field(&run, "nonce"), "set");
    assert_eq!(field(&run, "ext"), SERVER_IP);
    assert_eq!(field(&run, "int"), SERVER_IP);
    let port = field(&run, "extport").to_owned();
    assert_eq!(field(&run, "intport"), port);
    assert_ne!(port, run.listening.to_string(), "not a relay port");
    assert_ne!(
        field(&run, "total"),
        run.sent_total.to_string(),
        "size unchanged"
    );
    assert!(run.ack_ok, "the ACK was not mapped back to bob's size");
    assert_eq!(run.outcome, format!("CONNECTED {SERVER_IP}:{port}"));
    assert!(run.transferred, "the P2P transfer failed");
    assert_eq!(run.received_sha.as_deref(), Some(run.sent_sha.as_str()));
    let rewrites = server.rewrites().await;
    for f in [
        "IPv4External-Addrs",
        "IPv4External-Port",
        "IPv4Internal-Addrs",
        "IPv4Internal-Port",
    ] {
        assert!(
            rewrites
                .iter()
                .any(|l| l.contains("mode=\"agent\"") && l.contains(&format!("field=\"{f}\""))),
            "{f} not rewritten: {rewrites:?}"
        );
    }
    Ok(())
}

/// MSNFTP rendezvous is unverified against real clients (P2P.md §6.1): it must stay off unless
/// an operator turns it on, and the commented `relive.toml` must say what the key does.
#[test]
fn msnftp_rendezvous_is_off_by_default_and_documented() {
    use relive_server::config::{Config, default_file_text};
    assert!(!Config::default().relay.msnftp_rendezvous);
    let text = default_file_text();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "# msnftp_rendezvous = false")
        .expect("msnftp_rendezvous in relive.toml");
    let comment = lines[..at]
        .iter()
        .rev()
        .take_while(|l| !l.contains(" = "))
        .last()
        .copied()
        .unwrap_or_default();
    assert!(
        comment.starts_with("# MSNFTP rendezvous"),
        "undocumented: {comment:?}"
    );
}

#[tokio::test]
async fn msnslp_direct_connection_to_a_forwarded_port_by_the_observed_address() -> anyhow::Result<()>
{
    relive_tests::init_tracing();
    let Some(bed) = Testbed::create("slp-fwd")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&bed, dir.path(), true, false).await?;
    // Alice's router forwards the port her client mapped (UPnP); her offer says
    // `UPnPNat: true`. Bob cannot listen (`Listening: false`), so alice sends her own
    // listening transrespbody INVITE, and the relay — with her hint as evidence — lets it
    // through in observed mode instead of turning it into the switchboard fallback.
    bed.forward_port(Node::RouterA, FORWARDED_PORT)?;
    let (mut offerer, mut answerer, file, out) = spawn_slp_pair(
        &bed,
        &server,
        dir.path(),
        "fwd",
        &format!("upnp:{FORWARDED_PORT}"),
        "no-listen",
    )
    .await?;
    let answer = fields_of(&offerer.line("ANSWER ", Duration::from_secs(30)).await?);
    assert_eq!(answer.get("listening").map(String::as_str), Some("false"));
    offerer.line("INVITING ", Duration::from_secs(5)).await?;
    let offer = fields_of(&answerer.line("OFFER ", Duration::from_secs(10)).await?);
    let get = |k: &str| offer.get(k).map_or("", String::as_str);
    assert_eq!(get("listening"), "true");
    assert_eq!(get("nonce"), "set");
    assert_eq!(get("ext"), ROUTER_A_IP);
    assert_eq!(get("extport"), FORWARDED_PORT.to_string());
    assert_eq!(get("int"), "10.200.1.2");
    // Alice's private address is unreachable; her router's forwarded port is not.
    assert_eq!(
        answerer.line("CONNECTED ", Duration::from_secs(10)).await?,
        format!("CONNECTED {ROUTER_A_IP}:{FORWARDED_PORT}")
    );
    let answerer_ok = answerer.exit(SCENARIO).await?;
    let offerer_ok = offerer.exit(SCENARIO).await?;
    assert!(answerer_ok && offerer_ok, "the P2P transfer failed");
    assert_eq!(netns::sha256(&out)?, netns::sha256(&file)?);
    let decisions = server.decisions().await;
    assert!(
        decisions
            .iter()
            .any(|l| l.contains("mode=\"observed\"") && l.contains("unverified=false")),
        "{decisions:?}"
    );
    Ok(())
}
