//! The container image (`contrib/container`): built with podman from the static binaries
//! (checked static: no dynamic loader) on an empty base (no registry), inspected (non-root user, volume, ports, health check), run;
//! the operator creates an account with `podman exec`, an MSNP7 client logs in through the
//! published port, the health check and `/metrics` answer, and the account survives a new
//! container on the same volume. The cluster compose file runs under podman-compose with
//! PostgreSQL and NATS images built from Debian's files (`tests/fixtures/container/standins`):
//! clients log in through the dispatch and see each other across the nodes.
//!
//! The run options say two things about hosts: the runtime is `runc` when installed (crun
//! refuses hosts with cgroup v1 controllers and a cgroup v2 one at once, "hybrid mode"), and
//! the resource limits are this process's own (podman's defaults, 1048576 open files, are
//! above the hard limit of hosts and sandboxes without `CAP_SYS_RESOURCE`, and the runtime
//! then fails to start the container).

use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use relive_msnp::client::Role;
use relive_msnp::server::ServerMessage;
use relive_tests::MsnpClient;
use relive_tests::dist::{self, MUSL};
use relive_tests::stack::{login_md5, sync_lists};
use relive_tests::tool;

/// How long the server in a new container may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn podman(args: &[&str]) -> anyhow::Result<Output> {
    Command::new("podman")
        .args(args)
        .output()
        .with_context(|| format!("running podman {args:?}"))
}

/// `podman args`, which must succeed; its standard output.
fn podman_ok(args: &[&str]) -> anyhow::Result<String> {
    let out = podman(args)?;
    ensure!(
        out.status.success(),
        "podman {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Removes the test's containers, volume and image however the test ends.
struct Cleanup {
    containers: Vec<String>,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = podman(&["rm", "--force", "--time", "5", name]);
        }
        let _ = podman(&["volume", "rm", "--force", &self.volume]);
        let _ = podman(&["rmi", "--force", &self.image]);
    }
}

/// The `podman run` options of this host: runtime and resource limits (see the module docs).
fn run_options() -> Vec<String> {
    use rustix::process::{Resource, getrlimit};
    let mut options = Vec::new();
    if tool::installed("runc", "--version") {
        options.extend(["--runtime".to_owned(), "runc".to_owned()]);
    }
    let files = getrlimit(Resource::Nofile)
        .current
        .unwrap_or(65_536)
        .min(65_536);
    options.extend(["--ulimit".to_owned(), format!("nofile={files}:{files}")]);
    // Threads: the runtime's workers and blocking pool, far below this.
    options.extend(["--ulimit".to_owned(), "nproc=4096:4096".to_owned()]);
    options
}

/// Starts a container of `image` named `name` with the volume `volume` at `/data`, the NS and
/// metrics published on random loopback ports; returns their addresses.
fn start(image: &str, name: &str, volume: &str) -> anyhow::Result<(String, String)> {
    let mut args: Vec<String> = ["run", "--detach", "--name", name]
        .map(String::from)
        .to_vec();
    args.extend(run_options());
    args.extend(
        [
            "--volume",
            &format!("{volume}:/data"),
            "--publish",
            "127.0.0.1::1863",
            "--publish",
            "127.0.0.1::9863",
            "--env",
            "RELIVE_PUBLIC_HOST=127.0.0.1",
            "--env",
            "RELIVE_BCRYPT_COST=4",
            image,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podman_ok(&args)?;
    let port = |p: &str| -> anyhow::Result<String> {
        let mapped = podman_ok(&["port", name, p])?;
        mapped
            .lines()
            .next()
            .map(|l| l.trim().replace("0.0.0.0", "127.0.0.1"))
            .with_context(|| format!("no mapping for {p}: {mapped:?}"))
    };
    Ok((port("1863/tcp")?, port("9863/tcp")?))
}

/// `podman exec -i CONTAINER relive-server ARGS` with `stdin`, which must succeed; its output.
fn exec_server(container: &str, args: &[&str], stdin: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = Command::new("podman")
        .args(["exec", "--interactive", container, "relive-server"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "podman exec {container} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Waits until the NS at `addr` answers a `VER` (the container is still starting; published
/// ports may accept before the server inside listens).
async fn wait_ready(addr: &str, name: &str) -> anyhow::Result<std::net::SocketAddr> {
    let addr = addr.parse()?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(mut c) = MsnpClient::connect(addr, Role::Notification, "probe").await {
            let t = c.trid();
            if c.send_line(&format!("VER {t} MSNP7 CVR0")).await.is_ok()
                && c.expect_line(&format!("VER {t} MSNP7")).await.is_ok()
            {
                return Ok(addr);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let logs = podman(&["logs", name])
                .map(|o| o.stderr)
                .unwrap_or_default();
            bail!(
                "the server in {name} never answered on {addr}; its log:\n{}",
                String::from_utf8_lossy(&logs)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_image_serves_an_msnp7_login() -> anyhow::Result<()> {
    if relive_tests::stack::skip_on_postgres(
        "it runs the release binary on a data directory of its own (embedded SQLite), so the store under test is not involved; the SQLite run of the suite covers it",
    ) {
        return Ok(());
    }
    let missing = dist::missing_target(MUSL).or_else(|| {
        (!tool::installed("podman", "--version"))
            .then(|| "podman is missing (Debian packages podman buildah runc)".to_owned())
    });
    if let Some(why) = missing {
        tool::skip(&why);
        return Ok(());
    }
    let id = std::process::id();
    let image = format!("localhost/relive-test:{id}");
    let (first, second) = (
        format!("relive-test-{id}"),
        format!("relive-test-{id}-again"),
    );
    let cleanup = Cleanup {
        containers: vec![first.clone(), second.clone()],
        volume: format!("relive-test-{id}"),
        image: image.clone(),
    };

    let build = {
        let image = image.clone();
        tokio::task::spawn_blocking(move || {
            dist::script("contrib/container/build").arg(&image).output()
        })
        .await??
    };
    ensure!(
        build.status.success(),
        "contrib/container/build failed: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );

    // The binaries in it are static: no dynamic loader, they run as they are.
    let bin = dist::target_dir().join(MUSL).join("release");
    for program in ["relive-server", "relive-relay", "relive-patch"] {
        let path = bin.join(program);
        ensure!(!dist::has_interpreter(&path)?, "{program} is not static");
        let out = Command::new(&path).arg("--version").output()?;
        ensure!(out.status.success(), "{program} --version: {out:?}");
        eprintln!(
            "{program} (static): {} bytes",
            std::fs::metadata(&path)?.len()
        );
    }

    // What the image says about itself.
    let inspect: serde_json::Value =
        serde_json::from_str(&podman_ok(&["image", "inspect", &image])?)?;
    let image_info = &inspect[0];
    let config = &image_info["Config"];
    ensure!(config["User"] == "10001:10001", "user {}", config["User"]);
    ensure!(
        config["Volumes"]["/data"].is_object(),
        "volumes {}",
        config["Volumes"]
    );
    for port in [
        "1863/tcp", "1864/tcp", "8080/tcp", "8443/tcp", "1865/udp", "9863/tcp",
    ] {
        ensure!(
            config["ExposedPorts"][port].is_object(),
            "{port} not exposed: {}",
            config["ExposedPorts"]
        );
    }
    let health = image_info["Healthcheck"]["Test"].to_string();
    ensure!(
        health.contains("relive-server") && health.contains("health"),
        "healthcheck {health}"
    );
    let size = image_info["Size"].as_u64().context("image size")?;
    eprintln!("image {image}: {size} bytes");
    ensure!(size < 64 << 20, "the image is {size} bytes");

    // Run it; the operator makes an account in the running container.
    let volume = cleanup.volume.clone();
    let (ns, metrics) = start(&image, &first, &volume)?;
    let ns = wait_ready(&ns, &first).await?;
    let exec = |args: &[&str], stdin: &str| exec_server(&first, args, stdin);
    const ALICE: &str = "alice@example.com";
    exec(&["user", "add", ALICE, "--password-stdin"], "pw\n")?;
    let token = exec(&["token", "new", ALICE], "")?.trim().to_owned();

    let mut alice = MsnpClient::connect(ns, Role::Notification, "alice_ns").await?;
    login_md5(&mut alice, 7, ALICE, &token).await?;
    sync_lists(&mut alice).await?;

    // The image's health check passes, the server runs as 10001, /metrics counts the login.
    podman_ok(&["healthcheck", "run", &first]).context("the health check")?;
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &first])?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))?;
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    ensure!(uid.split_whitespace().nth(1) == Some("10001"), "{uid}");
    let mut conn = tokio::net::TcpStream::connect(&metrics).await?;
    let scraped = relive_tests::http::exchange(
        &mut conn,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let text = String::from_utf8(scraped.body)?;
    ensure!(
        text.contains("relive_logins_total{method=\"md5\",result=\"ok\"} 1\n")
            && text.contains("relive_users_online{dialect=\"MSNP7\"} 1\n"),
        "{text}"
    );
    alice.send_line("OUT").await?;

    // A new container on the same volume has the account: the data lives in the volume.
    podman_ok(&["stop", "--time", "10", &first])?;
    let (ns, _) = start(&image, &second, &volume)?;
    let ns = wait_ready(&ns, &second).await?;
    let mut again = MsnpClient::connect(ns, Role::Notification, "alice_ns").await?;
    login_md5(&mut again, 7, ALICE, &token).await?;
    again.send_line("OUT").await?;
    drop(cleanup);
    Ok(())
}

/// `compose.yaml` runs the image `contrib/container/build` tags by default, mounts the volume
/// the image declares, and publishes only ports the image exposes (metrics on loopback).
#[test]
fn the_compose_file_matches_the_image() -> anyhow::Result<()> {
    let dir = dist::workspace().join("contrib/container");
    let compose = std::fs::read_to_string(dir.join("compose.yaml"))?;
    let containerfile = std::fs::read_to_string(dir.join("Containerfile"))?;
    let build = std::fs::read_to_string(dir.join("build"))?;
    ensure!(build.contains("image=\"${1:-localhost/relive:latest}\""));
    ensure!(compose.contains("    image: localhost/relive:latest\n"));
    ensure!(
        compose.contains("      - relive-data:/data\n") && containerfile.contains("VOLUME /data\n")
    );
    let exposed: Vec<&str> = containerfile
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .context("no EXPOSE line")?
        .split_whitespace()
        .collect();
    let published: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    ensure!(
        published.len() == exposed.len(),
        "{published:?} vs {exposed:?}"
    );
    for mapping in &published {
        let (host, inside) = mapping.rsplit_once(':').context("host:container")?;
        let inside = if inside.contains('/') {
            inside.to_owned()
        } else {
            format!("{inside}/tcp")
        };
        ensure!(
            exposed.contains(&inside.as_str()),
            "{mapping}: {inside} is not exposed"
        );
        if inside == "9863/tcp" {
            ensure!(
                host.starts_with("127.0.0.1:"),
                "metrics published beyond loopback: {mapping}"
            );
        }
    }
    Ok(())
}

/// The services of `compose-cluster.yaml`.
const CLUSTER_SERVICES: [&str; 5] = ["postgres", "nats", "ds", "node1", "node2"];

/// Takes down a compose project (containers, network, volumes) and removes the test's images,
/// however the test ends; only what carries this project's label or these names.
struct ComposeCleanup {
    project: String,
    env: Vec<(String, String)>,
    images: Vec<String>,
}

impl ComposeCleanup {
    fn compose(&self, args: &[&str]) -> std::io::Result<Output> {
        let file = dist::workspace().join("contrib/container/compose-cluster.yaml");
        Command::new("podman-compose")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
    }
}

impl Drop for ComposeCleanup {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "--volumes"]);
        // Whatever `down` left (a failed `up`): by this project's label.
        let label = format!("label=io.podman.compose.project={}", self.project);
        if let Ok(out) = podman(&["ps", "--all", "--quiet", "--filter", &label]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = podman(&["rm", "--force", "--time", "2", id]);
            }
        }
        if let Ok(out) = podman(&["volume", "ls", "--quiet", "--filter", &label]) {
            for name in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = podman(&["volume", "rm", "--force", name]);
            }
        }
        let _ = podman(&[
            "network",
            "rm",
            "--force",
            &format!("{}_default", self.project),
        ]);
        for image in &self.images {
            let _ = podman(&["rmi", "--force", image]);
        }
    }
}

/// Asks the dispatch at `ds` where `handle` logs in (`VER`, `INF`, `USR MD5 I` → `XFR NS`),
/// as MSN 1.x–6.x clients do; `None` while it has no live NS node (`600`) or is not up yet.
async fn referral(ds: std::net::SocketAddr, handle: &str) -> Option<String> {
    let mut c = MsnpClient::connect(ds, Role::Notification, "ds")
        .await
        .ok()?;
    c.send_line("VER 1 MSNP7 CVR0").await.ok()?;
    c.expect("VER", |m| matches!(m, ServerMessage::Ver { .. }))
        .await
        .ok()?;
    c.send_line("INF 2").await.ok()?;
    c.expect("INF", |m| matches!(m, ServerMessage::Inf { .. }))
        .await
        .ok()?;
    c.send_line(&format!("USR 3 MD5 I {handle}")).await.ok()?;
    match c.recv().await.ok()? {
        ServerMessage::XfrNs { addr, .. } => Some(addr.as_str().to_owned()),
        _ => None,
    }
}

/// `ADD FL handle handle`, and its acknowledgement.
async fn add_to_forward_list(c: &mut MsnpClient, handle: &str) -> anyhow::Result<()> {
    let t = c.trid();
    c.send_line(&format!("ADD {t} FL {handle} {handle}"))
        .await?;
    c.expect(
        "ADD FL",
        |m| matches!(m, ServerMessage::Add { trid, .. } if *trid == t),
    )
    .await?;
    Ok(())
}

/// `contrib/container/compose-cluster.yaml` under podman-compose: PostgreSQL and NATS (stand-ins
/// built from Debian's packages, as no registry is reachable), a dispatch and two NS+SB nodes
/// of the image `contrib/container/build` makes, on free host ports. An account is created
/// with `podman exec` on the dispatch; an MSNP7 client logs in through the dispatch's
/// published port (`XFR NS` to an NS node, MD5 login there, so every node shares the key that
/// encrypted the token); a second user lands on the other NS node, and each sees the other's
/// presence (`ILN`, `NLN`) across the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_compose_file_serves_logins_across_nodes() -> anyhow::Result<()> {
    if relive_tests::stack::skip_on_postgres(
        "it runs PostgreSQL of its own in a container; the SQLite run of the suite covers it",
    ) {
        return Ok(());
    }
    let missing = dist::missing_target(MUSL)
        .or_else(|| {
            tool::missing(&[
                ("podman", "--version", "podman"),
                ("podman-compose", "--version", "podman-compose"),
                ("nats-server", "--version", "nats-server"),
            ])
        })
        .or_else(|| {
            (!std::path::Path::new("/usr/lib/postgresql/15/bin/postgres").exists())
                .then(|| "PostgreSQL 15 is missing (Debian package postgresql-15)".to_owned())
        });
    if let Some(why) = missing {
        tool::skip(&why);
        return Ok(());
    }
    let started = std::time::Instant::now();
    let id = std::process::id();
    let project = format!("relive-cluster-test-{id}");
    let (relive, postgres, nats) = (
        format!("localhost/relive-cluster-test:{id}"),
        format!("localhost/relive-test-postgres:{id}"),
        format!("localhost/relive-test-nats:{id}"),
    );
    // This host's runtime and limits (see the module docs) for every container compose makes.
    let conf_dir = tempfile::tempdir()?;
    let conf = conf_dir.path().join("containers.conf");
    let files = {
        use rustix::process::{Resource, getrlimit};
        getrlimit(Resource::Nofile)
            .current
            .unwrap_or(65_536)
            .min(65_536)
    };
    let runtime = if tool::installed("runc", "--version") {
        "[engine]\nruntime = \"runc\"\n"
    } else {
        ""
    };
    // Podman 4 lists the host's nameservers after the network's aardvark-dns in a container's
    // resolv.conf; the static (musl) programs ask all at once and take the first answer, so a
    // host's "no such name" for `postgres` can win. As the compose file's header tells
    // operators: the network's own DNS as the only nameserver (a subnet of this test's own).
    let net = format!("10.{}.{}", 200 + id % 50, (id / 50) % 256);
    std::fs::write(
        &conf,
        format!(
            "{runtime}[containers]\n\
             default_ulimits = [\"nofile={files}:{files}\", \"nproc=4096:4096\"]\n\
             dns_servers = [\"{net}.1\"]\n\
             [network]\n\
             default_subnet_pools = [{{\"base\" = \"{net}.0/24\", \"size\" = 24}}]\n"
        ),
    )?;
    // Free host ports for everything the file publishes.
    let mut ports = std::collections::BTreeMap::new();
    {
        let mut held = Vec::new();
        for var in [
            "RELIVE_DS_PORT",
            "RELIVE_HTTP_PORT",
            "RELIVE_HTTPS_PORT",
            "RELIVE_DS_METRICS_PORT",
            "RELIVE_NS1_PORT",
            "RELIVE_SB1_PORT",
            "RELIVE_NS1_METRICS_PORT",
            "RELIVE_NS2_PORT",
            "RELIVE_SB2_PORT",
            "RELIVE_NS2_METRICS_PORT",
        ] {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            ports.insert(var, l.local_addr()?.port());
            held.push(l);
        }
    }
    let mut env: Vec<(String, String)> = ports
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
        .collect();
    env.extend(
        [
            ("RELIVE_IMAGE", relive.as_str()),
            ("RELIVE_POSTGRES_IMAGE", postgres.as_str()),
            ("RELIVE_NATS_IMAGE", nats.as_str()),
            ("RELIVE_PUBLIC_HOST", "127.0.0.1"),
            ("RELIVE_DB_PASSWORD", &format!("pw{id}")),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env.push((
        "CONTAINERS_CONF".to_owned(),
        conf.to_string_lossy().into_owned(),
    ));
    let cleanup = ComposeCleanup {
        project: project.clone(),
        env,
        images: vec![relive.clone(), postgres.clone(), nats.clone()],
    };

    // The images: Relive's as operators build it, PostgreSQL and NATS from Debian's files.
    let builds = {
        let (relive, postgres, nats) = (relive.clone(), postgres.clone(), nats.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<[Output; 2]> {
            Ok([
                dist::script("contrib/container/build")
                    .arg(&relive)
                    .output()?,
                dist::script("tests/fixtures/container/standins")
                    .args([&postgres, &nats])
                    .output()?,
            ])
        })
        .await??
    };
    for out in &builds {
        ensure!(
            out.status.success(),
            "building the images failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("images built after {:?}", started.elapsed());

    let up = cleanup.compose(&["up", "--detach"])?;
    ensure!(
        up.status.success(),
        "podman-compose up failed: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let container = |service: &str| format!("{project}_{service}_1");
    let logs = || {
        CLUSTER_SERVICES
            .iter()
            .map(|s| {
                let out = podman(&["logs", "--tail", "30", &container(s)]);
                let text = out
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default();
                format!("--- {s}:\n{text}")
            })
            .collect::<String>()
    };
    let port = |var: &str| ports[var];
    let ds: std::net::SocketAddr = format!("127.0.0.1:{}", port("RELIVE_DS_PORT")).parse()?;
    let ds = wait_ready(&ds.to_string(), &container("ds"))
        .await
        .with_context(logs)?;
    eprintln!("dispatch answering after {:?}", started.elapsed());

    // Accounts, made by the operator in the dispatch's container (in PostgreSQL, their tokens
    // under the shared key).
    let ds_container = container("ds");
    let exec = |args: &[&str], stdin: &str| exec_server(&ds_container, args, stdin);
    let handles: Vec<String> = ["alice", "bob", "carol", "dave", "erin", "frank"]
        .iter()
        .map(|n| format!("{n}@example.com"))
        .collect();
    let mut tokens = std::collections::HashMap::new();
    for h in &handles {
        exec(&["user", "add", h, "--password-stdin"], "pw\n")?;
        tokens.insert(h.clone(), exec(&["token", "new", h], "")?.trim().to_owned());
    }

    // The dispatch refers logins to both NS nodes once both are live, at the addresses the
    // compose file publishes: two users on different nodes.
    let nodes = [
        format!("127.0.0.1:{}", port("RELIVE_NS1_PORT")),
        format!("127.0.0.1:{}", port("RELIVE_NS2_PORT")),
    ];
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let (first, second) = loop {
        let mut by_node: [Option<&String>; 2] = [None, None];
        for h in &handles {
            if let Some(addr) = referral(ds, h).await {
                let i = nodes
                    .iter()
                    .position(|n| *n == addr)
                    .with_context(|| format!("{h} referred to {addr}, not to {nodes:?}"))?;
                by_node[i].get_or_insert(h);
            }
        }
        if let [Some(a), Some(b)] = by_node {
            break ((a.clone(), &nodes[0]), (b.clone(), &nodes[1]));
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the dispatch never referred to both NS nodes: {by_node:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // The first logs in as an MSNP7 client does: the dispatch's XFR NS, then MD5 on that node.
    let (a, a_node) = first;
    let (b, b_node) = second;
    ensure!(referral(ds, &a).await.as_ref() == Some(a_node));
    let mut alice = MsnpClient::connect(a_node.parse()?, Role::Notification, "a_ns").await?;
    login_md5(&mut alice, 7, &a, &tokens[&a]).await?;
    sync_lists(&mut alice).await?;
    add_to_forward_list(&mut alice, &b).await?;
    relive_tests::stack::change_status(&mut alice, "NLN").await?;

    // The second, on the other node, sees the first in its ILN burst; the first sees NLN.
    let mut bob = MsnpClient::connect(b_node.parse()?, Role::Notification, "b_ns").await?;
    login_md5(&mut bob, 7, &b, &tokens[&b]).await?;
    sync_lists(&mut bob).await?;
    add_to_forward_list(&mut bob, &a).await?;
    let ilns = relive_tests::stack::change_status(&mut bob, "NLN").await?;
    ensure!(
        ilns.iter().any(
            |m| matches!(m, ServerMessage::Iln { handle, .. } if handle.as_str() == a.as_str())
        ),
        "{b} on {b_node} does not see {a} on {a_node}: {ilns:?}"
    );
    alice
        .wait_for(
            "NLN of the user on the other node",
            |m| matches!(m, ServerMessage::Nln { handle, .. } if handle.as_str() == b.as_str()),
        )
        .await?;
    alice.send_line("OUT").await?;
    bob.send_line("OUT").await?;
    eprintln!("cluster test done after {:?}", started.elapsed());
    drop(cleanup);
    Ok(())
}
