//! Parsing of server lines back into [`ServerMessage`](super::ServerMessage) (used by test clients).

use crate::args::Args;
use crate::client::Role;
use crate::error::{ParseError, ParseErrorKind as K};
use crate::frame::Frame;
use crate::psm::PersonalMessage;
use crate::types::{
    ClientCaps, ErrorCode, FriendlyName, GroupId, GroupKey, Guid, ListKind, ListStamp, Passport,
    TrId, parse_u32,
};
use crate::version::{Capabilities, ProtocolVersion};

use super::{ListedContact, ServerMessage as M, SynCounts};

type R = Result<M, ParseError>;

/// Parses `0,3` into group ids.
fn groups(a: &Args<'_>, s: &str) -> Result<Vec<GroupId>, ParseError> {
    s.split(',')
        .map(|g| GroupId::parse(g).map_err(|_| a.error(K::BadNumber("group id"))))
        .collect()
}

fn handle(a: &mut Args<'_>) -> Result<Passport, ParseError> {
    a.next_parse("handle", K::BadPassport)
}

/// Groups as keys: numbers before MSNP10 (GUID neutral), GUIDs after (number neutral).
fn group_keys(a: &Args<'_>, s: &str, caps: &Capabilities) -> Result<Vec<GroupKey>, ParseError> {
    if caps.abch {
        s.split(',')
            .map(|g| {
                Guid::parse(g)
                    .map(|guid| GroupKey::new(GroupId(0), guid))
                    .map_err(|_| a.error(K::BadValue("group GUID")))
            })
            .collect()
    } else {
        Ok(groups(a, s)?
            .into_iter()
            .map(|id| GroupKey::new(id, Guid::NIL))
            .collect())
    }
}

/// An MSNP10+ `<prefix><value>` argument (`N=`, `F=`, `C=`).
fn prefixed<'a>(a: &mut Args<'a>, prefix: &'static str) -> Result<&'a str, ParseError> {
    a.next_str(prefix)?
        .strip_prefix(prefix)
        .ok_or_else(|| a.error(K::BadValue(prefix)))
}

fn guid(a: &mut Args<'_>) -> Result<Guid, ParseError> {
    a.next_parse("GUID", K::BadValue("GUID"))
}

fn stamp(a: &mut Args<'_>) -> Result<ListStamp, ParseError> {
    a.next_parse("timestamp", K::BadValue("timestamp"))
}

fn name<T: std::str::FromStr>(a: &mut Args<'_>) -> Result<T, ParseError> {
    a.next_parse("name", K::BadName("name"))
}

fn token<T: std::str::FromStr>(a: &mut Args<'_>, what: &'static str) -> Result<T, ParseError> {
    a.next_parse(what, K::BadValue(what))
}

/// Whether the next argument is a plain number (old-generation lines start with a trid).
fn numeric_next(a: &Args<'_>) -> bool {
    a.peek().and_then(parse_u32).is_some()
}

pub(super) fn from_frame(frame: &Frame, role: Role, caps: &Capabilities) -> R {
    let mut args = Args::new(frame);
    let a = &mut args;
    let m = match frame.name.as_str() {
        "MSG" => M::Msg {
            from: token(a, "from")?,
            name: name(a)?,
            payload: a.payload()?,
        },
        "NOT" => M::Not {
            payload: a.payload()?,
        },
        "IPG" => M::Ipg {
            payload: a.payload()?,
        },
        n if n.bytes().all(|b| b.is_ascii_digit()) => {
            let code = ErrorCode::parse(n).ok_or_else(|| a.error(K::BadValue("error code")))?;
            M::Error {
                code,
                trid: a.next_trid()?,
            }
        }
        "VER" => ver(a)?,
        "CVR" => M::Cvr {
            trid: a.next_trid()?,
            latest: token(a, "version")?,
            recommended: token(a, "version")?,
            minimum: token(a, "version")?,
            download_url: token(a, "url")?,
            info_url: token(a, "url")?,
        },
        "INF" => M::Inf {
            trid: a.next_trid()?,
            method: a.next_enum("auth method")?,
        },
        "USR" => usr(a, role, caps)?,
        "XFR" => xfr(a)?,
        "SYN" => {
            let trid = a.next_trid()?;
            let (version, stamp) = if caps.abch {
                let list = stamp(a)?;
                let _settings = self::stamp(a)?;
                (0, list)
            } else {
                (a.next_u32("version")?, ListStamp::default())
            };
            let counts = match a.next_opt() {
                None => None,
                Some(l) => Some(SynCounts {
                    lst: parse_u32(l).ok_or_else(|| a.error(K::BadNumber("count")))?,
                    lsg: a.next_u32("count")?,
                }),
            };
            M::Syn {
                trid,
                version,
                stamp,
                counts,
            }
        }
        "GTC" if caps.abch && a.remaining() == 2 => M::Gtc {
            trid: a.next_trid()?,
            version: 0,
            value: a.next_enum("GTC")?,
        },
        "BLP" if caps.abch && a.remaining() == 2 => M::Blp {
            trid: a.next_trid()?,
            version: 0,
            value: a.next_enum("BLP")?,
        },
        "PRP" if caps.abch && numeric_next(a) => M::Prp {
            trid: a.next_trid()?,
            version: 0,
            prop: a.next_enum("property")?,
            value: a.opt_parse(K::BadValue("property value"))?,
        },
        "GTC" if !caps.abch && numeric_next(a) => M::Gtc {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            value: a.next_enum("GTC")?,
        },
        "GTC" => M::SynGtc {
            trid: TrId(0),
            version: 0,
            value: a.next_enum("GTC")?,
        },
        "BLP" if !caps.abch && numeric_next(a) => M::Blp {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            value: a.next_enum("BLP")?,
        },
        "BLP" => M::SynBlp {
            trid: TrId(0),
            version: 0,
            value: a.next_enum("BLP")?,
        },
        "PRP" if numeric_next(a) => M::Prp {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            prop: a.next_enum("property")?,
            value: a.opt_parse(K::BadValue("property value"))?,
        },
        "PRP" => M::SynPrp {
            trid: TrId(0),
            version: 0,
            prop: a.next_enum("property")?,
            value: a.opt_parse(K::BadValue("property value"))?,
        },
        "BPR" if numeric_next(a) => M::Bpr {
            version: a.next_u32("version")?,
            handle: Some(handle(a)?),
            prop: a.next_enum("property")?,
            value: a.opt_parse(K::BadValue("property value"))?,
        },
        "BPR" => M::Bpr {
            version: 0,
            handle: None,
            prop: a.next_enum("property")?,
            value: a.opt_parse(K::BadValue("property value"))?,
        },
        "LSG" if caps.abch => {
            let name = name(a)?;
            M::Lsg {
                trid: TrId(0),
                version: 0,
                index: 0,
                total: 0,
                group: GroupKey::new(GroupId(0), guid(a)?),
                name,
            }
        }
        "LSG" => lsg(a)?,
        "LST" if caps.abch => lst_abch(a, caps)?,
        "LST" => lst(a)?,
        "ADC" => adc(a)?,
        "REM" if caps.abch => rem_abch(a)?,
        "ADD" | "REM" => add_rem(a, &frame.name)?,
        "REA" => M::Rea {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            handle: handle(a)?,
            name: name(a)?,
        },
        "ADG" if caps.abch => M::Adg {
            trid: a.next_trid()?,
            version: 0,
            name: name(a)?,
            group: GroupKey::new(GroupId(0), guid(a)?),
        },
        "ADG" => {
            let m = M::Adg {
                trid: a.next_trid()?,
                version: a.next_u32("version")?,
                name: name(a)?,
                group: GroupKey::new(token(a, "group id")?, Guid::NIL),
            };
            a.expect_literal("0")?;
            m
        }
        "RMG" if caps.abch => {
            let trid = a.next_trid()?;
            a.expect_literal("1")?;
            M::Rmg {
                trid,
                version: 0,
                group: GroupKey::new(GroupId(0), guid(a)?),
            }
        }
        "RMG" => M::Rmg {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            group: GroupKey::new(token(a, "group id")?, Guid::NIL),
        },
        "REG" if caps.abch => {
            let trid = a.next_trid()?;
            a.expect_literal("1")?;
            let name = name(a)?;
            let m = M::Reg {
                trid,
                version: 0,
                group: GroupKey::new(GroupId(0), guid(a)?),
                name,
            };
            a.expect_literal("0")?;
            m
        }
        "REG" => {
            let m = M::Reg {
                trid: a.next_trid()?,
                version: a.next_u32("version")?,
                group: GroupKey::new(token(a, "group id")?, Guid::NIL),
                name: name(a)?,
            };
            a.expect_literal("0")?;
            m
        }
        "SBP" => M::Sbp {
            trid: a.next_trid()?,
            contact: guid(a)?,
            prop: token(a, "property")?,
            value: token(a, "value")?,
        },
        "SBS" => {
            a.expect_literal("0")?;
            a.expect_literal("null")?;
            M::Sbs
        }
        "UUX" => {
            let trid = a.next_trid()?;
            a.expect_literal("0")?;
            M::UuxOk { trid }
        }
        "UBX" => M::Ubx {
            handle: handle(a)?,
            message: PersonalMessage::parse(&a.payload()?)
                .map_err(|_| a.error(K::BadValue("personal message")))?,
        },
        "GCF" => M::Gcf {
            trid: a.next_trid()?,
            file: token(a, "file")?,
            payload: a.payload()?,
        },
        "CHG" => {
            let trid = a.next_trid()?;
            let status = a.next_enum("status")?;
            let (caps, msn_object) = presence_tail(a)?;
            M::Chg {
                trid,
                status,
                caps,
                msn_object,
            }
        }
        "ILN" => {
            let trid = a.next_trid()?;
            let (status, handle, name) = (a.next_enum("status")?, handle(a)?, name(a)?);
            let (caps, msn_object) = presence_tail(a)?;
            M::Iln {
                trid,
                status,
                handle,
                name,
                caps,
                msn_object,
            }
        }
        "NLN" => {
            let (status, handle, name) = (a.next_enum("status")?, handle(a)?, name(a)?);
            let (caps, msn_object) = presence_tail(a)?;
            M::Nln {
                status,
                handle,
                name,
                caps,
                msn_object,
            }
        }
        "FLN" => M::Fln { handle: handle(a)? },
        "QNG" => M::Qng {
            seconds: a.opt_parse(K::BadNumber("seconds"))?.unwrap_or(0),
        },
        "OUT" => M::Out {
            reason: a.opt_parse(K::BadValue("reason"))?,
        },
        "CHL" => M::Chl {
            trid: a.next_trid()?,
            challenge: token(a, "challenge")?,
        },
        "QRY" => M::QryAck {
            trid: a.next_trid()?,
        },
        "URL" => M::Url {
            trid: a.next_trid()?,
            url: token(a, "url")?,
            login_url: token(a, "url")?,
            site_id: a.opt_parse(K::BadNumber("site id"))?.unwrap_or(0),
        },
        "FND" => {
            let (trid, index, total) = (a.next_trid()?, a.next_u32("index")?, a.next_u32("total")?);
            let rest = a.rest();
            let fields = rest
                .iter()
                .map(|s| s.parse().map_err(|_| a.error(K::BadValue("field"))))
                .collect::<Result<_, _>>()?;
            M::Fnd {
                trid,
                index,
                total,
                fields,
            }
        }
        "SND" | "SDC" | "ANS" => {
            let trid = a.next_trid()?;
            a.expect_literal("OK")?;
            match frame.name.as_str() {
                "SND" => M::SndOk { trid },
                "SDC" => M::SdcOk { trid },
                _ => M::AnsOk { trid },
            }
        }
        "IMS" => {
            let trid = a.next_trid()?;
            a.expect_literal("0")?;
            let on = match a.next_str("ON|OFF")? {
                "ON" => true,
                "OFF" => false,
                _ => return Err(a.error(K::BadValue("ON|OFF"))),
            };
            M::Ims { trid, on }
        }
        "CAL" => {
            let trid = a.next_trid()?;
            a.expect_literal("RINGING")?;
            M::CalRinging {
                trid,
                session: token(a, "session id")?,
            }
        }
        "RNG" => {
            let session = token(a, "session id")?;
            let addr = token(a, "address")?;
            a.expect_literal("CKI")?;
            M::Rng {
                session,
                addr,
                cookie: token(a, "cookie")?,
                caller: handle(a)?,
                caller_name: name(a)?,
            }
        }
        "IRO" => M::Iro {
            trid: a.next_trid()?,
            index: a.next_u32("index")?,
            total: a.next_u32("total")?,
            handle: handle(a)?,
            name: name(a)?,
            caps: sb_caps(a)?,
        },
        "JOI" => M::Joi {
            handle: handle(a)?,
            name: name(a)?,
            caps: sb_caps(a)?,
        },
        "BYE" => {
            let handle = handle(a)?;
            let timed_out = match a.next_opt() {
                None => false,
                Some("1") => true,
                Some(_) => return Err(a.error(K::BadValue("BYE flag"))),
            };
            M::Bye { handle, timed_out }
        }
        "ACK" => M::Ack {
            trid: a.next_trid()?,
        },
        "NAK" => M::Nak {
            trid: a.next_trid()?,
        },
        _ => return Err(a.error(K::BadValue("server command"))),
    };
    a.finish()?;
    Ok(m)
}

fn ver(a: &mut Args<'_>) -> R {
    let trid = a.next_trid()?;
    let mut versions = Vec::new();
    let mut cvr0 = false;
    let first = a.next_str("dialect")?;
    if first != "0" {
        let mut tok = Some(first);
        while let Some(t) = tok {
            if t == "CVR0" {
                cvr0 = true;
            } else {
                versions.push(
                    ProtocolVersion::parse(t).ok_or_else(|| a.error(K::BadValue("dialect")))?,
                );
            }
            tok = a.next_opt();
        }
    }
    Ok(M::Ver {
        trid,
        versions,
        cvr0,
    })
}

fn usr(a: &mut Args<'_>, role: Role, caps: &Capabilities) -> R {
    let trid = a.next_trid()?;
    if a.peek() == Some("OK") {
        a.next_opt();
        let handle = handle(a)?;
        if role == Role::Switchboard {
            return Ok(M::SbUsrOk {
                trid,
                handle,
                name: name(a)?,
            });
        }
        let name = if caps.usr_ok_name {
            name(a)?
        } else {
            handle.clone().into()
        };
        let verified = if caps.usr_ok_verified {
            a.next_u32("verified")? != 0
        } else {
            true
        };
        if caps.usr_ok_restricted {
            a.next_u32("restricted")?;
        }
        return Ok(M::UsrOk {
            trid,
            handle,
            name,
            verified,
        });
    }
    let method = a.next_enum("auth method")?;
    a.expect_literal("S")?;
    Ok(M::UsrChallenge {
        trid,
        method,
        challenge: a.opt_parse(K::BadValue("challenge"))?,
    })
}

fn xfr(a: &mut Args<'_>) -> R {
    let trid = a.next_trid()?;
    match a.next_str("NS|SB")? {
        "NS" => {
            let addr: crate::types::Token = token(a, "address")?;
            let mut current = addr.clone();
            if a.remaining() > 0 {
                a.expect_literal("0")?;
                if a.remaining() > 0 {
                    current = token(a, "address")?;
                }
            }
            Ok(M::XfrNs {
                trid,
                addr,
                current,
            })
        }
        "SB" => {
            let addr = token(a, "address")?;
            a.expect_literal("CKI")?;
            Ok(M::XfrSb {
                trid,
                addr,
                cookie: token(a, "cookie")?,
            })
        }
        _ => Err(a.error(K::BadValue("NS|SB"))),
    }
}

/// The optional caps of `IRO`/`JOI` (MSNP12+).
fn sb_caps(a: &mut Args<'_>) -> Result<ClientCaps, ParseError> {
    Ok(a.opt_parse(K::BadNumber("client caps"))?
        .unwrap_or_default())
}

/// `LST N=<h> F=<name> [C=<guid>] <bits> [<network>] [<group-guids>]` (MSNP10+).
fn lst_abch(a: &mut Args<'_>, caps: &Capabilities) -> R {
    let handle = Passport::parse(prefixed(a, "N=")?).map_err(|_| a.error(K::BadPassport))?;
    let name = FriendlyName::parse(prefixed(a, "F=")?).map_err(|_| a.error(K::BadName("name")))?;
    let guid = match a.peek().and_then(|s| s.strip_prefix("C=")) {
        Some(g) => {
            let g = Guid::parse(g).map_err(|_| a.error(K::BadValue("C=")))?;
            a.next_opt();
            g
        }
        None => Guid::NIL,
    };
    let lists = token(a, "list bits")?;
    if caps.lst_network {
        a.next_u32("network type")?;
    }
    let groups = match a.next_opt() {
        Some(g) => group_keys(a, g, caps)?,
        None => Vec::new(),
    };
    Ok(M::LstContact {
        handle,
        name,
        lists,
        groups,
        guid,
    })
}

/// `ADC trid <list> N=<h> [F=<name>] [C=<guid>]` or `ADC trid FL C=<guid> <group-guid>`.
fn adc(a: &mut Args<'_>) -> R {
    let trid = a.next_trid()?;
    let list: ListKind = a.next_enum("list")?;
    if let Some(c) = a.peek().and_then(|s| s.strip_prefix("C=")) {
        let contact = Guid::parse(c).map_err(|_| a.error(K::BadValue("C=")))?;
        a.next_opt();
        return Ok(M::AdcToGroup {
            trid,
            contact,
            group: guid(a)?,
        });
    }
    let handle = Passport::parse(prefixed(a, "N=")?).map_err(|_| a.error(K::BadPassport))?;
    let mut name = FriendlyName::from(handle.clone());
    let mut contact = Guid::NIL;
    while let Some(arg) = a.next_opt() {
        if let Some(n) = arg.strip_prefix("F=") {
            name = FriendlyName::parse(n).map_err(|_| a.error(K::BadName("name")))?;
        } else if let Some(c) = arg.strip_prefix("C=") {
            contact = Guid::parse(c).map_err(|_| a.error(K::BadValue("C=")))?;
        } else {
            return Err(a.error(K::TrailingArgs));
        }
    }
    Ok(M::Add {
        trid,
        list,
        version: 0,
        handle,
        name,
        group: None,
        guid: contact,
    })
}

/// `REM trid FL <guid> [<group-guid>]` or `REM trid <list> <h>` (MSNP10+).
fn rem_abch(a: &mut Args<'_>) -> R {
    let trid = a.next_trid()?;
    let list: ListKind = a.next_enum("list")?;
    if list == ListKind::Fl
        && let Some(contact) = a.peek().and_then(|s| Guid::parse(s).ok())
    {
        a.next_opt();
        let group = a.opt_parse(K::BadValue("group GUID"))?;
        return Ok(M::RemGuid {
            trid,
            contact,
            group,
        });
    }
    Ok(M::Rem {
        trid,
        list,
        version: 0,
        handle: handle(a)?,
        group: None,
    })
}

fn lsg(a: &mut Args<'_>) -> R {
    let (trid, version, index, total) = if a.remaining() > 3 {
        (
            a.next_trid()?,
            a.next_u32("version")?,
            a.next_u32("index")?,
            a.next_u32("total")?,
        )
    } else {
        (TrId(0), 0, 0, 0)
    };
    let m = M::Lsg {
        trid,
        version,
        index,
        total,
        group: GroupKey::new(token(a, "group id")?, Guid::NIL),
        name: name(a)?,
    };
    a.expect_literal("0")?;
    Ok(m)
}

fn lst(a: &mut Args<'_>) -> R {
    if !numeric_next(a) {
        let (handle, name) = (handle(a)?, name(a)?);
        let lists = token(a, "list bits")?;
        let groups = match a.next_opt() {
            Some(g) => groups(a, g)?
                .into_iter()
                .map(|id| GroupKey::new(id, Guid::NIL))
                .collect(),
            None => Vec::new(),
        };
        return Ok(M::LstContact {
            handle,
            name,
            lists,
            groups,
            guid: Guid::NIL,
        });
    }
    let trid = a.next_trid()?;
    let list = a.next_enum("list")?;
    let (version, index, total) = (
        a.next_u32("version")?,
        a.next_u32("index")?,
        a.next_u32("total")?,
    );
    let contact = if a.remaining() > 0 {
        let (handle, name) = (handle(a)?, name(a)?);
        let groups = match a.next_opt() {
            Some(g) => Some(groups(a, g)?),
            None => None,
        };
        Some(ListedContact {
            handle,
            name,
            groups,
        })
    } else {
        None
    };
    Ok(M::LstEntry {
        trid,
        list,
        version,
        index,
        total,
        contact,
    })
}

fn add_rem(a: &mut Args<'_>, cmd: &str) -> R {
    let trid = a.next_trid()?;
    let list = a.next_enum("list")?;
    let version = a.next_u32("version")?;
    let handle = handle(a)?;
    let group = |a: &mut Args<'_>| -> Result<Option<GroupKey>, ParseError> {
        Ok(a.opt_parse(K::BadNumber("group id"))?
            .map(|id| GroupKey::new(id, Guid::NIL)))
    };
    if cmd == "ADD" {
        let name = name(a)?;
        Ok(M::Add {
            trid,
            list,
            version,
            handle,
            name,
            group: group(a)?,
            guid: Guid::NIL,
        })
    } else {
        Ok(M::Rem {
            trid,
            list,
            version,
            handle,
            group: group(a)?,
        })
    }
}

fn presence_tail(
    a: &mut Args<'_>,
) -> Result<(crate::types::ClientCaps, Option<crate::types::MsnObject>), ParseError> {
    let caps = a
        .opt_parse(K::BadNumber("client caps"))?
        .unwrap_or_default();
    let obj = a.opt_parse(K::BadValue("MSNObject"))?;
    Ok((caps, obj))
}
