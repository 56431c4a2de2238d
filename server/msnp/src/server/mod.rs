//! Server → client messages as version-neutral values, encoded per recipient dialect.
//!
//! A [`ServerMessage`] carries everything any dialect needs; [`ServerMessage::encode`] drops or
//! adds fields according to [`Capabilities`] (e.g. one [`ServerMessage::Iln`] is written without
//! caps under MSNP7, with caps under MSNP8 and with caps and MSNObject under MSNP9). Handlers
//! therefore build each event once, and presence fan-out encodes it per recipient.
//!
//! The `SYN` dump is built from data with [`SynDump`], whose
//! [`SynDump::to_messages`] yields the lines of the right generation.
//! [`ServerMessage::from_frame`] is the inverse for test clients; fields a dialect does not send
//! are filled with neutral values (`0`, `None`, `verified = true`).
//!
//! # Formats (MSNP2–MSNP9; MSNP10–12 below)
//! ```text
//! VER trid MSNPx [...] [CVR0] | VER trid 0          CVR trid <v> <v> <min> <dl-url> <info-url>
//! INF trid MD5                                      USR trid MD5|TWN|CTP S [<challenge>]
//! USR trid OK <handle> [<name>] [<verified>] [0]     USR trid OK <handle> <name>   (SB)
//! XFR trid NS <addr> [0 [<current>]]                 XFR trid SB <addr> CKI <cookie>
//! MSG <from> <name> <len>                            NOT <len> / IPG <len>
//! SYN trid <ver> [<lst-count> <lsg-count>]           GTC/BLP trid <ver> <value>
//! GTC <value> / BLP <value> / PRP <prop> [<value>]    (MSNP8+ SYN sub-lines)
//! PRP trid <ver> <prop> [<value>]                    BPR <ver> <handle> <prop> [<value>] | BPR <prop> [<value>]
//! LSG trid <ver> <i> <n> <id> <name> 0 | LSG <id> <name> 0
//! LST trid <list> <ver> <i> <n> [<handle> <name> [<groups>]] | LST <handle> <name> <bits> [<groups>]
//! ADD trid <list> <ver> <handle> <name> [<group>]    REM trid <list> <ver> <handle> [<group>]
//! REA trid <ver> <handle> <name>                     ADG trid <ver> <name> <id> 0
//! RMG trid <ver> <id>                                REG trid <ver> <id> <name> 0
//! CHG trid <status> [<caps> [<msnobj>]]              ILN trid <status> <handle> <name> [<caps> [<msnobj>]]
//! NLN <status> <handle> <name> [<caps> [<msnobj>]]   FLN <handle>
//! QNG [<seconds>]   OUT [<reason>]   CHL 0 <challenge>   QRY trid   <code> trid
//! URL trid <url> <login-url> [<site-id>]             FND trid <i> <n> [<fields>...]
//! SND trid OK   SDC trid OK   IMS trid 0 ON|OFF
//! CAL trid RINGING <session>   RNG <session> <addr> CKI <cookie> <handle> <name>
//! IRO trid <i> <n> <handle> <name>   ANS trid OK   JOI <handle> <name>   BYE <handle> [1]
//! ACK trid   NAK trid
//! ```
//!
//! # MSNP10–12 (address book, [`Capabilities::abch`]; PROTOCOL.md §8, research notes §2–§4)
//! ```text
//! USR trid OK <handle> <verified> 0                  SBS 0 null                      (SBS: P11+)
//! SYN trid <stamp> <stamp> [<lst-count> <lsg-count>] GTC/BLP trid <value>   PRP trid <prop> [<value>]
//! LSG <name> <group-guid>                            LST N=<h> F=<name> [C=<guid>] <bits> [<net>] [<gguids>]
//! ADC trid FL N=<h> F=<name> C=<guid> | ADC trid AL|BL N=<h> | ADC 0 RL N=<h> F=<name>
//! ADC trid FL C=<guid> <group-guid>                  REM trid FL <guid> [<group-guid>] | REM trid AL|BL|RL <h>
//! ADG trid <name> <group-guid>                       RMG trid 1 <group-guid>    REG trid 1 <name> <group-guid> 0
//! SBP trid <guid> MFN <name>                         UUX trid 0                 UBX <handle> <len>   (P11+)
//! GCF trid Shields.xml <len>                         IRO trid <i> <n> <h> <name> <caps>   JOI <h> <name> <caps> (caps: P12)
//! ```
//! Decisions where the sources disagree (research notes §2.5, §8): `ADG` answers name then GUID
//! (yellows111, Kopete, Escargot); `RMG` and `REG` answer Escargot's forms, which MSN 6.x/7.x
//! accepted in production and msnp11-sdk waits for; network type `1` in `LST` from MSNP12, caps
//! in `IRO`/`JOI` from MSNP12 (yellows111).

mod decode;
mod encode;
mod syn;

use bytes::{Bytes, BytesMut};

pub use syn::{DumpContact, SynDump};

use crate::client::Role;
use crate::error::ParseError;
use crate::frame::Frame;
use crate::psm::PersonalMessage;
use crate::types::{
    AuthMethod, ClientCaps, ErrorCode, FriendlyName, GroupId, GroupKey, GroupName, Guid, ListKind,
    ListSet, ListStamp, MsnObject, OutReason, Passport, PhoneProp, Secret, SessionId, Status,
    Token, TrId,
};
use crate::version::{Capabilities, ProtocolVersion};

/// The counts in an MSNP8+ `SYN` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynCounts {
    /// Number of `LST` lines that follow.
    pub lst: u32,
    /// Number of `LSG` lines that follow.
    pub lsg: u32,
}

/// One entry of an old-generation (MSNP2–7) `LST` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedContact {
    /// The contact.
    pub handle: Passport,
    /// The stored name.
    pub name: FriendlyName,
    /// FL group ids (MSNP7; written only when the dialect has groups).
    pub groups: Option<Vec<GroupId>>,
}

/// A server → client line.
///
/// Field names follow the wire fields in each variant's format (module docs); `version` is
/// always the account's list version, `trid` the transaction id being answered (`0` when
/// server-initiated).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(
    missing_docs,
    reason = "fields are the wire fields named in each variant's format"
)]
pub enum ServerMessage {
    /// `VER trid <dialects> [CVR0]`; no dialects encodes `VER trid 0`.
    Ver {
        trid: TrId,
        versions: Vec<ProtocolVersion>,
        cvr0: bool,
    },
    /// `CVR` reply: echo the client's version in the first three slots.
    Cvr {
        trid: TrId,
        latest: Token,
        recommended: Token,
        minimum: Token,
        download_url: Token,
        info_url: Token,
    },
    /// `INF trid <method>`.
    Inf { trid: TrId, method: AuthMethod },
    /// `USR trid <method> S [<challenge>]`: MD5 salt, TWN parameters, or nothing for CTP.
    UsrChallenge {
        trid: TrId,
        method: AuthMethod,
        challenge: Option<Token>,
    },
    /// NS `USR trid OK`: name up to MSNP9, verified flag MSNP6+, restricted `0` MSNP8+.
    UsrOk {
        trid: TrId,
        handle: Passport,
        name: FriendlyName,
        verified: bool,
    },
    /// SB `USR trid OK <handle> <name>`.
    SbUsrOk {
        trid: TrId,
        handle: Passport,
        name: FriendlyName,
    },
    /// `XFR trid NS <addr> ...` in the dialect's form ([`crate::version::XfrNsForm`]).
    XfrNs {
        trid: TrId,
        addr: Token,
        current: Token,
    },
    /// `XFR trid SB <addr> CKI <cookie>`.
    XfrSb {
        trid: TrId,
        addr: Token,
        cookie: Secret,
    },
    /// `MSG <from> <name> <len>` + payload (NS profile/notifications and SB relay).
    Msg {
        from: Token,
        name: FriendlyName,
        payload: Bytes,
    },
    /// `NOT <len>` + payload (MSNP5+).
    Not { payload: Bytes },
    /// `IPG <len>` + payload (MSNP6+).
    Ipg { payload: Bytes },
    /// `SYN trid <ver> [<counts>]` (counts MSNP8+); MSNP10+ `SYN trid <stamp> <stamp> [<counts>]`.
    Syn {
        trid: TrId,
        version: u32,
        stamp: ListStamp,
        counts: Option<SynCounts>,
    },
    /// `GTC trid <ver> <value>`: reply to client `GTC`.
    Gtc {
        trid: TrId,
        version: u32,
        value: crate::types::Gtc,
    },
    /// `BLP trid <ver> <value>`: reply to client `BLP`.
    Blp {
        trid: TrId,
        version: u32,
        value: crate::types::Blp,
    },
    /// `PRP trid <ver> <prop> [<value>]`: reply to client `PRP`.
    Prp {
        trid: TrId,
        version: u32,
        prop: PhoneProp,
        value: Option<Token>,
    },
    /// SYN sub-line `GTC`: trid/version written before MSNP8 only.
    SynGtc {
        trid: TrId,
        version: u32,
        value: crate::types::Gtc,
    },
    /// SYN sub-line `BLP`: trid/version written before MSNP8 only.
    SynBlp {
        trid: TrId,
        version: u32,
        value: crate::types::Blp,
    },
    /// SYN sub-line `PRP`: trid/version written before MSNP8 only.
    SynPrp {
        trid: TrId,
        version: u32,
        prop: PhoneProp,
        value: Option<Token>,
    },
    /// `BPR`: a contact's phone property; version and handle written before MSNP8 only.
    Bpr {
        version: u32,
        handle: Option<Passport>,
        prop: PhoneProp,
        value: Option<Token>,
    },
    /// `LSG`: a group line; trid, version, index and total written before MSNP8 only; MSNP10+
    /// `LSG <name> <group-guid>`.
    Lsg {
        trid: TrId,
        version: u32,
        index: u32,
        total: u32,
        group: GroupKey,
        name: GroupName,
    },
    /// Old-generation `LST trid <list> <ver> <i> <n> [<contact>]` (`0 0` = empty list).
    LstEntry {
        trid: TrId,
        list: ListKind,
        version: u32,
        index: u32,
        total: u32,
        contact: Option<ListedContact>,
    },
    /// MSNP8+ `LST <handle> <name> <bits> [<groups>]` (groups written when the FL bit is set);
    /// MSNP10+ `LST N=<handle> F=<name> [C=<guid>] <bits> [<network>] [<group-guids>]` (`C=` and
    /// groups for FL contacts; network type `1` from MSNP12).
    LstContact {
        handle: Passport,
        name: FriendlyName,
        lists: ListSet,
        groups: Vec<GroupKey>,
        guid: Guid,
    },
    /// `ADD trid <list> <ver> <handle> <name> [<group>]` (group MSNP7+); MSNP10+ `ADC trid FL
    /// N=<h> F=<name> C=<guid>`, `ADC trid AL|BL N=<h>`, `ADC 0 RL N=<h> F=<name>`.
    Add {
        trid: TrId,
        list: ListKind,
        version: u32,
        handle: Passport,
        name: FriendlyName,
        group: Option<GroupKey>,
        guid: Guid,
    },
    /// `ADC trid FL C=<guid> <group-guid>`: an FL contact filed into a group (MSNP10+).
    AdcToGroup {
        trid: TrId,
        contact: Guid,
        group: Guid,
    },
    /// `REM trid <list> <ver> <handle> [<group>]` (group MSNP7+); MSNP10+ `REM trid <list> <h>`.
    Rem {
        trid: TrId,
        list: ListKind,
        version: u32,
        handle: Passport,
        group: Option<GroupKey>,
    },
    /// `REM trid FL <guid> [<group-guid>]`: an FL contact removed by GUID (MSNP10+).
    RemGuid {
        trid: TrId,
        contact: Guid,
        group: Option<Guid>,
    },
    /// `REA trid <ver> <handle> <name>`.
    Rea {
        trid: TrId,
        version: u32,
        handle: Passport,
        name: FriendlyName,
    },
    /// `ADG trid <ver> <name> <id> 0`; MSNP10+ `ADG trid <name> <group-guid>`.
    Adg {
        trid: TrId,
        version: u32,
        name: GroupName,
        group: GroupKey,
    },
    /// `RMG trid <ver> <id>`; MSNP10+ `RMG trid 1 <group-guid>`.
    Rmg {
        trid: TrId,
        version: u32,
        group: GroupKey,
    },
    /// `REG trid <ver> <id> <name> 0`; MSNP10+ `REG trid 1 <name> <group-guid> 0`.
    Reg {
        trid: TrId,
        version: u32,
        group: GroupKey,
        name: GroupName,
    },
    /// `SBP trid <guid> <prop> <value>`: a contact's stored name changed (MSNP10+).
    Sbp {
        trid: TrId,
        contact: Guid,
        prop: Token,
        value: Token,
    },
    /// `SBS 0 null`, right after `USR OK` (MSNP11+).
    Sbs,
    /// `UUX trid 0`: personal message accepted (MSNP11+).
    UuxOk { trid: TrId },
    /// `UBX <handle> <len>` + the personal message XML (MSNP11+).
    Ubx {
        handle: Passport,
        message: PersonalMessage,
    },
    /// `GCF trid <file> <len>` + the file (MSNP11–12).
    Gcf {
        trid: TrId,
        file: Token,
        payload: Bytes,
    },
    /// `CHG` echo: caps MSNP8+, MSNObject MSNP9+.
    Chg {
        trid: TrId,
        status: Status,
        caps: ClientCaps,
        msn_object: Option<MsnObject>,
    },
    /// `ILN`: initial presence of a contact.
    Iln {
        trid: TrId,
        status: Status,
        handle: Passport,
        name: FriendlyName,
        caps: ClientCaps,
        msn_object: Option<MsnObject>,
    },
    /// `NLN`: a contact's presence changed.
    Nln {
        status: Status,
        handle: Passport,
        name: FriendlyName,
        caps: ClientCaps,
        msn_object: Option<MsnObject>,
    },
    /// `FLN <handle>`: a contact went offline (or hidden, or blocked you).
    Fln { handle: Passport },
    /// `QNG [<seconds>]` (seconds MSNP9+).
    Qng { seconds: u32 },
    /// `OUT [<reason>]`.
    Out { reason: Option<OutReason> },
    /// `CHL 0 <challenge>` (MSNP6+).
    Chl { trid: TrId, challenge: Token },
    /// `QRY trid`: challenge answer accepted.
    QryAck { trid: TrId },
    /// `URL trid <url> <login-url> [<site-id>]` (site id MSNP3+).
    Url {
        trid: TrId,
        url: Token,
        login_url: Token,
        site_id: u32,
    },
    /// `FND trid <i> <n> [<fields>]` (`0 0` = no results).
    Fnd {
        trid: TrId,
        index: u32,
        total: u32,
        fields: Vec<Token>,
    },
    /// `SND trid OK`.
    SndOk { trid: TrId },
    /// `SDC trid OK`.
    SdcOk { trid: TrId },
    /// `IMS trid 0 ON|OFF`.
    Ims { trid: TrId, on: bool },
    /// `CAL trid RINGING <session>`.
    CalRinging { trid: TrId, session: SessionId },
    /// `RNG <session> <addr> CKI <cookie> <caller> <caller-name>`.
    Rng {
        session: SessionId,
        addr: Token,
        cookie: Secret,
        caller: Passport,
        caller_name: FriendlyName,
    },
    /// `IRO trid <i> <n> <handle> <name> [<caps>]`: a participant already present (caps
    /// MSNP12+).
    Iro {
        trid: TrId,
        index: u32,
        total: u32,
        handle: Passport,
        name: FriendlyName,
        caps: ClientCaps,
    },
    /// `ANS trid OK`.
    AnsOk { trid: TrId },
    /// `JOI <handle> <name> [<caps>]`: someone joined (caps MSNP12+).
    Joi {
        handle: Passport,
        name: FriendlyName,
        caps: ClientCaps,
    },
    /// `BYE <handle> [1]`: someone left (`1` = timed out).
    Bye { handle: Passport, timed_out: bool },
    /// `ACK trid`.
    Ack { trid: TrId },
    /// `NAK trid`.
    Nak { trid: TrId },
    /// `<code> <trid>`.
    Error { code: ErrorCode, trid: TrId },
}

impl ServerMessage {
    /// The error reply `<code> <trid>`.
    #[must_use]
    pub const fn error(code: ErrorCode, trid: TrId) -> Self {
        Self::Error { code, trid }
    }

    /// The message as a frame in the dialect described by `caps`.
    #[must_use]
    pub fn to_frame(&self, caps: &Capabilities) -> Frame {
        encode::to_frame(self, caps)
    }

    /// Writes the message in the dialect described by `caps`.
    pub fn encode(&self, caps: &Capabilities, dst: &mut BytesMut) {
        self.to_frame(caps).encode(dst);
    }

    /// Parses a frame received from a `role` server in the dialect `caps` (for test clients).
    ///
    /// # Errors
    /// [`ParseError`] if the frame is not a server message this crate models.
    pub fn from_frame(frame: &Frame, role: Role, caps: &Capabilities) -> Result<Self, ParseError> {
        decode::from_frame(frame, role, caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: &ServerMessage, n: u8) -> String {
        let caps = Capabilities::for_version(ProtocolVersion::new(n).unwrap());
        let mut b = BytesMut::new();
        m.encode(&caps, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn one_iln_value_encodes_per_dialect() {
        let iln = ServerMessage::Iln {
            trid: TrId(9),
            status: Status::Nln,
            handle: Passport::parse("bob@example.com").unwrap(),
            name: FriendlyName::parse("Bob").unwrap(),
            caps: ClientCaps(268_435_456),
            msn_object: Some(MsnObject::parse("%3Cmsnobj%2F%3E").unwrap()),
        };
        assert_eq!(enc(&iln, 7), "ILN 9 NLN bob@example.com Bob\r\n");
        assert_eq!(enc(&iln, 8), "ILN 9 NLN bob@example.com Bob 268435456\r\n");
        assert_eq!(
            enc(&iln, 9),
            "ILN 9 NLN bob@example.com Bob 268435456 %3Cmsnobj%2F%3E\r\n"
        );
    }

    #[test]
    fn login_replies_per_dialect() {
        let ok = ServerMessage::UsrOk {
            trid: TrId(7),
            handle: Passport::parse("alice@example.com").unwrap(),
            name: FriendlyName::parse("Alice").unwrap(),
            verified: true,
        };
        assert_eq!(enc(&ok, 5), "USR 7 OK alice@example.com Alice\r\n");
        assert_eq!(enc(&ok, 7), "USR 7 OK alice@example.com Alice 1\r\n");
        assert_eq!(enc(&ok, 9), "USR 7 OK alice@example.com Alice 1 0\r\n");
        assert_eq!(enc(&ok, 10), "USR 7 OK alice@example.com 1 0\r\n");
        let xfr = ServerMessage::XfrNs {
            trid: TrId(3),
            addr: Token::parse("10.0.0.2:1863").unwrap(),
            current: Token::parse("10.0.0.1:1863").unwrap(),
        };
        assert_eq!(enc(&xfr, 2), "XFR 3 NS 10.0.0.2:1863\r\n");
        assert_eq!(enc(&xfr, 6), "XFR 3 NS 10.0.0.2:1863 0\r\n");
        assert_eq!(enc(&xfr, 7), "XFR 3 NS 10.0.0.2:1863 0 10.0.0.1:1863\r\n");
        assert_eq!(enc(&ServerMessage::Qng { seconds: 60 }, 8), "QNG\r\n");
        assert_eq!(enc(&ServerMessage::Qng { seconds: 60 }, 9), "QNG 60\r\n");
        let none = ServerMessage::Ver {
            trid: TrId(1),
            versions: vec![],
            cvr0: true,
        };
        assert_eq!(enc(&none, 8), "VER 1 0\r\n");
    }

    #[test]
    fn address_book_replies_per_dialect() {
        let p = |s: &str| Passport::parse(s).unwrap();
        let n = |s: &str| FriendlyName::parse(s).unwrap();
        let g = |b: u8| Guid::from_bytes([b; 16]);
        let group = GroupKey::new(GroupId(3), g(0xaa));
        let gg = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
        let cg = "cccccccc-cccc-cccc-cccc-cccccccccccc";
        let add = |list, group| ServerMessage::Add {
            trid: TrId(8),
            list,
            version: 12,
            handle: p("bob@example.com"),
            name: n("Bob"),
            group,
            guid: g(0xcc),
        };
        assert_eq!(
            enc(&add(ListKind::Fl, Some(group)), 9),
            "ADD 8 FL 12 bob@example.com Bob 3\r\n"
        );
        assert_eq!(
            enc(&add(ListKind::Fl, None), 10),
            format!("ADC 8 FL N=bob@example.com F=Bob C={cg}\r\n")
        );
        assert_eq!(
            enc(&add(ListKind::Al, None), 11),
            "ADC 8 AL N=bob@example.com\r\n"
        );
        // The server-initiated RL notification, one value for every dialect.
        let rl = ServerMessage::Add {
            trid: TrId(0),
            list: ListKind::Rl,
            version: 4,
            handle: p("alice@example.com"),
            name: n("Alice"),
            group: None,
            guid: Guid::NIL,
        };
        assert_eq!(enc(&rl, 7), "ADD 0 RL 4 alice@example.com Alice\r\n");
        assert_eq!(enc(&rl, 12), "ADC 0 RL N=alice@example.com F=Alice\r\n");
        let rem = ServerMessage::Rem {
            trid: TrId(0),
            list: ListKind::Rl,
            version: 5,
            handle: p("alice@example.com"),
            group: None,
        };
        assert_eq!(enc(&rem, 9), "REM 0 RL 5 alice@example.com\r\n");
        assert_eq!(enc(&rem, 10), "REM 0 RL alice@example.com\r\n");
        let by_guid = ServerMessage::RemGuid {
            trid: TrId(9),
            contact: g(0xcc),
            group: Some(g(0xaa)),
        };
        assert_eq!(enc(&by_guid, 10), format!("REM 9 FL {cg} {gg}\r\n"));
        let to_group = ServerMessage::AdcToGroup {
            trid: TrId(9),
            contact: g(0xcc),
            group: g(0xaa),
        };
        assert_eq!(enc(&to_group, 11), format!("ADC 9 FL C={cg} {gg}\r\n"));
        // Groups: research notes §2.5.
        let name = GroupName::parse("Work").unwrap();
        let adg = ServerMessage::Adg {
            trid: TrId(10),
            version: 6,
            name: name.clone(),
            group,
        };
        assert_eq!(enc(&adg, 7), "ADG 10 6 Work 3 0\r\n");
        assert_eq!(enc(&adg, 10), format!("ADG 10 Work {gg}\r\n"));
        let rmg = ServerMessage::Rmg {
            trid: TrId(11),
            version: 7,
            group,
        };
        assert_eq!(enc(&rmg, 9), "RMG 11 7 3\r\n");
        assert_eq!(enc(&rmg, 11), format!("RMG 11 1 {gg}\r\n"));
        let reg = ServerMessage::Reg {
            trid: TrId(12),
            version: 8,
            group,
            name,
        };
        assert_eq!(enc(&reg, 8), "REG 12 8 3 Work 0\r\n");
        assert_eq!(enc(&reg, 12), format!("REG 12 1 Work {gg} 0\r\n"));
        // List versions are gone from the settings replies.
        let blp = ServerMessage::Blp {
            trid: TrId(13),
            version: 9,
            value: crate::types::Blp::Bl,
        };
        assert_eq!(enc(&blp, 9), "BLP 13 9 BL\r\n");
        assert_eq!(enc(&blp, 10), "BLP 13 BL\r\n");
        let mfn = ServerMessage::Prp {
            trid: TrId(14),
            version: 9,
            prop: PhoneProp::Mfn,
            value: Some(Token::parse("Alice%20A").unwrap()),
        };
        assert_eq!(enc(&mfn, 10), "PRP 14 MFN Alice%20A\r\n");
    }

    #[test]
    fn msnp11_and_msnp12_additions() {
        let p = |s: &str| Passport::parse(s).unwrap();
        let n = |s: &str| FriendlyName::parse(s).unwrap();
        assert_eq!(enc(&ServerMessage::Sbs, 11), "SBS 0 null\r\n");
        assert_eq!(
            enc(&ServerMessage::UuxOk { trid: TrId(8) }, 11),
            "UUX 8 0\r\n"
        );
        let ubx = ServerMessage::Ubx {
            handle: p("bob@example.com"),
            message: PersonalMessage {
                psm: "example status message".into(),
                current_media: String::new(),
            },
        };
        assert_eq!(
            enc(&ubx, 11),
            "UBX bob@example.com 75\r\n<Data><PSM>example status message</PSM>\
             <CurrentMedia></CurrentMedia></Data>"
        );
        let joi = ServerMessage::Joi {
            handle: p("bob@example.com"),
            name: n("Bob"),
            caps: ClientCaps(1_342_177_280),
        };
        assert_eq!(enc(&joi, 11), "JOI bob@example.com Bob\r\n");
        assert_eq!(enc(&joi, 12), "JOI bob@example.com Bob 1342177280\r\n");
        let iro = ServerMessage::Iro {
            trid: TrId(1),
            index: 1,
            total: 1,
            handle: p("bob@example.com"),
            name: n("Bob"),
            caps: ClientCaps(1_342_177_280),
        };
        assert_eq!(enc(&iro, 9), "IRO 1 1 1 bob@example.com Bob\r\n");
        assert_eq!(
            enc(&iro, 12),
            "IRO 1 1 1 bob@example.com Bob 1342177280\r\n"
        );
    }
}
