//! The shipped binaries as `.ci/run` builds them: release builds for Linux x86_64 (static,
//! musl) and Windows x86_64 (mingw-w64), and running the Windows ones under wine.
//!
//! A test builds what it needs with `contrib/build-release`, which `.ci/run` runs first, so in
//! CI the build is already done and in a developer's clone the first test builds it once.
//! Missing tools follow the suite's rule ([`crate::tool`]): with `CI=true` a missing tool fails
//! the test; otherwise the test says what is missing and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

/// The static Linux target.
pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// The Windows target.
pub const WINDOWS: &str = "x86_64-pc-windows-gnu";

/// The workspace root.
#[must_use]
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The target directory the builds go to (`CARGO_TARGET_DIR`, else `<workspace>/target`).
#[must_use]
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from)
}

/// Why `target` cannot be built here, if it cannot: the Rust target and its C compiler.
#[must_use]
pub fn missing_target(target: &str) -> Option<String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(target).is_dir() {
        return Some(format!(
            "the Rust target {target} is not installed (rustup target add {target})"
        ));
    }
    let (cc, package) = if target == WINDOWS {
        ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64")
    } else {
        ("musl-gcc", "musl-tools")
    };
    (!crate::tool::installed(cc, "--version"))
        .then(|| format!("{cc} is missing (Debian package {package})"))
}

/// `bash <workspace>/<path>` without the variables `cargo test` sets for this test binary
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …): a build script that watches one of them (ring's
/// does) would see it change between `.ci/run`'s build and the test's, and everything after it
/// would be rebuilt. Cargo's own settings (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_BUILD_*`,
/// …) stay.
#[must_use]
pub fn script(path: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace().join(path));
    without_test_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment the variables `cargo test` set for this test binary (see
/// [`script`]), so a nested `cargo build` finds the build it made up to date.
pub fn without_test_env(cmd: &mut Command) {
    const SETTINGS: [&str; 8] = [
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_",
        "CARGO_TERM_",
        "CARGO_PROFILE_",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTR",
    ];
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && !SETTINGS.iter().any(|s| name.starts_with(s)))
            || name == "OUT_DIR"
        {
            cmd.env_remove(&*name);
        }
    }
}

/// Builds (or finds up to date) the release binaries for `platform` (`linux`: static musl,
/// `windows`) with `contrib/build-release`, the script `.ci/run` and the README use; returns
/// their directory.
///
/// # Errors
///
/// The script could not run or the build failed.
pub fn build(platform: &str) -> anyhow::Result<PathBuf> {
    let target = match platform {
        "linux" => MUSL,
        "windows" => WINDOWS,
        other => bail!("unknown platform {other}"),
    };
    let out = script("contrib/build-release")
        .arg(platform)
        .output()
        .context("running contrib/build-release")?;
    ensure!(
        out.status.success(),
        "contrib/build-release {platform} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(target_dir().join(target).join("release"))
}

/// Whether the ELF file at `path` asks for a dynamic loader (has a `PT_INTERP` header): a
/// static binary does not, and runs on any Linux.
///
/// # Errors
///
/// The file cannot be read or is not a 64-bit little-endian ELF file.
pub fn has_interpreter(path: &Path) -> anyhow::Result<bool> {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        elf.get(..6) == Some(b"\x7fELF\x02\x01"),
        "{} is not a 64-bit LE ELF",
        path.display()
    );
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("{}: truncated ELF header", path.display());
    };
    let phoff = usize::try_from(phoff)?;
    for i in 0..usize::from(phnum) {
        let Some(kind) = u32_at(phoff + i * usize::from(phentsize)) else {
            bail!("{}: truncated program headers", path.display());
        };
        if kind == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why Windows programs cannot be run here, if they cannot (wine).
#[must_use]
pub fn missing_wine() -> Option<String> {
    (!crate::tool::installed("wine", "--version"))
        .then(|| "wine is missing (Debian packages wine wine64)".into())
}

/// The major version of wine (`wine-8.0 (Debian …)` → 8; 0 if unknown).
#[must_use]
pub fn wine_major() -> u32 {
    let Ok(out) = Command::new("wine").arg("--version").output() else {
        return 0;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("wine-")
        .and_then(|v| v.split(['.', ' ']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Rust's std (1.78+) gets random bytes from `ProcessPrng` in `bcryptprimitives.dll`, which
/// every supported Windows has but wine only ships from 9.0 on. For older wine this builds a
/// one-function stand-in with mingw into `dir`, next to the exe (the first place Windows
/// looks); real Windows never sees it. Nothing is done for wine 9 and later.
///
/// # Errors
///
/// mingw could not build it.
pub fn bcryptprimitives_shim(dir: &Path) -> anyhow::Result<()> {
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
    if wine_major() >= 9 || dir.join("bcryptprimitives.dll").exists() {
        return Ok(());
    }
    let source = dir.join("bcryptprimitives-shim.c");
    std::fs::write(&source, SOURCE)?;
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(&source)
        .arg("-ladvapi32")
        .output()
        .context("running x86_64-w64-mingw32-gcc")?;
    ensure!(
        out.status.success(),
        "building the bcryptprimitives stand-in failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `wine <exe>` in the private prefix `prefix` (created by wine on first use), quiet, without
/// a display and without the Mono/Gecko install prompts; with `limit`, under `timeout` so a
/// hung program is killed after that many seconds.
#[must_use]
pub fn wine(exe: &Path, prefix: &Path, limit: Option<u32>) -> Command {
    let mut cmd = match limit {
        Some(secs) => {
            let mut cmd = Command::new("timeout");
            cmd.arg(secs.to_string()).arg("wine");
            cmd
        }
        None => Command::new("wine"),
    };
    cmd.arg(exe)
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEARCH", "win64")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    cmd
}
