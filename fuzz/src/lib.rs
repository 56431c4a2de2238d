//! Helpers shared by the fuzz targets: a cursor that takes choices from the front of the
//! fuzzer's input, and a way to run the relay's async readers over a byte slice.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Takes small decisions (split points, flags, dialects) from the front of the input; what
/// is left is the data under test.
#[derive(Debug)]
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// A cursor over `data`.
    #[must_use]
    pub const fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, or 0 once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian number.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Everything not taken yet.
    #[must_use]
    pub const fn rest(&self) -> &'a [u8] {
        self.data
    }
}

/// Runs `future` to completion without a runtime. Only for futures that never wait on
/// anything but their input, such as the relay's readers over a byte slice (always ready);
/// anything else is reported as `None`.
pub fn run_ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // A slice reader never returns Pending; a few polls are plenty.
    for _ in 0..4 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// Decodes `$input` as a stream of `$ty` frames in the relay protocols' framing (at most
/// `$max` bytes each) and checks that every message that decodes encodes back to bytes that
/// decode to the same message, with nothing left over.
#[macro_export]
macro_rules! relay_round_trip {
    ($ty:ty, $input:expr, $max:expr) => {{
        let (messages, _, _) = relive_relay::wire::decode_all::<$ty>($input, $max);
        for message in messages {
            let bytes = relive_relay::wire::encode(message.clone(), $max)
                .expect("a decoded message encodes");
            let (again, error, left) = relive_relay::wire::decode_all::<$ty>(&bytes, $max);
            assert!(error.is_none() && left == 0);
            assert_eq!(again, [message]);
        }
    }};
}
