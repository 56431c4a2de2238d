//! The companion-agent protocol spoken over QUIC between the relay and an agent (ALPN
//! [`ALPN`], version 2): [`AgentHello`], [`ToAgent`] and [`Open`] in the shared framing of
//! [`crate::wire`] (postcard in length-delimited frames of at most [`MAX_FRAME`] bytes).
//!
//! ```text
//! control stream (the first bi-stream, opened by the agent):
//!   agent → relay   AgentHello { token }
//!   relay → agent   Welcome { user } | Denied
//!   relay → agent   Grant { id, port }                 (repeated)
//! relay stream (one bi-stream per relayed TCP connection, opened by the relay):
//!   relay → agent   Open { id }, then raw bytes both ways
//! ```
//!
//! A relay stream names only an allocation id. The port it reaches comes from the `Grant`
//! the relay sent when it rewrote the user's own invitation, each grant is good for one
//! stream, and the agent only ever dials its own machine: a stream cannot name a host or a
//! port, so the agent is no proxy. The token is [`Redacted`]. Version 1 (ALPN
//! `relive-agent/1`) was hand-written binary frames; such a peer fails the QUIC handshake.

use std::io::Cursor;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, Chain};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::wire::{Codec, Redacted, WireError};

/// ALPN of the agent protocol; its number is the protocol version.
pub const ALPN: &[u8] = b"relive-agent/2";
/// Longest frame (the postcard body): a token and a handle fit many times over.
pub const MAX_FRAME: usize = 1024;

/// The agent's first message: its credential, `"<handle> <token>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    /// The credential.
    pub token: Redacted<String>,
}

/// What the relay says on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToAgent {
    /// Authenticated as this user.
    Welcome {
        /// The account the credential belongs to.
        user: String,
    },
    /// The credential was not accepted.
    Denied,
    /// Permission for one relay stream to reach one local port.
    Grant(Grant),
}

/// Permission for one relay stream to reach one local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The relay allocation the stream will name.
    pub id: u64,
    /// The local port the user's MSN client listens on.
    pub port: u16,
}

/// The header of a relay stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// The allocation, granted before on the control stream.
    pub id: u64,
}

/// The relay's side of the control stream: reads [`AgentHello`], writes [`ToAgent`].
#[must_use]
pub fn relay_codec() -> Codec<AgentHello, ToAgent> {
    Codec::new(MAX_FRAME)
}

/// The agent's side of the control stream: reads [`ToAgent`], writes [`AgentHello`].
#[must_use]
pub fn agent_codec() -> Codec<ToAgent, AgentHello> {
    Codec::new(MAX_FRAME)
}

/// Writes the [`Open`] header of a relay stream.
///
/// # Errors
///
/// [`WireError`].
pub async fn write_open<W: AsyncWrite + Unpin>(w: &mut W, id: u64) -> Result<(), WireError> {
    FramedWrite::new(w, Codec::<(), Open>::new(MAX_FRAME))
        .send(Open { id })
        .await
}

/// Reads the [`Open`] header of a relay stream; returns it with the stream, which yields the
/// bytes after the header (those read with it first).
///
/// # Errors
///
/// [`WireError`]; an end of stream before a whole header is [`WireError::Io`].
pub async fn read_open<R: AsyncRead + Unpin>(
    r: R,
) -> Result<(Open, Chain<Cursor<Bytes>, R>), WireError> {
    let mut frames = FramedRead::new(r, Codec::<Open, ()>::new(MAX_FRAME));
    let open = frames
        .next()
        .await
        .ok_or_else(|| WireError::Io(std::io::ErrorKind::UnexpectedEof.into()))??;
    let parts = frames.into_parts();
    let early: Bytes = parts.read_buf.freeze();
    Ok((open, Cursor::new(early).chain(parts.io)))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt as _, duplex};

    use super::*;
    use crate::wire::{decode_all, encode};

    #[tokio::test]
    async fn the_control_stream_crosses_a_tiny_pipe() {
        let (agent, relay) = duplex(8);
        let (agent_read, agent_write) = tokio::io::split(agent);
        let (relay_read, relay_write) = tokio::io::split(relay);
        let hello = AgentHello {
            token: Redacted("bob@example.com tok-123".into()),
        };
        let answers = [
            ToAgent::Welcome {
                user: "bob@example.com".into(),
            },
            ToAgent::Grant(Grant { id: 9, port: 6891 }),
            ToAgent::Denied,
        ];
        let agent_side = async {
            let mut out = FramedWrite::new(agent_write, agent_codec());
            out.send(hello.clone()).await.unwrap();
            let mut inbound = FramedRead::new(agent_read, agent_codec());
            for a in &answers {
                assert_eq!(&inbound.next().await.unwrap().unwrap(), a);
            }
            assert!(inbound.next().await.is_none());
        };
        let relay_side = async {
            let mut inbound = FramedRead::new(relay_read, relay_codec());
            assert_eq!(inbound.next().await.unwrap().unwrap(), hello);
            let mut out = FramedWrite::new(relay_write, relay_codec());
            for a in &answers {
                out.send(a.clone()).await.unwrap();
            }
        };
        tokio::join!(agent_side, relay_side);
    }

    #[tokio::test]
    async fn a_relay_stream_keeps_the_bytes_read_with_its_header() {
        let (mut relay, agent) = duplex(64);
        write_open(&mut relay, 7).await.unwrap();
        relay.write_all(b"payload after the header").await.unwrap();
        drop(relay);
        let (open, mut rest) = read_open(agent).await.unwrap();
        assert_eq!(open, Open { id: 7 });
        let mut body = String::new();
        rest.read_to_string(&mut body).await.unwrap();
        assert_eq!(body, "payload after the header");
        let (_, cut) = duplex(64);
        assert!(read_open(cut).await.is_err());
    }

    #[test]
    fn the_wire_format_is_pinned() {
        // A change here is a new protocol version: bump ALPN (and the fuzz seeds).
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let hello = AgentHello {
            token: Redacted("alice@example.com 0123456789abcdef".into()),
        };
        assert_eq!(
            hex(&encode(hello, MAX_FRAME).unwrap()),
            "002322616c696365406578616d706c652e636f6d2030313233343536373839616263646566"
        );
        let grant = ToAgent::Grant(Grant { id: 2, port: 7000 });
        assert_eq!(hex(&encode(grant, MAX_FRAME).unwrap()), "00040202d836");
        assert_eq!(hex(&encode(Open { id: 9 }, MAX_FRAME).unwrap()), "000109");
    }

    #[test]
    fn limits_and_redaction() {
        let long = AgentHello {
            token: Redacted("x".repeat(MAX_FRAME + 1)),
        };
        assert!(encode(long, MAX_FRAME).is_err());
        let hello = AgentHello {
            token: Redacted("secret".into()),
        };
        assert!(!format!("{hello:?}").contains("secret"));
        // A version-1 hello ("RLVA", 1, length, token) reads as an over-long frame.
        let (got, error, _) = decode_all::<AgentHello>(b"RLVA\x01\x00\x03abc", MAX_FRAME);
        assert!(got.is_empty() && error.is_some());
    }
}
