//! A Relive cluster for tests and `relive-bench cluster`: `relive-node` child processes (one
//! per node, so a test can `kill -9` one) on `127.0.0.1:0`, sharing one prepared data
//! directory (key, certificates, and the store: its SQLite file or its PostgreSQL database) and
//! one [`crate::nats::Nats`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

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
    child: Child,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

/// How long a node may take to start and see its peers.
const START: Duration = Duration::from_secs(30);

impl Node {
    /// Starts node `id` (with `roles`, e.g. `"ns"` or `"ds"`) of network `name` serving
    /// `data` (its key and certificates, and its store: the SQLite file or its PostgreSQL
    /// database) over NATS at `nats`, and waits until it listens (not yet for its peers: see
    /// [`Self::ready`]).
    ///
    /// # Errors
    ///
    /// The binary did not start or did not print its addresses in time.
    pub async fn spawn(
        program: &Path,
        data: &crate::stack::DataDir,
        nats: &str,
        name: &str,
        id: &str,
        roles: &str,
        peers: usize,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(program);
        if let Some(url) = data.store_url() {
            command.env("RELIVE_STORE_URL", url);
        }
        let mut child = command
            .arg(data.path())
            .args([nats, name, id, roles, &peers.to_string()])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stdout = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START, stdout.next_line())
            .await
            .with_context(|| format!("node {id} did not start"))??
            .with_context(|| format!("node {id} exited"))?;
        let addrs: Vec<SocketAddr> = match line.strip_prefix("LISTENING ") {
            Some(rest) => rest.split(' ').map(str::parse).collect::<Result<_, _>>()?,
            None => bail!("node {id}: unexpected {line:?}"),
        };
        let [ns, sb, http, https] = addrs[..] else {
            bail!("node {id}: {line:?}");
        };
        Ok(Self {
            id: id.to_owned(),
            ns,
            sb,
            http,
            https,
            child,
            stdout,
        })
    }

    /// Waits until the node has seen all its peers (it prints `READY`).
    ///
    /// # Errors
    ///
    /// It did not within 30 s, or exited.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let line = tokio::time::timeout(START, self.stdout.next_line())
            .await
            .with_context(|| format!("node {} did not see its peers", self.id))??;
        match line.as_deref() {
            Some("READY") => Ok(()),
            other => bail!("node {}: expected READY, got {other:?}", self.id),
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
        tokio::time::timeout(START, self.child.wait())
            .await
            .with_context(|| format!("node {} did not stop", self.id))??;
        Ok(())
    }

    /// The process id (for CPU readings from `/proc`).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Where Cargo put `relive-node` next to the running test or bench binary.
///
/// # Errors
///
/// The running executable's directory is unknown.
pub fn node_program() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("no exe dir")?.to_path_buf();
    // Test binaries live in target/<profile>/deps, binaries in target/<profile>.
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir.join("relive-node"))
}
