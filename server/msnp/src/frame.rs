//! Line and payload framing: the only code that knows about line ends and byte counts.
//!
//! ```text
//! NAME arg1 arg2 ... argN\r\n               a plain command
//! NAME arg1 ... <len>\r\n<len raw bytes>    a payload command (last argument = byte count)
//! ```
//!
//! [`decode`] is incremental: it returns `Ok(None)` and consumes nothing until a whole frame is
//! buffered, so any split of the byte stream yields the same frames. Which commands carry a
//! payload depends on the [`Direction`] (PROTOCOL.md §1.4). All limits are checked before any
//! buffer is allocated for a claimed size, so a peer cannot make us buffer more than
//! [`MAX_LINE_BYTES`] plus the payload limit of one command.
//!
//! Line ends: CRLF or a bare LF (historic servers accepted both); a CR anywhere else in a line
//! is a [`FrameError::ControlChar`]. Empty lines are skipped. Arguments are separated by runs of
//! spaces; [`Frame::encode`] writes single spaces and CRLF, so a canonical line (single spaces,
//! CRLF) re-encodes byte-identically.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FrameError;
use crate::verb::Verb;

/// Maximum command line length in bytes, including the line terminator. A buffer holding this
/// many bytes without a newline is an error, so a peer cannot make us buffer forever.
pub const MAX_LINE_BYTES: usize = 4096;
/// Maximum number of arguments after the command name.
pub const MAX_ARGS: usize = 64;
/// Switchboard `MSG` payload limit, client to server (PROTOCOL.md §1.5: 1664 allowed, 1665 not).
pub const MAX_CLIENT_MSG_BYTES: usize = 1664;
/// `QRY` payload limit: the answer is 32 hex digits; a little slack for odd clients.
pub const MAX_QRY_BYTES: usize = 64;
/// `SDC` / `PAG` payload limit (invitation e-mail text, pager message).
pub const MAX_CLIENT_TEXT_BYTES: usize = 4096;
/// `UUX` (MSNP11 personal message XML) and `UUN`/`UUM` payload limit.
pub const MAX_CLIENT_XML_BYTES: usize = 8192;
/// `ADL`/`RML`/`FQY` (MSNP13+ contact list XML) payload limit.
pub const MAX_CLIENT_LIST_XML_BYTES: usize = 32 * 1024;
/// Limit for every server-to-client payload (decoded only by test clients).
pub const MAX_SERVER_PAYLOAD_BYTES: usize = 64 * 1024;

/// Who sent the bytes being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server (what the server decodes).
    ClientToServer,
    /// Server to client (what a test client decodes).
    ServerToClient,
}

/// The payload byte limit for `name` sent in `dir`, or `None` if it carries no payload.
///
/// Client → server: [`Verb::payload_limit`], the one table of client payload commands. Server →
/// client: `MSG`, `NOT`, `IPG`, `UBX`, `GCF` and `UBN` carry up to [`MAX_SERVER_PAYLOAD_BYTES`]
/// (decoded only by test clients).
#[must_use]
pub fn payload_limit(name: &str, dir: Direction) -> Option<usize> {
    match dir {
        Direction::ClientToServer => Verb::parse(name).and_then(Verb::payload_limit),
        Direction::ServerToClient => match name {
            "MSG" | "NOT" | "IPG" | "UBX" | "GCF" | "UBN" => Some(MAX_SERVER_PAYLOAD_BYTES),
            _ => None,
        },
    }
}

/// One command as it appeared on the wire.
///
/// For payload commands the last element of `args` is the byte-count token exactly as received;
/// [`Frame::with_payload`] builds it from the payload so it cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command name: three upper-case letters, or three digits for an error reply.
    pub name: String,
    /// The arguments after the name (usually starting with the transaction id).
    pub args: Vec<String>,
    /// The raw payload of a payload command.
    pub payload: Option<Bytes>,
}

impl Frame {
    /// A frame without payload.
    #[must_use]
    pub fn new(name: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            name: name.into(),
            args,
            payload: None,
        }
    }

    /// A payload frame; the byte count is appended to `args`.
    #[must_use]
    pub fn with_payload(name: impl Into<String>, mut args: Vec<String>, payload: Bytes) -> Self {
        args.push(payload.len().to_string());
        Self {
            name: name.into(),
            args,
            payload: Some(payload),
        }
    }

    /// The arguments without the trailing byte count of a payload frame.
    #[must_use]
    pub fn args_before_payload(&self) -> &[String] {
        match (&self.payload, self.args.split_last()) {
            (Some(_), Some((_, rest))) => rest,
            _ => &self.args,
        }
    }

    /// Writes the frame: name and arguments separated by single spaces, CRLF, then the payload.
    pub fn encode(&self, dst: &mut BytesMut) {
        let payload_len = self.payload.as_ref().map_or(0, Bytes::len);
        let line_len = self.name.len() + self.args.iter().map(|a| a.len() + 1).sum::<usize>() + 2;
        dst.reserve(line_len + payload_len);
        dst.put_slice(self.name.as_bytes());
        for a in &self.args {
            dst.put_u8(b' ');
            dst.put_slice(a.as_bytes());
        }
        dst.put_slice(b"\r\n");
        if let Some(p) = &self.payload {
            dst.put_slice(p);
        }
    }

    /// The encoded bytes (convenience for tests and logs of non-secret frames).
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

/// Appends `x` as an argument if present (encoders' helper for optional trailing fields).
pub(crate) fn push_opt<T: std::fmt::Display>(v: &mut Vec<String>, x: Option<T>) {
    if let Some(x) = x {
        v.push(x.to_string());
    }
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, consuming nothing (except skipped empty
/// lines). On success the frame's bytes are removed from `buf`.
///
/// # Errors
/// A [`FrameError`] when the stream violates the grammar or a limit; the connection should be
/// closed since the stream cannot be resynchronised.
pub fn decode(buf: &mut BytesMut, dir: Direction) -> Result<Option<Frame>, FrameError> {
    loop {
        let window = &buf[..buf.len().min(MAX_LINE_BYTES)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if buf.len() >= MAX_LINE_BYTES {
                return Err(FrameError::LineTooLong {
                    limit: MAX_LINE_BYTES,
                });
            }
            return Ok(None);
        };
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            buf.advance(nl + 1);
            continue;
        }
        let (name, args) = tokenize(line)?;
        let mut payload_len = 0usize;
        let limit = payload_limit(&name, dir);
        if let Some(limit) = limit {
            let Some(last) = args.last() else {
                return Err(FrameError::MissingLength { command: name });
            };
            if last.is_empty() || last.len() > 20 || !last.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FrameError::BadLength { command: name });
            }
            let claimed: u64 = last.parse().map_err(|_| FrameError::BadLength {
                command: name.clone(),
            })?;
            payload_len = usize::try_from(claimed)
                .ok()
                .filter(|&n| n <= limit)
                .ok_or(FrameError::PayloadTooLarge {
                    command: name.clone(),
                    claimed,
                    limit,
                })?;
        }
        let total = nl + 1 + payload_len;
        let has_payload = limit.is_some();
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame_bytes = buf.split_to(total);
        frame_bytes.advance(nl + 1);
        let payload = has_payload.then(|| frame_bytes.freeze());
        return Ok(Some(Frame {
            name,
            args,
            payload,
        }));
    }
}

/// Splits a command line (without terminator) into a validated name and arguments.
fn tokenize(line: &[u8]) -> Result<(String, Vec<String>), FrameError> {
    if let Some(&byte) = line.iter().find(|&&b| b < 0x20 || b == 0x7f) {
        return Err(FrameError::ControlChar { byte });
    }
    let text = std::str::from_utf8(line).map_err(|_| FrameError::NotUtf8)?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let name = words.next().ok_or(FrameError::BadCommandName)?;
    if name.len() != 3
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(FrameError::BadCommandName);
    }
    let mut args = Vec::new();
    for w in words {
        if args.len() == MAX_ARGS {
            return Err(FrameError::TooManyArgs { limit: MAX_ARGS });
        }
        args.push(w.to_owned());
    }
    Ok((name.to_owned(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], dir: Direction) -> Result<Option<Frame>, FrameError> {
        decode(&mut BytesMut::from(bytes), dir)
    }

    #[test]
    fn plain_and_payload_frames() {
        let f = dec(b"VER 1 MSNP8 CVR0\r\n", Direction::ClientToServer)
            .unwrap()
            .unwrap();
        assert_eq!(
            f,
            Frame::new("VER", vec!["1".into(), "MSNP8".into(), "CVR0".into()])
        );
        let mut buf = BytesMut::from(&b"MSG 4 A 5\r\nhello QNG\r\n"[..]);
        let f = decode(&mut buf, Direction::ClientToServer)
            .unwrap()
            .unwrap();
        assert_eq!(f.payload.as_deref(), Some(&b"hello"[..]));
        assert_eq!(f.args_before_payload(), ["4", "A"]);
        assert_eq!(f.to_bytes(), &b"MSG 4 A 5\r\nhello"[..]);
        assert_eq!(&buf[..], b" QNG\r\n");
    }

    #[test]
    fn incomplete_consumes_nothing() {
        for input in [&b"VER 1 MSNP8"[..], b"MSG 4 A 5\r\nhel", b"MSG 4 A 5"] {
            let mut buf = BytesMut::from(input);
            assert_eq!(decode(&mut buf, Direction::ClientToServer), Ok(None));
            assert_eq!(&buf[..], input);
        }
    }

    #[test]
    fn bare_lf_accepted_bare_cr_rejected_empty_lines_skipped() {
        let f = dec(b"\r\n\nPNG\n", Direction::ClientToServer)
            .unwrap()
            .unwrap();
        assert_eq!(f.name, "PNG");
        assert_eq!(
            dec(b"PNG\rX\r\n", Direction::ClientToServer),
            Err(FrameError::ControlChar { byte: b'\r' })
        );
    }

    #[test]
    fn client_msg_limit_is_1664() {
        let mut ok = b"MSG 1 N 1664\r\n".to_vec();
        ok.extend(std::iter::repeat_n(b'x', 1664));
        assert!(dec(&ok, Direction::ClientToServer).unwrap().is_some());
        // Rejected from the header alone, before any payload byte arrives.
        assert!(matches!(
            dec(b"MSG 1 N 1665\r\n", Direction::ClientToServer),
            Err(FrameError::PayloadTooLarge {
                claimed: 1665,
                limit: 1664,
                ..
            })
        ));
        assert!(matches!(
            dec(b"MSG 1 N 10000000\r\n", Direction::ClientToServer),
            Err(FrameError::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            dec(
                b"MSG 1 N 99999999999999999999999\r\n",
                Direction::ClientToServer
            ),
            Err(FrameError::BadLength { .. })
        ));
        // The server side may send bigger messages.
        assert_eq!(
            dec(b"MSG a b 1665\r\n", Direction::ServerToClient),
            Ok(None)
        );
    }

    #[test]
    fn limits_and_bad_lines() {
        let long = vec![b'A'; MAX_LINE_BYTES];
        assert_eq!(
            dec(&long, Direction::ClientToServer),
            Err(FrameError::LineTooLong {
                limit: MAX_LINE_BYTES
            })
        );
        let just = [vec![b'A'; MAX_LINE_BYTES - 1]].concat();
        assert_eq!(dec(&just, Direction::ClientToServer), Ok(None));
        let many = format!("FND{}\r\n", " x".repeat(MAX_ARGS + 1));
        assert_eq!(
            dec(many.as_bytes(), Direction::ClientToServer),
            Err(FrameError::TooManyArgs { limit: MAX_ARGS })
        );
        assert_eq!(
            dec(b"MSG 1 A x\r\n", Direction::ClientToServer).unwrap_err(),
            FrameError::BadLength {
                command: "MSG".into()
            }
        );
        assert_eq!(
            dec(b"MSG -1\r\n", Direction::ClientToServer).unwrap_err(),
            FrameError::BadLength {
                command: "MSG".into()
            }
        );
        assert_eq!(
            dec(b"MSG\r\n", Direction::ClientToServer).unwrap_err(),
            FrameError::MissingLength {
                command: "MSG".into()
            }
        );
        assert_eq!(
            dec(b"VER \xff\r\n", Direction::ClientToServer),
            Err(FrameError::NotUtf8)
        );
        assert_eq!(
            dec(b"usr 1\r\n", Direction::ClientToServer),
            Err(FrameError::BadCommandName)
        );
        assert_eq!(
            dec(b"USRX 1\r\n", Direction::ClientToServer),
            Err(FrameError::BadCommandName)
        );
        assert_eq!(
            dec(b"VER\t1\r\n", Direction::ClientToServer),
            Err(FrameError::ControlChar { byte: 9 })
        );
    }
}
