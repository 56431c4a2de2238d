//! `relive-relay`: the command-line front end of the relay library.
//!
//! `relive-relay agent --server HOST[:PORT] --email ME --token TOKEN --ca relive-ca.crt` runs the
//! companion agent ([`relive_relay::agent::keep_connected`]): it keeps one QUIC connection to
//! the relay (reconnecting with a backoff) and carries relayed file-transfer connections to
//! the MSN client on this machine.
//!
//! `relive-relay serve --data-dir DIR --name relay.example` runs the relay's data plane as its own
//! process (the library's [`relive_relay::serve`]): one QUIC endpoint (default UDP 1865) for
//! companion agents and for `relive-server`'s control connection, and the TCP allocation
//! ports (default 6891–6990). On first start it writes `DIR/relay-cert.pem` (give it to the
//! server as `[relay] remote_ca` and to agents as `--ca`), `DIR/relay-key.pem` and
//! `DIR/control-secret` (copy it to the server, `[relay] remote_secret_file`) and prints
//! where they are. The server still rewrites invitations and authenticates agents against
//! its accounts; it drives this relay when `[relay] remote = "host:port"` is set. By default
//! the relay runs embedded in `relive-server` and this command is not needed.
//!
//! The flags follow the vocabulary all Relive programs share ([`relive_cli`]): `--data-dir`
//! (old spelling `--dir` still accepted), `--email` (old `--handle`), `-v`/`-q`,
//! `--log-format`, `RUST_LOG`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use relive_cli::{Level, Logging};
use relive_relay::agent::{AgentConfig, AgentError, AgentObserver, keep_connected};
use relive_relay::ports::{DEFAULT_PER_USER_LIMIT, PoolConfig};
use relive_relay::quic::{client_config, client_endpoint, server_endpoint};
use relive_relay::serve::{self, RelayFiles, ServeConfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Default UDP port of the relay's QUIC endpoint.
const DEFAULT_QUIC_PORT: u16 = 1865;

#[derive(Parser)]
#[command(
    name = "relive-relay",
    version,
    about = "Relive relay: the companion agent for your PC, or the relay as its own process"
)]
struct Cli {
    #[command(flatten)]
    logging: Logging,
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
        /// Your account (MSN e-mail address) on the server.
        #[arg(long, alias = "handle", env = "RELIVE_AGENT_HANDLE")]
        email: String,
        /// One of your access tokens (the server's operator creates them: `relive-server token new`).
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
    /// Run the relay's data plane for a relive-server (`[relay] remote` on the server).
    Serve {
        /// Directory of the relay's certificate, key and control secret (created if missing).
        #[arg(
            long,
            alias = "dir",
            env = "RELIVE_RELAY_DIR",
            default_value = "relive-relay"
        )]
        data_dir: PathBuf,
        /// Host name or IP address agents and the server reach the relay by (repeatable;
        /// written into the certificate generated on first start).
        #[arg(long = "name", default_value = "localhost")]
        names: Vec<String>,
        /// UDP address of the QUIC endpoint (agents and the server's control connection).
        #[arg(long, default_value = "0.0.0.0:1865")]
        quic: SocketAddr,
        /// Address the TCP allocation ports bind on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
        bind_ip: IpAddr,
        /// First TCP allocation port.
        #[arg(long, default_value_t = 6891)]
        port_min: u16,
        /// Last TCP allocation port.
        #[arg(long, default_value_t = 6990)]
        port_max: u16,
        /// Concurrent allocations per user (a rendezvous holds two).
        #[arg(long, default_value_t = DEFAULT_PER_USER_LIMIT)]
        per_user_limit: usize,
        /// Servers that drive this relay at once: 1 for one relive-server; in cluster mode
        /// the number of SB nodes (each sees every agent). One more replaces the oldest.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        servers: u16,
    },
}

/// The settings of `relive-relay serve`.
struct ServeArgs {
    data_dir: PathBuf,
    names: Vec<String>,
    quic: SocketAddr,
    bind_ip: IpAddr,
    ports: std::ops::RangeInclusive<u16>,
    per_user_limit: usize,
    servers: u16,
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let files = RelayFiles::in_dir(&args.data_dir);
    let (identity, new_identity) = serve::load_or_create_identity(&files, &args.names)?;
    let (secret, new_secret) = serve::load_or_create_secret(&files.secret)?;
    let what = |new: bool| if new { "created" } else { "loaded" };
    println!(
        "certificate {} ({}): give it to relive-server ([relay] remote_ca) and to agents (--ca)",
        files.cert.display(),
        what(new_identity)
    );
    println!(
        "control secret {} ({}): copy it to relive-server ([relay] remote_secret_file)",
        files.secret.display(),
        what(new_secret)
    );
    let socket = UdpSocket::bind(args.quic)
        .with_context(|| format!("binding the QUIC socket on {}/udp", args.quic))?;
    println!("relay QUIC listening on {}/udp", socket.local_addr()?);
    let endpoint = server_endpoint(serve::endpoint_config(identity)?, socket)?;
    let mut pool = PoolConfig::new(args.bind_ip, args.ports);
    pool.per_user_limit = args.per_user_limit;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    let mut config = ServeConfig::new(pool, secret);
    config.servers = usize::from(args.servers);
    serve::run(endpoint, config, shutdown).await?;
    Ok(())
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
    email: &str,
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
    let credential = format!("{email} {token}");
    let mut config = AgentConfig::new(addr, server_name.as_deref().unwrap_or(&host), &credential);
    config.local_host = local_host;
    // The agent library logs what happens; nothing else to show here.
    let quiet: AgentObserver = Arc::new(|_| {});
    match keep_connected(&endpoint, &config, &quiet).await {
        AgentError::Denied => bail!("the relay rejected the access token"),
        error => Err(error.into()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.logging.init(Level::Info);
    match cli.command {
        Command::Agent {
            server,
            email,
            token,
            ca,
            server_name,
            local_host,
        } => {
            tokio::select! {
                result = agent(server, &email, &token, ca, server_name, local_host) => result,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Serve {
            data_dir,
            names,
            quic,
            bind_ip,
            port_min,
            port_max,
            per_user_limit,
            servers,
        } => {
            serve(ServeArgs {
                data_dir,
                names,
                quic,
                bind_ip,
                ports: port_min..=port_max,
                per_user_limit,
                servers,
            })
            .await
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
            "--email",
            "alice@example.com",
            "--token",
            "t",
            "--ca",
            "ca.pem",
        ]);
        assert!(cli.is_ok());
        // The old spelling still works.
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
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Agent { email, .. } if email == "alice@example.com")
        );
    }

    #[test]
    fn cli_parses_the_serve_command() {
        let cli = Cli::try_parse_from([
            "relive-relay",
            "serve",
            "--data-dir",
            "/tmp/r",
            "-q",
            "--name",
            "relay.example",
            "--name",
            "203.0.113.9",
            "--port-min",
            "7000",
            "--port-max",
            "7010",
        ])
        .unwrap();
        assert_eq!(cli.logging.level(Level::Info), Level::Warn);
        let Command::Serve {
            data_dir,
            names,
            port_min,
            quic,
            ..
        } = cli.command
        else {
            panic!("not serve");
        };
        assert_eq!(data_dir, PathBuf::from("/tmp/r"));
        assert_eq!(names, ["relay.example", "203.0.113.9"]);
        assert_eq!(port_min, 7000);
        assert_eq!(quic.port(), 1865);
        // The old spelling still works.
        let cli = Cli::try_parse_from(["relive-relay", "serve", "--dir", "/tmp/old"]).unwrap();
        assert!(
            matches!(cli.command, Command::Serve { data_dir, .. } if data_dir.as_os_str() == "/tmp/old")
        );
    }
}
