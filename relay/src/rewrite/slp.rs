//! MSNSLP direct-connection negotiation inside P2P packets (MSN 6+).
//!
//! ```text
//! MSG payload = MIME head (Content-Type: application/x-msnmsgrp2p, P2P-Dest)
//!             + 48-byte P2P header + chunk + 4-byte footer
//! SLP message = start line + headers + CRLF + body (Content-Length bytes, ending in NUL)
//! transrespbody body: Bridge, Listening, Nonce, IPv4External-Addrs, IPv4External-Port,
//!                     IPv4Internal-Addrs, IPv4Internal-Port
//! ```
//!
//! Packets with SessionID ≠ 0 (file data) are never touched: the check reads 4 bytes.
//! SessionID-0 messages split over several chunks are reassembled (bounded) when their first
//! chunk shows a `trans*body` (or does not show the content type at all); others pass chunk
//! by chunk. When a `transrespbody` with `Listening: true` is rewritten, the SLP
//! `Content-Length`, the header's `TotalSize` and `Length` (re-chunked at 1202 bytes when it
//! grows past one chunk) and therefore the `MSG` length change; the ACK the recipient sends
//! back is mapped to the original size (P2P.md §2.3). A `transreqbody` is read for
//! reachability hints (`Conn-Type: Direct-Connect` without firewall, or `UPnPNat: true`).

use std::time::Instant;

use bytes::Bytes;

use super::decision::{Mode, PeerFacts, Transport, decide};
use super::envelope::Envelope;
use super::fields::{Block, Edits};
use super::p2p::{FOOTER_LEN, P2pHeader, Packet, encode_payload, rechunk};
use super::{
    Ctx, Delivery, MAX_ACK_FIXES, MAX_REASSEMBLED_SLP, MAX_REASSEMBLIES, Outcome,
    REASSEMBLY_TIMEOUT, RoomRelay, log_field,
};

const TRANSRESP: &str = "application/x-msnmsgr-transrespbody";
const TRANSREQ: &str = "application/x-msnmsgr-transreqbody";
const ZERO_NONCE: &str = "{00000000-0000-0000-0000-000000000000}";
/// Address fields removed when the relay turns an offer into `Listening: false`, including
/// the reversed WLM 2009 names (P2P.md §2.2).
const ADDRESS_FIELDS: [&str; 12] = [
    "IPv4External-Addrs",
    "IPv4External-Port",
    "IPv4Internal-Addrs",
    "IPv4Internal-Port",
    "IPv4ExternalAddrsAndPorts",
    "IPv4InternalAddrsAndPorts",
    "srddA-lanretxE4vPI",
    "troP-lanretxE4vPI",
    "srddA-lanretnI4vPI",
    "troP-lanretnI4vPI",
    "stroPdnAsrddAlanretxE4vPI",
    "stroPdnAsrddAlanretnI4vPI",
];

/// Chunks of one SessionID-0 message being collected.
#[derive(Debug)]
pub(super) struct Reassembly {
    sender: String,
    recipient: String,
    id: u32,
    total: u64,
    head: Vec<u8>,
    first: P2pHeader,
    footer: [u8; FOOTER_LEN],
    text: Vec<u8>,
    originals: Vec<Bytes>,
    started: Instant,
}

/// A rewritten message whose ACK must report the original size.
#[derive(Debug)]
pub(super) struct AckFix {
    sender: String,
    recipient: String,
    id: u32,
    old_total: u64,
    new_total: u64,
}

pub(super) fn rewrite(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    env: &Envelope<'_>,
    payload: &[u8],
) -> Outcome {
    // Chunks left behind by a sender that stopped are flushed with its next message.
    let flushed = if room.reassembly.is_empty() {
        Vec::new()
    } else {
        flush_expired(room, ctx)
    };
    let outcome = route(room, ctx, env, payload);
    if flushed.is_empty() {
        return outcome;
    }
    let mut list = flushed;
    match outcome.deliver {
        Delivery::Unchanged => list.push(Bytes::copy_from_slice(payload)),
        Delivery::Replace(more) => list.extend(more),
        Delivery::Withhold => {}
    }
    Outcome {
        deliver: Delivery::Replace(list),
        to_sender: outcome.to_sender,
    }
}

fn route(room: &mut RoomRelay, ctx: &Ctx<'_>, env: &Envelope<'_>, payload: &[u8]) -> Outcome {
    // Fast path: data packets (SessionID ≠ 0) are forwarded without further parsing.
    match env.body.get(..4) {
        Some([0, 0, 0, 0]) => {}
        _ => return Outcome::unchanged(),
    }
    let hop = ctx.hop;
    if env
        .p2p_dest
        .is_some_and(|dest| !dest.eq_ignore_ascii_case(&hop.recipient.handle))
    {
        return Outcome::unchanged();
    }
    let Some(packet) = Packet::parse(env.body) else {
        return Outcome::unchanged();
    };
    if packet.header.is_ack() {
        fix_ack(room, ctx, env, &packet)
    } else {
        collect(room, ctx, env, &packet, payload)
    }
}

/// Removes this pair's reassemblies that waited too long and returns their original chunks.
fn flush_expired(room: &mut RoomRelay, ctx: &Ctx<'_>) -> Vec<Bytes> {
    let hop = ctx.hop;
    let mut out = Vec::new();
    let mut i = 0;
    while i < room.reassembly.len() {
        let r = &room.reassembly[i];
        if r.sender == hop.sender.handle
            && r.recipient == hop.recipient.handle
            && ctx.now.saturating_duration_since(r.started) >= REASSEMBLY_TIMEOUT
        {
            let r = room.reassembly.remove(i);
            tracing::debug!(
                target: "relive_relay::rewrite",
                chunks = r.originals.len(),
                "incomplete SLP message flushed unmodified"
            );
            out.extend(r.originals);
        } else {
            i += 1;
        }
    }
    out
}

fn fix_ack(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    env: &Envelope<'_>,
    packet: &Packet<'_>,
) -> Outcome {
    let hop = ctx.hop;
    let h = packet.header;
    let Some(pos) = room.ack_fixes.iter().position(|f| {
        f.sender == hop.recipient.handle && f.recipient == hop.sender.handle && f.id == h.ack_uid
    }) else {
        return Outcome::unchanged();
    };
    let fix = room.ack_fixes.remove(pos);
    let mut fixed = h;
    if fixed.ack_size == fix.new_total {
        fixed.ack_size = fix.old_total;
    }
    if fixed.total_size == fix.new_total {
        fixed.total_size = fix.old_total;
    }
    if fixed == h {
        return Outcome::unchanged();
    }
    tracing::debug!(
        target: "relive_relay::rewrite",
        protocol = "msnslp",
        from = fix.new_total,
        to = fix.old_total,
        "ACK size mapped back"
    );
    Outcome::replace(vec![encode_payload(
        env.head,
        &fixed,
        packet.chunk,
        packet.footer,
    )])
}

/// Handles one SessionID-0, non-ACK chunk.
fn collect(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    env: &Envelope<'_>,
    packet: &Packet<'_>,
    payload: &[u8],
) -> Outcome {
    let hop = ctx.hop;
    let h = packet.header;
    let chunk_len = packet.chunk.len() as u64;
    if h.offset == 0 && h.total_size == chunk_len {
        return process(room, ctx, env.head, &h, packet.footer, packet.chunk, None);
    }
    let key = |r: &Reassembly| {
        r.sender == hop.sender.handle && r.recipient == hop.recipient.handle && r.id == h.id
    };
    if h.offset == 0 {
        if h.total_size < chunk_len || h.total_size > MAX_REASSEMBLED_SLP {
            return Outcome::unchanged();
        }
        if let Some(ct) = slp_content_type(packet.chunk)
            && !ct.starts_with("application/x-msnmsgr-trans")
        {
            return Outcome::unchanged();
        }
        let mut flushed = Vec::new();
        if let Some(pos) = room.reassembly.iter().position(key) {
            // Same id restarted: give the old chunks up unmodified.
            flushed = room.reassembly.remove(pos).originals;
        }
        if room.reassembly.len() >= MAX_REASSEMBLIES {
            let oldest = room.reassembly.remove(0);
            tracing::warn!(
                target: "relive_relay::rewrite",
                chunks = oldest.originals.len(),
                "too many SLP reassemblies; oldest dropped"
            );
        }
        room.reassembly.push(Reassembly {
            sender: hop.sender.handle.clone(),
            recipient: hop.recipient.handle.clone(),
            id: h.id,
            total: h.total_size,
            head: env.head.to_vec(),
            first: h,
            footer: packet.footer,
            text: packet.chunk.to_vec(),
            originals: vec![Bytes::copy_from_slice(payload)],
            started: ctx.now,
        });
        return if flushed.is_empty() {
            Outcome::withhold()
        } else {
            Outcome {
                deliver: Delivery::Replace(flushed),
                to_sender: Vec::new(),
            }
        };
    }
    let Some(pos) = room.reassembly.iter().position(key) else {
        return Outcome::unchanged();
    };
    let r = &mut room.reassembly[pos];
    let in_order = h.offset == r.text.len() as u64 && h.total_size == r.total;
    let fits = (r.text.len() as u64).saturating_add(chunk_len) <= r.total;
    r.originals.push(Bytes::copy_from_slice(payload));
    if !in_order || !fits {
        let r = room.reassembly.remove(pos);
        return Outcome {
            deliver: Delivery::Replace(r.originals),
            to_sender: Vec::new(),
        };
    }
    r.text.extend_from_slice(packet.chunk);
    if (r.text.len() as u64) < r.total {
        return Outcome::withhold();
    }
    let r = room.reassembly.remove(pos);
    process(
        room,
        ctx,
        &r.head,
        &r.first,
        r.footer,
        &r.text,
        Some(r.originals),
    )
}

/// The content type of an SLP message, if its headers are complete in `text`.
fn slp_content_type(text: &[u8]) -> Option<String> {
    let end = text.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Block::parse(&text[..end])
        .get("Content-Type")
        .map(|v| v.trim().to_ascii_lowercase())
}

/// Rewrites one whole SLP message if needed and re-chunks it.
fn process(
    room: &mut RoomRelay,
    ctx: &Ctx<'_>,
    head: &[u8],
    first: &P2pHeader,
    footer: [u8; FOOTER_LEN],
    text: &[u8],
    originals: Option<Vec<Bytes>>,
) -> Outcome {
    let Some(new_text) = rewrite_message(room, ctx, text) else {
        return match originals {
            Some(originals) => Outcome {
                deliver: Delivery::Replace(originals),
                to_sender: Vec::new(),
            },
            None => Outcome::unchanged(),
        };
    };
    let hop = ctx.hop;
    if room.ack_fixes.len() >= MAX_ACK_FIXES {
        room.ack_fixes.remove(0);
    }
    room.ack_fixes.push(AckFix {
        sender: hop.sender.handle.clone(),
        recipient: hop.recipient.handle.clone(),
        id: first.id,
        old_total: text.len() as u64,
        new_total: new_text.len() as u64,
    });
    Outcome::replace(rechunk(head, first, &new_text, footer))
}

/// Returns the rewritten SLP message, or `None` to leave it as it is.
fn rewrite_message(room: &mut RoomRelay, ctx: &Ctx<'_>, text: &[u8]) -> Option<Vec<u8>> {
    let split = text.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (head, body) = text.split_at(split);
    let head_block = Block::parse(head);
    let content_type = head_block.get("Content-Type")?.trim();
    let (fields, nul) = match body.split_last() {
        Some((0, rest)) => (rest, &b"\0"[..]),
        _ => (body, &b""[..]),
    };
    let block = Block::parse(fields);
    let hop = ctx.hop;
    if content_type.eq_ignore_ascii_case(TRANSREQ) {
        let is = |key: &str, value: &str| {
            block
                .get(key)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        };
        let reachable =
            (is("Conn-Type", "Direct-Connect") && !is("ICF", "true")) || is("UPnPNat", "true");
        room.set_hint(&hop.sender.handle, reachable);
        return None;
    }
    if !content_type.eq_ignore_ascii_case(TRANSRESP)
        || !block
            .get("Listening")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return None;
    }
    let is_invite = head_block
        .line(0)
        .is_some_and(|l| l.starts_with(b"INVITE "));
    let mut listener: PeerFacts = hop.sender.facts.clone();
    listener.reachable |= room.hint(&hop.sender.handle);
    for key in ["IPv4Internal-Addrs", "IPv4External-Addrs"] {
        for ip in block
            .get(key)
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|a| a.parse().ok())
        {
            // An interface address equal to the observed one: no NAT in between. (The
            // external address is no evidence: MSNP8+ clients copy it from `ClientIP`.)
            if key == "IPv4Internal-Addrs" && ip == listener.observed {
                listener.reachable = true;
            }
            if !listener.addresses.contains(&ip) {
                listener.addresses.push(ip);
            }
        }
    }
    let mut connector = hop.recipient.facts.clone();
    connector.reachable |= room.hint(&hop.recipient.handle);
    let mut mode = decide(Transport::Msnslp, &listener, &connector, ctx.policy);
    if mode == Mode::RoleSwap && is_invite {
        // The offerer's own listening INVITE after a swap: no second swap.
        mode = if ctx.policy.slp_fallback {
            Mode::SwitchboardFallback
        } else {
            Mode::Untouched
        };
    }
    // Logged even when nothing changes (e.g. observed mode with the observed address already
    // advertised): the decision is what one needs to debug a real client.
    tracing::info!(
        target: "relive_relay::rewrite",
        protocol = "msnslp",
        mode = mode.name(),
        unverified = mode.is_unverified(),
        invite = is_invite,
        "direct-connection offer decided"
    );
    let mut edits = Edits::new(&block);
    let internal_port = block.get("IPv4Internal-Port").map(str::to_owned);
    match mode {
        Mode::Lan {
            address: Some(address),
        }
        | Mode::Vpn { address } => {
            let address = address.to_string();
            set(&mut edits, mode, "IPv4External-Addrs", &address);
            if matches!(mode, Mode::Vpn { .. }) {
                set(&mut edits, mode, "IPv4Internal-Addrs", &address);
            }
            if let Some(port) = &internal_port {
                set(&mut edits, mode, "IPv4External-Port", port);
            }
        }
        Mode::Observed { .. } => {
            let observed = hop.sender.facts.observed.to_string();
            if block.find("IPv4External-Addrs").is_some() {
                set(&mut edits, mode, "IPv4External-Addrs", &observed);
            } else if let Some(port) = &internal_port {
                // Only internal addresses were offered: add the observed one.
                edits.append("IPv4External-Addrs", &observed);
                if block.find("IPv4External-Port").is_none() {
                    edits.append("IPv4External-Port", port);
                }
                log_field(Transport::Msnslp, mode, "IPv4External-Addrs", "", &observed);
            }
        }
        Mode::Agent => {
            let target = internal_port
                .as_deref()
                .or_else(|| block.get("IPv4External-Port"))
                .and_then(|p| p.parse::<u16>().ok())?;
            let Some(allocated) =
                ctx.ports
                    .forward(&hop.sender.handle, hop.recipient.facts.observed, target)
            else {
                tracing::warn!(
                    target: "relive_relay::rewrite",
                    protocol = "msnslp",
                    mode = mode.name(),
                    "no relay port for an agent forward; offer left untouched"
                );
                return None;
            };
            let relay = ctx.policy.relay_ip.to_string();
            let port = allocated.port.to_string();
            set(&mut edits, mode, "IPv4External-Addrs", &relay);
            set(&mut edits, mode, "IPv4Internal-Addrs", &relay);
            set(&mut edits, mode, "IPv4External-Port", &port);
            set(&mut edits, mode, "IPv4Internal-Port", &port);
        }
        Mode::RoleSwap | Mode::SwitchboardFallback => {
            set(&mut edits, mode, "Listening", "false");
            // Nonces are not logged.
            edits.set("Nonce", ZERO_NONCE);
            edits.set("Hashed-Nonce", ZERO_NONCE);
            for field in ADDRESS_FIELDS {
                if edits.remove(field) > 0 {
                    log_field(Transport::Msnslp, mode, field, "<removed>", "");
                }
            }
        }
        Mode::Lan { address: None } | Mode::Rendezvous | Mode::Untouched => {}
    }
    if !edits.changed() {
        return None;
    }
    let mut new_body = edits.render();
    new_body.extend_from_slice(nul);
    let mut head_edits = Edits::new(&head_block);
    if let Some(old) = head_block
        .get("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        let new_len = old
            .checked_add(new_body.len() as u64)?
            .checked_sub(body.len() as u64)?;
        head_edits.set("Content-Length", &new_len.to_string());
    }
    let mut out = head_edits.render();
    out.extend_from_slice(&new_body);
    Some(out)
}

fn set(edits: &mut Edits<'_, '_>, mode: Mode, field: &str, value: &str) {
    if let Some(old) = edits.set(field, value) {
        log_field(Transport::Msnslp, mode, field, old, value);
    }
}
