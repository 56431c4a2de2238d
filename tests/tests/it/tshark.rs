//! Wireshark's MSNMS dissector decodes a login captured from our NS (Debian's `tshark`).
//! Without `tshark`, or when it may not capture here, the test fails in CI and is skipped
//! elsewhere ([`relive_tests::tool`]).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use relive_tests::{StackOptions, TestStack, tool};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// tshark takes a moment to start capturing.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_captured_login_is_dissected_as_msnms() -> anyhow::Result<()> {
    if !tool::require(&[("tshark", "-v", "tshark")]) {
        return Ok(());
    }
    let stack = TestStack::start(StackOptions::new().account("alice@example.com", "Alice")).await?;
    let port = stack.ns.port();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("login.pcapng");
    let filter = format!(
        "tcp dst port {port} and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)"
    );
    let mut capture = Command::new("tshark")
        // Only the client's data segments to the NS: the four login commands below are one
        // segment each (no Nagle), so tshark exits by itself after them. The autostop ends a
        // capture that outlives a failed test.
        .args([
            "-i",
            "lo",
            "-f",
            &filter,
            "-c",
            "4",
            "-a",
            "duration:60",
            "-w",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = capture.id().context("tshark pid")?;
    // On every way out, ask tshark to stop (it then stops its dumpcap; SIGKILL would orphan it).
    let mut stop = StopOnDrop(Some(pid));
    let stderr = capture.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    // Wait for the event "Capture started" (dumpcap runs: "Capturing on" comes earlier, and a
    // stop request before dumpcap is up is lost), or learn why it cannot capture.
    let mut said = Vec::new();
    let started = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("Capture started") {
                return anyhow::Ok(true);
            }
            said.push(line);
        }
        anyhow::Ok(false)
    })
    .await
    .context("tshark did not start capturing")??;
    if !started {
        let text = said.join("\n");
        if text.contains("ermission") || text.contains("not permitted") {
            tool::skip(&format!("tshark may not capture on lo here: {text}"));
            return Ok(());
        }
        bail!("tshark failed: {text}");
    }
    // Keep draining stderr so tshark never blocks on it.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let alice = stack.login(7, "alice@example.com").await?;

    // tshark stops after the four segments (VER, INF, USR I, USR S).
    tokio::time::timeout(START_TIMEOUT, capture.wait())
        .await
        .context("tshark did not stop after the login")??;
    stop.0 = None;
    drain.abort();
    drop(alice);

    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args([
            "-d",
            &format!("tcp.port=={port},msnms"),
            "-Y",
            "msnms",
            "-V",
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "tshark -r failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.contains("MSN Messenger Service") {
        let all = Command::new("tshark").arg("-r").arg(&file).output().await?;
        bail!(
            "no MSNMS packets dissected; the capture holds:\n{}{}",
            String::from_utf8_lossy(&all.stdout),
            String::from_utf8_lossy(&all.stderr)
        );
    }
    for line in [
        "VER 1 MSNP7 CVR0",
        "INF 2",
        "USR 3 MD5 I alice@example.com",
        "USR 4 MD5 S ",
    ] {
        ensure!(
            text.contains(line),
            "{line:?} not in the MSNMS dissection:\n{text}"
        );
    }
    stack.shutdown().await?;
    Ok(())
}

/// Sends SIGTERM to our tshark when dropped, until disarmed (set to `None`) once it has been
/// waited for and its pid may be reused.
struct StopOnDrop(Option<u32>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}
