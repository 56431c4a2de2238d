//! `relive-relay`: the command-line front end of the relay library.
//!
//! `relive-relay agent --server HOST[:PORT] --handle ME --token TOKEN --ca relive-ca.crt` runs the
//! companion agent: it keeps one QUIC connection to the relay (reconnecting with a backoff)
//! and carries relayed file-transfer connections to the MSN client on this machine.
//! The relay side runs embedded in `relive-server`, which authenticates the agent's
//! `<handle> <access token>` against its accounts. There is no standalone `serve`: relay
//! ports are allocated by the switchboard's invitation rewriter, in the server process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use relive_relay::agent::{AgentConfig, AgentError, run_agent};
use relive_relay::quic::{client_config, client_endpoint};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Default UDP port of the relay's QUIC endpoint.
const DEFAULT_QUIC_PORT: u16 = 1865;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(name = "relive-relay", version, about = "Relive relay tools")]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the companion agent for this machine.
    Agent {
        /// The relay: HOST or HOST:PORT (QUIC, default port 1865).
        #[arg(long, env = "RELIVE_RELAY_SERVER")]
        server: String,
        /// Your MSN handle (e-mail address) on the server.
        #[arg(long, env = "RELIVE_AGENT_HANDLE")]
        handle: String,
        /// Your access token from the server's website.
        #[arg(long, env = "RELIVE_AGENT_TOKEN", hide_env_values = true)]
        token: String,
        /// PEM file with the certificate(s) to trust (the server's relive-ca.crt).
        #[arg(long, env = "RELIVE_RELAY_CA")]
        ca: PathBuf,
        /// Name to check the relay's certificate against (default: HOST).
        #[arg(long)]
        server_name: Option<String>,
        /// Address the local MSN client listens on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        local_host: IpAddr,
    },
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, so logs written to files stay readable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn split_host(server: &str) -> (String, u16) {
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_owned(), port),
            Err(_) => (server.to_owned(), DEFAULT_QUIC_PORT),
        },
        _ => (server.to_owned(), DEFAULT_QUIC_PORT),
    }
}

async fn agent(
    server: String,
    handle: &str,
    token: &str,
    ca: PathBuf,
    server_name: Option<String>,
    local_host: IpAddr,
) -> anyhow::Result<()> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ca)
        .with_context(|| format!("reading {}", ca.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", ca.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", ca.display());
    }
    let (host, port) = split_host(&server);
    let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = client_endpoint(
        client_config(&certs).context("TLS configuration")?,
        UdpSocket::bind(bind).context("binding a UDP socket")?,
    )
    .context("QUIC endpoint")?;
    // What relive-server's agent authentication expects: the account, then its token.
    let credential = format!("{handle} {token}");
    let mut config = AgentConfig::new(addr, server_name.as_deref().unwrap_or(&host), &credential);
    config.local_host = local_host;
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        match run_agent(&endpoint, &config).await {
            Err(AgentError::Denied) => bail!("the relay rejected the access token"),
            Ok(()) => tracing::info!("relay connection closed"),
            Err(error) => tracing::warn!(%error, "relay connection lost"),
        }
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        tracing::info!(seconds = backoff.as_secs(), "reconnecting");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Agent {
            server,
            handle,
            token,
            ca,
            server_name,
            local_host,
        } => {
            tokio::select! {
                result = agent(server, &handle, &token, ca, server_name, local_host) => result,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_argument_takes_an_optional_port() {
        assert_eq!(split_host("relay.example"), ("relay.example".into(), 1865));
        assert_eq!(
            split_host("relay.example:4433"),
            ("relay.example".into(), 4433)
        );
        assert_eq!(split_host("::1"), ("::1".into(), 1865));
    }

    #[test]
    fn cli_parses_the_agent_command() {
        let cli = Cli::try_parse_from([
            "relive-relay",
            "agent",
            "--server",
            "relay.example",
            "--handle",
            "alice@example.com",
            "--token",
            "t",
            "--ca",
            "ca.pem",
        ]);
        assert!(cli.is_ok());
    }
}
