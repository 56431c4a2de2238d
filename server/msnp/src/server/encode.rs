//! Per-dialect encoding of [`ServerMessage`](super::ServerMessage): the only place that drops or adds fields by
//! [`Capabilities`] flag.

use bytes::Bytes;

use crate::frame::{Frame, push_opt as opt};
use crate::types::{ClientCaps, GroupId, GroupKey, ListKind, MsnObject};
use crate::version::{Capabilities, XfrNsForm};

use super::ServerMessage as M;

/// Comma-separated group ids (`0,3`).
pub(super) fn group_list(groups: &[GroupId]) -> String {
    groups
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Comma-separated groups as the dialect names them: numbers before MSNP10, GUIDs after.
fn group_keys(groups: &[GroupKey], caps: &Capabilities) -> String {
    groups
        .iter()
        .map(|g| {
            if caps.abch {
                g.guid.to_string()
            } else {
                g.id.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The group as the dialect names it.
fn group_key(g: GroupKey, caps: &Capabilities) -> String {
    if caps.abch {
        g.guid.to_string()
    } else {
        g.id.to_string()
    }
}

/// The list version, written only before MSNP10 (the address book dropped it).
fn version_of(v: &mut Vec<String>, caps: &Capabilities, version: u32) {
    if !caps.abch {
        v.push(version.to_string());
    }
}

/// Appends caps (MSNP8+) and the MSNObject (MSNP9+, only when set).
fn presence_tail(v: &mut Vec<String>, caps: &Capabilities, c: ClientCaps, obj: Option<&MsnObject>) {
    if caps.presence_caps {
        v.push(c.to_string());
        if caps.msn_object {
            opt(v, obj);
        }
    }
}

/// Encodes `m` for the dialect `caps`.
#[allow(
    clippy::too_many_lines,
    reason = "one line per variant; each arm only lays out fields"
)]
pub(super) fn to_frame(m: &M, caps: &Capabilities) -> Frame {
    let bitmask = caps.syn.is_bitmask();
    let (name, v): (&str, Vec<String>) = match m {
        M::Ver {
            trid,
            versions,
            cvr0,
        } => {
            let mut v = words!(trid);
            if versions.is_empty() {
                v.push("0".into());
            } else {
                v.extend(versions.iter().map(ToString::to_string));
                if *cvr0 {
                    v.push("CVR0".into());
                }
            }
            ("VER", v)
        }
        M::Cvr {
            trid,
            latest,
            recommended,
            minimum,
            download_url,
            info_url,
        } => (
            "CVR",
            words!(trid, latest, recommended, minimum, download_url, info_url),
        ),
        M::Inf { trid, method } => ("INF", words!(trid, method)),
        M::UsrChallenge {
            trid,
            method,
            challenge,
        } => {
            let mut v = words!(trid, method, "S");
            opt(&mut v, challenge.as_ref());
            ("USR", v)
        }
        M::Sbs => ("SBS", words!("0", "null")),
        M::UsrOk {
            trid,
            handle,
            name,
            verified,
        } => {
            let mut v = words!(trid, "OK", handle);
            if caps.usr_ok_name {
                v.push(name.to_string());
            }
            if caps.usr_ok_verified {
                v.push(u8::from(*verified).to_string());
            }
            if caps.usr_ok_restricted {
                v.push("0".into());
            }
            ("USR", v)
        }
        M::SbUsrOk { trid, handle, name } => ("USR", words!(trid, "OK", handle, name)),
        M::XfrNs {
            trid,
            addr,
            current,
        } => {
            let mut v = words!(trid, "NS", addr);
            match caps.xfr_ns_form {
                XfrNsForm::Bare => {}
                XfrNsForm::TrailingZero => v.push("0".into()),
                XfrNsForm::ZeroAndCurrent => v.extend(words!("0", current)),
            }
            ("XFR", v)
        }
        M::XfrSb { trid, addr, cookie } => ("XFR", words!(trid, "SB", addr, "CKI", cookie)),
        M::Msg {
            from,
            name,
            payload,
        } => {
            return Frame::with_payload("MSG", words!(from, name), payload.clone());
        }
        M::Not { payload } => return Frame::with_payload("NOT", Vec::new(), payload.clone()),
        M::Ipg { payload } => return Frame::with_payload("IPG", Vec::new(), payload.clone()),
        M::Syn {
            trid,
            version,
            stamp,
            counts,
        } => {
            let mut v = if caps.abch {
                words!(trid, stamp, stamp)
            } else {
                words!(trid, version)
            };
            if let (true, Some(c)) = (bitmask, counts) {
                v.extend(words!(c.lst, c.lsg));
            }
            ("SYN", v)
        }
        M::Gtc {
            trid,
            version,
            value,
        } => {
            let mut v = words!(trid);
            version_of(&mut v, caps, *version);
            v.push(value.to_string());
            ("GTC", v)
        }
        M::Blp {
            trid,
            version,
            value,
        } => {
            let mut v = words!(trid);
            version_of(&mut v, caps, *version);
            v.push(value.to_string());
            ("BLP", v)
        }
        M::Prp {
            trid,
            version,
            prop,
            value,
        } => {
            let mut v = words!(trid);
            version_of(&mut v, caps, *version);
            v.push(prop.to_string());
            opt(&mut v, value.as_ref());
            ("PRP", v)
        }
        M::SynGtc {
            trid,
            version,
            value,
        } if !bitmask => ("GTC", words!(trid, version, value)),
        M::SynGtc { value, .. } => ("GTC", words!(value)),
        M::SynBlp {
            trid,
            version,
            value,
        } if !bitmask => ("BLP", words!(trid, version, value)),
        M::SynBlp { value, .. } => ("BLP", words!(value)),
        M::SynPrp {
            trid,
            version,
            prop,
            value,
        } => {
            let mut v = if bitmask {
                Vec::new()
            } else {
                words!(trid, version)
            };
            v.push(prop.to_string());
            opt(&mut v, value.as_ref());
            ("PRP", v)
        }
        M::Bpr {
            version,
            handle,
            prop,
            value,
        } => {
            let mut v = Vec::new();
            if !bitmask {
                v.push(version.to_string());
                opt(&mut v, handle.as_ref());
            }
            v.push(prop.to_string());
            opt(&mut v, value.as_ref());
            ("BPR", v)
        }
        M::Lsg { group, name, .. } if caps.abch => ("LSG", words!(name, group.guid)),
        M::Lsg {
            trid,
            version,
            index,
            total,
            group,
            name,
        } => {
            let mut v = if bitmask {
                Vec::new()
            } else {
                words!(trid, version, index, total)
            };
            v.extend(words!(group.id, name, "0"));
            ("LSG", v)
        }
        M::LstEntry {
            trid,
            list,
            version,
            index,
            total,
            contact,
        } => {
            let mut v = words!(trid, list, version, index, total);
            if let Some(c) = contact {
                v.extend(words!(c.handle, c.name));
                if let (true, Some(g)) = (caps.groups, &c.groups) {
                    v.push(group_list(g));
                }
            }
            ("LST", v)
        }
        M::LstContact {
            handle,
            name,
            lists,
            groups,
            guid,
        } => {
            let fl = lists.contains(ListKind::Fl);
            let mut v = if caps.abch {
                let mut v = words!(format!("N={handle}"), format!("F={name}"));
                if fl && !guid.is_nil() {
                    v.push(format!("C={guid}"));
                }
                v.push(lists.to_string());
                if caps.lst_network {
                    // The network type: 1 = MSN (the only one this server has).
                    v.push("1".into());
                }
                v
            } else {
                words!(handle, name, lists)
            };
            if fl && !groups.is_empty() {
                v.push(group_keys(groups, caps));
            }
            ("LST", v)
        }
        M::Add {
            trid,
            list,
            handle,
            name,
            guid,
            ..
        } if caps.abch => {
            let mut v = words!(trid, list, format!("N={handle}"));
            match list {
                ListKind::Fl => {
                    v.push(format!("F={name}"));
                    if !guid.is_nil() {
                        v.push(format!("C={guid}"));
                    }
                }
                ListKind::Rl => v.push(format!("F={name}")),
                ListKind::Al | ListKind::Bl | ListKind::Pl => {}
            }
            ("ADC", v)
        }
        M::Add {
            trid,
            list,
            version,
            handle,
            name,
            group,
            ..
        } => {
            let mut v = words!(trid, list, version, handle, name);
            if caps.groups {
                opt(&mut v, group.map(|g| g.id));
            }
            ("ADD", v)
        }
        M::AdcToGroup {
            trid,
            contact,
            group,
        } => (
            "ADC",
            words!(trid, ListKind::Fl, format!("C={contact}"), group),
        ),
        M::Rem {
            trid,
            list,
            version,
            handle,
            group,
        } => {
            let mut v = words!(trid, list);
            version_of(&mut v, caps, *version);
            v.push(handle.to_string());
            if caps.groups && !caps.abch {
                opt(&mut v, group.map(|g| g.id));
            }
            ("REM", v)
        }
        M::RemGuid {
            trid,
            contact,
            group,
        } => {
            let mut v = words!(trid, ListKind::Fl, contact);
            opt(&mut v, group.as_ref());
            ("REM", v)
        }
        M::Rea {
            trid,
            version,
            handle,
            name,
        } => ("REA", words!(trid, version, handle, name)),
        // MSNP10+ forms: research notes §2.5 (name then GUID for ADG; Escargot's `1` where the
        // list version was for RMG and REG).
        M::Adg {
            trid, name, group, ..
        } if caps.abch => ("ADG", words!(trid, name, group.guid)),
        M::Adg {
            trid,
            version,
            name,
            group,
        } => ("ADG", words!(trid, version, name, group.id, "0")),
        M::Rmg { trid, group, .. } if caps.abch => ("RMG", words!(trid, "1", group.guid)),
        M::Rmg {
            trid,
            version,
            group,
        } => ("RMG", words!(trid, version, group_key(*group, caps))),
        M::Reg {
            trid, group, name, ..
        } if caps.abch => ("REG", words!(trid, "1", name, group.guid, "0")),
        M::Reg {
            trid,
            version,
            group,
            name,
        } => ("REG", words!(trid, version, group.id, name, "0")),
        M::Sbp {
            trid,
            contact,
            prop,
            value,
        } => ("SBP", words!(trid, contact, prop, value)),
        M::UuxOk { trid } => ("UUX", words!(trid, "0")),
        M::Ubx { handle, message } => {
            return Frame::with_payload("UBX", words!(handle), Bytes::from(message.to_xml()));
        }
        M::Gcf {
            trid,
            file,
            payload,
        } => return Frame::with_payload("GCF", words!(trid, file), payload.clone()),
        M::Chg {
            trid,
            status,
            caps: c,
            msn_object,
        } => {
            let mut v = words!(trid, status);
            presence_tail(&mut v, caps, *c, msn_object.as_ref());
            ("CHG", v)
        }
        M::Iln {
            trid,
            status,
            handle,
            name,
            caps: c,
            msn_object,
        } => {
            let mut v = words!(trid, status, handle, name);
            presence_tail(&mut v, caps, *c, msn_object.as_ref());
            ("ILN", v)
        }
        M::Nln {
            status,
            handle,
            name,
            caps: c,
            msn_object,
        } => {
            let mut v = words!(status, handle, name);
            presence_tail(&mut v, caps, *c, msn_object.as_ref());
            ("NLN", v)
        }
        M::Fln { handle } => ("FLN", words!(handle)),
        M::Qng { seconds } => (
            "QNG",
            if caps.qng_seconds {
                words!(seconds)
            } else {
                Vec::new()
            },
        ),
        M::Out { reason } => {
            let mut v = Vec::new();
            opt(&mut v, *reason);
            ("OUT", v)
        }
        M::Chl { trid, challenge } => ("CHL", words!(trid, challenge)),
        M::QryAck { trid } => ("QRY", words!(trid)),
        M::Url {
            trid,
            url,
            login_url,
            site_id,
        } => {
            let mut v = words!(trid, url, login_url);
            if caps.ims {
                v.push(site_id.to_string());
            }
            ("URL", v)
        }
        M::Fnd {
            trid,
            index,
            total,
            fields,
        } => {
            let mut v = words!(trid, index, total);
            v.extend(fields.iter().map(ToString::to_string));
            ("FND", v)
        }
        M::SndOk { trid } => ("SND", words!(trid, "OK")),
        M::SdcOk { trid } => ("SDC", words!(trid, "OK")),
        M::Ims { trid, on } => ("IMS", words!(trid, "0", if *on { "ON" } else { "OFF" })),
        M::CalRinging { trid, session } => ("CAL", words!(trid, "RINGING", session)),
        M::Rng {
            session,
            addr,
            cookie,
            caller,
            caller_name,
        } => (
            "RNG",
            words!(session, addr, "CKI", cookie, caller, caller_name),
        ),
        M::Iro {
            trid,
            index,
            total,
            handle,
            name,
            caps: c,
        } => {
            let mut v = words!(trid, index, total, handle, name);
            if caps.sb_caps {
                v.push(c.to_string());
            }
            ("IRO", v)
        }
        M::AnsOk { trid } => ("ANS", words!(trid, "OK")),
        M::Joi {
            handle,
            name,
            caps: c,
        } => {
            let mut v = words!(handle, name);
            if caps.sb_caps {
                v.push(c.to_string());
            }
            ("JOI", v)
        }
        M::Bye { handle, timed_out } => {
            let mut v = words!(handle);
            if *timed_out {
                v.push("1".into());
            }
            ("BYE", v)
        }
        M::Ack { trid } => ("ACK", words!(trid)),
        M::Nak { trid } => ("NAK", words!(trid)),
        M::Error { code, trid } => return Frame::new(code.to_string(), words!(trid)),
    };
    Frame::new(name, v)
}
