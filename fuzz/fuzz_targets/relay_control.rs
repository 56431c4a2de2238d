//! The relay control protocol (server ↔ standalone relay): `ToRelay` and `ToServer` in the
//! relay protocols' framing (`relive_relay::wire`: postcard in length-delimited frames), as
//! each side's codec reads a stream of them. Whatever decodes must encode back to bytes that
//! decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_fuzz::{Choices, relay_round_trip};
use relive_relay::control::{MAX_FRAME, ToRelay, ToServer};

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let selector = choices.byte();
    let input = choices.rest();
    if selector & 1 == 0 {
        relay_round_trip!(ToRelay, input, MAX_FRAME);
    } else {
        relay_round_trip!(ToServer, input, MAX_FRAME);
    }
});
