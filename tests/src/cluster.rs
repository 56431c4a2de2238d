//! A Relive cluster for tests and `relive-bench cluster`: real `relive-server serve` processes
//! (one per node, so a test can `kill -9` one) on `127.0.0.1:0`, each with a data directory
//! of its own as on separate hosts, holding what README "Several nodes (cluster mode)" tells
//! an operator to copy: the same `secret.key` and the same local CA (`tls/relive-ca.crt`,
//! `tls/ca.key`, `tls/ca.name`; each node issues its own server certificate from it). The
//! nodes share the store (the PostgreSQL database of the prepared [`DataDir`], or on one host
//! its SQLite file, linked into each node's directory) and one [`crate::nats::Nats`].
//!
//! [`node_program`] builds `relive-server` (`cargo build -p relive-server`, a no-op when it is
//! up to date) into the target directory of the running test or bench, with its profile.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use relive_server::tls::CertPaths;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::stack::DataDir;

/// One node process.
#[derive(Debug)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// NS listener.
    pub ns: SocketAddr,
    /// SB listener.
    pub sb: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
    /// HTTPS listener.
    pub https: SocketAddr,
    /// The peers [`Self::ready`] waits for.
    peers: usize,
    child: Child,
    /// What the node printed on standard output after its start-up lines.
    lines: mpsc::UnboundedReceiver<String>,
    /// Its own data directory (removed when the node is dropped).
    dir: tempfile::TempDir,
}

/// How long a node may take to start and see its peers.
const START: Duration = Duration::from_secs(30);

/// Heartbeat period and peer timeout of the test nodes (`--heartbeat-ms`, `--dead-after-ms`):
/// short, so a killed node is noticed within a second.
const HEARTBEAT_MS: &str = "200";
const DEAD_AFTER_MS: &str = "1000";

impl Node {
    /// Starts node `id` (with `roles`, e.g. `"ns"` or `"ds,ns"`) of network `name` over NATS
    /// at `nats`: `program serve` (see [`node_program`]) on a new data directory holding
    /// `data`'s `secret.key` and CA, on `data`'s store; waits until it listens (not yet for
    /// its `peers` other nodes: see [`Self::ready`]).
    ///
    /// # Errors
    ///
    /// The data directory could not be made, the program did not start or did not print its
    /// addresses in time.
    pub async fn spawn(
        program: &Path,
        data: &DataDir,
        nats: &str,
        name: &str,
        id: &str,
        roles: &str,
        peers: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("relive-node-{id}-"))
            .tempdir()?;
        copy_shared(&data.path(), dir.path())?;
        // What the command line has no flag for: the embedded relay's QUIC socket and
        // allocation ports, chosen by the OS (several nodes on one host); and every client
        // comes from 127.0.0.1, so the per-source caps (32 NS connections) do not apply to it.
        std::fs::write(
            dir.path().join(relive_server::config::CONFIG_FILE),
            "[relay]\nquic = \"127.0.0.1:0\"\nport_min = 0\nport_max = 0\n\
             [limits]\nexempt_sources = [\"127.0.0.0/8\"]\n",
        )?;
        let mut command = Command::new(program);
        command.arg("--data-dir").arg(dir.path()).arg("serve");
        for flag in ["--ns", "--sb", "--http", "--https"] {
            command.args([flag, "127.0.0.1:0"]);
        }
        command.args(["--metrics", "off", "--public-host", "127.0.0.1"]);
        command.args(["--node-id", id, "--nats-url", nats, "--cluster-name", name]);
        command.args(["--roles", roles]);
        command.args([
            "--heartbeat-ms",
            HEARTBEAT_MS,
            "--dead-after-ms",
            DEAD_AFTER_MS,
        ]);
        if let Some(url) = data.store_url() {
            command.args(["--store-url", url]);
        }
        let log = dir.path().join("node.log");
        let mut child = command
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, mut lines) = mpsc::unbounded_channel();
        // Read to the end, so the node never blocks on a full pipe.
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addrs = tokio::time::timeout(START, async {
            let mut found = [None; 4];
            while let Some(line) = lines.recv().await {
                for (i, what) in ["NS", "SB", "HTTP", "HTTPS"].iter().enumerate() {
                    if let Some(addr) = line.strip_prefix(&format!("{what} listening on ")) {
                        found[i] = Some(addr.parse::<SocketAddr>()?);
                    }
                }
                if line.starts_with("public host") {
                    return Ok(found);
                }
            }
            bail!("it exited")
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r)
        .with_context(|| format!("node {id} did not start: {}", tail(&log)))?;
        let [Some(ns), Some(sb), Some(http), Some(https)] = addrs else {
            bail!("node {id} did not print every address: {addrs:?}");
        };
        Ok(Self {
            id: id.to_owned(),
            ns,
            sb,
            http,
            https,
            peers,
            child,
            lines,
            dir,
        })
    }

    /// Waits until the node has seen all its peers (it prints `cluster peers: … (N)`).
    ///
    /// # Errors
    ///
    /// It did not within 30 s, or exited.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let want = self.peers;
        let seen = tokio::time::timeout(START, async {
            while let Some(line) = self.lines.recv().await {
                let Some(peers) = line.strip_prefix("cluster peers: ") else {
                    continue;
                };
                let count = match peers.rsplit_once(" (") {
                    Some((_, n)) => n.trim_end_matches(')').parse::<usize>()?,
                    None => 0,
                };
                if count >= want {
                    return Ok(());
                }
            }
            bail!("it exited")
        })
        .await;
        match seen {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.context(format!(
                "node {}: {}",
                self.id,
                tail(&self.dir.path().join("node.log"))
            ))),
            Err(_) => bail!("node {} did not see its {want} peers in time", self.id),
        }
    }

    /// `kill -9`: the process dies at once, without a word to anyone.
    ///
    /// # Errors
    ///
    /// The process could not be killed or reaped.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGTERM (through `kill`, no unsafe code): the node tells its peers it leaves, closes
    /// its sessions and exits; waits for that.
    ///
    /// # Errors
    ///
    /// `kill` failed, or the node did not exit within 30 s.
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("already exited")?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill -TERM {pid}: {status}");
        let exit = tokio::time::timeout(START, self.child.wait())
            .await
            .with_context(|| format!("node {} did not stop", self.id))??;
        ensure!(
            exit.success(),
            "node {} exited with {exit}: {}",
            self.id,
            tail(&self.dir.path().join("node.log"))
        );
        Ok(())
    }

    /// The process id (for CPU readings from `/proc`).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The node's own data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Puts into the new data directory `to` what every node shares with the prepared one
/// `from`: `secret.key` and the CA, copied; with SQLite (one host) a link to its `relive.db`.
fn copy_shared(from: &Path, to: &Path) -> anyhow::Result<()> {
    let key = relive_server::data_dir::KEY_FILE;
    std::fs::copy(from.join(key), to.join(key)).context("copying secret.key")?;
    let (src, dst) = (CertPaths::in_data_dir(from), CertPaths::in_data_dir(to));
    std::fs::create_dir_all(to.join("tls"))?;
    for (a, b) in [
        (&src.ca_cert, &dst.ca_cert),
        (&src.ca_key, &dst.ca_key),
        (&src.ca_name, &dst.ca_name),
    ] {
        std::fs::copy(a, b).with_context(|| format!("copying {}", a.display()))?;
    }
    let db = from.join("relive.db");
    if db.exists() {
        // SQLite resolves the link: every node opens the one file (and its WAL) beside it.
        std::os::unix::fs::symlink(&db, to.join("relive.db"))?;
    }
    Ok(())
}

/// The last lines of a node's log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// The `relive-server` binary the nodes run: built once per process with `cargo build
/// --locked -p relive-server --bin relive-server` (the `cargo` running the tests, or the one on
/// `PATH`) into the target directory and profile of the running test or bench binary (a
/// no-op when it is up to date; from a clean checkout the first cluster test builds it).
///
/// # Errors
///
/// The running executable's directory is unknown, or the build failed.
pub fn node_program() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_server().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_server() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("no exe dir")?.to_path_buf();
    // Test binaries live in target/<profile>/deps, binaries in target/<profile>.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => bail!("{} is not a profile directory", dir.display()),
    };
    let target = dir.parent().context("no target dir")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--locked", "--quiet", "-p", "relive-server"])
        .args(["--bin", "relive-server", "--profile", &profile])
        .arg("--manifest-path")
        .arg(crate::dist::workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target);
    crate::dist::without_test_env(&mut cmd);
    let out = cmd
        .output()
        .context("running cargo build -p relive-server")?;
    ensure!(
        out.status.success(),
        "cargo build -p relive-server failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let program = dir.join("relive-server");
    ensure!(program.exists(), "{} was not built", program.display());
    Ok(program)
}
