//! The standalone relay (`relive-relay serve`'s library) driven by the server's side
//! ([`RemoteRelay`]) over real QUIC and TCP on 127.0.0.1: an agent forward carried
//! byte-exact, an unauthenticated control connection refused, a wrong agent token refused
//! by the server's verification, presence cleared when the control connection drops, and
//! two servers (the SB nodes of a cluster) driving one relay, each seeing the agent and
//! each forwarding through it.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use relive_relay::agent::{AgentConfig, AgentError, run_agent};
use relive_relay::agent_hub::{AuthFuture, Authenticate, StaticTokens};
use relive_relay::control::{self, ToRelay, ToServer};
use relive_relay::ports::PoolConfig;
use relive_relay::quic;
use relive_relay::remote::{RemoteConfig, RemoteRelay};
use relive_relay::rewrite::Allocate as _;
use relive_relay::serve::{self, RelayFiles, ServeConfig};
use relive_relay::wire::{Codec, Redacted};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ALICE: &str = "alice@example.com";
const WAIT: Duration = Duration::from_secs(20);

/// The server's verification: a token table, remembering how often it was asked.
struct ServerTokens {
    table: StaticTokens,
    asked: Mutex<usize>,
}

impl Authenticate for ServerTokens {
    fn authenticate(&self, credential: &str, from: std::net::IpAddr) -> AuthFuture {
        *self.asked.lock().unwrap() += 1;
        self.table.authenticate(credential, from)
    }
}

struct Relay {
    addr: SocketAddr,
    certs: Vec<CertificateDer<'static>>,
    secret: Vec<u8>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

/// Starts `serve::run` with files generated in a fresh directory, for one server.
async fn start_relay() -> Relay {
    start_relay_for(1).await
}

/// Starts `serve::run` for up to `servers` servers at once.
async fn start_relay_for(servers: usize) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let files = RelayFiles::in_dir(dir.path());
    let names = ["localhost".to_owned()];
    let (identity, created) = serve::load_or_create_identity(&files, &names).unwrap();
    assert!(created);
    let (secret, created) = serve::load_or_create_secret(&files.secret).unwrap();
    assert!(created && secret.len() == 64);
    // Second start: the same files are loaded, not regenerated.
    let (again, created) = serve::load_or_create_identity(&files, &names).unwrap();
    assert!(!created && again.certs == identity.certs);
    assert_eq!(
        serve::load_or_create_secret(&files.secret).unwrap().0,
        secret
    );
    let certs = identity.certs.clone();
    let socket = UdpSocket::bind((LOCAL, 0)).unwrap();
    let addr = socket.local_addr().unwrap();
    let endpoint =
        quic::server_endpoint(serve::endpoint_config(identity).unwrap(), socket).unwrap();
    let stop = CancellationToken::new();
    let mut config = ServeConfig::new(PoolConfig::new(LOCAL, 0..=0), secret.clone());
    config.servers = servers;
    tokio::spawn(serve::run(endpoint, config, stop.clone()));
    Relay {
        addr,
        certs,
        secret,
        stop,
        _dir: dir,
    }
}

fn control_endpoint(relay: &Relay) -> quinn::Endpoint {
    quic::client_endpoint(
        quic::client_config_with_alpn(&relay.certs, control::ALPN).unwrap(),
        UdpSocket::bind((LOCAL, 0)).unwrap(),
    )
    .unwrap()
}

/// The server's side, connected with `secret`.
fn start_server_side(
    relay: &Relay,
    secret: Vec<u8>,
) -> (RemoteRelay, Arc<ServerTokens>, CancellationToken) {
    let remote = RemoteRelay::new(4);
    let tokens = Arc::new(ServerTokens {
        table: StaticTokens::new([(format!("{ALICE} good-token"), ALICE.to_owned())]),
        asked: Mutex::new(0),
    });
    let stop = CancellationToken::new();
    let config = RemoteConfig {
        host: relay.addr.ip().to_string(),
        port: relay.addr.port(),
        server_name: "localhost".into(),
        secret,
    };
    tokio::spawn({
        let (remote, endpoint, tokens, stop) = (
            remote.clone(),
            control_endpoint(relay),
            Arc::clone(&tokens) as Arc<dyn Authenticate>,
            stop.clone(),
        );
        async move { remote.run(endpoint, config, tokens, stop).await }
    });
    (remote, tokens, stop)
}

async fn run_agent_with(
    (addr, certs): (SocketAddr, &[CertificateDer<'static>]),
    credential: &str,
) -> Result<(), AgentError> {
    let endpoint = quic::client_endpoint(
        quic::client_config(certs).unwrap(),
        UdpSocket::bind((LOCAL, 0)).unwrap(),
    )
    .unwrap();
    let config = AgentConfig::new(addr, "localhost", credential);
    run_agent(&endpoint, &config).await
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn a_leased_port_is_forwarded_through_the_agent_byte_exact() {
    let relay = start_relay().await;
    let (remote, tokens, _stop) = start_server_side(&relay, relay.secret.clone());
    tokio::time::timeout(WAIT, remote.wait_until(|r| r.is_up() && r.stock() >= 2))
        .await
        .expect("the server side connects and leases ports");
    // No agent yet: the forward is refused synchronously, as in embedded mode.
    assert!(remote.forward(ALICE, LOCAL, 9).is_none());

    let agent = tokio::spawn({
        let relay_addr = relay.addr;
        let certs = relay.certs.clone();
        async move { run_agent_with((relay_addr, &certs), &format!("{ALICE} good-token")).await }
    });
    tokio::time::timeout(WAIT, remote.wait_until(|r| r.connected(ALICE)))
        .await
        .expect("the relay reports the agent's presence");
    assert_eq!(*tokens.asked.lock().unwrap(), 1);

    // The MSN client's listening socket on the agent's machine.
    let upload = pattern(3 * 1024 * 1024 + 17, 0x1234_5678);
    let download = pattern(256 * 1024 + 3, 0x9abc_def0);
    let (got, back, port) = carry(&remote, &upload, download.clone()).await;
    assert!(got == upload, "upload differs ({} bytes)", got.len());
    assert!(back == download, "download differs ({} bytes)", back.len());
    // The allocation took its one connection: the port is closed now.
    assert!(TcpStream::connect((LOCAL, port)).await.is_err());

    // The control connection drops (the relay stops): presence and stock are forgotten.
    relay.stop.cancel();
    tokio::time::timeout(WAIT, remote.wait_until(|r| !r.is_up()))
        .await
        .expect("the server side notices");
    assert!(!remote.connected(ALICE));
    assert_eq!(remote.stock(), 0);
    assert!(remote.forward(ALICE, LOCAL, 9).is_none());
    agent.abort();
}

#[tokio::test]
async fn a_control_connection_without_the_secret_is_refused() {
    let relay = start_relay().await;
    // Through the server's side: never comes up.
    let mut wrong = relay.secret.clone();
    wrong[0] ^= 1;
    let (remote, _, stop) = start_server_side(&relay, wrong.clone());
    assert!(
        tokio::time::timeout(Duration::from_secs(2), remote.wait_until(|r| r.is_up()))
            .await
            .is_err()
    );
    stop.cancel();

    // On the wire: the relay answers nothing and closes with the "denied" code.
    let endpoint = control_endpoint(&relay);
    let connection = endpoint
        .connect(relay.addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = control_streams(&connection).await;
    send.send(ToRelay::Hello {
        secret: Redacted(wrong),
    })
    .await
    .unwrap();
    assert!(!matches!(recv.next().await, Some(Ok(ToServer::Welcome))));
    let reason = tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap();
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(ref c)
            if c.error_code == control::CLOSE_DENIED.into()),
        "{reason:?}"
    );

    // Garbage instead of a hello is refused too.
    let connection = endpoint
        .connect(relay.addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = control_streams(&connection).await;
    send.get_mut()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert!(!matches!(recv.next().await, Some(Ok(ToServer::Welcome))));

    // The right secret is welcomed.
    raw_control(&relay).await;
}

#[tokio::test]
async fn a_wrong_agent_token_is_refused_by_the_servers_verification() {
    let relay = start_relay().await;
    // Without a server connected, no agent gets in.
    let result = tokio::time::timeout(
        WAIT,
        run_agent_with((relay.addr, &relay.certs), &format!("{ALICE} good-token")),
    )
    .await
    .unwrap();
    assert!(matches!(result, Err(AgentError::Denied)), "{result:?}");

    let (remote, tokens, _stop) = start_server_side(&relay, relay.secret.clone());
    tokio::time::timeout(WAIT, remote.wait_until(|r| r.is_up()))
        .await
        .unwrap();
    let result = tokio::time::timeout(
        WAIT,
        run_agent_with((relay.addr, &relay.certs), &format!("{ALICE} bad-token")),
    )
    .await
    .unwrap();
    assert!(matches!(result, Err(AgentError::Denied)), "{result:?}");
    // The relay asked the server, which said no; presence never changed.
    assert_eq!(*tokens.asked.lock().unwrap(), 1);
    assert!(!remote.connected(ALICE));
}

/// The server's end of a control stream, in the protocol's framing.
type ControlSend = FramedWrite<quinn::SendStream, Codec<ToServer, ToRelay>>;
/// What the server reads from the relay.
type ControlRecv = FramedRead<quinn::RecvStream, Codec<ToServer, ToRelay>>;

/// A control stream on `connection`, framed as the server frames it.
async fn control_streams(connection: &quinn::Connection) -> (ControlSend, ControlRecv) {
    let (send, recv) = connection.open_bi().await.unwrap();
    (
        FramedWrite::new(send, control::server_codec()),
        FramedRead::new(recv, control::server_codec()),
    )
}

/// A raw control connection: the real protocol, spoken by the test itself.
async fn raw_control(
    relay: &Relay,
) -> (quinn::Connection, ControlSend, ControlRecv, quinn::Endpoint) {
    let endpoint = control_endpoint(relay);
    let connection = endpoint
        .connect(relay.addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = control_streams(&connection).await;
    send.send(ToRelay::Hello {
        secret: Redacted(relay.secret.clone()),
    })
    .await
    .unwrap();
    assert_eq!(recv.next().await.unwrap().unwrap(), ToServer::Welcome);
    (connection, send, recv, endpoint)
}

#[tokio::test]
async fn a_connection_before_the_arm_waits_and_is_judged_when_armed() {
    let relay = start_relay().await;
    let (_connection, mut send, mut recv, _endpoint) = raw_control(&relay).await;
    send.send(ToRelay::Lease { count: 2 }).await.unwrap();
    let Some(Ok(ToServer::Leased { ports })) = recv.next().await else {
        panic!("no lease");
    };
    assert_eq!(ports.len(), 2);
    let stranger_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let connect_from = |source: IpAddr, port: u16| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        socket.connect(SocketAddr::new(LOCAL, port)).await
    };
    // Both arrive before the arm: a stranger on leg 2, then the first peer on leg 1.
    let mut stranger = connect_from(stranger_ip, ports[1]).await.unwrap();
    let mut first = connect_from(LOCAL, ports[0]).await.unwrap();
    first.write_all(b"VER MSNFTP\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Armed as a rendezvous: leg 1 admits 127.0.0.1, leg 2 admits 127.0.0.1 as well.
    let arm = ToRelay::Rendezvous {
        legs: [(10, ports[0], LOCAL), (11, ports[1], LOCAL)],
        owner: ALICE.into(),
    };
    send.send(arm).await.unwrap();
    // The stranger, held in the backlog, is closed unheard once the arm says who may come.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, stranger.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let mut second = connect_from(LOCAL, ports[1]).await.unwrap();
    let mut line = [0u8; 12];
    tokio::time::timeout(WAIT, second.read_exact(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&line, b"VER MSNFTP\r\n");
    // An arm for a port that was never leased is refused.
    let bogus = ToRelay::Forward {
        id: 12,
        port: 1,
        peer: LOCAL,
        target: 9,
        user: ALICE.into(),
    };
    send.send(bogus).await.unwrap();
    assert_eq!(
        recv.next().await.unwrap().unwrap(),
        ToServer::Refused { id: 12 }
    );
    // A second hello ends the connection as a protocol error.
    send.send(ToRelay::Hello {
        secret: Redacted(relay.secret.clone()),
    })
    .await
    .unwrap();
    assert!(!matches!(
        tokio::time::timeout(WAIT, recv.next()).await.unwrap(),
        Some(Ok(_))
    ));
}

#[tokio::test]
async fn the_server_side_reconnects_after_losing_the_control_connection() {
    let relay = start_relay().await;
    let (remote, _, _stop) = start_server_side(&relay, relay.secret.clone());
    tokio::time::timeout(WAIT, remote.wait_until(|r| r.is_up() && r.stock() > 0))
        .await
        .unwrap();
    // Another control connection replaces the server's (as a restarted server would).
    let (intruder, _send, _recv, _endpoint) = raw_control(&relay).await;
    tokio::time::timeout(WAIT, remote.wait_until(|r| !r.is_up()))
        .await
        .expect("the replaced connection is noticed");
    assert_eq!(remote.stock(), 0);
    // After the backoff the server side is back, with fresh leases; the other one is out.
    tokio::time::timeout(WAIT, remote.wait_until(|r| r.is_up() && r.stock() > 0))
        .await
        .expect("reconnected");
    let reason = tokio::time::timeout(WAIT, intruder.closed()).await.unwrap();
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(ref c)
            if c.error_code == control::CLOSE_REPLACED.into()),
        "{reason:?}"
    );
}

/// Forwards one connection through `remote`'s allocation for alice to a local listener
/// standing for the MSN client on the agent's machine: `upload` goes in, the listener answers
/// `download`. Returns what the listener got, what came back, and the relay port.
async fn carry(remote: &RemoteRelay, upload: &[u8], download: Vec<u8>) -> (Vec<u8>, Vec<u8>, u16) {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let target = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(&download).await.unwrap();
        s.shutdown().await.unwrap();
        got
    });
    let allocated = remote.forward(ALICE, LOCAL, target).expect("allocated");
    // Connect at once: the arm may still be on its way (the relay holds the connection).
    let mut peer = TcpStream::connect((LOCAL, allocated.port)).await.unwrap();
    peer.write_all(upload).await.unwrap();
    peer.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, peer.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
    (got, back, allocated.port)
}

#[tokio::test]
async fn two_servers_drive_one_relay_and_both_reach_the_agent() {
    let relay = start_relay_for(2).await;
    let (first, _, _stop1) = start_server_side(&relay, relay.secret.clone());
    let (second, _, _stop2) = start_server_side(&relay, relay.secret.clone());
    for remote in [&first, &second] {
        tokio::time::timeout(WAIT, remote.wait_until(|r| r.is_up() && r.stock() >= 2))
            .await
            .expect("both server sides connect and lease ports");
    }
    let agent = tokio::spawn({
        let relay_addr = relay.addr;
        let certs = relay.certs.clone();
        async move { run_agent_with((relay_addr, &certs), &format!("{ALICE} good-token")).await }
    });
    // Both servers are told the agent is there, whichever verified it.
    for remote in [&first, &second] {
        tokio::time::timeout(WAIT, remote.wait_until(|r| r.connected(ALICE)))
            .await
            .expect("the relay reports the agent's presence to every server");
    }
    // A room on either SB node forwards through the one agent, byte-exact.
    let one = pattern(512 * 1024 + 5, 0x0102_0304);
    let two = pattern(700 * 1024 + 9, 0x0506_0708);
    let (got, back, _) = carry(&second, &two, b"ok".to_vec()).await;
    assert!(got == two && back == b"ok", "via the second server");
    let (got, back, _) = carry(&first, &one, b"ok".to_vec()).await;
    assert!(got == one && back == b"ok", "via the first server");
    // Both connections stay up: neither replaced the other.
    assert!(first.is_up() && second.is_up());
    // A third server replaces the oldest (the first), which reconnects and replaces the
    // second in turn: at most two are served at once.
    let (third, _, _stop3) = start_server_side(&relay, relay.secret.clone());
    tokio::time::timeout(WAIT, third.wait_until(|r| r.is_up()))
        .await
        .expect("the third connects");
    tokio::time::timeout(WAIT, first.wait_until(|r| !r.is_up()))
        .await
        .expect("the oldest is replaced");
    agent.abort();
}
