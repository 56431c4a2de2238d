//! The control protocol between `relive-server` and a standalone relay
//! (`relive-relay serve`), spoken over QUIC with its own ALPN ([`ALPN`]) on the relay's
//! agent endpoint.
//!
//! ```text
//! one bi-stream, opened by the server:
//!   server → relay   Hello   "RLVC" | version u8 (2) | secret length u16 BE | secret
//!   then frames both ways:   length u16 BE (tag + body, ≤ MAX_FRAME) | tag u8 | body
//!
//!   relay → server   Welcome    (the secret matched; anything else closes the connection)
//!   server → relay   Lease      count u16                      ports the server wants in stock
//!   relay → server   Leased     count u8 | port u16 ×count     bound, not yet armed
//!   server → relay   Forward    id u64 | port u16 | peer | target u16 | user
//!   server → relay   Rendezvous id u64 | port u16 | peer (×2) | owner
//!   server → relay   Release    id u64
//!   relay → server   Refused    id u64                          an arm the relay refused
//!   relay → server   Verify     request u64 | peer | credential   an agent's address and
//!                                                                  "<handle> <token>"
//!   server → relay   Verdict    request u64 | ok u8 | user     the server's answer
//!   relay → server   Presence   online u8 | user
//!   peer = family u8 (4 or 6) | 4 or 16 address bytes; text = length u16 BE | UTF-8
//! ```
//!
//! Why leases: the switchboard's allocator ([`crate::rewrite::Allocate`]) is synchronous
//! and runs inside the message fan-out, so it cannot wait for a round trip. The relay binds
//! ports ahead of time and hands them to the server ([`Frame::Leased`]); the server picks
//! one at once, writes it into the invitation and then arms it ([`Frame::Forward`],
//! [`Frame::Rendezvous`]). The ids are the server's own; the relay maps them.
//!
//! The codec is sans-IO ([`Frame::encode`], [`Frame::decode`], [`Hello::encode`],
//! [`Hello::decode`]) with thin async readers. Every length is bounded; the secret and the
//! agent credentials never appear in `Debug` output.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// ALPN of the control protocol.
pub const ALPN: &[u8] = b"relive-relay-control/1";
/// First bytes of a [`Hello`].
pub const MAGIC: [u8; 4] = *b"RLVC";
/// Protocol version (2: [`Frame::Verify`] carries the agent's address).
pub const VERSION: u8 = 2;
/// Longest shared secret.
pub const MAX_SECRET_BYTES: usize = 256;
/// Shortest shared secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest frame (tag and body).
pub const MAX_FRAME: usize = 1024;
/// Longest text field (user names, agent credentials).
pub const MAX_TEXT: usize = 512;
/// Most ports in one [`Frame::Leased`].
pub const MAX_LEASED: usize = 64;
/// QUIC close code: the shared secret did not match.
pub const CLOSE_DENIED: u32 = 1;
/// QUIC close code: a newer control connection replaced this one.
pub const CLOSE_REPLACED: u32 = 2;
/// QUIC close code: the peer broke the protocol.
pub const CLOSE_PROTOCOL: u32 = 3;

/// A malformed, oversized or unexpected control message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The peer does not speak this protocol or version.
    #[error("not a Relive relay control peer or wrong version")]
    BadMagic,
    /// A length field exceeds its limit, or a frame is shorter than its fields.
    #[error("control frame length out of bounds")]
    Length,
    /// An unknown tag or enumeration value.
    #[error("unknown control frame")]
    Unknown,
    /// A text field is not UTF-8.
    #[error("control text is not UTF-8")]
    NotUtf8,
    /// Reading failed.
    #[error("control stream I/O")]
    Io(#[from] std::io::Error),
}

/// The server's first message: the shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// The shared secret (never logged).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello").field("secret", &"***").finish()
    }
}

impl Hello {
    /// Size of the fixed part before the secret.
    pub const HEADER_LEN: usize = 7;

    /// Encodes the message.
    ///
    /// # Errors
    ///
    /// [`ControlError::Length`] for a secret longer than [`MAX_SECRET_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        let len = u16::try_from(self.secret.len())
            .ok()
            .filter(|&l| usize::from(l) <= MAX_SECRET_BYTES)
            .ok_or(ControlError::Length)?;
        let mut out = Vec::with_capacity(Self::HEADER_LEN + self.secret.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.secret);
        Ok(out)
    }

    /// Checks the fixed part and returns the secret length that follows.
    ///
    /// # Errors
    ///
    /// [`ControlError::BadMagic`], [`ControlError::Length`].
    pub fn decode(header: &[u8; Self::HEADER_LEN]) -> Result<usize, ControlError> {
        if header[..4] != MAGIC || header[4] != VERSION {
            return Err(ControlError::BadMagic);
        }
        let len = usize::from(u16::from_be_bytes([header[5], header[6]]));
        if len > MAX_SECRET_BYTES {
            return Err(ControlError::Length);
        }
        Ok(len)
    }

    /// Whether `self` carries `expected`, compared in constant time.
    pub fn matches(&self, expected: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        // Lengths are not secret (a file of a fixed format); the bytes are.
        self.secret.len() == expected.len() && bool::from(self.secret.ct_eq(expected))
    }
}

/// One frame after the [`Hello`]; see the module doc for the layout.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// relay → server: the secret matched.
    Welcome,
    /// server → relay: lease this many more ports.
    Lease {
        /// Ports wanted.
        count: u16,
    },
    /// relay → server: bound ports, not yet armed.
    Leased {
        /// The ports (at most [`MAX_LEASED`]).
        ports: Vec<u16>,
    },
    /// server → relay: arm a leased port as an agent forward.
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
    /// server → relay: arm two leased ports as a rendezvous.
    Rendezvous {
        /// Per leg: the server's allocation id, the leased port, the only address that may
        /// connect.
        legs: [(u64, u16, IpAddr); 2],
        /// The user the allocation counts against.
        owner: String,
    },
    /// server → relay: end an allocation early.
    Release {
        /// The server's allocation id.
        id: u64,
    },
    /// relay → server: an arm was refused (limit, agent gone, unknown port).
    Refused {
        /// The server's allocation id.
        id: u64,
    },
    /// relay → server: check an agent's credential.
    Verify {
        /// Request number, echoed in the [`Frame::Verdict`].
        request: u64,
        /// The agent's address (the server's login limiter counts failures per source).
        peer: IpAddr,
        /// `<handle> <token>` (never logged).
        credential: String,
    },
    /// server → relay: the answer to a [`Frame::Verify`].
    Verdict {
        /// The request number.
        request: u64,
        /// The user the credential belongs to, or `None`.
        user: Option<String>,
    },
    /// relay → server: a user's agent connected or disconnected.
    Presence {
        /// The user.
        user: String,
        /// Connected now.
        online: bool,
    },
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Verify { request, peer, .. } => f
                .debug_struct("Verify")
                .field("request", request)
                .field("peer", peer)
                .field("credential", &"***")
                .finish(),
            Self::Welcome => f.write_str("Welcome"),
            Self::Lease { count } => f.debug_struct("Lease").field("count", count).finish(),
            Self::Leased { ports } => f.debug_struct("Leased").field("ports", ports).finish(),
            Self::Forward {
                id,
                port,
                peer,
                target,
                user,
            } => f
                .debug_struct("Forward")
                .field("id", id)
                .field("port", port)
                .field("peer", peer)
                .field("target", target)
                .field("user", user)
                .finish(),
            Self::Rendezvous { legs, owner } => f
                .debug_struct("Rendezvous")
                .field("legs", legs)
                .field("owner", owner)
                .finish(),
            Self::Release { id } => f.debug_struct("Release").field("id", id).finish(),
            Self::Refused { id } => f.debug_struct("Refused").field("id", id).finish(),
            Self::Verdict { request, user } => f
                .debug_struct("Verdict")
                .field("request", request)
                .field("user", user)
                .finish(),
            Self::Presence { user, online } => f
                .debug_struct("Presence")
                .field("user", user)
                .field("online", online)
                .finish(),
        }
    }
}

mod tag {
    pub(super) const WELCOME: u8 = 1;
    pub(super) const LEASE: u8 = 2;
    pub(super) const LEASED: u8 = 3;
    pub(super) const FORWARD: u8 = 4;
    pub(super) const RENDEZVOUS: u8 = 5;
    pub(super) const RELEASE: u8 = 6;
    pub(super) const REFUSED: u8 = 7;
    pub(super) const VERIFY: u8 = 8;
    pub(super) const VERDICT: u8 = 9;
    pub(super) const PRESENCE: u8 = 10;
}

fn put_text(out: &mut Vec<u8>, text: &str) -> Result<(), ControlError> {
    let len = u16::try_from(text.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_TEXT)
        .ok_or(ControlError::Length)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// A bounds-checked cursor over a frame body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ControlError> {
        if self.0.len() < n {
            return Err(ControlError::Length);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ControlError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ControlError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Result<u64, ControlError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn text(&mut self) -> Result<String, ControlError> {
        let len = usize::from(self.u16()?);
        if len > MAX_TEXT {
            return Err(ControlError::Length);
        }
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| ControlError::NotUtf8)
    }
    fn ip(&mut self) -> Result<IpAddr, ControlError> {
        match self.u8()? {
            4 => {
                let mut b = [0; 4];
                b.copy_from_slice(self.take(4)?);
                Ok(IpAddr::V4(Ipv4Addr::from(b)))
            }
            6 => {
                let mut b = [0; 16];
                b.copy_from_slice(self.take(16)?);
                Ok(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => Err(ControlError::Unknown),
        }
    }
    fn flag(&mut self) -> Result<bool, ControlError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ControlError::Unknown),
        }
    }
    fn end(&self) -> Result<(), ControlError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ControlError::Length)
        }
    }
}

impl Frame {
    /// Encodes the frame with its length prefix.
    ///
    /// # Errors
    ///
    /// [`ControlError::Length`] when a field or the frame exceeds its limit.
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        let mut out = vec![0, 0];
        match self {
            Self::Welcome => out.push(tag::WELCOME),
            Self::Lease { count } => {
                out.push(tag::LEASE);
                out.extend_from_slice(&count.to_be_bytes());
            }
            Self::Leased { ports } => {
                out.push(tag::LEASED);
                let count = u8::try_from(ports.len())
                    .ok()
                    .filter(|&n| usize::from(n) <= MAX_LEASED)
                    .ok_or(ControlError::Length)?;
                out.push(count);
                for port in ports {
                    out.extend_from_slice(&port.to_be_bytes());
                }
            }
            Self::Forward {
                id,
                port,
                peer,
                target,
                user,
            } => {
                out.push(tag::FORWARD);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&port.to_be_bytes());
                put_ip(&mut out, *peer);
                out.extend_from_slice(&target.to_be_bytes());
                put_text(&mut out, user)?;
            }
            Self::Rendezvous { legs, owner } => {
                out.push(tag::RENDEZVOUS);
                for (id, port, peer) in legs {
                    out.extend_from_slice(&id.to_be_bytes());
                    out.extend_from_slice(&port.to_be_bytes());
                    put_ip(&mut out, *peer);
                }
                put_text(&mut out, owner)?;
            }
            Self::Release { id } => {
                out.push(tag::RELEASE);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Self::Refused { id } => {
                out.push(tag::REFUSED);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Self::Verify {
                request,
                peer,
                credential,
            } => {
                out.push(tag::VERIFY);
                out.extend_from_slice(&request.to_be_bytes());
                put_ip(&mut out, *peer);
                put_text(&mut out, credential)?;
            }
            Self::Verdict { request, user } => {
                out.push(tag::VERDICT);
                out.extend_from_slice(&request.to_be_bytes());
                out.push(u8::from(user.is_some()));
                put_text(&mut out, user.as_deref().unwrap_or(""))?;
            }
            Self::Presence { user, online } => {
                out.push(tag::PRESENCE);
                out.push(u8::from(*online));
                put_text(&mut out, user)?;
            }
        }
        let len = u16::try_from(out.len() - 2)
            .ok()
            .filter(|&l| usize::from(l) <= MAX_FRAME)
            .ok_or(ControlError::Length)?;
        out[..2].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// Decodes a frame from its tag and body (the bytes after the length prefix).
    ///
    /// ```
    /// use relive_relay::control::Frame;
    /// let frame = Frame::Release { id: 7 };
    /// let bytes = frame.encode().unwrap();
    /// assert_eq!(Frame::decode(&bytes[2..]).unwrap(), frame);
    /// assert!(Frame::decode(&[99]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// See [`ControlError`].
    pub fn decode(frame: &[u8]) -> Result<Self, ControlError> {
        if frame.len() > MAX_FRAME {
            return Err(ControlError::Length);
        }
        let mut c = Cursor(frame);
        let decoded = match c.u8()? {
            tag::WELCOME => Self::Welcome,
            tag::LEASE => Self::Lease { count: c.u16()? },
            tag::LEASED => {
                let count = usize::from(c.u8()?);
                if count > MAX_LEASED {
                    return Err(ControlError::Length);
                }
                let ports = (0..count).map(|_| c.u16()).collect::<Result<_, _>>()?;
                Self::Leased { ports }
            }
            tag::FORWARD => Self::Forward {
                id: c.u64()?,
                port: c.u16()?,
                peer: c.ip()?,
                target: c.u16()?,
                user: c.text()?,
            },
            tag::RENDEZVOUS => {
                let a = (c.u64()?, c.u16()?, c.ip()?);
                let b = (c.u64()?, c.u16()?, c.ip()?);
                Self::Rendezvous {
                    legs: [a, b],
                    owner: c.text()?,
                }
            }
            tag::RELEASE => Self::Release { id: c.u64()? },
            tag::REFUSED => Self::Refused { id: c.u64()? },
            tag::VERIFY => Self::Verify {
                request: c.u64()?,
                peer: c.ip()?,
                credential: c.text()?,
            },
            tag::VERDICT => {
                let request = c.u64()?;
                let ok = c.flag()?;
                let user = c.text()?;
                if !ok && !user.is_empty() {
                    return Err(ControlError::Unknown);
                }
                Self::Verdict {
                    request,
                    user: ok.then_some(user),
                }
            }
            tag::PRESENCE => {
                let online = c.flag()?;
                Self::Presence {
                    user: c.text()?,
                    online,
                }
            }
            _ => return Err(ControlError::Unknown),
        };
        c.end()?;
        Ok(decoded)
    }
}

/// Reads a [`Hello`].
///
/// # Errors
///
/// See [`ControlError`].
pub async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, ControlError> {
    let mut header = [0; Hello::HEADER_LEN];
    r.read_exact(&mut header).await?;
    let len = Hello::decode(&header)?;
    let mut secret = vec![0; len];
    r.read_exact(&mut secret).await?;
    Ok(Hello { secret })
}

/// Reads one [`Frame`]; `Ok(None)` at a clean end of stream (between frames).
///
/// # Errors
///
/// See [`ControlError`].
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, ControlError> {
    let mut len = [0; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 || len > MAX_FRAME {
        return Err(ControlError::Length);
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Frame::decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    fn all_frames() -> Vec<Frame> {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        vec![
            Frame::Welcome,
            Frame::Lease { count: 8 },
            Frame::Leased {
                ports: vec![6891, 6892, 65535],
            },
            Frame::Leased { ports: vec![] },
            Frame::Forward {
                id: u64::MAX,
                port: 6891,
                peer: v4,
                target: 51234,
                user: "alice@example.com".into(),
            },
            Frame::Rendezvous {
                legs: [(1, 6891, v4), (2, 6892, v6)],
                owner: "bob@example.com".into(),
            },
            Frame::Release { id: 3 },
            Frame::Refused { id: 4 },
            Frame::Verify {
                request: 5,
                peer: IpAddr::from([198, 51, 100, 7]),
                credential: "alice@example.com tok".into(),
            },
            Frame::Verdict {
                request: 5,
                user: Some("alice@example.com".into()),
            },
            Frame::Verdict {
                request: 6,
                user: None,
            },
            Frame::Presence {
                user: "alice@example.com".into(),
                online: true,
            },
        ]
    }

    #[tokio::test]
    async fn every_frame_round_trips_through_a_tiny_pipe() {
        let (mut a, mut b) = tokio::io::duplex(5);
        let frames = all_frames();
        let hello = Hello {
            secret: b"0123456789abcdef0123".to_vec(),
        };
        let write = async {
            a.write_all(&hello.encode().unwrap()).await.unwrap();
            for f in &frames {
                a.write_all(&f.encode().unwrap()).await.unwrap();
            }
            drop(a);
        };
        let read = async {
            assert_eq!(read_hello(&mut b).await.unwrap(), hello);
            for f in &frames {
                assert_eq!(read_frame(&mut b).await.unwrap().as_ref(), Some(f));
            }
            assert!(read_frame(&mut b).await.unwrap().is_none());
        };
        tokio::join!(write, read);
    }

    #[test]
    fn secrets_and_credentials_stay_out_of_debug_output() {
        let hello = Hello {
            secret: b"top-secret-value".to_vec(),
        };
        assert!(!format!("{hello:?}").contains("top-secret"));
        let verify = Frame::Verify {
            request: 1,
            peer: IpAddr::from([127, 0, 0, 1]),
            credential: "alice@example.com hunter2".into(),
        };
        assert!(!format!("{verify:?}").contains("hunter2"));
    }

    #[test]
    fn secret_comparison() {
        let hello = Hello {
            secret: b"0123456789abcdef".to_vec(),
        };
        assert!(hello.matches(b"0123456789abcdef"));
        assert!(!hello.matches(b"0123456789abcdeF"));
        assert!(!hello.matches(b"0123456789abcdef0"));
        assert!(!hello.matches(b""));
    }

    #[tokio::test]
    async fn malformed_input_is_an_error_never_a_panic() {
        // Wrong magic, wrong version, oversized secret.
        assert!(matches!(
            Hello::decode(b"RLVA\x01\x00\x10"),
            Err(ControlError::BadMagic)
        ));
        // Version 1 (a relay from before `Verify` carried the agent's address) is refused.
        assert!(matches!(
            Hello::decode(b"RLVC\x01\x00\x10"),
            Err(ControlError::BadMagic)
        ));
        assert!(matches!(
            Hello::decode(b"RLVC\x02\xff\xff"),
            Err(ControlError::Length)
        ));
        let long = Hello {
            secret: vec![1; MAX_SECRET_BYTES + 1],
        };
        assert!(long.encode().is_err());
        // Unknown tag, empty frame, truncated and over-long bodies, bad enums, bad UTF-8.
        assert!(matches!(Frame::decode(&[0]), Err(ControlError::Unknown)));
        assert!(matches!(Frame::decode(&[]), Err(ControlError::Length)));
        assert!(matches!(
            Frame::decode(&[tag::RELEASE, 0, 0]),
            Err(ControlError::Length)
        ));
        assert!(matches!(
            Frame::decode(&[tag::WELCOME, 0]),
            Err(ControlError::Length)
        ));
        assert!(matches!(
            Frame::decode(&[tag::LEASED, 200]),
            Err(ControlError::Length)
        ));
        assert!(matches!(
            Frame::decode(&[tag::PRESENCE, 2, 0, 0]),
            Err(ControlError::Unknown)
        ));
        assert!(matches!(
            Frame::decode(&[tag::PRESENCE, 1, 0, 2, 0xff, 0xfe]),
            Err(ControlError::NotUtf8)
        ));
        assert!(matches!(
            Frame::decode(&[tag::PRESENCE, 1, 0xff, 0xff]),
            Err(ControlError::Length)
        ));
        let mut forward = Frame::Forward {
            id: 1,
            port: 2,
            peer: "127.0.0.1".parse().unwrap(),
            target: 3,
            user: "a".into(),
        }
        .encode()
        .unwrap();
        forward[13] = 5; // the address family (after length, tag, id, port)
        assert!(matches!(
            Frame::decode(&forward[2..]),
            Err(ControlError::Unknown)
        ));
        // Over-long fields are refused when encoding.
        assert!(
            Frame::Presence {
                user: "x".repeat(MAX_TEXT + 1),
                online: true
            }
            .encode()
            .is_err()
        );
        assert!(
            Frame::Leased {
                ports: vec![1; MAX_LEASED + 1]
            }
            .encode()
            .is_err()
        );
        // On the wire: a zero or over-long length prefix, and a frame cut short.
        for bad in [&[0u8, 0][..], &[0xff, 0xff], &[0, 9, tag::RELEASE, 0]] {
            let (mut a, mut b) = tokio::io::duplex(64);
            a.write_all(bad).await.unwrap();
            drop(a);
            assert!(read_frame(&mut b).await.is_err());
        }
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let body: Vec<u8> = (0..len)
                .map(|i| (x.rotate_left(i as u32 * 7) & 0xff) as u8)
                .collect();
            if let Ok(frame) = Frame::decode(&body) {
                // Whatever decodes encodes back to the same bytes.
                assert_eq!(frame.encode().unwrap()[2..], body[..]);
            }
        }
    }
}
