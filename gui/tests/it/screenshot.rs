//! The real window: start `relive-gui` under Xvfb with a fixture client opened, wait until it
//! says it is ready (everything loaded and painted), check the window title, and capture the
//! window with ImageMagick's `import` into `<target>/screenshots/` (kept as a CI artifact).
//!
//! Needs `Xvfb` (xvfb), `xwininfo` and `xprop` (x11-utils), `import` and `identify`
//! (imagemagick), and Mesa's software OpenGL (libgl1-mesa-dri). Without them the test fails in
//! CI and is skipped elsewhere ([`crate::tool`]).

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use relive_gui::WINDOW_TITLE;

use crate::fixture;
use crate::tool::{self, Tool};

/// How long the app may take to start and load under a software renderer on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Kills the process when dropped (Xvfb and the app, also when an assertion fails).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display (it picks the number and tells us on stdout).
fn xvfb() -> (Killed, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x960x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let display = format!(":{}", line.trim());
    assert!(display.len() > 1, "Xvfb did not report a display");
    (Killed(child), display)
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the app and waits for its "ready" line; returns the child.
fn start_app(display: &str, home: &Path, args: &[&str]) -> Killed {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relive-gui"))
        .args(args)
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("RELIVE_GUI_READY", "1")
        // Settings go to a private folder, never the user's.
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "relive-gui: ready" {
                let _ = tx.send(());
            }
        }
    });
    let child = Killed(child);
    if rx.recv_timeout(READY_TIMEOUT).is_err() {
        drop(child);
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        panic!("relive-gui did not get ready; stderr:\n{err}");
    }
    child
}

/// The id of the app's top-level window (its title starts with "Relive"; WM_CLASS is the
/// binary's name).
fn window_id(display: &str) -> String {
    let tree = output(
        Command::new("xwininfo")
            .args(["-root", "-tree"])
            .env("DISPLAY", display),
    );
    tree.lines()
        .find(|l| l.contains("\"Relive") || l.contains("(\"relive-gui\""))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no relive-gui window in:\n{tree}"))
        .to_string()
}

/// Waits until the window is mapped. X has no event a plain client can wait on for another
/// client's window, so this polls `xwininfo` (every 50 ms, for at most [`READY_TIMEOUT`]).
fn wait_viewable(display: &str, id: &str) {
    let start = std::time::Instant::now();
    loop {
        let info = output(
            Command::new("xwininfo")
                .args(["-id", id])
                .env("DISPLAY", display),
        );
        if info.contains("Map State: IsViewable") {
            return;
        }
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "window {id} never mapped:\n{info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Captures the window once it is mapped and shows more than a blank frame. The app says
/// "ready" after its first paint, but with Mesa's software renderer the X server may show the
/// frame a moment later (the buffer swap is asynchronous), so a blank capture is taken again,
/// every 200 ms for at most [`PAINT_TIMEOUT`]; [`check_png`] then judges the last one.
fn capture(display: &str, id: &str, name: &str) -> PathBuf {
    wait_viewable(display, id);
    let dir = fixture::target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(name);
    let start = std::time::Instant::now();
    loop {
        output(
            Command::new("import")
                .args(["-window", id])
                .arg(&png)
                .env("DISPLAY", display),
        );
        if describe_png(&png).0 > MIN_COLOURS || start.elapsed() > PAINT_TIMEOUT {
            return png;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long a mapped window may take to show its first frame.
const PAINT_TIMEOUT: Duration = Duration::from_secs(20);

/// More distinct colours than a blank (or nearly blank) window has.
const MIN_COLOURS: u64 = 16;

/// Number of distinct colours and the size, from ImageMagick.
fn describe_png(png: &Path) -> (u64, String) {
    let text = output(
        Command::new("identify")
            .args(["-format", "%k %wx%h"])
            .arg(png),
    );
    let (colours, size) = text.trim().split_once(' ').unwrap();
    (colours.parse().unwrap(), size.to_string())
}

/// What the test runs besides the app.
const TOOLS: [Tool; 5] = [
    ("Xvfb", "-help", "xvfb"),
    ("xwininfo", "-version", "x11-utils"),
    ("xprop", "-version", "x11-utils"),
    ("import", "-version", "imagemagick"),
    ("identify", "-version", "imagemagick"),
];

#[test]
fn window_shows_a_fixture_client_ready_to_patch() {
    if !tool::require(&TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = fixture::write(dir.path(), "msnmsgr.exe", &fixture::client());
    let (_xvfb, display) = xvfb();

    let app = start_app(
        &display,
        dir.path(),
        &[
            "--server",
            "relive.example",
            "--open",
            client.to_str().unwrap(),
        ],
    );
    let id = window_id(&display);
    let name = output(
        Command::new("xprop")
            .args(["-id", &id, "_NET_WM_NAME"])
            .env("DISPLAY", &display),
    );
    assert!(name.contains(&format!("\"{WINDOW_TITLE}\"")), "{name}");
    let png = capture(&display, &id, "relive-gui-patch.png");
    drop(app);
    check_png(&png);

    // The same client after patching: nothing left to change, "Restore original" offered.
    let target = relive_patcher::Target::new("relive.example").unwrap();
    relive_patcher::patch_file(&client, &target, None, &mut |_| {}).unwrap();
    let app = start_app(
        &display,
        dir.path(),
        &["--server", "relive.example", client.to_str().unwrap()],
    );
    let id = window_id(&display);
    let png = capture(&display, &id, "relive-gui-patched.png");
    drop(app);
    check_png(&png);
}

fn check_png(png: &Path) {
    let (colours, size) = describe_png(png);
    assert!(
        colours > MIN_COLOURS,
        "{} has {colours} colours: blank window?",
        png.display()
    );
    assert_eq!(size, "860x720", "{}", png.display());
    eprintln!("screenshot: {}", png.display());
}
