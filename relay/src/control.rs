//! The control protocol between `relive-server` and a standalone relay
//! (`relive-relay serve`), spoken over QUIC with its own ALPN ([`ALPN`], version 3) on the
//! relay's agent endpoint: [`ToRelay`] and [`ToServer`] messages in the shared framing of
//! [`crate::wire`] (postcard in length-delimited frames of at most [`MAX_FRAME`] bytes).
//!
//! ```text
//! one bi-stream, opened by the server:
//!   server → relay   Hello { secret }          first, and only first
//!   relay → server   Welcome                   the secret matched (else: closed, CLOSE_DENIED)
//!   server → relay   Lease { count }           ports the server wants in stock
//!   relay → server   Leased { ports }          bound, not yet armed (≤ MAX_LEASED)
//!   server → relay   Forward { id, port, peer, target, user }
//!   server → relay   Rendezvous { legs: [(id, port, peer); 2], owner }
//!   server → relay   Release { id }
//!   relay → server   Refused { id }            an arm the relay refused
//!   relay → server   Verify { request, peer, credential }   an agent's "<handle> <token>"
//!   server → relay   Verdict { request, user }              the server's answer
//!   relay → server   Presence { user, online }
//! ```
//!
//! Why leases: the switchboard's allocator ([`crate::rewrite::Allocate`]) is synchronous
//! and runs inside the message fan-out, so it cannot wait for a round trip. The relay binds
//! ports ahead of time and hands them to the server ([`ToServer::Leased`]); the server picks
//! one at once, writes it into the invitation and then arms it ([`ToRelay::Forward`],
//! [`ToRelay::Rendezvous`]). The ids are the server's own; the relay maps them.
//!
//! Each direction has its own message type, so a message only the other side may send does
//! not decode. Every frame is bounded; the secret and the agent credentials are
//! [`Redacted`] (never in `Debug` output). Versions 1 and 2 were hand-written binary frames
//! under the ALPN `relive-relay-control/1`; a peer of those versions fails the QUIC handshake
//! (no common ALPN) instead of misreading frames.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::wire::{Codec, Redacted};

/// ALPN of the control protocol; its number is the protocol version.
pub const ALPN: &[u8] = b"relive-relay-control/3";
/// Longest shared secret.
pub const MAX_SECRET_BYTES: usize = 256;
/// Shortest shared secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest frame (the postcard body).
pub const MAX_FRAME: usize = 1024;
/// Most ports in one [`ToServer::Leased`].
pub const MAX_LEASED: usize = 64;
/// QUIC close code: the shared secret did not match.
pub const CLOSE_DENIED: u32 = 1;
/// QUIC close code: a newer control connection replaced this one.
pub const CLOSE_REPLACED: u32 = 2;
/// QUIC close code: the peer broke the protocol.
pub const CLOSE_PROTOCOL: u32 = 3;

/// One message from the server to the relay; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToRelay {
    /// The first message: the shared secret.
    Hello {
        /// The secret (the relay's `control-secret` file).
        secret: Redacted<Vec<u8>>,
    },
    /// Lease this many more ports.
    Lease {
        /// Ports wanted.
        count: u16,
    },
    /// Arm a leased port as an agent forward.
    Forward {
        /// The server's allocation id.
        id: u64,
        /// The leased port.
        port: u16,
        /// The only address that may connect.
        peer: IpAddr,
        /// The port on the listener's machine (from its own invitation).
        target: u16,
        /// The listener, whose agent carries the connection.
        user: String,
    },
    /// Arm two leased ports as a rendezvous.
    Rendezvous {
        /// Per leg: the server's allocation id, the leased port, the only address that may
        /// connect.
        legs: [(u64, u16, IpAddr); 2],
        /// The user the allocation counts against.
        owner: String,
    },
    /// End an allocation early.
    Release {
        /// The server's allocation id.
        id: u64,
    },
    /// The answer to a [`ToServer::Verify`].
    Verdict {
        /// The request number.
        request: u64,
        /// The user the credential belongs to, or `None`.
        user: Option<String>,
    },
}

impl ToRelay {
    /// Whether this hello carries `expected`, compared in constant time (`false` for any
    /// other message).
    #[must_use]
    pub fn is_hello_with(&self, expected: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        let Self::Hello { secret } = self else {
            return false;
        };
        // Lengths are not secret (a file of a fixed format); the bytes are.
        secret.0.len() == expected.len() && bool::from(secret.0.ct_eq(expected))
    }
}

/// One message from the relay to the server; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToServer {
    /// The secret matched.
    Welcome,
    /// Bound ports, not yet armed (at most [`MAX_LEASED`]).
    Leased {
        /// The ports.
        ports: Vec<u16>,
    },
    /// An arm was refused (limit, agent gone, unknown port).
    Refused {
        /// The server's allocation id.
        id: u64,
    },
    /// Check an agent's credential.
    Verify {
        /// Request number, echoed in the [`ToRelay::Verdict`].
        request: u64,
        /// The agent's address (the server's login limiter counts failures per source).
        peer: IpAddr,
        /// `<handle> <token>`.
        credential: Redacted<String>,
    },
    /// A user's agent connected or disconnected.
    Presence {
        /// The user.
        user: String,
        /// Connected now.
        online: bool,
    },
}

/// The relay's side of the stream: reads [`ToRelay`], writes [`ToServer`].
#[must_use]
pub fn relay_codec() -> Codec<ToRelay, ToServer> {
    Codec::new(MAX_FRAME)
}

/// The server's side of the stream: reads [`ToServer`], writes [`ToRelay`].
#[must_use]
pub fn server_codec() -> Codec<ToServer, ToRelay> {
    Codec::new(MAX_FRAME)
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_util::codec::{FramedRead, FramedWrite};

    use super::*;
    use crate::wire::{WireError, decode_all, encode};

    fn to_relay() -> Vec<ToRelay> {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        vec![
            ToRelay::Hello {
                secret: Redacted(b"0123456789abcdef0123".to_vec()),
            },
            ToRelay::Lease { count: 8 },
            ToRelay::Forward {
                id: u64::MAX,
                port: 6891,
                peer: v4,
                target: 51234,
                user: "alice@example.com".into(),
            },
            ToRelay::Rendezvous {
                legs: [(1, 6891, v4), (2, 6892, v6)],
                owner: "bob@example.com".into(),
            },
            ToRelay::Release { id: 3 },
            ToRelay::Verdict {
                request: 5,
                user: Some("alice@example.com".into()),
            },
            ToRelay::Verdict {
                request: 6,
                user: None,
            },
        ]
    }

    fn to_server() -> Vec<ToServer> {
        vec![
            ToServer::Welcome,
            ToServer::Leased {
                ports: vec![6891, 6892, 65535],
            },
            ToServer::Leased { ports: vec![] },
            ToServer::Refused { id: 4 },
            ToServer::Verify {
                request: 5,
                peer: IpAddr::from([198, 51, 100, 7]),
                credential: Redacted("alice@example.com tok".into()),
            },
            ToServer::Presence {
                user: "alice@example.com".into(),
                online: true,
            },
        ]
    }

    #[tokio::test]
    async fn every_message_crosses_a_tiny_pipe_both_ways() {
        // One pipe per direction, so that dropping a writer ends its reader's stream.
        let (to_relay_w, to_relay_r) = tokio::io::duplex(5);
        let (to_server_w, to_server_r) = tokio::io::duplex(5);
        let mut server_out = FramedWrite::new(to_relay_w, server_codec());
        let mut server_in = FramedRead::new(to_server_r, server_codec());
        let mut relay_out = FramedWrite::new(to_server_w, relay_codec());
        let mut relay_in = FramedRead::new(to_relay_r, relay_codec());
        let send = async {
            for m in to_relay() {
                server_out.send(m).await.unwrap();
            }
            for m in to_server() {
                relay_out.send(m).await.unwrap();
            }
            drop((server_out, relay_out));
        };
        let receive = async {
            for m in to_relay() {
                assert_eq!(relay_in.next().await.unwrap().unwrap(), m);
            }
            for m in to_server() {
                assert_eq!(server_in.next().await.unwrap().unwrap(), m);
            }
            assert!(relay_in.next().await.is_none());
        };
        tokio::join!(send, receive);
    }

    #[test]
    fn secrets_and_credentials_stay_out_of_debug_output() {
        let hello = &to_relay()[0];
        assert!(!format!("{hello:?}").contains("0123"));
        let verify = &to_server()[4];
        assert!(!format!("{verify:?}").contains("tok"));
    }

    #[test]
    fn the_wire_format_is_pinned() {
        // A change here is a new protocol version: bump ALPN (and the fuzz seeds).
        let forward = encode(to_relay()[2].clone(), MAX_FRAME).unwrap();
        let rendezvous = encode(to_relay()[3].clone(), MAX_FRAME).unwrap();
        let verify = encode(to_server()[4].clone(), MAX_FRAME).unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&forward),
            "002702ffffffffffffffffff01eb3500c6336407a2900311616c696365406578616d706c652e636f6d"
        );
        assert_eq!(
            hex(&rendezvous),
            "002d0301eb3500c633640702ec350120010db80000000000000000000000010f626f62406578616d706c652e636f6d"
        );
        assert_eq!(
            hex(&verify),
            "001d030500c633640715616c696365406578616d706c652e636f6d20746f6b"
        );
    }

    #[test]
    fn secret_comparison() {
        let hello = ToRelay::Hello {
            secret: Redacted(b"0123456789abcdef".to_vec()),
        };
        assert!(hello.is_hello_with(b"0123456789abcdef"));
        assert!(!hello.is_hello_with(b"0123456789abcdeF"));
        assert!(!hello.is_hello_with(b"0123456789abcdef0"));
        assert!(!hello.is_hello_with(b""));
        assert!(!ToRelay::Lease { count: 1 }.is_hello_with(b""));
    }

    #[test]
    fn each_side_reads_only_what_the_other_may_send() {
        // A relay's message is not a server's, and the other way round.
        let welcome = encode(ToServer::Welcome, MAX_FRAME).unwrap();
        let (got, error, _) = decode_all::<ToServer>(&welcome, MAX_FRAME);
        assert_eq!(got, [ToServer::Welcome]);
        assert!(error.is_none());
        let release = encode(ToRelay::Release { id: 1 }, MAX_FRAME).unwrap();
        let (got, error, _) = decode_all::<ToServer>(&release, MAX_FRAME);
        assert!(got.is_empty(), "{got:?}");
        assert!(matches!(error, Some(WireError::Malformed)));
        // Version 2's hello ("RLVC", 2, length, secret) reads as an over-long frame.
        let (got, error, _) = decode_all::<ToRelay>(b"RLVC\x02\x00\x10", MAX_FRAME);
        assert!(got.is_empty() && matches!(error, Some(WireError::Io(_))));
        // Over-long messages are refused when encoding.
        let presence = ToServer::Presence {
            user: "x".repeat(MAX_FRAME),
            online: true,
        };
        assert!(matches!(
            encode(presence, MAX_FRAME),
            Err(WireError::TooLong)
        ));
    }

    #[test]
    fn random_frames_never_panic_and_what_decodes_re_encodes() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 48) as usize;
            let mut frame = vec![0, u8::try_from(len).unwrap()];
            frame.extend((0..len).map(|i| (x.rotate_left(i as u32 * 7) & 0xff) as u8));
            let (relay, _, _) = decode_all::<ToRelay>(&frame, MAX_FRAME);
            for m in relay {
                let again = encode(m.clone(), MAX_FRAME).unwrap();
                assert_eq!(decode_all::<ToRelay>(&again, MAX_FRAME).0, [m]);
            }
            let (server, _, _) = decode_all::<ToServer>(&frame, MAX_FRAME);
            for m in server {
                let again = encode(m.clone(), MAX_FRAME).unwrap();
                assert_eq!(decode_all::<ToServer>(&again, MAX_FRAME).0, [m]);
            }
        }
    }
}
