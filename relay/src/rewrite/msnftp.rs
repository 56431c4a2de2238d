//! MSNFTP invitations (`text/x-msmsgsinvite`, MSN 3.x–5.x): INVITE / ACCEPT / CANCEL.
//!
//! ```text
//! sender → receiver   INVITE  (Application-GUID = file transfer, Invitation-Cookie)
//! receiver → sender   ACCEPT  (plain: Request-Data: IP-Address:)
//! sender → receiver   ACCEPT  IP-Address, IP-Address-Internal, Port, PortX, PortX-Internal, AuthCookie
//!   (role swap: INVITE carries Connectivity: N; the receiver's ACCEPT carries the addresses
//!    and Sender-Connect: TRUE)
//! either              CANCEL  Cancel-Code
//! ```
//!
//! Only the listener's address-bearing `ACCEPT` is rewritten (modes LAN, VPN, observed —
//! verified, or unverified as the last resort, see [`super::decision`] —, agent); a role swap adds `Connectivity: N` to the `INVITE`; a rendezvous turns the
//! receiver's plain `ACCEPT` into a `Sender-Connect` one pointing the sender at relay port P2
//! and answers the receiver with a synthesized `ACCEPT` pointing it at relay port P1.
//! `PortX` is `Port ^ 0x3141` and is recomputed whenever `Port` changes. Unknown fields,
//! order, case and line ends are kept (see [`super::fields`]).

use std::fmt::Write as _;
use std::time::Instant;

use super::decision::{ClientGeneration, Mode, PeerFacts, Transport, decide};
use super::envelope::{Envelope, INVITATION_HEAD};
use super::fields::{Block, Edits};
use super::{AllocationId, Ctx, MAX_TRANSFERS, Outcome, PORTX_XOR, Peer, RoomRelay, log_field};

/// `Application-GUID` of file transfer.
const FILE_TRANSFER_GUID: &str = "{5D3E02AB-6190-11d3-BBBB-00C04F795683}";
/// Longest `Invitation-Cookie` accepted (a decimal u32 in practice).
const MAX_COOKIE_LEN: usize = 32;

/// One MSNFTP negotiation seen in this room.
#[derive(Debug)]
pub(super) struct Transfer {
    cookie: String,
    inviter: String,
    file_transfer: bool,
    /// The mode decided when the INVITE passed (sender as the would-be listener).
    invite_mode: Option<Mode>,
    /// A rendezvous has been set up: the sender must not advertise its own address now.
    rendezvous_active: bool,
    allocations: Vec<AllocationId>,
    created: Instant,
}

pub(super) fn rewrite(room: &mut RoomRelay, ctx: &Ctx<'_>, env: &Envelope<'_>) -> Outcome {
    let block = Block::parse(env.body);
    let (Some(command), Some(cookie)) = (
        block.get("Invitation-Command"),
        block.get("Invitation-Cookie"),
    ) else {
        return Outcome::unchanged();
    };
    if cookie.is_empty() || cookie.len() > MAX_COOKIE_LEN {
        return Outcome::unchanged();
    }
    let hop = ctx.hop;
    if command.eq_ignore_ascii_case("INVITE") {
        on_invite(room, ctx, env, &block, cookie)
    } else if command.eq_ignore_ascii_case("ACCEPT") {
        if hop.room_size != 2 {
            return Outcome::unchanged();
        }
        if block.find("IP-Address").is_some() {
            on_listener_accept(room, ctx, env, &block, cookie)
        } else {
            on_plain_accept(room, ctx, env, &block, cookie)
        }
    } else if command.eq_ignore_ascii_case("CANCEL") {
        if let Some(pos) = room.transfers.iter().position(|t| t.cookie == cookie) {
            let transfer = room.transfers.remove(pos);
            for id in transfer.allocations {
                ctx.ports.release(id);
            }
        }
        Outcome::unchanged()
    } else {
        Outcome::unchanged()
    }
}

fn on_invite(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    env: &Envelope<'_>,
    block: &Block<'_>,
    cookie: &str,
) -> Outcome {
    let hop = ctx.hop;
    let file_transfer = block
        .get("Application-GUID")
        .is_some_and(|g| g.eq_ignore_ascii_case(FILE_TRANSFER_GUID));
    let mut invite_mode = None;
    let mut outcome = Outcome::unchanged();
    // A sender that already said `Connectivity: N` will not listen: nothing to decide now.
    if file_transfer && hop.room_size == 2 && block.find("Connectivity").is_none() {
        let mode = decide(
            Transport::Msnftp,
            &hop.sender.facts,
            &hop.recipient.facts,
            ctx.policy,
        );
        invite_mode = Some(mode);
        if mode == Mode::RoleSwap {
            let mut edits = Edits::new(block);
            edits.append("Connectivity", "N");
            log_field(Transport::Msnftp, mode, "Connectivity", "", "N");
            outcome = Outcome::replace(vec![[env.head, &edits.render()].concat()]);
        }
    }
    // A retransmitted INVITE with the same cookie replaces the old record.
    if let Some(pos) = room.transfers.iter().position(|t| t.cookie == cookie) {
        let old = room.transfers.remove(pos);
        for id in old.allocations {
            ctx.ports.release(id);
        }
    }
    if room.transfers.len() >= MAX_TRANSFERS {
        // Forget the oldest; its allocations expire on their own.
        if let Some(oldest) = (0..room.transfers.len()).min_by_key(|&i| room.transfers[i].created) {
            room.transfers.remove(oldest);
        }
    }
    room.transfers.push(Transfer {
        cookie: cookie.to_owned(),
        inviter: hop.sender.handle.clone(),
        file_transfer,
        invite_mode,
        rendezvous_active: false,
        allocations: Vec::new(),
        created: ctx.now,
    });
    outcome
}

/// The receiver's plain ACCEPT: only a rendezvous changes it.
fn on_plain_accept(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    env: &Envelope<'_>,
    block: &Block<'_>,
    cookie: &str,
) -> Outcome {
    let hop = ctx.hop;
    let Some(transfer) = room.transfers.iter_mut().find(|t| t.cookie == cookie) else {
        return Outcome::unchanged();
    };
    if transfer.invite_mode != Some(Mode::Rendezvous)
        || transfer.rendezvous_active
        || transfer.inviter != hop.recipient.handle
    {
        return Outcome::unchanged();
    }
    // The message's sender is the receiver (leg 1), its recipient the file's sender (leg 2).
    let receiver = hop.sender;
    let sender = hop.recipient;
    let Some([leg_receiver, leg_sender]) = ctx.ports.rendezvous(
        &sender.handle,
        [receiver.facts.observed, sender.facts.observed],
    ) else {
        tracing::warn!(
            target: "relive_relay::rewrite",
            protocol = "msnftp",
            mode = Mode::Rendezvous.name(),
            "no relay ports for a rendezvous; invitation left untouched"
        );
        return Outcome::unchanged();
    };
    transfer.rendezvous_active = true;
    transfer
        .allocations
        .extend([leg_receiver.id, leg_sender.id]);
    let relay = ctx.policy.relay_ip.to_string();
    let auth_cookie = rand::random::<u32>().to_string();

    // To the sender: "the receiver listens at relay:P2, connect to it" (Sender-Connect).
    let mut edits = Edits::new(block);
    let p2 = leg_sender.port;
    edits.append("IP-Address", &relay);
    edits.append("Port", &p2.to_string());
    edits.append("PortX", &(p2 ^ PORTX_XOR).to_string());
    edits.append("AuthCookie", &auth_cookie);
    edits.append("Sender-Connect", "TRUE");
    let to_recipient = [env.head, &edits.render()].concat();

    // To the receiver: "the sender listens at relay:P1" (a synthesized listener ACCEPT).
    let p1 = leg_receiver.port;
    let mut body = String::new();
    // Writing into a String cannot fail.
    let _ = write!(
        body,
        "Invitation-Command: ACCEPT\r\nInvitation-Cookie: {cookie}\r\nIP-Address: {relay}\r\n\
         Port: {p1}\r\nPortX: {}\r\nAuthCookie: {auth_cookie}\r\nLaunch-Application: FALSE\r\n\
         Request-Data: IP-Address:\r\n\r\n",
        p1 ^ PORTX_XOR
    );
    let to_sender = [INVITATION_HEAD, body.as_bytes()].concat();
    for (field, to) in [
        ("Port", p2.to_string().as_str()),
        ("Sender-Connect", "TRUE"),
        ("IP-Address", relay.as_str()),
    ] {
        log_field(Transport::Msnftp, Mode::Rendezvous, field, "", to);
    }
    tracing::info!(
        target: "relive_relay::rewrite",
        protocol = "msnftp",
        mode = Mode::Rendezvous.name(),
        receiver_leg_port = p1,
        sender_leg_port = p2,
        "synthesized listener ACCEPT for the receiver"
    );
    let mut outcome = Outcome::replace(vec![to_recipient]);
    outcome.to_sender.push(to_sender.into());
    outcome
}

/// The listener's ACCEPT with addresses: LAN, VPN, observed or agent rewrite.
fn on_listener_accept(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    env: &Envelope<'_>,
    block: &Block<'_>,
    cookie: &str,
) -> Outcome {
    let hop = ctx.hop;
    if let Some(t) = room.transfers.iter().find(|t| t.cookie == cookie) {
        if !t.file_transfer {
            return Outcome::unchanged();
        }
        if t.rendezvous_active {
            // The sender ignored Sender-Connect and advertised itself; the receiver already
            // has the relay's address, a second ACCEPT would only confuse it.
            tracing::warn!(
                target: "relive_relay::rewrite",
                protocol = "msnftp",
                mode = Mode::Rendezvous.name(),
                "listener ACCEPT during a rendezvous withheld"
            );
            return Outcome::withhold();
        }
    }
    let port = block.get("Port").and_then(|p| p.parse::<u16>().ok());
    let portx = block.get("PortX").and_then(|p| p.parse::<u16>().ok());
    if let (Some(port), Some(portx)) = (port, portx)
        && port ^ PORTX_XOR != portx
    {
        tracing::debug!(
            target: "relive_relay::rewrite",
            port,
            portx,
            "PortX is not Port ^ 0x3141"
        );
    }
    let internal_port = block
        .get("PortX-Internal")
        .and_then(|p| p.parse::<u16>().ok())
        .map(|p| p ^ PORTX_XOR);

    let listener = with_advertised(hop.sender, block);
    let mode = decide(
        Transport::Msnftp,
        &listener,
        &hop.recipient.facts,
        ctx.policy,
    );
    let mut edits = Edits::new(block);
    match mode {
        Mode::Lan {
            address: Some(address),
        }
        | Mode::Vpn { address } => {
            set(&mut edits, mode, "IP-Address", address.to_string());
            if matches!(mode, Mode::Vpn { .. }) {
                set(&mut edits, mode, "IP-Address-Internal", address.to_string());
            }
            if let Some(p) = internal_port {
                set_ports(&mut edits, mode, p);
            }
        }
        Mode::Observed { verified } => {
            if !verified {
                tracing::info!(
                    target: "relive_relay::rewrite",
                    protocol = "msnftp",
                    mode = mode.name(),
                    unverified = true,
                    "no evidence the listener is reachable; advertising its observed address \
                     (works if a port is forwarded)"
                );
            }
            set(
                &mut edits,
                mode,
                "IP-Address",
                hop.sender.facts.observed.to_string(),
            );
        }
        Mode::Agent => {
            let Some(target) = internal_port.or(port) else {
                return Outcome::unchanged();
            };
            let Some(allocated) =
                ctx.ports
                    .forward(&hop.sender.handle, hop.recipient.facts.observed, target)
            else {
                tracing::warn!(
                    target: "relive_relay::rewrite",
                    protocol = "msnftp",
                    mode = mode.name(),
                    "no relay port for an agent forward; invitation left untouched"
                );
                return Outcome::unchanged();
            };
            if let Some(t) = room.transfers.iter_mut().find(|t| t.cookie == cookie) {
                t.allocations.push(allocated.id);
            }
            let relay = ctx.policy.relay_ip.to_string();
            set(&mut edits, mode, "IP-Address", relay.clone());
            set(&mut edits, mode, "IP-Address-Internal", relay);
            set_ports(&mut edits, mode, allocated.port);
            set(
                &mut edits,
                mode,
                "PortX-Internal",
                (allocated.port ^ PORTX_XOR).to_string(),
            );
        }
        Mode::Lan { address: None }
        | Mode::RoleSwap
        | Mode::Rendezvous
        | Mode::SwitchboardFallback
        | Mode::Untouched => {
            tracing::info!(
                target: "relive_relay::rewrite",
                protocol = "msnftp",
                mode = mode.name(),
                "listener ACCEPT left untouched"
            );
        }
    }
    if edits.changed() {
        Outcome::replace(vec![[env.head, &edits.render()].concat()])
    } else {
        Outcome::unchanged()
    }
}

/// The sender's facts plus the addresses its ACCEPT advertises, and whether they are evidence
/// that it is reachable (see [`super::decision`]): its internal address is the observed one
/// (no NAT), or an MSN 1.x–4.x client (which never gets `ClientIP`) advertises the observed
/// address.
fn with_advertised(peer: &Peer, block: &Block<'_>) -> PeerFacts {
    let mut facts = peer.facts.clone();
    for key in ["IP-Address-Internal", "IP-Address"] {
        if let Some(ip) = block.get(key).and_then(|v| v.parse().ok()) {
            let evidence = ip == facts.observed
                && (key == "IP-Address-Internal" || facts.generation == ClientGeneration::Legacy);
            if evidence && !facts.reachable {
                tracing::debug!(
                    target: "relive_relay::rewrite",
                    protocol = "msnftp",
                    field = key,
                    "listener advertises its observed address: taken as reachable"
                );
                facts.reachable = true;
            }
            if !facts.addresses.contains(&ip) {
                facts.addresses.push(ip);
            }
        }
    }
    facts
}

/// Replaces `field` if present and different, and logs the change.
fn set(edits: &mut Edits<'_, '_>, mode: Mode, field: &str, value: String) {
    if let Some(old) = edits.set(field, &value) {
        log_field(Transport::Msnftp, mode, field, old, &value);
    }
}

/// Sets `Port` and the matching `PortX`.
fn set_ports(edits: &mut Edits<'_, '_>, mode: Mode, port: u16) {
    set(edits, mode, "Port", port.to_string());
    set(edits, mode, "PortX", (port ^ PORTX_XOR).to_string());
}
