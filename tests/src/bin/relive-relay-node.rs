//! `relive-relay-node`: the server side of the standalone-relay end-to-end test
//! (`tests/it/remote_relay.rs`), run inside a network namespace like `relive-nat-peer`.
//!
//! ```text
//! relive-relay-node relay <dir> <name>
//!     the standalone relay (`relive-relay serve`'s library): certificate, key and control
//!     secret generated in <dir> for <name> and 127.0.0.1, QUIC on 0.0.0.0:0, allocation
//!     ports chosen by the OS; prints "READY <quic-port>", then its log (relive_relay=info).
//! relive-relay-node server <data-dir> <public-ip> <relay-addr> <relay-dir>
//!     relive-server (listeners on 0.0.0.0:0) with `[relay] remote = <relay-addr>` and the
//!     relay's secret and certificate from <relay-dir>, MSNFTP rendezvous off; creates
//!     alice@example.com and bob@example.com with access tokens in <data-dir>/tokens
//!     ("handle token" lines, mode 0600); prints "READY <ns-port> <https-port>", then its
//!     relay log, where "standalone relay connected" says the control connection is up.
//! ```
//!
//! Tokens and secrets are never printed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context as _, anyhow};
use relive_server::relay::engine::{ports, quic, serve};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("relive_relay=info"))
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
    let result = match args.first().map(String::as_str) {
        Some("relay") => relay(&args[1..]).await,
        Some("server") => server(&args[1..]).await,
        _ => Err(anyhow!("usage: see the module documentation")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relive-relay-node: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> anyhow::Result<&'a str> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| anyhow!("missing argument {what}"))
}

async fn relay(args: &[String]) -> anyhow::Result<()> {
    let dir = Path::new(arg(args, 0, "dir")?);
    let name = arg(args, 1, "name")?;
    std::fs::create_dir_all(dir)?;
    let files = serve::RelayFiles::in_dir(dir);
    let names = [name.to_owned(), "127.0.0.1".to_owned()];
    let (identity, _) = serve::load_or_create_identity(&files, &names)?;
    let (secret, _) = serve::load_or_create_secret(&files.secret)?;
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    println!("READY {}", socket.local_addr()?.port());
    let endpoint = quic::server_endpoint(serve::endpoint_config(identity)?, socket)?;
    let pool = ports::PoolConfig::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0..=0);
    let shutdown = tokio_util::sync::CancellationToken::new();
    serve::run(endpoint, serve::ServeConfig { pool, secret }, shutdown).await?;
    Ok(())
}

async fn server(args: &[String]) -> anyhow::Result<()> {
    use relive_server::config::Config;
    let data = Path::new(arg(args, 0, "data-dir")?);
    let public: IpAddr = arg(args, 1, "public-ip")?.parse()?;
    let relay_addr = arg(args, 2, "relay-addr")?;
    let relay_files = serve::RelayFiles::in_dir(Path::new(arg(args, 3, "relay-dir")?));
    let any: SocketAddr = "0.0.0.0:0".parse()?;
    let mut config = Config {
        ns: any,
        sb: any,
        http: any,
        https: any,
        public_host: public.to_string(),
        bcrypt_cost: 4,
        ..Config::default()
    };
    config.relay.public_ip = Some(public);
    config.relay.remote = Some(relay_addr.to_owned());
    config.relay.remote_secret_file = Some(relay_files.secret);
    config.relay.remote_ca = Some(relay_files.cert);
    let settings = config.validate(data.to_path_buf())?;
    // The control connection's local socket (remote mode binds no agent port).
    let control = std::net::UdpSocket::bind(settings.relay.quic)
        .with_context(|| format!("binding {}", settings.relay.quic))?;
    let (ctx, listeners) = relive_tests::netns::prepare_server(settings).await?;
    println!(
        "READY {} {}",
        listeners.ns.local_addr()?.port(),
        listeners.https.local_addr()?.port()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    relive_server::run_with_relay(ctx, listeners, Some(control), shutdown).await?;
    Ok(())
}
