//! Minimal MSNP parsing for the hot loops: split complete frames off a buffer by scanning for
//! the line end and skipping payloads by their declared length, nothing else. (Logins use the
//! typed `MsnpClient` of the test harness; only steady-state traffic comes through here.)

use bytes::{Buf as _, BytesMut};

/// Server commands that carry a payload whose length is their last argument.
fn has_payload(line: &[u8]) -> bool {
    matches!(
        line.get(..4),
        Some(b"MSG " | b"NOT " | b"GCF " | b"UBX " | b"IPG ")
    )
}

/// The last space-separated argument of `line` as a length.
fn last_number(line: &[u8]) -> Option<usize> {
    let start = line.iter().rposition(|&b| b == b' ')? + 1;
    let digits = &line[start..];
    if digits.is_empty() || digits.len() > 7 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0'))
    })
}

/// A framing error: a payload command without a usable length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadFrame;

/// Calls `f(line, payload)` for every complete frame at the front of `buf` (the line without
/// its CRLF; the payload is empty for commands without one) and removes them; an incomplete
/// frame stays for the next read.
pub(crate) fn drain_frames(
    buf: &mut BytesMut,
    mut f: impl FnMut(&[u8], &[u8]),
) -> Result<(), BadFrame> {
    let mut used = 0;
    loop {
        let rest = &buf[used..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            break;
        };
        let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
        if has_payload(line) {
            let len = last_number(line).ok_or(BadFrame)?;
            let end = nl + 1 + len;
            if rest.len() < end {
                break;
            }
            f(line, &rest[nl + 1..end]);
            used += end;
        } else {
            f(line, &[]);
            used += nl + 1;
        }
    }
    buf.advance(used);
    Ok(())
}

/// Parses 16 lowercase hex digits (a timestamp the generator wrote itself).
pub(crate) fn parse_hex16(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_payloads_skipped_by_length() {
        let mut buf = BytesMut::from(
            &b"ACK 1\r\nMSG a@b.c A 5\r\nhe\r\nlJOI x y\r\nMSG a@b.c A 9\r\npart"[..],
        );
        let mut seen = Vec::new();
        drain_frames(&mut buf, |l, p| seen.push((l.to_vec(), p.to_vec()))).unwrap();
        assert_eq!(
            seen,
            vec![
                (b"ACK 1".to_vec(), vec![]),
                (b"MSG a@b.c A 5".to_vec(), b"he\r\nl".to_vec()),
                (b"JOI x y".to_vec(), vec![]),
            ]
        );
        assert_eq!(&buf[..], b"MSG a@b.c A 9\r\npart");
        let mut bad = BytesMut::from(&b"MSG a b x\r\n"[..]);
        assert_eq!(drain_frames(&mut bad, |_, _| {}), Err(BadFrame));
    }

    #[test]
    fn hex_timestamps_round_trip() {
        let t = 0x0123_4567_89ab_cdef_u64;
        assert_eq!(parse_hex16(format!("{t:016x}").as_bytes()), Some(t));
        assert_eq!(parse_hex16(b"xyz"), None);
        assert_eq!(parse_hex16(b"000000000000000G"), None);
    }
}
