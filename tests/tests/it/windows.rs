//! The Windows `relive-server.exe`, cross-built with mingw-w64 by `contrib/build-release
//! windows` (as `.ci/run` builds it), run under wine64 for operators who host on Windows: its
//! own CLI creates an account and a token, `serve` prints its listeners, and an MSNP7 client
//! logs in over TCP.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use relive_msnp::client::Role;
use relive_tests::MsnpClient;
use relive_tests::dist::{self, WINDOWS};
use relive_tests::stack::{login_md5, sync_lists};
use relive_tests::tool;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// The first wine start in a fresh prefix sets it up (tens of seconds).
const WINE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `relive-server.exe` with `args` on the data directory `data` (relative to `dir`, so
/// no path needs translating), feeding `stdin`; its standard output.
async fn run(
    exe: &Path,
    prefix: &Path,
    dir: &Path,
    args: &[&str],
    stdin: &str,
) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::from(dist::wine(exe, prefix, None));
    cmd.args(["--data-dir", "data"])
        .args(args)
        .current_dir(dir)
        .env("RELIVE_BCRYPT_COST", "4")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting wine")?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin.as_bytes()).await?;
    drop(input);
    let out = tokio::time::timeout(WINE_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("{args:?} under wine timed out"))??;
    ensure!(
        out.status.success(),
        "{args:?} under wine failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_server_serves_an_msnp7_login_under_wine() -> anyhow::Result<()> {
    if relive_tests::stack::skip_on_postgres(
        "it runs the release binary on a data directory of its own (embedded SQLite), so the store under test is not involved; the SQLite run of the suite covers it",
    ) {
        return Ok(());
    }
    if let Some(why) = dist::missing_target(WINDOWS).or_else(dist::missing_wine) {
        tool::skip(&why);
        return Ok(());
    }
    let bin = tokio::task::spawn_blocking(|| dist::build("windows")).await??;
    let exe = bin.join("relive-server.exe");
    dist::bcryptprimitives_shim(&bin)?;
    // The prefix the patcher's and the GUI's wine tests use (test binaries run one at a time):
    // a fresh prefix costs a wineboot.
    let prefix = dist::target_dir().join("tmp").join("wineprefix");
    std::fs::create_dir_all(&prefix)?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("data"))?;
    // The relay stays off: its QUIC endpoint cannot start under wine 8 (quinn's UDP socket
    // options fail with WSAEOPNOTSUPP, 10045), which is wine's gap, not one of Windows.
    std::fs::write(
        dir.path().join("data").join("relive.toml"),
        "[relay]\nenabled = false\n",
    )?;

    // The operator's commands, as on Windows.
    const ALICE: &str = "alice@example.com";
    run(
        &exe,
        &prefix,
        dir.path(),
        &["user", "add", ALICE, "--password-stdin"],
        "pw\n",
    )
    .await?;
    let token = run(&exe, &prefix, dir.path(), &["token", "new", ALICE], "").await?;
    let token = token.trim();
    ensure!(token.len() == 16, "token {token:?}");

    let mut cmd = tokio::process::Command::from(dist::wine(&exe, &prefix, None));
    cmd.args(["--data-dir", "data", "serve"])
        .args(["--ns", "127.0.0.1:0", "--sb", "127.0.0.1:0"])
        .args([
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--metrics",
            "off",
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut server = cmd.spawn().context("starting wine")?;
    let mut lines = BufReader::new(server.stdout.take().context("stdout")?).lines();
    let mut printed = String::new();
    let ns = tokio::time::timeout(WINE_TIMEOUT, async {
        let mut ns = None;
        while let Some(line) = lines.next_line().await? {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(addr) = line.trim_end().strip_prefix("NS listening on ") {
                ns = Some(addr.parse::<std::net::SocketAddr>()?);
            }
            if line.starts_with("public host") {
                return anyhow::Ok(ns);
            }
        }
        Ok(None)
    })
    .await
    .context("serve under wine did not get ready")??;
    let Some(ns) = ns else {
        bail!("serve under wine printed no NS address:\n{printed}");
    };

    let mut client = MsnpClient::connect(ns, Role::Notification, "alice_ns").await?;
    login_md5(&mut client, 7, ALICE, token).await?;
    sync_lists(&mut client).await?;
    client.send_line("OUT").await?;
    // The health check works on Windows too.
    let health = run(
        &exe,
        &prefix,
        dir.path(),
        &["health", "--ns", &ns.to_string()],
        "",
    )
    .await?;
    ensure!(health.contains("answers VER"), "{health}");
    server.kill().await?;
    Ok(())
}
