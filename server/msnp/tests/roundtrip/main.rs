//! Property tests: generated client commands and server messages survive encode → decode under
//! every implemented dialect (MSNP2–12), and the frame decoder never panics and respects its
//! limits.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod strategies;

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use relive_msnp::client::{self as c, ClientCommand as C, Role};
use relive_msnp::frame::{self, Direction, Frame, MAX_LINE_BYTES, MAX_SERVER_PAYLOAD_BYTES};
use relive_msnp::server::{ListedContact, ServerMessage as M};
use relive_msnp::types::*;
use relive_msnp::version::{Capabilities, ProtocolVersion, XfrNsForm};
use strategies::{client_command, server_message};

fn decode_exact(bytes: &[u8], dir: Direction) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = frame::decode(&mut buf, dir).unwrap().unwrap();
    assert!(buf.is_empty());
    f
}

/// A group key as a dialect writes it: the number before MSNP10 (GUID neutral), the GUID
/// after (number neutral).
fn key_seen_in(g: GroupKey, caps: &Capabilities) -> GroupKey {
    if caps.abch {
        GroupKey::new(GroupId(0), g.guid)
    } else {
        GroupKey::new(g.id, Guid::NIL)
    }
}

/// Whether the server sends `m` in dialect `caps` at all (the rest does not round-trip):
/// GUID-addressed removals exist from MSNP10, old-generation `LST` entries before it.
fn sent_in(m: &M, caps: &Capabilities) -> bool {
    match m {
        M::RemGuid { .. } => caps.abch,
        M::LstEntry { .. } => !caps.abch,
        _ => true,
    }
}

/// What a decoder in dialect `caps` reconstructs from `m`'s encoding: fields the dialect does
/// not send come back neutral, and SYN sub-lines of old generations read as the reply forms.
#[allow(clippy::too_many_lines, reason = "one arm per message kind")]
fn as_seen_in(m: M, caps: &Capabilities) -> M {
    let bitmask = caps.syn.is_bitmask();
    let version_seen = |v: u32| if caps.abch { 0 } else { v };
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
            stamp,
            counts,
        } => M::Syn {
            trid,
            version: version_seen(version),
            stamp: if caps.abch {
                stamp
            } else {
                ListStamp::default()
            },
            counts: counts.filter(|_| bitmask),
        },
        M::Gtc {
            trid,
            version,
            value,
        } => M::Gtc {
            trid,
            version: version_seen(version),
            value,
        },
        M::Blp {
            trid,
            version,
            value,
        } => M::Blp {
            trid,
            version: version_seen(version),
            value,
        },
        M::Prp {
            trid,
            version,
            prop,
            value,
        } => M::Prp {
            trid,
            version: version_seen(version),
            prop,
            value,
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
            group: key_seen_in(group, caps),
            name,
        },
        M::Lsg {
            trid,
            version,
            index,
            total,
            group,
            name,
        } => M::Lsg {
            trid,
            version,
            index,
            total,
            group: key_seen_in(group, caps),
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
            guid,
        } => {
            let fl = lists.contains(ListKind::Fl);
            let groups = if fl {
                groups.into_iter().map(|g| key_seen_in(g, caps)).collect()
            } else {
                Vec::new()
            };
            M::LstContact {
                handle,
                name,
                lists,
                groups,
                guid: if caps.abch && fl { guid } else { Guid::NIL },
            }
        }
        M::Add {
            trid,
            list,
            handle,
            name,
            guid,
            ..
        } if caps.abch => M::Add {
            group: None,
            trid,
            list,
            version: 0,
            name: if matches!(list, ListKind::Fl | ListKind::Rl) {
                name
            } else {
                handle.clone().into()
            },
            guid: if list == ListKind::Fl {
                guid
            } else {
                Guid::NIL
            },
            handle,
        },
        M::Add {
            group,
            trid,
            list,
            version,
            handle,
            name,
            ..
        } => M::Add {
            group: group.filter(|_| caps.groups).map(|g| key_seen_in(g, caps)),
            trid,
            list,
            version,
            handle,
            name,
            guid: Guid::NIL,
        },
        M::Rem {
            group,
            trid,
            list,
            version,
            handle,
        } => M::Rem {
            group: group
                .filter(|_| caps.groups && !caps.abch)
                .map(|g| key_seen_in(g, caps)),
            trid,
            list,
            version: version_seen(version),
            handle,
        },
        M::Adg {
            trid,
            version,
            name,
            group,
        } => M::Adg {
            trid,
            version: version_seen(version),
            name,
            group: key_seen_in(group, caps),
        },
        M::Rmg {
            trid,
            version,
            group,
        } => M::Rmg {
            trid,
            version: version_seen(version),
            group: key_seen_in(group, caps),
        },
        M::Reg {
            trid,
            version,
            group,
            name,
        } => M::Reg {
            trid,
            version: version_seen(version),
            group: key_seen_in(group, caps),
            name,
        },
        M::Iro {
            trid,
            index,
            total,
            handle,
            name,
            caps: c,
        } => M::Iro {
            trid,
            index,
            total,
            handle,
            name,
            caps: if caps.sb_caps { c } else { ClientCaps(0) },
        },
        M::Joi {
            handle,
            name,
            caps: c,
        } => M::Joi {
            handle,
            name,
            caps: if caps.sb_caps { c } else { ClientCaps(0) },
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
    fn client_commands_round_trip(cmd in client_command(false)) {
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        let frame = decode_exact(&out, Direction::ClientToServer);
        let role = if matches!(cmd, C::Usr(c::Usr::Switchboard { .. })) { Role::Switchboard } else { Role::Notification };
        let caps = Capabilities::for_version(ProtocolVersion::MSNP9);
        prop_assert_eq!(C::from_frame(&frame, role, &caps).unwrap(), cmd);
    }

    #[test]
    fn address_book_commands_round_trip(cmd in client_command(true)) {
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        let frame = decode_exact(&out, Direction::ClientToServer);
        let role = if matches!(cmd, C::Usr(c::Usr::Switchboard { .. })) { Role::Switchboard } else { Role::Notification };
        let caps = Capabilities::for_version(ProtocolVersion::MSNP12);
        prop_assert_eq!(C::from_frame(&frame, role, &caps).unwrap(), cmd);
    }

    #[test]
    fn server_messages_round_trip_in_every_dialect(msg in server_message(), n in 2u8..=12) {
        let caps = Capabilities::for_version(ProtocolVersion::new(n).unwrap());
        prop_assume!(sent_in(&msg, &caps));
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
