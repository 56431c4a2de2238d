//! The framing both relay protocols share (the control protocol between `relive-server` and a
//! standalone relay, [`crate::control`], and the companion-agent protocol, [`crate::proto`]):
//! every message is one serde value encoded with [postcard], in a frame of tokio-util's
//! [`LengthDelimitedCodec`] with a 2-byte big-endian length.
//!
//! ```text
//! length u16 BE (≤ the protocol's maximum) | postcard bytes of one message
//! ```
//!
//! [`Codec<In, Out>`] decodes `In` and encodes `Out`, so each side of a protocol can only
//! read what the other side may send. A frame longer than the maximum, a message that does not
//! decode, and bytes left over after the message are errors; nothing is allocated beyond the
//! maximum. Streams use it through [`FramedRead`](tokio_util::codec::FramedRead) and
//! [`FramedWrite`](tokio_util::codec::FramedWrite), whose `next` is cancel-safe (a session
//! loop `select!`s on it directly).
//!
//! [postcard]: https://docs.rs/postcard

use std::marker::PhantomData;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing the stream failed, or a length prefix exceeds the maximum.
    #[error("relay protocol I/O")]
    Io(#[from] std::io::Error),
    /// A frame's bytes are not one message of the expected type.
    #[error("malformed relay protocol message")]
    Malformed,
    /// A message that does not fit in a frame.
    #[error("relay protocol message too long")]
    TooLong,
}

/// Length-delimited postcard frames: decodes `In`, encodes `Out` (see the module doc).
pub struct Codec<In, Out> {
    frames: LengthDelimitedCodec,
    max: usize,
    types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> std::fmt::Debug for Codec<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("max", &self.max).finish()
    }
}

impl<In, Out> Codec<In, Out> {
    /// A codec for frames of at most `max` bytes (at most `u16::MAX`).
    #[must_use]
    pub fn new(max: usize) -> Self {
        let max = max.min(usize::from(u16::MAX));
        Self {
            frames: LengthDelimitedCodec::builder()
                .length_field_type::<u16>()
                .max_frame_length(max)
                .new_codec(),
            max,
            types: PhantomData,
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for Codec<In, Out> {
    type Item = In;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, WireError> {
        let Some(frame) = self.frames.decode(src)? else {
            return Ok(None);
        };
        match postcard::take_from_bytes(&frame) {
            Ok((message, [])) => Ok(Some(message)),
            Ok(_) | Err(_) => Err(WireError::Malformed),
        }
    }
}

impl<In, Out: Serialize> Encoder<Out> for Codec<In, Out> {
    type Error = WireError;

    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), WireError> {
        let body =
            postcard::to_extend(&message, BytesMut::new()).map_err(|_| WireError::Malformed)?;
        if body.len() > self.max {
            return Err(WireError::TooLong);
        }
        self.frames.encode(body.freeze(), dst)?;
        Ok(())
    }
}

/// `message` as one frame of at most `max` bytes (length prefix included), for tests, seeds
/// and one-off writes.
///
/// # Errors
///
/// [`WireError::TooLong`].
pub fn encode<T: Serialize>(message: T, max: usize) -> Result<BytesMut, WireError> {
    let mut out = BytesMut::new();
    Codec::<(), T>::new(max).encode(message, &mut out)?;
    Ok(out)
}

/// Every message in `bytes`, in order, up to the first error; the error (if any) and the
/// number of bytes left undecoded at the end (of an incomplete frame whose length prefix was
/// read, only its body).
pub fn decode_all<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> (Vec<T>, Option<WireError>, usize) {
    let mut codec = Codec::<T, ()>::new(max);
    let mut buf = BytesMut::from(bytes);
    let mut messages = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => return (messages, None, buf.len()),
            Err(error) => return (messages, Some(error), buf.len()),
        }
    }
}

/// A value that must never be logged (a secret, a token, a credential): its `Debug` is `***`;
/// on the wire it is the value itself.
#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
    enum Message {
        Ping { id: u64 },
        Text(String),
    }

    #[test]
    fn frames_round_trip_split_anywhere() {
        let messages = [
            Message::Ping { id: u64::MAX },
            Message::Text("héllo".into()),
            Message::Ping { id: 0 },
        ];
        let mut bytes = Vec::new();
        for m in &messages {
            bytes.extend_from_slice(&encode(m.clone(), 64).unwrap());
        }
        // A u16 length (variant byte + u64::MAX as a 10-byte varint), then the variant.
        assert_eq!(
            &bytes[..3],
            &[0, 11, 0],
            "u16 length, then the postcard variant"
        );
        for split in 0..bytes.len() {
            let mut codec = Codec::<Message, ()>::new(64);
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut got = Vec::new();
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                got.push(m);
            }
            buf.extend_from_slice(&bytes[split..]);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                got.push(m);
            }
            assert_eq!(got, messages, "split at {split}");
        }
    }

    #[test]
    fn oversized_malformed_and_trailing_bytes_are_errors() {
        let long = Message::Text("x".repeat(100));
        assert!(matches!(encode(long, 64), Err(WireError::TooLong)));
        // A length prefix over the maximum fails before anything is buffered for it.
        let (got, error, _) = decode_all::<Message>(&[0xff, 0xff, 0], 64);
        assert!(got.is_empty() && matches!(error, Some(WireError::Io(_))));
        // An unknown variant, a truncated body, bytes after the message.
        for body in [&[7u8][..], &[1, 5, b'a'], &[0, 1, 0]] {
            let mut frame = vec![0, u8::try_from(body.len()).unwrap()];
            frame.extend_from_slice(body);
            let (got, error, _) = decode_all::<Message>(&frame, 64);
            assert!(got.is_empty(), "{body:?}");
            assert!(matches!(error, Some(WireError::Malformed)), "{body:?}");
        }
        // Incomplete: nothing yet, no error; the length prefix is taken, the body waits.
        let (got, error, left) = decode_all::<Message>(&[0, 9, 0], 64);
        assert!(got.is_empty() && error.is_none() && left == 1);
    }

    #[test]
    fn redacted_values_stay_out_of_debug_output() {
        let secret = Redacted("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "***");
        let bytes = encode(secret.clone(), 64).unwrap();
        let (got, _, _) = decode_all::<Redacted<String>>(&bytes, 64);
        assert_eq!(got, [secret]);
    }
}
