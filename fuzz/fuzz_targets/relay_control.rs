//! The relay control protocol (server ↔ standalone relay): `ToRelay` and `ToServer` in the
//! relay protocols' framing (`relive_relay::wire`: postcard in length-delimited frames), as
//! each side's codec reads a stream of them. Whatever decodes must encode back to bytes that
//! decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_fuzz::Choices;
use relive_relay::control::{MAX_FRAME, ToRelay, ToServer};
use relive_relay::wire::{decode_all, encode};

/// Decodes a stream of `$ty` frames; each message re-encodes to itself.
macro_rules! round_trip {
    ($ty:ty, $input:expr) => {{
        let (messages, _, _) = decode_all::<$ty>($input, MAX_FRAME);
        for message in messages {
            let bytes = encode(message.clone(), MAX_FRAME).expect("a decoded message encodes");
            let (again, error, left) = decode_all::<$ty>(&bytes, MAX_FRAME);
            assert!(error.is_none() && left == 0);
            assert_eq!(again, [message]);
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let selector = choices.byte();
    let input = choices.rest();
    if selector & 1 == 0 {
        round_trip!(ToRelay, input);
    } else {
        round_trip!(ToServer, input);
    }
});
