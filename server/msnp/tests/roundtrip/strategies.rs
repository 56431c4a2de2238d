//! Proptest strategies for every client command and server message.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use relive_msnp::client::{self as c, ClientCommand as C};
use relive_msnp::psm::PersonalMessage;
use relive_msnp::server::{ListedContact, ServerMessage as M, SynCounts};
use relive_msnp::types::*;
use relive_msnp::version::ProtocolVersion;

fn trid() -> impl Strategy<Value = TrId> {
    any::<u32>().prop_map(TrId)
}
fn passport() -> impl Strategy<Value = Passport> {
    "[a-zA-Z0-9._-]{1,10}@[a-z]{1,8}\\.(com|net|org)".prop_map(|s| Passport::parse(&s).unwrap())
}
fn fname() -> impl Strategy<Value = FriendlyName> {
    // Names are UTF-8 text once decoded (a stray `%` that starts no escape is kept literally).
    "[A-Za-z0-9%()._-]{1,30}"
        .prop_filter("names decode to UTF-8", |s| decodes_to_utf8(s))
        .prop_map(|s| FriendlyName::parse(&s).unwrap())
}
fn gname() -> impl Strategy<Value = GroupName> {
    "[A-Za-z0-9%]{1,20}"
        .prop_filter("names decode to UTF-8", |s| decodes_to_utf8(s))
        .prop_map(|s| GroupName::parse(&s).unwrap())
}
fn token() -> impl Strategy<Value = Token> {
    "[!-~]{1,24}".prop_map(|s| Token::parse(&s).unwrap())
}
fn secret() -> impl Strategy<Value = Secret> {
    "[!-~]{1,24}".prop_map(|s| Secret::parse(&s).unwrap())
}
fn msnobj() -> impl Strategy<Value = MsnObject> {
    "%3Cmsnobj[A-Za-z0-9%]{0,40}".prop_map(|s| MsnObject::parse(&s).unwrap())
}
fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}
fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}
fn group() -> impl Strategy<Value = GroupId> {
    (0u32..100).prop_map(GroupId)
}
fn guid() -> impl Strategy<Value = Guid> {
    any::<[u8; 16]>().prop_map(Guid::from_bytes)
}
fn group_key() -> impl Strategy<Value = GroupKey> {
    (group(), guid()).prop_map(|(id, guid)| GroupKey::new(id, guid))
}
fn stamp() -> impl Strategy<Value = ListStamp> {
    // Up to the last second of year 9999, as the four-digit year allows.
    (0u64..253_402_300_800_000_000).prop_map(ListStamp)
}
fn personal() -> impl Strategy<Value = PersonalMessage> {
    ("[ -~]{0,40}", "[ -~]{0,40}")
        .prop_map(|(psm, current_media)| PersonalMessage { psm, current_media })
}

/// Which grammar the generated commands follow: MSNP2–9 (`false`) or the MSNP10+ address
/// book (`true`), where `SYN`, `REM`, `RMG` and `REG` take timestamps and GUIDs.
pub(crate) fn client_command(abch: bool) -> impl Strategy<Value = C> {
    let login = prop_oneof![
        (trid(), vec(token(), 1..5)).prop_map(|(trid, dialects)| C::Ver(c::Ver { trid, dialects })),
        (
            trid(),
            vec(token(), 6),
            option::of((token(), option::of(passport())))
        )
            .prop_map(|(trid, t, extra)| {
                let (codebase, handle) = extra.map_or((None, None), |(c, h)| (Some(c), h));
                C::Cvr(c::Cvr {
                    trid,
                    lcid: t[0].clone(),
                    os: t[1].clone(),
                    os_version: t[2].clone(),
                    arch: t[3].clone(),
                    library: t[4].clone(),
                    client_version: t[5].clone(),
                    codebase,
                    handle,
                })
            }),
        trid().prop_map(|trid| C::Inf(c::Inf { trid })),
        (trid(), pick(AuthMethod::ALL), passport()).prop_map(|(trid, method, handle)| C::Usr(
            c::Usr::Initial {
                trid,
                method,
                handle
            }
        )),
        (trid(), pick(AuthMethod::ALL), secret()).prop_map(|(trid, method, response)| C::Usr(
            c::Usr::Subsequent {
                trid,
                method,
                response
            }
        )),
        (trid(), passport(), secret()).prop_map(|(trid, handle, cookie)| C::Usr(
            c::Usr::Switchboard {
                trid,
                handle,
                cookie
            }
        )),
        trid().prop_map(|trid| C::Xfr(c::Xfr { trid })),
    ];
    let syn = if abch {
        (trid(), token(), token())
            .prop_map(|(trid, list, settings)| {
                C::Syn(c::Syn {
                    trid,
                    cache: c::SynCache::Stamps { list, settings },
                })
            })
            .boxed()
    } else {
        (trid(), any::<u32>())
            .prop_map(|(trid, v)| {
                C::Syn(c::Syn {
                    trid,
                    cache: c::SynCache::Version(v),
                })
            })
            .boxed()
    };
    let group_ref = move || {
        if abch {
            prop_oneof![
                guid().prop_map(c::GroupRef::Guid),
                gname().prop_map(c::GroupRef::Name)
            ]
            .boxed()
        } else {
            group().prop_map(c::GroupRef::Id).boxed()
        }
    };
    let rem = if abch {
        prop_oneof![
            (trid(), guid(), option::of(guid())).prop_map(|(trid, g, group)| C::Rem(c::Rem {
                trid,
                list: ListKind::Fl,
                contact: c::ContactRef::Guid(g),
                group: group.map(c::GroupRef::Guid),
            })),
            (trid(), pick(ListKind::ALL), passport()).prop_map(|(trid, list, h)| C::Rem(c::Rem {
                trid,
                list,
                contact: c::ContactRef::Handle(h),
                group: None,
            })),
        ]
        .boxed()
    } else {
        (trid(), pick(ListKind::ALL), passport(), option::of(group()))
            .prop_map(|(trid, list, handle, group)| {
                C::Rem(c::Rem {
                    trid,
                    list,
                    contact: c::ContactRef::Handle(handle),
                    group: group.map(c::GroupRef::Id),
                })
            })
            .boxed()
    };
    let lists = prop_oneof![
        syn,
        (trid(), pick(ListKind::ALL)).prop_map(|(trid, list)| C::Lst(c::Lst { trid, list })),
        trid().prop_map(|trid| C::Lsg(c::Lsg { trid })),
        (trid(), pick(Gtc::ALL)).prop_map(|(trid, value)| C::Gtc(c::Gtc { trid, value })),
        (trid(), pick(Blp::ALL)).prop_map(|(trid, value)| C::Blp(c::Blp { trid, value })),
        (
            trid(),
            pick(ListKind::ALL),
            passport(),
            fname(),
            option::of(group())
        )
            .prop_map(|(trid, list, handle, name, group)| C::Add(c::Add {
                trid,
                list,
                handle,
                name,
                group
            })),
        rem,
        (trid(), passport(), fname()).prop_map(|(trid, handle, name)| C::Rea(c::Rea {
            trid,
            handle,
            name
        })),
        (trid(), gname()).prop_map(|(trid, name)| C::Adg(c::Adg { trid, name })),
        (trid(), group_ref()).prop_map(|(trid, group)| C::Rmg(c::Rmg { trid, group })),
        (trid(), group_ref(), gname()).prop_map(|(trid, group, name)| C::Reg(c::Reg {
            trid,
            group,
            name
        })),
        (trid(), pick(PhoneProp::ALL), option::of(token()))
            .prop_map(|(trid, prop, value)| C::Prp(c::Prp { trid, prop, value })),
    ];
    let abch_lists = prop_oneof![
        (trid(), pick(ListKind::ALL), passport(), option::of(fname())).prop_map(
            |(trid, list, handle, name)| C::Adc(c::Adc {
                trid,
                list,
                target: c::AdcTarget::Contact { handle, name },
            })
        ),
        (trid(), guid(), guid()).prop_map(|(trid, contact, group)| C::Adc(c::Adc {
            trid,
            list: ListKind::Fl,
            target: c::AdcTarget::ToGroup { contact, group },
        })),
        (trid(), guid(), token(), token()).prop_map(|(trid, contact, prop, value)| C::Sbp(
            c::Sbp {
                trid,
                contact,
                prop,
                value
            }
        )),
        (trid(), personal()).prop_map(|(trid, message)| C::Uux(c::Uux { trid, message })),
        (trid(), token()).prop_map(|(trid, file)| C::Gcf(c::Gcf { trid, file })),
    ];
    let other = prop_oneof![
        (
            trid(),
            pick(Status::ALL),
            option::of((any::<u32>(), option::of(msnobj())))
        )
            .prop_map(|(trid, status, tail)| {
                let (caps, msn_object) =
                    tail.map_or((None, None), |(c, o)| (Some(ClientCaps(c)), o));
                C::Chg(c::Chg {
                    trid,
                    status,
                    caps,
                    msn_object,
                })
            }),
        Just(C::Png),
        Just(C::Out),
        (trid(), token(), option::of(token())).prop_map(|(trid, service, lcid)| C::Url(c::Url {
            trid,
            service,
            lcid
        })),
        (trid(), vec(token(), 1..6)).prop_map(|(trid, fields)| C::Fnd(c::Fnd { trid, fields })),
        (trid(), vec(token(), 1..5)).prop_map(|(trid, fields)| C::Snd(c::Snd { trid, fields })),
        (trid(), vec(token(), 1..8), payload(300)).prop_map(|(trid, fields, payload)| C::Sdc(
            c::Sdc {
                trid,
                fields,
                payload
            }
        )),
        (trid(), any::<bool>()).prop_map(|(trid, on)| C::Ims(c::Ims { trid, on })),
        (trid(), vec(token(), 1..3), payload(300)).prop_map(|(trid, fields, payload)| C::Pag(
            c::Pag {
                trid,
                fields,
                payload
            }
        )),
        (trid(), vec(token(), 1..3), payload(300)).prop_map(|(trid, fields, payload)| C::Pgd(
            c::Pgd {
                trid,
                fields,
                payload
            }
        )),
        (trid(), token(), payload(64)).prop_map(|(trid, client_id, payload)| C::Qry(c::Qry {
            trid,
            client_id,
            payload
        })),
        (trid(), passport()).prop_map(|(trid, handle)| C::Cal(c::Cal { trid, handle })),
        (trid(), passport(), secret(), any::<u32>()).prop_map(|(trid, handle, cookie, s)| C::Ans(
            c::Ans {
                trid,
                handle,
                cookie,
                session: SessionId(s)
            }
        )),
        (trid(), pick(AckMode::ALL), payload(1665))
            .prop_map(|(trid, ack, payload)| C::Msg(c::Msg { trid, ack, payload })),
        (pick(&["XYZ", "RNG", "BYE", "LKP"]), option::of(trid())).prop_map(|(n, trid)| {
            C::Unknown {
                name: Token::parse(n).unwrap(),
                trid,
            }
        }),
    ];
    prop_oneof![login, lists, abch_lists, other]
}

fn status_tail() -> impl Strategy<Value = (ClientCaps, Option<MsnObject>)> {
    (any::<u32>().prop_map(ClientCaps), option::of(msnobj()))
}

pub(crate) fn server_message() -> impl Strategy<Value = M> {
    let v = ProtocolVersion::IMPLEMENTED;
    let versions: Vec<ProtocolVersion> = (v.start().number()..=v.end().number())
        .filter_map(ProtocolVersion::new)
        .collect();
    let login = prop_oneof![
        (
            trid(),
            proptest::sample::subsequence(versions, 0..4),
            any::<bool>()
        )
            .prop_map(|(trid, versions, cvr0)| M::Ver {
                trid,
                versions,
                cvr0
            }),
        (trid(), vec(token(), 5)).prop_map(|(trid, t)| M::Cvr {
            trid,
            latest: t[0].clone(),
            recommended: t[1].clone(),
            minimum: t[2].clone(),
            download_url: t[3].clone(),
            info_url: t[4].clone()
        }),
        (trid(), pick(AuthMethod::ALL)).prop_map(|(trid, method)| M::Inf { trid, method }),
        (trid(), pick(AuthMethod::ALL), option::of(token())).prop_map(
            |(trid, method, challenge)| M::UsrChallenge {
                trid,
                method,
                challenge
            }
        ),
        (trid(), passport(), fname(), any::<bool>()).prop_map(|(trid, handle, name, verified)| {
            M::UsrOk {
                trid,
                handle,
                name,
                verified,
            }
        }),
        (trid(), passport(), fname()).prop_map(|(trid, handle, name)| M::SbUsrOk {
            trid,
            handle,
            name
        }),
        (trid(), token(), token()).prop_map(|(trid, addr, current)| M::XfrNs {
            trid,
            addr,
            current
        }),
        (trid(), token(), secret()).prop_map(|(trid, addr, cookie)| M::XfrSb {
            trid,
            addr,
            cookie
        }),
        (token(), fname(), payload(2000)).prop_map(|(from, name, payload)| M::Msg {
            from,
            name,
            payload
        }),
        payload(200).prop_map(|payload| M::Not { payload }),
        payload(200).prop_map(|payload| M::Ipg { payload }),
        (trid(), option::of(pick(OutReason::ALL))).prop_map(|(_, reason)| M::Out { reason }),
        (trid(), token()).prop_map(|(trid, challenge)| M::Chl { trid, challenge }),
        trid().prop_map(|trid| M::QryAck { trid }),
        (pick(ErrorCode::KNOWN), trid()).prop_map(|(code, trid)| M::Error { code, trid }),
    ];
    let lists = prop_oneof![
        (
            trid(),
            any::<u32>(),
            option::of((any::<u32>(), any::<u32>()))
        )
            .prop_flat_map(|(trid, version, c)| stamp().prop_map(move |stamp| M::Syn {
                trid,
                version,
                stamp,
                counts: c.map(|(lst, lsg)| SynCounts { lst, lsg })
            })),
        (trid(), any::<u32>(), pick(Gtc::ALL)).prop_map(|(trid, version, value)| M::Gtc {
            trid,
            version,
            value
        }),
        (trid(), any::<u32>(), pick(Blp::ALL)).prop_map(|(trid, version, value)| M::Blp {
            trid,
            version,
            value
        }),
        (
            trid(),
            any::<u32>(),
            pick(PhoneProp::ALL),
            option::of(token())
        )
            .prop_map(|(trid, version, prop, value)| M::Prp {
                trid,
                version,
                prop,
                value
            }),
        (trid(), any::<u32>(), pick(Gtc::ALL)).prop_map(|(trid, version, value)| M::SynGtc {
            trid,
            version,
            value
        }),
        (trid(), any::<u32>(), pick(Blp::ALL)).prop_map(|(trid, version, value)| M::SynBlp {
            trid,
            version,
            value
        }),
        (
            trid(),
            any::<u32>(),
            pick(PhoneProp::ALL),
            option::of(token())
        )
            .prop_map(|(trid, version, prop, value)| M::SynPrp {
                trid,
                version,
                prop,
                value
            }),
        (
            any::<u32>(),
            passport(),
            pick(PhoneProp::ALL),
            option::of(token())
        )
            .prop_map(|(version, h, prop, value)| M::Bpr {
                version,
                handle: Some(h),
                prop,
                value
            }),
        (
            trid(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            group_key(),
            gname()
        )
            .prop_map(|(trid, version, index, total, group, name)| M::Lsg {
                trid,
                version,
                index,
                total,
                group,
                name
            }),
        (
            trid(),
            pick(ListKind::ALL),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            option::of((passport(), fname(), option::of(vec(group(), 1..4))))
        )
            .prop_map(|(trid, list, version, index, total, c)| M::LstEntry {
                trid,
                list,
                version,
                index,
                total,
                contact: c.map(|(handle, name, groups)| ListedContact {
                    handle,
                    name,
                    groups
                }),
            }),
        (
            passport(),
            fname(),
            (0u8..32).prop_map(|b| ListSet::from_bits(b).unwrap()),
            vec(group_key(), 0..4),
            guid()
        )
            .prop_map(|(handle, name, lists, groups, guid)| M::LstContact {
                handle,
                name,
                lists,
                groups,
                guid
            }),
        (
            trid(),
            pick(ListKind::ALL),
            any::<u32>(),
            passport(),
            fname(),
            option::of(group_key()),
            guid()
        )
            .prop_map(|(trid, list, version, handle, name, group, guid)| M::Add {
                trid,
                list,
                version,
                handle,
                name,
                group,
                guid
            }),
        (
            trid(),
            pick(ListKind::ALL),
            any::<u32>(),
            passport(),
            option::of(group_key())
        )
            .prop_map(|(trid, list, version, handle, group)| M::Rem {
                trid,
                list,
                version,
                handle,
                group
            }),
        (trid(), guid(), guid()).prop_map(|(trid, contact, group)| M::AdcToGroup {
            trid,
            contact,
            group
        }),
        (trid(), guid(), option::of(guid())).prop_map(|(trid, contact, group)| M::RemGuid {
            trid,
            contact,
            group
        }),
        (trid(), guid(), token(), token()).prop_map(|(trid, contact, prop, value)| M::Sbp {
            trid,
            contact,
            prop,
            value
        }),
        (trid(), any::<u32>(), passport(), fname()).prop_map(|(trid, version, handle, name)| {
            M::Rea {
                trid,
                version,
                handle,
                name,
            }
        }),
        (trid(), any::<u32>(), gname(), group_key()).prop_map(|(trid, version, name, group)| {
            M::Adg {
                trid,
                version,
                name,
                group,
            }
        }),
        (trid(), any::<u32>(), group_key()).prop_map(|(trid, version, group)| M::Rmg {
            trid,
            version,
            group
        }),
        (trid(), any::<u32>(), group_key(), gname()).prop_map(|(trid, version, group, name)| {
            M::Reg {
                trid,
                version,
                group,
                name,
            }
        }),
    ];
    let presence = prop_oneof![
        (trid(), pick(Status::ALL), status_tail()).prop_map(
            |(trid, status, (caps, msn_object))| M::Chg {
                trid,
                status,
                caps,
                msn_object
            }
        ),
        (
            trid(),
            pick(Status::ALL),
            passport(),
            fname(),
            status_tail()
        )
            .prop_map(|(trid, status, handle, name, (caps, msn_object))| M::Iln {
                trid,
                status,
                handle,
                name,
                caps,
                msn_object
            }),
        (pick(Status::ALL), passport(), fname(), status_tail()).prop_map(
            |(status, handle, name, (caps, msn_object))| M::Nln {
                status,
                handle,
                name,
                caps,
                msn_object
            }
        ),
        passport().prop_map(|handle| M::Fln { handle }),
        any::<u32>().prop_map(|seconds| M::Qng { seconds }),
        (trid(), token(), token(), any::<u32>()).prop_map(|(trid, url, login_url, site_id)| {
            M::Url {
                trid,
                url,
                login_url,
                site_id,
            }
        }),
        (trid(), any::<u32>(), any::<u32>(), vec(token(), 0..5)).prop_map(
            |(trid, index, total, fields)| M::Fnd {
                trid,
                index,
                total,
                fields
            }
        ),
        trid().prop_map(|trid| M::SndOk { trid }),
        Just(M::Sbs),
        trid().prop_map(|trid| M::UuxOk { trid }),
        (passport(), personal()).prop_map(|(handle, message)| M::Ubx { handle, message }),
        (trid(), token(), payload(300)).prop_map(|(trid, file, payload)| M::Gcf {
            trid,
            file,
            payload
        }),
        trid().prop_map(|trid| M::SdcOk { trid }),
        (trid(), any::<bool>()).prop_map(|(trid, on)| M::Ims { trid, on }),
    ];
    let sb = prop_oneof![
        (trid(), any::<u32>()).prop_map(|(trid, s)| M::CalRinging {
            trid,
            session: SessionId(s)
        }),
        (any::<u32>(), token(), secret(), passport(), fname()).prop_map(
            |(s, addr, cookie, caller, caller_name)| M::Rng {
                session: SessionId(s),
                addr,
                cookie,
                caller,
                caller_name
            }
        ),
        (
            trid(),
            any::<u32>(),
            any::<u32>(),
            passport(),
            fname(),
            any::<u32>()
        )
            .prop_map(|(trid, index, total, handle, name, c)| M::Iro {
                trid,
                index,
                total,
                handle,
                name,
                caps: ClientCaps(c)
            }),
        trid().prop_map(|trid| M::AnsOk { trid }),
        (passport(), fname(), any::<u32>()).prop_map(|(handle, name, c)| M::Joi {
            handle,
            name,
            caps: ClientCaps(c)
        }),
        (passport(), any::<bool>()).prop_map(|(handle, timed_out)| M::Bye { handle, timed_out }),
        trid().prop_map(|trid| M::Ack { trid }),
        trid().prop_map(|trid| M::Nak { trid }),
    ];
    prop_oneof![login, lists, presence, sb]
}
