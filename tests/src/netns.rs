//! A NAT testbed built from Linux network namespaces, for the relay's end-to-end tests.
//!
//! ```text
//!  client A 10.200.1.2 ── 10.200.1.1 router A 198.51.100.2 ──┐
//!                          (nft masquerade out of "wan")      ├── 198.51.100.1 / 203.0.113.1
//!  client B 10.200.2.2 ── 10.200.2.1 router B 203.0.113.2 ──┘     "public": the server
//! ```
//!
//! Every address lives only inside namespaces this module creates (the documentation ranges
//! stand for the public internet, so the relay's decision sees two different public IPs).
//! The public namespace routes between the two public networks (it is the internet) but has
//! no route to the private ones, so a client cannot reach the other side's private address
//! (it gets "network unreachable" at once), and a router accepts nothing it did not
//! masquerade: two ordinary home NATs. [`Testbed::forward_port`] adds a user's port forward.
//!
//! Processes run in a namespace through `ip netns exec` ([`Testbed::spawn`]); the workspace
//! forbids `unsafe`, so a thread cannot `setns` itself. [`Testbed`]'s `Drop` kills those
//! processes and deletes the namespaces (their links and nftables tables go with them), also
//! when a test fails. Needs root, iproute2 and nftables: without them [`Testbed::create`]
//! follows [`crate::tool`]'s rule (the test fails in CI, elsewhere it returns `None` and the
//! test is skipped with the reason printed).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// The server's address on router A's side (what clients are told).
pub const SERVER_IP: &str = "198.51.100.1";
/// Router A's public (masquerading) address.
pub const ROUTER_A_IP: &str = "198.51.100.2";
/// Router B's public (masquerading) address.
pub const ROUTER_B_IP: &str = "203.0.113.2";

/// The namespaces of one testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The server's network.
    Public,
    /// Router A (masquerades client A).
    RouterA,
    /// Router B (masquerades client B).
    RouterB,
    /// Client A, behind router A.
    ClientA,
    /// Client B, behind router B.
    ClientB,
}

const NODES: [Node; 5] = [
    Node::Public,
    Node::RouterA,
    Node::RouterB,
    Node::ClientA,
    Node::ClientB,
];

impl Node {
    fn suffix(self) -> &'static str {
        match self {
            Self::Public => "pub",
            Self::RouterA => "ra",
            Self::RouterB => "rb",
            Self::ClientA => "ca",
            Self::ClientB => "cb",
        }
    }
}

/// A process running in a namespace, with its stdout as lines.
#[derive(Debug)]
pub struct Proc {
    /// The process (killed when dropped).
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Waits up to `within` for an output line starting with `prefix`; returns it.
    ///
    /// # Errors
    ///
    /// Timeout, or the process ended first.
    pub async fn line(&mut self, prefix: &str, within: Duration) -> anyhow::Result<String> {
        self.line_where(prefix, within, |l| l.starts_with(prefix))
            .await
    }

    /// Waits up to `within` for an output line containing `needle` (e.g. in a log line).
    ///
    /// # Errors
    ///
    /// Timeout, or the process ended first.
    pub async fn line_containing(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> anyhow::Result<String> {
        self.line_where(needle, within, |l| l.contains(needle))
            .await
    }

    async fn line_where(
        &mut self,
        prefix: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let name = self.name.clone();
        let wait = async {
            while let Some(line) = self.lines.next_line().await? {
                if pred(&line) {
                    return Ok(line);
                }
            }
            bail!("{name} ended before printing {prefix:?}")
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| anyhow!("{name}: no {prefix:?} within {within:?}"))?
    }

    /// Waits up to `within` for the process to exit; returns whether it succeeded.
    ///
    /// # Errors
    ///
    /// Timeout or a wait error.
    pub async fn exit(&mut self, within: Duration) -> anyhow::Result<bool> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .map_err(|_| anyhow!("{} did not exit within {within:?}", self.name))??;
        Ok(status.success())
    }
}

/// Five namespaces wired as in the module doc; removed on drop.
#[derive(Debug)]
pub struct Testbed {
    prefix: String,
    created: Vec<String>,
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    ensure!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Testbed {
    /// Builds a testbed whose namespace names contain `tag` (unique per test). `Ok(None)`
    /// (with the reason printed) when this machine cannot: not root, or no `ip`/`nft`.
    ///
    /// # Errors
    ///
    /// Setting up failed after the first namespace was created (it is cleaned up).
    ///
    /// # Panics
    ///
    /// With `CI=true`, when this machine cannot ([`crate::tool::skip`]).
    pub fn create(tag: &str) -> anyhow::Result<Option<Self>> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "relive-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if !crate::tool::require(&[("ip", "-V", "iproute2"), ("nft", "-V", "nftables")]) {
            return Ok(None);
        }
        let mut bed = Self {
            prefix,
            created: Vec::new(),
        };
        let first = bed.ns(Node::Public);
        if let Err(e) = run(&["ip", "netns", "add", &first]) {
            crate::tool::skip(&format!(
                "cannot create a network namespace (root needed): {e}"
            ));
            return Ok(None);
        }
        bed.created.push(first);
        bed.wire()?;
        Ok(Some(bed))
    }

    /// The namespace name of `node`.
    #[must_use]
    pub fn ns(&self, node: Node) -> String {
        format!("{}-{}", self.prefix, node.suffix())
    }

    fn exec(&self, node: Node, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.ns(node);
        let mut all = vec!["ip", "netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn veth(&self, (a, a_if): (Node, &str), (b, b_if): (Node, &str)) -> anyhow::Result<()> {
        let (na, nb) = (self.ns(a), self.ns(b));
        run(&[
            "ip", "link", "add", a_if, "netns", &na, "type", "veth", "peer", "name", b_if, "netns",
            &nb,
        ])
    }

    fn addr(&self, node: Node, dev: &str, cidr: &str) -> anyhow::Result<()> {
        self.exec(node, &["ip", "addr", "add", cidr, "dev", dev])?;
        self.exec(node, &["ip", "link", "set", dev, "up"])
    }

    fn wire(&mut self) -> anyhow::Result<()> {
        for node in &NODES[1..] {
            let ns = self.ns(*node);
            run(&["ip", "netns", "add", &ns])?;
            self.created.push(ns);
        }
        for node in NODES {
            self.exec(node, &["ip", "link", "set", "lo", "up"])?;
        }
        self.veth((Node::Public, "pa"), (Node::RouterA, "wan"))?;
        self.veth((Node::Public, "pb"), (Node::RouterB, "wan"))?;
        self.veth((Node::RouterA, "lan"), (Node::ClientA, "eth0"))?;
        self.veth((Node::RouterB, "lan"), (Node::ClientB, "eth0"))?;
        self.addr(Node::Public, "pa", "198.51.100.1/24")?;
        self.addr(Node::Public, "pb", "203.0.113.1/24")?;
        self.addr(Node::RouterA, "wan", "198.51.100.2/24")?;
        self.addr(Node::RouterB, "wan", "203.0.113.2/24")?;
        self.addr(Node::RouterA, "lan", "10.200.1.1/24")?;
        self.addr(Node::RouterB, "lan", "10.200.2.1/24")?;
        self.addr(Node::ClientA, "eth0", "10.200.1.2/24")?;
        self.addr(Node::ClientB, "eth0", "10.200.2.2/24")?;
        for (node, via) in [
            (Node::RouterA, "198.51.100.1"),
            (Node::RouterB, "203.0.113.1"),
            (Node::ClientA, "10.200.1.1"),
            (Node::ClientB, "10.200.2.1"),
        ] {
            self.exec(node, &["ip", "route", "add", "default", "via", via])?;
        }
        self.exec(Node::Public, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for router in [Node::RouterA, Node::RouterB] {
            self.exec(router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            self.exec(
                router,
                &[
                    "nft",
                    "add table ip relive_nat; \
                     add chain ip relive_nat post { type nat hook postrouting priority srcnat; policy accept; }; \
                     add rule ip relive_nat post oifname \"wan\" masquerade",
                ],
            )?;
        }
        Ok(())
    }

    /// Makes `router` forward TCP `port` on its public address to its client, as a user does
    /// for MSN file transfers (a DNAT rule; the client's replies go back through the
    /// router's connection tracking). The client keeps its private address.
    ///
    /// # Errors
    ///
    /// `router` is not a router, or `nft` failed.
    pub fn forward_port(&self, router: Node, port: u16) -> anyhow::Result<()> {
        let client = match router {
            Node::RouterA => "10.200.1.2",
            Node::RouterB => "10.200.2.2",
            _ => bail!("{router:?} is not a router"),
        };
        self.exec(
            router,
            &[
                "nft",
                &format!(
                    "add chain ip relive_nat pre {{ type nat hook prerouting priority dstnat; policy accept; }}; \
                     add rule ip relive_nat pre iifname \"wan\" tcp dport {port} dnat to {client}"
                ),
            ],
        )
    }

    /// Runs `program args` in `node`'s namespace with stdout piped (see [`Proc::line`]) and
    /// stderr inherited (shown by the test harness on failure).
    ///
    /// # Errors
    ///
    /// The process could not be started.
    pub fn spawn(
        &self,
        node: Node,
        name: &str,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<Proc> {
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns(node), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name}: no stdout"))?;
        Ok(Proc {
            child,
            lines: BufReader::new(stdout).lines(),
            name: name.to_owned(),
        })
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Processes are killed by their own `Drop` (kill_on_drop); a namespace being deleted
        // while one still runs only disappears once that process is gone.
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The server side shared by the testbed's server processes (`relive-nat-peer server`,
/// `relive-nat-peer remote-server`): prepares the data directory of `settings`, creates
/// alice@example.com and bob@example.com with access tokens written to `<data dir>/tokens`
/// ("handle token" lines, mode 0600, never printed), binds every listener on `0.0.0.0:0` and
/// builds the server context with its HTTPS acceptor, as `relive-server serve` does.
///
/// # Errors
/// The data directory, the store, the certificates or a listener fails.
pub async fn prepare_server(
    settings: relive_server::config::Settings,
) -> anyhow::Result<(relive_server::Context, relive_server::Listeners)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (store, _) = relive_server::data_dir::prepare(&settings).await?;
    let data = settings.data_dir.clone();
    let mut tokens = String::new();
    for (handle, name) in [("alice@example.com", "Alice"), ("bob@example.com", "Bob")] {
        let account = store
            .create_account(
                &relive_msnp::types::Passport::parse(handle)?,
                name,
                relive_server::secret::Secret::new("unused password".to_owned()),
            )
            .await?;
        let token = store.new_token(account.id, "nat test").await?;
        tokens.push_str(&format!("{handle} {}\n", token.token.expose()));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data.join("tokens"))?
        .write_all(tokens.as_bytes())?;
    let bind = || tokio::net::TcpListener::bind(("0.0.0.0", 0));
    let listeners = relive_server::Listeners {
        ns: bind().await?,
        sb: bind().await?,
        http: bind().await?,
        https: bind().await?,
        legacy_tls: None,
    };
    let certs = relive_server::tls::CertPaths::in_data_dir(&settings.data_dir);
    let mut ctx = relive_server::Context::new(settings, store)?;
    // Without an acceptor the HTTPS listener closes every connection.
    ctx.https_tls = Some(relive_server::http::tls::acceptor(&certs)?);
    Ok((ctx, listeners))
}

/// The access tokens [`prepare_server`] wrote for alice@example.com and bob@example.com.
///
/// # Errors
/// The tokens file is missing or lacks one of them.
pub fn read_tokens(data: &std::path::Path) -> anyhow::Result<(String, String)> {
    let tokens = std::fs::read_to_string(data.join("tokens")).context("tokens")?;
    let token = |handle: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(handle)?.strip_prefix(' '))
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token for {handle}"))
    };
    Ok((token("alice@example.com")?, token("bob@example.com")?))
}

/// The server's CA certificate in data directory `data` (what the scripted clients trust).
pub fn ca_file(data: &std::path::Path) -> String {
    data.join("tls")
        .join("relive-ca.crt")
        .to_string_lossy()
        .into_owned()
}

/// Writes `size` bytes of deterministic, incompressible-looking data (xorshift64 from `seed`)
/// to `path`: the file the transfer tests send.
///
/// # Errors
/// Writing fails.
pub fn write_test_file(path: &std::path::Path, size: usize, seed: u64) -> anyhow::Result<()> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    std::fs::write(path, data)?;
    Ok(())
}

/// SHA-256 of a file, with coreutils' `sha256sum` (what both ends of a transfer compare).
///
/// # Errors
/// `sha256sum` is missing or fails.
pub fn sha256(path: &std::path::Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum failed");
    String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no sha256sum output"))
}

/// Where the scripted clients reach the server: the NS `ip:port`, the HTTPS (Passport)
/// `ip:port` and the CA file to trust.
#[derive(Debug, Clone, Copy)]
pub struct ServerAt<'a> {
    /// NS address.
    pub ns: &'a str,
    /// HTTPS address.
    pub https: &'a str,
    /// The server's CA certificate file.
    pub ca: &'a str,
}

/// What one scripted MSNFTP transfer printed ([`msnftp_transfer`]).
#[derive(Debug)]
pub struct MsnftpRun {
    /// The sender's `LISTENING` or `DIALLING <ip>`.
    pub sender_mode: String,
    /// The receiver's `CONNECTING <ip>`.
    pub receiver_dials: String,
    /// The sender finished its role.
    pub sender_ok: bool,
    /// The receiver finished its role.
    pub receiver_ok: bool,
    /// From the receiver being online to both ending.
    pub elapsed: Duration,
}

/// One MSNFTP transfer with `peer` (the `relive-nat-peer` binary): bob@example.com on client
/// B receives into `out`, then alice@example.com on client A sends `file` (listening on
/// `listen_port`, 0: any, unless the ACCEPT tells it to dial). The tokens are alice's and
/// bob's; every step is bounded by `within`.
///
/// # Errors
/// A process cannot be started or does not print what its role promises in time.
pub async fn msnftp_transfer(
    bed: &Testbed,
    peer: &str,
    at: ServerAt<'_>,
    (alice, bob): (&str, &str),
    (file, out): (&std::path::Path, &std::path::Path),
    listen_port: u16,
    within: Duration,
) -> anyhow::Result<MsnftpRun> {
    let (file, out) = (file.to_string_lossy(), out.to_string_lossy());
    let ServerAt { ns, https, ca } = at;
    let mut receiver = bed.spawn(
        Node::ClientB,
        "receiver",
        peer,
        &["receive", ns, https, ca, "bob@example.com", bob, &out],
    )?;
    receiver.line("ONLINE", Duration::from_secs(20)).await?;
    let start = std::time::Instant::now();
    let port = listen_port.to_string();
    let mut sender = bed.spawn(
        Node::ClientA,
        "sender",
        peer,
        &[
            "send",
            ns,
            https,
            ca,
            "alice@example.com",
            alice,
            "bob@example.com",
            &file,
            &port,
        ],
    )?;
    let sender_mode = sender.line("", within).await?;
    let receiver_dials = receiver.line("CONNECTING", within).await?;
    let receiver_ok = receiver.exit(within).await?;
    let sender_ok = sender.exit(within).await?;
    Ok(MsnftpRun {
        sender_mode,
        receiver_dials,
        sender_ok,
        receiver_ok,
        elapsed: start.elapsed(),
    })
}
