//! Relay throughput on loopback versus a direct TCP transfer, in the same run.
//!
//! `cargo bench -p relive-relay --bench splice` moves `RELIVE_BENCH_MIB` MiB (default 1024)
//! three times per path and prints the best Gbit/s of each and its ratio to direct TCP:
//!
//! * relay splice: a `PortPool` allocation (one connection, expected peer checked) forwarded
//!   with `TcpDial` and spliced with the default buffers;
//! * QUIC agent: the same allocation forwarded over a real QUIC connection to a companion
//!   agent (`AgentHub` + `run_agent`, TLS 1.3 with ring), which dials the sink locally.
//!
//! Under `cargo test` (no `--bench` argument) it moves 8 MiB once, as a smoke test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relive_relay::agent::{AgentConfig, run_agent};
use relive_relay::agent_hub::{AgentHub, StaticTokens};
use relive_relay::dial::{Dial, TcpDial};
use relive_relay::ports::{PoolConfig, PortPool};
use relive_relay::quic::{
    Identity, client_config, client_endpoint, server_config, server_endpoint,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const CHUNK: usize = 64 * 1024;
const USER: &str = "bench@example.com";

/// A relay QUIC endpoint with an agent hub, and a connected agent; returns the hub.
async fn agent_path() -> AgentHub {
    let identity = Identity::self_signed(&["localhost".to_owned()]).expect("certificate");
    let cert = identity.certs[0].clone();
    let socket = std::net::UdpSocket::bind((LOCAL, 0)).expect("bind udp");
    let relay_addr = socket.local_addr().expect("udp address");
    let endpoint =
        server_endpoint(server_config(identity).expect("server config"), socket).expect("endpoint");
    let hub = AgentHub::new(Arc::new(StaticTokens::new([(
        "bench-token".to_owned(),
        USER.to_owned(),
    )])));
    let runner = hub.clone();
    tokio::spawn(async move { runner.run(endpoint).await });
    let agent = client_endpoint(
        client_config(&[cert]).expect("client config"),
        std::net::UdpSocket::bind((LOCAL, 0)).expect("bind udp"),
    )
    .expect("agent endpoint");
    let config = AgentConfig::new(relay_addr, "localhost", "bench-token");
    tokio::spawn(async move { run_agent(&agent, &config).await });
    hub.wait_for(USER).await;
    hub
}

/// A sink that counts bytes until EOF; returns its address and the count's handle.
async fn sink() -> (SocketAddr, tokio::task::JoinHandle<u64>) {
    let listener = TcpListener::bind((LOCAL, 0)).await.expect("bind sink");
    let addr = listener.local_addr().expect("sink address");
    let handle = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    });
    (addr, handle)
}

async fn send(addr: SocketAddr, bytes: u64) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let buf = vec![0xA5u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64)).expect("chunk fits");
        stream.write_all(&buf[..n]).await.expect("write");
        left -= n as u64;
    }
    stream.shutdown().await.expect("shutdown");
}

async fn direct(bytes: u64) -> Duration {
    let (addr, counted) = sink().await;
    let start = Instant::now();
    send(addr, bytes).await;
    assert_eq!(counted.await.expect("sink"), bytes);
    start.elapsed()
}

async fn relayed(pool: &PortPool, bytes: u64) -> Duration {
    let (addr, counted) = sink().await;
    let allocated = pool
        .try_forward(USER, LOCAL, addr.port())
        .expect("allocate");
    let start = Instant::now();
    send(SocketAddr::new(LOCAL, allocated.port), bytes).await;
    assert_eq!(counted.await.expect("sink"), bytes);
    start.elapsed()
}

fn gbits(bytes: u64, time: Duration) -> f64 {
    bytes as f64 * 8.0 / time.as_secs_f64() / 1e9
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mib: u64 = if bench {
        std::env::var("RELIVE_BENCH_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024)
    } else {
        8
    };
    let rounds = if bench { 3 } else { 1 };
    let bytes = mib * 1024 * 1024;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dial: Arc<dyn Dial> = Arc::new(TcpDial { host: LOCAL });
        let pool = PortPool::new(PoolConfig::new(LOCAL, 0..=0), Some(dial)).expect("pool");
        let hub: Arc<dyn Dial> = Arc::new(agent_path().await);
        let quic_pool = PortPool::new(PoolConfig::new(LOCAL, 0..=0), Some(hub)).expect("pool");
        let mut best_direct = Duration::MAX;
        let mut best_relay = Duration::MAX;
        let mut best_quic = Duration::MAX;
        for _ in 0..rounds {
            best_direct = best_direct.min(direct(bytes).await);
            best_relay = best_relay.min(relayed(&pool, bytes).await);
            best_quic = best_quic.min(relayed(&quic_pool, bytes).await);
        }
        let d = gbits(bytes, best_direct);
        let r = gbits(bytes, best_relay);
        let q = gbits(bytes, best_quic);
        println!("bytes per run      {bytes} ({mib} MiB), best of {rounds}");
        println!("direct TCP         {d:.2} Gbit/s");
        println!("relay splice       {r:.2} Gbit/s   ratio {:.2}", r / d);
        println!("QUIC agent         {q:.2} Gbit/s   ratio {:.2}", q / d);
    });
}
