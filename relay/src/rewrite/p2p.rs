//! The 48-byte binary header and 4-byte footer of MSNC1 P2P packets.
//!
//! ```text
//! off size field        (all little-endian)
//!   0  4   SessionID    0 = SLP signalling
//!   4  4   ID           per-sender message id, same for every chunk of one message
//!   8  8   Offset       of this chunk in the message
//!  16  8   TotalSize    of the whole message
//!  24  4   Length       bytes in this chunk
//!  28  4   Flags        0 SLP, 0x2 ACK, 0x20 MSN object, 0x1000030 file data, 0x100 DC handshake
//!  32  4   AckID
//!  36  4   AckUID       in an ACK: the acked message's ID
//!  40  8   AckSize      in an ACK: the acked message's TotalSize
//! then Length bytes of payload, then a u32 big-endian AppID footer (switchboard only)
//! ```

/// Size of the binary header.
pub const HEADER_LEN: usize = 48;
/// Size of the footer that follows the payload on the switchboard.
pub const FOOTER_LEN: usize = 4;
/// Largest chunk clients put in one switchboard `MSG`.
pub const SB_MAX_CHUNK: usize = 1202;
/// `Flags` bit of an acknowledgement.
pub const FLAG_ACK: u32 = 0x2;

/// A decoded P2P (MSNC1, "P2Pv1") header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct P2pHeader {
    /// 0 for SLP signalling, otherwise the data session.
    pub session_id: u32,
    /// Message id (the same in every chunk of one message).
    pub id: u32,
    /// Offset of this chunk within the message.
    pub offset: u64,
    /// Size of the whole message.
    pub total_size: u64,
    /// Bytes in this chunk.
    pub length: u32,
    /// Flags (see the module doc).
    pub flags: u32,
    /// Random id of a data message, or the acked message's AckID in an ACK.
    pub ack_id: u32,
    /// In an ACK: the acked message's ID.
    pub ack_uid: u32,
    /// In an ACK: the acked message's TotalSize.
    pub ack_size: u64,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl P2pHeader {
    /// Decodes the first [`HEADER_LEN`] bytes of `bytes`; `None` if there are fewer.
    ///
    /// ```
    /// use relive_relay::rewrite::p2p::P2pHeader;
    /// let h = P2pHeader { id: 7, total_size: 3, length: 3, ..P2pHeader::default() };
    /// assert_eq!(P2pHeader::decode(&h.encode()), Some(h));
    /// assert_eq!(P2pHeader::decode(&[0; 47]), None);
    /// ```
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            session_id: u32_at(bytes, 0)?,
            id: u32_at(bytes, 4)?,
            offset: u64_at(bytes, 8)?,
            total_size: u64_at(bytes, 16)?,
            length: u32_at(bytes, 24)?,
            flags: u32_at(bytes, 28)?,
            ack_id: u32_at(bytes, 32)?,
            ack_uid: u32_at(bytes, 36)?,
            ack_size: u64_at(bytes, 40)?,
        })
    }

    /// Encodes the header into its 48 wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0..4].copy_from_slice(&self.session_id.to_le_bytes());
        out[4..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.total_size.to_le_bytes());
        out[24..28].copy_from_slice(&self.length.to_le_bytes());
        out[28..32].copy_from_slice(&self.flags.to_le_bytes());
        out[32..36].copy_from_slice(&self.ack_id.to_le_bytes());
        out[36..40].copy_from_slice(&self.ack_uid.to_le_bytes());
        out[40..48].copy_from_slice(&self.ack_size.to_le_bytes());
        out
    }

    /// Whether this is an acknowledgement.
    pub fn is_ack(&self) -> bool {
        self.flags & FLAG_ACK != 0
    }
}

/// A P2P packet as carried in a switchboard `MSG` body: header, chunk, footer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packet<'a> {
    pub(crate) header: P2pHeader,
    pub(crate) chunk: &'a [u8],
    pub(crate) footer: [u8; FOOTER_LEN],
}

impl<'a> Packet<'a> {
    /// Splits a switchboard P2P body; `None` unless `Length` matches the bytes present.
    pub(crate) fn parse(body: &'a [u8]) -> Option<Self> {
        let header = P2pHeader::decode(body)?;
        let len = usize::try_from(header.length).ok()?;
        let expected = HEADER_LEN.checked_add(len)?.checked_add(FOOTER_LEN)?;
        if body.len() != expected {
            return None;
        }
        let chunk = &body[HEADER_LEN..HEADER_LEN + len];
        let footer = body[HEADER_LEN + len..].try_into().ok()?;
        Some(Self {
            header,
            chunk,
            footer,
        })
    }
}

/// Encodes `head` + header + chunk + footer as one `MSG` payload.
pub(crate) fn encode_payload(
    head: &[u8],
    header: &P2pHeader,
    chunk: &[u8],
    footer: [u8; FOOTER_LEN],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + HEADER_LEN + chunk.len() + FOOTER_LEN);
    out.extend_from_slice(head);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(chunk);
    out.extend_from_slice(&footer);
    out
}

/// Splits `message` into switchboard chunks of at most [`SB_MAX_CHUNK`] bytes, each with a
/// copy of `template` whose `Offset`, `TotalSize` and `Length` are set for that chunk.
pub(crate) fn rechunk(
    head: &[u8],
    template: &P2pHeader,
    message: &[u8],
    footer: [u8; FOOTER_LEN],
) -> Vec<Vec<u8>> {
    let total = message.len() as u64;
    let mut out = Vec::with_capacity(message.len() / SB_MAX_CHUNK + 1);
    for (n, chunk) in message.chunks(SB_MAX_CHUNK).enumerate() {
        let header = P2pHeader {
            offset: (n * SB_MAX_CHUNK) as u64,
            total_size: total,
            // A chunk is at most SB_MAX_CHUNK bytes, which fits a u32.
            length: u32::try_from(chunk.len()).unwrap_or(u32::MAX),
            ..*template
        };
        out.push(encode_payload(head, &header, chunk, footer));
    }
    out
}
