//! The companion-agent protocol spoken over QUIC between the relay and an agent.
//!
//! ```text
//! control stream (the first bi-stream, opened by the agent):
//!   agent → relay   Hello   "RLVA" | version u8 (1) | token length u16 BE | token
//!   relay → agent   Reply   status u8 (0 welcome, 1 denied) | user length u16 BE | user
//!   relay → agent   Grant   tag u8 (1) | allocation id u64 BE | local port u16 BE   (repeated)
//! relay stream (one bi-stream per relayed TCP connection, opened by the relay):
//!   relay → agent   Open    allocation id u64 BE, then raw bytes both ways
//! ```
//!
//! A relay stream names only an allocation id. The port it reaches comes from the `Grant`
//! the relay sent when it rewrote the user's own invitation, each grant is good for one
//! stream, and the agent only ever dials its own machine: a stream cannot name a host or a
//! port, so the agent is no proxy. The codec is sans-IO ([`Hello::encode`],
//! [`Hello::decode_header`], …) with thin async helpers over any stream.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// First bytes of a [`Hello`].
pub const MAGIC: [u8; 4] = *b"RLVA";
/// Protocol version.
pub const VERSION: u8 = 1;
/// Longest token accepted.
pub const MAX_TOKEN_BYTES: usize = 512;
/// Longest user name in a [`Reply`].
pub const MAX_USER_BYTES: usize = 256;
/// Size of an encoded [`Grant`].
pub const GRANT_LEN: usize = 11;
const GRANT_TAG: u8 = 1;

/// A malformed or oversized frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The peer does not speak this protocol or version.
    #[error("not a Relive agent peer or wrong version")]
    BadMagic,
    /// A length field exceeds its limit.
    #[error("agent protocol field too long")]
    TooLong,
    /// An unknown frame tag or status.
    #[error("unknown agent protocol frame")]
    Unknown,
    /// A text field is not UTF-8.
    #[error("agent protocol text is not UTF-8")]
    NotUtf8,
    /// Reading or writing failed.
    #[error("agent protocol I/O")]
    Io(#[from] std::io::Error),
}

/// The agent's first message: its account token.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// The access token (never logged).
    pub token: String,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello").field("token", &"***").finish()
    }
}

impl Hello {
    /// Size of the fixed part before the token.
    pub const HEADER_LEN: usize = 7;

    /// Encodes the frame.
    ///
    /// # Errors
    ///
    /// [`ProtoError::TooLong`] if the token exceeds [`MAX_TOKEN_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let len = u16::try_from(self.token.len())
            .ok()
            .filter(|&l| usize::from(l) <= MAX_TOKEN_BYTES)
            .ok_or(ProtoError::TooLong)?;
        let mut out = Vec::with_capacity(Self::HEADER_LEN + self.token.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.token.as_bytes());
        Ok(out)
    }

    /// Checks the fixed part and returns the token length that follows.
    ///
    /// ```
    /// use relive_relay::proto::Hello;
    /// let frame = Hello { token: "abc".into() }.encode().unwrap();
    /// let header: [u8; Hello::HEADER_LEN] = frame[..7].try_into().unwrap();
    /// assert_eq!(Hello::decode_header(&header).unwrap(), 3);
    /// assert!(Hello::decode_header(b"HTTP/1.").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProtoError::BadMagic`] or [`ProtoError::TooLong`].
    pub fn decode_header(header: &[u8; Self::HEADER_LEN]) -> Result<usize, ProtoError> {
        if header[..4] != MAGIC || header[4] != VERSION {
            return Err(ProtoError::BadMagic);
        }
        let len = usize::from(u16::from_be_bytes([header[5], header[6]]));
        if len > MAX_TOKEN_BYTES {
            return Err(ProtoError::TooLong);
        }
        Ok(len)
    }
}

/// The relay's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Authenticated as this user.
    Welcome(String),
    /// The token was not accepted.
    Denied,
}

impl Reply {
    /// Encodes the frame (a user name longer than [`MAX_USER_BYTES`] is cut at a char
    /// boundary).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Welcome(user) => {
                let mut end = user.len().min(MAX_USER_BYTES);
                while !user.is_char_boundary(end) {
                    end -= 1;
                }
                let mut out = vec![0];
                // end ≤ MAX_USER_BYTES fits a u16.
                out.extend_from_slice(&u16::try_from(end).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(&user.as_bytes()[..end]);
                out
            }
            Self::Denied => vec![1, 0, 0],
        }
    }
}

/// Permission for one relay stream to reach one local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The relay allocation the stream will name.
    pub id: u64,
    /// The local port the user's MSN client listens on.
    pub port: u16,
}

impl Grant {
    /// Encodes the frame.
    pub fn encode(&self) -> [u8; GRANT_LEN] {
        let mut out = [0; GRANT_LEN];
        out[0] = GRANT_TAG;
        out[1..9].copy_from_slice(&self.id.to_be_bytes());
        out[9..11].copy_from_slice(&self.port.to_be_bytes());
        out
    }

    /// Decodes the frame.
    ///
    /// ```
    /// use relive_relay::proto::Grant;
    /// let g = Grant { id: 7, port: 6891 };
    /// assert_eq!(Grant::decode(&g.encode()).unwrap(), g);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProtoError::Unknown`] for another tag.
    pub fn decode(frame: &[u8; GRANT_LEN]) -> Result<Self, ProtoError> {
        if frame[0] != GRANT_TAG {
            return Err(ProtoError::Unknown);
        }
        let mut id = [0; 8];
        id.copy_from_slice(&frame[1..9]);
        Ok(Self {
            id: u64::from_be_bytes(id),
            port: u16::from_be_bytes([frame[9], frame[10]]),
        })
    }
}

/// Reads a [`Hello`].
///
/// # Errors
///
/// See [`ProtoError`].
pub async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, ProtoError> {
    let mut header = [0; Hello::HEADER_LEN];
    r.read_exact(&mut header).await?;
    let len = Hello::decode_header(&header)?;
    let mut token = vec![0; len];
    r.read_exact(&mut token).await?;
    let token = String::from_utf8(token).map_err(|_| ProtoError::NotUtf8)?;
    Ok(Hello { token })
}

/// Reads a [`Reply`].
///
/// # Errors
///
/// See [`ProtoError`].
pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> Result<Reply, ProtoError> {
    let mut header = [0; 3];
    r.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if len > MAX_USER_BYTES {
        return Err(ProtoError::TooLong);
    }
    let mut user = vec![0; len];
    r.read_exact(&mut user).await?;
    match header[0] {
        0 => Ok(Reply::Welcome(
            String::from_utf8(user).map_err(|_| ProtoError::NotUtf8)?,
        )),
        1 => Ok(Reply::Denied),
        _ => Err(ProtoError::Unknown),
    }
}

/// Reads a [`Grant`]; `Ok(None)` at a clean end of stream.
///
/// # Errors
///
/// See [`ProtoError`].
pub async fn read_grant<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Grant>, ProtoError> {
    let mut frame = [0; GRANT_LEN];
    match r.read_exact(&mut frame).await {
        Ok(_) => Grant::decode(&frame).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the `Open` header of a relay stream.
///
/// # Errors
///
/// [`ProtoError::Io`].
pub async fn write_open<W: AsyncWrite + Unpin>(w: &mut W, id: u64) -> Result<(), ProtoError> {
    w.write_all(&id.to_be_bytes()).await?;
    Ok(())
}

/// Reads the `Open` header of a relay stream.
///
/// # Errors
///
/// [`ProtoError::Io`].
pub async fn read_open<R: AsyncRead + Unpin>(r: &mut R) -> Result<u64, ProtoError> {
    let mut id = [0; 8];
    r.read_exact(&mut id).await?;
    Ok(u64::from_be_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn frames_round_trip_through_a_tiny_pipe() {
        let (mut a, mut b) = duplex(8);
        let hello = Hello {
            token: "tok-123".into(),
        };
        let write = async {
            a.write_all(&hello.encode().unwrap()).await.unwrap();
            a.write_all(&Reply::Welcome("bob@example.com".into()).encode())
                .await
                .unwrap();
            a.write_all(&Reply::Denied.encode()).await.unwrap();
            a.write_all(&Grant { id: 9, port: 6891 }.encode())
                .await
                .unwrap();
            write_open(&mut a, 9).await.unwrap();
            drop(a);
        };
        let read = async {
            assert_eq!(read_hello(&mut b).await.unwrap(), hello);
            assert_eq!(
                read_reply(&mut b).await.unwrap(),
                Reply::Welcome("bob@example.com".into())
            );
            assert_eq!(read_reply(&mut b).await.unwrap(), Reply::Denied);
            assert_eq!(
                read_grant(&mut b).await.unwrap(),
                Some(Grant { id: 9, port: 6891 })
            );
            assert_eq!(read_open(&mut b).await.unwrap(), 9);
            assert_eq!(read_grant(&mut b).await.unwrap(), None);
        };
        tokio::join!(write, read);
    }

    #[test]
    fn limits_are_enforced() {
        let long = Hello {
            token: "x".repeat(MAX_TOKEN_BYTES + 1),
        };
        assert!(matches!(long.encode(), Err(ProtoError::TooLong)));
        let mut header = *b"RLVA\x01\xff\xff";
        assert!(matches!(
            Hello::decode_header(&header),
            Err(ProtoError::TooLong)
        ));
        header[4] = 2;
        assert!(matches!(
            Hello::decode_header(&header),
            Err(ProtoError::BadMagic)
        ));
        assert!(
            format!(
                "{:?}",
                Hello {
                    token: "secret".into()
                }
            )
            .contains("***")
        );
        let mut grant = Grant { id: 1, port: 2 }.encode();
        grant[0] = 7;
        assert!(matches!(Grant::decode(&grant), Err(ProtoError::Unknown)));
    }
}
