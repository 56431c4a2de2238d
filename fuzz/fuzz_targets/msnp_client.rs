//! The MSNP decoder and every client command parser, as the NS and the SB run them on what a
//! client sends: the byte stream is framed whole and again split at a fuzzer-chosen point
//! (framing must survive any split), and every frame is parsed in each implemented dialect
//! for both roles. A command that parses must survive encode → decode → parse unchanged.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use relive_fuzz::Choices;
use relive_msnp::client::{ClientCommand, Role};
use relive_msnp::frame::{Direction, Frame, decode};
use relive_msnp::session::{NsSession, SbSession};
use relive_msnp::version::{Capabilities, ProtocolVersion};

/// Frames of `chunks` fed one after another into one buffer, and the error that ended them.
fn frames(chunks: &[&[u8]]) -> (Vec<Frame>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode(&mut buf, Direction::ClientToServer) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let split = usize::from(choices.u16());
    let input = choices.rest();
    let whole = frames(&[input]);
    let at = split % (input.len() + 1);
    let (a, b) = input.split_at(at);
    let parts = frames(&[a, b]);
    assert_eq!(
        whole, parts,
        "framing depends on where the stream was split"
    );

    let mut ns = NsSession::new(ProtocolVersion::IMPLEMENTED);
    let sb = SbSession::new();
    for frame in &whole.0 {
        for version in [
            ProtocolVersion::MSNP2,
            ProtocolVersion::MSNP7,
            ProtocolVersion::MSNP9,
        ] {
            let caps = Capabilities::for_version(version);
            for role in [Role::Notification, Role::Switchboard] {
                let Ok(cmd) = ClientCommand::from_frame(frame, role, &caps) else {
                    continue;
                };
                // An unmodelled name keeps only its name and trid (the server answers it with
                // an error and never writes it), so it has no wire form to round-trip; a
                // payload verb such as MSNP13's `ADL` would re-frame without its length.
                if matches!(cmd, ClientCommand::Unknown { .. }) {
                    continue;
                }
                let mut bytes = BytesMut::new();
                cmd.encode(&mut bytes);
                let again = decode(&mut bytes, Direction::ClientToServer)
                    .expect("an encoded command frames")
                    .expect("an encoded command is complete");
                assert!(bytes.is_empty(), "encoding left bytes over");
                let reparsed = ClientCommand::from_frame(&again, role, &caps)
                    .expect("an encoded command parses");
                assert_eq!(cmd, reparsed, "command changed in a round trip");
                if version == ProtocolVersion::MSNP9 {
                    match role {
                        Role::Notification => drop(ns.on_command(&cmd)),
                        Role::Switchboard => drop(sb.on_command(&cmd)),
                    }
                }
            }
        }
    }
});
