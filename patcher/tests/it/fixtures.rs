//! Builds the fixtures from `patcher/fixtures/` into the target dir, once per test binary.
//!
//! Tools ([`TOOLS`], Debian packages): gcc-mingw-w64-x86-64, gcc-mingw-w64-i686 (with
//! binutils-mingw-w64 for windres), gcab, wixl, osslsigncode, openssl. Without them [`get`]
//! follows the crate-wide rule ([`crate::tool`]): the test fails in CI and is skipped
//! elsewhere. With them, a failing build fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::tool::{self, Tool};

pub struct Fixtures {
    /// PE32+ fake client with version resource 0.9.1.
    pub client64: PathBuf,
    /// Same, Authenticode-signed with a throwaway certificate.
    pub client64_signed: PathBuf,
    /// PE32 fake client.
    pub client32: PathBuf,
    /// PE32+ fake client without version resource (unversioned: MSI hashes it).
    pub client64_nover: PathBuf,
    /// Self-extractor (PE32+) carrying msmsgs.exe (= client64) and readme.txt, signed.
    pub sfx: PathBuf,
    /// The CAB inside `sfx` plus a large incompressible file (forces a resource section rebuild).
    pub big_cab: PathBuf,
    /// MSI (wixl) carrying msnmsgr.exe (= client64_nover) and readme.txt, signed.
    pub msi: PathBuf,
    /// Self-extractor carrying the MSI (the MSN 5.x – 7.x layout).
    pub sfx_msi: PathBuf,
}

/// What building the fixtures runs.
const TOOLS: [Tool; 8] = [
    (
        "x86_64-w64-mingw32-gcc",
        "--version",
        "gcc-mingw-w64-x86-64",
    ),
    ("i686-w64-mingw32-gcc", "--version", "gcc-mingw-w64-i686"),
    (
        "x86_64-w64-mingw32-windres",
        "--version",
        "binutils-mingw-w64-x86-64",
    ),
    (
        "i686-w64-mingw32-windres",
        "--version",
        "binutils-mingw-w64-i686",
    ),
    ("gcab", "--version", "gcab"),
    ("wixl", "--version", "wixl"),
    ("osslsigncode", "--version", "osslsigncode"),
    ("openssl", "version", "openssl"),
];

static FIXTURES: OnceLock<Result<Fixtures, String>> = OnceLock::new();

/// The fixtures, built on first use; `None` (the test returns) when the tools are missing
/// outside CI.
pub fn get() -> Option<&'static Fixtures> {
    if !tool::require(&TOOLS) {
        return None;
    }
    match FIXTURES.get_or_init(build) {
        Ok(f) => Some(f),
        Err(e) => panic!("building fixtures failed: {e}"),
    }
}

/// [`get`], and wine64 to run them.
pub fn with_wine() -> Option<&'static Fixtures> {
    let fixtures = get()?;
    tool::require(&[crate::wine::WINE]).then_some(fixtures)
}

pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn run(cmd: &mut Command, package: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: {e} (install the Debian package {package})"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn compile(
    dir: &Path,
    arch: &str,
    out: &str,
    sources: &[&Path],
    res: Option<&Path>,
    libs: &[&str],
) -> Result<PathBuf, String> {
    let pkg = if arch == "x86_64" {
        "gcc-mingw-w64-x86-64"
    } else {
        "gcc-mingw-w64-i686"
    };
    let mut objs = Vec::new();
    if let Some(rc) = res {
        let obj = dir.join(format!("{out}.res.o"));
        run(
            Command::new(format!("{arch}-w64-mingw32-windres"))
                .current_dir(dir)
                .arg(rc)
                .args(["-O", "coff", "-o"])
                .arg(&obj),
            "binutils-mingw-w64",
        )?;
        objs.push(obj);
    }
    let exe = dir.join(out);
    run(
        Command::new(format!("{arch}-w64-mingw32-gcc"))
            .current_dir(dir)
            .args(["-Os", "-s", "-o"])
            .arg(&exe)
            .args(sources)
            .args(&objs)
            .args(libs),
        pkg,
    )?;
    Ok(exe)
}

fn sign(dir: &Path, input: &Path, output: &Path) -> Result<(), String> {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    if !cert.exists() {
        run(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "30",
                    "-subj",
                    "/CN=Relive test signer",
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            "openssl",
        )?;
    }
    let _ = std::fs::remove_file(output);
    run(
        Command::new("osslsigncode")
            .args(["sign", "-certs"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args(["-n", "Relive fixture", "-in"])
            .arg(input)
            .arg("-out")
            .arg(output),
        "osslsigncode",
    )
}

fn gcab(dir: &Path, cab: &str, files: &[&str]) -> Result<PathBuf, String> {
    run(
        Command::new("gcab")
            .current_dir(dir)
            .args(["-c", "-z", cab])
            .args(files),
        "gcab",
    )?;
    Ok(dir.join(cab))
}

fn sfx(dir: &Path, name: &str, payload: &Path) -> Result<PathBuf, String> {
    let work = dir.join(format!("{name}.d"));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    std::fs::copy(payload, work.join("payload.cab")).map_err(|e| e.to_string())?;
    std::fs::copy(source_dir().join("sfx.rc"), work.join("sfx.rc")).map_err(|e| e.to_string())?;
    let exe = compile(
        &work,
        "x86_64",
        "sfx.exe",
        &[&source_dir().join("sfx.c")],
        Some(Path::new("sfx.rc")),
        &["-lsetupapi"],
    )?;
    let signed = dir.join(name);
    sign(dir, &exe, &signed)?;
    Ok(signed)
}

fn build() -> Result<Fixtures, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("patcher-fixtures");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = source_dir();
    let client_c = src.join("fakeclient.c");
    let rc = src.join("fakeclient.rc");
    let libs = ["-lws2_32", "-lwininet"];
    let client64 = compile(
        &dir,
        "x86_64",
        "client64.exe",
        &[&client_c],
        Some(&rc),
        &libs,
    )?;
    let client32 = compile(&dir, "i686", "client32.exe", &[&client_c], Some(&rc), &libs)?;
    let client64_nover = compile(
        &dir,
        "x86_64",
        "client64-nover.exe",
        &[&client_c],
        None,
        &libs,
    )?;
    let client64_signed = dir.join("client64-signed.exe");
    sign(&dir, &client64, &client64_signed)?;

    // Self-extractor with the client as msmsgs.exe (MSN 1.x – 4.x layout).
    let cab_dir = dir.join("cab");
    std::fs::create_dir_all(&cab_dir).map_err(|e| e.to_string())?;
    std::fs::copy(&client64, cab_dir.join("msmsgs.exe")).map_err(|e| e.to_string())?;
    std::fs::write(cab_dir.join("readme.txt"), "Relive fixture\r\n".repeat(50))
        .map_err(|e| e.to_string())?;
    let cab = gcab(&cab_dir, "payload.cab", &["msmsgs.exe", "readme.txt"])?;
    let sfx_path = sfx(&dir, "sfx-signed.exe", &cab)?;
    // Incompressible filler: a rebuilt cabinet will not fit where the small one was.
    let mut filler = vec![0u8; 300_000];
    let mut x: u32 = 0x1234_5678;
    for b in &mut filler {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(cab_dir.join("filler.bin"), filler).map_err(|e| e.to_string())?;
    let big_cab = gcab(
        &cab_dir,
        "big.cab",
        &["msmsgs.exe", "readme.txt", "filler.bin"],
    )?;

    // MSI (MSN 5.x – 7.x layout) with the unversioned client.
    let msi_dir = dir.join("msi");
    std::fs::create_dir_all(&msi_dir).map_err(|e| e.to_string())?;
    std::fs::copy(&client64_nover, msi_dir.join("msnmsgr.exe")).map_err(|e| e.to_string())?;
    std::fs::write(msi_dir.join("readme.txt"), "Relive fixture\r\n").map_err(|e| e.to_string())?;
    let msi_plain = msi_dir.join("msn.msi");
    let _ = std::fs::remove_file(&msi_plain);
    run(
        Command::new("wixl")
            .current_dir(&msi_dir)
            .arg("-o")
            .arg(&msi_plain)
            .arg(src.join("msn.wxs")),
        "wixl",
    )?;
    let msi = dir.join("msn-signed.msi");
    sign(&dir, &msi_plain, &msi)?;

    let sfx_msi_dir = dir.join("sfxmsi");
    std::fs::create_dir_all(&sfx_msi_dir).map_err(|e| e.to_string())?;
    std::fs::copy(&msi, sfx_msi_dir.join("MsnMsgs.msi")).map_err(|e| e.to_string())?;
    let cab2 = gcab(&sfx_msi_dir, "payload.cab", &["MsnMsgs.msi"])?;
    let sfx_msi = sfx(&dir, "sfx-msi.exe", &cab2)?;

    Ok(Fixtures {
        client64,
        client64_signed,
        client32,
        client64_nover,
        sfx: sfx_path,
        big_cab,
        msi,
        sfx_msi,
    })
}
