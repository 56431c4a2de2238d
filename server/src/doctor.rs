//! `relive-server doctor`: checks, from the host, what usually stops a client from connecting,
//! and says for each check whether it is fine or what to do.
//!
//! The checks talk to the running server the way a client would: through the public host and
//! the configured ports (an MSNP `VER` on the NS, the nexus over HTTP, a TLS handshake on HTTPS
//! that trusts only `tls/relive-ca.crt` and checks the certificate against the public host). The
//! rest reads the data directory and the process limits: certificate names, the clock against
//! the certificate's creation, the relay's ports, disk space, the permissions of `secret.key`
//! and the open-file limit against `max_connections`.

use rustls::pki_types::pem::PemObject as _;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::config::Settings;
use crate::tls::CertPaths;

/// How long one network check waits.
const NET_TIMEOUT: Duration = Duration::from_secs(3);
/// Free space below which the data directory's disk is a problem.
#[cfg(unix)]
const MIN_FREE_BYTES: u64 = 200 * 1024 * 1024;
/// Descriptors a server needs besides its client connections (listeners, database, relay,
/// epoll, log): `serve` raises its limit, and this checks it, with these on top.
#[cfg(unix)]
pub const FD_RESERVE: u64 = 64;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fine; what was seen.
    Ok(String),
    /// Wrong; what was seen and how to fix it.
    Problem {
        /// What is wrong.
        what: String,
        /// What to do about it.
        fix: String,
    },
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it went.
    pub outcome: Outcome,
}

impl Check {
    fn ok(name: impl Into<String>, seen: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Ok(seen.into()),
        }
    }

    fn problem(name: impl Into<String>, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Problem {
                what: what.into(),
                fix: fix.into(),
            },
        }
    }

    /// Whether the check passed.
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(seen) => write!(f, "ok       {}: {seen}", self.name),
            Outcome::Problem { what, fix } => {
                write!(f, "PROBLEM  {}: {what}\n         fix: {fix}", self.name)
            }
        }
    }
}

/// Runs every check for `settings` (the running server's configuration).
pub async fn run(settings: &Settings) -> Vec<Check> {
    let host = settings.public_host.as_str();
    let mut checks = vec![public_host(host)];
    checks.push(ns(host, settings.ns.port()).await);
    checks.push(tcp_open("switchboard", host, settings.sb.port()).await);
    checks.push(nexus(host, settings.http.port()).await);
    checks.push(https(settings, host, settings.https.port()).await);
    if let Some(legacy) = settings.passport.legacy_tls {
        checks.push(tcp_open("legacy TLS", host, legacy.port()).await);
    }
    let certs = CertPaths::in_data_dir(&settings.data_dir);
    checks.push(certificate_names(&certs, host));
    checks.push(ca_certificate("CA certificate", &certs.ca_cert));
    if settings.passport.legacy_tls.is_some() {
        let legacy = crate::http::legacy::LegacyCertPaths::in_data_dir(&settings.data_dir);
        checks.push(ca_certificate("legacy CA certificate", &legacy.ca_cert));
    }
    checks.push(clock(&certs));
    checks.push(relay(settings));
    checks.extend(relay_ports(settings));
    // Free space and descriptor limits are read through POSIX calls (not checked on Windows).
    #[cfg(unix)]
    checks.push(disk(&settings.data_dir));
    checks.push(key_permissions(&settings.key_path()));
    #[cfg(unix)]
    checks.push(fd_limit(settings.max_connections));
    checks
}

/// The container health check: whether the NS on this host answers an MSNP `VER` (at its
/// bind address, or at loopback when it listens on every address).
pub async fn health(settings: &Settings) -> Check {
    let ip = match settings.ns.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    ns(&ip.to_string(), settings.ns.port()).await
}

fn public_host(host: &str) -> Check {
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Check::problem(
            "public host",
            format!("{host} is this machine only: no other machine can connect"),
            "set public_host in relive.toml (or --public-host) to the name or address clients \
             reach this machine by",
        )
    } else {
        Check::ok("public host", host)
    }
}

/// Connects to `host:port` as a client would (the first address the name resolves to).
async fn connect(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), String> {
    let addr = tokio::time::timeout(NET_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("resolving {host} timed out"))?
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    let stream = tokio::time::timeout(NET_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("nothing answers on {addr} (timed out)"))?
        .map_err(|e| format!("nothing answers on {addr} ({e})"))?;
    Ok((stream, addr))
}

fn unreachable(name: &str, what: String) -> Check {
    Check::problem(
        name,
        what,
        "start the server (`relive-server serve`); if it runs, open the port in the firewall \
         and forward it on the router to this machine",
    )
}

async fn tcp_open(name: &str, host: &str, port: u16) -> Check {
    match connect(host, port).await {
        Ok((_, addr)) => Check::ok(name, format!("{addr} accepts connections")),
        Err(what) => unreachable(name, what),
    }
}

/// Reads one CRLF line of at most 512 bytes.
async fn read_line(stream: &mut TcpStream) -> Option<String> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream).take(512);
    tokio::time::timeout(NET_TIMEOUT, reader.read_line(&mut line))
        .await
        .ok()?
        .ok()?;
    Some(line.trim_end().to_owned())
}

async fn ns(host: &str, port: u16) -> Check {
    const NAME: &str = "notification server (MSNP)";
    let (mut stream, addr) = match connect(host, port).await {
        Ok(c) => c,
        Err(what) => return unreachable(NAME, what),
    };
    if stream.write_all(b"VER 1 MSNP8 CVR0\r\n").await.is_err() {
        return unreachable(NAME, format!("{addr} closed the connection"));
    }
    let reply = read_line(&mut stream).await.unwrap_or_default();
    let _ = stream.write_all(b"OUT\r\n").await;
    if reply.starts_with("VER 1 MSNP8") {
        Check::ok(NAME, format!("{addr} answers VER: {reply}"))
    } else {
        Check::problem(
            NAME,
            format!("{addr} answered {reply:?} to an MSNP8 VER"),
            "another program holds this port: stop it, or move Relive's NS with --ns",
        )
    }
}

async fn nexus(host: &str, port: u16) -> Check {
    const NAME: &str = "HTTP (Passport nexus)";
    let (mut stream, addr) = match connect(host, port).await {
        Ok(c) => c,
        Err(what) => return unreachable(NAME, what),
    };
    let request =
        format!("GET /rdr/pprdr.asp HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return unreachable(NAME, format!("{addr} closed the connection"));
    }
    let mut head = Vec::new();
    let mut limited = (&mut stream).take(8192);
    let _ = tokio::time::timeout(NET_TIMEOUT, limited.read_to_end(&mut head)).await;
    let head = String::from_utf8_lossy(&head);
    if head.to_ascii_lowercase().contains("\npassporturls:") {
        Check::ok(NAME, format!("{addr} serves PassportURLs"))
    } else {
        Check::problem(
            NAME,
            format!(
                "{addr} answered without PassportURLs ({:?})",
                head.lines().next().unwrap_or("")
            ),
            "another web server holds this port: stop it, or move Relive's HTTP with --http",
        )
    }
}

fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_slice()) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn https(settings: &Settings, host: &str, port: u16) -> Check {
    const NAME: &str = "HTTPS (Passport login)";
    let ca = CertPaths::in_data_dir(&settings.data_dir).ca_cert;
    let config = match client_config(&ca) {
        Ok(c) => c,
        Err(what) => {
            return Check::problem(NAME, what, "run `relive-server serve` once to create it");
        }
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_owned()) else {
        return Check::problem(
            NAME,
            format!("{host} is not a valid TLS name"),
            "fix public_host",
        );
    };
    let (stream, addr) = match connect(host, port).await {
        Ok(c) => c,
        Err(what) => return unreachable(NAME, what),
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(NET_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(_)) => Check::ok(
            NAME,
            format!("{addr}: TLS handshake ok, certificate valid for {host}"),
        ),
        Ok(Err(e)) => Check::problem(
            NAME,
            format!("{addr}: TLS handshake failed: {e}"),
            "restart the server so it re-issues its certificate for the public host; if \
             another program holds the port, move Relive's HTTPS with --https",
        ),
        Err(_) => unreachable(NAME, format!("{addr}: TLS handshake timed out")),
    }
}

fn certificate_names(certs: &CertPaths, host: &str) -> Check {
    const NAME: &str = "certificate names";
    match std::fs::read_to_string(&certs.server_names) {
        Ok(names) if names.lines().any(|n| n == host) => Check::ok(
            NAME,
            format!(
                "issued for {}",
                names.lines().collect::<Vec<_>>().join(", ")
            ),
        ),
        Ok(names) => Check::problem(
            NAME,
            format!(
                "the server certificate is for {}, not {host}",
                names.lines().collect::<Vec<_>>().join(", ")
            ),
            "restart the server: it re-issues the certificate for the public host",
        ),
        Err(_) => Check::problem(
            NAME,
            "no server certificate yet",
            "run `relive-server serve` once",
        ),
    }
}

/// The CA clients must have imported: present, and its SHA-1 thumbprint (what Windows' and
/// most browsers' certificate dialogs show) to compare with the one installed on a client.
fn ca_certificate(name: &str, path: &Path) -> Check {
    let fix = "run `relive-server serve` once to create it; clients then import the file \
               `relive-server cert export FILE` writes";
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(e) => return Check::problem(name, format!("{}: {e}", path.display()), fix),
    };
    match rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_slice()).next() {
        Some(Ok(der)) => {
            let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
            let thumbprint: Vec<String> =
                digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            Check::ok(
                name,
                format!(
                    "{} (SHA-1 {}): clients must trust this one; `relive-server cert export \
                     FILE` copies it",
                    path.display(),
                    thumbprint.join(":")
                ),
            )
        }
        _ => Check::problem(
            name,
            format!("{} holds no certificate", path.display()),
            "move it away and restart the server: it makes a new CA (clients must then \
             import the new one)",
        ),
    }
}

fn clock(certs: &CertPaths) -> Check {
    const NAME: &str = "clock";
    let now = SystemTime::now();
    let made = std::fs::metadata(&certs.server_cert).and_then(|m| m.modified());
    match made {
        // A certificate is valid from its creation: a clock behind it fails every handshake.
        Ok(made) if made > now + Duration::from_secs(300) => Check::problem(
            NAME,
            "the system clock is behind the server certificate's creation time",
            "set the clock (NTP), then restart the server",
        ),
        _ => Check::ok(NAME, "not behind the certificates"),
    }
}

fn relay(settings: &Settings) -> Check {
    const NAME: &str = "relay";
    let relay = &settings.relay;
    if !relay.enabled {
        return Check::ok(
            NAME,
            "off (file transfers only work between reachable peers)",
        );
    }
    match relay.public_ip {
        Some(ip) if ip.is_loopback() => Check::problem(
            NAME,
            format!("invitations are rewritten to {ip}: only this machine can reach the relay"),
            "set [relay] public_ip (or a public_host that is an IP address)",
        ),
        Some(ip) => Check::ok(
            NAME,
            format!(
                "invitations point at {ip}; open TCP {}-{} and UDP {} in the firewall",
                relay.ports.start(),
                relay.ports.end(),
                relay.quic.port()
            ),
        ),
        None => Check::problem(
            NAME,
            "enabled but without a public IP: it stays off",
            "set [relay] public_ip in relive.toml",
        ),
    }
}

/// The embedded relay's sockets as this host has them: the QUIC port for companion agents
/// must be held (by the running server), and the TCP range must have free ports to allocate.
/// Nothing to check when the relay is off or remote, or the OS chooses the ports (port 0).
fn relay_ports(settings: &Settings) -> Vec<Check> {
    let relay = &settings.relay;
    if !relay.enabled || relay.public_ip.is_none() || relay.remote.is_some() {
        return Vec::new();
    }
    let mut checks = Vec::new();
    if relay.quic.port() != 0 {
        const NAME: &str = "relay QUIC";
        checks.push(match std::net::UdpSocket::bind(relay.quic) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::ok(
                NAME,
                format!(
                    "UDP {} is held (companion agents connect there)",
                    relay.quic
                ),
            ),
            Err(e) => Check::problem(
                NAME,
                format!("cannot check UDP {}: {e}", relay.quic),
                "check [relay] quic in relive.toml",
            ),
            Ok(_) => Check::problem(
                NAME,
                format!(
                    "nothing listens on UDP {}: companion agents cannot connect",
                    relay.quic
                ),
                "start the server (with the relay on); if it runs, another [relay] quic is in use",
            ),
        });
    }
    if *relay.ports.start() != 0 {
        const NAME: &str = "relay ports";
        let total = relay.ports.clone().count();
        let free = relay
            .ports
            .clone()
            .filter(|p| std::net::TcpListener::bind((relay.bind_ip, *p)).is_ok())
            .count();
        checks.push(if free == 0 {
            Check::problem(
                NAME,
                format!(
                    "all {total} ports {}-{} are taken by other programs",
                    relay.ports.start(),
                    relay.ports.end()
                ),
                "choose a free range with [relay] port_min and port_max (and open it)",
            )
        } else {
            Check::ok(
                NAME,
                format!("{free} of {total} TCP ports free for transfers"),
            )
        });
    }
    checks
}

#[cfg(unix)]
fn disk(dir: &Path) -> Check {
    const NAME: &str = "disk space";
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let mib = free / (1024 * 1024);
            if free < MIN_FREE_BYTES {
                Check::problem(
                    NAME,
                    format!("{mib} MiB free on {}", dir.display()),
                    "free some space: the database cannot grow and writes will fail",
                )
            } else {
                Check::ok(NAME, format!("{mib} MiB free"))
            }
        }
        Err(e) => Check::problem(
            NAME,
            format!("cannot read {}: {e}", dir.display()),
            "check the data directory",
        ),
    }
}

fn key_permissions(key: &Path) -> Check {
    const NAME: &str = "secret.key";
    let Ok(meta) = std::fs::metadata(key) else {
        return Check::problem(NAME, "missing", "run `relive-server serve` once");
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Check::problem(
                NAME,
                format!("readable by others (mode {mode:o})"),
                format!("chmod 600 {}", key.display()),
            );
        }
        Check::ok(NAME, format!("mode {mode:o}"))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Check::ok(NAME, "present")
    }
}

#[cfg(unix)]
fn fd_limit(max_connections: usize) -> Check {
    const NAME: &str = "open-file limit";
    use rustix::process::{Resource, getrlimit};
    let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(FD_RESERVE);
    if hard < wanted {
        Check::problem(
            NAME,
            format!("{hard}, below max_connections {max_connections} + {FD_RESERVE}"),
            "raise the hard limit (LimitNOFILE= in the systemd unit, or `ulimit -Hn`), or \
             lower max_connections",
        )
    } else {
        Check::ok(NAME, format!("{hard} (max_connections {max_connections})"))
    }
}
