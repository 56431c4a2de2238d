//! The `SYN` list dump, built once from data and laid out per generation (PROTOCOL.md §2.6).

use crate::types::{
    Blp, FriendlyName, GroupId, GroupKey, GroupName, Gtc, Guid, ListKind, ListSet, ListStamp,
    Passport, PhoneProp, Token, TrId,
};
use crate::version::{Capabilities, SynGeneration};

use super::{ListedContact, ServerMessage as M, SynCounts};

/// One contact in a list dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpContact {
    /// The contact.
    pub handle: Passport,
    /// The stored name.
    pub name: FriendlyName,
    /// Which lists the contact is on.
    pub lists: ListSet,
    /// FL groups (MSNP7+); group 0 is left out from MSNP10.
    pub groups: Vec<GroupKey>,
    /// The contact's GUID in this list (`C=`, MSNP10+).
    pub guid: Guid,
    /// The contact's set phone properties (`BPR`, MSNP5+).
    pub props: Vec<(PhoneProp, Token)>,
}

/// Everything a full `SYN` reply contains, independent of dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynDump {
    /// The `SYN` transaction id.
    pub trid: TrId,
    /// The current list version.
    pub version: u32,
    /// The list's timestamp (MSNP10+ `SYN`).
    pub stamp: ListStamp,
    /// My friendly name (`PRP MFN`, MSNP10+).
    pub name: FriendlyName,
    /// The GTC preference.
    pub gtc: Gtc,
    /// The BLP privacy default.
    pub blp: Blp,
    /// My set phone properties.
    pub props: Vec<(PhoneProp, Token)>,
    /// My groups (id 0 "Other Contacts" included by the caller; left out from MSNP10).
    pub groups: Vec<(GroupKey, GroupName)>,
    /// Every contact on any list.
    pub contacts: Vec<DumpContact>,
}

/// The phone properties old generations list in full (unset ones without a value).
const OLD_GEN_PROPS: [PhoneProp; 5] = [
    PhoneProp::Phh,
    PhoneProp::Phw,
    PhoneProp::Phm,
    PhoneProp::Mob,
    PhoneProp::Mbe,
];

/// Saturating `usize` → `u32` for counts (lists are bounded far below `u32::MAX`).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl SynDump {
    /// The reply lines, in order, for the dialect `caps`:
    ///
    /// * MSNP2–4: `SYN`, `GTC`, `BLP`, `LST` FL/AL/BL/RL (one per entry, `0 0` if empty).
    /// * MSNP5–6: plus every `PRP` after `BLP` (unset without value) and `BPR` after FL entries.
    /// * MSNP7: plus `LSG` lines after the `PRP`s and group lists on FL entries.
    /// * MSNP8–9: `SYN` with counts, `GTC`, `BLP`, set `PRP`s, `LSG`s, one `LST` per contact
    ///   with its list bitmask, each followed by its set `BPR`s.
    /// * MSNP10+: as MSNP8, with timestamps in `SYN`, `PRP MFN <my name>` after the phones, and
    ///   group 0 left out (of `LSG` and of each contact's groups: it means "no group" there).
    #[must_use]
    pub fn to_messages(&self, caps: &Capabilities) -> Vec<M> {
        let (trid, version) = (self.trid, self.version);
        let bitmask = caps.syn.is_bitmask();
        let abch = caps.syn == SynGeneration::Abch;
        let groups: Vec<&(GroupKey, GroupName)> = self
            .groups
            .iter()
            .filter(|(g, _)| !(abch && g.is_group_zero()))
            .collect();
        let mut out = vec![M::Syn {
            trid,
            version,
            stamp: self.stamp,
            counts: bitmask.then(|| SynCounts {
                lst: count(self.contacts.len()),
                lsg: count(groups.len()),
            }),
        }];
        out.push(M::SynGtc {
            trid,
            version,
            value: self.gtc,
        });
        out.push(M::SynBlp {
            trid,
            version,
            value: self.blp,
        });
        if caps.phone_props {
            if bitmask {
                out.extend(self.props.iter().map(|(prop, v)| M::SynPrp {
                    trid,
                    version,
                    prop: *prop,
                    value: Some(v.clone()),
                }));
                if abch {
                    out.push(M::SynPrp {
                        trid,
                        version,
                        prop: PhoneProp::Mfn,
                        value: Token::parse(self.name.as_str()).ok(),
                    });
                }
            } else {
                out.extend(OLD_GEN_PROPS.iter().map(|prop| {
                    M::SynPrp {
                        trid,
                        version,
                        prop: *prop,
                        value: self
                            .props
                            .iter()
                            .find(|(p, _)| p == prop)
                            .map(|(_, v)| v.clone())
                            .or_else(|| unset_flag(*prop)),
                    }
                }));
            }
        }
        if caps.groups {
            let total = count(groups.len());
            out.extend(groups.iter().enumerate().map(|(i, (group, name))| M::Lsg {
                trid,
                version,
                index: count(i + 1),
                total,
                group: *group,
                name: name.clone(),
            }));
        }
        if bitmask {
            for c in &self.contacts {
                out.push(M::LstContact {
                    handle: c.handle.clone(),
                    name: c.name.clone(),
                    lists: c.lists,
                    groups: c
                        .groups
                        .iter()
                        .filter(|g| !(abch && g.is_group_zero()))
                        .copied()
                        .collect(),
                    guid: c.guid,
                });
                out.extend(self.bprs(c, caps));
            }
        } else {
            for list in [ListKind::Fl, ListKind::Al, ListKind::Bl, ListKind::Rl] {
                self.old_gen_list(list, caps, &mut out);
            }
        }
        out
    }

    fn bprs(&self, c: &DumpContact, caps: &Capabilities) -> Vec<M> {
        if !caps.phone_props {
            return Vec::new();
        }
        c.props
            .iter()
            .map(|(prop, v)| M::Bpr {
                version: self.version,
                handle: Some(c.handle.clone()),
                prop: *prop,
                value: Some(v.clone()),
            })
            .collect()
    }

    fn old_gen_list(&self, list: ListKind, caps: &Capabilities, out: &mut Vec<M>) {
        let (trid, version) = (self.trid, self.version);
        let members: Vec<&DumpContact> = self
            .contacts
            .iter()
            .filter(|c| c.lists.contains(list))
            .collect();
        if members.is_empty() {
            out.push(M::LstEntry {
                trid,
                list,
                version,
                index: 0,
                total: 0,
                contact: None,
            });
            return;
        }
        let total = count(members.len());
        for (i, c) in members.into_iter().enumerate() {
            out.push(M::LstEntry {
                trid,
                list,
                version,
                index: count(i + 1),
                total,
                contact: Some(ListedContact {
                    handle: c.handle.clone(),
                    name: c.name.clone(),
                    groups: (caps.groups && list == ListKind::Fl).then(|| {
                        if c.groups.is_empty() {
                            vec![GroupId(0)]
                        } else {
                            c.groups.iter().map(|g| g.id).collect()
                        }
                    }),
                }),
            });
            if list == ListKind::Fl {
                out.extend(self.bprs(c, caps));
            }
        }
    }
}

/// How the old generations (MSNP5–7) list an unset property: the mobile flags `MOB` and `MBE`
/// are `N` until set (transcript 02), phone numbers are listed without a value.
fn unset_flag(prop: PhoneProp) -> Option<Token> {
    matches!(prop, PhoneProp::Mob | PhoneProp::Mbe)
        .then(|| Token::parse("N").expect("\"N\" is a valid token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::ProtocolVersion;
    use bytes::BytesMut;

    fn dump() -> SynDump {
        let p = |s: &str| Passport::parse(s).unwrap();
        let n = |s: &str| FriendlyName::parse(s).unwrap();
        let g = |n: u8| Guid::from_bytes([n; 16]);
        SynDump {
            trid: TrId(8),
            version: 5,
            stamp: ListStamp(1_114_282_664_813_000),
            name: n("Alice"),
            gtc: Gtc::A,
            blp: Blp::Al,
            props: vec![
                (PhoneProp::Phh, Token::parse("555%201234").unwrap()),
                (PhoneProp::Mob, Token::parse("N").unwrap()),
                (PhoneProp::Mbe, Token::parse("N").unwrap()),
            ],
            groups: vec![
                (
                    GroupKey::new(GroupId(0), g(0xa0)),
                    GroupName::parse("Other%20Contacts").unwrap(),
                ),
                (
                    GroupKey::new(GroupId(1), g(0xa1)),
                    GroupName::parse("Friends").unwrap(),
                ),
            ],
            contacts: vec![
                DumpContact {
                    handle: p("bob@example.com"),
                    name: n("Bob"),
                    lists: ListSet::EMPTY
                        .with(ListKind::Fl)
                        .with(ListKind::Al)
                        .with(ListKind::Rl),
                    groups: vec![GroupKey::new(GroupId(1), g(0xa1))],
                    guid: g(0xb0),
                    props: vec![],
                },
                DumpContact {
                    handle: p("carol@example.com"),
                    name: n("Carol"),
                    lists: ListSet::EMPTY.with(ListKind::Rl),
                    groups: vec![],
                    guid: g(0xb1),
                    props: vec![(PhoneProp::Phm, Token::parse("555%209876").unwrap())],
                },
                DumpContact {
                    handle: p("dave@example.com"),
                    name: n("Dave"),
                    lists: ListSet::EMPTY.with(ListKind::Fl),
                    groups: vec![GroupKey::new(GroupId(0), g(0xa0))],
                    guid: g(0xb2),
                    props: vec![],
                },
            ],
        }
    }

    fn render(n: u8) -> String {
        let caps = Capabilities::for_version(ProtocolVersion::new(n).unwrap());
        let mut b = BytesMut::new();
        for m in dump().to_messages(&caps) {
            m.encode(&caps, &mut b);
        }
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn msnp7_dump_matches_transcript_02_layout() {
        let want = "SYN 8 5\r\nGTC 8 5 A\r\nBLP 8 5 AL\r\nPRP 8 5 PHH 555%201234\r\nPRP 8 5 PHW\r\n\
            PRP 8 5 PHM\r\nPRP 8 5 MOB N\r\nPRP 8 5 MBE N\r\nLSG 8 5 1 2 0 Other%20Contacts 0\r\n\
            LSG 8 5 2 2 1 Friends 0\r\nLST 8 FL 5 1 2 bob@example.com Bob 1\r\n\
            LST 8 FL 5 2 2 dave@example.com Dave 0\r\n\
            LST 8 AL 5 1 1 bob@example.com Bob\r\nLST 8 BL 5 0 0\r\n\
            LST 8 RL 5 1 2 bob@example.com Bob\r\nLST 8 RL 5 2 2 carol@example.com Carol\r\n";
        assert_eq!(render(7), want);
    }

    #[test]
    fn msnp2_dump_has_no_props_or_groups() {
        let want = "SYN 8 5\r\nGTC 8 5 A\r\nBLP 8 5 AL\r\nLST 8 FL 5 1 2 bob@example.com Bob\r\n\
            LST 8 FL 5 2 2 dave@example.com Dave\r\n\
            LST 8 AL 5 1 1 bob@example.com Bob\r\nLST 8 BL 5 0 0\r\n\
            LST 8 RL 5 1 2 bob@example.com Bob\r\nLST 8 RL 5 2 2 carol@example.com Carol\r\n";
        assert_eq!(render(2), want);
    }

    #[test]
    fn msnp8_dump_matches_transcript_03_layout() {
        let want = "SYN 8 5 3 2\r\nGTC A\r\nBLP AL\r\nPRP PHH 555%201234\r\nPRP MOB N\r\nPRP MBE N\r\n\
            LSG 0 Other%20Contacts 0\r\nLSG 1 Friends 0\r\nLST bob@example.com Bob 11 1\r\n\
            LST carol@example.com Carol 8\r\nBPR PHM 555%209876\r\nLST dave@example.com Dave 1 0\r\n";
        assert_eq!(render(8), want);
    }

    #[test]
    fn msnp10_dump_is_the_address_book_form() {
        // research notes §2.2: timestamps, PRP MFN, LSG name guid without group 0, LST N= F=
        // with C= and group GUIDs for FL contacts only, no list versions anywhere.
        let stamp = "2005-04-23T18:57:44.8130000-00:00";
        let want = format!(
            "SYN 8 {stamp} {stamp} 3 1\r\nGTC A\r\nBLP AL\r\nPRP PHH 555%201234\r\n\
             PRP MOB N\r\nPRP MBE N\r\nPRP MFN Alice\r\n\
             LSG Friends a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1\r\n\
             LST N=bob@example.com F=Bob C=b0b0b0b0-b0b0-b0b0-b0b0-b0b0b0b0b0b0 11 \
             a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1\r\n\
             LST N=carol@example.com F=Carol 8\r\nBPR PHM 555%209876\r\n\
             LST N=dave@example.com F=Dave C=b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2 1\r\n"
        );
        assert_eq!(render(10), want);
        assert_eq!(render(11), want);
        // MSNP12: the network type after the bits.
        let want12 = want
            .replace(" 11 a1a1", " 11 1 a1a1")
            .replace("Carol 8\r\n", "Carol 8 1\r\n")
            .replace("b2b2 1\r\n", "b2b2 1 1\r\n");
        assert_eq!(render(12), want12);
    }
}
