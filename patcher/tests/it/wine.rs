//! A private wine prefix under the target dir (created once), a runner with a timeout, and
//! the loopback listeners the fake client connects to.
//!
//! Debian packages: wine, wine64 ([`WINE`]; tests ask for it through
//! [`crate::fixtures::with_wine`]). 32-bit wine (wine32:i386) is not in CI: the one test that
//! runs a PE32 fixture is `#[ignore]`d.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use relive_patcher::Target;

/// wine64 runs the PE32+ fixtures.
pub const WINE: crate::tool::Tool = ("wine", "--version", "wine64");

static PREFIX: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn base(cmd: &mut Command, prefix: &Path) {
    cmd.env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
}

/// The shared prefix; the first call runs `wineboot -i` (≈ 10–20 s).
pub fn prefix() -> &'static Path {
    let result = PREFIX.get_or_init(|| {
        let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wineprefix");
        if prefix.join("system.reg").exists() {
            return Ok(prefix);
        }
        std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("timeout");
        cmd.args(["300", "wineboot", "-i"]);
        base(&mut cmd, &prefix);
        let out = cmd
            .output()
            .map_err(|e| format!("wineboot: {e} (install the Debian packages wine wine64)"))?;
        if !out.status.success() || !prefix.join("system.reg").exists() {
            return Err(format!(
                "wineboot failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(prefix)
    });
    match result {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Runs a program under wine with a timeout.
pub fn run(program: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let prefix = prefix();
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "wine"]).arg(program).args(args);
    base(&mut cmd, prefix);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running wine")
}

/// A wine path (`Z:\...`) for a Unix path.
pub fn win_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// The NS and HTTP listeners on 127.0.0.1, port 0.
pub struct Loopback {
    pub ns_port: u16,
    pub http_port: u16,
    pub ns_lines: Arc<Mutex<Vec<String>>>,
    pub http_requests: Arc<Mutex<Vec<String>>>,
}

impl Loopback {
    pub fn start() -> Self {
        let ns = TcpListener::bind("127.0.0.1:0").unwrap();
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let ns_port = ns.local_addr().unwrap().port();
        let http_port = http.local_addr().unwrap().port();
        let ns_lines = Arc::new(Mutex::new(Vec::new()));
        let http_requests = Arc::new(Mutex::new(Vec::new()));
        let lines = ns_lines.clone();
        // The accept loops end with the test process; each connection is answered once.
        std::thread::spawn(move || {
            for conn in ns.incoming().flatten() {
                let mut reader = BufReader::new(conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_ok() {
                    lines.lock().unwrap().push(line.trim_end().to_string());
                    let _ = reader.get_mut().write_all(b"VER 1 MSNP8 CVR0\r\n");
                }
            }
        });
        let requests = http_requests.clone();
        std::thread::spawn(move || {
            for mut conn in http.incoming().flatten() {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                requests
                    .lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or_default().to_string());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nPassportURLs: DALogin=127.0.0.1:{http_port}/login2.srf\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        Self {
            ns_port,
            http_port,
            ns_lines,
            http_requests,
        }
    }

    /// A target pointing at these listeners, with the HTTP login on.
    pub fn target(&self) -> Target {
        Target::new("127.0.0.1")
            .unwrap()
            .with_http_port(self.http_port)
            .with_http_login(true)
    }

    /// Checks that a client reached both listeners: `VER` on NS, the nexus on HTTP.
    pub fn assert_reached(&self) {
        assert!(
            self.ns_lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l == "VER 1 MSNP8 CVR0")
        );
        assert!(
            self.http_requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.starts_with("GET /rdr/pprdr.asp ")),
            "{:?}",
            self.http_requests.lock().unwrap()
        );
    }
}

/// A scratch directory under the target dir.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Checks the fake client's output after a successful run against `lb`.
pub fn assert_client_talked(out: &Output, lb: &Loopback) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("NS: VER 1 MSNP8 CVR0"), "{stdout}");
    assert!(stdout.contains("NSW: ok"), "{stdout}");
    let expected = format!(
        "PassportURLs: DALogin=127.0.0.1:{}/login2.srf",
        lb.http_port
    );
    assert!(stdout.contains(&expected), "{stdout}");
    lb.assert_reached();
}
