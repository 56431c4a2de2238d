//! The Companion page end to end: the real worker runs the real agent against a real relay
//! `AgentHub` over QUIC on loopback; the hub relays one stream to a local echo listener, and
//! the worker's events, folded into the reducer, show the connection, the port and the bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relive_gui::companion::CompanionEvent;
use relive_gui::state::{Action, AgentStatus, Secret, Settings, UiState};
use relive_gui::worker::{Worker, WorkerEvent};
use relive_relay::agent_hub::{AgentHub, StaticTokens};
use relive_relay::dial::Dial;
use relive_relay::quic::{Identity, server_config, server_endpoint};
use relive_relay::rewrite::AllocationId;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const USER: &str = "alice@example.com";
const TOKEN: &str = "tok";
/// Longest wait for any one event.
const WAIT: Duration = Duration::from_secs(20);
/// Bytes sent through the relayed stream (and echoed back).
const SIZE: usize = 48 * 1024;

/// Folds worker events into `state` until one matches `want`; returns it. Bounded by [`WAIT`].
fn wait_for(
    worker: &Worker,
    state: &mut UiState,
    want: impl Fn(&CompanionEvent) -> bool,
) -> CompanionEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = worker
            .recv_timeout(left)
            .expect("the awaited companion event did not come in time");
        let WorkerEvent::Companion { event: inner, .. } = &event else {
            panic!("unexpected worker event {event:?}");
        };
        let inner = inner.clone();
        assert!(
            !matches!(
                inner,
                CompanionEvent::Denied | CompanionEvent::Failed(_) | CompanionEvent::Stopped
            ) || want(&inner),
            "companion ended early: {inner:?}"
        );
        state.on_event(event);
        if want(&inner) {
            return inner;
        }
    }
}

/// A relay hub on 127.0.0.1:0 with an rcgen certificate for 127.0.0.1, its PEM written to
/// `ca_file`. Returns the hub and its address.
async fn hub(ca_file: &std::path::Path) -> (AgentHub, SocketAddr) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(ca_file, certified.cert.pem()).unwrap();
    let identity = Identity {
        certs: vec![certified.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        )),
    };
    let socket = UdpSocket::bind((LOCAL, 0)).unwrap();
    let addr = socket.local_addr().unwrap();
    let endpoint = server_endpoint(server_config(identity).unwrap(), socket).unwrap();
    let hub = AgentHub::new(Arc::new(StaticTokens::new([(
        format!("{USER} {TOKEN}"),
        USER.to_owned(),
    )])));
    let runner = hub.clone();
    tokio::spawn(async move { runner.run(endpoint).await });
    (hub, addr)
}

/// The user's MSN client: echoes one connection.
async fn echo_listener() -> u16 {
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

#[test]
fn companion_connects_relays_a_stream_and_reports_it_on_the_page() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("relive-ca.crt");
    let (hub, relay_addr) = rt.block_on(hub(&ca_file));

    // The page, filled in as the user would, asks the worker for the agent.
    let mut state = UiState::new(Settings::default(), false);
    state.settings.ca_file = Some(ca_file);
    state.apply(Action::SetCompanionServer(format!(
        "127.0.0.1:{}",
        relay_addr.port()
    )));
    state.apply(Action::SetCompanionHandle(USER.to_owned()));
    state.apply(Action::SetCompanionToken(Secret(TOKEN.to_owned())));
    let worker = Worker::spawn(|| {}).unwrap();
    let jobs = state.apply(Action::StartCompanion);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    for job in jobs {
        worker.send(job);
    }

    let connected = wait_for(&worker, &mut state, |e| {
        matches!(e, CompanionEvent::Connected { .. })
    });
    assert_eq!(
        connected,
        CompanionEvent::Connected {
            user: USER.to_owned()
        }
    );
    assert!(hub.connected(USER));

    // The relay grants the echo listener's port, then relays one stream to it.
    let port = rt.block_on(echo_listener());
    assert!(hub.announce(USER, AllocationId(7), port));
    let granted = wait_for(&worker, &mut state, |e| {
        matches!(e, CompanionEvent::Granted { .. })
    });
    assert_eq!(granted, CompanionEvent::Granted { port });

    let data: Vec<u8> = (0..SIZE).map(|n| (n % 251) as u8).collect();
    let stream = rt.block_on(hub.dial(USER, AllocationId(7), port)).unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    let echoed = rt.block_on(async {
        let mut echoed = vec![0u8; SIZE];
        let (written, read) = tokio::join!(w.write_all(&data), r.read_exact(&mut echoed));
        written.unwrap();
        read.unwrap();
        echoed
    });
    assert_eq!(echoed, data);

    let started = wait_for(&worker, &mut state, |e| {
        matches!(e, CompanionEvent::TransferStarted { .. })
    });
    let CompanionEvent::TransferStarted {
        id,
        port: started_port,
        ..
    } = started
    else {
        unreachable!("matched above");
    };
    assert_eq!((id, started_port), (7, port));

    // While the stream stays open, the sampler reports the bytes carried so far.
    let n = SIZE as u64;
    wait_for(&worker, &mut state, |e| {
        matches!(e, CompanionEvent::TransferBytes { id: 7, to_local, to_relay, .. }
            if *to_local == n && *to_relay == n)
    });
    assert_eq!(state.companion.transfers.len(), 1);
    assert!(!state.companion.transfers[0].done);
    assert_eq!(state.companion.transfers[0].total(), 2 * n);

    // Closing our side ends the echo, then the transfer.
    let rest = rt.block_on(async {
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        rest
    });
    assert!(rest.is_empty());
    let ended = wait_for(&worker, &mut state, |e| {
        matches!(e, CompanionEvent::TransferEnded { .. })
    });
    assert!(
        matches!(
            ended,
            CompanionEvent::TransferEnded { id: 7, to_local, to_relay, error: None, .. }
                if to_local == n && to_relay == n
        ),
        "{ended:?}"
    );

    // The page shows it all.
    assert_eq!(
        state.companion.status,
        AgentStatus::Connected {
            user: USER.to_owned()
        }
    );
    assert_eq!(state.companion.ports, vec![port]);
    let transfer = &state.companion.transfers[0];
    assert_eq!((transfer.id, transfer.port), (7, port));
    assert_eq!((transfer.to_local, transfer.to_relay), (n, n));
    assert!(transfer.done);
    assert_eq!(transfer.error, None);
    assert_eq!(transfer.bytes_per_sec, 0);

    // Stop.
    let jobs = state.apply(Action::StopCompanion);
    assert_eq!(state.companion.status, AgentStatus::Stopping);
    for job in jobs {
        worker.send(job);
    }
    wait_for(&worker, &mut state, |e| *e == CompanionEvent::Stopped);
    assert_eq!(state.companion.status, AgentStatus::Off);
}
