//! Recording switchboard conversations into the opt-in history ([`crate::store::history`]).
//!
//! The rules:
//! - Only `text/plain` messages are recorded (the MIME head's `Content-Type`, parameters
//!   ignored). Typing (`text/x-msmsgscontrol`), invitations (`text/x-msmsgsinvite`), P2P
//!   (`application/x-msnmsgrp2p`), datacasts, emoticons, ink and everything else are not.
//! - Consent of all parties: a message is recorded only if every member in the room when it is
//!   relayed (the sender included; rung users who have not joined are not members) has the
//!   history on ([`all_consent`]). A member without it joining stops recording from the next
//!   message on; once they leave, recording resumes for the messages that follow (what was
//!   said while they were there is never recorded). Turning the setting off on the website
//!   takes effect at once for the rooms one is in (the set here is updated, and the writer
//!   checks the stored settings again). A message nobody received (alone in the room) is not
//!   recorded.
//! - Every member gets their own copy; the copies of one room make one conversation per
//!   member (keyed by a random per-room key).
//! - Never on the delivery path: [`History::offer`] hands a [`Record`] to a bounded queue with
//!   `try_send`. When the queue is full the message is not recorded, and that is counted
//!   ([`History::dropped`], `relive_history_dropped_total` on `/metrics`) and logged (the first drop and every thousandth; never the text).
//!   One background task ([`History::spawn_writer`]) writes what it finds queued, up to
//!   [`MAX_BATCH`] records per transaction.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;

use relive_msnp::types::Passport;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::history::Record;

/// Records waiting for the writer at most; beyond it messages are not recorded.
pub const QUEUE_CAPACITY: usize = 4096;

/// Most records written in one transaction.
pub const MAX_BATCH: usize = 256;

/// The history recorder: who has the history on, and the queue to the writer.
#[derive(Debug)]
pub struct History {
    enabled: RwLock<HashSet<Passport>>,
    queue: mpsc::Sender<Record>,
    receiver: Mutex<Option<mpsc::Receiver<Record>>>,
    dropped: Counter,
    written: Counter,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`History::offer`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Not a text message (or an empty one): never recorded.
    NotText,
    /// A member does not have the history on.
    NoConsent,
    /// Queued for the writer.
    Queued,
    /// The queue was full: not recorded.
    Dropped,
}

/// Whether every one of `members` has the history on (and there is at least one).
pub fn all_consent<'a>(
    members: impl IntoIterator<Item = &'a Passport>,
    enabled: impl Fn(&Passport) -> bool,
) -> bool {
    let mut any = false;
    for m in members {
        if !enabled(m) {
            return false;
        }
        any = true;
    }
    any
}

/// The text of a `text/plain` MIME message, or `None` for any other type (or no text).
#[must_use]
pub fn plain_text(payload: &[u8]) -> Option<String> {
    let split = payload.windows(4).position(|w| w == b"\r\n\r\n")?;
    let (head, body) = (&payload[..split], &payload[split + 4..]);
    let content_type = head.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"Content-Type")
            .then(|| &line[colon + 1..])
    })?;
    let mime = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if !mime.eq_ignore_ascii_case(b"text/plain") || body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(String::from_utf8_lossy(body).into_owned())
}

impl History {
    /// A recorder with nobody opted in and a queue of [`QUEUE_CAPACITY`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(QUEUE_CAPACITY)
    }

    /// A recorder whose queue holds `capacity` records.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        Self {
            enabled: RwLock::new(HashSet::new()),
            queue,
            receiver: Mutex::new(Some(receiver)),
            dropped: Counter::default(),
            written: Counter::default(),
        }
    }

    /// Replaces who has the history on (from the store, at start).
    pub fn load(&self, handles: impl IntoIterator<Item = Passport>) {
        *self.enabled.write().unwrap_or_else(PoisonError::into_inner) =
            handles.into_iter().collect();
    }

    /// `user` turned the history on or off (after the store has it).
    pub fn set_enabled(&self, user: &Passport, on: bool) {
        let mut set = self.enabled.write().unwrap_or_else(PoisonError::into_inner);
        if on {
            set.insert(user.clone());
        } else {
            set.remove(user);
        }
    }

    /// Whether `user` has the history on.
    #[must_use]
    pub fn is_enabled(&self, user: &Passport) -> bool {
        self.enabled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(user)
    }

    /// Whether anybody has the history on (if not, messages are not even parsed).
    #[must_use]
    pub fn anyone(&self) -> bool {
        !self
            .enabled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Messages not recorded because the queue was full (shared with the metrics endpoint).
    #[must_use]
    pub fn dropped(&self) -> &Counter {
        &self.dropped
    }

    /// Message rows written so far, one per owner (shared with the metrics endpoint).
    #[must_use]
    pub fn written(&self) -> &Counter {
        &self.written
    }

    /// Offers a relayed message: `text` is [`plain_text`] of its payload (`None`: not text),
    /// `members` everyone in the room now. Never blocks.
    pub fn offer(
        &self,
        room_key: i64,
        sender: &Passport,
        sender_name: &str,
        text: Option<String>,
        members: &[Passport],
    ) -> Offer {
        let Some(text) = text else {
            return Offer::NotText;
        };
        {
            let set = self.enabled.read().unwrap_or_else(PoisonError::into_inner);
            if !all_consent(members, |m| set.contains(m)) {
                return Offer::NoConsent;
            }
        }
        let mut distinct: Vec<Passport> = Vec::with_capacity(members.len());
        for m in members {
            if !distinct.contains(m) {
                distinct.push(m.clone());
            }
        }
        let record = Record {
            room_key,
            at: crate::store::now_unix(),
            sender: sender.clone(),
            sender_name: sender_name.to_owned(),
            text,
            members: distinct,
        };
        match self.queue.try_send(record) {
            Ok(()) => Offer::Queued,
            Err(_) => {
                let n = self.dropped.inc() + 1;
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(
                        dropped = n,
                        "history: writer queue full; a message was not recorded"
                    );
                }
                Offer::Dropped
            }
        }
    }

    /// Starts the writer (once; `None` if it was started before). It writes until `closing`
    /// is cancelled, then writes what is still queued and ends.
    pub fn spawn_writer(
        self: &Arc<Self>,
        store: Store,
        closing: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(tokio::spawn(
            Arc::clone(self).write_loop(receiver, store, closing),
        ))
    }

    async fn write_loop(
        self: Arc<Self>,
        mut receiver: mpsc::Receiver<Record>,
        store: Store,
        closing: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                biased;
                r = receiver.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                () = closing.cancelled() => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH
                && let Ok(r) = receiver.try_recv()
            {
                batch.push(r);
            }
            self.write(&store, batch).await;
        }
        receiver.close();
        let mut rest = Vec::new();
        while let Ok(r) = receiver.try_recv() {
            rest.push(r);
        }
        for batch in rest.chunks(MAX_BATCH) {
            self.write(&store, batch.to_vec()).await;
        }
    }

    async fn write(&self, store: &Store, batch: Vec<Record>) {
        let records = batch.len();
        match store.append_history(batch).await {
            Ok(done) => {
                self.written.inc_by(done.written as u64);
                tracing::debug!(
                    records,
                    written = done.written,
                    skipped = done.skipped,
                    pruned = done.pruned,
                    "history: batch written"
                );
            }
            Err(error) => {
                tracing::warn!(%error, records, "history: batch not written");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Passport {
        Passport::parse(s).unwrap()
    }

    const TEXT: &[u8] = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n\r\nhello";

    #[test]
    fn only_plain_text_is_text() {
        assert_eq!(plain_text(TEXT).as_deref(), Some("hello"));
        assert_eq!(
            plain_text(b"content-type:TEXT/PLAIN\r\n\r\nline 1\r\nline 2").as_deref(),
            Some("line 1\r\nline 2")
        );
        for other in [
            &b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: a@b.c\r\n\r\n\r\n"[..],
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nInvitation-Command: INVITE\r\n",
            b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b.c\r\n\r\n\0\0\0\0",
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n",
            b"MIME-Version: 1.0\r\nContent-Type: text/x-mms-emoticon\r\n\r\n:) abc\t",
            b"MIME-Version: 1.0\r\nContent-Type: image/gif\r\n\r\nGIF89a",
            b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n \r\n",
            b"no head at all",
            b"MIME-Version: 1.0\r\n\r\nno type",
        ] {
            assert_eq!(plain_text(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn consent_needs_every_member() {
        let on: HashSet<Passport> = [p("a@x.com"), p("b@x.com")].into();
        let has = |m: &Passport| on.contains(m);
        assert!(all_consent(&[p("a@x.com"), p("b@x.com")], has));
        assert!(!all_consent(&[p("a@x.com"), p("c@x.com")], has));
        assert!(!all_consent(
            &[p("c@x.com"), p("a@x.com"), p("b@x.com")],
            has
        ));
        assert!(!all_consent(&[], has), "an empty room consents to nothing");
    }

    #[test]
    fn offers_follow_consent_and_never_block() {
        let h = History::with_capacity(1);
        let (a, b, c) = (p("a@x.com"), p("b@x.com"), p("c@x.com"));
        h.load([a.clone(), b.clone()]);
        let members = [a.clone(), b.clone()];
        assert_eq!(
            h.offer(1, &a, "A", plain_text(b"x\r\n\r\n"), &members),
            Offer::NotText
        );
        assert_eq!(
            h.offer(
                1,
                &a,
                "A",
                plain_text(TEXT),
                &[a.clone(), b.clone(), c.clone()]
            ),
            Offer::NoConsent
        );
        assert_eq!(
            h.offer(1, &a, "A", plain_text(TEXT), &members),
            Offer::Queued
        );
        // Queue of one, no writer: the next one is dropped and counted, not waited for.
        assert_eq!(
            h.offer(1, &a, "A", plain_text(TEXT), &members),
            Offer::Dropped
        );
        assert_eq!(h.dropped().get(), 1);
        // c turns it on: consent; b turns it off: none.
        h.set_enabled(&c, true);
        h.set_enabled(&b, false);
        assert!(h.is_enabled(&c) && !h.is_enabled(&b));
        assert_eq!(
            h.offer(1, &a, "A", plain_text(TEXT), &[a.clone(), b]),
            Offer::NoConsent
        );
    }
}
