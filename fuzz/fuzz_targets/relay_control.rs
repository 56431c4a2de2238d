//! The relay control protocol (server ↔ standalone relay): `Hello` and every frame, through
//! the sans-IO decoders and the async readers over the same bytes. Whatever decodes must
//! encode back to bytes that decode to the same value.
//!
//! Written against the public entry points (`Frame::decode`, `Frame::encode`, `read_frame`,
//! `read_hello`) so a change of wire format keeps the target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_fuzz::{Choices, run_ready};
use relive_relay::control::{Frame, read_frame, read_hello};

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let selector = choices.byte();
    let input = choices.rest();
    if selector & 1 == 0 {
        if let Ok(frame) = Frame::decode(input) {
            let bytes = frame.encode().expect("a decoded frame encodes");
            assert_eq!(Frame::decode(&bytes[2..]).expect("re-decodes"), frame);
        }
        // A stream of length-prefixed frames.
        let mut reader = input;
        for _ in 0..64 {
            match run_ready(read_frame(&mut reader)) {
                Some(Ok(Some(_))) => {}
                _ => break,
            }
        }
    } else {
        let mut reader = input;
        if let Some(Ok(hello)) = run_ready(read_hello(&mut reader)) {
            let bytes = hello.encode().expect("a decoded hello encodes");
            let again = run_ready(read_hello(&mut bytes.as_slice()))
                .expect("ready")
                .expect("re-decodes");
            assert!(again.matches(&hello.secret));
        }
    }
});
