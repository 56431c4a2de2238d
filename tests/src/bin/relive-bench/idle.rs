//! `idle`: N users with contact lists log in (MSNP7 MD5 with their tokens), `SYN`, go online,
//! and then stay connected doing nothing but `PNG` every 50 s (staggered). Reports the server's
//! resident memory per connection: (RSS after − RSS before the logins) / N.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::BytesMut;
use relive_tests::stack::sync_lists;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Common;
use crate::logon::Logon;
use crate::report::{Report, Target};
use crate::server::{self, ServerOpts};
use crate::wire;

/// `idle` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Users (connections) [default: 20000, or as many as the open-file limit allows].
    #[arg(long)]
    users: Option<usize>,
    /// Contacts per user (all mutual, on FL and AL).
    #[arg(long, default_value_t = 50)]
    contacts: usize,
    /// Seconds between a connection's `PNG`s.
    #[arg(long, default_value_t = 50)]
    ping: u64,
    /// Seconds to hold the connections after everybody is online (at least one `PNG` round).
    #[arg(long, default_value_t = 60)]
    hold: u64,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// Target of issue #8.
const TARGET_USERS: usize = 20_000;
const TARGET_KIB: f64 = 4.0;

struct Shared {
    online: Cell<usize>,
    pings: Cell<u64>,
    pongs: Cell<u64>,
    dropped: Cell<usize>,
    stop: Cell<bool>,
    failed: Cell<usize>,
}

pub(crate) async fn run(common: &Common, args: Args, fd_limit: u64) -> anyhow::Result<Report> {
    let fit = server::fd_fit(fd_limit);
    let mut notes = Vec::new();
    let users = match args.users {
        Some(n) => {
            server::ensure_fits(n, fd_limit)?;
            n
        }
        None if TARGET_USERS > fit => {
            let note = format!(
                "{TARGET_USERS} users do not fit under the open-file limit of {fd_limit} per \
                 process (each process needs one descriptor per connection plus about {} of \
                 its own); measured with {fit}, the most that fit",
                server::FD_RESERVE
            );
            eprintln!("warning: {note}");
            notes.push(note);
            fit
        }
        None => TARGET_USERS,
    };
    let mut report = Report::new(
        "idle",
        serde_json::json!({
            "users": users, "requested_users": args.users.unwrap_or(TARGET_USERS),
            "contacts": args.contacts, "ping_s": args.ping, "hold_s": args.hold,
            "fd_limit": fd_limit,
            "protocol": format!("{}, SYN, CHG NLN", common.login.describe()),
        }),
    );
    report.notes = notes;
    let (mut server, seeded) = server::start(
        common,
        &ServerOpts::load(users + 100),
        server::accounts(users)?,
        server::ring_contacts(users, args.contacts),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_kib()?;
    eprintln!("server RSS before logins: {rss_before} KiB");

    let shared = Rc::new(Shared {
        online: Cell::new(0),
        pings: Cell::new(0),
        pongs: Cell::new(0),
        dropped: Cell::new(0),
        stop: Cell::new(false),
        failed: Cell::new(0),
    });
    let seeded = Rc::new(seeded);
    let logon = Rc::new(crate::logon::to(common.login, &server).await?);
    let next = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let ping = Duration::from_secs(args.ping.max(1));
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (seeded, next, shared) = (Rc::clone(&seeded), Rc::clone(&next), Rc::clone(&shared));
            let logon = Rc::clone(&logon);
            tokio::task::spawn_local(async move {
                loop {
                    let i = next.get();
                    if i >= seeded.len() {
                        return;
                    }
                    next.set(i + 1);
                    let u = &seeded[i];
                    match login(&logon, &u.handle, &u.token).await {
                        Ok((stream, buf)) => {
                            let offset = ping.mul_f64(i as f64 / seeded.len() as f64);
                            tokio::task::spawn_local(hold(
                                stream,
                                buf,
                                Rc::clone(&shared),
                                ping,
                                offset,
                            ));
                        }
                        Err(error) => {
                            if shared.failed.get() < 5 {
                                eprintln!("login of {} failed: {error:#}", u.handle);
                            }
                            shared.failed.set(shared.failed.get() + 1);
                        }
                    }
                }
            })
        })
        .collect();
    let mut last = 0;
    while shared.online.get() + shared.failed.get() < users {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let online = shared.online.get();
        eprintln!(
            "[idle] logging in: {online}/{users} online ({}/s), {} failed, {} dropped, server RSS {} KiB",
            online - last,
            shared.failed.get(),
            shared.dropped.get(),
            server.rss_kib().unwrap_or(0)
        );
        last = online;
        if !server.alive() {
            anyhow::bail!("the server died:\n{}", server.log_tail());
        }
    }
    for w in workers {
        w.await.context("login worker")?;
    }
    let login_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "all {users} online in {login_secs:.1} s; holding for {} s",
        args.hold
    );
    let hold_start = Instant::now();
    let mut rss_max = 0;
    let mut rss_end = 0;
    while hold_start.elapsed() < Duration::from_secs(args.hold) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss_end = server.rss_kib()?;
        rss_max = rss_max.max(rss_end);
        eprintln!(
            "[idle] t={:>3.0}s  online {}  PNG {} / QNG {}  dropped {}  server RSS {rss_end} KiB ({:.2} KiB/conn)",
            hold_start.elapsed().as_secs_f64(),
            shared.online.get(),
            shared.pings.get(),
            shared.pongs.get(),
            shared.dropped.get(),
            (rss_end.saturating_sub(rss_before)) as f64 / users as f64
        );
    }
    shared.stop.set(true);
    server.stop(common.keep).await?;

    let per_conn = |rss: u64| rss.saturating_sub(rss_before) as f64 / users as f64;
    report.info("connections", users as f64, "users");
    report.info("contacts per user", args.contacts as f64, "contacts");
    report.info("login phase", login_secs, "s");
    report.info("server RSS before logins", rss_before as f64, "KiB");
    report.info("server RSS at the end", rss_end as f64, "KiB");
    report.info("server RSS peak while holding", rss_max as f64, "KiB");
    report.check(
        "RSS per connection (end)",
        per_conn(rss_end),
        "KiB",
        Target::AtMost(TARGET_KIB),
    );
    report.info("RSS per connection (peak)", per_conn(rss_max), "KiB");
    report.info("PNG sent", shared.pings.get() as f64, "");
    report.info("QNG received", shared.pongs.get() as f64, "");
    report.none("failed logins", shared.failed.get() as f64, "users");
    report.none("dropped users", shared.dropped.get() as f64, "users");
    if users < TARGET_USERS {
        report.check(
            "users held",
            users as f64,
            "users",
            Target::AtLeast(TARGET_USERS as f64),
        );
    }
    report.finish();
    Ok(report)
}

/// Logs `handle` in, dumps its lists, and sends `CHG NLN` (its echo and the presence traffic
/// that follows are read by [`hold`]).
async fn login(logon: &Logon, handle: &str, token: &str) -> anyhow::Result<(TcpStream, BytesMut)> {
    let mut c = logon.login(handle, token).await?;
    sync_lists(&mut c).await?;
    let t = c.trid();
    c.send_line(&format!("CHG {t} NLN")).await?;
    Ok(c.into_parts())
}

/// Holds one connection: reads whatever comes, `PNG`s every `ping` (first after `offset`).
async fn hold(
    mut stream: TcpStream,
    mut buf: BytesMut,
    shared: Rc<Shared>,
    ping: Duration,
    offset: Duration,
) {
    let mut ticker = tokio::time::interval_at((Instant::now() + offset).into(), ping);
    let mut online = false;
    loop {
        if shared.stop.get() {
            return;
        }
        let mut closed = false;
        let parsed = wire::drain_frames(&mut buf, |line, _| match line.get(..3) {
            Some(b"CHG") if !online => {
                online = true;
                shared.online.set(shared.online.get() + 1);
            }
            Some(b"QNG") => shared.pongs.set(shared.pongs.get() + 1),
            Some(b"OUT") => closed = true,
            _ => {}
        });
        if parsed.is_err() || closed {
            if !shared.stop.get() {
                shared.dropped.set(shared.dropped.get() + 1);
            }
            return;
        }
        if buf.is_empty() {
            // Idle connections keep no buffer.
            buf = BytesMut::new();
        }
        tokio::select! {
            read = async {
                buf.reserve(1024);
                stream.read_buf(&mut buf).await
            } => {
                if matches!(read, Ok(0) | Err(_)) {
                    if !shared.stop.get() {
                        shared.dropped.set(shared.dropped.get() + 1);
                    }
                    return;
                }
            }
            _ = ticker.tick() => {
                if stream.write_all(b"PNG\r\n").await.is_err() {
                    shared.dropped.set(shared.dropped.get() + 1);
                    return;
                }
                shared.pings.set(shared.pings.get() + 1);
            }
        }
    }
}
