//! One rule for every test that needs something from the system (mingw-w64, wine64, gcab,
//! wixl, osslsigncode, cabextract, nft and `ip netns` with root, tshark, Xvfb,
//! systemd-analyze …): with `CI=true` a test that cannot run **fails**, naming what is missing;
//! elsewhere it is skipped, and the reason goes straight to the terminal (not into the test
//! harness's captured output, so a plain `cargo test` shows it). `.ci/run` installs every tool,
//! so in CI nothing is skipped.
//!
//! Only std: `relive-tests` exports it as `relive_tests::tool`, and the other crates' tests
//! include this file with `#[path]` (a crate that depends on the server just for this helper
//! would build it twice).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// A program a test runs: its name, an argument that makes it print something and exit
/// (`--version`), and the Debian package that installs it.
pub type Tool = (&'static str, &'static str, &'static str);

/// True in CI: the environment variable `CI` is `true` (or `1`).
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Whether `program` can be started (`program arg` runs, whatever it exits with).
#[must_use]
pub fn installed(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The tools of `tools` that are not installed, as one sentence naming their packages.
#[must_use]
pub fn missing(tools: &[Tool]) -> Option<String> {
    let absent: Vec<String> = tools
        .iter()
        .filter(|(program, arg, _)| !installed(program, arg))
        .map(|(program, _, package)| format!("`{program}` (Debian package {package})"))
        .collect();
    (!absent.is_empty()).then(|| format!("not installed: {}", absent.join(", ")))
}

/// The running test cannot run here, because of `why`: in CI this panics (the test fails);
/// elsewhere it prints `skipping <test>: <why>` and returns, and the caller returns too.
///
/// # Panics
///
/// With `CI=true`, always.
#[track_caller]
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    assert!(
        !in_ci(),
        "{test} cannot run: {why} (CI=true: every tool a test needs must be installed; \
         .ci/run installs them)"
    );
    let _ = writeln!(std::io::stderr(), "skipping {test}: {why}");
}

/// `true` when every one of `tools` is installed; otherwise [`skip`]s (fails in CI) and
/// returns `false`, and the caller returns.
#[track_caller]
#[must_use]
pub fn require(tools: &[Tool]) -> bool {
    match missing(tools) {
        None => true,
        Some(why) => {
            skip(&why);
            false
        }
    }
}
