//! Parsing of server lines back into [`ServerMessage`] (used by test clients).

use crate::args::Args;
use crate::client::Role;
use crate::error::{ParseError, ParseErrorKind as K};
use crate::frame::Frame;
use crate::types::{ErrorCode, GroupId, Passport, TrId, parse_u32};
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
            let version = a.next_u32("version")?;
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
                counts,
            }
        }
        "GTC" if numeric_next(a) => M::Gtc {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            value: a.next_enum("GTC")?,
        },
        "GTC" => M::SynGtc {
            trid: TrId(0),
            version: 0,
            value: a.next_enum("GTC")?,
        },
        "BLP" if numeric_next(a) => M::Blp {
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
        "LSG" => lsg(a)?,
        "LST" => lst(a)?,
        "ADD" | "REM" => add_rem(a, &frame.name)?,
        "REA" => M::Rea {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            handle: handle(a)?,
            name: name(a)?,
        },
        "ADG" => {
            let m = M::Adg {
                trid: a.next_trid()?,
                version: a.next_u32("version")?,
                name: name(a)?,
                group: token(a, "group id")?,
            };
            a.expect_literal("0")?;
            m
        }
        "RMG" => M::Rmg {
            trid: a.next_trid()?,
            version: a.next_u32("version")?,
            group: token(a, "group id")?,
        },
        "REG" => {
            let m = M::Reg {
                trid: a.next_trid()?,
                version: a.next_u32("version")?,
                group: token(a, "group id")?,
                name: name(a)?,
            };
            a.expect_literal("0")?;
            m
        }
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
        },
        "JOI" => M::Joi {
            handle: handle(a)?,
            name: name(a)?,
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
        group: token(a, "group id")?,
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
            Some(g) => groups(a, g)?,
            None => Vec::new(),
        };
        return Ok(M::LstContact {
            handle,
            name,
            lists,
            groups,
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
    if cmd == "ADD" {
        let name = name(a)?;
        let group = a.opt_parse(K::BadNumber("group id"))?;
        Ok(M::Add {
            trid,
            list,
            version,
            handle,
            name,
            group,
        })
    } else {
        let group = a.opt_parse(K::BadNumber("group id"))?;
        Ok(M::Rem {
            trid,
            list,
            version,
            handle,
            group,
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
