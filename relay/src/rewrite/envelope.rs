//! The MIME envelope of a switchboard `MSG` payload.
//!
//! ```text
//! MIME-Version: 1.0\r\n
//! Content-Type: application/x-msnmsgrp2p\r\n
//! P2P-Dest: bob@example.com\r\n
//! \r\n
//! <body>
//! ```
//!
//! The rewriter only needs the content type (to route the payload), the `P2P-Dest` header
//! and the split point between head and body. The head is reused verbatim when a payload is
//! re-emitted.

use super::fields::Block;

/// Longest MIME head the rewriter looks at; real heads are under 200 bytes.
const MAX_HEAD_BYTES: usize = 1024;

/// What kind of payload an `MSG` carries, as far as the relay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentKind {
    /// `text/x-msmsgsinvite`: MSNFTP and other MSNC0 invitations.
    Invitation,
    /// `application/x-msnmsgrp2p`: MSNC1 P2P packets (SLP signalling and data).
    P2p,
    /// Anything else (text, typing notifications, …).
    Other,
}

/// A payload split into its head and body.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    /// The head including the blank line that ends it.
    pub(crate) head: &'a [u8],
    /// Everything after the blank line.
    pub(crate) body: &'a [u8],
    /// The routed content type.
    pub(crate) kind: ContentKind,
    /// The `P2P-Dest` header value, if any.
    pub(crate) p2p_dest: Option<&'a str>,
}

/// Splits `payload`; `None` when there is no CRLF CRLF within the first [`MAX_HEAD_BYTES`].
pub(crate) fn parse(payload: &[u8]) -> Option<Envelope<'_>> {
    let window = &payload[..payload.len().min(MAX_HEAD_BYTES + 4)];
    let split = window.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (head, body) = payload.split_at(split);
    let block = Block::parse(head);
    let kind = match block.get("Content-Type") {
        Some(value) => {
            let mime = value.split(';').next().unwrap_or_default().trim();
            if mime.eq_ignore_ascii_case("text/x-msmsgsinvite") {
                ContentKind::Invitation
            } else if mime.eq_ignore_ascii_case("application/x-msnmsgrp2p") {
                ContentKind::P2p
            } else {
                ContentKind::Other
            }
        }
        None => ContentKind::Other,
    };
    let p2p_dest = block.get("P2P-Dest");
    Some(Envelope {
        head,
        body,
        kind,
        p2p_dest,
    })
}

/// The head the relay uses for invitations it synthesizes.
pub(crate) const INVITATION_HEAD: &[u8] =
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_content_type_ignoring_case_and_parameters() {
        let env = parse(b"MIME-Version: 1.0\r\ncontent-type: TEXT/X-MSMSGSINVITE; charset=UTF-8\r\n\r\nA: b\r\n")
            .expect("has a head");
        assert_eq!(env.kind, ContentKind::Invitation);
        assert_eq!(env.body, b"A: b\r\n");
        let env = parse(INVITATION_HEAD).expect("has a head");
        assert_eq!(env.kind, ContentKind::Invitation);
        assert!(env.body.is_empty());
        assert!(parse(b"MIME-Version: 1.0\r\n").is_none());
    }
}
