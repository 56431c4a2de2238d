//! Property tests: generated client commands and server messages survive encode → decode under
//! every implemented dialect, and the frame decoder never panics and respects its limits.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod strategies;

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use relive_msnp::client::{self as c, ClientCommand as C, Role};
use relive_msnp::frame::{self, Direction, Frame, MAX_LINE_BYTES, MAX_SERVER_PAYLOAD_BYTES};
use relive_msnp::server::{ListedContact, ServerMessage as M};
use relive_msnp::types::*;
use relive_msnp::version::{Capabilities, ProtocolVersion, SynGeneration, XfrNsForm};
use strategies::{client_command, server_message};

fn decode_exact(bytes: &[u8], dir: Direction) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = frame::decode(&mut buf, dir).unwrap().unwrap();
    assert!(buf.is_empty());
    f
}

/// What a decoder in dialect `caps` reconstructs from `m`'s encoding: fields the dialect does
/// not send come back neutral, and SYN sub-lines of old generations read as the reply forms.
fn as_seen_in(m: M, caps: &Capabilities) -> M {
    let bitmask = caps.syn == SynGeneration::Bitmask;
    let tail = |c: ClientCaps, o: Option<MsnObject>| {
        if !caps.presence_caps {
            (ClientCaps(0), None)
        } else {
            (c, o.filter(|_| caps.msn_object))
        }
    };
    match m {
        M::Ver {
            trid,
            versions,
            cvr0,
        } => M::Ver {
            cvr0: cvr0 && !versions.is_empty(),
            trid,
            versions,
        },
        M::UsrOk {
            trid,
            handle,
            name,
            verified,
        } => M::UsrOk {
            trid,
            name: if caps.usr_ok_name {
                name
            } else {
                handle.clone().into()
            },
            handle,
            verified: verified || !caps.usr_ok_verified,
        },
        M::XfrNs {
            trid,
            addr,
            current,
        } => {
            let current = if caps.xfr_ns_form == XfrNsForm::ZeroAndCurrent {
                current
            } else {
                addr.clone()
            };
            M::XfrNs {
                trid,
                addr,
                current,
            }
        }
        M::Syn {
            trid,
            version,
            counts,
        } => M::Syn {
            trid,
            version,
            counts: counts.filter(|_| bitmask),
        },
        M::SynGtc {
            trid,
            version,
            value,
        } if !bitmask => M::Gtc {
            trid,
            version,
            value,
        },
        M::SynGtc { value, .. } => M::SynGtc {
            trid: TrId(0),
            version: 0,
            value,
        },
        M::SynBlp {
            trid,
            version,
            value,
        } if !bitmask => M::Blp {
            trid,
            version,
            value,
        },
        M::SynBlp { value, .. } => M::SynBlp {
            trid: TrId(0),
            version: 0,
            value,
        },
        M::SynPrp {
            trid,
            version,
            prop,
            value,
        } if !bitmask => M::Prp {
            trid,
            version,
            prop,
            value,
        },
        M::SynPrp { prop, value, .. } => M::SynPrp {
            trid: TrId(0),
            version: 0,
            prop,
            value,
        },
        M::Bpr { prop, value, .. } if bitmask => M::Bpr {
            version: 0,
            handle: None,
            prop,
            value,
        },
        M::Lsg { group, name, .. } if bitmask => M::Lsg {
            trid: TrId(0),
            version: 0,
            index: 0,
            total: 0,
            group,
            name,
        },
        M::LstEntry {
            trid,
            list,
            version,
            index,
            total,
            contact,
        } => M::LstEntry {
            trid,
            list,
            version,
            index,
            total,
            contact: contact.map(|c| ListedContact {
                groups: c.groups.filter(|_| caps.groups),
                ..c
            }),
        },
        M::LstContact {
            handle,
            name,
            lists,
            groups,
        } => {
            let groups = if lists.contains(ListKind::Fl) {
                groups
            } else {
                Vec::new()
            };
            M::LstContact {
                handle,
                name,
                lists,
                groups,
            }
        }
        M::Add {
            group,
            trid,
            list,
            version,
            handle,
            name,
        } => M::Add {
            group: group.filter(|_| caps.groups),
            trid,
            list,
            version,
            handle,
            name,
        },
        M::Rem {
            group,
            trid,
            list,
            version,
            handle,
        } => M::Rem {
            group: group.filter(|_| caps.groups),
            trid,
            list,
            version,
            handle,
        },
        M::Chg {
            trid,
            status,
            caps: c,
            msn_object,
        } => {
            let (caps, msn_object) = tail(c, msn_object);
            M::Chg {
                trid,
                status,
                caps,
                msn_object,
            }
        }
        M::Iln {
            trid,
            status,
            handle,
            name,
            caps: c,
            msn_object,
        } => {
            let (caps, msn_object) = tail(c, msn_object);
            M::Iln {
                trid,
                status,
                handle,
                name,
                caps,
                msn_object,
            }
        }
        M::Nln {
            status,
            handle,
            name,
            caps: c,
            msn_object,
        } => {
            let (caps, msn_object) = tail(c, msn_object);
            M::Nln {
                status,
                handle,
                name,
                caps,
                msn_object,
            }
        }
        M::Qng { seconds } => M::Qng {
            seconds: if caps.qng_seconds { seconds } else { 0 },
        },
        M::Url {
            trid,
            url,
            login_url,
            site_id,
        } => M::Url {
            trid,
            url,
            login_url,
            site_id: if caps.ims { site_id } else { 0 },
        },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_commands_round_trip(cmd in client_command()) {
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        let frame = decode_exact(&out, Direction::ClientToServer);
        let role = if matches!(cmd, C::Usr(c::Usr::Switchboard { .. })) { Role::Switchboard } else { Role::Notification };
        let caps = Capabilities::for_version(ProtocolVersion::MSNP9);
        prop_assert_eq!(C::from_frame(&frame, role, &caps).unwrap(), cmd);
    }

    #[test]
    fn server_messages_round_trip_in_every_dialect(msg in server_message(), n in 2u8..=9) {
        let caps = Capabilities::for_version(ProtocolVersion::new(n).unwrap());
        let mut out = BytesMut::new();
        msg.encode(&caps, &mut out);
        let frame = decode_exact(&out, Direction::ServerToClient);
        let role = if matches!(msg, M::SbUsrOk { .. }) { Role::Switchboard } else { Role::Notification };
        let back = M::from_frame(&frame, role, &caps).unwrap();
        prop_assert_eq!(&back, &as_seen_in(msg, &caps));
        let mut again = BytesMut::new();
        back.encode(&caps, &mut again);
        prop_assert_eq!(again, out);
    }

    #[test]
    fn decode_never_panics_and_bounds_buffering(bytes in vec(any::<u8>(), 0..6000), to_server in any::<bool>()) {
        let dir = if to_server { Direction::ClientToServer } else { Direction::ServerToClient };
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match frame::decode(&mut buf, dir) {
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Ok(None) => {
                    prop_assert!(buf.len() < MAX_LINE_BYTES + MAX_SERVER_PAYLOAD_BYTES);
                    break;
                }
                Err(_) => break,
            }
        }
    }
}
