//! The companion-agent protocol (agent ↔ relay over QUIC): `Hello`, `Reply`, `Grant` and
//! `Open`, through the async readers over a byte slice (what the relay and the agent read
//! from their streams). Decoded values must encode back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_fuzz::{Choices, run_ready};
use relive_relay::proto::{read_grant, read_hello, read_open, read_reply};

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let selector = choices.byte();
    let mut input = choices.rest();
    match selector % 4 {
        0 => {
            if let Some(Ok(hello)) = run_ready(read_hello(&mut input)) {
                let bytes = hello.encode().expect("a decoded hello encodes");
                let again = run_ready(read_hello(&mut bytes.as_slice()));
                assert_eq!(again.expect("ready").expect("re-decodes"), hello);
            }
        }
        1 => {
            if let Some(Ok(reply)) = run_ready(read_reply(&mut input)) {
                let bytes = reply.encode();
                let again = run_ready(read_reply(&mut bytes.as_slice()));
                assert_eq!(again.expect("ready").expect("re-decodes"), reply);
            }
        }
        2 => {
            for _ in 0..64 {
                match run_ready(read_grant(&mut input)) {
                    Some(Ok(Some(grant))) => {
                        let bytes = grant.encode();
                        let again = run_ready(read_grant(&mut bytes.as_slice()));
                        assert_eq!(again.expect("ready").expect("re-decodes"), Some(grant));
                    }
                    _ => break,
                }
            }
        }
        _ => {
            let _ = run_ready(read_open(&mut input));
        }
    }
});
