//! The generic connection driver shared by the NS and the SB.
//!
//! One loop per connection `select!`s over four inputs and hands everything protocol-shaped to a
//! [`Service`]:
//!
//! * socket reads: bytes are read into a scratch buffer on the stack of the poll and appended to
//!   a `BytesMut` that is freed whenever it is empty, so an idle connection holds no read
//!   buffer (nor a large write buffer); every complete frame is cut out with
//!   [`relive_msnp::frame::decode`] (so split and coalesced reads are the same), parsed into a
//!   [`ClientCommand`] and passed to [`Service::handle`];
//! * the connection's hub outbox ([`Event`]): `Send` is written, `Kick` writes `OUT <reason>`
//!   and closes;
//! * the service's deadline ([`Service::deadline`]): idle, authentication and `CHL` timeouts;
//! * cancellation: server shutdown ([`Service::shutdown`], e.g. `OUT SSD`), or the hub's "too
//!   slow" token, which closes at once without writing.
//!
//! Replies are encoded for the connection's dialect and written once per batch (everything that
//! was produced by the bytes of one read plus any events already queued), so a burst of commands
//! costs one `write`. A framing error closes the connection with a log line; nothing is relayed.
//! Payloads and credentials are never logged, only command names, transaction ids and sizes.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use relive_msnp::client::{ClientCommand, Role};
use relive_msnp::error::ParseError;
use relive_msnp::frame::{Direction, decode};
use relive_msnp::server::ServerMessage;
use relive_msnp::version::Capabilities;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::hub::Event;

/// How long one write may block before the peer counts as gone.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the final write on shutdown (`OUT SSD`) may take.
const SHUTDOWN_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes one read takes from the socket (into a buffer on the stack of the poll).
const READ_CHUNK: usize = 16 * 1024;
/// A write buffer larger than this is freed after its write even while events are queued (with
/// none queued it is always freed).
const KEEP_WRITE_BUFFER: usize = 1024;

/// What a service produced for one input: messages in order, and whether to close after them.
#[derive(Debug, Default)]
pub struct Replies {
    messages: Vec<ServerMessage>,
    close: bool,
}

impl Replies {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `message`.
    pub fn push(&mut self, message: ServerMessage) {
        self.messages.push(message);
    }

    /// Closes the connection once the queued messages are written.
    pub fn close(&mut self) {
        self.close = true;
    }

    /// Whether the connection will close after this batch.
    #[must_use]
    pub const fn is_closing(&self) -> bool {
        self.close
    }

    /// The queued messages.
    #[must_use]
    pub fn messages(&self) -> &[ServerMessage] {
        &self.messages
    }

    /// Takes the queued messages, leaving the batch empty (the close flag stays).
    pub fn take(&mut self) -> Vec<ServerMessage> {
        std::mem::take(&mut self.messages)
    }
}

/// One protocol on top of the driver: the NS or the SB. No sockets here.
pub trait Service: Send {
    /// Which `USR` grammar applies to this connection.
    fn role(&self) -> Role;

    /// The dialect replies are encoded in (and commands parsed with).
    fn caps(&self) -> Capabilities;

    /// Handles one parsed command.
    fn handle(&mut self, cmd: ClientCommand, out: &mut Replies) -> impl Future<Output = ()> + Send;

    /// A complete frame whose arguments did not parse: answer a code or close.
    fn parse_error(&mut self, command: &str, error: &ParseError, out: &mut Replies);

    /// Called for every read that delivered bytes (resets idle timers).
    fn activity(&mut self, now: Instant);

    /// The next moment [`Service::timeout`] must run, if any.
    fn deadline(&self) -> Option<Instant>;

    /// The deadline passed.
    fn timeout(&mut self, now: Instant, out: &mut Replies);

    /// The server is shutting down: queue any goodbye and close.
    fn shutdown(&mut self, out: &mut Replies);

    /// The connection ended (for whatever reason): leave rooms, unregister from the hub.
    fn finish(&mut self);
}

/// Applies an outbox event to the batch.
fn apply_event(event: Event, out: &mut Replies) {
    match event {
        Event::Send(message) => out.push(message),
        Event::Kick(reason) => {
            debug!(reason = reason.as_str(), "kicked");
            out.push(ServerMessage::Out {
                reason: Some(reason),
            });
            out.close();
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Why a connection loop ended (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed its side.
    PeerClosed,
    /// Reading failed.
    ReadError,
    /// Writing failed or timed out.
    WriteError,
    /// The service asked to close.
    Service,
    /// The hub found the reader too slow.
    TooSlow,
}

/// Runs one connection until it ends, then calls [`Service::finish`].
///
/// `kill` is the token the hub cancels when this connection's outbox overflows (close without
/// writing); `shutdown` is the server's (the service says goodbye, then the connection closes).
pub async fn drive<S, IO>(
    io: &mut IO,
    service: &mut S,
    events: &mut crate::hub::Inbox,
    kill: &CancellationToken,
    shutdown: &CancellationToken,
) where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let end = run_loop(io, service, events, kill, shutdown).await;
    service.finish();
    let _ = io.shutdown().await;
    debug!(?end, "connection ended");
}

async fn run_loop<S, IO>(
    io: &mut IO,
    service: &mut S,
    events: &mut crate::hub::Inbox,
    kill: &CancellationToken,
    shutdown: &CancellationToken,
) -> End
where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut out = Replies::new();
    let mut shutting_down = false;
    loop {
        let deadline = service.deadline();
        tokio::select! {
            biased;
            () = kill.cancelled() => return End::TooSlow,
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                service.shutdown(&mut out);
            }
            event = events.recv() => match event {
                Some(event) => apply_event(event, &mut out),
                // The service holds a sender for as long as it lives; treat the impossible as EOF.
                None => return End::Service,
            },
            () = sleep_until(deadline) => service.timeout(Instant::now(), &mut out),
            read = std::future::poll_fn(|cx| poll_read_into(io, &mut rbuf, cx)) => match read {
                Ok(0) => return End::PeerClosed,
                Ok(_) => {
                    service.activity(Instant::now());
                    process_frames(&mut rbuf, service, &mut out).await;
                    if rbuf.is_empty() {
                        // Free the buffer (payloads still in use keep their own reference).
                        rbuf = BytesMut::new();
                    }
                }
                Err(error) => {
                    debug!(%error, "read failed");
                    return End::ReadError;
                }
            },
        }
        // Coalesce: whatever the hub queued meanwhile goes out in the same write.
        while !out.is_closing() {
            match events.try_recv() {
                Ok(event) => apply_event(event, &mut out),
                Err(_) => break,
            }
        }
        let caps = service.caps();
        for message in out.take() {
            message.encode(&caps, &mut wbuf);
        }
        if !wbuf.is_empty() {
            let limit = if shutting_down {
                SHUTDOWN_WRITE_TIMEOUT
            } else {
                WRITE_TIMEOUT
            };
            let written = tokio::select! {
                biased;
                () = kill.cancelled() => return End::TooSlow,
                r = tokio::time::timeout(limit, io.write_all(&wbuf)) => r,
            };
            match written {
                // A connection with nothing queued may stay idle for hours: give the buffer back
                // (an allocation per write batch costs far less than the write itself).
                Ok(Ok(())) if wbuf.capacity() > KEEP_WRITE_BUFFER || events.is_empty() => {
                    wbuf = BytesMut::new();
                }
                Ok(Ok(())) => wbuf.clear(),
                Ok(Err(error)) => {
                    debug!(%error, "write failed");
                    return End::WriteError;
                }
                Err(_) => {
                    info!(bytes = wbuf.len(), "write timed out; closing");
                    return End::WriteError;
                }
            }
        }
        if out.is_closing() || shutting_down {
            return End::Service;
        }
    }
}

/// Reads what the socket has (at most [`READ_CHUNK`] bytes) into a scratch buffer on the stack
/// and appends it to `rbuf`; `Ok(0)` at EOF. The scratch buffer lives only during the poll, so
/// it neither enlarges the connection's future nor stays allocated while the peer is idle.
fn poll_read_into<IO: AsyncRead + Unpin>(
    io: &mut IO,
    rbuf: &mut BytesMut,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<usize>> {
    let mut scratch = [const { std::mem::MaybeUninit::<u8>::uninit() }; READ_CHUNK];
    let mut buf = tokio::io::ReadBuf::uninit(&mut scratch);
    match std::pin::Pin::new(io).poll_read(cx, &mut buf) {
        std::task::Poll::Ready(Ok(())) => {
            rbuf.extend_from_slice(buf.filled());
            std::task::Poll::Ready(Ok(buf.filled().len()))
        }
        std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
        std::task::Poll::Pending => std::task::Poll::Pending,
    }
}

/// Cuts every complete frame out of `rbuf` and hands it to the service, stopping at the first
/// request to close (later bytes are ignored, as a real server would after hanging up).
async fn process_frames<S: Service>(rbuf: &mut BytesMut, service: &mut S, out: &mut Replies) {
    while !out.is_closing() {
        let frame = match decode(rbuf, Direction::ClientToServer) {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, buffered = rbuf.len(), "framing error; closing");
                out.close();
                return;
            }
        };
        let payload = frame.payload.as_ref().map(bytes::Bytes::len);
        match ClientCommand::from_frame(&frame, service.role(), &service.caps()) {
            Ok(cmd) => {
                debug!(
                    command = frame.name.as_str(),
                    trid = cmd.trid().map(|t| t.0),
                    payload,
                    "command"
                );
                // Boxed: the handler's future (store queries and all) is large, and inline it
                // would be part of every connection's future for the connection's whole life.
                Box::pin(service.handle(cmd, out)).await;
            }
            Err(error) => {
                debug!(
                    command = frame.name.as_str(),
                    trid = error.trid.map(|t| t.0),
                    %error,
                    "unparsable command"
                );
                service.parse_error(&frame.name, &error, out);
            }
        }
    }
}
