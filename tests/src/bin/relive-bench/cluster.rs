//! `cluster` (issue 19): two `relive-server serve` nodes over a real `nats-server`, each with
//! its own data directory as on separate hosts ([`relive_tests::cluster`]), sharing the store
//! (`--store sqlite`: one SQLite file, which only nodes on one host can share; `--store
//! postgres`: one PostgreSQL database). CPU is read from `/proc/<pid>/stat` of each node
//! (user + system), which stays a cost per operation when other work loads the machine; the
//! measured operations write nothing to the store, so no database CPU is added.
//!
//! - `--scenario presence`: nodes `n1` and `n2` both `ns,sb`. A user on `n1` changes status,
//!   alternating `AWY` and `NLN`: first one whose watchers are all on `n1` ("one node"), then
//!   one whose watchers are half on `n1` (same node), half on `n2` (across nodes). Reports
//!   the latency from the write of `CHG` until each watcher has read its `NLN`, p50/p99, and
//!   the CPU each node spent per status change (`n1` decides, delivers to its watchers and
//!   publishes; `n2` applies the change, and delivers to its own watchers if it has any).
//! - `--scenario chat`: `n1` is `ns,sb`, `n2` is `ns` only, so every room is on `n1`. Pairs of
//!   users chat in rooms of two: first pairs with both users logged in on `n1` (one node),
//!   then pairs whose caller is on `n1` and callee on `n2` (across nodes: the `RNG` of the
//!   invitation travels over NATS, the callee's client then connects to `n1`'s switchboard).
//!   Reports the invitation latency (`CAL` until the callee's `ANS` is answered `OK`), the
//!   latency of each `MSG` from the caller's write to the callee's read (p50/p99), and the CPU
//!   per message of `n1`, of `n2` and of both.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use relive_msnp::server::ServerMessage;
use relive_tests::cluster::{Node, node_program};
use relive_tests::logon::{Logon, Method};
use relive_tests::nats::Nats;
use relive_tests::stack::{DataDir, change_status, sync_lists};
use relive_tests::{MsnpClient, StackOptions, TestStack, sb};
use tokio::sync::mpsc;

use crate::Common;
use crate::report::Report;
use crate::server::StoreKind;
use crate::stats::Samples;

/// What `cluster` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Measure {
    /// Status changes seen by watchers on the same node and on the other node.
    Presence,
    /// Messages in rooms whose two users are on one node, then on two nodes.
    Chat,
}

/// `cluster` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Measure::Presence)]
    scenario: Measure,
    /// Presence: watchers (half on each node).
    #[arg(long, default_value_t = 20)]
    watchers: usize,
    /// Chat: rooms (pairs of users) of each kind, one node and across nodes.
    #[arg(long, default_value_t = 10)]
    pairs: usize,
    /// Rounds measured: status changes (presence), or messages per room (chat; each round
    /// every room's caller sends one).
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Pause between rounds, ms.
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
}

const OWNER: &str = "owner@example.com";
/// The presence owner whose watchers are all on its node.
const SOLO: &str = "solo@example.com";

fn watcher(i: usize) -> String {
    format!("w{i}@example.com")
}

/// The two users of chat room `i`, one node (`cross` false) or across nodes.
fn pair(cross: bool, i: usize) -> (String, String) {
    let kind = if cross { "x" } else { "s" };
    (
        format!("{kind}{i}a@example.com"),
        format!("{kind}{i}b@example.com"),
    )
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

/// The CPU seconds two node processes have used so far.
fn cpu_pair(n1: &Node, n2: &Node) -> anyhow::Result<(f64, f64)> {
    Ok((
        cpu_seconds(n1.pid().context("node 1 gone")?)?,
        cpu_seconds(n2.pid().context("node 2 gone")?)?,
    ))
}

/// Two running nodes and what their users need.
struct Network {
    n1: Node,
    n2: Node,
    on1: Logon,
    on2: Logon,
    data: DataDir,
    _nats: Nats,
    _postgres: Option<relive_tests::postgres::Cluster>,
}

impl Network {
    fn token(&self, handle: &str) -> anyhow::Result<String> {
        self.data
            .token(handle)
            .map(str::to_owned)
            .context("no token")
    }

    async fn login(&self, on_n2: bool, handle: &str) -> anyhow::Result<MsnpClient> {
        let logon = if on_n2 { &self.on2 } else { &self.on1 };
        let mut c = logon.login(handle, &self.token(handle)?).await?;
        sync_lists(&mut c).await?;
        change_status(&mut c, "NLN").await?;
        Ok(c)
    }
}

/// Seeds `accounts` (with the `friends` pairs on each other's lists) on the store `--store`
/// chooses, then starts nodes `n1` and `n2` with `roles`.
async fn network(
    common: &Common,
    accounts: &[String],
    friends: &[(String, String)],
    roles: [&str; 2],
) -> anyhow::Result<Network> {
    let nats = Nats::start()?.context("nats-server is not installed")?;
    let mut shared = DataDir::sqlite()?;
    let postgres = match common.store {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => {
            use relive_tests::postgres::{Cluster, Durability, bin_dir};
            let bin =
                bin_dir().context("PostgreSQL is not installed (Debian package postgresql)")?;
            let cluster = Cluster::start(bin, Durability::Durable).map_err(anyhow::Error::msg)?;
            shared.use_postgres(&cluster.create_database().map_err(anyhow::Error::msg)?);
            Some(cluster)
        }
    };
    let mut opts = StackOptions::new().reuse(shared);
    for handle in accounts {
        opts = opts.account(handle, "User");
    }
    let stack = TestStack::start(opts).await?;
    for (a, b) in friends {
        stack.befriend(a, b).await?;
    }
    let ca = stack.ca_cert.clone();
    let data = stack.shutdown().await?;
    let program = match &common.server_bin {
        Some(bin) => bin.clone(),
        None => tokio::task::spawn_blocking(node_program).await??,
    };
    let name = format!("bench{}", std::process::id());
    let nats_url = nats.url().to_owned();
    let mut n1 = Node::spawn(&program, &data, &nats_url, &name, "n1", roles[0], 1).await?;
    let mut n2 = Node::spawn(&program, &data, &nats_url, &name, "n2", roles[1], 1).await?;
    n1.ready().await?;
    n2.ready().await?;
    let on1 = Logon::new(Method::Md5, n1.ns, n1.https, &ca, None).await?;
    let on2 = Logon::new(Method::Md5, n2.ns, n2.https, &ca, None).await?;
    Ok(Network {
        n1,
        n2,
        on1,
        on2,
        data,
        _nats: nats,
        _postgres: postgres,
    })
}

pub(crate) async fn run(common: &Common, args: Args) -> anyhow::Result<Report> {
    match args.scenario {
        Measure::Presence => presence(common, args).await,
        Measure::Chat => chat(common, args).await,
    }
}

/// Logs `watchers` in (watcher `i` on `n2` when `on_n2(i)`, else on `n1`); each reports
/// (on `n2`, when) for every `NLN` of `owner` it reads.
async fn watch_owner(
    net: &Network,
    owner: &'static str,
    watchers: &[String],
    on_n2: impl Fn(usize) -> bool,
) -> anyhow::Result<mpsc::UnboundedReceiver<(bool, Instant)>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, handle) in watchers.iter().enumerate() {
        let cross = on_n2(i);
        let mut c = net.login(cross, handle).await?;
        let tx = tx.clone();
        let me = handle.clone();
        tokio::task::spawn_local(async move {
            loop {
                match c.recv().await {
                    Ok(ServerMessage::Nln { handle, .. }) if handle.as_str() == owner => {
                        if tx.send((cross, Instant::now())).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // Nothing for 5 s (the other owner's phase): keep waiting (the client's
                    // reads survive a timeout).
                    Err(error) if error.to_string().contains("timed out") => {}
                    Err(error) => {
                        eprintln!("watcher {me}: {error:#}");
                        break;
                    }
                }
            }
        });
    }
    Ok(rx)
}

/// `owner` changes status `args.repeats` times (`AWY`, `NLN`, …), each time waiting until all
/// `watchers` have read it. Returns the latencies to watchers on `n1` and on `n2`, and the
/// CPU seconds `n1` and `n2` spent meanwhile.
async fn changes(
    net: &Network,
    owner: &mut MsnpClient,
    rx: &mut mpsc::UnboundedReceiver<(bool, Instant)>,
    watchers: usize,
    args: &Args,
) -> anyhow::Result<(Samples, Samples, (f64, f64))> {
    let before = cpu_pair(&net.n1, &net.n2)?;
    let (mut same, mut across) = (Samples::default(), Samples::default());
    for r in 0..args.repeats {
        let status = if r % 2 == 0 { "AWY" } else { "NLN" };
        let sent = Instant::now();
        change_status(owner, status).await?;
        for _ in 0..watchers {
            let (cross, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .context("a watcher missed a status change")?
                .context("watchers gone")?;
            if cross { &mut across } else { &mut same }.push(at - sent);
        }
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let after = cpu_pair(&net.n1, &net.n2)?;
    Ok((same, across, (after.0 - before.0, after.1 - before.1)))
}

async fn presence(common: &Common, args: Args) -> anyhow::Result<Report> {
    ensure!(args.watchers >= 2, "--watchers must be at least 2");
    let mut report = Report::new(
        "cluster",
        serde_json::json!({
            "scenario": "presence",
            "watchers": args.watchers,
            "repeats": args.repeats,
            "pause_ms": args.pause_ms,
            "nodes": 2,
            "store": format!("{:?}", common.store),
        }),
    );
    // OWNER's watchers are split over the nodes; SOLO's are all on n1 (with SOLO).
    let watchers: Vec<String> = (0..args.watchers).map(watcher).collect();
    let solo_watchers: Vec<String> = (0..args.watchers)
        .map(|i| format!("v{i}@example.com"))
        .collect();
    let mut accounts = vec![OWNER.to_owned(), SOLO.to_owned()];
    accounts.extend(watchers.iter().cloned());
    accounts.extend(solo_watchers.iter().cloned());
    let friends: Vec<(String, String)> = watchers
        .iter()
        .map(|w| (OWNER.to_owned(), w.clone()))
        .chain(solo_watchers.iter().map(|w| (SOLO.to_owned(), w.clone())))
        .collect();
    let mut net = network(common, &accounts, &friends, ["ns,sb", "ns,sb"]).await?;
    let mut owner = net.login(false, OWNER).await?;
    let mut solo = net.login(false, SOLO).await?;
    let mut rx = watch_owner(&net, OWNER, &watchers, |i| i % 2 == 1).await?;
    let mut solo_rx = watch_owner(&net, SOLO, &solo_watchers, |_| false).await?;
    // Everyone sees the owners online before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    while solo_rx.try_recv().is_ok() {}
    // The owners have heard their watchers come online: skip that.
    for c in [&mut owner, &mut solo] {
        c.send_line("PNG").await?;
        c.wait_for("QNG", |m| matches!(m, ServerMessage::Qng { .. }))
            .await?;
    }
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let per_change = |cpu: f64| cpu * 1e6 / args.repeats as f64;
    let (mut one, _, cpu) = changes(&net, &mut solo, &mut solo_rx, args.watchers, &args).await?;
    report.info("one node: presence latency p50", one.quantile_ms(0.5), "ms");
    report.info(
        "one node: presence latency p99",
        one.quantile_ms(0.99),
        "ms",
    );
    report.info(
        "one node: n1 (owner's, all watchers) CPU per status change",
        per_change(cpu.0),
        "µs",
    );
    report.info(
        "one node: n2 (applies it, no watcher) CPU per status change",
        per_change(cpu.1),
        "µs",
    );
    let (mut same, mut across, cpu) =
        changes(&net, &mut owner, &mut rx, args.watchers, &args).await?;
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
    report.info(
        "node 1 (owner's) CPU per status change",
        per_change(cpu.0),
        "µs",
    );
    report.info(
        "node 2 (applies it) CPU per status change",
        per_change(cpu.1),
        "µs",
    );
    report.note(format!(
        "one node: {n} watchers, all on n1 with their owner; then split: {} watchers on each \
         node; each change reaches {n} watchers",
        args.watchers / 2,
        n = args.watchers
    ));
    net.n1.kill().await?;
    net.n2.kill().await?;
    report.finish();
    Ok(report)
}

async fn chat(common: &Common, args: Args) -> anyhow::Result<Report> {
    ensure!(args.pairs >= 1, "--pairs must be at least 1");
    let mut report = Report::new(
        "cluster",
        serde_json::json!({
            "scenario": "chat",
            "pairs": args.pairs,
            "repeats": args.repeats,
            "pause_ms": args.pause_ms,
            "nodes": 2,
            "store": format!("{:?}", common.store),
        }),
    );
    let pairs: Vec<(bool, String, String)> = [false, true]
        .into_iter()
        .flat_map(|cross| {
            (0..args.pairs).map(move |i| {
                let (a, b) = pair(cross, i);
                (cross, a, b)
            })
        })
        .collect();
    let accounts: Vec<String> = pairs
        .iter()
        .flat_map(|(_, a, b)| [a.clone(), b.clone()])
        .collect();
    let friends: Vec<(String, String)> = pairs
        .iter()
        .map(|(_, a, b)| (a.clone(), b.clone()))
        .collect();
    let mut net = network(common, &accounts, &friends, ["ns,sb", "ns"]).await?;
    let payload = sb::text_payload("The quick brown fox jumps over the lazy dog.");
    for cross in [false, true] {
        let what = if cross { "across nodes" } else { "same node" };
        // Log every user of this kind in, then open the rooms one by one.
        let mut setup = Samples::default();
        let mut rooms = Vec::new();
        let mut receivers = Vec::new();
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
        for (i, (_, a, b)) in pairs.iter().filter(|p| p.0 == cross).enumerate() {
            let mut caller = net.login(false, a).await?;
            let mut callee = net.login(cross, b).await?;
            // The caller sees the callee online (on n1: for a callee on n2, once n1 applied
            // n2's change).
            caller
                .wait_for(
                    "NLN callee",
                    |m| matches!(m, ServerMessage::Nln { handle, .. } if handle.as_str() == b),
                )
                .await?;
            let mut caller_sb = sb::open(&mut caller, a, "caller_sb").await?;
            ensure!(
                caller_sb.peer_addr() == net.n1.sb,
                "the room is not on n1, the only SB node"
            );
            let started = Instant::now();
            let session = sb::call(&mut caller_sb, b).await?;
            let joined = sb::answer(&mut callee, b, "callee_sb", session, None).await?;
            setup.push(started.elapsed());
            caller_sb
                .wait_for("JOI", |m| matches!(m, ServerMessage::Joi { .. }))
                .await?;
            let mut callee_sb = joined.sb;
            let tx = tx.clone();
            let from = a.clone();
            receivers.push(tokio::task::spawn_local(async move {
                // The NS connections stay open (and logged in) as long as the room.
                let _ns = (caller, callee);
                loop {
                    match callee_sb.recv().await {
                        Ok(ServerMessage::Msg { from: f, .. }) if f.as_str() == from => {
                            if tx.send((i, Instant::now())).is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }));
            rooms.push(caller_sb);
        }
        drop(tx);
        let before = cpu_pair(&net.n1, &net.n2)?;
        let mut latency = Samples::default();
        let mut sent = vec![Instant::now(); rooms.len()];
        for _ in 0..args.repeats {
            for (i, caller_sb) in rooms.iter_mut().enumerate() {
                sent[i] = Instant::now();
                sb::send_msg(caller_sb, "N", &payload).await?;
            }
            for _ in 0..rooms.len() {
                let (i, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .context("a message was not delivered")?
                    .context("rooms gone")?;
                latency.push(at - sent[i]);
            }
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
        let after = cpu_pair(&net.n1, &net.n2)?;
        #[allow(clippy::cast_precision_loss, reason = "small counts")]
        let messages = (args.repeats * rooms.len()) as f64;
        let per_message = |cpu: f64| cpu * 1e6 / messages;
        report.info(
            format!("invitation (CAL to ANS OK) {what} p50"),
            setup.quantile_ms(0.5),
            "ms",
        );
        report.info(
            format!("invitation (CAL to ANS OK) {what} max"),
            setup.quantile_ms(1.0),
            "ms",
        );
        report.info(
            format!("message latency {what} p50"),
            latency.quantile_ms(0.5),
            "ms",
        );
        report.info(
            format!("message latency {what} p99"),
            latency.quantile_ms(0.99),
            "ms",
        );
        report.info(
            format!("CPU per message {what}, n1 + n2"),
            per_message(after.0 - before.0 + after.1 - before.1),
            "µs",
        );
        report.info(
            format!("CPU per message {what}, n1 (the room's node)"),
            per_message(after.0 - before.0),
            "µs",
        );
        report.info(
            format!("CPU per message {what}, n2"),
            per_message(after.1 - before.1),
            "µs",
        );
        // Close this kind's rooms before the next: their users leave the network.
        drop(rooms);
        for receiver in receivers {
            receiver.abort();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.note(format!(
        "{} rooms of two on n1 (ns,sb); same node: both users logged in on n1; across nodes: \
         caller on n1, callee on n2 (ns); {} messages of {} bytes per room, one per room at a \
         time, {} ms apart",
        args.pairs,
        args.repeats,
        payload.len(),
        args.pause_ms
    ));
    net.n1.kill().await?;
    net.n2.kill().await?;
    report.finish();
    Ok(report)
}
