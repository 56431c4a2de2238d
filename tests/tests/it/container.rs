//! The container image (`contrib/container`): built with podman from the static binaries
//! (checked static: no dynamic loader) on an empty base (no registry), inspected (non-root user, volume, ports, health check), run;
//! the operator creates an account with `podman exec`, an MSNP7 client logs in through the
//! published port, the health check and `/metrics` answer, and the account survives a new
//! container on the same volume.
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
    let exec = |args: &[&str], stdin: &str| -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut child = Command::new("podman")
            .args(["exec", "--interactive", &first, "relive-server"])
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
            "podman exec {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
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
