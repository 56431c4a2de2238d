//! The generic connection driver shared by the NS and the SB.
//!
//! A [`Connection`] future per connection waits on four inputs and hands everything
//! protocol-shaped to a [`Service`]:
//!
//! * socket reads: bytes are read into a scratch buffer on the stack of the poll and appended to
//!   a `BytesMut` that is freed whenever it is empty, so an idle connection holds no read
//!   buffer (nor a large write buffer); every complete frame is cut out with
//!   [`relive_msnp::frame::decode`] (so split and coalesced reads are the same), parsed into a
//!   [`ClientCommand`] and passed to [`Service::handle`];
//! * the connection's hub outbox ([`Inbox`]): `Send` and `Broadcast` are written, `Kick` writes
//!   `OUT <reason>` and closes, `Shutdown` lets the service say goodbye
//!   ([`Service::shutdown`], e.g. `OUT SSD`) and closes, `TooSlow` closes at once without
//!   writing;
//! * the service's deadline ([`Service::deadline`]): idle, authentication and `CHL` timeouts;
//! * the write timeout, while a write cannot proceed.
//!
//! Replies are encoded for the connection's dialect and written once per batch (everything that
//! was produced by the bytes of one read plus any events already queued), so a burst of commands
//! costs one `write`. While a write is stuck nothing is read and no event is taken (the bounded
//! outbox then finds the reader too slow). A framing error closes the connection with a log
//! line; nothing is relayed. A service that must know its replies went out (pages marked
//! delivered) asks [`Replies::on_written`]: told once the socket took every byte before it. Payloads and credentials are never logged, only command names,
//! transaction ids and sizes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use relive_msnp::client::{ClientCommand, Role};
use relive_msnp::error::ParseError;
use relive_msnp::frame::{Direction, decode};
use relive_msnp::server::ServerMessage;
use relive_msnp::verb::Verb;
use relive_msnp::version::Capabilities;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::hub::{Event, Inbox};

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
    /// Told once everything queued before them is written to the socket.
    written: Vec<tokio::sync::oneshot::Sender<()>>,
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

    /// A receiver that resolves once every message queued so far on this connection (this
    /// batch's and any before) has been written to the socket — handed to the kernel, the
    /// most a server can know. It fails instead if the connection ends first.
    pub fn on_written(&mut self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.written.push(tx);
        rx
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
pub trait Service: Send + 'static {
    /// Which `USR` grammar applies to this connection.
    fn role(&self) -> Role;

    /// The dialect replies are encoded in (and commands parsed with).
    fn caps(&self) -> Capabilities;

    /// Handles one parsed command.
    fn handle(&mut self, cmd: ClientCommand, out: &mut Replies) -> impl Future<Output = ()> + Send;

    /// A complete frame of command `verb` (`None`: a name this crate does not know) whose
    /// arguments did not parse: answer a code or close.
    fn parse_error(&mut self, verb: Option<Verb>, error: &ParseError, out: &mut Replies);

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

pin_project_lite::pin_project! {
    /// One connection, driven until it ends: a future over the socket, the service, the
    /// connection's [`Inbox`] and one timer.
    ///
    /// Written by hand rather than as an `async` loop around `select!`, for the two things a
    /// server with many idle users pays per connection: memory (the `select!` version's state
    /// was about 1.9 KiB per connection, most of it the branches' futures and copies of the
    /// arguments; this is about 0.3 KiB plus the boxed service) and wake-ups (nothing is
    /// registered or deregistered per event: the inbox keeps one waker, and the timer is moved
    /// only when a deadline comes earlier — a later one is noticed when the old one fires).
    pub struct Connection<S, IO>
    where
        S: Service,
    {
        io: IO,
        // `None` while a batch of commands runs (the batch owns it).
        service: Option<Box<S>>,
        busy: Option<Pin<Box<dyn Future<Output = Batch<S>> + Send>>>,
        rbuf: BytesMut,
        wbuf: BytesMut,
        // How much of `wbuf` is written.
        written: usize,
        out: Replies,
        inbox: Inbox,
        #[pin]
        timer: Sleep,
        // The moment `timer` is set to, while it is set.
        armed: Option<Instant>,
        // When the write in progress counts as failed.
        write_deadline: Option<Instant>,
        state: State,
    }

    impl<S, IO> PinnedDrop for Connection<S, IO>
    where
        S: Service,
    {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before it ended (runtime shutdown): still leave rooms and the hub. (A batch
            // in progress owns the service and is dropped with it, unfinished.)
            if let Some(service) = this.project().service.as_mut() {
                service.finish();
            }
        }
    }
}

/// What a batch of commands gives back to its connection.
struct Batch<S> {
    service: Box<S>,
    rbuf: BytesMut,
    out: Replies,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading commands, delivering events.
    Open,
    /// Closing after what is queued is written (within `limit`).
    Closing { limit: Duration },
    /// Ended for this reason: finish the service, shut the socket down.
    Ending(End),
    /// Finished.
    Done,
}

/// Why a connection ended (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed its side.
    PeerClosed,
    /// Reading failed.
    ReadError,
    /// Writing failed or timed out.
    WriteError,
    /// The service asked to close, or the server shut down.
    Service,
    /// The hub found the reader too slow.
    TooSlow,
}

impl<S, IO> Connection<S, IO>
where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The connection over `io`, served by `service`, with `inbox` as its hub outbox's
    /// receiving end. Awaiting it runs the connection until it ends; then
    /// [`Service::finish`] has run and the socket is shut down.
    pub fn new(io: IO, service: S, inbox: Inbox) -> Self {
        Self {
            io,
            service: Some(Box::new(service)),
            busy: None,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            written: 0,
            out: Replies::new(),
            inbox,
            // Not registered anywhere until polled with a deadline.
            timer: tokio::time::sleep_until(Instant::now()),
            armed: None,
            write_deadline: None,
            state: State::Open,
        }
    }
}

impl<S, IO> Future for Connection<S, IO>
where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    type Output = ();

    #[allow(clippy::too_many_lines)] // one state machine, read top to bottom
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            // A batch of commands in progress runs to its end before anything else.
            if let Some(busy) = this.busy.as_mut() {
                let Batch { service, rbuf, out } = ready!(busy.as_mut().poll(cx));
                *this.busy = None;
                *this.service = Some(service);
                // An empty read buffer is freed (payloads still in use keep their own
                // reference).
                *this.rbuf = if rbuf.is_empty() {
                    BytesMut::new()
                } else {
                    rbuf
                };
                *this.out = out;
            }
            if let State::Ending(end) = *this.state {
                if let Some(mut service) = this.service.take() {
                    service.finish();
                }
                // Errors here change nothing: the connection is over either way.
                let _ = ready!(Pin::new(&mut *this.io).poll_shutdown(cx));
                *this.state = State::Done;
                debug!(?end, "connection ended");
                return Poll::Ready(());
            }
            if *this.state == State::Done {
                return Poll::Ready(());
            }
            let Some(service) = this.service.as_deref_mut() else {
                // Only a batch takes the service, and it always gives it back.
                *this.state = State::Ending(End::Service);
                continue;
            };
            let caps = service.caps();
            // Whatever the service produced goes out first, in order.
            if encode_replies(this.out, &caps, this.wbuf) && *this.state == State::Open {
                *this.state = State::Closing {
                    limit: WRITE_TIMEOUT,
                };
            }

            // The hub's events: only while nothing waits to be written (a reader who does not
            // read fills the bounded outbox and is cut off, instead of growing `wbuf`).
            if *this.written < this.wbuf.len() || *this.state != State::Open {
                if this.inbox.poll_too_slow(cx).is_ready() {
                    *this.state = State::Ending(End::TooSlow);
                    continue;
                }
            } else {
                loop {
                    let Poll::Ready(event) = this.inbox.poll_recv(cx) else {
                        break;
                    };
                    match event {
                        Some(Event::Send(message)) => message.encode(&caps, this.wbuf),
                        Some(Event::Broadcast(message)) => {
                            this.wbuf.extend_from_slice(&message.encoded(&caps));
                        }
                        Some(Event::Kick(reason)) => {
                            debug!(reason = reason.as_str(), "kicked");
                            ServerMessage::Out {
                                reason: Some(reason),
                            }
                            .encode(&caps, this.wbuf);
                            *this.state = State::Closing {
                                limit: WRITE_TIMEOUT,
                            };
                        }
                        Some(Event::Shutdown) => {
                            // Closing whether or not the goodbye asks to.
                            service.shutdown(this.out);
                            encode_replies(this.out, &caps, this.wbuf);
                            *this.state = State::Closing {
                                limit: SHUTDOWN_WRITE_TIMEOUT,
                            };
                        }
                        Some(Event::TooSlow) => *this.state = State::Ending(End::TooSlow),
                        // The service holds a sender for as long as it lives; treat the
                        // impossible as a close.
                        None => *this.state = State::Ending(End::Service),
                    }
                    if *this.state != State::Open {
                        break;
                    }
                }
                if matches!(*this.state, State::Ending(_)) {
                    continue;
                }
            }

            // Write what is queued.
            while *this.written < this.wbuf.len() {
                match Pin::new(&mut *this.io).poll_write(cx, &this.wbuf[*this.written..]) {
                    Poll::Ready(Ok(0)) => {
                        debug!("write returned 0");
                        *this.state = State::Ending(End::WriteError);
                        break;
                    }
                    Poll::Ready(Ok(n)) => *this.written += n,
                    Poll::Ready(Err(error)) => {
                        debug!(%error, "write failed");
                        *this.state = State::Ending(End::WriteError);
                        break;
                    }
                    Poll::Pending => {
                        if this.write_deadline.is_none() {
                            let limit = match *this.state {
                                State::Closing { limit } => limit,
                                _ => WRITE_TIMEOUT,
                            };
                            *this.write_deadline = Some(Instant::now() + limit);
                        }
                        break;
                    }
                }
            }
            if matches!(*this.state, State::Ending(_)) {
                continue;
            }
            if *this.written == this.wbuf.len() {
                // Every reply encoded so far is out: tell whoever waits for that.
                for tx in this.out.written.drain(..) {
                    let _ = tx.send(());
                }
            }
            if !this.wbuf.is_empty() && *this.written == this.wbuf.len() {
                *this.written = 0;
                *this.write_deadline = None;
                // A connection with nothing queued may stay idle for hours: give the buffer
                // back (an allocation per write batch costs far less than the write itself).
                if this.wbuf.capacity() > KEEP_WRITE_BUFFER || this.inbox.is_empty() {
                    *this.wbuf = BytesMut::new();
                } else {
                    this.wbuf.clear();
                }
                if *this.state == State::Open {
                    // Events that came while the write was stuck were not taken: go round.
                    continue;
                }
            }
            if this.wbuf.is_empty() {
                if let State::Closing { .. } = *this.state {
                    *this.state = State::Ending(End::Service);
                    continue;
                }
                // Read, only while nothing waits to be written.
                match poll_read_into(&mut *this.io, this.rbuf, cx) {
                    Poll::Ready(Ok(0)) => {
                        *this.state = State::Ending(End::PeerClosed);
                        continue;
                    }
                    Poll::Ready(Ok(_)) => {
                        service.activity(Instant::now());
                        if let Some(service) = this.service.take() {
                            *this.busy = Some(Box::pin(run_batch(
                                service,
                                std::mem::take(this.rbuf),
                                std::mem::take(this.out),
                            )));
                        }
                        continue;
                    }
                    Poll::Ready(Err(error)) => {
                        debug!(%error, "read failed");
                        *this.state = State::Ending(End::ReadError);
                        continue;
                    }
                    Poll::Pending => {}
                }
            }

            // The timer: the earlier of the service's deadline and the write's.
            let Some(service) = this.service.as_deref_mut() else {
                continue;
            };
            let due = match (service.deadline(), *this.write_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(due) = due else {
                return Poll::Pending;
            };
            if this.armed.is_none_or(|armed| armed > due) {
                this.timer.as_mut().reset(due);
                *this.armed = Some(due);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            *this.armed = None;
            let now = Instant::now();
            if this.write_deadline.is_some_and(|d| now >= d) {
                info!(
                    bytes = this.wbuf.len() - *this.written,
                    "write timed out; closing"
                );
                *this.state = State::Ending(End::WriteError);
            } else if service.deadline().is_some_and(|d| now >= d) {
                service.timeout(now, this.out);
            }
            // Otherwise the deadline moved later since the timer was set: set it again.
        }
    }
}

/// Encodes the service's queued replies into `wbuf` and clears the batch; returns whether it
/// asked to close.
fn encode_replies(out: &mut Replies, caps: &Capabilities, wbuf: &mut BytesMut) -> bool {
    for message in out.take() {
        message.encode(caps, wbuf);
    }
    std::mem::take(&mut out.close)
}

/// Runs every complete command in `rbuf`, owning the service meanwhile.
async fn run_batch<S: Service>(
    mut service: Box<S>,
    mut rbuf: BytesMut,
    mut out: Replies,
) -> Batch<S> {
    process_frames(&mut rbuf, &mut *service, &mut out).await;
    Batch { service, rbuf, out }
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
                service.parse_error(Verb::parse(&frame.name), &error, out);
            }
        }
    }
}
