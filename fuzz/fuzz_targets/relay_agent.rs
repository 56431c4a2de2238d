//! The companion-agent protocol (agent ↔ relay over QUIC): `AgentHello`, `ToAgent` and
//! `Open` in the relay protocols' framing (`relive_relay::wire`: postcard in length-delimited
//! frames), and the relay-stream header reader over a byte slice. Whatever decodes must
//! encode back to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_fuzz::{Choices, relay_round_trip, run_ready};
use relive_relay::proto::{AgentHello, MAX_FRAME, Open, ToAgent, read_open};

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let selector = choices.byte();
    let input = choices.rest();
    match selector % 4 {
        0 => relay_round_trip!(AgentHello, input, MAX_FRAME),
        1 => relay_round_trip!(ToAgent, input, MAX_FRAME),
        2 => relay_round_trip!(Open, input, MAX_FRAME),
        _ => {
            let _ = run_ready(read_open(input));
        }
    }
});
