//! The companion-agent protocol (agent ↔ relay over QUIC): `AgentHello`, `ToAgent` and
//! `Open` in the relay protocols' framing (`relive_relay::wire`: postcard in length-delimited
//! frames), and the relay-stream header reader over a byte slice. Whatever decodes must
//! encode back to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_fuzz::{Choices, run_ready};
use relive_relay::proto::{AgentHello, MAX_FRAME, Open, ToAgent, read_open};
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
    match selector % 4 {
        0 => round_trip!(AgentHello, input),
        1 => round_trip!(ToAgent, input),
        2 => round_trip!(Open, input),
        _ => {
            let _ = run_ready(read_open(input));
        }
    }
});
