//! What cluster nodes send each other over NATS: hub changes ([`WireOp`], batched in an
//! [`Envelope`]) and heartbeats ([`Heartbeat`]), as JSON. Strings are the MSNP wire forms, so
//! a value that was valid on one node parses on every other.

use relive_msnp::client::Role;
use relive_msnp::frame;
use relive_msnp::psm::PersonalMessage;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{
    Blp, ClientCaps, FriendlyName, Guid, ListKind, ListSet, MsnObject, OutReason, Passport,
    SessionId, Status, Token, TrId,
};
use relive_msnp::version::{Capabilities, ProtocolVersion};
use serde::{Deserialize, Serialize};

use crate::hub::{ConnId, HubOp, Presence};

/// A batch of changes from one node, in the order that node made them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub node: String,
    /// The changes.
    pub ops: Vec<WireOp>,
}

/// A node's periodic announcement of itself ([`super::ClusterSettings::heartbeat`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node's id.
    pub node: String,
    /// It serves logins (NS).
    pub ns: bool,
    /// It serves switchboards (SB).
    pub sb: bool,
    /// `host:port` of its NS listener as clients reach it.
    pub ns_addr: String,
    /// `host:port` of its SB listener as clients reach it.
    pub sb_addr: String,
    /// Its load: open switchboard rooms (SB) plus its own sessions (NS).
    pub load: u64,
    /// It is shutting down: refer nobody to it any more.
    pub leaving: bool,
}

/// One hub change on the wire ([`HubOp`] plus the login epoch of a registration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum WireOp {
    /// [`HubOp::Register`]; `epoch` orders two logins of one user on two nodes.
    Reg {
        /// Handle.
        u: String,
        /// Connection id on the sending node.
        c: u64,
        /// Login epoch (milliseconds, made unique per node).
        e: u64,
        /// Friendly name.
        n: String,
        /// BLP.
        b: String,
        /// Contacts and their list bits.
        l: Vec<(String, u8)>,
    },
    /// [`HubOp::Unregister`].
    Unreg {
        /// Handle.
        u: String,
        /// Connection id on the sending node.
        c: u64,
    },
    /// [`HubOp::Dialect`].
    Dia {
        /// Handle.
        u: String,
        /// Protocol version number.
        v: u8,
    },
    /// [`HubOp::Presence`].
    Chg {
        /// Handle.
        u: String,
        /// Status.
        s: String,
        /// Client caps.
        c: u32,
        /// MSNObject.
        o: Option<String>,
    },
    /// [`HubOp::Personal`].
    Uux {
        /// Handle.
        u: String,
        /// Personal message.
        p: String,
        /// Current media.
        m: String,
    },
    /// [`HubOp::Name`].
    Rea {
        /// Handle.
        u: String,
        /// Friendly name.
        n: String,
    },
    /// [`HubOp::ContactBits`].
    Bits {
        /// Whose lists.
        u: String,
        /// The contact.
        c: String,
        /// New bits.
        b: u8,
    },
    /// [`HubOp::Blp`].
    Blp {
        /// Handle.
        u: String,
        /// BLP.
        b: String,
    },
    /// [`HubOp::ListNotice`] (`ADD 0 RL` when `n` is set, else `REM 0 RL`).
    Rl {
        /// Who is told.
        u: String,
        /// Whom it is about.
        a: String,
        /// New bits of `a` in `u`'s lists.
        b: u8,
        /// List version.
        v: u32,
        /// `a`'s name for an `ADD`.
        n: Option<String>,
    },
    /// A failed login attempt ([`crate::passport::RateLimiter`]).
    Fail {
        /// Handle as given.
        u: String,
        /// Source address.
        a: std::net::IpAddr,
    },
    /// A successful login attempt.
    Pass {
        /// Handle as given.
        u: String,
        /// Source address.
        a: std::net::IpAddr,
    },
    /// [`HubOp::Kick`], sent to the node holding the session.
    Out {
        /// Handle.
        u: String,
        /// Connection id on the receiving node.
        c: u64,
        /// `OUT` reason.
        r: String,
    },
    /// [`HubOp::Send`], sent to the node holding the session.
    Say {
        /// Handle.
        u: String,
        /// Connection id on the receiving node.
        c: u64,
        /// The session's dialect.
        v: u8,
        /// The message as that dialect writes it.
        m: String,
    },
    /// [`HubOp::SendAll`].
    All {
        /// The dialect `m` is written in.
        v: u8,
        /// The message.
        m: String,
    },
    /// [`HubOp::Revoke`], sent to the node holding the session.
    Rvk {
        /// Handle.
        u: String,
        /// Connection id on the receiving node.
        c: u64,
        /// The revoked token's id.
        k: i64,
    },
    /// The first op of a node's full snapshot of its own sessions: on applying the envelope,
    /// the receiver forgets every session of that node the snapshot does not list (ended
    /// while messages were lost, e.g. during a NATS outage).
    Sync,
    /// The sender (re)connected to NATS and asks every node for its snapshot.
    Want,
    /// [`HubOp::Ring`].
    Rng {
        /// The callee.
        u: String,
        /// Session id.
        s: u32,
        /// SB address.
        a: String,
        /// The callee's cookie.
        k: String,
        /// The caller.
        c: String,
        /// The caller's name.
        n: String,
    },
}

impl WireOp {
    /// The user the change is about (whose node must have sent it), if the change is one a
    /// user's own session makes.
    #[must_use]
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::Reg { u, .. }
            | Self::Unreg { u, .. }
            | Self::Dia { u, .. }
            | Self::Chg { u, .. }
            | Self::Uux { u, .. }
            | Self::Rea { u, .. }
            | Self::Bits { u, .. }
            | Self::Blp { u, .. } => Some(u),
            Self::Rl { .. }
            | Self::Rng { .. }
            | Self::Fail { .. }
            | Self::Pass { .. }
            | Self::Out { .. }
            | Self::Say { .. }
            | Self::All { .. }
            | Self::Rvk { .. }
            | Self::Sync
            | Self::Want => None,
        }
    }

    /// The wire form of `op` (`epoch` for a registration); `None` for a message no node
    /// sends across (nothing else is replicated).
    #[must_use]
    pub fn from_op(op: &HubOp, epoch: u64) -> Option<Self> {
        let s = |p: &Passport| p.as_str().to_owned();
        Some(match op {
            HubOp::Register {
                user,
                conn,
                name,
                blp,
                contacts,
            } => Self::Reg {
                u: s(user),
                c: conn.0,
                e: epoch,
                n: name.as_str().to_owned(),
                b: blp.as_str().to_owned(),
                l: contacts.iter().map(|(p, b)| (s(p), b.bits())).collect(),
            },
            HubOp::Unregister { user, conn } => Self::Unreg {
                u: s(user),
                c: conn.0,
            },
            HubOp::Dialect { user, version } => Self::Dia {
                u: s(user),
                v: version.number(),
            },
            HubOp::Presence { user, presence } => Self::Chg {
                u: s(user),
                s: presence.status.as_str().to_owned(),
                c: presence.caps.0,
                o: presence.msn_object.as_ref().map(|o| o.as_str().to_owned()),
            },
            HubOp::Personal { user, message } => Self::Uux {
                u: s(user),
                p: message.psm.clone(),
                m: message.current_media.clone(),
            },
            HubOp::Name { user, name } => Self::Rea {
                u: s(user),
                n: name.as_str().to_owned(),
            },
            HubOp::ContactBits {
                user,
                contact,
                bits,
            } => Self::Bits {
                u: s(user),
                c: s(contact),
                b: bits.bits(),
            },
            HubOp::Blp { user, blp } => Self::Blp {
                u: s(user),
                b: blp.as_str().to_owned(),
            },
            HubOp::ListNotice {
                user,
                about,
                bits,
                message,
            } => {
                let (v, n) = match message {
                    ServerMessage::Add {
                        list: ListKind::Rl,
                        version,
                        name,
                        ..
                    } => (*version, Some(name.as_str().to_owned())),
                    ServerMessage::Rem {
                        list: ListKind::Rl,
                        version,
                        ..
                    } => (*version, None),
                    _ => return None,
                };
                Self::Rl {
                    u: s(user),
                    a: s(about),
                    b: bits.bits(),
                    v,
                    n,
                }
            }
            HubOp::Kick { user, conn, reason } => Self::Out {
                u: s(user),
                c: conn.0,
                r: reason.as_str().to_owned(),
            },
            HubOp::Send {
                user,
                conn,
                version,
                message,
            } => Self::Say {
                u: s(user),
                c: conn.0,
                v: version.number(),
                m: encode(message, *version)?,
            },
            HubOp::SendAll { message } => {
                let version = *ProtocolVersion::IMPLEMENTED.end();
                Self::All {
                    v: version.number(),
                    m: encode(message, version)?,
                }
            }
            HubOp::Revoke { user, conn, token } => Self::Rvk {
                u: s(user),
                c: conn.0,
                k: *token,
            },
            HubOp::Ring { callee, message } => {
                let ServerMessage::Rng {
                    session,
                    addr,
                    cookie,
                    caller,
                    caller_name,
                } = message
                else {
                    return None;
                };
                Self::Rng {
                    u: s(callee),
                    s: session.0,
                    a: addr.as_str().to_owned(),
                    k: cookie.as_str().to_owned(),
                    c: s(caller),
                    n: caller_name.as_str().to_owned(),
                }
            }
        })
    }

    /// The hub change, with `conn` as this node's stand-in id for a (un)registration; `None`
    /// if a field does not parse (a peer of another version; logged by the caller).
    #[must_use]
    pub fn to_op(&self, conn: ConnId) -> Option<HubOp> {
        let p = |s: &str| Passport::parse(s).ok();
        let name = |s: &str| FriendlyName::parse(s).ok();
        Some(match self {
            Self::Reg { u, n, b, l, .. } => HubOp::Register {
                user: p(u)?,
                conn,
                name: name(n)?,
                blp: Blp::parse(b).ok()?,
                contacts: l
                    .iter()
                    .map(|(h, bits)| Some((p(h)?, ListSet::from_bits(*bits)?)))
                    .collect::<Option<_>>()?,
            },
            Self::Unreg { u, .. } => HubOp::Unregister { user: p(u)?, conn },
            Self::Dia { u, v } => HubOp::Dialect {
                user: p(u)?,
                version: ProtocolVersion::new(*v)?,
            },
            Self::Chg { u, s, c, o } => HubOp::Presence {
                user: p(u)?,
                presence: Presence {
                    status: Status::parse(s).ok()?,
                    caps: ClientCaps(*c),
                    msn_object: match o {
                        Some(o) => Some(MsnObject::parse(o).ok()?),
                        None => None,
                    },
                },
            },
            Self::Uux { u, p: psm, m } => HubOp::Personal {
                user: p(u)?,
                message: PersonalMessage {
                    psm: psm.clone(),
                    current_media: m.clone(),
                },
            },
            Self::Rea { u, n } => HubOp::Name {
                user: p(u)?,
                name: name(n)?,
            },
            Self::Bits { u, c, b } => HubOp::ContactBits {
                user: p(u)?,
                contact: p(c)?,
                bits: ListSet::from_bits(*b)?,
            },
            Self::Blp { u, b } => HubOp::Blp {
                user: p(u)?,
                blp: Blp::parse(b).ok()?,
            },
            Self::Rl { u, a, b, v, n } => {
                let about = p(a)?;
                let message = match n {
                    Some(n) => ServerMessage::Add {
                        trid: TrId(0),
                        list: ListKind::Rl,
                        version: *v,
                        handle: about.clone(),
                        name: name(n)?,
                        group: None,
                        guid: Guid::NIL,
                    },
                    None => ServerMessage::Rem {
                        trid: TrId(0),
                        list: ListKind::Rl,
                        version: *v,
                        handle: about.clone(),
                        group: None,
                    },
                };
                HubOp::ListNotice {
                    user: p(u)?,
                    about,
                    bits: ListSet::from_bits(*b)?,
                    message,
                }
            }
            Self::Fail { .. } | Self::Pass { .. } | Self::Sync | Self::Want => return None,
            Self::Out { u, c, r } => HubOp::Kick {
                user: p(u)?,
                conn: ConnId(*c),
                reason: OutReason::parse(r).ok()?,
            },
            Self::Say { u, c, v, m } => {
                let version = ProtocolVersion::new(*v)?;
                HubOp::Send {
                    user: p(u)?,
                    conn: ConnId(*c),
                    version,
                    message: decode(m, version)?,
                }
            }
            Self::All { v, m } => HubOp::SendAll {
                message: decode(m, ProtocolVersion::new(*v)?)?,
            },
            Self::Rvk { u, c, k } => HubOp::Revoke {
                user: p(u)?,
                conn: ConnId(*c),
                token: *k,
            },
            Self::Rng { u, s, a, k, c, n } => HubOp::Ring {
                callee: p(u)?,
                message: ServerMessage::Rng {
                    session: SessionId(*s),
                    addr: Token::parse(a).ok()?,
                    cookie: relive_msnp::types::Secret::parse(k).ok()?,
                    caller: p(c)?,
                    caller_name: name(n)?,
                },
            },
        })
    }
}

/// `message` as a session of `version` reads it (`None` if not UTF-8: nothing the hub
/// forwards is).
fn encode(message: &ServerMessage, version: ProtocolVersion) -> Option<String> {
    let mut bytes = bytes::BytesMut::new();
    message.encode(&Capabilities::for_version(version), &mut bytes);
    String::from_utf8(bytes.to_vec()).ok()
}

/// The message [`encode`] wrote, read back in the same dialect (`None`: not exactly one
/// server message).
fn decode(text: &str, version: ProtocolVersion) -> Option<ServerMessage> {
    let mut bytes = bytes::BytesMut::from(text.as_bytes());
    let frame = frame::decode(&mut bytes, frame::Direction::ServerToClient).ok()??;
    if !bytes.is_empty() {
        return None;
    }
    ServerMessage::from_frame(
        &frame,
        Role::Notification,
        &Capabilities::for_version(version),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// What the website hands to a session of another node crosses the wire unchanged, in
    /// the dialect of that session.
    #[test]
    fn forwarded_messages_survive_the_wire_in_each_dialect() {
        let bob = Passport::parse("bob@example.com").unwrap();
        let bobby = FriendlyName::parse("Bobby%20B").unwrap();
        let mail = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; \
                    charset=UTF-8\r\n\r\nFrom: Alice\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\n";
        let messages = [
            ServerMessage::Msg {
                from: Token::parse("Hotmail").unwrap(),
                name: FriendlyName::parse("Hotmail").unwrap(),
                payload: Bytes::from(mail),
            },
            ServerMessage::Ipg {
                payload: Bytes::from("<NOTIFICATION id=\"0\"><MSG>ü</MSG></NOTIFICATION>"),
            },
            ServerMessage::Rea {
                trid: TrId(0),
                version: 12,
                handle: bob.clone(),
                name: bobby.clone(),
            },
            ServerMessage::Blp {
                trid: TrId(0),
                version: 13,
                value: Blp::Bl,
            },
            ServerMessage::Add {
                trid: TrId(0),
                list: ListKind::Bl,
                version: 14,
                handle: bob.clone(),
                name: bobby,
                group: None,
                guid: Guid::NIL,
            },
            ServerMessage::Rem {
                trid: TrId(0),
                list: ListKind::Al,
                version: 15,
                handle: bob.clone(),
                group: None,
            },
        ];
        for n in [2, 5, 7, 9] {
            let version = ProtocolVersion::new(n).unwrap();
            for message in &messages {
                if n < 6 && matches!(message, ServerMessage::Ipg { .. }) {
                    continue; // pages are MSNP6+
                }
                let op = HubOp::Send {
                    user: bob.clone(),
                    conn: ConnId(7),
                    version,
                    message: message.clone(),
                };
                let wire = WireOp::from_op(&op, 0).unwrap();
                let json = serde_json::to_string(&wire).unwrap();
                let back: WireOp = serde_json::from_str(&json).unwrap();
                assert_eq!(back.to_op(ConnId(0)), Some(op), "MSNP{n}: {json}");
            }
        }
        let all = HubOp::SendAll {
            message: messages[0].clone(),
        };
        let wire = WireOp::from_op(&all, 0).unwrap();
        assert_eq!(wire.to_op(ConnId(0)), Some(all));
        let kick = HubOp::Kick {
            user: bob,
            conn: ConnId(3),
            reason: OutReason::Ssd,
        };
        assert_eq!(
            WireOp::from_op(&kick, 0).unwrap().to_op(ConnId(0)),
            Some(kick)
        );
    }
}
