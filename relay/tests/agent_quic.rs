//! The companion agent over a real QUIC connection on loopback: authentication, a relayed
//! transfer through a port allocation, one-shot grants, and refusal of unannounced streams.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use relive_relay::agent::{AgentConfig, AgentError, run_agent};
use relive_relay::agent_hub::{AgentHub, StaticTokens};
use relive_relay::dial::Dial;
use relive_relay::ports::{PoolConfig, PortPool};
use relive_relay::quic::{
    Identity, client_config, client_endpoint, server_config, server_endpoint,
};
use relive_relay::rewrite::AllocationId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const USER: &str = "alice@example.com";

struct Stack {
    hub: AgentHub,
    agent_endpoint: quinn::Endpoint,
    relay_addr: SocketAddr,
}

async fn stack() -> Stack {
    let identity = Identity::self_signed(&["localhost".to_owned()]).unwrap();
    let cert = identity.certs[0].clone();
    let socket = UdpSocket::bind((LOCAL, 0)).unwrap();
    let relay_addr = socket.local_addr().unwrap();
    let endpoint = server_endpoint(server_config(identity).unwrap(), socket).unwrap();
    let hub = AgentHub::new(Arc::new(StaticTokens::new([(
        "good-token".to_owned(),
        USER.to_owned(),
    )])));
    let runner = hub.clone();
    tokio::spawn(async move { runner.run(endpoint).await });
    let agent_endpoint = client_endpoint(
        client_config(&[cert]).unwrap(),
        UdpSocket::bind((LOCAL, 0)).unwrap(),
    )
    .unwrap();
    Stack {
        hub,
        agent_endpoint,
        relay_addr,
    }
}

/// The user's MSN client: echoes whatever it receives, once.
async fn msn_listener() -> u16 {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    port
}

#[tokio::test]
async fn relayed_connection_reaches_the_users_own_port_through_the_agent() {
    let s = stack().await;
    let config = AgentConfig::new(s.relay_addr, "localhost", "good-token");
    let endpoint = s.agent_endpoint.clone();
    tokio::spawn(async move { run_agent(&endpoint, &config).await });
    s.hub.wait_for(USER).await;

    let dial: Arc<dyn Dial> = Arc::new(s.hub.clone());
    let pool = PortPool::new(PoolConfig::new(LOCAL, 0..=0), Some(dial)).unwrap();
    let msn_port = msn_listener().await;
    let allocated = pool.try_forward(USER, LOCAL, msn_port).unwrap();

    let mut visitor = TcpStream::connect((LOCAL, allocated.port)).await.unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|n| (n % 253) as u8).collect();
    let (mut r, mut w) = visitor.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut echoed = Vec::new();
    let receive = async { r.read_to_end(&mut echoed).await.unwrap() };
    tokio::join!(send, receive);
    assert_eq!(echoed, data);
    pool.wait_idle().await;
}

#[tokio::test]
async fn wrong_token_is_denied() {
    let s = stack().await;
    let config = AgentConfig::new(s.relay_addr, "localhost", "bad-token");
    let result = run_agent(&s.agent_endpoint, &config).await;
    assert!(matches!(result, Err(AgentError::Denied)), "{result:?}");
    assert!(!s.hub.connected(USER));
}

#[tokio::test]
async fn agent_serves_only_announced_allocations_and_each_once() {
    let s = stack().await;
    let config = AgentConfig::new(s.relay_addr, "localhost", "good-token");
    let endpoint = s.agent_endpoint.clone();
    tokio::spawn(async move { run_agent(&endpoint, &config).await });
    s.hub.wait_for(USER).await;
    let msn_port = msn_listener().await;

    // Not announced: the agent refuses the stream (after waiting for a grant).
    let mut stream = s.hub.dial(USER, AllocationId(41), msn_port).await.unwrap();
    let _ = stream.write_all(b"hello").await;
    let mut buf = [0u8; 5];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .unwrap();
    assert!(read.is_err() || read.unwrap() == 0);

    // Announced: one stream gets through...
    assert!(s.hub.announce(USER, AllocationId(42), msn_port));
    let mut stream = s.hub.dial(USER, AllocationId(42), msn_port).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    // ...and a second stream with the same allocation does not.
    let mut again = s.hub.dial(USER, AllocationId(42), msn_port).await.unwrap();
    let _ = again.write_all(b"hello").await;
    let read = tokio::time::timeout(Duration::from_secs(10), again.read(&mut buf))
        .await
        .unwrap();
    assert!(read.is_err() || read.unwrap() == 0);

    // Another user has no agent: nothing to announce to.
    assert!(
        !s.hub
            .announce("bob@example.com", AllocationId(43), msn_port)
    );
}

/// One address holds at most `MAX_CONNECTIONS_PER_SOURCE` connections (handshaking or not yet
/// authenticated) with the agent endpoint; one more is refused before its handshake, and a
/// place comes free when a connection ends.
#[tokio::test]
async fn one_address_holds_at_most_its_share_of_quic_connections() {
    use relive_relay::agent_hub::MAX_CONNECTIONS_PER_SOURCE;
    let s = stack().await;
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_SOURCE {
        // Connected, and then silent: the hub waits for a hello that never comes.
        let c = s
            .agent_endpoint
            .connect(s.relay_addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        held.push(c);
    }
    let refused = s
        .agent_endpoint
        .connect(s.relay_addr, "localhost")
        .unwrap()
        .await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))),
        "{refused:?}"
    );
    // A connection that ends gives its place back.
    let one = held.pop().unwrap();
    one.close(0u32.into(), b"bye");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let again = s
                .agent_endpoint
                .connect(s.relay_addr, "localhost")
                .unwrap()
                .await;
            if let Ok(c) = again {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
}
