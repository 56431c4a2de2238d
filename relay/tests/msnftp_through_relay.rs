//! Library-level end-to-end: the rewriter's output drives real MSNFTP sessions through the
//! relay's port pool on loopback (agent forward and rendezvous). The NAT-namespace tests that
//! run real routers belong to the `tests` crate.

#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use relive_relay::dial::{Dial, TcpDial};
use relive_relay::ports::{PoolConfig, PortPool};
use relive_relay::rewrite::{
    ClientGeneration, Delivery, Hop, Outcome, Peer, PeerFacts, Policy, RoomRelay,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const RECEIVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SENDER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HEAD: &str = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n";
const FILE_BYTES: usize = 300_000;

fn file() -> Vec<u8> {
    (0..FILE_BYTES).map(|n| (n * 7 % 251) as u8).collect()
}

fn invite() -> String {
    format!(
        "{HEAD}Application-Name: File Transfer\r\nApplication-GUID: {{5D3E02AB-6190-11d3-BBBB-00C04F795683}}\r\n\
         Invitation-Command: INVITE\r\nInvitation-Cookie: 123456\r\nApplication-File: notes.txt\r\n\
         Application-FileSize: {FILE_BYTES}\r\n\r\n"
    )
}

fn plain_accept() -> String {
    format!(
        "{HEAD}Invitation-Command: ACCEPT\r\nInvitation-Cookie: 123456\r\nLaunch-Application: FALSE\r\n\
         Request-Data: IP-Address:\r\n\r\n"
    )
}

fn field(payload: &[u8], key: &str) -> String {
    let text = std::str::from_utf8(payload).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{key} missing"))
        .to_owned()
}

fn only(outcome: &Outcome) -> Bytes {
    match &outcome.deliver {
        Delivery::Replace(list) if list.len() == 1 => list[0].clone(),
        other => panic!("expected one replacement, got {other:?}"),
    }
}

async fn connect_from(source: IpAddr, ip: &str, port: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let addr = SocketAddr::new(ip.parse().unwrap(), port.parse().unwrap());
    socket.connect(addr).await.unwrap()
}

/// Connects from `source` to the `IP-Address` and `Port` that `message` advertises.
async fn connect_to_advertised(source: IpAddr, message: &[u8]) -> TcpStream {
    connect_from(
        source,
        &field(message, "IP-Address"),
        &field(message, "Port"),
    )
    .await
}

/// The receiving side of an MSNFTP session (it always speaks first).
async fn msnftp_receiver(stream: TcpStream, handle: &str, auth_cookie: &str) -> Vec<u8> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    w.write_all(b"VER MSNFTP\r\n").await.unwrap();
    r.read_line(&mut line).await.unwrap();
    assert_eq!(line, "VER MSNFTP\r\n");
    w.write_all(format!("USR {handle} {auth_cookie}\r\n").as_bytes())
        .await
        .unwrap();
    line.clear();
    r.read_line(&mut line).await.unwrap();
    let size: usize = line
        .trim_end()
        .strip_prefix("FIL ")
        .unwrap()
        .parse()
        .unwrap();
    w.write_all(b"TFR\r\n").await.unwrap();
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        let mut header = [0u8; 3];
        r.read_exact(&mut header).await.unwrap();
        assert_eq!(header[0], 0, "sender cancelled");
        let len = usize::from(u16::from_le_bytes([header[1], header[2]]));
        let start = data.len();
        data.resize(start + len, 0);
        r.read_exact(&mut data[start..]).await.unwrap();
    }
    w.write_all(b"BYE 16777989\r\n").await.unwrap();
    data
}

/// The sending side: answers the receiver, checks the cookie, sends blocks of 2045 bytes.
async fn msnftp_sender(stream: TcpStream, auth_cookie: &str, data: &[u8]) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    assert_eq!(line, "VER MSNFTP\r\n");
    w.write_all(b"VER MSNFTP\r\n").await.unwrap();
    line.clear();
    r.read_line(&mut line).await.unwrap();
    assert_eq!(line, format!("USR bob@example.com {auth_cookie}\r\n"));
    w.write_all(format!("FIL {}\r\n", data.len()).as_bytes())
        .await
        .unwrap();
    line.clear();
    r.read_line(&mut line).await.unwrap();
    assert_eq!(line, "TFR\r\n");
    for block in data.chunks(2045) {
        let len = u16::try_from(block.len()).unwrap().to_le_bytes();
        w.write_all(&[0, len[0], len[1]]).await.unwrap();
        w.write_all(block).await.unwrap();
    }
    line.clear();
    r.read_line(&mut line).await.unwrap();
    assert_eq!(line, "BYE 16777989\r\n");
}

fn peers(generation: ClientGeneration) -> (Peer, Peer) {
    (
        Peer {
            handle: "alice@example.com".into(),
            facts: PeerFacts::new(SENDER_IP, generation),
        },
        Peer {
            handle: "bob@example.com".into(),
            facts: PeerFacts::new(RECEIVER_IP, generation),
        },
    )
}

/// The two directions of a two-person room: (alice to bob, bob to alice).
fn hops<'a>(alice: &'a Peer, bob: &'a Peer) -> (Hop<'a>, Hop<'a>) {
    let hop = |sender, recipient| Hop {
        sender,
        recipient,
        room_size: 2,
    };
    (hop(alice, bob), hop(bob, alice))
}

/// A relay port pool on 127.0.0.1 with OS-chosen ports.
fn loopback_pool(dial: Option<Arc<dyn Dial>>) -> PortPool {
    PortPool::new(
        PoolConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0..=0),
        dial,
    )
    .unwrap()
}

#[tokio::test]
async fn agent_forward_carries_an_msnftp_transfer() {
    let dial: Arc<dyn Dial> = Arc::new(TcpDial {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
    });
    let pool = loopback_pool(Some(dial));
    let policy = Policy::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (mut alice, bob) = peers(ClientGeneration::Msn5);
    alice.facts.agent = true;
    let mut room = RoomRelay::new();
    let (to_bob, to_alice) = hops(&alice, &bob);
    let now = Instant::now();
    // alice's MSNFTP listener, on a port only "her agent" (TcpDial) reaches.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let alice_port = listener.local_addr().unwrap().port();
    let data = file();
    let sender = async {
        let (stream, _) = listener.accept().await.unwrap();
        msnftp_sender(stream, "98765", &data).await;
    };

    let out = room.rewrite(&policy, &pool, &to_bob, invite().as_bytes(), now);
    assert_eq!(out.deliver, Delivery::Unchanged);
    let out = room.rewrite(&policy, &pool, &to_alice, plain_accept().as_bytes(), now);
    assert_eq!(out.deliver, Delivery::Unchanged);
    let accept = format!(
        "{HEAD}Invitation-Command: ACCEPT\r\nInvitation-Cookie: 123456\r\nIP-Address: 192.168.1.10\r\n\
         IP-Address-Internal: 192.168.1.10\r\nPort: {alice_port}\r\nPortX: {}\r\nAuthCookie: 98765\r\n\
         Launch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n",
        alice_port ^ 0x3141
    );
    let rewritten = only(&room.rewrite(&policy, &pool, &to_bob, accept.as_bytes(), now));
    let (ip, port) = (field(&rewritten, "IP-Address"), field(&rewritten, "Port"));
    assert_eq!(ip, "127.0.0.1");
    assert_ne!(port, alice_port.to_string());
    assert_eq!(pool.active(), 1);

    let receiver = async {
        let stream = connect_from(RECEIVER_IP, &ip, &port).await;
        msnftp_receiver(stream, "bob@example.com", &field(&rewritten, "AuthCookie")).await
    };
    let (got, ()) = tokio::join!(receiver, sender);
    assert_eq!(got, data);
    pool.wait_idle().await;
}

#[tokio::test]
async fn rendezvous_carries_an_msnftp_transfer_with_both_sides_dialling_out() {
    let pool = loopback_pool(None);
    let mut policy = Policy::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    policy.msnftp_rendezvous = true;
    let (alice, bob) = peers(ClientGeneration::Msn5);
    let mut room = RoomRelay::new();
    let (to_bob, to_alice) = hops(&alice, &bob);
    let now = Instant::now();
    let out = room.rewrite(&policy, &pool, &to_bob, invite().as_bytes(), now);
    assert_eq!(out.deliver, Delivery::Unchanged);
    let out = room.rewrite(&policy, &pool, &to_alice, plain_accept().as_bytes(), now);
    let for_alice = only(&out);
    let for_bob = out.to_sender[0].clone();
    assert_eq!(field(&for_alice, "Sender-Connect"), "TRUE");
    let data = file();
    // alice (Sender-Connect) dials her leg and waits for the receiver to speak first.
    let sender = async {
        let stream = connect_to_advertised(SENDER_IP, &for_alice).await;
        msnftp_sender(stream, &field(&for_alice, "AuthCookie"), &data).await;
    };
    let receiver = async {
        let stream = connect_to_advertised(RECEIVER_IP, &for_bob).await;
        msnftp_receiver(stream, "bob@example.com", &field(&for_bob, "AuthCookie")).await
    };
    let (got, ()) = tokio::join!(receiver, sender);
    assert_eq!(got, data);
    pool.wait_idle().await;
}
