//! `lists`: acknowledged list changes per second. `--users` users log in (as `--login` says)
//! and each keeps one change in flight: `ADD FL` of the next of its `--span` neighbours, then,
//! once all are on its list, `REM FL` of them in turn, and again. A change counts when its reply
//! (`ADD`/`REM` with the new list version) arrives, which the server sends after the change is
//! committed (one transaction each: the store's durability rule). Online neighbours get their
//! `ADD 0 RL`/`REM 0 RL` notices as well, as in real use.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use relive_msnp::server::ServerMessage;

use crate::Common;
use crate::report::Report;
use crate::server::{self, ServerOpts};
use crate::stats::Samples;

/// `lists` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Users changing their lists at once (one change in flight each).
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Neighbours each user adds and removes in turn.
    #[arg(long, default_value_t = 20)]
    span: usize,
}

pub(crate) async fn run(common: &Common, args: Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.users > args.span,
        "--users must exceed --span (users add each other)"
    );
    let mut report = Report::new(
        "lists",
        serde_json::json!({
            "duration_s": args.duration, "users": args.users, "span": args.span,
            "login": format!("{:?}", common.login).to_lowercase(),
            "store": format!("{:?}", common.store).to_lowercase(),
            "store_pool_size": common.store_pool_size,
        }),
    );
    let (server, users) = server::start(
        common,
        &ServerOpts::load(args.users * 2 + 100),
        server::accounts(args.users)?,
        Vec::new(),
    )
    .await?;
    let logon = crate::logon::to(common.login, &server).await?;
    let mut clients = Vec::with_capacity(users.len());
    for u in &users {
        clients.push(
            logon
                .login(&u.handle, &u.token)
                .await
                .with_context(|| format!("logging in {}", u.handle))?,
        );
    }
    eprintln!("{} users logged in", clients.len());
    let done = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0usize));
    let cpu_before = server.cpu_seconds()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let n = users.len();
    let workers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let (done, failed) = (Rc::clone(&done), Rc::clone(&failed));
            let span = args.span;
            tokio::task::spawn_local(async move {
                let mut lat = Samples::default();
                let mut step = 0usize;
                while Instant::now() < deadline {
                    // Steps 0..span add neighbours 1..=span, steps span..2*span remove them.
                    let k = step % span + 1;
                    let other = server::handle((i + k) % n);
                    let t = c.trid();
                    let line = if step < span {
                        format!("ADD {t} FL {other} {other}")
                    } else {
                        format!("REM {t} FL {other}")
                    };
                    step = (step + 1) % (2 * span);
                    let sent = Instant::now();
                    let result = async {
                        c.send_line(&line).await?;
                        loop {
                            match c.recv().await? {
                                ServerMessage::Add { trid, .. }
                                | ServerMessage::Rem { trid, .. }
                                    if trid == t =>
                                {
                                    return Ok(());
                                }
                                ServerMessage::Error { trid, code } if trid == t => {
                                    bail!("{line}: error {}", code.code())
                                }
                                // RL notices from neighbours, presence: not ours.
                                _ => {}
                            }
                        }
                    }
                    .await;
                    match result {
                        Ok(()) => {
                            lat.push(sent.elapsed());
                            done.set(done.get() + 1);
                        }
                        Err(error) => {
                            if failed.get() < 5 {
                                eprintln!("list change failed: {error:#}");
                            }
                            failed.set(failed.get() + 1);
                            break;
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut lat = crate::stats::watch(
        "[lists]",
        "changes/s",
        (started, deadline),
        &done,
        &failed,
        workers,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = done.get() as f64 / elapsed;
    let cpu = (server.cpu_seconds()? - cpu_before) * 1e6 / done.get().max(1) as f64;
    server.stop(common.keep).await?;
    report.info("acknowledged list changes", rate, "changes/s");
    report.info("server CPU per list change", cpu, "µs");
    report.info("list change p50 latency", lat.quantile_ms(0.5), "ms");
    report.info("list change p99 latency", lat.quantile_ms(0.99), "ms");
    report.none("failed list changes", failed.get() as f64, "changes");
    report.note(format!(
        "store: {:?}; each change is one committed transaction before its reply{}",
        common.store,
        if common.store == server::StoreKind::Postgres {
            " (PostgreSQL with fsync and synchronous_commit on; CPU includes its processes)"
        } else {
            " (SQLite WAL, synchronous=NORMAL)"
        }
    ));
    report.finish();
    Ok(report)
}
