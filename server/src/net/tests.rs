//! Socket-level tests of the driver and of `run`: real listeners on 127.0.0.1 port 0.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

use crate::testing::{account, context, md5hex};
use crate::{Context, Listeners, run_with};

/// Generous bound for one expected line on a loaded 2-core machine.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::connect_from(addr, [127, 0, 0, 1]).await
    }

    /// Connects from `local` (Linux routes all of 127/8 on `lo`).
    async fn connect_from(addr: std::net::SocketAddr, local: [u8; 4]) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((local, 0).into()).unwrap();
        let (r, w) = socket.connect(addr).await.unwrap().into_split();
        Self {
            r: BufReader::new(r),
            w,
        }
    }

    async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    async fn send_payload(&mut self, head: &str, payload: &str) {
        let b = format!("{head} {}\r\n{payload}", payload.len());
        self.w.write_all(b.as_bytes()).await.unwrap();
    }

    /// The next line without CRLF; `None` on EOF.
    async fn line(&mut self) -> Option<String> {
        let mut s = String::new();
        let n = tokio::time::timeout(LINE_TIMEOUT, self.r.read_line(&mut s))
            .await
            .expect("line in time")
            .ok()?;
        (n > 0).then(|| s.trim_end_matches("\r\n").to_owned())
    }

    /// Reads a payload of `len` bytes.
    async fn payload(&mut self, len: usize) -> String {
        let mut b = vec![0; len];
        self.r.read_exact(&mut b).await.unwrap();
        String::from_utf8(b).unwrap()
    }

    /// Waits for EOF (or a reset), skipping lines.
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match tokio::time::timeout(LINE_TIMEOUT, self.r.read(&mut b)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// MD5 login, profile skipped, `SYN 0` answered, `CHG NLN` sent and echoed.
    async fn login(&mut self, handle: &str, token: &str) {
        self.send("VER 1 MSNP7 CVR0").await;
        assert_eq!(self.line().await.unwrap(), "VER 1 MSNP7");
        self.send(&format!("USR 2 MD5 I {handle}")).await;
        let ch = self.line().await.unwrap();
        let ch = ch.strip_prefix("USR 2 MD5 S ").unwrap().to_owned();
        self.send(&format!("USR 3 MD5 S {}", md5hex(&ch, token)))
            .await;
        assert!(self.line().await.unwrap().starts_with("USR 3 OK "));
        let msg = self.line().await.unwrap();
        let len: usize = msg.rsplit(' ').next().unwrap().parse().unwrap();
        self.payload(len).await;
        self.send("CHG 4 NLN").await;
        assert_eq!(self.line().await.unwrap(), "CHG 4 NLN");
    }
}

struct Server {
    ns: std::net::SocketAddr,
    http: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), crate::Error>>,
}

async fn start(ctx: Context) -> Server {
    let bind = || TcpListener::bind("127.0.0.1:0");
    let listeners = Listeners {
        ns: bind().await.unwrap(),
        sb: bind().await.unwrap(),
        http: bind().await.unwrap(),
        https: bind().await.unwrap(),
        legacy_tls: None,
    };
    let ns = listeners.ns.local_addr().unwrap();
    let http = listeners.http.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_with(ctx, listeners, shutdown.clone()));
    Server {
        ns,
        http,
        shutdown,
        task,
    }
}

#[tokio::test]
async fn login_syn_chg_and_a_switchboard_chat_over_run() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let tb = account(&ctx, "bob@example.com", "Bob").await;
    let server = start(ctx.clone()).await;

    let mut alice = Client::connect(server.ns).await;
    alice.login("alice@example.com", &ta).await;
    // Bob's socket has a tiny receive buffer, so his side fills up soon once he stops reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let (r, w) = socket.connect(server.ns).await.unwrap().into_split();
    let mut bob = Client {
        r: BufReader::new(r),
        w,
    };
    bob.login("bob@example.com", &tb).await;
    bob.send("SYN 5 0").await;
    // No cache (0): the whole MSNP7 dump comes back, ending with the RL list.
    assert_eq!(bob.line().await.unwrap(), "SYN 5 0");
    while !bob.line().await.unwrap().starts_with("LST 5 RL ") {}

    alice.send("XFR 5 SB").await;
    let xfr = alice.line().await.unwrap();
    let mut parts = xfr.split(' ').skip(3);
    let addr: std::net::SocketAddr = parts.next().unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0, "advertises the SB listener's real port");
    let cookie = parts.nth(1).unwrap().to_owned();
    let mut asb = Client::connect(addr).await;
    asb.send(&format!("USR 1 alice@example.com {cookie}")).await;
    assert_eq!(
        asb.line().await.unwrap(),
        "USR 1 OK alice@example.com Alice"
    );
    asb.send("CAL 2 bob@example.com").await;
    let ringing = asb.line().await.unwrap();
    let session = ringing.strip_prefix("CAL 2 RINGING ").unwrap().to_owned();
    let rng = bob.line().await.unwrap();
    let fields: Vec<&str> = rng.split(' ').collect();
    assert_eq!(
        (
            fields[0], fields[1], fields[2], fields[3], fields[5], fields[6]
        ),
        (
            "RNG",
            session.as_str(),
            addr.to_string().as_str(),
            "CKI",
            "alice@example.com",
            "Alice"
        )
    );
    let mut bsb = Client::connect(addr).await;
    bsb.send(&format!("ANS 1 bob@example.com {} {session}", fields[4]))
        .await;
    assert_eq!(
        bsb.line().await.unwrap(),
        "IRO 1 1 1 alice@example.com Alice"
    );
    assert_eq!(bsb.line().await.unwrap(), "ANS 1 OK");
    assert_eq!(asb.line().await.unwrap(), "JOI bob@example.com Bob");
    let text = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nHi Bob";
    asb.send_payload("MSG 3 A", text).await;
    assert_eq!(asb.line().await.unwrap(), "ACK 3");
    assert_eq!(
        bsb.line().await.unwrap(),
        format!("MSG alice@example.com Alice {}", text.len())
    );
    assert_eq!(bsb.payload(text.len()).await, text);

    // Over the 1664-byte limit: Alice's SB connection is closed and nothing is relayed; Bob
    // sees her leave.
    asb.send_payload("MSG 4 A", &"x".repeat(1665)).await;
    assert!(asb.closed().await);
    assert_eq!(bsb.line().await.unwrap(), "BYE alice@example.com");

    // Shutdown: NS clients get OUT SSD, every connection closes, run returns.
    server.shutdown.cancel();
    assert_eq!(alice.line().await.unwrap(), "OUT SSD");
    assert!(alice.closed().await && bsb.closed().await);
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn byte_at_a_time_writes_and_a_framing_error_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let server = start(ctx).await;
    let mut good = Client::connect(server.ns).await;
    let mut bad = Client::connect(server.ns).await;
    for b in b"VER 1 MSNP7 CVR0\r\nINF 2\r\n" {
        good.w.write_all(&[*b]).await.unwrap();
        good.w.flush().await.unwrap();
    }
    assert_eq!(good.line().await.unwrap(), "VER 1 MSNP7");
    assert_eq!(good.line().await.unwrap(), "INF 2 MD5");
    bad.send("VER 1 MSNP7 CVR0").await;
    assert_eq!(bad.line().await.unwrap(), "VER 1 MSNP7");
    bad.send("lowercase 2").await;
    assert!(bad.closed().await);
    // An over-long line without a newline is a framing error too.
    let mut long = Client::connect(server.ns).await;
    long.w.write_all(&[b'A'; 5000]).await.unwrap();
    assert!(long.closed().await);
    good.send("USR 3 MD5 I alice@example.com").await;
    let ch = good.line().await.unwrap();
    let ch = ch.strip_prefix("USR 3 MD5 S ").unwrap().to_owned();
    good.send(&format!("USR 4 MD5 S {}", md5hex(&ch, &ta)))
        .await;
    assert_eq!(
        good.line().await.unwrap(),
        "USR 4 OK alice@example.com Alice 1"
    );
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_reader_that_never_reads_does_not_stall_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path(), |_| {}).await;
    // Tiny outboxes, so the never-reading watcher overflows quickly.
    ctx.outboxes = std::sync::Arc::new(crate::hub::OutboxFactory::new(4));
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let tb = account(&ctx, "bob@example.com", "Bob").await;
    let server = start(ctx).await;
    // Bob's socket has a tiny receive buffer, so his side fills up soon once he stops reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let (r, w) = socket.connect(server.ns).await.unwrap().into_split();
    let mut bob = Client {
        r: BufReader::new(r),
        w,
    };
    bob.login("bob@example.com", &tb).await;
    bob.send("ADD 5 FL alice@example.com Alice").await;
    assert!(bob.line().await.unwrap().starts_with("ADD 5 FL "));
    let mut alice = Client::connect(server.ns).await;
    alice.login("alice@example.com", &ta).await;
    // Bob stops reading. Alice flips her status many times: every reply arrives promptly.
    let statuses = ["AWY", "BSY", "BRB", "PHN", "LUN", "NLN"];
    for i in 0..1000u32 {
        let st = statuses[(i as usize) % statuses.len()];
        alice.send(&format!("CHG {} {st}", 10 + i)).await;
        let mut line = alice.line().await.unwrap();
        // The RL notification from Bob's ADD may come first.
        if line.starts_with("ADD 0 RL") {
            line = alice.line().await.unwrap();
        }
        assert_eq!(line, format!("CHG {} {st}", 10 + i));
    }
    // (Whether Bob's outbox overflowed depends on the kernel's socket buffers; the hub's own
    // tests cover the overflow → disconnect rule. Here: Alice never waited for him.)
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_watcher_whose_pipe_is_full_is_cut_off_while_others_carry_on() {
    use crate::testing::Harness;
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path(), |_| {}).await;
    ctx.outboxes = std::sync::Arc::new(crate::hub::OutboxFactory::new(4));
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let tb = account(&ctx, "bob@example.com", "Bob").await;
    // Bob runs over the real driver on a 256-byte pipe.
    let (client, server) = tokio::io::duplex(256);
    let (outbox, events) = ctx.outboxes.create();
    let bob_outbox = outbox.clone();
    let peer = "192.0.2.2:40000".parse().unwrap();
    let svc = crate::notification::NsService::new(std::sync::Arc::new(ctx.clone()), peer, outbox);
    let driver = tokio::spawn(super::conn::Connection::new(server, svc, events));
    let (r, mut w) = tokio::io::split(client);
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut next = async |r: &mut BufReader<_>| {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        line.trim_end().to_owned()
    };
    w.write_all(b"VER 1 MSNP7\r\nUSR 2 MD5 I bob@example.com\r\n")
        .await
        .unwrap();
    assert_eq!(next(&mut r).await, "VER 1 MSNP7");
    let ch = next(&mut r).await;
    let ch = ch.strip_prefix("USR 2 MD5 S ").unwrap().to_owned();
    w.write_all(format!("USR 3 MD5 S {}\r\n", md5hex(&ch, &tb)).as_bytes())
        .await
        .unwrap();
    assert!(next(&mut r).await.starts_with("USR 3 OK"));
    w.write_all(b"ADD 4 FL alice@example.com Alice\r\nCHG 5 NLN\r\n")
        .await
        .unwrap();
    // Both are applied (so Alice's RL holds Bob when she logs in) before Bob stops reading.
    // (The profile MSG comes first; skip its lines.)
    let mut skipped = 0;
    while !next(&mut r).await.starts_with("ADD 4 FL ") {
        skipped += 1;
        assert!(skipped < 64, "no ADD reply");
    }
    assert_eq!(next(&mut r).await, "CHG 5 NLN");
    // Bob stops reading here. Alice keeps changing status; each change is one NLN for Bob.
    let mut alice = Harness::login(&ctx, "MSNP7", "alice@example.com", &ta).await;
    for i in 0..200u32 {
        let st = ["AWY", "BSY"][(i % 2) as usize];
        assert_eq!(
            alice.send(&format!("CHG {} {st}", 10 + i)).await,
            [format!("CHG {} {st}", 10 + i)]
        );
    }
    // Bob's pipe filled, his outbox overflowed, and the hub cut him off.
    assert!(bob_outbox.is_too_slow());
    drop(bob_outbox);
    tokio::time::timeout(LINE_TIMEOUT, driver)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.hub.len(), 1, "only Alice is still online");
}

/// An NS driver over an in-memory pipe of `pipe` bytes; returns the client end, the
/// connection's outbox and the driver task.
fn piped_ns(
    ctx: &Context,
    pipe: usize,
) -> (
    tokio::io::DuplexStream,
    crate::hub::Outbox,
    tokio::task::JoinHandle<()>,
) {
    let (client, server) = tokio::io::duplex(pipe);
    let (outbox, inbox) = ctx.outboxes.create();
    let peer = "192.0.2.3:40000".parse().unwrap();
    let svc =
        crate::notification::NsService::new(std::sync::Arc::new(ctx.clone()), peer, outbox.clone());
    let driver = tokio::spawn(super::conn::Connection::new(server, svc, inbox));
    (client, outbox, driver)
}

#[tokio::test]
async fn events_queued_while_a_write_is_stuck_all_arrive_once_the_peer_reads() {
    use relive_msnp::server::ServerMessage;
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let (client, outbox, driver) = piped_ns(&ctx, 64);
    let fln = |i: u32| ServerMessage::Fln {
        handle: format!("user{i}@example.com").parse().unwrap(),
    };
    // The first events fill the 64-byte pipe and the write gets stuck; the rest wait in the
    // outbox (nobody is reading yet).
    for i in 0..100 {
        assert!(outbox.deliver(crate::hub::Event::Send(fln(i))));
        tokio::task::yield_now().await;
    }
    // Now read: every line arrives in order with nothing else happening.
    let mut r = BufReader::new(client);
    for i in 0..100 {
        let mut line = String::new();
        tokio::time::timeout(LINE_TIMEOUT, r.read_line(&mut line))
            .await
            .expect("an event stayed queued")
            .unwrap();
        assert_eq!(line, format!("FLN user{i}@example.com\r\n"));
    }
    drop((r, outbox));
    tokio::time::timeout(LINE_TIMEOUT, driver)
        .await
        .unwrap()
        .unwrap();
}

/// A piped NS connection that has negotiated MSNP7 (`VER` answered), and its driver.
async fn after_ver(
    ctx: &Context,
) -> (
    BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    tokio::io::WriteHalf<tokio::io::DuplexStream>,
    tokio::task::JoinHandle<()>,
) {
    let (client, outbox, driver) = piped_ns(ctx, 1024);
    drop(outbox);
    let (r, mut w) = tokio::io::split(client);
    let mut r = BufReader::new(r);
    w.write_all(b"VER 1 MSNP7 CVR0\r\n").await.unwrap();
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    assert_eq!(line, "VER 1 MSNP7\r\n");
    (r, w, driver)
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_counts_from_the_last_read() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough for the login deadline not to come first.
    let ctx = context(dir.path(), |c| c.limits.login_timeout_secs = 3600).await;
    let idle = ctx.settings.ns_idle_timeout;
    let (mut r, mut w, driver) = after_ver(&ctx).await;
    let start = tokio::time::Instant::now();
    // A command shortly before each deadline keeps the connection open well past one timeout
    // (`INF`: before login, `PNG` closes).
    for trid in 2..5 {
        tokio::time::sleep(idle - Duration::from_secs(5)).await;
        w.write_all(format!("INF {trid}\r\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(line, format!("INF {trid} MD5\r\n"));
    }
    let last = tokio::time::Instant::now();
    assert!(last - start > idle * 2);
    // Then silence: closed one timeout after the last read, not earlier.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).await.unwrap();
    let closed = tokio::time::Instant::now();
    assert!(rest.is_empty());
    assert!(
        closed - last >= idle && closed - last < idle + Duration::from_secs(1),
        "{:?}",
        closed - last
    );
    driver.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_login_deadline_counts_from_connect_whatever_trickles_in() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |c| c.limits.login_timeout_secs = 20).await;
    let start = tokio::time::Instant::now();
    let (mut r, mut w, driver) = after_ver(&ctx).await;
    // A byte a second, blank lines and valid pre-login commands: none of it moves the deadline.
    let trickle = tokio::spawn(async move {
        for i in 0u32.. {
            let bytes: &[u8] = match i % 3 {
                0 => b"\r\n",
                1 => b"\n",
                _ => b"INF 9\r\n",
            };
            if w.write_all(bytes).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).await.unwrap();
    let closed = tokio::time::Instant::now() - start;
    assert!(
        closed >= Duration::from_secs(20) && closed < Duration::from_secs(21),
        "{closed:?}"
    );
    driver.await.unwrap();
    trickle.abort();
}

/// One source floods the NS and HTTP listeners: it holds its per-source share of each, every
/// further connection is closed at once with a handful of log lines in all, the connections
/// it holds are closed at the login deadline (NS) and the connection lifetime (HTTP) however
/// they trickle, and a user from another address logs in meanwhile.
#[tokio::test]
async fn a_flood_from_one_source_gets_its_share_a_few_log_lines_and_no_one_elses_place() {
    let capture = crate::testing::LogCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |c| {
        c.limits.ns_per_source = 4;
        c.limits.http_per_source = 4;
        c.limits.login_timeout_secs = 3;
        c.limits.http_connection_secs = 3;
        c.limits.refusal_log_per_minute = 3;
    })
    .await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    let limits = std::sync::Arc::clone(&ctx.connection_limits);
    let server = start(ctx).await;
    let flooder = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut flood = Vec::new();
    for i in 0..200 {
        let addr = if i % 2 == 0 { server.ns } else { server.http };
        let mut c = Client::connect_from(addr, [127, 0, 0, 1]).await;
        // Half of them trickle blank lines; the rest sit idle.
        if i % 4 < 2 {
            let _ = c.w.write_all(b"\r\n").await;
        }
        flood.push(c);
    }
    tokio::time::timeout(LINE_TIMEOUT, async {
        while limits.refused_total() < 192 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the flood beyond the share is refused");
    assert_eq!(limits.refused_total(), 192);
    assert_eq!(limits.open_from(crate::net::Kind::Ns, flooder), 4);
    assert_eq!(limits.open_from(crate::net::Kind::Http, flooder), 4);
    // Meanwhile, from another address, Alice logs in.
    let mut alice = Client::connect_from(server.ns, [127, 0, 0, 2]).await;
    alice.login("alice@example.com", &token).await;
    // Every flood connection ends: refused ones at once, held ones at their deadline.
    for c in &mut flood {
        let _ = c.w.write_all(b"\r\n").await;
        assert!(c.closed().await);
    }
    assert_eq!(limits.open(crate::net::Kind::Ns), 1);
    let logs = capture.text();
    assert_eq!(logs.matches("connection refused").count(), 3, "{logs}");
    assert_eq!(logs.matches("did not log in in time").count(), 4, "{logs}");
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}
