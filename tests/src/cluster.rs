//! A Relive cluster for tests and `relive-bench cluster`: real `relive-server serve` processes
//! (one per node, so a test can `kill -9` one) on `127.0.0.1:0`, each with a data directory
//! of its own as on separate hosts, holding what README "Several nodes (cluster mode)" tells
//! an operator to copy: the same `secret.key` and the same local CA (`tls/relive-ca.crt`,
//! `tls/ca.key`, `tls/ca.name`; each node issues its own server certificate from it). The
//! nodes share the store (the PostgreSQL database of the prepared [`DataDir`], or on one host
//! its SQLite file, linked into each node's directory) and one [`crate::nats::Nats`].
//!
//! Each node runs its embedded relay, or with [`Join::relay`] drives one [`StandaloneRelay`]
//! (`relive-relay serve --servers N`) shared by the network, as README "Several nodes" says.
//!
//! [`node_program`] builds `relive-server` (`cargo build -p relive-server`, a no-op when it is
//! up to date) into the target directory of the running test or bench, with its profile;
//! [`relay_program`] builds `relive-relay` the same way.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use relive_server::relay::engine::serve::RelayFiles;
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

/// What the nodes of one network share: the program, the prepared data directory, the NATS
/// server and the network's name; optionally one standalone relay.
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    /// The `relive-server` binary ([`node_program`]).
    pub program: &'a Path,
    /// The prepared data directory (`secret.key`, CA, store).
    pub data: &'a DataDir,
    /// The NATS URL.
    pub nats: &'a str,
    /// The network's name (`--cluster-name`).
    pub name: &'a str,
    /// `[relay] remote …` for every node (`None`: each node runs its embedded relay).
    pub relay: Option<&'a RemoteRelay>,
}

/// The `[relay]` table of a node driving a standalone relay (`server/src/relay.rs`, "A
/// standalone relay"): what README tells an operator to write on every SB node.
#[derive(Debug, Clone)]
pub struct RemoteRelay {
    /// `remote`: the relay's QUIC address.
    pub addr: SocketAddr,
    /// `remote_secret_file`: the relay's `control-secret`.
    pub secret_file: PathBuf,
    /// `remote_ca`: the relay's `relay-cert.pem`.
    pub ca: PathBuf,
    /// `remote_name`: the name its certificate is checked against.
    pub name: String,
    /// `public_ip`: the relay host's address, written into invitations.
    pub public_ip: IpAddr,
}

impl RemoteRelay {
    /// The `[relay]` table (the control connection's local socket on `127.0.0.1:0`).
    fn toml(&self) -> String {
        // A JSON string literal is a TOML basic string.
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let path = |p: &Path| quote(&p.to_string_lossy());
        format!(
            "[relay]\nquic = \"127.0.0.1:0\"\nremote = \"{}\"\nremote_secret_file = {}\n\
             remote_ca = {}\nremote_name = {}\npublic_ip = \"{}\"\n",
            self.addr,
            path(&self.secret_file),
            path(&self.ca),
            quote(&self.name),
            self.public_ip,
        )
    }
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
        let join = Join {
            program,
            data,
            nats,
            name,
            relay: None,
        };
        Self::spawn_in(&join, id, roles, peers).await
    }

    /// [`Self::spawn`] with what every node of `join`'s network shares, a standalone relay
    /// among it.
    ///
    /// # Errors
    ///
    /// As [`Self::spawn`].
    pub async fn spawn_in(
        join: &Join<'_>,
        id: &str,
        roles: &str,
        peers: usize,
    ) -> anyhow::Result<Self> {
        let Join {
            program,
            data,
            nats,
            name,
            relay,
        } = *join;
        let dir = tempfile::Builder::new()
            .prefix(&format!("relive-node-{id}-"))
            .tempdir()?;
        copy_shared(&data.path(), dir.path())?;
        // What the command line has no flag for: the embedded relay's QUIC socket and
        // allocation ports, chosen by the OS (several nodes on one host), or the standalone
        // relay the node drives (the QUIC socket is then its control connection's); and every
        // client comes from 127.0.0.0/8, so the per-source caps (32 NS connections) do not
        // apply to it.
        let relay_table = match relay {
            None => "[relay]\nquic = \"127.0.0.1:0\"\nport_min = 0\nport_max = 0\n".to_owned(),
            Some(remote) => remote.toml(),
        };
        std::fs::write(
            dir.path().join(relive_server::config::CONFIG_FILE),
            format!("{relay_table}[limits]\nexempt_sources = [\"127.0.0.0/8\"]\n"),
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
        for_each_line(stdout, tx);
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

/// A standalone relay process (`relive-relay serve`, see [`relay_program`]) on loopback: QUIC
/// on `127.0.0.1:0`, allocation ports on [`Self::ALLOCATION_IP`] chosen by the OS, serving
/// `servers` SB nodes at once (`--servers`), its certificate for `relay.test` and `127.0.0.1`.
#[derive(Debug)]
pub struct StandaloneRelay {
    /// Its QUIC address (agents and the nodes' control connections).
    pub quic: SocketAddr,
    /// Its data directory: `relay-cert.pem`, `relay-key.pem`, `control-secret`.
    pub dir: tempfile::TempDir,
    /// Killed when dropped.
    _child: Child,
    /// Its log lines (`RUST_LOG=relive_relay=info` on standard error).
    log: mpsc::UnboundedReceiver<String>,
}

impl StandaloneRelay {
    /// The name in the relay's certificate that nodes and agents check.
    pub const NAME: &'static str = "relay.test";
    /// Where its allocation ports listen, and what invitations name (`public_ip`): not the
    /// nodes' `127.0.0.1`, so a test tells a relayed address from any other.
    pub const ALLOCATION_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

    /// Starts `program serve` and waits until it listens.
    ///
    /// # Errors
    ///
    /// It did not start or did not print its address in time.
    pub async fn spawn(program: &Path, servers: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("relive-relay-").tempdir()?;
        let mut child = Command::new(program)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--name", Self::NAME, "--name", "127.0.0.1"])
            .args(["--quic", "127.0.0.1:0", "--bind-ip"])
            .arg(Self::ALLOCATION_IP.to_string())
            .args(["--port-min", "0", "--port-max", "0"])
            .args(["--servers", &servers.to_string()])
            .env("RUST_LOG", "relive_relay=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let (tx, mut log) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        // Both read to the end, so the relay never blocks on a full pipe.
        for_each_line(stdout, tx.clone());
        for_each_line(stderr, tx);
        let quic = tokio::time::timeout(START, async {
            while let Some(line) = log.recv().await {
                if let Some(addr) = line.strip_prefix("relay QUIC listening on ") {
                    return Ok(addr.trim_end_matches("/udp").parse::<SocketAddr>()?);
                }
            }
            bail!("it exited")
        })
        .await
        .context("the standalone relay did not start in time")??;
        Ok(Self {
            quic,
            dir,
            _child: child,
            log,
        })
    }

    /// What a node writes in `[relay]` to drive this relay.
    #[must_use]
    pub fn remote(&self) -> RemoteRelay {
        let files = RelayFiles::in_dir(self.dir.path());
        RemoteRelay {
            addr: self.quic,
            secret_file: files.secret,
            ca: files.cert,
            name: Self::NAME.to_owned(),
            public_ip: IpAddr::V4(Self::ALLOCATION_IP),
        }
    }

    /// Its certificate (what agents trust).
    #[must_use]
    pub fn cert(&self) -> PathBuf {
        RelayFiles::in_dir(self.dir.path()).cert
    }

    /// Waits for `count` more log lines containing `what`; returns the last.
    ///
    /// # Errors
    ///
    /// Not within 30 s, or the relay exited.
    pub async fn wait_log(&mut self, what: &str, count: usize) -> anyhow::Result<String> {
        let log = &mut self.log;
        tokio::time::timeout(START, async {
            let mut seen = 0;
            while let Some(line) = log.recv().await {
                if line.contains(what) {
                    seen += 1;
                    if seen == count {
                        return Ok(line);
                    }
                }
            }
            bail!("the relay exited")
        })
        .await
        .with_context(|| format!("the relay did not log {what:?} {count} time(s)"))?
    }
}

/// Sends every line of `from` to `to` until either ends.
fn for_each_line(
    from: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    to: mpsc::UnboundedSender<String>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if to.send(line).is_err() {
                break;
            }
        }
    });
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
        .get_or_init(|| build("relive-server").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The `relive-relay` binary (the standalone relay, `relive-relay serve`), built as
/// [`node_program`] builds `relive-server`.
///
/// # Errors
///
/// As [`node_program`].
pub fn relay_program() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build("relive-relay").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// `cargo build` of package `name`'s binary of the same name.
fn build(name: &str) -> anyhow::Result<PathBuf> {
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
    cmd.args(["build", "--locked", "--quiet", "-p", name])
        .args(["--bin", name, "--profile", &profile])
        .arg("--manifest-path")
        .arg(crate::dist::workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target);
    crate::dist::without_test_env(&mut cmd);
    let out = cmd
        .output()
        .with_context(|| format!("running cargo build -p {name}"))?;
    ensure!(
        out.status.success(),
        "cargo build -p {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let program = dir.join(name);
    ensure!(program.exists(), "{} was not built", program.display());
    Ok(program)
}
