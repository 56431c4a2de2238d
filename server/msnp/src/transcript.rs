//! Parser for the conformance transcript format (PROTOCOL.md §9), shared by this crate's tests
//! and the end-to-end tests.
//!
//! ```text
//! == conn alice_ns ==          a block of lines on connection "alice_ns"
//! C: VER 1 MSNP8 CVR0          client → server line (CRLF implied)
//! S: MSG Hotmail Hotmail <len> server → client payload command
//! S: |MIME-Version: 1.0        payload lines, joined with CRLF, no trailing CRLF
//! S: <CLOSE>                   that side closes the connection
//! # comment                    ignored
//! ```
//!
//! `<...>` marks a dynamic value. [`Command::render`] fills them in through a caller-supplied
//! function and recomputes a `<len>` byte count from the rendered payload.

use bytes::{BufMut, Bytes, BytesMut};

/// Who sends a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// `C:` client → server.
    Client,
    /// `S:` server → client.
    Server,
}

/// A command line with its optional payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The line as written, without `C: ` / `S: `.
    pub text: String,
    /// The payload (the `|` lines joined with CRLF), if any `|` lines followed.
    pub payload: Option<String>,
    /// 1-based line number of the command in the file (for messages).
    pub line_no: usize,
}

/// One entry of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A command (possibly with payload) sent by `side`.
    Command(Side, Command),
    /// `<CLOSE>`: `side` closes the connection.
    Close(Side),
}

/// The lines of one `== conn NAME ==` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The connection name (a name may recur in later blocks: same connection).
    pub conn: String,
    /// The lines in order.
    pub lines: Vec<Line>,
}

/// A whole transcript file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The blocks in chronological order.
    pub blocks: Vec<Block>,
}

/// A line of a transcript that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transcript line {line_no}: {reason}")]
pub struct TranscriptError {
    /// 1-based line number.
    pub line_no: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl Transcript {
    /// Parses the text of a transcript file.
    ///
    /// # Errors
    /// [`TranscriptError`] for a `C:`/`S:` line outside a block, a payload line without a
    /// command before it, or an unrecognised line.
    pub fn parse(text: &str) -> Result<Self, TranscriptError> {
        let mut blocks: Vec<Block> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |reason| TranscriptError { line_no, reason };
            if raw.trim().is_empty() || raw.starts_with('#') {
                continue;
            }
            if let Some(name) = raw
                .strip_prefix("== conn ")
                .and_then(|r| r.strip_suffix(" =="))
            {
                blocks.push(Block {
                    conn: name.to_owned(),
                    lines: Vec::new(),
                });
                continue;
            }
            let (side, rest) = if let Some(r) = raw.strip_prefix("C:") {
                (Side::Client, r)
            } else if let Some(r) = raw.strip_prefix("S:") {
                (Side::Server, r)
            } else {
                return Err(err("expected a block header, C:, S: or a comment"));
            };
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            let block = blocks.last_mut().ok_or(err("line outside a block"))?;
            if let Some(p) = rest.strip_prefix('|') {
                let Some(Line::Command(s, cmd)) = block.lines.last_mut() else {
                    return Err(err("payload line without a command"));
                };
                if *s != side {
                    return Err(err("payload line from the other side"));
                }
                match &mut cmd.payload {
                    Some(existing) => {
                        existing.push_str("\r\n");
                        existing.push_str(p);
                    }
                    None => cmd.payload = Some(p.to_owned()),
                }
            } else if rest == "<CLOSE>" {
                block.lines.push(Line::Close(side));
            } else {
                block.lines.push(Line::Command(
                    side,
                    Command {
                        text: rest.to_owned(),
                        payload: None,
                        line_no,
                    },
                ));
            }
        }
        Ok(Self { blocks })
    }
}

impl Block {
    /// Whether the block is an HTTP exchange (first line is a request or status line).
    #[must_use]
    pub fn is_http(&self) -> bool {
        self.lines
            .iter()
            .find_map(|l| match l {
                Line::Command(_, c) => Some(c),
                Line::Close(_) => None,
            })
            .is_some_and(|c| {
                c.text.starts_with("GET ")
                    || c.text.starts_with("POST ")
                    || c.text.starts_with("HTTP/")
            })
    }
}

/// Replaces every `<name>` in `s` by `subst(name)`.
fn fill(s: &str, subst: &mut dyn FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&subst(&rest[start + 1..start + end]));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

impl Command {
    /// Whether the line or payload contains a `<...>` dynamic value.
    #[must_use]
    pub fn is_dynamic(&self) -> bool {
        let dynamic = |s: &str| s.find('<').is_some_and(|i| s[i..].contains('>'));
        dynamic(&self.text) || self.payload.as_deref().is_some_and(dynamic)
    }

    /// The wire bytes: line + CRLF + payload, with each `<name>` replaced by `subst(name)` and a
    /// trailing `<len>` argument replaced by the rendered payload's byte length.
    pub fn render(&self, subst: &mut dyn FnMut(&str) -> String) -> Bytes {
        let payload = self.payload.as_deref().map(|p| fill(p, subst));
        let line = match (self.text.strip_suffix(" <len>"), &payload) {
            (Some(head), Some(p)) => format!("{} {}", fill(head, subst), p.len()),
            (Some(head), None) => format!("{} 0", fill(head, subst)),
            _ => fill(&self.text, subst),
        };
        let mut b =
            BytesMut::with_capacity(line.len() + 2 + payload.as_ref().map_or(0, String::len));
        b.put_slice(line.as_bytes());
        b.put_slice(b"\r\n");
        if let Some(p) = payload {
            b.put_slice(p.as_bytes());
        }
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# comment\n\n== conn a ==\nC: MSG 1 U <len>\nC: |X: <v>\nC: |\nS: <CLOSE>\n\n== conn b ==\nS: QNG\n";

    #[test]
    fn parses_blocks_payloads_and_close() {
        let t = Transcript::parse(SAMPLE).unwrap();
        assert_eq!(t.blocks.len(), 2);
        let Line::Command(Side::Client, c) = &t.blocks[0].lines[0] else {
            panic!("not a command")
        };
        assert_eq!(c.payload.as_deref(), Some("X: <v>\r\n"));
        assert!(c.is_dynamic());
        assert_eq!(t.blocks[0].lines[1], Line::Close(Side::Server));
        let rendered = c.render(&mut |n| if n == "v" { "42".into() } else { n.into() });
        assert_eq!(&rendered[..], b"MSG 1 U 7\r\nX: 42\r\n");
    }

    #[test]
    fn rejects_malformed_files() {
        assert!(Transcript::parse("C: VER 1\n").is_err());
        assert!(Transcript::parse("== conn a ==\nC: |x\n").is_err());
        assert!(Transcript::parse("== conn a ==\nhello\n").is_err());
    }
}
