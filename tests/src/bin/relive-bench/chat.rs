//! `chat`: M switchboard rooms of two users; both users of a room send `MSG A` to each other
//! with at most `window` messages in flight (sent, not yet `ACK`ed) each.
//!
//! Two measured phases run over the same connections, each after a warm-up: a fixed offered
//! rate (spread evenly over the senders, one message per tick when the window allows), then
//! saturation (every `ACK` is answered at once with a new message). Latency is the time from
//! the write of a `MSG` to the read of the receiver's copy: the payload carries the sender's
//! timestamp. A connection the server closes (`OUT`, `BYE`, EOF) before the end counts as a
//! dropped user; any fails the run.

use std::cell::Cell;
use std::io::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::BytesMut;
use relive_server::store::seed::SeedContact;
use relive_tests::sb;
use relive_tests::stack::change_status;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Common;
use crate::report::{Report, Target};
use crate::server::{self, FL_AL, ServerOpts};
use crate::stats::Samples;
use crate::wire;

/// `chat` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Rooms of two users.
    #[arg(long, default_value_t = 50)]
    rooms: usize,
    /// Messages in flight per sender.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Offered rate of the fixed-rate phase, messages/s over all senders (0 skips the phase).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds measured per phase.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before each measured phase.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Text bytes per message (after the usual MIME header).
    #[arg(long, default_value_t = 16)]
    text: usize,
}

/// Targets of issue #8.
const TARGET_SATURATION: f64 = 300_000.0;
const TARGET_P99_MS: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    RateWarmup,
    Rate,
    SaturationWarmup,
    Saturation,
    /// Stop sending; wait for outstanding `ACK`s.
    Drain,
    /// Close.
    Exit,
}

impl Phase {
    const fn saturating(self) -> bool {
        matches!(self, Self::SaturationWarmup | Self::Saturation)
    }

    const fn rated(self) -> bool {
        matches!(self, Self::RateWarmup | Self::Rate)
    }

    /// Which measured phase deliveries count for.
    const fn measured(self) -> Option<usize> {
        match self {
            Self::Rate => Some(0),
            Self::Saturation => Some(1),
            _ => None,
        }
    }
}

/// State every connection task shares (single-threaded runtime: plain cells).
struct Shared {
    epoch: Instant,
    phase: Cell<Phase>,
    delivered: [Cell<u64>; 2],
    total_delivered: Cell<u64>,
    sent: Cell<u64>,
    in_flight: Cell<u64>,
    stalls: Cell<u64>,
    naks: Cell<u64>,
    dropped: Cell<u32>,
    drained: Cell<usize>,
}

/// What one connection task measured.
#[derive(Default)]
struct ConnResult {
    latency: [Samples; 2],
}

pub(crate) async fn run(common: &Common, args: Args) -> anyhow::Result<Report> {
    ensure!(
        args.rooms > 0 && args.window > 0,
        "rooms and window must be positive"
    );
    let users = args.rooms * 2;
    let mut report = Report::new(
        "chat",
        serde_json::json!({
            "rooms": args.rooms, "users": users, "window": args.window,
            "offered_rate": args.rate, "duration_s": args.duration, "warmup_s": args.warmup,
            "ack_mode": "A", "text_bytes": args.text, "login": common.login.describe(),
        }),
    );
    // Room partners are each other's contacts.
    let contacts = (0..args.rooms)
        .flat_map(|r| {
            [(2 * r, 2 * r + 1), (2 * r + 1, 2 * r)].map(|(owner, contact)| SeedContact {
                owner,
                contact,
                lists: FL_AL,
            })
        })
        .collect();
    let (server, seeded) = server::start(
        common,
        &ServerOpts::load(users * 2 + 100),
        server::accounts(users)?,
        contacts,
    )
    .await?;

    // Log everybody in and open the rooms (sequentially: 100 users take well under a second).
    let logon = crate::logon::to(common.login, &server).await?;
    let mut ns_conns = Vec::with_capacity(users);
    let mut sb_conns = Vec::with_capacity(users);
    for pair in seeded.chunks(2) {
        let [a, b] = pair else { continue };
        let mut a_ns = logon.login(&a.handle, &a.token).await?;
        let mut b_ns = logon.login(&b.handle, &b.token).await?;
        // b first: a gets b in its ILN burst; b's NLN of a is skipped by `invite`.
        change_status(&mut b_ns, "NLN").await?;
        change_status(&mut a_ns, "NLN").await?;
        let mut a_sb = sb::open(&mut a_ns, &a.handle, "a_sb").await?;
        let joined = sb::invite(&mut a_sb, &mut b_ns, &b.handle, "b_sb").await?;
        // The caller's JOI for the callee.
        let joi = a_sb.recv_raw().await?.line();
        ensure!(joi.starts_with("JOI "), "expected JOI, got {joi:?}");
        sb_conns.push(a_sb.into_parts());
        sb_conns.push(joined.sb.into_parts());
        ns_conns.push(a_ns.into_parts());
        ns_conns.push(b_ns.into_parts());
    }
    eprintln!("{} rooms open; {users} users online", args.rooms);

    let shared = Rc::new(Shared {
        epoch: Instant::now(),
        phase: Cell::new(if args.rate > 0 {
            Phase::RateWarmup
        } else {
            Phase::SaturationWarmup
        }),
        delivered: [Cell::new(0), Cell::new(0)],
        total_delivered: Cell::new(0),
        sent: Cell::new(0),
        in_flight: Cell::new(0),
        stalls: Cell::new(0),
        naks: Cell::new(0),
        dropped: Cell::new(0),
        drained: Cell::new(0),
    });
    let header = sb::text_payload(&"x".repeat(args.text.saturating_sub(16)));
    let header: Rc<[u8]> = header.into();
    // Each sender's share of the offered rate, as a tick interval (staggered starts).
    let senders = sb_conns.len();
    let tick = if args.rate > 0 {
        Duration::from_secs_f64(senders as f64 / args.rate as f64)
    } else {
        Duration::from_millis(5)
    };
    let ns_watch: Vec<_> = ns_conns
        .into_iter()
        .map(|(s, b)| tokio::task::spawn_local(watch_ns(s, b, Rc::clone(&shared))))
        .collect();
    let tasks: Vec<_> = sb_conns
        .into_iter()
        .enumerate()
        .map(|(i, (stream, buf))| {
            let offset = tick.mul_f64(i as f64 / senders as f64);
            tokio::task::spawn_local(conn(
                stream,
                buf,
                Rc::clone(&shared),
                Rc::clone(&header),
                args.window,
                tick,
                offset,
            ))
        })
        .collect();

    // The phases.
    let mut rates = [0.0f64; 2];
    let mut cpu = [0.0f64; 2];
    if args.rate > 0 {
        phase(
            &shared,
            &server,
            Phase::RateWarmup,
            args.warmup,
            "fixed rate, warm-up",
        )
        .await?;
        (rates[0], cpu[0]) =
            phase(&shared, &server, Phase::Rate, args.duration, "fixed rate").await?;
    }
    let warm = "saturation, warm-up";
    phase(&shared, &server, Phase::SaturationWarmup, args.warmup, warm).await?;
    (rates[1], cpu[1]) = phase(
        &shared,
        &server,
        Phase::Saturation,
        args.duration,
        "saturation",
    )
    .await?;
    shared.phase.set(Phase::Drain);
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while shared.drained.get() < senders && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = shared.drained.get();
    // Let the last copies arrive, then close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    shared.phase.set(Phase::Exit);
    let mut latency = [Samples::default(), Samples::default()];
    for t in tasks {
        let r = t.await.context("connection task")?;
        latency[0].extend(&r.latency[0]);
        latency[1].extend(&r.latency[1]);
    }
    for t in ns_watch {
        t.abort();
    }
    let server_alive = server.alive_check();
    server.stop(common.keep).await?;

    if args.rate > 0 {
        report.info("fixed rate: offered", args.rate as f64, "msgs/s");
        report.info("fixed rate: delivered", rates[0], "msgs/s");
        report.info(
            "fixed rate: p50 latency",
            latency[0].quantile_ms(0.50),
            "ms",
        );
        report.check(
            "fixed rate: p99 latency",
            latency[0].quantile_ms(0.99),
            "ms",
            Target::AtMost(TARGET_P99_MS),
        );
        report.info(
            "fixed rate: p999 latency",
            latency[0].quantile_ms(0.999),
            "ms",
        );
        report.info("fixed rate: server CPU per message", cpu[0], "µs");
    }
    report.check(
        "saturation: delivered",
        rates[1],
        "msgs/s",
        Target::AtLeast(TARGET_SATURATION),
    );
    report.info("saturation: server CPU per message", cpu[1], "µs");
    report.info(
        "saturation: p50 latency",
        latency[1].quantile_ms(0.50),
        "ms",
    );
    report.info(
        "saturation: p99 latency",
        latency[1].quantile_ms(0.99),
        "ms",
    );
    report.info(
        "saturation: p999 latency",
        latency[1].quantile_ms(0.999),
        "ms",
    );
    report.none("dropped users", f64::from(shared.dropped.get()), "users");
    report.none("NAKs", shared.naks.get() as f64, "msgs");
    report.info(
        "fixed rate: ticks with a full window",
        shared.stalls.get() as f64,
        "ticks",
    );
    if drained < senders {
        report.note(format!(
            "{} senders still had messages without ACK 5 s after sending stopped",
            senders - drained
        ));
    }
    if !server_alive {
        report.note("the server process died during the run");
        report.check("server alive", 0.0, "", Target::AtLeast(1.0));
    }
    report.note(format!(
        "latency = write of MSG A by the sender to read of the copy by the receiver; {} + {} \
         samples",
        latency[0].len(),
        latency[1].len()
    ));
    report.finish();
    Ok(report)
}

impl server::Server {
    fn alive_check(&self) -> bool {
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Runs `p` for `secs` seconds with a progress line per second; for measured phases returns
/// delivered msgs/s and the server's CPU time per delivered message (µs).
async fn phase(
    shared: &Shared,
    server: &server::Server,
    p: Phase,
    secs: f64,
    what: &str,
) -> anyhow::Result<(f64, f64)> {
    shared.phase.set(p);
    let start = Instant::now();
    let cpu_before = server.cpu_seconds()?;
    let before = p.measured().map_or(0, |i| shared.delivered[i].get());
    let end = start + Duration::from_secs_f64(secs);
    let mut last = (start, shared.total_delivered.get());
    while Instant::now() < end {
        let next = (last.0 + Duration::from_secs(1)).min(end);
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        let total = shared.total_delivered.get();
        let rate = (total - last.1) as f64 / (now - last.0).as_secs_f64();
        eprintln!(
            "[chat] {what:<22} t={:>4.1}s  delivered {:>9.0} msgs/s  in flight {:>5}  dropped {}",
            (now - start).as_secs_f64(),
            rate,
            shared.in_flight.get(),
            shared.dropped.get()
        );
        last = (now, total);
    }
    let cpu = server.cpu_seconds()? - cpu_before;
    Ok(p.measured().map_or((0.0, 0.0), |i| {
        let n = (shared.delivered[i].get() - before) as f64;
        (n / start.elapsed().as_secs_f64(), cpu * 1e6 / n.max(1.0))
    }))
}

/// Notes a server-side close of an NS connection as a dropped user.
async fn watch_ns(mut stream: TcpStream, mut buf: BytesMut, shared: Rc<Shared>) {
    loop {
        buf.clear();
        buf.reserve(4096);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                if shared.phase.get() != Phase::Exit {
                    shared.dropped.set(shared.dropped.get() + 1);
                }
                return;
            }
            Ok(_) => {
                if buf.starts_with(b"OUT") && shared.phase.get() != Phase::Exit {
                    shared.dropped.set(shared.dropped.get() + 1);
                    return;
                }
            }
        }
    }
}

/// Appends one `MSG trid A len` with `header` and the current timestamp (16 hex digits).
fn push_msg(wbuf: &mut Vec<u8>, trid: &mut u32, header: &[u8], epoch: Instant) {
    let ts = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let _ = write!(wbuf, "MSG {} A {}\r\n", *trid, header.len() + 16);
    wbuf.extend_from_slice(header);
    let _ = write!(wbuf, "{ts:016x}");
    *trid = trid.wrapping_add(1).max(1);
}

/// One switchboard connection: sends, counts `ACK`s, records latencies of received copies.
async fn conn(
    stream: TcpStream,
    mut buf: BytesMut,
    shared: Rc<Shared>,
    header: Rc<[u8]>,
    window: usize,
    tick: Duration,
    offset: Duration,
) -> ConnResult {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut result = ConnResult::default();
    let mut wbuf: Vec<u8> = Vec::with_capacity(window * 256);
    let mut in_flight = 0usize;
    let mut trid = 1u32;
    let mut ticker = tokio::time::interval_at((Instant::now() + offset).into(), tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut drained = false;
    let mut alive = true;
    loop {
        let phase = shared.phase.get();
        if phase == Phase::Exit {
            break;
        }
        if phase.saturating() && alive {
            let n = window - in_flight;
            for _ in 0..n {
                push_msg(&mut wbuf, &mut trid, &header, shared.epoch);
            }
            in_flight = window;
            shared.in_flight.set(shared.in_flight.get() + n as u64);
            shared.sent.set(shared.sent.get() + n as u64);
        }
        if !wbuf.is_empty() {
            if wr.write_all(&wbuf).await.is_err() {
                alive = false;
                shared.dropped.set(shared.dropped.get() + 1);
            }
            wbuf.clear();
        }
        if phase == Phase::Drain && in_flight == 0 && !drained {
            drained = true;
            shared.drained.set(shared.drained.get() + 1);
        }
        if !alive {
            // Dropped: wait for the end without sending.
            ticker.tick().await;
            continue;
        }
        buf.reserve(64 * 1024);
        tokio::select! {
            read = rd.read_buf(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    if shared.phase.get() != Phase::Exit {
                        shared.dropped.set(shared.dropped.get() + 1);
                    }
                    alive = false;
                    continue;
                }
                let now = u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let measured = shared.phase.get().measured();
                let mut acks = 0usize;
                let mut copies = 0u64;
                let mut closed = false;
                let parsed = wire::drain_frames(&mut buf, |line, payload| {
                    match line.get(..3) {
                        Some(b"ACK") => acks += 1,
                        Some(b"MSG") => {
                            copies += 1;
                            if let (Some(i), Some(ts)) = (
                                measured,
                                payload
                                    .len()
                                    .checked_sub(16)
                                    .and_then(|s| wire::parse_hex16(&payload[s..])),
                            ) {
                                result.latency[i].push_nanos(now.saturating_sub(ts));
                            }
                        }
                        Some(b"NAK") => {
                            acks += 1;
                            shared.naks.set(shared.naks.get() + 1);
                        }
                        Some(b"BYE" | b"OUT") => closed = true,
                        _ => {}
                    }
                });
                if parsed.is_err() || closed {
                    // A peer that closed at the end says BYE; only earlier closes count.
                    if shared.phase.get() != Phase::Exit {
                        shared.dropped.set(shared.dropped.get() + 1);
                    }
                    alive = false;
                }
                let acks = acks.min(in_flight);
                in_flight -= acks;
                shared.in_flight.set(shared.in_flight.get() - acks as u64);
                shared.total_delivered.set(shared.total_delivered.get() + copies);
                if let Some(i) = measured {
                    shared.delivered[i].set(shared.delivered[i].get() + copies);
                }
            }
            _ = ticker.tick() => {
                if shared.phase.get().rated() {
                    if in_flight < window {
                        push_msg(&mut wbuf, &mut trid, &header, shared.epoch);
                        in_flight += 1;
                        shared.in_flight.set(shared.in_flight.get() + 1);
                        shared.sent.set(shared.sent.get() + 1);
                    } else {
                        shared.stalls.set(shared.stalls.get() + 1);
                    }
                }
            }
        }
    }
    result
}
