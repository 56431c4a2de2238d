//! Test helpers shared by the service tests: a context over a real temp-file store, accounts
//! with tokens, and a harness that feeds text lines to a [`Service`] and renders its replies
//! and outbox events back to text (no sockets); and a capture of this thread's log output.

use std::net::SocketAddr;
use std::path::Path;

use bytes::BytesMut;
use md5::{Digest as _, Md5};
use relive_msnp::client::ClientCommand;
use relive_msnp::frame::{Direction, decode};
use relive_msnp::types::Passport;
use relive_msnp::verb::Verb;

use crate::Context;
use crate::config::Config;
use crate::hub::{Event, Outbox};
use crate::net::conn::{Replies, Service};
use crate::notification::NsService;
use crate::secret::Secret;
use crate::store::test_support::file_store;
use crate::switchboard::SbService;

/// A context over a fresh store in `dir`, with `edit` applied to the default config.
pub(crate) async fn context(dir: &Path, edit: impl FnOnce(&mut Config)) -> Context {
    let mut config = Config::default();
    edit(&mut config);
    let settings = config.validate(dir.to_path_buf()).unwrap();
    Context::new(settings, file_store(dir).await).unwrap()
}

/// Creates `handle` with friendly name `name`; returns its access token.
pub(crate) async fn account(ctx: &Context, handle: &str, name: &str) -> String {
    let account = ctx
        .store
        .create_account(
            &Passport::parse(handle).unwrap(),
            name,
            Secret::new("password".to_owned()),
        )
        .await
        .unwrap();
    ctx.store
        .new_token(account.id, "test")
        .await
        .unwrap()
        .token
        .expose()
        .to_owned()
}

/// `md5hex(challenge ‖ secret)`.
pub(crate) fn md5hex(challenge: &str, secret: &str) -> String {
    hex::encode(Md5::digest(format!("{challenge}{secret}").as_bytes()))
}

/// A service with its outbox receiver; lines in, lines out.
pub(crate) struct Harness<S> {
    pub(crate) svc: S,
    rx: crate::hub::Inbox,
    closed: bool,
}

fn outbox(ctx: &Context) -> (Outbox, crate::hub::Inbox) {
    ctx.outboxes.create()
}

impl Harness<NsService> {
    /// An NS connection from 192.0.2.1:51000.
    pub(crate) fn ns(ctx: &Context) -> Self {
        Self::ns_from(ctx, "192.0.2.1:51000".parse().unwrap())
    }

    /// An NS connection from `peer`.
    pub(crate) fn ns_from(ctx: &Context, peer: SocketAddr) -> Self {
        let (outbox, rx) = outbox(ctx);
        Self::wrap(
            NsService::new(std::sync::Arc::new(ctx.clone()), peer, outbox),
            rx,
        )
    }

    /// Logs in over MD5 as `handle` with `token` in dialect `msnp` (e.g. `"MSNP7"`), then
    /// `SYN 0` and `CHG NLN`; returns the connection with nothing pending.
    pub(crate) async fn login(ctx: &Context, msnp: &str, handle: &str, token: &str) -> Self {
        let mut c = Self::ns(ctx);
        c.send(&format!("VER 1 {msnp} CVR0")).await;
        c.send("INF 2").await;
        let challenge = c.challenge(3, handle).await;
        let lines = c
            .send(&format!("USR 4 MD5 S {}", md5hex(&challenge, token)))
            .await;
        assert!(lines[0].starts_with("USR 4 OK "), "{lines:?}");
        c.send("SYN 5 0").await;
        c.send("CHG 6 NLN").await;
        c.events();
        c
    }

    /// Sends `USR trid MD5 I handle` and returns the challenge.
    pub(crate) async fn challenge(&mut self, trid: u32, handle: &str) -> String {
        let lines = self.send(&format!("USR {trid} MD5 I {handle}")).await;
        let prefix = format!("USR {trid} MD5 S ");
        lines[0].strip_prefix(&prefix).unwrap().to_owned()
    }
}

impl Harness<SbService> {
    /// A fresh SB connection.
    pub(crate) fn sb(ctx: &Context) -> Self {
        let (outbox, rx) = outbox(ctx);
        Self::wrap(SbService::new(std::sync::Arc::new(ctx.clone()), outbox), rx)
    }
}

impl<S: Service> Harness<S> {
    fn wrap(svc: S, rx: crate::hub::Inbox) -> Self {
        Self {
            svc,
            rx,
            closed: false,
        }
    }

    /// Whether a reply batch asked to close (or an event kicked the connection).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Feeds raw client bytes (one or more whole frames) and returns the reply lines.
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) -> Vec<String> {
        assert!(!self.closed, "connection already closed");
        let mut buf = BytesMut::from(bytes);
        let mut out = Replies::new();
        while !out.is_closing() {
            let Some(frame) = decode(&mut buf, Direction::ClientToServer).unwrap() else {
                break;
            };
            match ClientCommand::from_frame(&frame, self.svc.role(), &self.svc.caps()) {
                Ok(cmd) => self.svc.handle(cmd, &mut out).await,
                Err(e) => self.svc.parse_error(Verb::parse(&frame.name), &e, &mut out),
            }
        }
        self.closed = out.is_closing();
        self.render(out)
    }

    /// Sends one line (CRLF added).
    pub(crate) async fn send(&mut self, line: &str) -> Vec<String> {
        self.send_bytes(format!("{line}\r\n").as_bytes()).await
    }

    /// Sends `MSG`-style payload command `head` (without length) with `payload`.
    pub(crate) async fn send_payload(&mut self, head: &str, payload: &str) -> Vec<String> {
        let bytes = format!("{head} {}\r\n{payload}", payload.len());
        self.send_bytes(bytes.as_bytes()).await
    }

    /// Everything other connections queued for this one, rendered.
    pub(crate) fn events(&mut self) -> Vec<String> {
        let mut out = Replies::new();
        while let Ok(event) = self.rx.try_recv() {
            match event {
                Event::Send(m) => out.push(m),
                Event::Broadcast(m) => out.push(m.message().clone()),
                Event::Kick(reason) => {
                    out.push(relive_msnp::server::ServerMessage::Out {
                        reason: Some(reason),
                    });
                    out.close();
                }
                Event::Shutdown => self.svc.shutdown(&mut out),
                Event::TooSlow => out.close(),
            }
        }
        if out.is_closing() {
            self.closed = true;
        }
        self.render(out)
    }

    /// Runs the service's timeout handler as of `now`.
    pub(crate) fn timeout(&mut self, now: tokio::time::Instant) -> Vec<String> {
        let mut out = Replies::new();
        self.svc.timeout(now, &mut out);
        self.closed |= out.is_closing();
        self.render(out)
    }

    /// Runs the shutdown handler.
    pub(crate) fn shutdown(&mut self) -> Vec<String> {
        let mut out = Replies::new();
        self.svc.shutdown(&mut out);
        self.closed |= out.is_closing();
        self.render(out)
    }

    /// Ends the connection as the driver would.
    pub(crate) fn finish(&mut self) {
        self.svc.finish();
        self.closed = true;
    }

    /// Encodes messages in the service's dialect and splits them into lines; a payload follows
    /// its command as one extra element (never split).
    fn render(&self, mut out: Replies) -> Vec<String> {
        let caps = self.svc.caps();
        let mut lines = Vec::new();
        for m in out.take() {
            let frame = m.to_frame(&caps);
            let mut b = BytesMut::new();
            relive_msnp::frame::Frame::new(frame.name.clone(), frame.args.clone()).encode(&mut b);
            let text = String::from_utf8(b.to_vec()).unwrap();
            lines.push(text.trim_end_matches("\r\n").to_owned());
            if let Some(p) = frame.payload {
                lines.push(String::from_utf8_lossy(&p).into_owned());
            }
        }
        lines
    }
}

/// Collects the log output of the current thread (every level) while alive, formatted twice:
/// as the text `serve` writes by default and as `--log-format json` writes it.
pub(crate) struct LogCapture {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    json: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

/// One writer into a [`LogCapture`].
#[derive(Clone)]
struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Starts capturing on this thread (a `#[tokio::test]` runs its tasks on it).
    pub(crate) fn start() -> Self {
        use tracing_subscriber::layer::SubscriberExt as _;
        let buf = std::sync::Arc::default();
        let json = std::sync::Arc::default();
        let (text_writer, json_writer) = (
            CaptureWriter(std::sync::Arc::clone(&buf)),
            CaptureWriter(std::sync::Arc::clone(&json)),
        );
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || text_writer.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(move || json_writer.clone()),
            );
        let guard = tracing::subscriber::set_default(subscriber);
        // Other tests log the same events at the same time on threads without a subscriber.
        // While only one dispatcher exists, tracing computes a callsite's cached interest from
        // the *registering thread's* default, so a callsite first hit by another test during
        // this one was cached as "never" and this test missed its line (seen in ~1 of 5 full
        // runs). With a second live dispatcher every callsite's interest is computed from all
        // of them ("sometimes": each event then asks its own thread's subscriber).
        let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        tracing::callsite::rebuild_interest_cache();
        Self {
            buf,
            json,
            _guard: guard,
            _second: second,
        }
    }

    /// Everything logged so far, as text.
    pub(crate) fn text(&self) -> String {
        Self::contents(&self.buf)
    }

    /// Everything logged so far, as JSON lines (`--log-format json`).
    pub(crate) fn json(&self) -> String {
        Self::contents(&self.json)
    }

    fn contents(buf: &std::sync::Mutex<Vec<u8>>) -> String {
        let bytes = buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
