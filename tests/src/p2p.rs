//! MSN P2P (MSNC1, MSN 6–7.5) framing for scripted clients, written from P2P.md §2.1–2.2
//! independently of the relay's rewriter (so the NAT tests check the relay against a second
//! implementation): the 48-byte binary header, `MSG D` payloads with `P2P-Dest` and the
//! footer, MSNSLP text messages with their `Content-Length`, and the direct-connection
//! framing (`u32` length prefix, `foo`, the nonce handshake).

use anyhow::{anyhow, ensure};

/// Size of the P2P binary header.
pub const HEADER_LEN: usize = 48;
/// Largest chunk of one P2P message on the switchboard.
pub const SB_CHUNK: usize = 1202;
/// Largest chunk of one P2P message on a direct connection.
pub const DC_CHUNK: usize = 1352;
/// `Flags` of an ACK.
pub const FLAG_ACK: u32 = 0x2;
/// `Flags` of the direct-connection handshake.
pub const FLAG_HANDSHAKE: u32 = 0x100;
/// `Flags` of file data.
pub const FLAG_FILE_DATA: u32 = 0x0100_0030;
/// The file transfer `EUF-GUID`.
pub const FILE_TRANSFER_EUF_GUID: &str = "{5D3E02AB-6190-11D3-BBBB-00C04F795683}";

/// The P2Pv1 header (all fields little-endian on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// 0 for SLP messages.
    pub session_id: u32,
    /// The sender's message counter (same for all chunks of one message).
    pub id: u32,
    /// Offset of this chunk in the message.
    pub offset: u64,
    /// Size of the whole message.
    pub total_size: u64,
    /// Bytes in this chunk.
    pub length: u32,
    /// Kind of message.
    pub flags: u32,
    /// Random id (data) or the acked message's `AckID`.
    pub ack_id: u32,
    /// The acked message's `ID`.
    pub ack_uid: u32,
    /// The acked message's `TotalSize`.
    pub ack_size: u64,
}

impl Header {
    /// The 48 wire bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.session_id.to_le_bytes());
        b[4..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.total_size.to_le_bytes());
        b[24..28].copy_from_slice(&self.length.to_le_bytes());
        b[28..32].copy_from_slice(&self.flags.to_le_bytes());
        b[32..36].copy_from_slice(&self.ack_id.to_le_bytes());
        b[36..40].copy_from_slice(&self.ack_uid.to_le_bytes());
        b[40..48].copy_from_slice(&self.ack_size.to_le_bytes());
        b
    }

    /// Reads a header from the first 48 bytes of `b`.
    ///
    /// # Errors
    ///
    /// Fewer than 48 bytes.
    pub fn decode(b: &[u8]) -> anyhow::Result<Self> {
        ensure!(b.len() >= HEADER_LEN, "P2P header of {} bytes", b.len());
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
        Ok(Self {
            session_id: u32_at(0),
            id: u32_at(4),
            offset: u64_at(8),
            total_size: u64_at(16),
            length: u32_at(24),
            flags: u32_at(28),
            ack_id: u32_at(32),
            ack_uid: u32_at(36),
            ack_size: u64_at(40),
        })
    }

    /// The handshake header carrying `nonce` in the AckID/AckUID/AckSize positions.
    #[must_use]
    pub fn handshake(id: u32, nonce: &[u8; 16]) -> Self {
        let b = |i: usize| u32::from_le_bytes([nonce[i], nonce[i + 1], nonce[i + 2], nonce[i + 3]]);
        Self {
            id,
            flags: FLAG_HANDSHAKE,
            ack_id: b(0),
            ack_uid: b(4),
            ack_size: u64::from(b(8)) | (u64::from(b(12)) << 32),
            ..Self::default()
        }
    }

    /// The nonce a handshake header carries.
    #[must_use]
    pub fn nonce(&self) -> [u8; 16] {
        let mut n = [0u8; 16];
        n.copy_from_slice(&self.encode()[32..48]);
        n
    }
}

/// A random GUID in `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` form.
#[must_use]
pub fn random_guid() -> String {
    let b: [u8; 16] = rand::random();
    guid_string(&b)
}

/// The text form of 16 GUID bytes in Windows order (first three groups little-endian).
#[must_use]
pub fn guid_string(b: &[u8; 16]) -> String {
    format!(
        "{{{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}}}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// The 16 bytes of a GUID in text form (inverse of [`guid_string`]).
///
/// # Errors
///
/// Not a braced GUID.
pub fn guid_bytes(s: &str) -> anyhow::Result<[u8; 16]> {
    let hex: String = s
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|&c| c != '-')
        .collect();
    ensure!(hex.len() == 32, "not a GUID: {s:?}");
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    let mut b = raw;
    b[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    b[4..6].copy_from_slice(&[raw[5], raw[4]]);
    b[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Ok(b)
}

/// An MSNSLP message: start line, headers (with `Content-Length` of `body` plus its NUL),
/// empty line, `body`, NUL.
#[must_use]
pub fn slp_message(
    start: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> Vec<u8> {
    let mut text = format!("{start}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len() + 1
    ));
    let mut bytes = text.into_bytes();
    bytes.push(0);
    bytes
}

/// A parsed MSNSLP message.
#[derive(Debug, Clone)]
pub struct Slp {
    /// The start line (`INVITE MSNMSGR:... MSNSLP/1.0`, `MSNSLP/1.0 200 OK`).
    pub start: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Body fields in order.
    pub body: Vec<(String, String)>,
}

fn field<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Slp {
    /// Parses `text` (a whole SLP message), checking that `Content-Length` counts exactly the
    /// body bytes including the trailing NUL.
    ///
    /// # Errors
    ///
    /// Malformed, or `Content-Length` does not match.
    pub fn parse(text: &[u8]) -> anyhow::Result<Self> {
        let split = text
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("SLP message without an empty line"))?;
        let head = std::str::from_utf8(&text[..split])?;
        let body = &text[split + 4..];
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default().to_owned();
        let headers = pairs(lines);
        let declared: usize = field(&headers, "Content-Length")
            .ok_or_else(|| anyhow!("SLP without Content-Length"))?
            .parse()?;
        ensure!(
            declared == body.len(),
            "Content-Length {declared} but {} body bytes",
            body.len()
        );
        let body = body
            .strip_suffix(b"\0")
            .ok_or_else(|| anyhow!("SLP body without NUL"))?;
        let body = pairs(std::str::from_utf8(body)?.split("\r\n"));
        Ok(Self {
            start,
            headers,
            body,
        })
    }

    /// A header field.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        field(&self.headers, name)
    }

    /// A body field.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.body, name)
    }
}

fn pairs<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The `MSG D` payload carrying one P2P chunk to `dest` (footer: AppID `app_id`, big-endian).
#[must_use]
pub fn sb_payload(dest: &str, header: &Header, chunk: &[u8], app_id: u32) -> Vec<u8> {
    let mut p = format!(
        "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: {dest}\r\n\r\n"
    )
    .into_bytes();
    p.extend_from_slice(&header.encode());
    p.extend_from_slice(chunk);
    p.extend_from_slice(&app_id.to_be_bytes());
    p
}

/// A P2P chunk received on the switchboard.
#[derive(Debug, Clone)]
pub struct SbChunk {
    /// `P2P-Dest`.
    pub dest: String,
    /// The binary header.
    pub header: Header,
    /// The chunk (`Length` bytes).
    pub data: Vec<u8>,
}

/// Parses a `MSG` payload as a P2P chunk, checking that the header's `Length` is exactly the
/// bytes between header and footer. `Ok(None)`: not a P2P message.
///
/// # Errors
///
/// A P2P message whose framing or lengths are wrong.
pub fn parse_sb_payload(payload: &[u8]) -> anyhow::Result<Option<SbChunk>> {
    let Some(split) = payload.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&payload[..split]);
    let mime = pairs(head.split("\r\n"));
    if !field(&mime, "Content-Type")
        .is_some_and(|c| c.eq_ignore_ascii_case("application/x-msnmsgrp2p"))
    {
        return Ok(None);
    }
    let dest = field(&mime, "P2P-Dest").unwrap_or_default().to_owned();
    let rest = &payload[split + 4..];
    ensure!(
        rest.len() >= HEADER_LEN + 4,
        "P2P payload of {} bytes",
        rest.len()
    );
    let header = Header::decode(rest)?;
    let data = &rest[HEADER_LEN..rest.len() - 4];
    ensure!(
        header.length as usize == data.len(),
        "P2P Length {} but {} bytes",
        header.length,
        data.len()
    );
    ensure!(
        header.offset + u64::from(header.length) <= header.total_size,
        "chunk beyond TotalSize"
    );
    Ok(Some(SbChunk {
        dest,
        header,
        data: data.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_guid_and_slp_round_trip() {
        let nonce = guid_bytes("{0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9}").unwrap();
        assert_eq!(
            guid_string(&nonce),
            "{0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9}"
        );
        let h = Header::handshake(7, &nonce);
        let back = Header::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.nonce(), nonce);
        let m = slp_message(
            "MSNSLP/1.0 200 OK",
            &[("CSeq", "1")],
            "application/x-msnmsgr-transrespbody",
            "Listening: true\r\n\r\n",
        );
        let slp = Slp::parse(&m).unwrap();
        assert_eq!(slp.header("content-length"), Some("20"));
        assert_eq!(slp.field("Listening"), Some("true"));
        let p = sb_payload(
            "bob@example.com",
            &Header {
                total_size: 3,
                length: 3,
                ..Header::default()
            },
            b"abc",
            0,
        );
        let c = parse_sb_payload(&p).unwrap().unwrap();
        assert_eq!(
            (c.dest.as_str(), c.data.as_slice()),
            ("bob@example.com", &b"abc"[..])
        );
    }
}
