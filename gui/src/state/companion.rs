//! The Companion page's part of the state: sign-in fields, the agent's status, the local
//! ports the relay granted, and transfers with bytes and speed. Pure: the worker's
//! [`CompanionEvent`]s are folded in by [`CompanionState::on_event`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Problem;
use crate::companion::CompanionEvent;

/// Granted ports remembered (newest last).
pub(crate) const MAX_PORTS: usize = 16;
/// Transfers listed (finished ones are dropped first).
pub(crate) const MAX_TRANSFERS: usize = 32;
/// Longest server, handle or token accepted.
pub const MAX_FIELD: usize = 1024;

/// A secret string (the access token): compared and stored, never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// Where the agent is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AgentStatus {
    /// Not running.
    #[default]
    Off,
    /// Connecting to the relay.
    Connecting,
    /// Connected and authenticated as `user`.
    Connected {
        /// The account.
        user: String,
    },
    /// The connection was lost; retrying.
    Retrying {
        /// Why it was lost.
        error: String,
        /// Seconds until the next attempt.
        retry_in_secs: u64,
    },
    /// Stop asked, not yet confirmed.
    Stopping,
    /// Stopped because of this.
    Failed(Problem),
}

impl AgentStatus {
    /// True while the agent thread runs (Start is disabled, Stop enabled).
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            Self::Connecting | Self::Connected { .. } | Self::Retrying { .. }
        )
    }
}

/// One relayed connection to a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The relay's allocation id.
    pub id: u64,
    /// The local port.
    pub port: u16,
    /// Bytes relay → local client.
    pub to_local: u64,
    /// Bytes local client → relay.
    pub to_relay: u64,
    /// Bytes per second over the last sample (both directions).
    pub bytes_per_sec: u64,
    /// Finished.
    pub done: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The last sample: when, and the total then.
    last: (Instant, u64),
}

impl Transfer {
    /// Bytes in both directions.
    pub fn total(&self) -> u64 {
        self.to_local.saturating_add(self.to_relay)
    }

    fn sample(&mut self, to_local: u64, to_relay: u64, at: Instant) {
        self.to_local = to_local;
        self.to_relay = to_relay;
        let total = self.total();
        let elapsed = at.saturating_duration_since(self.last.0);
        if elapsed > Duration::ZERO {
            let bytes = u128::from(total.saturating_sub(self.last.1));
            let per_sec = bytes.saturating_mul(1_000_000) / elapsed.as_micros().max(1);
            self.bytes_per_sec = u64::try_from(per_sec).unwrap_or(u64::MAX);
            self.last = (at, total);
        }
    }
}

/// The Companion page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompanionState {
    /// The token typed (or remembered).
    pub token: Secret,
    /// The agent.
    pub status: AgentStatus,
    /// Local ports the relay granted, newest last.
    pub ports: Vec<u16>,
    /// Transfers, oldest first.
    pub transfers: Vec<Transfer>,
    /// The session whose events are current.
    pub session: u64,
}

impl CompanionState {
    /// Folds an event of the current session in.
    pub fn on_event(&mut self, event: CompanionEvent) {
        match event {
            CompanionEvent::Connecting => {
                if self.status != AgentStatus::Stopping {
                    self.status = AgentStatus::Connecting;
                }
            }
            CompanionEvent::Connected { user } => {
                if self.status != AgentStatus::Stopping {
                    self.status = AgentStatus::Connected { user };
                }
            }
            CompanionEvent::Disconnected { error, retry_in } => {
                if self.status != AgentStatus::Stopping {
                    self.status = AgentStatus::Retrying {
                        error,
                        retry_in_secs: retry_in.as_secs(),
                    };
                }
            }
            CompanionEvent::Denied => {
                self.status = AgentStatus::Failed(Problem::new(
                    "The server refused the handle or token.",
                    "the relay rejected the access token",
                    Some(
                        "Check your handle and token. A revoked token stops working: ask the \
                         server's operator for a new one (`relive-server token new`).",
                    ),
                ));
            }
            CompanionEvent::Failed(detail) => {
                self.status = AgentStatus::Failed(Problem::new(
                    "The companion could not start.",
                    detail,
                    Some(
                        "Check the server address, and the certificate on the \"Trust the \
                         server\" page.",
                    ),
                ));
            }
            CompanionEvent::Granted { port } => {
                self.ports.retain(|p| *p != port);
                self.ports.push(port);
                if self.ports.len() > MAX_PORTS {
                    self.ports.remove(0);
                }
            }
            CompanionEvent::TransferStarted { id, port, at } => {
                if self.transfers.len() >= MAX_TRANSFERS {
                    let drop_at = self.transfers.iter().position(|t| t.done).unwrap_or(0);
                    self.transfers.remove(drop_at);
                }
                self.transfers.push(Transfer {
                    id,
                    port,
                    to_local: 0,
                    to_relay: 0,
                    bytes_per_sec: 0,
                    done: false,
                    error: None,
                    last: (at, 0),
                });
            }
            CompanionEvent::TransferBytes {
                id,
                to_local,
                to_relay,
                at,
            } => {
                if let Some(t) = self.running(id) {
                    t.sample(to_local, to_relay, at);
                }
            }
            CompanionEvent::TransferEnded {
                id,
                to_local,
                to_relay,
                error,
                at,
            } => {
                if let Some(t) = self.running(id) {
                    t.sample(to_local, to_relay, at);
                    t.bytes_per_sec = 0;
                    t.done = true;
                    t.error = error;
                }
            }
            CompanionEvent::Stopped => {
                if !matches!(self.status, AgentStatus::Failed(_)) {
                    self.status = AgentStatus::Off;
                }
                for t in &mut self.transfers {
                    if !t.done {
                        t.done = true;
                        t.bytes_per_sec = 0;
                    }
                }
            }
        }
    }

    fn running(&mut self, id: u64) -> Option<&mut Transfer> {
        self.transfers
            .iter_mut()
            .rev()
            .find(|t| t.id == id && !t.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Action, Settings, UiState};
    use crate::worker::{Job, WorkerEvent};

    fn ready() -> UiState {
        let mut s = UiState::new(Settings::default(), false);
        s.settings.ca_file = Some("ca.crt".into());
        s.apply(Action::SetCompanionServer("relay.test".into()));
        s.apply(Action::SetCompanionHandle("a@b.c".into()));
        s.apply(Action::SetCompanionToken(Secret("tok".into())));
        s
    }

    #[test]
    fn start_asks_for_the_agent_and_stop_stops_it() {
        let mut s = ready();
        let jobs = s.apply(Action::StartCompanion);
        assert!(
            matches!(&jobs[..], [Job::StartCompanion { sign_in, .. }] if sign_in.token == "tok")
        );
        assert_eq!(s.companion.status, AgentStatus::Connecting);
        assert!(
            s.apply(Action::StartCompanion).is_empty(),
            "already running"
        );
        assert_eq!(s.apply(Action::StopCompanion), vec![Job::StopCompanion]);
        assert_eq!(s.companion.status, AgentStatus::Stopping);
        let session = s.companion.session;
        s.on_event(WorkerEvent::Companion {
            session,
            event: CompanionEvent::Stopped,
        });
        assert_eq!(s.companion.status, AgentStatus::Off);
    }

    #[test]
    fn start_without_a_token_says_what_is_missing() {
        let mut s = ready();
        s.apply(Action::SetCompanionToken(Secret(String::new())));
        assert!(s.apply(Action::StartCompanion).is_empty());
        assert!(matches!(&s.companion.status, AgentStatus::Failed(p) if p.title.contains("token")));
    }

    #[test]
    fn token_is_saved_only_when_remembered_and_never_debug_printed() {
        let mut s = ready();
        assert_eq!(s.settings.companion_token, None);
        s.apply(Action::SetRememberToken(true));
        assert_eq!(s.settings.companion_token, Some(Secret("tok".into())));
        assert!(!format!("{s:?}").contains("tok\""));
        s.apply(Action::SetRememberToken(false));
        assert_eq!(s.settings.companion_token, None);
    }

    #[test]
    fn events_track_status_ports_and_transfer_speed() {
        let mut s = ready();
        s.apply(Action::StartCompanion);
        let session = s.companion.session;
        let t0 = Instant::now();
        let events = [
            CompanionEvent::Connected {
                user: "a@b.c".into(),
            },
            CompanionEvent::Granted { port: 6891 },
            CompanionEvent::Granted { port: 6891 },
            CompanionEvent::TransferStarted {
                id: 7,
                port: 6891,
                at: t0,
            },
            CompanionEvent::TransferBytes {
                id: 7,
                to_local: 1000,
                to_relay: 0,
                at: t0 + Duration::from_millis(500),
            },
        ];
        for event in events {
            s.on_event(WorkerEvent::Companion { session, event });
        }
        // A stale session is ignored.
        s.on_event(WorkerEvent::Companion {
            session: session + 1,
            event: CompanionEvent::Denied,
        });
        assert_eq!(
            s.companion.status,
            AgentStatus::Connected {
                user: "a@b.c".into()
            }
        );
        assert_eq!(s.companion.ports, vec![6891]);
        assert_eq!(s.companion.transfers[0].bytes_per_sec, 2000);
        s.on_event(WorkerEvent::Companion {
            session,
            event: CompanionEvent::TransferEnded {
                id: 7,
                to_local: 1500,
                to_relay: 10,
                error: None,
                at: t0 + Duration::from_secs(1),
            },
        });
        let t = &s.companion.transfers[0];
        assert!(t.done);
        assert_eq!(t.total(), 1510);
        s.on_event(WorkerEvent::Companion {
            session,
            event: CompanionEvent::Disconnected {
                error: "lost".into(),
                retry_in: Duration::from_secs(2),
            },
        });
        assert_eq!(
            s.companion.status,
            AgentStatus::Retrying {
                error: "lost".into(),
                retry_in_secs: 2
            }
        );
        s.on_event(WorkerEvent::Companion {
            session,
            event: CompanionEvent::Denied,
        });
        assert!(matches!(s.companion.status, AgentStatus::Failed(_)));
    }
}
