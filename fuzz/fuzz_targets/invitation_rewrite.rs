//! The invitation / MSNSLP rewriter (`RoomRelay::rewrite`), as the switchboard fan-out runs it:
//! a room of two members of fuzzer-chosen generations, addresses and facts exchanges a
//! sequence of payloads (MSNFTP invitations, SLP chunks, anything), with an allocator that
//! grants relay ports, under a fuzzer-chosen policy, over time. It must never panic, and what
//! it delivers must stay within the switchboard's bounds.
#![no_main]

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use relive_fuzz::Choices;
use relive_relay::rewrite::{
    Allocate, Allocated, AllocationId, ClientGeneration, Delivery, Hop, MAX_INSPECTED_PAYLOAD,
    Peer, PeerFacts, Policy, RoomRelay,
};

/// Grants ports while it has some, like a pool with a small range.
struct Ports {
    next: Cell<u64>,
    left: Cell<u8>,
}

impl Ports {
    fn take(&self) -> Option<Allocated> {
        let left = self.left.get().checked_sub(1)?;
        self.left.set(left);
        let id = self.next.get() + 1;
        self.next.set(id);
        Some(Allocated {
            id: AllocationId(id),
            port: 6891 + u16::try_from(id % 100).unwrap_or(0),
        })
    }
}

impl Allocate for Ports {
    fn forward(&self, _: &str, _: IpAddr, _: u16) -> Option<Allocated> {
        self.take()
    }
    fn rendezvous(&self, _: &str, _: [IpAddr; 2]) -> Option<[Allocated; 2]> {
        Some([self.take()?, self.take()?])
    }
    fn release(&self, _: AllocationId) {}
}

/// One of a few addresses that matter to the decision: public, LAN, VPN, loopback, v6.
fn address(choice: u8) -> IpAddr {
    match choice % 6 {
        0 => IpAddr::from([203, 0, 113, 10 + choice / 6]),
        1 => IpAddr::from([192, 168, 1, 10 + choice / 6]),
        2 => IpAddr::from([25, 1, 2, 3]),
        3 => IpAddr::from([10, 0, 0, 7]),
        4 => IpAddr::from([127, 0, 0, 1]),
        _ => "2001:db8::7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
    }
}

fn peer(handle: &str, choices: &mut Choices<'_>) -> Peer {
    let generation = match choices.byte() % 3 {
        0 => ClientGeneration::Legacy,
        1 => ClientGeneration::Msn5,
        _ => ClientGeneration::Msn6,
    };
    let mut facts = PeerFacts::new(address(choices.byte()), generation);
    let flags = choices.byte();
    facts.reachable = flags & 1 != 0;
    facts.agent = flags & 2 != 0;
    if flags & 4 != 0 {
        facts.addresses.push(address(choices.byte()));
    }
    Peer {
        handle: handle.to_owned(),
        facts,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let alice = peer("alice@example.com", &mut choices);
    let bob = peer("bob@example.com", &mut choices);
    let mut policy = Policy::new(IpAddr::from([198, 51, 100, 1]));
    let flags = choices.byte();
    policy.msnftp_rendezvous = flags & 1 != 0;
    policy.slp_fallback = flags & 2 != 0;
    if flags & 4 != 0 {
        policy
            .vpn_ranges
            .push("25.0.0.0/8".parse().expect("a valid range"));
    }
    let ports = Ports {
        next: Cell::new(0),
        left: Cell::new(choices.byte() % 8),
    };
    let room_size = if flags & 8 != 0 { 3 } else { 2 };
    let mut room = RoomRelay::new();
    let start = Instant::now();
    let mut now = start;
    // Payloads are separated by a NUL-NUL-0xFF marker; before each, a byte chooses the
    // direction and how much time passes.
    for chunk in choices.rest().split(|b| *b == 0xFF) {
        let Some((&control, payload)) = chunk.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(control >> 1) * 200);
        let (sender, recipient) = if control & 1 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let hop = Hop {
            sender,
            recipient,
            room_size,
        };
        let outcome = room.rewrite(&policy, &ports, &hop, payload, now);
        if let Delivery::Replace(payloads) = &outcome.deliver {
            for p in payloads {
                assert!(
                    p.len() <= MAX_INSPECTED_PAYLOAD * 2,
                    "a replacement grew unbounded"
                );
            }
        }
    }
});
