//! The one lenient spot of the HTTP side: the request head of a Passport request (nexus,
//! `login2.srf`, the configured login path) as the clients of the era wrote it, normalised into
//! the HTTP/1.1 that hyper parses.
//!
//! Real clients send their Passport requests in forms hyper rejects or answers in a form they
//! do not parse (PROTOCOL.md §2.3.3; the test catalogue in `tests/tests/it/real_clients.rs`):
//!
//! | sent | done here |
//! |---|---|
//! | `GET /rdr/pprdr.asp\r\n\r\n` (libpurple, msn-pecan, KMess: no version) | read as HTTP/0.9: the line is the whole request; rewritten to `GET /rdr/pprdr.asp HTTP/1.1`, `Connection: close`, end of head |
//! | `GET /rdr/pprdr.asp HTTP/1.0` (+ headers, maybe no `Host`) | rewritten to HTTP/1.1 with `Connection: close` as the head's last header, so the answer starts `HTTP/1.1 200 OK` as the real service's did, and the connection closes as HTTP/1.0 expects |
//! | `get /RDR/PPRDR.ASP http/1.1` | method, path and version spelled as routed |
//!
//! Everything else passes through untouched, so hyper stays as strict as it is for every other
//! path (a version-less `GET /` still gets `400`). Bare-LF line endings and header names in any
//! case need no rewriting: hyper accepts both. Only the first request of a connection is looked
//! at; every rewritten request closes its connection, so a connection carries at most one.
//!
//! [`scan`] is pure (bytes in, decision out); [`normalise`] reads the head under the same bound
//! ([`super::MAX_HEAD_BYTES`]) and deadline ([`super::HEADER_READ_TIMEOUT`]) hyper applies, and
//! hands hyper the rewritten head followed by the rest of the stream.

use std::io::Cursor;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, Join, ReadHalf, WriteHalf};

use super::{HEADER_READ_TIMEOUT, MAX_HEAD_BYTES};

/// The paths whose requests are normalised, in the spelling the router serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassportPaths(Vec<String>);

impl PassportPaths {
    /// The given paths (each starting with `/`).
    #[must_use]
    pub fn new<I, S>(paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(paths.into_iter().map(Into::into).collect())
    }

    /// The routed spelling of `path`, compared ASCII-case-insensitively (IIS paths were).
    fn canonical(&self, path: &[u8]) -> Option<&str> {
        self.0
            .iter()
            .find(|p| p.as_bytes().eq_ignore_ascii_case(path))
            .map(String::as_str)
    }
}

/// Which form a normalised request came in, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A request line without a version.
    Http09,
    /// `HTTP/1.0`.
    Http10,
    /// HTTP/1.1 with the method, path or version spelled unlike the routes.
    Spelling,
}

impl Form {
    /// A short name for log lines.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http09 => "HTTP/0.9 request line",
            Self::Http10 => "HTTP/1.0 request",
            Self::Spelling => "request line spelling",
        }
    }
}

/// What [`scan`] decided about the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The decision needs more bytes (the request line, or for HTTP/1.0 the whole head).
    NeedMore,
    /// Hand the bytes to hyper as they are.
    PassThrough,
    /// Replace the first `consumed` bytes by `head`; the rest follows unchanged.
    Rewrite {
        /// The replacement.
        head: Vec<u8>,
        /// How many bytes of the input it replaces.
        consumed: usize,
        /// The form that was normalised.
        form: Form,
        /// The path, as routed.
        path: String,
    },
}

/// Decides, from the first bytes of a connection, whether and how to normalise its first
/// request. Empty lines before the request line are skipped, as RFC 9112 §2.2 allows.
#[must_use]
pub fn scan(buf: &[u8], paths: &PassportPaths) -> Scan {
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return Scan::NeedMore;
    };
    let Some(lf) = find_lf(buf, start) else {
        return Scan::NeedMore;
    };
    let line = strip_cr(&buf[start..lf]);
    // Visible ASCII, spaces and tabs only; anything else is hyper's to refuse.
    if !line
        .iter()
        .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Scan::PassThrough;
    }
    let tokens: Vec<&[u8]> = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty())
        .collect();
    let (method, target, version) = match tokens[..] {
        [method, target] => (method, target, None),
        [method, target, version] => (method, target, Some(version)),
        _ => return Scan::PassThrough,
    };
    let Some(method) = [&b"GET"[..], b"POST", b"HEAD"]
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
    else {
        return Scan::PassThrough;
    };
    let Some((before, path, after)) = split_target(target) else {
        return Scan::PassThrough;
    };
    let Some(canonical) = paths.canonical(path) else {
        return Scan::PassThrough;
    };
    let mut head = Vec::with_capacity(line.len() + 32);
    head.extend_from_slice(method);
    head.push(b' ');
    head.extend_from_slice(before);
    head.extend_from_slice(canonical.as_bytes());
    head.extend_from_slice(after);
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let rewrite = |head, consumed, form| Scan::Rewrite {
        head,
        consumed,
        form,
        path: canonical.to_owned(),
    };
    match version {
        // HTTP/0.9 (RFC 1945 §4.1): only GET, and the line is the whole request.
        None if method == b"GET" => {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            rewrite(head, lf + 1, Form::Http09)
        }
        None => Scan::PassThrough,
        Some(v) if v.eq_ignore_ascii_case(b"HTTP/1.0") => {
            let Some((blank, end)) = find_blank_line(buf, lf + 1) else {
                return Scan::NeedMore;
            };
            head.extend_from_slice(&buf[lf + 1..blank]);
            // Last, so it wins over a `Connection: keep-alive` the client sent.
            head.extend_from_slice(b"Connection: close\r\n");
            head.extend_from_slice(&buf[blank..end]);
            rewrite(head, end, Form::Http10)
        }
        Some(v) if v.eq_ignore_ascii_case(b"HTTP/1.1") => {
            let unchanged = line == &head[..head.len() - 2];
            if unchanged {
                Scan::PassThrough
            } else {
                rewrite(head, lf + 1, Form::Spelling)
            }
        }
        Some(_) => Scan::PassThrough,
    }
}

fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The empty line ending the header section that starts at `from`: its start and its end.
fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    loop {
        let lf = find_lf(buf, at)?;
        if strip_cr(&buf[at..lf]).is_empty() {
            return Some((at, lf + 1));
        }
        at = lf + 1;
    }
}

/// Splits a request target into what precedes the path (`http://host` of an absolute form),
/// the path, and the query.
fn split_target(target: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let path_start = if target.first() == Some(&b'/') {
        0
    } else {
        let scheme_len = [&b"http://"[..], b"https://"]
            .into_iter()
            .find(|s| target.len() > s.len() && target[..s.len()].eq_ignore_ascii_case(s))?
            .len();
        scheme_len + target[scheme_len..].iter().position(|&b| b == b'/')?
    };
    let path_end = target[path_start..]
        .iter()
        .position(|&b| b == b'?')
        .map_or(target.len(), |i| path_start + i);
    Some((
        &target[..path_start],
        &target[path_start..path_end],
        &target[path_end..],
    ))
}

/// A stream whose first bytes were read (and maybe rewritten) by [`normalise`]: those bytes,
/// then the rest of the original stream; writes go straight to it.
pub type Normalised<I> = Join<tokio::io::Chain<Cursor<Vec<u8>>, ReadHalf<I>>, WriteHalf<I>>;

/// Why [`normalise`] gave up on a connection.
#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    /// The client sent no complete request line within [`HEADER_READ_TIMEOUT`].
    #[error("no request line within {HEADER_READ_TIMEOUT:?}")]
    Timeout,
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the start of `io` until [`scan`] decides (or the client closed, or
/// [`MAX_HEAD_BYTES`] were read: then hyper gets the bytes and answers as it does), and returns
/// the stream hyper should serve. The deadline is [`HEADER_READ_TIMEOUT`] from the call, however
/// slowly the bytes trickle in.
///
/// # Errors
///
/// [`NormaliseError`] when the deadline passed or reading failed.
pub async fn normalise<I>(io: I, paths: &PassportPaths) -> Result<Normalised<I>, NormaliseError>
where
    I: AsyncRead + AsyncWrite,
{
    let (mut read, write) = tokio::io::split(io);
    let mut buf = Vec::with_capacity(512);
    let decision = tokio::time::timeout(HEADER_READ_TIMEOUT, async {
        loop {
            match scan(&buf, paths) {
                Scan::NeedMore if buf.len() < MAX_HEAD_BYTES => {}
                Scan::NeedMore | Scan::PassThrough => return Ok(None),
                Scan::Rewrite {
                    head,
                    consumed,
                    form,
                    path,
                } => return Ok(Some((head, consumed, form, path))),
            }
            let want = MAX_HEAD_BYTES - buf.len();
            let n = (&mut read).take(want as u64).read_buf(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
        }
    })
    .await
    .map_err(|_| NormaliseError::Timeout)??;
    let bytes = match decision {
        None => buf,
        Some((mut head, consumed, form, path)) => {
            tracing::debug!(form = form.as_str(), path, "normalised a Passport request");
            head.extend_from_slice(&buf[consumed..]);
            head
        }
    };
    Ok(tokio::io::join(Cursor::new(bytes).chain(read), write))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> PassportPaths {
        PassportPaths::new(["/rdr/pprdr.asp", "/login2.srf"])
    }

    fn rewritten(input: &[u8]) -> (String, usize, Form) {
        match scan(input, &paths()) {
            Scan::Rewrite {
                head,
                consumed,
                form,
                ..
            } => (String::from_utf8(head).unwrap(), consumed, form),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn a_versionless_line_is_a_whole_http09_request() {
        // The line and its terminator are replaced; what follows (libpurple's extra CRLF) stays.
        for (input, rest) in [
            (&b"GET /rdr/pprdr.asp\r\n\r\n"[..], &b"\r\n"[..]),
            (b"GET /rdr/pprdr.asp\n\n", b"\n"),
            (b"GET /rdr/pprdr.asp\r\n", b""),
            (b"\r\nGET  /rdr/pprdr.asp \r\n", b""),
        ] {
            let (head, consumed, form) = rewritten(input);
            assert_eq!(
                head,
                "GET /rdr/pprdr.asp HTTP/1.1\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(form, Form::Http09);
            assert_eq!(&input[consumed..], rest);
        }
        // Only GET existed in HTTP/0.9.
        assert_eq!(
            scan(b"POST /login2.srf\r\n\r\n", &paths()),
            Scan::PassThrough
        );
    }

    #[test]
    fn http10_becomes_http11_that_closes_after_the_last_header() {
        let input = b"GET /rdr/pprdr.asp HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nrest";
        let (head, consumed, form) = rewritten(input);
        assert_eq!(
            head,
            "GET /rdr/pprdr.asp HTTP/1.1\r\nConnection: Keep-Alive\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(&input[consumed..], b"rest");
        assert_eq!(form, Form::Http10);

        let (head, _, _) = rewritten(b"GET /login2.srf HTTP/1.0\nAuthorization: x\n\n");
        assert_eq!(
            head,
            "GET /login2.srf HTTP/1.1\r\nAuthorization: x\nConnection: close\r\n\n"
        );
        // The whole head is needed before the header can be placed.
        assert_eq!(
            scan(b"GET /rdr/pprdr.asp HTTP/1.0\r\nHost: x\r\n", &paths()),
            Scan::NeedMore
        );
    }

    #[test]
    fn odd_spellings_are_routed_and_tidy_requests_pass_through() {
        let input = b"get /RDR/PPRDR.ASP?x=1 http/1.1\r\nHost: a\r\n\r\n";
        let (head, consumed, form) = rewritten(input);
        assert_eq!(head, "GET /rdr/pprdr.asp?x=1 HTTP/1.1\r\n");
        assert_eq!(&input[consumed..], b"Host: a\r\n\r\n");
        assert_eq!(form, Form::Spelling);
        let (head, _, _) = rewritten(b"GET https://Nexus.Passport.com/rdr/pprdr.asp\r\n\r\n");
        assert!(head.starts_with("GET https://Nexus.Passport.com/rdr/pprdr.asp HTTP/1.1\r\n"));

        for tidy in [
            &b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /login2.srf?a HTTP/1.1\r\n",
            b"GET https://h/login2.srf HTTP/1.1\r\n",
        ] {
            assert_eq!(scan(tidy, &paths()), Scan::PassThrough);
        }
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for other in [
            &b"GET /\r\n\r\n"[..],
            b"GET /Config/MsgrConfig.asmx\r\n\r\n",
            b"GET /rdr/pprdr.asp HTTP/2.0\r\n\r\n",
            b"GET /rdr/pprdr.asp HTTP/1.1 extra\r\n\r\n",
            b"DELETE /login2.srf HTTP/1.0\r\n\r\n",
            b"GET /rdr/pprdr.asp\x00\r\n\r\n",
            b"GET rdr/pprdr.asp\r\n\r\n",
            b"GET http://host-without-path\r\n\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert_eq!(
                scan(other, &paths()),
                Scan::PassThrough,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
        for partial in [&b""[..], b"\r\n", b"GET /rdr/pprdr.asp"] {
            assert_eq!(scan(partial, &paths()), Scan::NeedMore);
        }
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_decision() {
        let input = b"GET /login2.srf HTTP/1.0\r\nAuthorization: Passport1.4 a=b\r\n\r\n";
        let whole = scan(input, &paths());
        for cut in 0..input.len() {
            let early = scan(&input[..cut], &paths());
            assert!(
                early == Scan::NeedMore || early == whole,
                "cut at {cut}: {early:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_cannot_extend_the_deadline() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            // One byte a second, never a line end.
            while client.write_all(b"G").await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        let started = tokio::time::Instant::now();
        let error = normalise(server, &paths()).await.err().unwrap();
        assert!(matches!(error, NormaliseError::Timeout), "{error}");
        let waited = started.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT
                && waited < HEADER_READ_TIMEOUT + std::time::Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn normalise_replays_the_rewritten_head_then_the_rest_of_the_stream() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // One byte at a time, as over TLS records of one byte each.
            for &b in b"GET /rdr/pprdr.asp\r\n\r\nafter" {
                client.write_all(&[b]).await.unwrap();
            }
            client
        });
        let mut io = normalise(server, &paths()).await.unwrap();
        let client = writer.await.unwrap();
        drop(client);
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(
            all,
            b"GET /rdr/pprdr.asp HTTP/1.1\r\nConnection: close\r\n\r\n\r\nafter"
        );
    }
}
