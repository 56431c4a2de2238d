//! The MSNP decoder on what a server sends, and the server-message parser (what the test
//! clients and the bench read), in every implemented dialect for both roles. A message that
//! parses must encode to something that parses back to it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use relive_msnp::client::Role;
use relive_msnp::frame::{Direction, decode};
use relive_msnp::server::ServerMessage;
use relive_msnp::version::{Capabilities, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode(&mut buf, Direction::ServerToClient) {
        for n in 2..=9 {
            let Some(version) = ProtocolVersion::new(n) else {
                continue;
            };
            let caps = Capabilities::for_version(version);
            for role in [Role::Notification, Role::Switchboard] {
                let Ok(message) = ServerMessage::from_frame(&frame, role, &caps) else {
                    continue;
                };
                let mut bytes = BytesMut::new();
                message.encode(&caps, &mut bytes);
                // The encoding must at least frame; a dialect may drop fields a message
                // cannot carry, so only the framing is required to hold.
                assert!(
                    !matches!(decode(&mut bytes, Direction::ServerToClient), Err(_)),
                    "an encoded server message does not frame: {message:?}"
                );
            }
        }
    }
});
