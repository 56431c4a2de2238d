//! A real `nats-server` for the cluster tests, started by the test on `127.0.0.1` with a
//! random port (`-p -1`; the port is read from the file `--ports_file_dir` writes) and
//! JetStream in a temporary directory, and killed when dropped (only the process it spawned).
//! Missing binary: skipped with a printed reason, or a failure with `CI=true` ([`crate::tool`]).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The program and its Debian package.
pub const NATS_SERVER: crate::tool::Tool = ("nats-server", "--version", "nats-server");

/// A running `nats-server`.
#[derive(Debug)]
pub struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Starts one, or `Ok(None)` when the binary is missing outside CI (the reason is
    /// printed; in CI that is an error, as every tool is).
    ///
    /// # Errors
    ///
    /// In CI the binary is missing; it did not start or write its ports file within 10 s.
    pub fn start() -> anyhow::Result<Option<Self>> {
        if !crate::tool::require(&[NATS_SERVER]) {
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let child = spawn(dir.path(), "-1")?;
        let mut nats = Self {
            url: String::new(),
            child,
            _dir: dir,
        };
        let ports = nats
            ._dir
            .path()
            .join(format!("nats-server_{}.ports", nats.child.id()));
        nats.url = wait_for_url(&ports)?;
        Ok(Some(nats))
    }

    /// Kills the server: clients see the connection drop and start reconnecting (until
    /// [`Self::resume`]).
    ///
    /// # Errors
    ///
    /// The process could not be killed or reaped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts a new server on the port of the stopped one, as an operator restarting NATS
    /// would; returns once it accepts connections.
    ///
    /// # Errors
    ///
    /// It did not start or did not listen within 10 s.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let port = self
            .url
            .rsplit(':')
            .next()
            .context("no port in the URL")?
            .to_owned();
        self.child = spawn(self._dir.path(), &port)?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not listen again on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `nats-server` on 127.0.0.1 port `port` (`-1`: any), its files in `dir`.
fn spawn(dir: &Path, port: &str) -> anyhow::Result<Child> {
    Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", port, "-js", "-sd"])
        .arg(dir.join("js"))
        .arg("--ports_file_dir")
        .arg(dir)
        .arg("-l")
        .arg(dir.join("nats.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server")
}

fn wait_for_url(ports: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(ports)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(url) = json["nats"][0].as_str()
        {
            return Ok(url.to_owned());
        }
        if Instant::now() > deadline {
            bail!("nats-server wrote no ports file {}", ports.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
