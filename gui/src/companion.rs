//! The companion agent in the background: [`Companion::start`] runs the relay library's agent
//! ([`relive_relay::agent::keep_connected`], which reconnects with the workspace's backoff) on
//! a tokio runtime on its own thread, and reports [`CompanionEvent`]s (connection state, granted
//! ports, transfers with byte counts sampled every [`SAMPLE_EVERY`]). Dropping the handle
//! stops it. The token is sent only to the relay, as `"<handle> <token>"`, and never logged.

use rustls::pki_types::pem::PemObject as _;
use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use relive_relay::agent::{AgentConfig, AgentError, AgentEvent, AgentObserver, keep_connected};
use relive_relay::quic::{client_config, client_endpoint};
use relive_relay::splice::Counters;
use rustls::pki_types::CertificateDer;

/// Default UDP port of the relay's QUIC endpoint.
pub const DEFAULT_QUIC_PORT: u16 = 1865;
/// How often live byte counts are reported.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Largest CA file read.
const MAX_CA_FILE: u64 = 1024 * 1024;
/// Transfers whose counters are sampled at once.
const MAX_TRACKED: usize = 256;

/// What the agent needs to sign in.
#[derive(Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The relay: `host` or `host:port` (QUIC, default [`DEFAULT_QUIC_PORT`]).
    pub server: String,
    /// The user's handle (e-mail address) on the server.
    pub handle: String,
    /// The access token (never logged).
    pub token: String,
    /// The server's CA certificate (PEM).
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("server", &self.server)
            .field("handle", &self.handle)
            .field("token", &"***")
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What the companion reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompanionEvent {
    /// Connecting to the relay.
    Connecting,
    /// The relay accepted the token.
    Connected {
        /// The account the relay authenticated.
        user: String,
    },
    /// The connection ended or could not be made; it is retried after `retry_in`.
    Disconnected {
        /// Why.
        error: String,
        /// Wait before the next attempt.
        retry_in: Duration,
    },
    /// The relay rejected the handle or token; the companion stopped.
    Denied,
    /// The companion could not start (certificate, address); it stopped.
    Failed(String),
    /// The relay allowed a connection to this local port (once).
    Granted {
        /// The local port from the user's own invitation.
        port: u16,
    },
    /// A relayed connection to a local port started.
    TransferStarted {
        /// The relay's allocation id.
        id: u64,
        /// The local port.
        port: u16,
        /// When.
        at: Instant,
    },
    /// Bytes carried so far by a running transfer.
    TransferBytes {
        /// The relay's allocation id.
        id: u64,
        /// Relay → local client.
        to_local: u64,
        /// Local client → relay.
        to_relay: u64,
        /// When sampled.
        at: Instant,
    },
    /// A transfer ended.
    TransferEnded {
        /// The relay's allocation id.
        id: u64,
        /// Relay → local client.
        to_local: u64,
        /// Local client → relay.
        to_relay: u64,
        /// Why it failed, if it did.
        error: Option<String>,
        /// When.
        at: Instant,
    },
    /// The companion thread ended (after a stop, a denial or a failure).
    Stopped,
}

type Send = Arc<dyn Fn(CompanionEvent) + std::marker::Send + Sync>;

/// A running companion. Dropping it stops the agent; [`CompanionEvent::Stopped`] follows.
#[derive(Debug)]
pub struct Companion {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Companion {
    /// Starts the agent on its own thread; `send` receives every event.
    ///
    /// # Errors
    /// When the OS cannot start a thread or a runtime.
    pub fn start(
        sign_in: SignIn,
        send: impl Fn(CompanionEvent) + std::marker::Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let send: Send = Arc::new(send);
        std::thread::Builder::new()
            .name("relive-companion".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::select! {
                        () = run(&sign_in, &send) => {}
                        _ = stopped => {}
                    }
                });
                send(CompanionEvent::Stopped);
            })?;
        Ok(Self { stop: Some(stop) })
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Splits `host[:port]` (an IPv6 literal without brackets keeps the default port).
pub fn split_host(server: &str) -> (String, u16) {
    let server = server.trim();
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_owned(), port),
            Err(_) => (server.to_owned(), DEFAULT_QUIC_PORT),
        },
        _ => (server.to_owned(), DEFAULT_QUIC_PORT),
    }
}

fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = Vec::new();
    file.take(MAX_CA_FILE)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(text.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

async fn setup(sign_in: &SignIn) -> Result<(quinn::Endpoint, AgentConfig), String> {
    let certs = read_ca(&sign_in.ca_file)?;
    let (host, port) = split_host(&sign_in.server);
    let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let tls = client_config(&certs).map_err(|e| format!("certificate: {e}"))?;
    let socket = UdpSocket::bind(bind).map_err(|e| format!("UDP socket: {e}"))?;
    let endpoint = client_endpoint(tls, socket).map_err(|e| format!("QUIC: {e}"))?;
    let credential = format!("{} {}", sign_in.handle.trim(), sign_in.token.trim());
    Ok((endpoint, AgentConfig::new(addr, &host, &credential)))
}

async fn run(sign_in: &SignIn, send: &Send) {
    let (endpoint, config) = match setup(sign_in).await {
        Ok(v) => v,
        Err(error) => {
            send(CompanionEvent::Failed(error));
            return;
        }
    };
    let live: Arc<Mutex<HashMap<u64, Arc<Counters>>>> = Arc::default();
    let observer: AgentObserver = {
        let send = Arc::clone(send);
        let live = Arc::clone(&live);
        Arc::new(move |event| {
            let event = match event {
                AgentEvent::Connecting => CompanionEvent::Connecting,
                AgentEvent::Disconnected { error, retry_in } => {
                    CompanionEvent::Disconnected { error, retry_in }
                }
                AgentEvent::Connected { user } => CompanionEvent::Connected { user },
                AgentEvent::Granted { port, .. } => CompanionEvent::Granted { port },
                AgentEvent::TransferStarted { id, port, counters } => {
                    let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
                    if live.len() < MAX_TRACKED {
                        live.insert(id, counters);
                    }
                    CompanionEvent::TransferStarted {
                        id,
                        port,
                        at: Instant::now(),
                    }
                }
                AgentEvent::TransferEnded {
                    id,
                    to_local,
                    to_relay,
                    error,
                } => {
                    live.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&id);
                    CompanionEvent::TransferEnded {
                        id,
                        to_local,
                        to_relay,
                        error,
                        at: Instant::now(),
                    }
                }
                _ => return,
            };
            send(event);
        })
    };
    let sampler = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let samples: Vec<(u64, u64, u64)> = live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(id, c)| (*id, c.a_to_b(), c.b_to_a()))
                .collect();
            let at = Instant::now();
            for (id, to_local, to_relay) in samples {
                send(CompanionEvent::TransferBytes {
                    id,
                    to_local,
                    to_relay,
                    at,
                });
            }
        }
    };
    let agent = async {
        // It returns only when the relay rejects the token.
        let ended = keep_connected(&endpoint, &config, &observer).await;
        send(match ended {
            AgentError::Denied => CompanionEvent::Denied,
            other => CompanionEvent::Failed(other.to_string()),
        });
    };
    tokio::select! {
        () = agent => {}
        () = sampler => {}
    }
    endpoint.close(0u32.into(), b"bye");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_takes_an_optional_port() {
        assert_eq!(split_host("relay.example"), ("relay.example".into(), 1865));
        assert_eq!(
            split_host(" relay.example:4433 "),
            ("relay.example".into(), 4433)
        );
        assert_eq!(split_host("::1"), ("::1".into(), 1865));
    }

    #[test]
    fn sign_in_debug_hides_the_token() {
        let s = SignIn {
            server: "s".into(),
            handle: "h".into(),
            token: "secret-token".into(),
            ca_file: PathBuf::from("ca.crt"),
        };
        assert!(!format!("{s:?}").contains("secret-token"));
    }
}
