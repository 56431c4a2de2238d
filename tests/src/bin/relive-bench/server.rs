//! The server under test: a seeded temporary data directory and a separate server process on
//! `127.0.0.1` port-0 listeners, its addresses (read from the lines it prints), its RSS, and
//! the open-file limit both processes need.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use relive_server::config::{self, Config, Overrides};
use relive_server::store::seed::{SeedAccount, SeedContact};
use relive_server::store::{ListKind, ListSet, parse_handle};
use relive_server::tls::CertPaths;
use relive_server::{Context, Listeners};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Common;

/// File descriptors a process needs besides its client sockets (listeners, database, epoll,
/// pipes, log): what the fd check reserves.
pub(crate) const FD_RESERVE: u64 = 64;

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children inherit it) and
/// returns the limit now in force.
pub(crate) fn raise_fd_limit() -> anyhow::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    if limit.current != hard {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        )
        .context("raising the open-file soft limit to the hard limit")?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// `FL|AL`: what the seeded users put each other on.
pub(crate) const FL_AL: ListSet = ListSet::EMPTY.with(ListKind::Fl).with(ListKind::Al);

/// The handle of seeded user `i`.
pub(crate) fn handle(i: usize) -> String {
    format!("user{i}@bench.example")
}

/// `n` accounts `user0@bench.example` … with friendly names `User0` ….
pub(crate) fn accounts(n: usize) -> anyhow::Result<Vec<SeedAccount>> {
    (0..n)
        .map(|i| {
            Ok(SeedAccount {
                email: parse_handle(&handle(i))?,
                friendly_name: format!("User{i}"),
            })
        })
        .collect()
}

/// Mutual contact lists of `per_user` entries: user `i` puts `i±1 … i±per_user/2` (mod `n`)
/// on FL and AL (so each has `per_user` contacts, each on FL, AL and RL).
pub(crate) fn ring_contacts(n: usize, per_user: usize) -> Vec<SeedContact> {
    let half = (per_user / 2).min(n.saturating_sub(1) / 2);
    let mut out = Vec::with_capacity(n * half * 2);
    for owner in 0..n {
        for d in 1..=half {
            for contact in [(owner + d) % n, (owner + n - d) % n] {
                out.push(SeedContact {
                    owner,
                    contact,
                    lists: FL_AL,
                });
            }
        }
    }
    out
}

/// Where the server under test keeps its data (`--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    /// The embedded SQLite file (the default).
    Sqlite,
    /// A PostgreSQL cluster started for the run.
    Postgres,
}

/// A seeded user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// Handle.
    pub(crate) handle: String,
    /// Access token.
    pub(crate) token: String,
}

/// Server settings a scenario chooses.
#[derive(Debug, Clone)]
pub(crate) struct ServerOpts {
    /// Connections each listener must be able to hold at once.
    pub(crate) max_connections: usize,
    /// Keep the server's default `[limits]` (the flood scenario). Otherwise the load, which
    /// all comes from 127.0.0.1, is exempt from the per-source caps, lookups are not throttled,
    /// and every listener's pool holds `max_connections`.
    pub(crate) default_limits: bool,
}

impl ServerOpts {
    /// What the load scenarios use: see [`ServerOpts::default_limits`].
    pub(crate) const fn load(max_connections: usize) -> Self {
        Self {
            max_connections,
            default_limits: false,
        }
    }

    /// The `relive.toml` the server runs with.
    fn config_file(&self) -> String {
        if self.default_limits {
            return String::new();
        }
        // Four listeners (legacy TLS is off) with a quarter each.
        format!(
            "max_connections = {}\n\
             [limits]\n\
             ns_share = 25\nsb_share = 25\nhttp_share = 25\nhttps_share = 24\n\
             legacy_tls_share = 1\n\
             exempt_sources = [\"127.0.0.0/8\"]\n\
             lookup_burst = 1000000\n",
            self.max_connections * 4
        )
    }
}

/// A running server process.
#[derive(Debug)]
pub(crate) struct Server {
    /// NS address.
    pub(crate) ns: SocketAddr,
    /// SB address.
    pub(crate) sb: SocketAddr,
    /// HTTP address.
    pub(crate) http: SocketAddr,
    /// HTTPS address.
    pub(crate) https: SocketAddr,
    /// The generated CA certificate.
    pub(crate) ca_cert: PathBuf,
    /// The process id (for RSS).
    pub(crate) pid: u32,
    child: Child,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
    /// The PostgreSQL cluster with `--store postgres` (it stops once this process has exited).
    postgres: Option<relive_tests::postgres::Cluster>,
}

/// Seeds a fresh data directory with `accounts` and `contacts`, starts the server on it and
/// returns it with the users (in the order given).
pub(crate) async fn start(
    common: &Common,
    opts: &ServerOpts,
    accounts: Vec<SeedAccount>,
    contacts: Vec<SeedContact>,
) -> anyhow::Result<(Server, Vec<User>)> {
    let dir = tempfile::Builder::new().prefix("relive-bench-").tempdir()?;
    let data_dir = dir.path().join("data");
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let (postgres, store_url) = match common.store {
        StoreKind::Sqlite => (None, None),
        StoreKind::Postgres => {
            use relive_tests::postgres::{Cluster, Durability, bin_dir};
            let bin =
                bin_dir().context("PostgreSQL is not installed (Debian package postgresql)")?;
            let cluster = Cluster::start(bin, Durability::Durable).map_err(anyhow::Error::msg)?;
            let url = cluster.create_database().map_err(anyhow::Error::msg)?;
            eprintln!("PostgreSQL cluster started (fsync on, synchronous_commit on)");
            (Some(cluster), Some(url))
        }
    };
    let settings = Config {
        ns: any,
        sb: any,
        http: any,
        https: any,
        store: config::StoreConfig {
            url: store_url.clone(),
            ..config::StoreConfig::default()
        },
        ..Config::default()
    }
    .validate(data_dir.clone())?;
    let (store, _) = relive_server::data_dir::prepare(&settings)
        .await
        .context("preparing the data directory")?;
    let started = std::time::Instant::now();
    let handles: Vec<String> = accounts
        .iter()
        .map(|a| a.email.as_str().to_owned())
        .collect();
    let rows = contacts.len();
    let seeded = store
        .seed(accounts, contacts, "bench")
        .await
        .context("seeding accounts")?;
    store.close().await?;
    let mut toml = opts.config_file();
    if let Some(url) = &store_url {
        toml.push_str(&format!("[store]\nurl = \"{url}\"\n"));
        if let Some(n) = common.store_pool_size {
            toml.push_str(&format!("pool_size = {n}\n"));
        }
    }
    std::fs::write(data_dir.join(config::CONFIG_FILE), toml).context("writing relive.toml")?;
    eprintln!(
        "seeded {} accounts and {rows} contact entries in {:.1} s",
        seeded.len(),
        started.elapsed().as_secs_f64()
    );
    let users = handles
        .into_iter()
        .zip(seeded)
        .map(|(handle, s)| User {
            handle,
            token: s.token.expose().to_owned(),
        })
        .collect();
    let log = dir.path().join("server.log");
    let mut cmd = match &common.server_bin {
        Some(bin) => {
            let mut c = Command::new(bin);
            c.arg("--data-dir").arg(&data_dir).arg("serve");
            for flag in ["--ns", "--sb", "--http", "--https", "--metrics"] {
                c.arg(flag).arg("127.0.0.1:0");
            }
            c.arg("--public-host").arg("127.0.0.1");
            c
        }
        None => {
            let mut c = Command::new(std::env::current_exe()?);
            c.arg("__serve").arg("--data-dir").arg(&data_dir);
            c
        }
    };
    cmd.env(
        "RUST_LOG",
        std::env::var("RELIVE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log)?);
    let mut child = cmd.spawn().context("starting the server process")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let [ns, sb, http, https] =
        tokio::task::spawn_blocking(move || read_addresses(stdout)).await??;
    let pid = child.id();
    let server = Server {
        ns,
        sb,
        http,
        https,
        ca_cert: CertPaths::in_data_dir(&data_dir).ca_cert,
        pid,
        child,
        dir: Some(dir),
        log,
        postgres,
    };
    if common.keep {
        eprintln!("server pid {pid}, log {}", server.log.display());
    }
    Ok((server, users))
}

/// Reads the server's start-up lines up to `public host`, then keeps draining its output on a
/// thread. Returns the NS, SB, HTTP and HTTPS addresses.
fn read_addresses(stdout: std::process::ChildStdout) -> anyhow::Result<[SocketAddr; 4]> {
    let mut lines = BufReader::new(stdout).lines();
    let mut found = [None; 4];
    for line in lines.by_ref() {
        let line = line?;
        for (i, what) in ["NS", "SB", "HTTP", "HTTPS"].iter().enumerate() {
            if let Some(a) = line.strip_prefix(&format!("{what} listening on ")) {
                found[i] = Some(a.parse()?);
            }
        }
        if line.starts_with("public host") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    match found {
        [Some(ns), Some(sb), Some(http), Some(https)] => Ok([ns, sb, http, https]),
        _ => bail!("the server exited before printing its addresses"),
    }
}

impl Server {
    /// The server's resident set size in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.pid))
    }

    /// CPU time the server process has used so far (user + system), in seconds; with
    /// `--store postgres` plus the PostgreSQL cluster's processes (the work the store does).
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let db = self.postgres.as_ref().map_or(0, |c| c.cpu_ticks());
        let hz = f64::from(rustix::param::clock_ticks_per_second() as u32);
        Ok(self.process_cpu_seconds()? + db as f64 / hz)
    }

    /// CPU time of the server process alone, in seconds.
    fn process_cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name (which is in parentheses and may contain spaces).
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow!("unexpected /proc/{}/stat", self.pid))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
        let ticks: u64 = fields
            .get(11..13)
            .ok_or_else(|| anyhow!("short /proc/{}/stat", self.pid))?
            .iter()
            .map(|f| f.parse::<u64>())
            .sum::<Result<u64, _>>()?;
        Ok(ticks as f64 / f64::from(rustix::param::clock_ticks_per_second() as u32))
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and removes its data directory
    /// unless `--keep`.
    pub(crate) async fn stop(mut self, keep: bool) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid)?)
            .ok_or_else(|| anyhow!("bad pid"))?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(dir) = self.dir.take()
            && keep
        {
            eprintln!("kept {}", dir.keep().display());
        }
        Ok(())
    }

    /// Lines and bytes the server has logged so far.
    pub(crate) fn log_size(&self) -> (usize, u64) {
        let text = std::fs::read(&self.log).unwrap_or_default();
        (
            text.iter().filter(|b| **b == b'\n').count(),
            text.len() as u64,
        )
    }

    /// The server log's last lines (for error messages).
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A scenario that failed half-way must not leave its server running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The hidden `__serve` mode: what `relive-server serve` does (same library calls, same
/// multi-threaded runtime), on `127.0.0.1` port-0 listeners, printing the same address lines.
/// Logging is set up by `main` (`RUST_LOG`, which the parent sets, decides the level).
pub(crate) fn child_main(data_dir: PathBuf) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(serve(&data_dir))
}

async fn serve(data_dir: &Path) -> anyhow::Result<()> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let overrides = Overrides {
        ns: Some(any),
        sb: Some(any),
        http: Some(any),
        https: Some(any),
        public_host: Some("127.0.0.1".to_owned()),
        ..Overrides::default()
    };
    let settings = config::resolve(data_dir, &overrides)?;
    let (store, _) = relive_server::data_dir::prepare(&settings).await?;
    let mut ctx = Context::new(settings.clone(), store)?;
    ctx.https_tls = Some(relive_server::http::tls::acceptor(
        &CertPaths::in_data_dir(&settings.data_dir),
    )?);
    let listeners = Listeners {
        ns: TcpListener::bind(settings.ns).await?,
        sb: TcpListener::bind(settings.sb).await?,
        http: TcpListener::bind(settings.http).await?,
        https: TcpListener::bind(settings.https).await?,
        legacy_tls: None,
    };
    for (what, l) in [
        ("NS", &listeners.ns),
        ("SB", &listeners.sb),
        ("HTTP", &listeners.http),
        ("HTTPS", &listeners.https),
    ] {
        println!("{what} listening on {}", l.local_addr()?);
    }
    println!("public host {}", settings.public_host);
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        term.recv().await;
        trigger.cancel();
    });
    relive_server::run_with(ctx, listeners, shutdown).await?;
    Ok(())
}

/// Fails with a clear message when `needed` descriptors (client sockets) plus the reserve do
/// not fit under `limit`; returns the largest count that does.
pub(crate) fn fd_fit(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
}

/// Checks that `needed` sockets fit in each process under `limit`.
pub(crate) fn ensure_fits(needed: usize, limit: u64) -> anyhow::Result<()> {
    ensure!(
        needed <= fd_fit(limit),
        "{needed} connections do not fit: the open-file limit is {limit} per process (the hard \
         limit; raising it needs CAP_SYS_RESOURCE or a higher `ulimit -Hn`), and each process \
         needs about {FD_RESERVE} descriptors besides its sockets; at most {} fit",
        fd_fit(limit)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_contacts_are_mutual_and_sized() {
        let c = ring_contacts(10, 4);
        assert_eq!(c.len(), 40);
        for e in &c {
            assert!(
                c.iter()
                    .any(|r| r.owner == e.contact && r.contact == e.owner)
            );
            assert_ne!(e.owner, e.contact);
        }
        // Fewer users than contacts: everyone else, once.
        let small = ring_contacts(3, 50);
        assert_eq!(small.len(), 3 * 2);
    }
}
