//! The `SYN` list dump, built once from data and laid out per generation (PROTOCOL.md §2.6).

use crate::types::{
    Blp, FriendlyName, GroupId, GroupName, Gtc, ListKind, ListSet, Passport, PhoneProp, Token, TrId,
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
    /// FL groups (MSNP7+).
    pub groups: Vec<GroupId>,
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
    /// The GTC preference.
    pub gtc: Gtc,
    /// The BLP privacy default.
    pub blp: Blp,
    /// My set phone properties.
    pub props: Vec<(PhoneProp, Token)>,
    /// My groups (id 0 "Other Contacts" included by the caller).
    pub groups: Vec<(GroupId, GroupName)>,
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
    /// * MSNP8+: `SYN` with counts, `GTC`, `BLP`, set `PRP`s, `LSG`s, one `LST` per contact with
    ///   its list bitmask, each followed by its set `BPR`s.
    #[must_use]
    pub fn to_messages(&self, caps: &Capabilities) -> Vec<M> {
        let (trid, version) = (self.trid, self.version);
        let bitmask = caps.syn == SynGeneration::Bitmask;
        let mut out = vec![M::Syn {
            trid,
            version,
            counts: bitmask.then(|| SynCounts {
                lst: count(self.contacts.len()),
                lsg: count(self.groups.len()),
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
            let total = count(self.groups.len());
            out.extend(
                self.groups
                    .iter()
                    .enumerate()
                    .map(|(i, (group, name))| M::Lsg {
                        trid,
                        version,
                        index: count(i + 1),
                        total,
                        group: *group,
                        name: name.clone(),
                    }),
            );
        }
        if bitmask {
            for c in &self.contacts {
                out.push(M::LstContact {
                    handle: c.handle.clone(),
                    name: c.name.clone(),
                    lists: c.lists,
                    groups: c.groups.clone(),
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
                            c.groups.clone()
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
        SynDump {
            trid: TrId(8),
            version: 5,
            gtc: Gtc::A,
            blp: Blp::Al,
            props: vec![
                (PhoneProp::Phh, Token::parse("555%201234").unwrap()),
                (PhoneProp::Mob, Token::parse("N").unwrap()),
                (PhoneProp::Mbe, Token::parse("N").unwrap()),
            ],
            groups: vec![
                (GroupId(0), GroupName::parse("Other%20Contacts").unwrap()),
                (GroupId(1), GroupName::parse("Friends").unwrap()),
            ],
            contacts: vec![
                DumpContact {
                    handle: p("bob@example.com"),
                    name: n("Bob"),
                    lists: ListSet::EMPTY
                        .with(ListKind::Fl)
                        .with(ListKind::Al)
                        .with(ListKind::Rl),
                    groups: vec![GroupId(1)],
                    props: vec![],
                },
                DumpContact {
                    handle: p("carol@example.com"),
                    name: n("Carol"),
                    lists: ListSet::EMPTY.with(ListKind::Rl),
                    groups: vec![],
                    props: vec![(PhoneProp::Phm, Token::parse("555%209876").unwrap())],
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
            LSG 8 5 2 2 1 Friends 0\r\nLST 8 FL 5 1 1 bob@example.com Bob 1\r\n\
            LST 8 AL 5 1 1 bob@example.com Bob\r\nLST 8 BL 5 0 0\r\n\
            LST 8 RL 5 1 2 bob@example.com Bob\r\nLST 8 RL 5 2 2 carol@example.com Carol\r\n";
        assert_eq!(render(7), want);
    }

    #[test]
    fn msnp2_dump_has_no_props_or_groups() {
        let want = "SYN 8 5\r\nGTC 8 5 A\r\nBLP 8 5 AL\r\nLST 8 FL 5 1 1 bob@example.com Bob\r\n\
            LST 8 AL 5 1 1 bob@example.com Bob\r\nLST 8 BL 5 0 0\r\n\
            LST 8 RL 5 1 2 bob@example.com Bob\r\nLST 8 RL 5 2 2 carol@example.com Carol\r\n";
        assert_eq!(render(2), want);
    }

    #[test]
    fn msnp8_dump_matches_transcript_03_layout() {
        let want = "SYN 8 5 2 2\r\nGTC A\r\nBLP AL\r\nPRP PHH 555%201234\r\nPRP MOB N\r\nPRP MBE N\r\n\
            LSG 0 Other%20Contacts 0\r\nLSG 1 Friends 0\r\nLST bob@example.com Bob 11 1\r\n\
            LST carol@example.com Carol 8\r\nBPR PHM 555%209876\r\n";
        assert_eq!(render(8), want);
    }
}
