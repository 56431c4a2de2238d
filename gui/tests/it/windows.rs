//! The Windows build of the `relive-patch` CLI, cross-built with mingw-w64 and run under wine
//! on a fixture client: `plan` shows the change, `apply` writes it, and the result is checked
//! from Rust with the patcher library.
//!
//! The cross build is heavy, so it runs once per test binary ([`exe`]) into its own target
//! directory (`<target>/wincross`, so it never waits on the lock of the build running these
//! tests), and wine gets a private prefix under the target directory.
//! Without the Windows target, mingw-w64 or wine the test fails in CI and is skipped elsewhere
//! ([`crate::tool`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use relive_patcher::{Target, backup_path};

use crate::{fixture, tool};

const TARGET: &str = "x86_64-pc-windows-gnu";

/// Why the Windows build cannot be tested here, if it cannot.
fn missing() -> Option<String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Some(format!(
            "the {TARGET} target is not installed (rustup target add {TARGET})"
        ));
    }
    tool::missing(&[
        (
            "x86_64-w64-mingw32-gcc",
            "--version",
            "gcc-mingw-w64-x86-64",
        ),
        ("wine", "--version", "wine64"),
    ])
}

/// Builds `relive-patch.exe` once for all tests of this binary.
fn exe() -> Result<&'static Path, &'static str> {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(why) = missing() {
            return Err(why);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target_dir = fixture::target_dir().join("wincross");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "-p",
                "relive-patcher",
                "--bin",
                "relive-patch",
                "--features",
                "cli",
            ])
            .args(["--target", TARGET])
            .arg("--target-dir")
            .arg(&target_dir)
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| format!("cargo: {e}"))?;
        assert!(
            out.status.success(),
            "cross build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exe = target_dir
            .join(TARGET)
            .join("debug")
            .join("relive-patch.exe");
        if wine_major() < 9 {
            bcryptprimitives_shim(exe.parent().unwrap());
        }
        Ok(exe)
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(String::as_str)
}

/// `wine --version` says `wine-8.0 (Debian …)`.
fn wine_major() -> u32 {
    let out = Command::new("wine").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("wine-")
        .and_then(|v| v.split(['.', ' ']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Rust's std (1.78+) gets random bytes from `ProcessPrng` in `bcryptprimitives.dll`, which
/// every supported Windows has but wine only ships from 9.0 on. For older wine, build a
/// one-function stand-in with mingw and put it next to the exe (the first place Windows
/// looks). Real Windows never sees it.
fn bcryptprimitives_shim(dir: &Path) {
    const SOURCE: &str = r#"
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
"#;
    let source = dir.join("bcryptprimitives-shim.c");
    std::fs::write(&source, SOURCE).unwrap();
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(&source)
        .arg("-ladvapi32")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the exe under wine in `dir` (relative file names, so no path translation).
fn wine(exe: &Path, dir: &Path, args: &[&str]) -> Output {
    let prefix = fixture::target_dir().join("tmp").join("wineprefix");
    std::fs::create_dir_all(&prefix).unwrap();
    Command::new("timeout")
        .arg("600")
        .arg("wine")
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEARCH", "win64")
        // No Mono/Gecko install prompts for a console program.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
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
