//! `presence`: one user with K online watchers (each has the user on FL and AL) changes status,
//! alternating `AWY` and `NLN`; per repeat, the time from the write of `CHG` until the last of
//! the K watchers has read its `NLN`. Reports percentiles over the repeats, and over every
//! single watcher's latency.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::BytesMut;
use relive_server::store::seed::SeedContact;
use relive_server::store::{ListKind, ListSet};
use relive_tests::stack::{change_status, sync_lists};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

use crate::Common;
use crate::report::{Report, Target};
use crate::server::{self, FL_AL, ServerOpts};
use crate::stats::Samples;
use crate::wire;

/// `presence` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Online watchers.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Status changes measured.
    #[arg(long, default_value_t = 100)]
    repeats: usize,
    /// Pause between status changes, ms.
    #[arg(long, default_value_t = 50)]
    pause_ms: u64,
    /// Logins in progress at once while setting up.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// Target of issue #8.
const TARGET_P99_MS: f64 = 20.0;

struct Shared {
    sent_at: Cell<Instant>,
    seen: Cell<usize>,
    last: Cell<Instant>,
    watchers: usize,
    per_watcher: RefCell<Samples>,
    all_seen: Notify,
    dropped: Cell<usize>,
    stop: Cell<bool>,
    /// Whether single-watcher latencies are recorded (not in the warm-up round).
    counting: Cell<bool>,
}

pub(crate) async fn run(common: &Common, args: Args) -> anyhow::Result<Report> {
    ensure!(
        args.watchers > 0 && args.repeats > 0,
        "watchers and repeats must be positive"
    );
    let k = args.watchers;
    let mut report = Report::new(
        "presence",
        serde_json::json!({
            "watchers": k, "repeats": args.repeats, "pause_ms": args.pause_ms,
            "protocol": format!("{}, CHG AWY/NLN alternating", common.login.describe()),
        }),
    );
    // User 0 is watched; users 1..=K have it on FL and AL, and it has them on AL.
    let mut contacts = Vec::with_capacity(2 * k);
    for w in 1..=k {
        contacts.push(SeedContact {
            owner: w,
            contact: 0,
            lists: FL_AL,
        });
        contacts.push(SeedContact {
            owner: 0,
            contact: w,
            lists: ListSet::EMPTY.with(ListKind::Al),
        });
    }
    let (server, users) = server::start(
        common,
        &ServerOpts::load(k + 100),
        server::accounts(k + 1)?,
        contacts,
    )
    .await?;
    let shared = Rc::new(Shared {
        sent_at: Cell::new(Instant::now()),
        seen: Cell::new(0),
        last: Cell::new(Instant::now()),
        watchers: k,
        per_watcher: RefCell::new(Samples::default()),
        all_seen: Notify::new(),
        dropped: Cell::new(0),
        stop: Cell::new(false),
        counting: Cell::new(false),
    });

    // Watchers: log in and go online (the watched user is still offline: no NLN races).
    let users = Rc::new(users);
    let logon = Rc::new(crate::logon::to(common.login, &server).await?);
    let next = Rc::new(Cell::new(1usize));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (users, next, shared) = (Rc::clone(&users), Rc::clone(&next), Rc::clone(&shared));
            let logon = Rc::clone(&logon);
            tokio::task::spawn_local(async move {
                loop {
                    let i = next.get();
                    if i > k {
                        return Ok::<_, anyhow::Error>(());
                    }
                    next.set(i + 1);
                    let u = &users[i];
                    let mut c = logon.login(&u.handle, &u.token).await?;
                    sync_lists(&mut c).await?;
                    change_status(&mut c, "NLN").await?;
                    let (stream, buf) = c.into_parts();
                    tokio::task::spawn_local(watch(stream, buf, Rc::clone(&shared)));
                }
            })
        })
        .collect();
    for w in workers {
        w.await.context("login worker")??;
    }
    eprintln!(
        "{k} watchers online in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The watched user.
    let target = &users[0];
    let mut c = logon.login(&target.handle, &target.token).await?;
    sync_lists(&mut c).await?;
    let (stream, buf) = c.into_parts();
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let drain = tokio::task::spawn_local(drain(rd, buf));

    let mut per_change = Samples::default();
    let mut timeouts = 0;
    let mut cpu_before = server.cpu_seconds()?;
    // Round 0 (first CHG NLN) warms up and is not counted.
    for round in 0..=args.repeats {
        let status = if round % 2 == 0 { "NLN" } else { "AWY" };
        shared.seen.set(0);
        shared.counting.set(round > 0);
        let notified = shared.all_seen.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = Instant::now();
        shared.sent_at.set(now);
        wr.write_all(format!("CHG {} {status}\r\n", round + 10).as_bytes())
            .await?;
        if tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .is_err()
        {
            timeouts += 1;
            eprintln!(
                "[presence] round {round}: only {}/{k} watchers saw the NLN within 5 s",
                shared.seen.get()
            );
            continue;
        }
        if round > 0 {
            per_change.push(shared.last.get() - now);
        } else {
            // CPU is counted from the end of the warm-up round.
            cpu_before = server.cpu_seconds()?;
        }
        if round % 10 == 0 {
            eprintln!(
                "[presence] round {round:>3}/{}: all {k} notified in {:.2} ms",
                args.repeats,
                (shared.last.get() - now).as_secs_f64() * 1000.0
            );
        }
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let cpu_per_change =
        (server.cpu_seconds()? - cpu_before) * 1e3 / per_change.len().max(1) as f64;
    shared.stop.set(true);
    drain.abort();
    server.stop(common.keep).await?;

    report.info("watchers", k as f64, "users");
    report.info("status changes measured", per_change.len() as f64, "");
    report.info("all notified: p50", per_change.quantile_ms(0.5), "ms");
    report.check(
        "all notified: p99",
        per_change.quantile_ms(0.99),
        "ms",
        Target::AtMost(TARGET_P99_MS),
    );
    report.info("all notified: max", per_change.quantile_ms(1.0), "ms");
    report.info("server CPU per status change", cpu_per_change, "ms");
    let mut each = shared.per_watcher.borrow().clone();
    report.info("single watcher: p50", each.quantile_ms(0.5), "ms");
    report.info("single watcher: p99", each.quantile_ms(0.99), "ms");
    report.none("rounds timed out", f64::from(timeouts), "");
    report.none("dropped users", shared.dropped.get() as f64, "users");
    report.finish();
    Ok(report)
}

/// A watcher: counts `NLN` lines (every one is the watched user's: it has no other contact).
async fn watch(mut stream: TcpStream, mut buf: BytesMut, shared: Rc<Shared>) {
    loop {
        let mut closed = false;
        let parsed = wire::drain_frames(&mut buf, |line, _| match line.get(..3) {
            Some(b"NLN") => {
                let now = Instant::now();
                if shared.counting.get() {
                    shared
                        .per_watcher
                        .borrow_mut()
                        .push(now - shared.sent_at.get());
                }
                let seen = shared.seen.get() + 1;
                shared.seen.set(seen);
                if seen == shared.watchers {
                    shared.last.set(now);
                    shared.all_seen.notify_waiters();
                }
            }
            Some(b"OUT") => closed = true,
            _ => {}
        });
        if parsed.is_err() || closed {
            if !shared.stop.get() {
                shared.dropped.set(shared.dropped.get() + 1);
            }
            return;
        }
        buf.reserve(1024);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                if !shared.stop.get() {
                    shared.dropped.set(shared.dropped.get() + 1);
                }
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Reads and discards what the watched user's connection receives (`CHG` echoes).
async fn drain(mut rd: OwnedReadHalf, mut buf: BytesMut) {
    loop {
        buf.clear();
        buf.reserve(4096);
        if matches!(rd.read_buf(&mut buf).await, Ok(0) | Err(_)) {
            return;
        }
    }
}
