//! `cluster` (issue 19): two `relive-node` processes (roles ns+sb) over a real `nats-server`,
//! sharing one data directory. One user on node 1 changes status, alternating `AWY` and
//! `NLN`; half of its watchers are on node 1 (same node), half on node 2 (across nodes).
//! Reports the latency from the write of `CHG` until each watcher has read its `NLN`,
//! p50/p99 within one node and across nodes, and the CPU each node process spent per status
//! change (`/proc/<pid>/stat`: node 1 decides and delivers to its watchers and publishes;
//! node 2 applies the change and delivers to its own). Chat is not measured here: a room
//! lives on one SB node, so a message never crosses nodes.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use relive_msnp::server::ServerMessage;
use relive_tests::cluster::{Node, node_program};
use relive_tests::logon::{Logon, Method};
use relive_tests::nats::Nats;
use relive_tests::stack::{change_status, sync_lists};
use relive_tests::{StackOptions, TestStack};
use tokio::sync::mpsc;

use crate::Common;
use crate::report::Report;
use crate::stats::Samples;

/// `cluster` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Watchers (half on each node).
    #[arg(long, default_value_t = 20)]
    watchers: usize,
    /// Status changes measured.
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Pause between status changes, ms.
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
}

const OWNER: &str = "owner@example.com";

fn watcher(i: usize) -> String {
    format!("w{i}@example.com")
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    #[allow(clippy::cast_precision_loss, reason = "tick counts are small")]
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

pub(crate) async fn run(_common: &Common, args: Args) -> anyhow::Result<Report> {
    ensure!(args.watchers >= 2, "--watchers must be at least 2");
    let nats = Nats::start()?.context("nats-server is not installed")?;
    let mut opts = StackOptions::new().account(OWNER, "Owner");
    for i in 0..args.watchers {
        opts = opts.account(&watcher(i), "Watcher");
    }
    let stack = TestStack::start(opts).await?;
    for i in 0..args.watchers {
        stack.befriend(OWNER, &watcher(i)).await?;
    }
    let ca = stack.ca_cert.clone();
    let data = stack.shutdown().await?;
    let token = |h: &str| data.token(h).map(str::to_owned).context("token");
    let program = node_program()?;
    let name = format!("bench{}", std::process::id());
    let mut n1 = Node::spawn(&program, &data, nats.url(), &name, "n1", "ns,sb", 1).await?;
    let mut n2 = Node::spawn(&program, &data, nats.url(), &name, "n2", "ns,sb", 1).await?;
    n1.ready().await?;
    n2.ready().await?;
    let on1 = Logon::new(Method::Md5, n1.ns, n1.https, &ca, None).await?;
    let on2 = Logon::new(Method::Md5, n2.ns, n2.https, &ca, None).await?;
    let mut owner = on1.login(OWNER, &token(OWNER)?).await?;
    sync_lists(&mut owner).await?;
    change_status(&mut owner, "NLN").await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(bool, Instant)>();
    for i in 0..args.watchers {
        let cross = i % 2 == 1;
        let logon = if cross { &on2 } else { &on1 };
        let handle = watcher(i);
        let mut c = logon.login(&handle, &token(&handle)?).await?;
        sync_lists(&mut c).await?;
        change_status(&mut c, "NLN").await?;
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            loop {
                match c.recv().await {
                    Ok(ServerMessage::Nln { handle, .. }) if handle.as_str() == OWNER => {
                        if tx.send((cross, Instant::now())).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
    }
    // Everyone sees the owner online before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    // The owner has heard its watchers come online: skip that.
    owner.send_line("PNG").await?;
    owner
        .wait_for("QNG", |m| matches!(m, ServerMessage::Qng { .. }))
        .await?;
    let (pid1, pid2) = (
        n1.pid().context("node 1 gone")?,
        n2.pid().context("node 2 gone")?,
    );
    let (cpu1, cpu2) = (cpu_seconds(pid1)?, cpu_seconds(pid2)?);
    let (mut same, mut across) = (Samples::default(), Samples::default());
    for r in 0..args.repeats {
        let status = if r % 2 == 0 { "AWY" } else { "NLN" };
        let sent = Instant::now();
        change_status(&mut owner, status).await?;
        for _ in 0..args.watchers {
            let (cross, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .context("a watcher missed a status change")?
                .context("watchers gone")?;
            if cross { &mut across } else { &mut same }.push(at - sent);
        }
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let (cpu1, cpu2) = (cpu_seconds(pid1)? - cpu1, cpu_seconds(pid2)? - cpu2);
    let mut report = Report::new(
        "cluster",
        serde_json::json!({
            "watchers": args.watchers,
            "repeats": args.repeats,
            "nodes": 2,
        }),
    );
    report.info(
        "presence latency same node p50",
        same.quantile_ms(0.5),
        "ms",
    );
    report.info(
        "presence latency same node p99",
        same.quantile_ms(0.99),
        "ms",
    );
    report.info(
        "presence latency across nodes p50",
        across.quantile_ms(0.5),
        "ms",
    );
    report.info(
        "presence latency across nodes p99",
        across.quantile_ms(0.99),
        "ms",
    );
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let per_change = |cpu: f64| cpu * 1e6 / args.repeats as f64;
    report.info(
        "node 1 (owner's) CPU per status change",
        per_change(cpu1),
        "µs",
    );
    report.info(
        "node 2 (applies it) CPU per status change",
        per_change(cpu2),
        "µs",
    );
    report.note(format!(
        "{} watchers on each node; each change reaches {} watchers",
        args.watchers / 2,
        args.watchers
    ));
    n1.kill().await?;
    n2.kill().await?;
    report.finish();
    Ok(report)
}
