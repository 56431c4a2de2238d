//! The per-transfer decision: which way two peers get connected (DESIGN.md "Relay",
//! P2P.md §4.5).
//!
//! First match wins:
//!
//! 1. Both peers have the same observed public IP → [`Mode::Lan`] (use the listener's LAN
//!    address); both reach the server from private addresses (server on their LAN) →
//!    [`Mode::Lan`] with the listener's observed address; both have an address in the same
//!    configured VPN range → [`Mode::Vpn`].
//! 2. The listener is known to be reachable → [`Mode::Observed`] (verified).
//! 3. The listener runs a companion agent → [`Mode::Agent`].
//! 4. The connector is reachable or has an agent, and both clients honour role swaps →
//!    [`Mode::RoleSwap`].
//! 5. MSNFTP with a 5.0+ sender (the listener when the `INVITE` passes) and rendezvous
//!    enabled → [`Mode::Rendezvous`].
//! 6. MSNSLP → [`Mode::SwitchboardFallback`] (if enabled, else [`Mode::Untouched`]); MSNFTP →
//!    [`Mode::Observed`] *unverified*.
//!
//! This module is a pure function of the facts; it never looks at a payload.
//!
//! # Reachability without a probe
//!
//! P2P.md §4.1 lists a connect-back probe of `observed_ip:advertised_port` as one source of
//! [`PeerFacts::reachable`]. The relay does not probe: an MSNFTP listener accepts exactly one
//! connection, so a probe would consume the accept meant for the receiver (and an MSNSLP
//! listener would see a connection without the `foo` handshake and may give up). Reachability
//! is only taken from evidence the listener's own messages carry (collected by the rewriter,
//! see [`PeerFacts::reachable`]):
//!
//! * an advertised *internal* address (`IP-Address-Internal`, `IPv4Internal-Addrs`) equal to
//!   the observed address: there is no NAT between the listener and the server;
//! * an MSN 1.x–4.x listener whose `IP-Address` is its observed address: those clients never
//!   get `ClientIP` from the server, so they can only know that address from their own
//!   interface (public IP) or from UPnP/manual configuration;
//! * the listener's own MSNSLP `transreqbody` earlier in the room saying
//!   `Conn-Type: Direct-Connect` without `ICF: true`, or `UPnPNat: true`.
//!
//! An MSN 5+ listener advertising its observed address is *not* evidence: the server hands
//! every MSNP8+ client that address in the profile (`ClientIP`) and clients such as Miranda
//! copy it into `IP-Address` whether or not anything is forwarded. Treating it as proof would
//! put step 2 before a working agent (step 3) and break the transfer; instead such a listener
//! goes down the list and, if nothing else applies, ends at step 6.
//!
//! # Step 6: observed address, unverified
//!
//! For MSNFTP the last resort rewrites `IP-Address` to the listener's observed address
//! ([`Mode::Observed`] with `verified: false`, logged as `unverified`) instead of leaving the
//! invitation alone. The connector dials whatever it is sent; a private address behind another
//! NAT can never work, so nothing is lost, and a listener behind a forwarded port (or DMZ) —
//! typically an MSN 3.x/4.x client advertising its LAN address — now gets its transfer.
//!
//! MSNSLP keeps the switchboard fallback (c3) at step 6: MSN 6+ clients always have a working
//! (slower) path over the switchboard, and an unverified direct attempt would cost every user
//! without a forward 5–17 s of connect timeouts (P2P.md §2.2 step 5) before each transfer to
//! help the few with one. Those few are caught earlier with evidence (a `UPnPNat: true` or
//! `Conn-Type: Direct-Connect` hint, or no NAT at all), which is what MSN 6+ clients report
//! when a forward or UPnP mapping exists. With `slp_fallback` off, step 6 leaves the offer
//! untouched.

use std::net::IpAddr;

use ipnet::IpNet;

/// Which generation of client a participant runs, as far as P2P goes: defined with the
/// dialects' one capabilities table ([`relive_msnp::version::Capabilities::client_generation`]),
/// so a new dialect cannot be missed here.
///
/// ```
/// use relive_msnp::version::{Capabilities, ProtocolVersion};
/// use relive_relay::rewrite::ClientGeneration;
/// let generation = |v| Capabilities::for_version(v).client_generation;
/// assert_eq!(generation(ProtocolVersion::MSNP7), ClientGeneration::Legacy);
/// assert_eq!(generation(ProtocolVersion::MSNP8), ClientGeneration::Msn5);
/// assert_eq!(generation(ProtocolVersion::MSNP12), ClientGeneration::Msn6);
/// ```
pub use relive_msnp::version::ClientGeneration;

/// Which negotiation a transfer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `text/x-msmsgsinvite` invitations and an MSNFTP TCP connection (MSN 3.x–5.x).
    Msnftp,
    /// MSNSLP direct-connection negotiation (MSN 6+).
    Msnslp,
}

/// What the server knows about one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    /// The address the server sees for the participant's switchboard connection.
    pub observed: IpAddr,
    /// Addresses the participant reported (LAN or VPN interface addresses), in order.
    pub addresses: Vec<IpAddr>,
    /// Known reachable from the outside: evidence from the listener's own messages (no NAT in
    /// between, an MSN 1.x–4.x client advertising its observed address, an MSNSLP
    /// `UPnPNat`/`Conn-Type: Direct-Connect` hint); see the module documentation. Never a
    /// probe.
    pub reachable: bool,
    /// A companion agent of this user is connected to the relay.
    pub agent: bool,
    /// The client's generation.
    pub generation: ClientGeneration,
}

impl PeerFacts {
    /// Facts for a participant of whom only the observed address and generation are known.
    pub fn new(observed: IpAddr, generation: ClientGeneration) -> Self {
        Self {
            observed,
            addresses: Vec::new(),
            reachable: false,
            agent: false,
            generation,
        }
    }
}

/// Operator settings that steer the decision and the rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The relay's public address, written into invitations for relayed modes.
    pub relay_ip: IpAddr,
    /// VPN ranges whose addresses peers can reach each other on (e.g. 25.0.0.0/8 Hamachi,
    /// 26.0.0.0/8 Radmin).
    pub vpn_ranges: Vec<IpNet>,
    /// Allow MSNFTP rendezvous (both peers dial the relay). Experimental: unverified against
    /// real clients (P2P.md §6.1).
    pub msnftp_rendezvous: bool,
    /// Make MSN 6+ clients skip the direct connection when nothing else works.
    pub slp_fallback: bool,
}

impl Policy {
    /// A policy with the relay at `relay_ip`, no VPN ranges, rendezvous off, SLP fallback on.
    pub fn new(relay_ip: IpAddr) -> Self {
        Self {
            relay_ip,
            vpn_ranges: Vec::new(),
            msnftp_rendezvous: false,
            slp_fallback: true,
        }
    }

    /// The configured VPN range containing `ip`, if any.
    pub fn vpn_range_of(&self, ip: IpAddr) -> Option<&IpNet> {
        self.vpn_ranges.iter().find(|net| net.contains(&ip))
    }
}

/// How the listener's advertised address is to be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Same public IP: point the connector at the listener's LAN address (`None`: the
    /// listener reported none, keep what it advertised).
    Lan {
        /// The listener's LAN address to advertise.
        address: Option<IpAddr>,
    },
    /// Shared VPN: point the connector at the listener's VPN address.
    Vpn {
        /// The listener's VPN address.
        address: IpAddr,
    },
    /// (a) Point the connector at the listener's observed address.
    Observed {
        /// `true` at step 2 (evidence that the listener is reachable); `false` at step 6
        /// (MSNFTP last resort: it works only if a port is forwarded, and costs nothing when
        /// it is not).
        verified: bool,
    },
    /// (b) Relay port forwarded over the listener's companion agent.
    Agent,
    /// (c1) Make the other side listen.
    RoleSwap,
    /// (c2) Both sides dial two relay ports that the relay splices.
    Rendezvous,
    /// (c3) MSN 6+: skip the direct connection and send over the switchboard at once.
    SwitchboardFallback,
    /// Leave the negotiation as it is (it will fail as it does without the relay).
    Untouched,
}

impl Mode {
    /// `true` for a rewrite made without evidence that it works ([`Mode::Observed`] at step 6).
    pub fn is_unverified(&self) -> bool {
        matches!(self, Self::Observed { verified: false })
    }

    /// A short stable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lan { .. } => "lan",
            Self::Vpn { .. } => "vpn",
            Self::Observed { .. } => "observed",
            Self::Agent => "agent",
            Self::RoleSwap => "role-swap",
            Self::Rendezvous => "rendezvous",
            Self::SwitchboardFallback => "switchboard-fallback",
            Self::Untouched => "untouched",
        }
    }
}

fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

fn shared_vpn(policy: &Policy, listener: &PeerFacts, connector: &PeerFacts) -> Option<IpAddr> {
    let connector_vpn: Vec<&IpNet> = std::iter::once(connector.observed)
        .chain(connector.addresses.iter().copied())
        .filter_map(|ip| policy.vpn_range_of(ip))
        .collect();
    std::iter::once(listener.observed)
        .chain(listener.addresses.iter().copied())
        .find(|&ip| {
            policy
                .vpn_range_of(ip)
                .is_some_and(|net| connector_vpn.contains(&net))
        })
}

/// Chooses the mode for one transfer. `listener` is the side whose address is (or, for an
/// MSNFTP `INVITE`, would normally be) advertised; `connector` is the side that dials it.
pub fn decide(
    transport: Transport,
    listener: &PeerFacts,
    connector: &PeerFacts,
    policy: &Policy,
) -> Mode {
    // 1. Same LAN (same public IP) or a shared VPN.
    if listener.observed == connector.observed {
        let address = listener
            .addresses
            .iter()
            .copied()
            .find(|&ip| is_lan(ip) && policy.vpn_range_of(ip).is_none());
        return Mode::Lan { address };
    }
    // Both connect to the server from private addresses: all three share a LAN, and the
    // listener's observed address is its LAN address.
    if is_lan(listener.observed) && is_lan(connector.observed) {
        return Mode::Lan {
            address: Some(listener.observed),
        };
    }
    if let Some(address) = shared_vpn(policy, listener, connector) {
        return Mode::Vpn { address };
    }
    // 2. Reachable listener.
    if listener.reachable {
        return Mode::Observed { verified: true };
    }
    // 3. Companion agent on the listener's machine.
    if listener.agent {
        return Mode::Agent;
    }
    // 4. Swap roles to the side that can be reached.
    let swap_supported = match transport {
        Transport::Msnftp => {
            listener.generation >= ClientGeneration::Msn5
                && connector.generation >= ClientGeneration::Msn5
        }
        Transport::Msnslp => true,
    };
    if swap_supported && (connector.reachable || connector.agent) {
        return Mode::RoleSwap;
    }
    // 5. Rendezvous (MSNFTP, 5.0+ sender).
    if transport == Transport::Msnftp
        && policy.msnftp_rendezvous
        && listener.generation >= ClientGeneration::Msn5
    {
        return Mode::Rendezvous;
    }
    // 6. Last resort: MSNSLP has the switchboard; MSNFTP has nothing to lose.
    match transport {
        Transport::Msnslp if policy.slp_fallback => Mode::SwitchboardFallback,
        Transport::Msnslp => Mode::Untouched,
        Transport::Msnftp => Mode::Observed { verified: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB_A: &str = "203.0.113.11";
    const PUB_B: &str = "203.0.113.12";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[derive(Clone, Copy)]
    struct Row {
        transport: Transport,
        /// observed, addresses, reachable, agent, generation for listener and connector
        listener: (
            &'static str,
            &'static [&'static str],
            bool,
            bool,
            ClientGeneration,
        ),
        connector: (
            &'static str,
            &'static [&'static str],
            bool,
            bool,
            ClientGeneration,
        ),
        rendezvous: bool,
        fallback: bool,
        expect: &'static str,
        lan_or_vpn_address: Option<&'static str>,
    }

    fn facts(
        (observed, addrs, reachable, agent, generation): (
            &str,
            &[&str],
            bool,
            bool,
            ClientGeneration,
        ),
    ) -> PeerFacts {
        PeerFacts {
            observed: ip(observed),
            addresses: addrs.iter().map(|a| ip(a)).collect(),
            reachable,
            agent,
            generation,
        }
    }

    #[test]
    fn decision_table_first_match_wins() {
        use ClientGeneration::{Legacy, Msn5, Msn6};
        use Transport::{Msnftp, Msnslp};
        let base = Row {
            transport: Msnftp,
            listener: (PUB_A, &["192.168.1.10"], false, false, Msn5),
            connector: (PUB_B, &["10.0.2.10"], false, false, Msn5),
            rendezvous: true,
            fallback: true,
            expect: "rendezvous",
            lan_or_vpn_address: None,
        };
        let rows = [
            // Same public IP: LAN address, even if everything else would also work.
            Row {
                listener: (PUB_A, &["25.0.0.11", "192.168.1.10"], true, true, Msn5),
                connector: (PUB_A, &["192.168.1.20"], true, false, Msn5),
                expect: "lan",
                lan_or_vpn_address: Some("192.168.1.10"),
                ..base
            },
            // Same public IP, old client without an internal address: keep what it sent.
            Row {
                listener: (PUB_A, &[], false, false, Legacy),
                connector: (PUB_A, &[], false, false, Legacy),
                expect: "lan",
                ..base
            },
            // Server on the clients' LAN: the observed addresses are LAN addresses.
            Row {
                listener: ("192.168.1.10", &[], false, false, Legacy),
                connector: ("192.168.1.20", &[], false, false, Legacy),
                expect: "lan",
                lan_or_vpn_address: Some("192.168.1.10"),
                ..base
            },
            // Shared Hamachi range beats reachability and agents.
            Row {
                listener: (PUB_A, &["192.168.1.10", "25.0.0.11"], true, true, Msn5),
                connector: (PUB_B, &["25.0.0.12"], false, false, Msn5),
                expect: "vpn",
                lan_or_vpn_address: Some("25.0.0.11"),
                ..base
            },
            // Different VPN ranges (Hamachi vs Radmin) do not count.
            Row {
                listener: (PUB_A, &["25.0.0.11"], false, false, Msn5),
                connector: (PUB_B, &["26.0.0.12"], false, false, Msn5),
                expect: "rendezvous",
                ..base
            },
            // Server reached over the VPN: observed addresses are VPN addresses.
            Row {
                listener: ("25.0.0.11", &[], false, false, Legacy),
                connector: ("25.0.0.12", &[], false, false, Legacy),
                expect: "vpn",
                lan_or_vpn_address: Some("25.0.0.11"),
                ..base
            },
            Row {
                listener: (PUB_A, &[], true, true, Legacy),
                expect: "observed",
                ..base
            },
            Row {
                listener: (PUB_A, &[], false, true, Legacy),
                connector: (PUB_B, &[], true, false, Legacy),
                expect: "agent",
                ..base
            },
            Row {
                connector: (PUB_B, &[], true, false, Msn5),
                expect: "role-swap",
                ..base
            },
            Row {
                connector: (PUB_B, &[], false, true, Msn6),
                expect: "role-swap",
                ..base
            },
            // MSN 4.x cannot swap roles: falls to rendezvous only with a 5.0+ sender...
            Row {
                listener: (PUB_A, &[], false, false, Msn5),
                connector: (PUB_B, &[], true, false, Legacy),
                expect: "rendezvous",
                ..base
            },
            // ...and an MSN 4.x sender only gets its observed address (unverified).
            Row {
                listener: (PUB_A, &[], false, false, Legacy),
                connector: (PUB_B, &[], true, false, Msn5),
                expect: "observed-unverified",
                ..base
            },
            Row {
                rendezvous: false,
                expect: "observed-unverified",
                ..base
            },
            Row {
                transport: Msnslp,
                listener: (PUB_A, &[], false, false, Msn6),
                connector: (PUB_B, &[], true, false, Msn6),
                expect: "role-swap",
                ..base
            },
            Row {
                transport: Msnslp,
                listener: (PUB_A, &[], false, false, Msn6),
                connector: (PUB_B, &[], false, false, Msn6),
                expect: "switchboard-fallback",
                ..base
            },
            Row {
                transport: Msnslp,
                listener: (PUB_A, &[], false, false, Msn6),
                connector: (PUB_B, &[], false, false, Msn6),
                fallback: false,
                expect: "untouched",
                ..base
            },
        ];
        let mut policy = Policy::new(ip("198.51.100.1"));
        policy.vpn_ranges = vec![
            "25.0.0.0/8".parse().expect("cidr"),
            "26.0.0.0/8".parse().expect("cidr"),
        ];
        for (n, row) in rows.iter().enumerate() {
            policy.msnftp_rendezvous = row.rendezvous;
            policy.slp_fallback = row.fallback;
            let mode = decide(
                row.transport,
                &facts(row.listener),
                &facts(row.connector),
                &policy,
            );
            let name = if mode.is_unverified() {
                format!("{}-unverified", mode.name())
            } else {
                mode.name().to_owned()
            };
            assert_eq!(name, row.expect, "row {n}");
            let address = match mode {
                Mode::Lan { address } => address,
                Mode::Vpn { address } => Some(address),
                _ => None,
            };
            assert_eq!(address, row.lan_or_vpn_address.map(ip), "row {n}");
        }
    }
}
