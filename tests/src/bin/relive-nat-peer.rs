//! `relive-nat-peer`: one participant of the NAT end-to-end tests (`tests/it/nat.rs`,
//! `tests/it/remote_relay.rs`), run
//! inside a network namespace with `ip netns exec` (unsafe code, and so `setns`, is forbidden
//! in the workspace; a child process is the sound way into a namespace).
//!
//! ```text
//! relive-nat-peer server  <data-dir> <public-ip> <relay:on|off> <rendezvous:on|off>
//!     runs relive-server (all listeners on 0.0.0.0:0, relay ports 0..=0, MSNFTP rendezvous
//!     as given, relay QUIC on 0.0.0.0:0), creates alice@example.com and bob@example.com with
//!     access tokens in <data-dir>/tokens ("handle token" lines, mode 0600), then prints
//!     "READY <ns-port> <https-port> <quic-port>"; afterwards the relay's rewrite log
//!     (`relive_relay::rewrite=info`) goes to stdout.
//! relive-nat-peer receive <ns> <https> <ca-file> <handle> <token> <out-file>
//!     MSNP8 (MSN 5.0) login (Passport over HTTPS, trusting <ca-file>), NLN, prints "ONLINE", answers the RNG, accepts the MSNFTP
//!     INVITE, connects where the ACCEPT points and receives the file (MSNFTP client role).
//! relive-nat-peer send <ns> <https> <ca-file> <handle> <token> <to> <file> <listen-port>
//!     MSNP8 login, NLN, opens a switchboard, CALs <to>, INVITEs it to the file. If the
//!     answer carries `Sender-Connect: TRUE` it dials the address given, else it listens on
//!     <listen-port> (0: any) and advertises its own address; then serves the file (MSNFTP
//!     server role).
//! relive-nat-peer slp-offer <ns> <https> <ca-file> <handle> <token> <to> <file> <plain|upnp:PORT>
//!     MSNP9 (MSN 6.2) login, opens a switchboard, CALs <to>; in MSG D P2P messages: SLP
//!     INVITE sessionreqbody (file transfer), then INVITE transreqbody (direct connection,
//!     `Conn-Type` from the profile's ClientIP/ClientPort, `UPnPNat: true` with upnp:PORT).
//!     Checks every length of the 200 OK transrespbody (MSG, P2P Length/TotalSize, SLP
//!     Content-Length), ACKs it, prints "ANSWER listening=.. ext=.. extport=.. int=..
//!     intport=.. nonce=zero|set total=.. msgs=..". `Listening: true`: tries internal then
//!     external addresses ("CONNECTED <addr>" or "DC-FAILED"), sends `foo` and the nonce
//!     handshake. `Listening: false` with upnp:PORT: sends its own INVITE transrespbody
//!     listening on PORT ("INVITING <port>") and accepts. `Listening: false` otherwise:
//!     prints "FALLBACK" and stops. Then sends the file as P2P data packets (≤ 1352 bytes)
//!     and waits for the ACK ("SENT").
//! relive-nat-peer slp-answer <ns> <https> <ca-file> <handle> <token> <out-file> <listen-port|no-listen>
//!     MSNP9 login, prints "ONLINE", answers the RNG, accepts the session, answers the
//!     transreqbody with `Listening: true`, its nonce, IPv4External-Addrs = ClientIP and
//!     IPv4Internal-Addrs = its own address, port <listen-port> (0: any), prints
//!     "LISTENING <port> <size of its 200 OK>"; checks that the offerer's ACK reports the
//!     size it sent ("ACK-OK", so the relay mapped a resized message's ACK back), accepts the
//!     direct connection, checks `foo` and the nonce, echoes the handshake, writes the data
//!     packets to <out-file>, ACKs ("RECEIVED"). With no-listen it answers `Listening: false`,
//!     waits for the offerer's INVITE transrespbody, prints "OFFER ..." (fields as in
//!     ANSWER), connects to it ("CONNECTED <addr>") and receives the file the same way.
//! relive-nat-peer relay <dir> <name>
//!     the standalone relay (`relive-relay serve`'s library): certificate, key and control
//!     secret generated in <dir> for <name> and 127.0.0.1, QUIC on 0.0.0.0:0, allocation
//!     ports chosen by the OS; prints "READY <quic-port>", then its log (relive_relay=info).
//! relive-nat-peer remote-server <data-dir> <public-ip> <relay-addr> <relay-dir>
//!     relive-server (listeners on 0.0.0.0:0) with `[relay] remote = <relay-addr>` and the
//!     relay's secret and certificate from <relay-dir>, MSNFTP rendezvous off; creates
//!     alice@example.com and bob@example.com with access tokens in <data-dir>/tokens
//!     ("handle token" lines, mode 0600); prints "READY <ns-port> <https-port>", then its
//!     relay log, where "standalone relay connected" says the control connection is up.
//! relive-nat-peer agent <quic-addr> <ca-file> <server-name> <handle> <token>
//!     the companion agent (relive-relay's library, dialling 127.0.0.1); its log goes to
//!     stdout, where "agent connected to the relay" says the relay accepted it.
//! ```
//!
//! Exit status 0 means the role completed; anything else is printed to stderr. Every wait is
//! bounded. Tokens, file names and file contents are never printed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use relive_msnp::client::Role;
use relive_tests::MsnpClient;
use relive_tests::msnftp::{self, field, fields, invitation, wait_invitation, wait_line};
use relive_tests::{p2p, sb};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long the MSNFTP connection may take to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the whole file may take once connected.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// The cookie of the invitation (any decimal number).
const INVITATION_COOKIE: &str = "4711";
/// The MSNFTP `AuthCookie` a listening sender advertises.
const SENDER_AUTH_COOKIE: &str = "90210";
/// Largest file the receiver accepts.
const MAX_FILE: u64 = 1 << 30;
/// MSN 5.0's file transfer application GUID.
const FILE_TRANSFER_GUID: &str = "{5D3E02AB-6190-11d3-BBBB-00C04F795683}";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(&args[1..]).await,
        Some("relay") => relay(&args[1..]).await,
        Some("remote-server") => remote_server(&args[1..]).await,
        Some("receive") => receive(&args[1..]).await,
        Some("send") => send(&args[1..]).await,
        Some("agent") => agent(&args[1..]).await,
        Some("slp-offer") => slp_offer(&args[1..]).await,
        Some("slp-answer") => slp_answer(&args[1..]).await,
        _ => Err(anyhow!("usage: see the module documentation")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relive-nat-peer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> anyhow::Result<&'a str> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| anyhow!("missing argument {what}"))
}

async fn server(args: &[String]) -> anyhow::Result<()> {
    use relive_server::config::Config;
    let data = Path::new(arg(args, 0, "data-dir")?);
    let public: IpAddr = arg(args, 1, "public-ip")?.parse()?;
    let relay_on = arg(args, 2, "relay")? == "on";
    let rendezvous = arg(args, 3, "rendezvous")? == "on";
    let any: SocketAddr = "0.0.0.0:0".parse()?;
    let mut config = Config {
        ns: any,
        sb: any,
        http: any,
        https: any,
        public_host: public.to_string(),
        bcrypt_cost: 4,
        ..Config::default()
    };
    config.relay.enabled = relay_on;
    config.relay.port_min = 0;
    config.relay.port_max = 0;
    config.relay.quic = Some(any);
    config.relay.msnftp_rendezvous = rendezvous;
    let settings = config.validate(data.to_path_buf())?;
    let (ctx, listeners) = relive_tests::netns::prepare_server(settings).await?;
    let quic = std::net::UdpSocket::bind(any)?;
    println!(
        "READY {} {} {}",
        listeners.ns.local_addr()?.port(),
        listeners.https.local_addr()?.port(),
        quic.local_addr()?.port()
    );
    // Only the rewriter's few lines per transfer: nothing else may fill the stdout pipe.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,relive_relay::rewrite=info",
        ))
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
    let shutdown = tokio_util::sync::CancellationToken::new();
    relive_server::run_with_relay(ctx, listeners, Some(quic), shutdown).await?;
    Ok(())
}

/// Percent-encodes everything but unreserved characters.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where and how a client logs in: the NS, the HTTPS (Passport) listener and the CA that
/// signed its certificate.
struct Login {
    ns: SocketAddr,
    https: SocketAddr,
    ca: std::path::PathBuf,
}

impl Login {
    /// `<ns> <https> <ca-file>` at `args[i..]`.
    fn from_args(args: &[String], i: usize) -> anyhow::Result<Self> {
        Ok(Self {
            ns: arg(args, i, "ns")?.parse()?,
            https: arg(args, i + 1, "https")?.parse()?,
            ca: arg(args, i + 2, "ca-file")?.into(),
        })
    }
}

/// A logged-in, online NS session and what the profile said about the client's address.
struct Online {
    ns: MsnpClient,
    /// `ClientIP`/`ClientPort` from the profile (the address the server sees).
    client_addr: Option<SocketAddr>,
}

/// MSNP8/9 login (PROTOCOL.md §2.3.3): VER, CVR (MSN 5.0 or 6.2), USR TWN I (following one
/// XFR NS), the Passport 1.4 nexus and `login2.srf` exchange over HTTPS (TLS 1.2, trusting
/// only the server's CA) with the access token as password, USR TWN S; reads the profile's
/// `ClientIP`/`ClientPort`; then CHG NLN.
async fn login(login: &Login, version: u8, handle: &str, token: &str) -> anyhow::Result<Online> {
    let mut addr = login.ns;
    let client = if version >= 9 { "6.2.0205" } else { "5.0.0544" };
    for _ in 0..2 {
        let mut c = MsnpClient::connect(addr, Role::Notification, "ns").await?;
        let t = c.trid();
        c.send_line(&format!("VER {t} MSNP{version} CVR0")).await?;
        c.set_version(
            relive_msnp::version::ProtocolVersion::new(version).ok_or_else(|| anyhow!("MSNP"))?,
        );
        wait_line(&mut c, "VER ").await?;
        let t = c.trid();
        c.send_line(&format!(
            "CVR {t} 0x0409 winnt 5.1 i386 MSNMSGR {client} MSMSGS {handle}"
        ))
        .await?;
        wait_line(&mut c, "CVR ").await?;
        let t = c.trid();
        c.send_line(&format!("USR {t} TWN I {handle}")).await?;
        let raw = c.recv_raw().await?;
        let line = raw.line();
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["XFR", _, "NS", to, ..] => {
                addr = to.parse().context("XFR NS address")?;
                continue;
            }
            ["USR", _, "TWN", "S", params] => {
                let ticket = passport_login(login, handle, token, params).await?;
                let t = c.trid();
                c.send_line(&format!("USR {t} TWN S {ticket}")).await?;
                wait_line(&mut c, &format!("USR {t} OK")).await?;
                let (_, profile) = wait_line(&mut c, "MSG Hotmail Hotmail ").await?;
                let f = fields(&profile);
                let client_addr = field(&f, "ClientIP")
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .zip(field(&f, "ClientPort").and_then(|p| p.parse::<u16>().ok()))
                    .map(|(ip, port)| SocketAddr::new(ip, port.swap_bytes()));
                let t = c.trid();
                c.send_line(&format!("CHG {t} NLN 0")).await?;
                wait_line(&mut c, &format!("CHG {t} NLN")).await?;
                return Ok(Online { ns: c, client_addr });
            }
            _ => bail!("unexpected login reply {line:?}"),
        }
    }
    bail!("referred more than once")
}

/// `GET /rdr/pprdr.asp`, then `GET /<DALogin path>` with a `Passport1.4` Authorization
/// header, both over HTTPS; returns the ticket.
async fn passport_login(
    login: &Login,
    handle: &str,
    token: &str,
    params: &str,
) -> anyhow::Result<String> {
    use relive_tests::http;
    let tls = http::tls12_connector(&login.ca)?;
    let mut s = http::connect_tls(&tls, login.https).await?;
    let nexus = http::exchange(
        &mut s,
        b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: nexus.passport.com\r\n\r\n",
    )
    .await?;
    let urls = nexus
        .header("PassportURLs")
        .ok_or_else(|| anyhow!("nexus: no PassportURLs"))?;
    let da = http::da_login(urls).ok_or_else(|| anyhow!("nexus: no DALogin"))?;
    let da = da
        .strip_prefix("https://")
        .or_else(|| da.strip_prefix("http://"))
        .unwrap_or(da);
    let (host, path) = da
        .split_once('/')
        .ok_or_else(|| anyhow!("DALogin without a path"))?;
    let mut s = http::connect_tls(&tls, login.https).await?;
    let request = format!(
        "GET /{path} HTTP/1.1\r\nAuthorization: Passport1.4 OrgVerb=GET,\
         OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={},pwd={},{params}\r\n\
         User-Agent: MSMSGS\r\nHost: {host}\r\nConnection: Keep-Alive\r\n\r\n",
        urlencode(handle),
        urlencode(token)
    );
    let res = http::exchange(&mut s, request.as_bytes()).await?;
    ensure!(
        res.status_line == "HTTP/1.1 200 OK",
        "login2.srf: {}",
        res.status_line
    );
    res.header("Authentication-Info")
        .and_then(http::ticket_of)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login2.srf gave no ticket"))
}

/// Waits (a few client timeouts) for the `RNG` and answers it; returns the SB session.
async fn answer_ring(nsc: &mut MsnpClient, handle: &str) -> anyhow::Result<MsnpClient> {
    let mut ticket = None;
    for _ in 0..6 {
        if let Ok((line, _)) = wait_line(nsc, "RNG ").await {
            ticket = Some(line);
            break;
        }
    }
    let rng = ticket.ok_or_else(|| anyhow!("never rung"))?;
    let parts: Vec<&str> = rng.split(' ').collect();
    let (Some(session), Some(addr), Some(cookie)) = (parts.get(1), parts.get(2), parts.get(4))
    else {
        bail!("malformed RNG");
    };
    let mut sbc = MsnpClient::connect(addr.parse()?, Role::Switchboard, "answer_sb").await?;
    sbc.set_version(nsc.caps().version);
    let t = sbc.trid();
    sbc.send_line(&format!("ANS {t} {handle} {cookie} {session}"))
        .await?;
    wait_line(&mut sbc, &format!("ANS {t} OK")).await?;
    Ok(sbc)
}

async fn receive(args: &[String]) -> anyhow::Result<()> {
    let at = Login::from_args(args, 0)?;
    let handle = arg(args, 3, "handle")?;
    let token = arg(args, 4, "token")?;
    let out = arg(args, 5, "out-file")?;
    let mut online = login(&at, 8, handle, token).await?;
    println!("ONLINE");
    let mut sbc = answer_ring(&mut online.ns, handle).await?;
    let invite = wait_invitation(&mut sbc, "INVITE").await?;
    let size: u64 = field(&invite, "Application-FileSize")
        .ok_or_else(|| anyhow!("no file size"))?
        .parse()?;
    ensure!(size <= MAX_FILE, "file too large");
    let cookie = field(&invite, "Invitation-Cookie")
        .unwrap_or(INVITATION_COOKIE)
        .to_owned();
    sb::send_msg(
        &mut sbc,
        "N",
        &invitation(&format!(
            "Invitation-Command: ACCEPT\r\nInvitation-Cookie: {cookie}\r\n\
             Launch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n"
        )),
    )
    .await?;
    let accept = wait_invitation(&mut sbc, "ACCEPT").await?;
    let (stream, auth) = dial_accept(&accept, "CONNECTING", "the sender").await?;
    tokio::time::timeout(
        TRANSFER_TIMEOUT,
        msnftp::fetch_file(stream, handle, &auth, size, Path::new(out)),
    )
    .await
    .map_err(|_| anyhow!("transfer timed out"))??;
    println!("RECEIVED");
    Ok(())
}

/// Connects where an MSNFTP `ACCEPT` points (`IP-Address`, `Port`), printing `<label> <ip>`
/// first; returns the connection and the `AuthCookie` to present.
async fn dial_accept(
    accept: &[(String, String)],
    label: &str,
    whom: &str,
) -> anyhow::Result<(TcpStream, String)> {
    let ip: IpAddr = field(accept, "IP-Address")
        .ok_or_else(|| anyhow!("ACCEPT without IP-Address"))?
        .parse()?;
    let port: u16 = field(accept, "Port")
        .ok_or_else(|| anyhow!("ACCEPT without Port"))?
        .parse()?;
    let auth = field(accept, "AuthCookie").unwrap_or("").to_owned();
    println!("{label} {ip}");
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, port)))
        .await
        .map_err(|_| anyhow!("connecting to {whom} timed out"))?
        .with_context(|| format!("connecting to {whom}"))?;
    Ok((stream, auth))
}

async fn send(args: &[String]) -> anyhow::Result<()> {
    let at = Login::from_args(args, 0)?;
    let handle = arg(args, 3, "handle")?;
    let token = arg(args, 4, "token")?;
    let to = arg(args, 5, "to")?;
    let path = Path::new(arg(args, 6, "file")?);
    let listen_port: u16 = arg(args, 7, "listen-port")?.parse()?;
    let size = std::fs::metadata(path)?.len();
    let mut online = login(&at, 8, handle, token).await?;
    let mut sbc = sb::open(&mut online.ns, handle, "sender_sb").await?;
    sb::call(&mut sbc, to).await?;
    wait_line(&mut sbc, "JOI ").await?;
    sb::send_msg(
        &mut sbc,
        "N",
        &invitation(&format!(
            "Application-Name: File Transfer\r\nApplication-GUID: {FILE_TRANSFER_GUID}\r\n\
             Invitation-Command: INVITE\r\nInvitation-Cookie: {INVITATION_COOKIE}\r\n\
             Application-File: payload.bin\r\nApplication-FileSize: {size}\r\n\r\n"
        )),
    )
    .await?;
    let accept = wait_invitation(&mut sbc, "ACCEPT").await?;
    let stream = if field(&accept, "Sender-Connect").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
    {
        dial_accept(&accept, "DIALLING", "the receiver").await?
    } else {
        let listener = TcpListener::bind(("0.0.0.0", listen_port)).await?;
        let port = listener.local_addr()?.port();
        let own = sbc.local_addr()?.ip();
        sb::send_msg(
            &mut sbc,
            "N",
            &invitation(&format!(
                "Invitation-Command: ACCEPT\r\nInvitation-Cookie: {INVITATION_COOKIE}\r\n\
                 IP-Address: {own}\r\nIP-Address-Internal: {own}\r\nPort: {port}\r\n\
                 PortX: {}\r\nAuthCookie: {SENDER_AUTH_COOKIE}\r\nLaunch-Application: FALSE\r\n\
                 Request-Data: IP-Address:\r\n\r\n",
                port ^ 0x3141
            )),
        )
        .await?;
        println!("LISTENING");
        let (s, _) = tokio::time::timeout(CONNECT_TIMEOUT * 2, listener.accept())
            .await
            .map_err(|_| anyhow!("nobody connected to the sender"))??;
        (s, SENDER_AUTH_COOKIE.to_owned())
    };
    let (stream, auth) = stream;
    tokio::time::timeout(
        TRANSFER_TIMEOUT,
        msnftp::serve_file(stream, &auth, path, size),
    )
    .await
    .map_err(|_| anyhow!("transfer timed out"))??;
    println!("SENT");
    Ok(())
}

async fn agent(args: &[String]) -> anyhow::Result<()> {
    use relive_server::relay::engine::{agent, quic};
    let server: SocketAddr = arg(args, 0, "quic-addr")?.parse()?;
    let ca = std::fs::read(arg(args, 1, "ca-file")?)?;
    let name = arg(args, 2, "server-name")?;
    // The server authenticates agents by "<handle> <access token>".
    let credential = format!("{} {}", arg(args, 3, "handle")?, arg(args, 4, "token")?);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("relive_relay=info"))
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
    let trusted = relive_server::relay::trust_anchors(&ca);
    ensure!(!trusted.is_empty(), "no certificate in the CA file");
    let endpoint = quic::client_endpoint(
        quic::client_config(&trusted)?,
        std::net::UdpSocket::bind("0.0.0.0:0")?,
    )?;
    let config = agent::AgentConfig::new(server, name, &credential);
    agent::run_agent(&endpoint, &config).await?;
    bail!("the relay closed the agent connection")
}

// ---------------------------------------------------------------------------------------
// MSNSLP (MSN 6.x, MSNP9): direct-connection negotiation and a P2P file transfer over it.
// ---------------------------------------------------------------------------------------

/// How long a direct-connection attempt to one address may take (pidgin: 5 s).
const DC_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the listener waits for the direct connection (pidgin: 15 s).
const DC_ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
const TRANSREQ: &str = "application/x-msnmsgr-transreqbody";
const TRANSRESP: &str = "application/x-msnmsgr-transrespbody";
const SESSIONREQ: &str = "application/x-msnmsgr-sessionreqbody";
const ZERO_GUID: &str = "{00000000-0000-0000-0000-000000000000}";

/// One side of a P2P conversation over a switchboard session.
struct P2pSb {
    sb: MsnpClient,
    me: String,
    peer: String,
    next_id: u32,
}

impl P2pSb {
    fn new(sb: MsnpClient, me: &str, peer: &str) -> Self {
        Self {
            sb,
            me: me.to_owned(),
            peer: peer.to_owned(),
            next_id: rand::random::<u32>() >> 4,
        }
    }

    /// Sends one SLP message (one chunk: the messages here are far below 1202 bytes);
    /// returns its header.
    async fn send_slp(&mut self, text: &[u8]) -> anyhow::Result<p2p::Header> {
        ensure!(text.len() <= p2p::SB_CHUNK, "SLP message needs chunking");
        self.next_id = self.next_id.wrapping_add(1);
        let len = u32::try_from(text.len())?;
        let header = p2p::Header {
            id: self.next_id,
            total_size: u64::from(len),
            length: len,
            ack_id: rand::random(),
            ..p2p::Header::default()
        };
        sb::send_msg(
            &mut self.sb,
            "D",
            &p2p::sb_payload(&self.peer, &header, text, 0),
        )
        .await?;
        Ok(header)
    }

    /// Next P2P chunk addressed to us; checks the `MSG` length and the chunk's lengths.
    async fn recv_chunk(&mut self) -> anyhow::Result<p2p::SbChunk> {
        for _ in 0..100 {
            let raw = self.sb.recv_raw().await?;
            let line = raw.line();
            if !line.starts_with("MSG ") {
                continue;
            }
            let payload = raw.payload().map(|p| p.to_vec()).unwrap_or_default();
            let declared: usize = line.rsplit(' ').next().unwrap_or_default().parse()?;
            ensure!(
                declared == payload.len(),
                "MSG length {declared} but {} bytes",
                payload.len()
            );
            if let Some(chunk) = p2p::parse_sb_payload(&payload)? {
                ensure!(
                    chunk.dest.eq_ignore_ascii_case(&self.me),
                    "P2P-Dest {}",
                    chunk.dest
                );
                return Ok(chunk);
            }
        }
        bail!("no P2P message")
    }

    /// The next whole SLP message (reassembled from its chunks, `TotalSize` checked), ACKed
    /// as clients do; returns it with its first header and the number of `MSG`s it took.
    async fn recv_slp(&mut self) -> anyhow::Result<(p2p::Slp, p2p::Header, usize)> {
        loop {
            let first = self.recv_chunk().await?;
            if first.header.session_id != 0 || first.header.flags & p2p::FLAG_ACK != 0 {
                continue;
            }
            ensure!(first.header.offset == 0, "SLP message starts at an offset");
            let total = usize::try_from(first.header.total_size)?;
            ensure!(total <= 64 * 1024, "SLP message of {total} bytes");
            let mut text = first.data.clone();
            let mut msgs = 1;
            while text.len() < total {
                let next = self.recv_chunk().await?;
                let h = next.header;
                ensure!(
                    h.id == first.header.id
                        && h.offset == text.len() as u64
                        && h.total_size == first.header.total_size,
                    "SLP chunk out of order"
                );
                text.extend_from_slice(&next.data);
                msgs += 1;
            }
            ensure!(text.len() == total, "SLP chunks exceed TotalSize");
            let slp = p2p::Slp::parse(&text)?;
            let h = first.header;
            let ack = p2p::Header {
                id: self.next_id.wrapping_add(1),
                total_size: h.total_size,
                flags: p2p::FLAG_ACK,
                ack_id: h.ack_id,
                ack_uid: h.id,
                ack_size: h.total_size,
                ..p2p::Header::default()
            };
            self.next_id = self.next_id.wrapping_add(1);
            sb::send_msg(
                &mut self.sb,
                "D",
                &p2p::sb_payload(&self.peer, &ack, &[], 0),
            )
            .await?;
            return Ok((slp, h, msgs));
        }
    }

    /// The next ACK.
    async fn recv_ack(&mut self) -> anyhow::Result<p2p::Header> {
        loop {
            let c = self.recv_chunk().await?;
            if c.header.flags & p2p::FLAG_ACK != 0 {
                return Ok(c.header);
            }
        }
    }

    fn headers<'a>(
        &'a self,
        call_id: &'a str,
        branch: &'a str,
        cseq: &'a str,
        to: &'a str,
        from: &'a str,
    ) -> Vec<(String, String)> {
        vec![
            ("To".into(), format!("<msnmsgr:{to}>")),
            ("From".into(), format!("<msnmsgr:{from}>")),
            ("Via".into(), format!("MSNSLP/1.0/TLP ;branch={branch}")),
            ("CSeq".into(), cseq.to_owned()),
            ("Call-ID".into(), call_id.to_owned()),
            ("Max-Forwards".into(), "0".into()),
        ]
    }

    /// `INVITE` to the peer.
    fn invite(&self, call_id: &str, branch: &str, content_type: &str, body: &str) -> Vec<u8> {
        let h = self.headers(call_id, branch, "0", &self.peer, &self.me);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        p2p::slp_message(
            &format!("INVITE MSNMSGR:{} MSNSLP/1.0", self.peer),
            &h,
            content_type,
            body,
        )
    }

    /// `200 OK` answering `request`.
    fn ok(&self, request: &p2p::Slp, content_type: &str, body: &str) -> Vec<u8> {
        let call_id = request.header("Call-ID").unwrap_or(ZERO_GUID);
        let via = request.header("Via").unwrap_or_default();
        let branch = via.rsplit("branch=").next().unwrap_or(ZERO_GUID);
        let h = self.headers(call_id, branch, "1", &self.peer, &self.me);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        p2p::slp_message("MSNSLP/1.0 200 OK", &h, content_type, body)
    }
}

/// `Conn-Type` as MSN 6+ derives it: the local socket compared with `ClientIP`/`ClientPort`.
fn conn_type(local: SocketAddr, seen: Option<SocketAddr>) -> &'static str {
    match seen {
        None => "Unknown-Connect",
        Some(seen) if seen == local => "Direct-Connect",
        Some(seen) if seen.ip() == local.ip() => "Port-Restrict-NAT",
        Some(seen) if seen.port() == local.port() => "IP-Restrict-NAT",
        Some(_) => "Symmetric-NAT",
    }
}

/// Writes one direct-connection packet: `u32` LE length, then the bytes.
async fn dc_write(s: &mut TcpStream, parts: &[&[u8]]) -> anyhow::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&u32::try_from(len)?.to_le_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
    s.write_all(&buf).await?;
    Ok(())
}

/// Reads one direct-connection packet (at most a header and a 1352-byte chunk).
async fn dc_read(s: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = usize::try_from(u32::from_le_bytes(len))?;
    ensure!(
        len <= p2p::HEADER_LEN + p2p::DC_CHUNK,
        "DC packet of {len} bytes"
    );
    buf.resize(len, 0);
    s.read_exact(buf).await?;
    Ok(())
}

fn show(v: Option<&str>) -> &str {
    v.filter(|v| !v.is_empty()).unwrap_or("-")
}

/// Prints what a `transrespbody` carried: `<label> listening=.. ext=.. extport=.. int=..
/// intport=.. nonce=zero|set total=.. msgs=..`.
fn print_transresp(label: &str, slp: &p2p::Slp, header: &p2p::Header, msgs: usize) {
    let nonce = slp.field("Nonce").unwrap_or(ZERO_GUID);
    println!(
        "{label} listening={} ext={} extport={} int={} intport={} nonce={} total={} msgs={msgs}",
        show(slp.field("Listening")),
        show(slp.field("IPv4External-Addrs")),
        show(slp.field("IPv4External-Port")),
        show(slp.field("IPv4Internal-Addrs")),
        show(slp.field("IPv4Internal-Port")),
        if nonce == ZERO_GUID { "zero" } else { "set" },
        header.total_size,
    );
}

fn is_listening(slp: &p2p::Slp) -> bool {
    slp.field("Listening")
        .is_some_and(|l| l.eq_ignore_ascii_case("true"))
}

/// A `transrespbody` saying we listen on `port` with `nonce`.
fn listening_body(nonce: &str, external: IpAddr, own: IpAddr, port: u16) -> String {
    format!(
        "Bridge: TCPv1\r\nListening: true\r\nNonce: {nonce}\r\n\
         IPv4External-Addrs: {external}\r\nIPv4External-Port: {port}\r\n\
         IPv4Internal-Addrs: {own}\r\nIPv4Internal-Port: {port}\r\n\r\n"
    )
}

/// Connecting side of a direct connection: tries the internal addresses of `offer` (a
/// listening `transrespbody`), then the external ones (pidgin's order); on the first that
/// answers sends `foo` and the nonce handshake and checks the echo. Prints `"CONNECTED <addr>"`
/// or "DC-FAILED".
async fn dc_connect(offer: &p2p::Slp, handshake_id: u32) -> anyhow::Result<BufReader<TcpStream>> {
    let nonce = p2p::guid_bytes(offer.field("Nonce").unwrap_or(ZERO_GUID))?;
    let mut candidates = Vec::new();
    for (addrs, port) in [
        ("IPv4Internal-Addrs", "IPv4Internal-Port"),
        ("IPv4External-Addrs", "IPv4External-Port"),
    ] {
        let Some(port) = offer.field(port).and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        for ip in offer
            .field(addrs)
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|a| a.parse::<IpAddr>().ok())
        {
            candidates.push(SocketAddr::new(ip, port));
        }
    }
    let mut stream = None;
    for addr in candidates {
        if let Ok(Ok(s)) = tokio::time::timeout(DC_CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            println!("CONNECTED {addr}");
            stream = Some(s);
            break;
        }
    }
    let Some(mut s) = stream else {
        println!("DC-FAILED");
        bail!("no direct connection to any advertised address");
    };
    dc_write(&mut s, &[b"foo\0"]).await?;
    dc_write(
        &mut s,
        &[&p2p::Header::handshake(handshake_id, &nonce).encode()],
    )
    .await?;
    let mut r = BufReader::new(s);
    let mut buf = Vec::new();
    dc_read(&mut r, &mut buf).await?;
    let echo = p2p::Header::decode(&buf)?;
    ensure!(
        echo.flags == p2p::FLAG_HANDSHAKE && echo.nonce() == nonce,
        "bad handshake echo"
    );
    Ok(r)
}

/// Listening side of a direct connection: accepts one connection, checks `foo` and that the
/// handshake carries `nonce`, echoes it.
async fn dc_accept(
    listener: TcpListener,
    nonce: &[u8; 16],
    handshake_id: u32,
) -> anyhow::Result<BufReader<TcpStream>> {
    let (s, _) = tokio::time::timeout(DC_ACCEPT_TIMEOUT, listener.accept())
        .await
        .map_err(|_| anyhow!("nobody connected for the direct connection"))??;
    let mut r = BufReader::new(s);
    let mut buf = Vec::new();
    dc_read(&mut r, &mut buf).await?;
    ensure!(buf == b"foo\0", "expected foo");
    dc_read(&mut r, &mut buf).await?;
    let hs = p2p::Header::decode(&buf)?;
    ensure!(
        hs.flags == p2p::FLAG_HANDSHAKE && hs.nonce() == *nonce,
        "handshake with a wrong nonce"
    );
    dc_write(
        r.get_mut(),
        &[&p2p::Header::handshake(handshake_id, nonce).encode()],
    )
    .await?;
    Ok(r)
}

/// Sends the file as P2P data packets (≤ 1352 bytes) of message `id` in `session_id` and
/// waits for the receiver's ACK.
async fn p2p_send_file(
    mut r: BufReader<TcpStream>,
    session_id: u32,
    id: u32,
    path: &Path,
) -> anyhow::Result<()> {
    let size = std::fs::metadata(path)?.len();
    let mut file = tokio::fs::File::open(path).await?;
    let mut chunk = vec![0u8; p2p::DC_CHUNK];
    let mut offset = 0u64;
    let mut out = tokio::io::BufWriter::new(r.get_mut());
    while offset < size {
        let n = file.read(&mut chunk).await?;
        ensure!(n > 0, "file shorter than its size");
        let h = p2p::Header {
            session_id,
            id,
            offset,
            total_size: size,
            length: u32::try_from(n)?,
            flags: p2p::FLAG_FILE_DATA,
            ack_id: rand::random(),
            ..p2p::Header::default()
        };
        out.write_all(&u32::try_from(p2p::HEADER_LEN + n)?.to_le_bytes())
            .await?;
        out.write_all(&h.encode()).await?;
        out.write_all(&chunk[..n]).await?;
        offset += n as u64;
    }
    out.flush().await?;
    let mut buf = Vec::new();
    dc_read(&mut r, &mut buf).await?;
    let ack = p2p::Header::decode(&buf)?;
    ensure!(
        ack.flags == p2p::FLAG_ACK && ack.ack_uid == id && ack.ack_size == size,
        "no ACK for the file"
    );
    Ok(())
}

/// Receives P2P data packets of `session_id` into `out` until the message is complete, then
/// ACKs it.
async fn p2p_receive_file(
    mut r: BufReader<TcpStream>,
    session_id: u32,
    ack_id: u32,
    out: &Path,
) -> anyhow::Result<()> {
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(out).await?);
    let mut buf = Vec::new();
    let mut got = 0u64;
    let last = loop {
        dc_read(&mut r, &mut buf).await?;
        let h = p2p::Header::decode(&buf)?;
        let data = &buf[p2p::HEADER_LEN..];
        ensure!(
            h.session_id == session_id
                && h.flags == p2p::FLAG_FILE_DATA
                && h.offset == got
                && h.length as usize == data.len()
                && h.total_size <= MAX_FILE
                && got + data.len() as u64 <= h.total_size,
            "unexpected data packet"
        );
        file.write_all(data).await?;
        got += data.len() as u64;
        if got == h.total_size {
            break h;
        }
    };
    file.flush().await?;
    let ack = p2p::Header {
        id: ack_id,
        total_size: last.total_size,
        flags: p2p::FLAG_ACK,
        ack_id: last.ack_id,
        ack_uid: last.id,
        ack_size: last.total_size,
        ..p2p::Header::default()
    };
    dc_write(r.get_mut(), &[&ack.encode()]).await?;
    r.get_mut().flush().await?;
    Ok(())
}

/// `slp-offer <ns> <https> <ca-file> <handle> <token> <to> <file> <plain|upnp:PORT>`.
async fn slp_offer(args: &[String]) -> anyhow::Result<()> {
    let at = Login::from_args(args, 0)?;
    let handle = arg(args, 3, "handle")?;
    let token = arg(args, 4, "token")?;
    let to = arg(args, 5, "to")?;
    let path = Path::new(arg(args, 6, "file")?);
    let upnp: Option<u16> = arg(args, 7, "plain|upnp:PORT")?
        .strip_prefix("upnp:")
        .map(str::parse)
        .transpose()?;
    let mut online = login(&at, 9, handle, token).await?;
    let local = online.ns.local_addr()?;
    let mut sbc = sb::open(&mut online.ns, handle, "offer_sb").await?;
    sb::call(&mut sbc, to).await?;
    wait_line(&mut sbc, "JOI ").await?;
    let mut p = P2pSb::new(sbc, handle, to);

    // 1–2: the file transfer session.
    let session_id = rand::random::<u32>() | 1;
    let call_id = p2p::random_guid();
    let invite = p.invite(
        &call_id,
        &p2p::random_guid(),
        SESSIONREQ,
        &format!(
            "EUF-GUID: {}\r\nSessionID: {session_id}\r\nAppID: 2\r\nContext: AA==\r\n\r\n",
            p2p::FILE_TRANSFER_EUF_GUID
        ),
    );
    p.send_slp(&invite).await?;
    let (ok, _, _) = p.recv_slp().await?;
    ensure!(
        ok.start.ends_with("200 OK"),
        "session not accepted: {}",
        ok.start
    );

    // 3–4: the direct-connection offer and its answer.
    let offer = p.invite(
        &call_id,
        &p2p::random_guid(),
        TRANSREQ,
        &format!(
            "Bridges: TCPv1\r\nNetID: 0\r\nConn-Type: {}\r\nUPnPNat: {}\r\nICF: false\r\n\
             Nonce: {}\r\nSessionID: {session_id}\r\n\r\n",
            conn_type(local, online.client_addr),
            upnp.is_some(),
            p2p::random_guid()
        ),
    );
    p.send_slp(&offer).await?;
    let (answer, header, msgs) = p.recv_slp().await?;
    ensure!(
        answer
            .header("Content-Type")
            .is_some_and(|c| c.eq_ignore_ascii_case(TRANSRESP)),
        "expected a transrespbody"
    );
    print_transresp("ANSWER", &answer, &header, msgs);
    let stream = if is_listening(&answer) {
        dc_connect(&answer, p.next_id).await?
    } else if let Some(port) = upnp {
        // The answerer cannot listen and we can (a UPnP mapping of `port`): our own listening
        // transrespbody INVITE (pidgin `msn_dc_send_invite`).
        let listener = TcpListener::bind(("0.0.0.0", port)).await?;
        let own = local.ip();
        let external = online.client_addr.map_or(own, |a| a.ip());
        let nonce_text = p2p::random_guid();
        let nonce = p2p::guid_bytes(&nonce_text)?;
        let invite = p.invite(
            &call_id,
            &p2p::random_guid(),
            TRANSRESP,
            &listening_body(&nonce_text, external, own, port),
        );
        p.send_slp(&invite).await?;
        println!("INVITING {port}");
        dc_accept(listener, &nonce, p.next_id).await?
    } else {
        // The peers would now send the file as P2P data over the switchboard.
        println!("FALLBACK");
        return Ok(());
    };
    let id = p.next_id.wrapping_add(1);
    tokio::time::timeout(
        TRANSFER_TIMEOUT,
        p2p_send_file(stream, session_id, id, path),
    )
    .await
    .map_err(|_| anyhow!("transfer timed out"))??;
    println!("SENT");
    Ok(())
}

/// `slp-answer <ns> <https> <ca-file> <handle> <token> <out-file> <listen-port|no-listen>`.
async fn slp_answer(args: &[String]) -> anyhow::Result<()> {
    let at = Login::from_args(args, 0)?;
    let handle = arg(args, 3, "handle")?;
    let token = arg(args, 4, "token")?;
    let out = Path::new(arg(args, 5, "out-file")?);
    let listen = arg(args, 6, "listen-port")?;
    let listen_port: Option<u16> = (listen != "no-listen")
        .then(|| listen.parse())
        .transpose()?;
    let mut online = login(&at, 9, handle, token).await?;
    println!("ONLINE");
    let sbc = answer_ring(&mut online.ns, handle).await?;
    let own = sbc.local_addr()?.ip();
    // The caller's handle comes with its first P2P message's `From`.
    let mut p = P2pSb::new(sbc, handle, "");
    let invite = p.recv_first_invite().await?;
    ensure!(invite.start.starts_with("INVITE "), "expected an INVITE");
    let session_id: u32 = invite
        .field("SessionID")
        .ok_or_else(|| anyhow!("INVITE without SessionID"))?
        .parse()?;
    let ok = p.ok(
        &invite,
        SESSIONREQ,
        &format!("SessionID: {session_id}\r\n\r\n"),
    );
    p.send_slp(&ok).await?;
    let (offer, _, _) = p.recv_slp().await?;
    ensure!(
        offer
            .header("Content-Type")
            .is_some_and(|c| c.eq_ignore_ascii_case(TRANSREQ)),
        "expected a transreqbody"
    );
    let Some(listen_port) = listen_port else {
        // Cannot listen: `Listening: false`, then connect to the offerer's own offer.
        let answer = p.ok(
            &offer,
            TRANSRESP,
            &format!("Bridge: TCPv1\r\nListening: false\r\nNonce: {ZERO_GUID}\r\n\r\n"),
        );
        p.send_slp(&answer).await?;
        let (their, header, msgs) = p.recv_slp().await?;
        ensure!(
            their.start.starts_with("INVITE ")
                && their
                    .header("Content-Type")
                    .is_some_and(|c| c.eq_ignore_ascii_case(TRANSRESP)),
            "expected the offerer's transrespbody INVITE"
        );
        print_transresp("OFFER", &their, &header, msgs);
        ensure!(is_listening(&their), "the offerer does not listen either");
        let stream = dc_connect(&their, p.next_id).await?;
        let ack_id = p.next_id.wrapping_add(2);
        tokio::time::timeout(
            TRANSFER_TIMEOUT,
            p2p_receive_file(stream, session_id, ack_id, out),
        )
        .await
        .map_err(|_| anyhow!("transfer timed out"))??;
        println!("RECEIVED");
        return Ok(());
    };
    let listener = TcpListener::bind(("0.0.0.0", listen_port)).await?;
    let port = listener.local_addr()?.port();
    let nonce_text = p2p::random_guid();
    let nonce = p2p::guid_bytes(&nonce_text)?;
    let external = online.client_addr.map_or(own, |a| a.ip());
    let answer = p.ok(
        &offer,
        TRANSRESP,
        &listening_body(&nonce_text, external, own, port),
    );
    let sent = p.send_slp(&answer).await?;
    println!("LISTENING {port} {}", sent.total_size);
    // The offerer's ACK must report the size we sent, whatever the relay did on the way.
    let ack = p.recv_ack().await?;
    ensure!(
        ack.ack_uid == sent.id
            && ack.ack_size == sent.total_size
            && ack.total_size == sent.total_size,
        "ACK reports {} / {} for a message of {}",
        ack.ack_size,
        ack.total_size,
        sent.total_size
    );
    println!("ACK-OK");
    let stream = dc_accept(listener, &nonce, p.next_id).await?;
    let ack_id = p.next_id.wrapping_add(2);
    tokio::time::timeout(
        TRANSFER_TIMEOUT,
        p2p_receive_file(stream, session_id, ack_id, out),
    )
    .await
    .map_err(|_| anyhow!("transfer timed out"))??;
    println!("RECEIVED");
    Ok(())
}

impl P2pSb {
    /// The first SLP message (one chunk) when the peer is not known yet: learns the peer from
    /// its `From: <msnmsgr:...>` and ACKs it.
    async fn recv_first_invite(&mut self) -> anyhow::Result<p2p::Slp> {
        let first = loop {
            let c = self.recv_chunk().await?;
            if c.header.session_id == 0 && c.header.flags & p2p::FLAG_ACK == 0 {
                break c;
            }
        };
        ensure!(
            first.header.total_size == u64::from(first.header.length),
            "chunked INVITE"
        );
        let slp = p2p::Slp::parse(&first.data)?;
        let from = slp
            .header("From")
            .and_then(|f| f.strip_prefix("<msnmsgr:"))
            .and_then(|f| f.strip_suffix('>'))
            .ok_or_else(|| anyhow!("INVITE without From"))?;
        self.peer = from.to_owned();
        let h = first.header;
        self.next_id = self.next_id.wrapping_add(1);
        let ack = p2p::Header {
            id: self.next_id,
            total_size: h.total_size,
            flags: p2p::FLAG_ACK,
            ack_id: h.ack_id,
            ack_uid: h.id,
            ack_size: h.total_size,
            ..p2p::Header::default()
        };
        sb::send_msg(
            &mut self.sb,
            "D",
            &p2p::sb_payload(&self.peer, &ack, &[], 0),
        )
        .await?;
        Ok(slp)
    }
}

/// The relay's own log on stdout (`relive_relay=info`): the standalone-relay test waits for
/// its lines.
fn relay_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("relive_relay=info"))
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}

/// `relay <dir> <name>`: the standalone relay.
async fn relay(args: &[String]) -> anyhow::Result<()> {
    let dir = Path::new(arg(args, 0, "dir")?);
    let name = arg(args, 1, "name")?;
    relay_log();
    std::fs::create_dir_all(dir)?;
    let files = relive_server::relay::engine::serve::RelayFiles::in_dir(dir);
    let names = [name.to_owned(), "127.0.0.1".to_owned()];
    let (identity, _) =
        relive_server::relay::engine::serve::load_or_create_identity(&files, &names)?;
    let (secret, _) = relive_server::relay::engine::serve::load_or_create_secret(&files.secret)?;
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    println!("READY {}", socket.local_addr()?.port());
    let endpoint = relive_server::relay::engine::quic::server_endpoint(
        relive_server::relay::engine::serve::endpoint_config(identity)?,
        socket,
    )?;
    let pool = relive_server::relay::engine::ports::PoolConfig::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        0..=0,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    relive_server::relay::engine::serve::run(
        endpoint,
        relive_server::relay::engine::serve::ServeConfig::new(pool, secret),
        shutdown,
    )
    .await?;
    Ok(())
}

/// `remote-server <data-dir> <public-ip> <relay-addr> <relay-dir>`: relive-server driving the
/// standalone relay.
async fn remote_server(args: &[String]) -> anyhow::Result<()> {
    use relive_server::config::Config;
    let data = Path::new(arg(args, 0, "data-dir")?);
    let public: IpAddr = arg(args, 1, "public-ip")?.parse()?;
    let relay_addr = arg(args, 2, "relay-addr")?;
    let relay_files = relive_server::relay::engine::serve::RelayFiles::in_dir(Path::new(arg(
        args,
        3,
        "relay-dir",
    )?));
    let any: SocketAddr = "0.0.0.0:0".parse()?;
    let mut config = Config {
        ns: any,
        sb: any,
        http: any,
        https: any,
        public_host: public.to_string(),
        bcrypt_cost: 4,
        ..Config::default()
    };
    config.relay.public_ip = Some(public);
    config.relay.remote = Some(relay_addr.to_owned());
    config.relay.remote_secret_file = Some(relay_files.secret);
    config.relay.remote_ca = Some(relay_files.cert);
    let settings = config.validate(data.to_path_buf())?;
    relay_log();
    // The control connection's local socket (remote mode binds no agent port).
    let control = std::net::UdpSocket::bind(settings.relay.quic)
        .with_context(|| format!("binding {}", settings.relay.quic))?;
    let (ctx, listeners) = relive_tests::netns::prepare_server(settings).await?;
    println!(
        "READY {} {}",
        listeners.ns.local_addr()?.port(),
        listeners.https.local_addr()?.port()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    relive_server::run_with_relay(ctx, listeners, Some(control), shutdown).await?;
    Ok(())
}
