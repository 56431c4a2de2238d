//! `relive-bench`: the load generator and benchmarks of issue #8.
//!
//! Every scenario seeds a fresh temporary data directory through the server library
//! ([`relive_server::store::Store::seed`]: accounts, tokens and contact lists in one
//! transaction), starts the server as a separate process on `127.0.0.1` port-0 listeners (this
//! binary re-executed in its hidden `__serve` mode, which runs the same library code as
//! `relive-server serve`, or the binary given with `--server-bin`), drives it from one
//! single-threaded runtime (so the server keeps the other core), prints progress to standard
//! error, and ends with a table (targets next to the figures, ✓/✗) and, with `--json FILE`,
//! the same figures as JSON. The exit status is 1 when a target is missed.
//!
//! Scenarios: [`chat`], [`idle`], [`login`], [`presence`], [`lists`], [`cluster`] (issue 19: two
//! `relive-server serve` nodes over NATS, presence and chat), [`flood`] (issue #14: logins from other addresses while one address floods
//! every listener); `--store postgres` runs any of them with the server on PostgreSQL (issue
//! #19); users log in as [`logon`] says
//! (`--login md5`, MSNP7; `--login passport`, MSNP9 through HTTPS `login2.srf`; `--login
//! msnp11`, the same as MSN 7.0).

mod chat;
mod cluster;
mod flood;
mod idle;
mod lists;
mod login;
mod logon;
mod presence;
mod report;
mod server;
mod stats;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use relive_cli::{Level, Logging};

/// Load generator and benchmarks for the Relive server.
#[derive(Debug, Parser)]
#[command(name = "relive-bench")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    common: Common,
    /// The flags every Relive program shares (the bench's own log lines; the server it
    /// starts logs at `RELIVE_BENCH_SERVER_LOG`, default `warn`).
    #[command(flatten)]
    logging: Logging,
}

/// Options every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Common {
    /// Also write the results as JSON to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run this `relive-server` binary instead of the server library in a child process of
    /// this binary (both are the same code; this is for measuring a particular build).
    #[arg(long, global = true, value_name = "PATH")]
    server_bin: Option<PathBuf>,
    /// Keep the temporary data directory and the server log, and print where they are.
    #[arg(long, global = true)]
    keep: bool,
    /// How `chat`, `idle` and `presence` log their users in (`login` measures both paths; see
    /// its `--mode`).
    #[arg(long, global = true, value_enum, default_value_t = logon::Method::Md5)]
    login: logon::Method,
    /// Where the server keeps its data: the embedded SQLite file, or PostgreSQL (a cluster
    /// this benchmark starts from Debian's `postgresql` package, with its durable defaults:
    /// `fsync` and `synchronous_commit` on). With PostgreSQL, "server CPU" includes the
    /// database's processes.
    #[arg(long, global = true, value_enum, default_value_t = server::StoreKind::Sqlite)]
    store: server::StoreKind,
    /// With `--store postgres`: the server's `[store] pool_size` (connections running
    /// operations at once; unset: the server's default). Not written to the configuration
    /// when unset, so `--server-bin` can run a build that predates the setting.
    #[arg(long, global = true, value_name = "N")]
    store_pool_size: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Chat: rooms of two users exchanging `MSG A` with a window of messages in flight; a
    /// fixed offered rate, then saturation.
    Chat(chat::Args),
    /// Idle: N logged-in users with contact lists, `PNG` every 50 s; the server's RSS per
    /// connection.
    Idle(idle::Args),
    /// Login: token logins per second on MSNP7 MD5 and through Passport (HTTPS + MSNP9 TWN;
    /// `--mode all` adds MSNP11).
    Login(login::Args),
    /// Presence: one user with K online watchers changes status; time until all K have the NLN.
    Presence(presence::Args),
    /// Lists: logged-in users add and remove contacts (`ADD`/`REM FL`), one change in flight
    /// each; acknowledged (committed) list changes per second.
    Lists(lists::Args),
    /// Flood: one address holds 10,000 connections to every listener, idle and trickling;
    /// login latency of users from other addresses, MD5 and Passport.
    Flood(flood::Args),
    /// Cluster (issue 19): two `relive-server serve` nodes over a real nats-server;
    /// `--scenario presence`: presence latency within a node and across nodes, CPU per status
    /// change on each node; `--scenario chat`: invitation and message latency and CPU per
    /// message, rooms of two users on one node vs on two nodes.
    Cluster(cluster::Args),
    /// Internal: run the server on a prepared data directory (what the scenarios start).
    #[command(name = "__serve", hide = true)]
    Serve {
        /// The data directory.
        #[arg(long, alias = "dir")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.logging.init(Level::Warn);
    if let Scenario::Serve { data_dir } = &cli.scenario {
        return match server::child_main(data_dir.clone()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the scenario; `Ok(false)` when a target was missed.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let fds = server::raise_fd_limit()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let local = tokio::task::LocalSet::new();
    let common = cli.common.clone();
    let report = local.block_on(&rt, async move {
        match cli.scenario {
            Scenario::Chat(args) => chat::run(&common, args).await,
            Scenario::Idle(args) => idle::run(&common, args, fds).await,
            Scenario::Login(args) => login::run(&common, args).await,
            Scenario::Presence(args) => presence::run(&common, args).await,
            Scenario::Lists(args) => lists::run(&common, args).await,
            Scenario::Flood(args) => flood::run(&common, args, fds).await,
            Scenario::Cluster(args) => cluster::run(&common, args).await,
            Scenario::Serve { .. } => unreachable!("handled in main"),
        }
    })?;
    report.print();
    if let Some(path) = &cli.common.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(report.passed())
}
