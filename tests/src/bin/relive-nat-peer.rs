//! `relive-nat-peer`: one participant of the NAT end-to-end tests (`tests/it/nat.rs`), run
//! inside a network namespace with `ip netns exec` (unsafe code, and so `setns`, is forbidden
//! in the workspace; a child process is the sound way into a namespace).
//!
//! ```text
//! relive-nat-peer server  <data-dir> <public-ip> <relay:on|off> <rendezvous:on|off>
//!     runs relive-server (all listeners on 0.0.0.0:0, relay ports 0..=0, MSNFTP rendezvous
//!     as given, relay QUIC on 0.0.0.0:0), creates alice@example.com and bob@example.com with
//!     access tokens in <data-dir>/tokens ("handle token" lines, mode 0600), then prints
//!     "READY <ns-port> <http-port> <quic-port>"; afterwards the relay's rewrite log
//!     (`relive_relay::rewrite=info`) goes to stdout.
//! relive-nat-peer receive <ns> <http> <handle> <token> <out-file>
//!     MSNP8 (MSN 5.0) login, NLN, prints "ONLINE", answers the RNG, accepts the MSNFTP
//!     INVITE, connects where the ACCEPT points and receives the file (MSNFTP client role).
//! relive-nat-peer send <ns> <http> <handle> <token> <to> <file> <listen-port>
//!     MSNP8 login, NLN, opens a switchboard, CALs <to>, INVITEs it to the file. If the
//!     answer carries `Sender-Connect: TRUE` it dials the address given, else it listens on
//!     <listen-port> (0: any) and advertises its own address; then serves the file (MSNFTP
//!     server role).
//! relive-nat-peer agent <quic-addr> <ca-file> <server-name> <handle> <token>
//!     the companion agent (relive-relay's library, dialling 127.0.0.1); its log goes to
//!     stdout, where "agent connected to the relay" says the relay accepted it.
//! ```
//!
//! Exit status 0 means the role completed; anything else is printed to stderr. Every wait is
//! bounded. Tokens, file names and file contents are never printed.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use relive_msnp::client::Role;
use relive_tests::MsnpClient;
use relive_tests::sb;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long the MSNFTP connection may take to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the whole file may take once connected.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest MSNFTP data block.
const BLOCK: usize = 2045;
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
        Some("receive") => receive(&args[1..]).await,
        Some("send") => send(&args[1..]).await,
        Some("agent") => agent(&args[1..]).await,
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
    config.relay.quic = any;
    config.relay.msnftp_rendezvous = rendezvous;
    let settings = config.validate(data.to_path_buf())?;
    let (store, _) = relive_server::data_dir::prepare(&settings).await?;
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
    write_private(&data.join("tokens"), tokens.as_bytes())?;
    let listeners = relive_server::Listeners {
        ns: TcpListener::bind(any).await?,
        sb: TcpListener::bind(any).await?,
        http: TcpListener::bind(any).await?,
        https: TcpListener::bind(any).await?,
        legacy_tls: None,
    };
    let quic = std::net::UdpSocket::bind(any)?;
    println!(
        "READY {} {} {}",
        listeners.ns.local_addr()?.port(),
        listeners.http.local_addr()?.port(),
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
    let ctx = relive_server::Context::new(settings, store)?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    relive_server::run_with_relay(ctx, listeners, Some(quic), shutdown).await?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
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

/// Next frame whose command line starts with `prefix` (others are skipped), as its line and
/// payload.
async fn wait_line(c: &mut MsnpClient, prefix: &str) -> anyhow::Result<(String, Vec<u8>)> {
    for _ in 0..200 {
        let raw = c.recv_raw().await?;
        let line = raw.line();
        if line.starts_with(prefix) {
            return Ok((line, raw.payload().map(|p| p.to_vec()).unwrap_or_default()));
        }
    }
    bail!("no line starting {prefix:?}")
}

/// MSNP8 login (PROTOCOL.md §2.3.3): VER, CVR, USR TWN I (following one XFR NS), a Passport
/// 1.4 login over plain HTTP with the access token, USR TWN S; then CHG NLN.
async fn login8(
    ns: SocketAddr,
    http: SocketAddr,
    handle: &str,
    token: &str,
) -> anyhow::Result<MsnpClient> {
    let mut addr = ns;
    for _ in 0..2 {
        let mut c = MsnpClient::connect(addr, Role::Notification, "ns").await?;
        let t = c.trid();
        c.send_line(&format!("VER {t} MSNP8 CVR0")).await?;
        c.set_version(
            relive_msnp::version::ProtocolVersion::new(8).ok_or_else(|| anyhow!("MSNP8"))?,
        );
        wait_line(&mut c, "VER ").await?;
        let t = c.trid();
        c.send_line(&format!(
            "CVR {t} 0x0409 winnt 5.1 i386 MSNMSGR 5.0.0544 MSMSGS {handle}"
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
                let ticket = passport_login(http, handle, token, params).await?;
                let t = c.trid();
                c.send_line(&format!("USR {t} TWN S {ticket}")).await?;
                wait_line(&mut c, &format!("USR {t} OK")).await?;
                let t = c.trid();
                c.send_line(&format!("CHG {t} NLN 0")).await?;
                wait_line(&mut c, &format!("CHG {t} NLN")).await?;
                return Ok(c);
            }
            _ => bail!("unexpected login reply {line:?}"),
        }
    }
    bail!("referred more than once")
}

/// `GET /login2.srf` with a `Passport1.4` Authorization header; returns the ticket.
async fn passport_login(
    http: SocketAddr,
    handle: &str,
    token: &str,
    params: &str,
) -> anyhow::Result<String> {
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(http)).await??;
    let request = format!(
        "GET /login2.srf HTTP/1.1\r\nHost: {http}\r\nAuthorization: Passport1.4 OrgVerb=GET,\
         OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={},pwd={},{params}\r\n\
         Connection: close\r\n\r\n",
        urlencode(handle),
        urlencode(token)
    );
    s.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    tokio::time::timeout(CONNECT_TIMEOUT, s.take(64 * 1024).read_to_end(&mut reply)).await??;
    let reply = String::from_utf8_lossy(&reply);
    let start = reply
        .find("from-PP='")
        .ok_or_else(|| anyhow!("login2.srf gave no ticket"))?
        + "from-PP='".len();
    let end = reply[start..]
        .find('\'')
        .ok_or_else(|| anyhow!("unterminated ticket"))?;
    Ok(reply[start..start + end].to_owned())
}

/// The `Name: value` fields of an invitation payload.
fn fields(payload: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(payload);
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn invitation(body: &str) -> Vec<u8> {
    format!("MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n{body}")
        .into_bytes()
}

/// Waits for an invitation `MSG` whose `Invitation-Command` is `command`.
async fn wait_invitation(
    sbc: &mut MsnpClient,
    command: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    for _ in 0..50 {
        let (_, payload) = wait_line(sbc, "MSG ").await?;
        let f = fields(&payload);
        if field(&f, "Invitation-Command").is_some_and(|c| c.eq_ignore_ascii_case(command)) {
            return Ok(f);
        }
        if field(&f, "Invitation-Command").is_some_and(|c| c.eq_ignore_ascii_case("CANCEL")) {
            bail!("the invitation was cancelled");
        }
    }
    bail!("no {command}")
}

async fn receive(args: &[String]) -> anyhow::Result<()> {
    let ns: SocketAddr = arg(args, 0, "ns")?.parse()?;
    let http: SocketAddr = arg(args, 1, "http")?.parse()?;
    let handle = arg(args, 2, "handle")?;
    let token = arg(args, 3, "token")?;
    let out = arg(args, 4, "out-file")?;
    let mut nsc = login8(ns, http, handle, token).await?;
    println!("ONLINE");
    // The sender starts after ONLINE; allow it a few client timeouts to log in and call.
    let mut ticket = None;
    for _ in 0..6 {
        match wait_line(&mut nsc, "RNG ").await {
            Ok((line, _)) => {
                ticket = Some(line);
                break;
            }
            Err(_) => continue,
        }
    }
    let rng = ticket.ok_or_else(|| anyhow!("never rung"))?;
    let parts: Vec<&str> = rng.split(' ').collect();
    let (Some(session), Some(addr), Some(cookie)) = (parts.get(1), parts.get(2), parts.get(4))
    else {
        bail!("malformed RNG");
    };
    let mut sbc = MsnpClient::connect(addr.parse()?, Role::Switchboard, "receiver_sb").await?;
    sbc.set_version(nsc.caps().version);
    let t = sbc.trid();
    sbc.send_line(&format!("ANS {t} {handle} {cookie} {session}"))
        .await?;
    wait_line(&mut sbc, &format!("ANS {t} OK")).await?;
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
    let ip: IpAddr = field(&accept, "IP-Address")
        .ok_or_else(|| anyhow!("ACCEPT without IP-Address"))?
        .parse()?;
    let port: u16 = field(&accept, "Port")
        .ok_or_else(|| anyhow!("no Port"))?
        .parse()?;
    let auth = field(&accept, "AuthCookie").unwrap_or("").to_owned();
    println!("CONNECTING {ip}");
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, port)))
        .await
        .map_err(|_| anyhow!("connecting to the sender timed out"))?
        .context("connecting to the sender")?;
    tokio::time::timeout(
        TRANSFER_TIMEOUT,
        msnftp_receive(stream, handle, &auth, size, Path::new(out)),
    )
    .await
    .map_err(|_| anyhow!("transfer timed out"))??;
    println!("RECEIVED");
    Ok(())
}

/// MSNFTP client role: `VER`, `USR`, `FIL`, `TFR`, blocks, `BYE`.
async fn msnftp_receive(
    stream: TcpStream,
    handle: &str,
    auth: &str,
    size: u64,
    out: &Path,
) -> anyhow::Result<()> {
    let mut s = BufReader::new(stream);
    let mut line = String::new();
    s.get_mut().write_all(b"VER MSNFTP\r\n").await?;
    read_line(&mut s, &mut line).await?;
    ensure!(line.trim_end() == "VER MSNFTP", "unexpected VER reply");
    s.get_mut()
        .write_all(format!("USR {handle} {auth}\r\n").as_bytes())
        .await?;
    read_line(&mut s, &mut line).await?;
    let announced: u64 = line
        .trim_end()
        .strip_prefix("FIL ")
        .ok_or_else(|| anyhow!("expected FIL"))?
        .parse()?;
    ensure!(announced == size, "FIL size differs from the invitation");
    s.get_mut().write_all(b"TFR\r\n").await?;
    let mut file = tokio::fs::File::create(out).await?;
    let mut got = 0u64;
    let mut block = vec![0u8; BLOCK];
    while got < size {
        let mut header = [0u8; 3];
        s.read_exact(&mut header).await?;
        ensure!(header[0] == 0, "the sender cancelled");
        let len = usize::from(u16::from_le_bytes([header[1], header[2]]));
        ensure!(len <= BLOCK && len > 0, "bad block length");
        s.read_exact(&mut block[..len]).await?;
        file.write_all(&block[..len]).await?;
        got += len as u64;
    }
    ensure!(got == size, "more data than announced");
    file.flush().await?;
    s.get_mut().write_all(b"BYE 16777989\r\n").await?;
    Ok(())
}

async fn read_line(s: &mut BufReader<TcpStream>, line: &mut String) -> anyhow::Result<()> {
    line.clear();
    let n = (&mut *s).take(1024).read_line(line).await?;
    ensure!(n > 0, "connection closed");
    Ok(())
}

async fn send(args: &[String]) -> anyhow::Result<()> {
    let ns: SocketAddr = arg(args, 0, "ns")?.parse()?;
    let http: SocketAddr = arg(args, 1, "http")?.parse()?;
    let handle = arg(args, 2, "handle")?;
    let token = arg(args, 3, "token")?;
    let to = arg(args, 4, "to")?;
    let path = Path::new(arg(args, 5, "file")?);
    let listen_port: u16 = arg(args, 6, "listen-port")?.parse()?;
    let size = std::fs::metadata(path)?.len();
    let mut nsc = login8(ns, http, handle, token).await?;
    let mut sbc = sb::open(&mut nsc, handle, "sender_sb").await?;
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
        let ip: IpAddr = field(&accept, "IP-Address")
            .ok_or_else(|| anyhow!("Sender-Connect without IP-Address"))?
            .parse()?;
        let port: u16 = field(&accept, "Port")
            .ok_or_else(|| anyhow!("no Port"))?
            .parse()?;
        let auth = field(&accept, "AuthCookie").unwrap_or("").to_owned();
        println!("DIALLING {ip}");
        let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, port)))
            .await
            .map_err(|_| anyhow!("dialling the receiver timed out"))??;
        (s, auth)
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
    tokio::time::timeout(TRANSFER_TIMEOUT, msnftp_send(stream, &auth, path, size))
        .await
        .map_err(|_| anyhow!("transfer timed out"))??;
    println!("SENT");
    Ok(())
}

/// MSNFTP server role: answers `VER`, checks `USR`'s cookie, `FIL`, waits `TFR`, sends blocks,
/// waits `BYE`.
async fn msnftp_send(stream: TcpStream, auth: &str, path: &Path, size: u64) -> anyhow::Result<()> {
    let mut s = BufReader::new(stream);
    let mut line = String::new();
    read_line(&mut s, &mut line).await?;
    ensure!(line.trim_end() == "VER MSNFTP", "expected VER MSNFTP");
    s.get_mut().write_all(b"VER MSNFTP\r\n").await?;
    read_line(&mut s, &mut line).await?;
    let cookie = line.trim_end().rsplit(' ').next().unwrap_or("");
    ensure!(
        line.starts_with("USR ") && cookie == auth,
        "wrong USR cookie"
    );
    s.get_mut()
        .write_all(format!("FIL {size}\r\n").as_bytes())
        .await?;
    read_line(&mut s, &mut line).await?;
    ensure!(line.trim_end() == "TFR", "expected TFR");
    let mut file = tokio::fs::File::open(path).await?;
    let mut block = vec![0u8; BLOCK];
    let mut sent = 0u64;
    while sent < size {
        let n = file.read(&mut block).await?;
        ensure!(n > 0, "file shorter than announced");
        let len = u16::try_from(n)?.to_le_bytes();
        s.get_mut().write_all(&[0, len[0], len[1]]).await?;
        s.get_mut().write_all(&block[..n]).await?;
        sent += n as u64;
    }
    read_line(&mut s, &mut line).await?;
    ensure!(line.starts_with("BYE"), "expected BYE");
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
