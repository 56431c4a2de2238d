//! The Windows build of the `relive-patch` CLI, cross-built with mingw-w64 and run under wine
//! on a fixture client: `plan` shows the change, `apply` writes it, and the result is checked
//! from Rust with the patcher library.
//!
//! The exe is the release build `contrib/build-release windows` makes (and `.ci/run` runs
//! before the tests, so here it is up to date); [`exe`] runs that script once per test binary.
//! It shares the build and wine helpers of the end-to-end tests (`tests/src/dist.rs`), and
//! wine gets a private prefix under the target directory.
//! Without the Windows target, mingw-w64 or wine the test fails in CI and is skipped elsewhere
//! ([`crate::tool`]).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use relive_patcher::{Target, backup_path};

use crate::{dist, fixture, tool};

/// Why the Windows build cannot be tested here, if it cannot.
fn missing() -> Option<String> {
    dist::missing_target(dist::WINDOWS).or_else(dist::missing_wine)
}

/// Builds `relive-patch.exe` once for all tests of this binary.
fn exe() -> Result<&'static Path, &'static str> {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(why) = missing() {
            return Err(why);
        }
        let dir = dist::build("windows").map_err(|e| format!("{e:#}"))?;
        dist::bcryptprimitives_shim(&dir).map_err(|e| format!("{e:#}"))?;
        Ok(dir.join("relive-patch.exe"))
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(String::as_str)
}

/// Runs the exe under wine in `dir` (relative file names, so no path translation).
fn wine(exe: &Path, dir: &Path, args: &[&str]) -> Output {
    let prefix = fixture::target_dir().join("tmp").join("wineprefix");
    std::fs::create_dir_all(&prefix).unwrap();
    dist::wine(exe, &prefix, Some(600))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn windows_relive_patch_plans_and_applies_a_fixture_under_wine() {
    let exe = match exe() {
        Ok(exe) => exe,
        Err(why) => {
            tool::skip(why);
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let original = fixture::client();
    let path = fixture::write(dir.path(), "msnmsgr.exe", &original);

    let out = wine(
        exe,
        dir.path(),
        &["plan", "--server", "relive.test", "msnmsgr.exe"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "plan: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"messenger.hotmail.com\" → \"relive.test\""),
        "{stdout}"
    );
    // It says where the patched client will connect: the server's default ports.
    for address in [
        "relive.test:1863",
        "https://relive.test:8443",
        "http://relive.test:8080",
    ] {
        assert!(
            stdout.contains(&format!("\n  {address} ")),
            "{address}: {stdout}"
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "plan writes nothing"
    );

    let out = wine(
        exe,
        dir.path(),
        &["apply", "--server", "relive.test", "msnmsgr.exe"],
    );
    assert!(
        out.status.success(),
        "apply: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let patched = std::fs::read(&path).unwrap();
    let target = Target::new("relive.test").unwrap();
    assert!(relive_patcher::plan(&patched, &target).unwrap().is_noop());
    let hosts: Vec<String> = relive_patcher::inspect(&patched).unwrap().files[0]
        .hits
        .iter()
        .map(|h| h.string.clone())
        .collect();
    assert!(hosts.is_empty(), "no MSN host left: {hosts:?}");
    assert_eq!(std::fs::read(backup_path(&path)).unwrap(), original);
    // `inspect` on the patched file says where it points now.
    let out = wine(exe, dir.path(), &["inspect", "msnmsgr.exe"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("patched: points at relive.test")
            && stdout.contains("\"https://relive.test:8443/rdr/pprdr.asp\"")
            && !stdout.contains("(no MSN server addresses)"),
        "{stdout}"
    );

    // A wrong input gives the documented exit code (5: no MSN server address).
    fixture::write(
        dir.path(),
        "plain.exe",
        &relive_patcher::synth::build(&Default::default()),
    );
    let out = wine(
        exe,
        dir.path(),
        &["plan", "--server", "relive.test", "plain.exe"],
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
