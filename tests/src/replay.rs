//! The transcript runner: replays a conformance transcript (PROTOCOL.md §9, parsed by
//! `relive_msnp::transcript`) against a [`TestStack`] over real sockets.
//!
//! For each block in order, on the named connection (connected on first use; `*_sb` names go
//! to the switchboard, every other name to the NS):
//! - `C:` lines are sent after filling in dynamic values: `<md5hex(salt+password)>` from the
//!   last captured `<salt>` and the access token of the handle this connection named in its
//!   `USR ... I`; `<qry_answer>` from the last captured `<challenge>`; `<len>` from the payload;
//!   any other `<name>` from earlier captures or [`Replay::var`].
//! - `S:` lines must arrive in order. Literal lines (and payloads) must match byte for byte,
//!   CRLF included; a `<name>` matches one non-empty field (no spaces on command lines) and is
//!   captured. A name captured twice must have the same value both times unless it is
//!   volatile ([`VOLATILE`]); a payload that is exactly one `<name>` matches any payload.
//! - `<CLOSE>` from the server: the connection must close with nothing more sent; from the
//!   client: the runner closes it.
//!
//! HTTP blocks (a request line first) are sent over a new TLS 1.2 connection to the stack's
//! HTTPS listener; the status line and each header the transcript shows (exact name) must match.
//!
//! Alternatives a transcript's comments allow are registered per line with
//! [`Replay::alternative`]; tests edit blocks where a comment allows a different flow.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow, bail, ensure};
use relive_msnp::auth::{md5_response, qry_response};
use relive_msnp::client::Role;
use relive_msnp::transcript::{Block, Command, Line, Side, Transcript};

use crate::client::{MsnpClient, RawFrame};
use crate::stack::TestStack;

/// Placeholders whose value may differ at each occurrence (fresh per message or attempt).
pub const VOLATILE: &[&str] = &[
    "salt",
    "len",
    "unix_seconds",
    "u32",
    "opaque",
    "profile",
    "download_url",
    "info_url",
    "challenge",
    // Opaque `USR TWN S` parameters; `ct=<unix>` and `tpf=<32hex>` are fresh per attempt.
    "twn_params",
];

/// The client id whose key answers `<qry_answer>` (the MSN 4.x/5.0 pair, PROTOCOL.md §2.5).
pub const QRY_CLIENT_ID: &str = "msmsgs@msnmsgr.com";

/// Reads a transcript from `tests/fixtures/transcripts/`.
///
/// # Errors
///
/// The file is missing or malformed.
pub fn load(file: &str) -> anyhow::Result<Transcript> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/transcripts")
        .join(file);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(Transcript::parse(&text)?)
}

/// A server line the transcript expects (for editing transcripts in tests).
#[must_use]
pub fn server_line(text: &str) -> Line {
    Line::Command(
        Side::Server,
        Command {
            text: text.to_owned(),
            payload: None,
            line_no: 0,
        },
    )
}

struct Conn {
    client: MsnpClient,
    handle: Option<String>,
}

/// Replays transcripts against one stack; keeps connections and captures between runs.
pub struct Replay<'a> {
    stack: &'a TestStack,
    file: String,
    conns: HashMap<String, Conn>,
    vars: HashMap<String, String>,
    alternatives: HashMap<String, Vec<String>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Seg<'t> {
    Lit(&'t str),
    Var(&'t str),
}

fn segments(template: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        if start > 0 {
            out.push(Seg::Lit(&rest[..start]));
        }
        out.push(Seg::Var(&rest[start + 1..start + len]));
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        out.push(Seg::Lit(rest));
    }
    out
}

/// Matches `actual` against `template`; returns the captures, or `None` on a mismatch.
/// `spaces` allows spaces inside captured values (payload lines).
fn match_template(template: &str, actual: &str, spaces: bool) -> Option<Vec<(String, String)>> {
    let segs = segments(template);
    let mut caps = Vec::new();
    let mut rest = actual;
    let mut i = 0;
    while i < segs.len() {
        match segs[i] {
            Seg::Lit(l) => rest = rest.strip_prefix(l)?,
            Seg::Var(name) => {
                let end = match segs.get(i + 1) {
                    Some(Seg::Lit(next)) => {
                        // At least one character, then the first occurrence of the literal.
                        let first = rest.chars().next()?.len_utf8();
                        first + rest[first..].find(next)?
                    }
                    Some(Seg::Var(_)) => return None,
                    None => rest.len(),
                };
                let value = &rest[..end];
                if value.is_empty() || (!spaces && value.contains(' ')) {
                    return None;
                }
                caps.push((name.to_owned(), value.to_owned()));
                rest = &rest[end..];
            }
        }
        i += 1;
    }
    rest.is_empty().then_some(caps)
}

/// Matches a received frame (line and payload) against a transcript command.
fn match_frame(template: &Command, text: &str, raw: &RawFrame) -> Option<Vec<(String, String)>> {
    if !raw.ends_in_crlf() {
        return None;
    }
    let mut caps = match_template(text, &raw.line(), false)?;
    match (&template.payload, raw.payload()) {
        (None, None) => {}
        (Some(want), Some(got)) => {
            let got = std::str::from_utf8(got).ok()?;
            let whole = segments(want);
            if let [Seg::Var(_)] = whole.as_slice() {
                // `|<profile>`: any payload.
            } else {
                let (w, g): (Vec<_>, Vec<_>) =
                    (want.split("\r\n").collect(), got.split("\r\n").collect());
                if w.len() != g.len() {
                    return None;
                }
                for (w, g) in w.iter().zip(g) {
                    caps.extend(match_template(w, g, true)?);
                }
            }
        }
        _ => return None,
    }
    Some(caps)
}

impl<'a> Replay<'a> {
    /// A runner for transcript `file` (the name is used in messages) on `stack`.
    #[must_use]
    pub fn new(stack: &'a TestStack, file: &str) -> Self {
        Self {
            stack,
            file: file.to_owned(),
            conns: HashMap::new(),
            vars: HashMap::new(),
            alternatives: HashMap::new(),
        }
    }

    /// Registers an already set-up connection (e.g. a user logged in before the transcript
    /// starts) under the transcript's connection `name`, logged in as `handle`.
    pub fn conn(&mut self, name: &str, handle: &str, client: MsnpClient) {
        self.conns.insert(
            name.to_owned(),
            Conn {
                client,
                handle: Some(handle.to_owned()),
            },
        );
    }

    /// Sets a placeholder value before the run (e.g. `<v>` = a cached list version).
    pub fn var(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_owned(), value.into());
    }

    /// A captured or preset placeholder value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Accepts `alt` wherever the transcript expects the server line `primary`.
    pub fn alternative(&mut self, primary: &str, alt: &str) {
        self.alternatives
            .entry(primary.to_owned())
            .or_default()
            .push(alt.to_owned());
    }

    /// Takes a connection out of the runner (to continue with typed commands).
    #[must_use]
    pub fn take(&mut self, name: &str) -> Option<MsnpClient> {
        self.conns.remove(name).map(|c| c.client)
    }

    async fn connection(&mut self, name: &str) -> anyhow::Result<&mut Conn> {
        if !self.conns.contains_key(name) {
            let (addr, role) = if name.ends_with("_sb") || name.contains("_sb") {
                (self.stack.sb, Role::Switchboard)
            } else {
                (self.stack.ns, Role::Notification)
            };
            let client = MsnpClient::connect(addr, role, name).await?;
            self.conns.insert(
                name.to_owned(),
                Conn {
                    client,
                    handle: None,
                },
            );
        }
        self.conns
            .get_mut(name)
            .ok_or_else(|| anyhow!("connection {name} vanished"))
    }

    /// Replays every block of `t` in order.
    ///
    /// # Errors
    ///
    /// The first difference between the server's behaviour and the transcript, with the
    /// transcript's line number.
    pub async fn run(&mut self, t: &Transcript) -> anyhow::Result<()> {
        for block in &t.blocks {
            if block.is_http() {
                let at = format!("{} ({}) HTTP exchange", self.file, block.conn);
                self.http_exchange(block).await.context(at)?;
                continue;
            }
            for line in &block.lines {
                self.step(&block.conn, line).await?;
            }
        }
        Ok(())
    }

    /// One HTTP block: the client lines (request line, headers, empty line) are rendered and
    /// sent over a new TLS 1.2 connection to the stack's HTTPS listener; the response's status
    /// line must match the first server line, and every header line the transcript shows must
    /// be present with exactly that name (case included) and a matching value.
    async fn http_exchange(&mut self, block: &Block) -> anyhow::Result<()> {
        let mut request = Vec::new();
        let mut expected = Vec::new();
        for line in &block.lines {
            match line {
                Line::Command(Side::Client, cmd) => {
                    ensure!(expected.is_empty(), "client line after the response");
                    let mut missing = Vec::new();
                    let bytes = cmd.render(&mut |name: &str| {
                        self.vars.get(name).cloned().unwrap_or_else(|| {
                            missing.push(name.to_owned());
                            String::new()
                        })
                    });
                    ensure!(missing.is_empty(), "no value for {missing:?}");
                    request.extend_from_slice(&bytes);
                }
                Line::Command(Side::Server, cmd) => expected.push(cmd),
                Line::Close(_) => bail!("<CLOSE> inside an HTTP block"),
            }
        }
        let res = self.stack.https_request_bytes(&request).await?;
        let (status, headers) = expected
            .split_first()
            .ok_or_else(|| anyhow!("no response in the transcript"))?;
        let mut caps = match_template(&status.text, &res.status_line, true)
            .ok_or_else(|| anyhow!("line {}: status {:?}", status.line_no, res.status_line))?;
        for want in headers.iter().filter(|h| !h.text.is_empty()) {
            let (name, value) = want
                .text
                .split_once(": ")
                .ok_or_else(|| anyhow!("line {}: not a header", want.line_no))?;
            let got = res.header(name).ok_or_else(|| {
                anyhow!(
                    "line {}: no header named exactly {name:?} in {:?}",
                    want.line_no,
                    res.headers
                )
            })?;
            caps.extend(
                match_template(value, got, true).ok_or_else(|| {
                    anyhow!("line {}: {name}: {got:?} does not match", want.line_no)
                })?,
            );
        }
        self.capture(caps)
    }

    fn capture(&mut self, caps: Vec<(String, String)>) -> anyhow::Result<()> {
        for (name, value) in caps {
            match self.vars.get(&name) {
                Some(old) if *old != value && !VOLATILE.contains(&name.as_str()) => {
                    bail!("<{name}> was {old:?} earlier, now {value:?}")
                }
                _ => {
                    self.vars.insert(name, value);
                }
            }
        }
        Ok(())
    }

    async fn step(&mut self, conn: &str, line: &Line) -> anyhow::Result<()> {
        let file = self.file.clone();
        match line {
            Line::Command(Side::Client, cmd) => {
                let at = format!("{file}:{} ({conn}) C: {}", cmd.line_no, cmd.text);
                self.send(conn, cmd).await.context(at)
            }
            Line::Command(Side::Server, cmd) => {
                let at = format!("{file}:{} ({conn}) S: {}", cmd.line_no, cmd.text);
                self.receive(conn, cmd).await.context(at)
            }
            Line::Close(Side::Server) => {
                let c = self.connection(conn).await?;
                c.client
                    .expect_closed()
                    .await
                    .with_context(|| format!("{file} ({conn}) S: <CLOSE>"))?;
                self.conns.remove(conn);
                Ok(())
            }
            Line::Close(Side::Client) => {
                if let Some(mut c) = self.conns.remove(conn) {
                    c.client.close_write().await?;
                }
                Ok(())
            }
        }
    }

    async fn send(&mut self, conn: &str, cmd: &Command) -> anyhow::Result<()> {
        // Remember who this connection logs in as.
        let words: Vec<&str> = cmd.text.split(' ').collect();
        let logs_in_as = match words.as_slice() {
            ["USR", _, _, "I", handle] | ["USR", _, handle, _] | ["ANS", _, handle, ..] => {
                Some((*handle).to_owned())
            }
            _ => None,
        };
        let vars = self.vars.clone();
        let handle = self
            .conns
            .get(conn)
            .and_then(|c| c.handle.clone())
            .or_else(|| logs_in_as.clone());
        let stack = self.stack;
        let mut missing = Vec::new();
        let bytes = cmd.render(&mut |name: &str| {
            let value = match name {
                "md5hex(salt+password)" => match (vars.get("salt"), &handle) {
                    (Some(salt), Some(h)) => Some(md5_response(salt, stack.token(h))),
                    _ => None,
                },
                "qry_answer" => vars
                    .get("challenge")
                    .and_then(|c| qry_response(c, QRY_CLIENT_ID)),
                other => vars.get(other).cloned(),
            };
            value.unwrap_or_else(|| {
                missing.push(name.to_owned());
                String::new()
            })
        });
        ensure!(missing.is_empty(), "no value for {missing:?}");
        let c = self.connection(conn).await?;
        if logs_in_as.is_some() {
            c.handle = logs_in_as;
        }
        c.client.send_raw(&bytes).await
    }

    async fn receive(&mut self, conn: &str, cmd: &Command) -> anyhow::Result<()> {
        let mut templates = vec![cmd.text.clone()];
        templates.extend(
            self.alternatives
                .get(&cmd.text)
                .cloned()
                .unwrap_or_default(),
        );
        let c = self.connection(conn).await?;
        let raw = c.client.recv_raw().await?;
        let Some(caps) = templates.iter().find_map(|t| match_frame(cmd, t, &raw)) else {
            bail!(
                "got {:?}{}",
                String::from_utf8_lossy(&raw.bytes[..raw.bytes.len().min(600)]),
                if templates.len() > 1 {
                    format!(" (accepted: {templates:?})")
                } else {
                    String::new()
                }
            );
        };
        self.capture(caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_fields() {
        let caps = match_template(
            "XFR 20 SB <sb_ip>:<sb_port> CKI <cookie_a>",
            "XFR 20 SB 127.0.0.1:4242 CKI 17.99",
            false,
        )
        .unwrap();
        assert_eq!(
            caps,
            vec![
                ("sb_ip".into(), "127.0.0.1".into()),
                ("sb_port".into(), "4242".into()),
                ("cookie_a".into(), "17.99".into())
            ]
        );
        assert!(match_template("SYN 8 <v>", "SYN 8 1 2", false).is_none());
        assert!(match_template("SYN 8 <v>", "SYN 8 ", false).is_none());
        assert!(match_template("LoginTime: <t>", "LoginTime: 1 2", true).is_some());
        assert!(match_template("CHG 9 NLN", "CHG 9 NLN ", false).is_none());
    }
}
