//! `relive-node`: one node of a Relive cluster for the cluster tests (`tests/it/cluster.rs`)
//! and `relive-bench cluster`, as its own process so a test can `kill -9` it.
//!
//! ```text
//! relive-node <data-dir> <nats-url> <cluster-name> <node-id> <roles> <peers>
//!     serves the data directory <data-dir> (prepared by the test: key, database,
//!     certificates; shared by every node) on 127.0.0.1:0 listeners as node <node-id> with
//!     <roles> (comma-separated: ns, sb, ds) of network <cluster-name> on <nats-url>
//!     (heartbeats every 200 ms, dead after 1 s); prints
//!     "LISTENING <ns> <sb> <http> <https>", waits until it has seen <peers> other nodes,
//!     prints "READY", and serves until SIGTERM (graceful: peers are told it leaves) or
//!     SIGKILL (peers notice the missing heartbeats).
//! ```
//!
//! The store is the PostgreSQL database named by `RELIVE_STORE_URL` (as the cluster test runs
//! it), else the data directory's SQLite file, opened by every node (WAL mode and a busy
//! timeout make that safe on one host; `relive-bench cluster` uses it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use relive_server::config::Config;
use relive_server::{Context, Listeners};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    relive_tests::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, nats, name, node, roles, peers] = args.as_slice() else {
        bail!("usage: relive-node <data-dir> <nats-url> <cluster> <node-id> <roles> <peers>");
    };
    let peers: usize = peers.parse().context("peers")?;
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let bind = || async { TcpListener::bind(any).await.context("binding") };
    let listeners = Listeners {
        ns: bind().await?,
        sb: bind().await?,
        http: bind().await?,
        https: bind().await?,
        legacy_tls: None,
    };
    let mut config = Config {
        ns: listeners.ns.local_addr()?,
        sb: listeners.sb.local_addr()?,
        http: listeners.http.local_addr()?,
        https: listeners.https.local_addr()?,
        metrics: "off".to_owned(),
        bcrypt_cost: 4,
        ..Config::default()
    };
    config.store.url = std::env::var("RELIVE_STORE_URL").ok();
    config.cluster.node_id = Some(node.clone());
    config.cluster.nats_url.clone_from(nats);
    config.cluster.name.clone_from(name);
    config.cluster.roles = roles.split(',').map(str::to_owned).collect();
    config.cluster.heartbeat_ms = 200;
    config.cluster.dead_after_ms = 1000;
    let settings = config.validate(PathBuf::from(data))?;
    let store = store_for(&settings).await?;
    let paths = relive_server::tls::CertPaths::in_data_dir(&settings.data_dir);
    let mut ctx = Context::new(settings, store)?;
    ctx.https_tls = Some(relive_server::http::tls::acceptor(&paths)?);
    println!(
        "LISTENING {} {} {} {}",
        listeners.ns.local_addr()?,
        listeners.sb.local_addr()?,
        listeners.http.local_addr()?,
        listeners.https.local_addr()?
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    relive_server::join_cluster(&mut ctx, &listeners, &tracker, &shutdown).await?;
    let cluster = ctx.cluster.clone().context("not in cluster mode")?;
    tokio::time::timeout(Duration::from_secs(20), async {
        while cluster.peers().len() < peers {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("waiting for the peers")?;
    println!("READY");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        stop.cancel();
        anyhow::Ok(())
    });
    relive_server::run_with(ctx, listeners, shutdown).await?;
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The store this node serves: the PostgreSQL database of `RELIVE_STORE_URL` (every node the
/// same), else the data directory's shared SQLite file.
async fn store_for(
    settings: &relive_server::config::Settings,
) -> anyhow::Result<relive_server::store::Store> {
    let (store, _) = relive_server::data_dir::prepare(settings).await?;
    Ok(store)
}
