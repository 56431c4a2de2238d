//! `MsnpClient`: a scripted MSNP client over a real TCP connection, typed (built on the
//! `relive-msnp` codec) and raw (byte-exact lines), with every await under [`TIMEOUT`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::{Bytes, BytesMut};
use relive_msnp::client::{ClientCommand, Role};
use relive_msnp::frame::{Direction, Frame, decode};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::TrId;
use relive_msnp::version::{Capabilities, ProtocolVersion};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// How long any single network wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Awaits `fut` under [`TIMEOUT`], naming `what` in the error.
///
/// # Errors
///
/// The timeout elapsed, or `fut` failed.
pub async fn within<T, F>(what: &str, fut: F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("timed out after {TIMEOUT:?} waiting for {what}"))?
}

/// One frame as received: the decoded [`Frame`] and the exact bytes it occupied on the wire.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// The decoded frame.
    pub frame: Frame,
    /// The wire bytes: command line, line end and payload.
    pub bytes: Bytes,
}

impl RawFrame {
    /// The command line as sent, without its line end.
    #[must_use]
    pub fn line(&self) -> String {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.bytes.len());
        let line = &self.bytes[..end];
        String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned()
    }

    /// Whether the command line ends in CRLF (the only line end a server may send).
    #[must_use]
    pub fn ends_in_crlf(&self) -> bool {
        let len = self.line().len();
        self.bytes.get(len..len + 2) == Some(b"\r\n")
    }

    /// The payload, if the command carries one.
    #[must_use]
    pub fn payload(&self) -> Option<&Bytes> {
        self.frame.payload.as_ref()
    }
}

/// A scripted client connection to an NS or SB listener.
#[derive(Debug)]
pub struct MsnpClient {
    stream: TcpStream,
    buf: BytesMut,
    role: Role,
    caps: Capabilities,
    label: String,
    next_trid: u32,
    /// The profile message's payload, once a login helper has read it.
    profile: Option<Bytes>,
}

impl MsnpClient {
    /// Connects to `addr`, speaking as a client of a `role` server. `label` names the
    /// connection in failure messages (e.g. `alice_ns`).
    ///
    /// # Errors
    ///
    /// The connection failed or timed out.
    pub async fn connect(addr: SocketAddr, role: Role, label: &str) -> anyhow::Result<Self> {
        let stream = within(&format!("{label}: connect to {addr}"), async {
            Ok(TcpStream::connect(addr).await?)
        })
        .await?;
        Ok(Self::from_stream(stream, role, label))
    }

    /// [`MsnpClient::connect`] from the local address `local` (Linux routes all of 127/8 on
    /// `lo`, so a test can be several sources at once).
    ///
    /// # Errors
    ///
    /// The connection failed or timed out.
    pub async fn connect_from(
        addr: SocketAddr,
        local: std::net::IpAddr,
        role: Role,
        label: &str,
    ) -> anyhow::Result<Self> {
        let stream = within(&format!("{label}: connect to {addr} from {local}"), async {
            Ok(crate::tcp_from(local, addr).await?)
        })
        .await?;
        Ok(Self::from_stream(stream, role, label))
    }

    /// Connects with a small receive buffer (bytes), for clients that are meant to stop
    /// reading and make the server's send path back up quickly.
    ///
    /// # Errors
    ///
    /// The connection failed or timed out.
    pub async fn connect_small_buffer(
        addr: SocketAddr,
        role: Role,
        label: &str,
        recv_buffer: u32,
    ) -> anyhow::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(recv_buffer)?;
        let stream = within(&format!("{label}: connect to {addr}"), async {
            Ok(socket.connect(addr).await?)
        })
        .await?;
        Ok(Self::from_stream(stream, role, label))
    }

    fn from_stream(stream: TcpStream, role: Role, label: &str) -> Self {
        // Small writes (byte-at-a-time tests) must leave at once.
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            buf: BytesMut::with_capacity(8192),
            role,
            // The dialect is only known after VER; MSNP2 parses everything that has no
            // dialect-specific fields, and `set_version` replaces it.
            caps: Capabilities::for_version(ProtocolVersion::MSNP2),
            label: label.to_owned(),
            next_trid: 1,
            profile: None,
        }
    }

    /// Takes the connection apart: the stream and the bytes already read but not yet
    /// consumed (a load generator continues on the raw socket after a scripted login).
    #[must_use]
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buf)
    }

    /// The connection's label.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The dialect used to decode typed messages.
    #[must_use]
    pub const fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// Sets the dialect used to decode typed messages (after `VER`).
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.caps = Capabilities::for_version(version);
    }

    /// The profile message's payload (`text/x-msmsgsprofile`), once a login helper read it.
    #[must_use]
    pub const fn profile(&self) -> Option<&Bytes> {
        self.profile.as_ref()
    }

    /// The value of `key` in the profile message (`MSPAuth`, `sid`, `LoginTime` …).
    #[must_use]
    pub fn profile_field(&self, key: &str) -> Option<String> {
        let profile = std::str::from_utf8(self.profile.as_ref()?).ok()?;
        profile
            .split("\r\n")
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .map(str::to_owned)
    }

    /// Records the profile payload (the login helpers do).
    pub fn set_profile(&mut self, payload: Bytes) {
        self.profile = Some(payload);
    }

    /// The next transaction id (1, 2, 3 … per connection).
    pub fn trid(&mut self) -> TrId {
        let t = TrId(self.next_trid);
        self.next_trid += 1;
        t
    }

    /// The transaction id that [`MsnpClient::trid`] returns next, without using it.
    #[must_use]
    pub const fn peek_trid(&self) -> u32 {
        self.next_trid
    }

    /// The local address of the connection.
    ///
    /// # Errors
    ///
    /// The socket has no local address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// The server's address (where this client connected).
    ///
    /// # Panics
    ///
    /// Never for a connected TCP stream on Linux.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Sends a typed command.
    ///
    /// # Errors
    ///
    /// The write failed or timed out.
    pub async fn send(&mut self, cmd: &ClientCommand) -> anyhow::Result<()> {
        let mut b = BytesMut::new();
        cmd.encode(&mut b);
        self.send_raw(&b).await
    }

    /// Sends `line` followed by CRLF.
    ///
    /// # Errors
    ///
    /// The write failed or timed out.
    pub async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await
    }

    /// Sends a payload command: `head` plus the payload's byte count, CRLF, then the payload.
    ///
    /// # Errors
    ///
    /// The write failed or timed out.
    pub async fn send_payload(&mut self, head: &str, payload: &[u8]) -> anyhow::Result<()> {
        let mut b = format!("{head} {}\r\n", payload.len()).into_bytes();
        b.extend_from_slice(payload);
        self.send_raw(&b).await
    }

    /// Writes `bytes` exactly as given.
    ///
    /// # Errors
    ///
    /// The write failed or timed out.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let what = format!("{}: write of {} bytes", self.label, bytes.len());
        let stream = &mut self.stream;
        within(&what, async {
            stream.write_all(bytes).await?;
            stream.flush().await?;
            Ok(())
        })
        .await
    }

    /// Closes the sending half (the server sees EOF).
    ///
    /// # Errors
    ///
    /// The shutdown failed.
    pub async fn close_write(&mut self) -> anyhow::Result<()> {
        Ok(self.stream.shutdown().await?)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(8192);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Receives the next frame with its exact wire bytes.
    ///
    /// # Errors
    ///
    /// Timeout, EOF, a read error, or bytes that are not a valid MSNP frame.
    pub async fn recv_raw(&mut self) -> anyhow::Result<RawFrame> {
        let what = format!("{}: next server line", self.label);
        tokio::time::timeout(TIMEOUT, self.recv_raw_untimed())
            .await
            .map_err(|_| anyhow!("timed out after {TIMEOUT:?} waiting for {what}"))?
    }

    async fn recv_raw_untimed(&mut self) -> anyhow::Result<RawFrame> {
        loop {
            let before = self.buf.clone();
            match decode(&mut self.buf, Direction::ServerToClient) {
                Ok(Some(frame)) => {
                    let used = before.len() - self.buf.len();
                    let mut raw = before;
                    raw.truncate(used);
                    // Skipped empty lines are not part of the frame; a server must not send
                    // them, so they are kept in `bytes` and fail byte-exact comparisons.
                    return Ok(RawFrame {
                        frame,
                        bytes: raw.freeze(),
                    });
                }
                Ok(None) => {}
                Err(e) => bail!(
                    "{}: undecodable server bytes ({e}): {:?}",
                    self.label,
                    String::from_utf8_lossy(&before[..before.len().min(200)])
                ),
            }
            match self.fill().await {
                Ok(0) => bail!(
                    "{}: connection closed by the server{}",
                    self.label,
                    if self.buf.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " after a partial frame {:?}",
                            String::from_utf8_lossy(&self.buf)
                        )
                    }
                ),
                Ok(_) => {}
                Err(e) => return Err(e).context(format!("{}: read failed", self.label)),
            }
        }
    }

    /// Receives the next message, decoded in the client's dialect.
    ///
    /// # Errors
    ///
    /// As [`MsnpClient::recv_raw`], or a line that does not parse as a server message.
    pub async fn recv(&mut self) -> anyhow::Result<ServerMessage> {
        let raw = self.recv_raw().await?;
        ensure!(
            raw.ends_in_crlf(),
            "{}: line not ended by CRLF: {:?}",
            self.label,
            raw.line()
        );
        ServerMessage::from_frame(&raw.frame, self.role, &self.caps).map_err(|e| {
            anyhow!(
                "{}: cannot parse {:?} as MSNP{} server message: {e:?}",
                self.label,
                raw.line(),
                self.caps.version.number()
            )
        })
    }

    /// Receives the next message and checks it with `pred`; `what` describes the expectation.
    ///
    /// # Errors
    ///
    /// As [`MsnpClient::recv`], or the message does not satisfy `pred`.
    pub async fn expect(
        &mut self,
        what: &str,
        pred: impl FnOnce(&ServerMessage) -> bool,
    ) -> anyhow::Result<ServerMessage> {
        let m = self.recv().await?;
        ensure!(pred(&m), "{}: expected {what}, got {m:?}", self.label);
        Ok(m)
    }

    /// Receives messages until one satisfies `pred`, returning it and the ones skipped (for
    /// notifications whose relative order is free, e.g. an `NLN` racing a reply).
    ///
    /// # Errors
    ///
    /// As [`MsnpClient::recv`] (including the timeout on each wait).
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> anyhow::Result<(ServerMessage, Vec<ServerMessage>)> {
        let mut skipped = Vec::new();
        loop {
            let m = self
                .recv()
                .await
                .with_context(|| format!("waiting for {what}; skipped so far: {skipped:?}"))?;
            if pred(&m) {
                return Ok((m, skipped));
            }
            skipped.push(m);
        }
    }

    /// Receives the next frame and requires its command line to be exactly `line` + CRLF,
    /// with no payload.
    ///
    /// # Errors
    ///
    /// As [`MsnpClient::recv_raw`], or a different line.
    pub async fn expect_line(&mut self, line: &str) -> anyhow::Result<()> {
        let raw = self.recv_raw().await?;
        let want = format!("{line}\r\n");
        ensure!(
            raw.bytes == want.as_bytes(),
            "{}: expected {:?}, got {:?}",
            self.label,
            want,
            String::from_utf8_lossy(&raw.bytes)
        );
        Ok(())
    }

    /// Requires the server to close the connection with nothing more sent. A reset counts as
    /// closed (the server may close with our unread bytes in its buffer).
    ///
    /// # Errors
    ///
    /// Data arrived, or the connection stayed open for [`TIMEOUT`].
    pub async fn expect_closed(&mut self) -> anyhow::Result<()> {
        let label = self.label.clone();
        let mut extra = Vec::new();
        let res = tokio::time::timeout(TIMEOUT, async {
            loop {
                if !self.buf.is_empty() {
                    extra.extend_from_slice(&self.buf);
                    self.buf.clear();
                }
                match self.fill().await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::ConnectionAborted
                        ) =>
                    {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match res {
            Err(_) => bail!(
                "{label}: expected the server to close the connection; still open after \
                 {TIMEOUT:?}{}",
                describe_extra(&extra)
            ),
            Ok(Err(e)) => Err(e).context(format!("{label}: read failed")),
            Ok(Ok(())) => {
                ensure!(
                    extra.is_empty(),
                    "{label}: expected a close with nothing before it{}",
                    describe_extra(&extra)
                );
                Ok(())
            }
        }
    }

    /// Checks that nothing is pending for this NS client: sends `PNG` and requires `QNG` as the
    /// very next message. Whatever the server had written to this connection before reading
    /// the `PNG` arrives first; an event still sitting in the connection's outbox may race the
    /// reply, so a stray message can slip past this check (never the other way round: it does
    /// not fail a correct server).
    ///
    /// # Errors
    ///
    /// Any other message arrived first.
    pub async fn sync(&mut self) -> anyhow::Result<()> {
        self.send(&ClientCommand::Png).await?;
        self.expect("QNG (nothing queued before it)", |m| {
            matches!(m, ServerMessage::Qng { .. })
        })
        .await?;
        Ok(())
    }
}

fn describe_extra(extra: &[u8]) -> String {
    if extra.is_empty() {
        return String::new();
    }
    let mut s = String::from("; received ");
    let _ = write!(
        s,
        "{:?}",
        String::from_utf8_lossy(&extra[..extra.len().min(300)])
    );
    s
}
