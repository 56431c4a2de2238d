//! `relive-gui`: the desktop app. Parses a tiny command line, sets up logging, opens the window.
//!
//! ```text
//! relive-gui [--server HOST] [--open] [FILE]
//! ```
//!
//! A file given on the command line (as Windows does for "Open with" or a drop on the icon) is
//! opened at start. With `RELIVE_GUI_READY=1`, the app prints `relive-gui: ready` on stdout
//! once everything is loaded and painted (the screenshot test waits for it).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use eframe::egui;
use relive_gui::app::StartOptions;
use relive_gui::{APP_NAME, ReliveApp, WINDOW_TITLE};

fn parse_args(mut args: impl Iterator<Item = std::ffi::OsString>) -> anyhow::Result<StartOptions> {
    let mut options = StartOptions::default();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--server") => {
                let value = args.next().context("--server needs a host name")?;
                let value = value.into_string().ok().context("--server must be text")?;
                options.server = Some(value);
            }
            Some("--open") => {
                options.open = Some(PathBuf::from(args.next().context("--open needs a file")?));
            }
            Some("-h" | "--help") => {
                println!("usage: relive-gui [--server HOST] [--open] [FILE]");
                std::process::exit(0);
            }
            Some(flag) if flag.starts_with("--") => bail!("unknown option {flag}"),
            _ => options.open = Some(PathBuf::from(arg)),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, so logs written to files stay readable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut options = parse_args(std::env::args_os().skip(1))?;
    if std::env::var_os("RELIVE_GUI_READY").is_some_and(|v| v == "1") {
        options.on_ready = Some(Box::new(|| {
            use std::io::Write as _;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "relive-gui: ready");
            let _ = out.flush();
        }));
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(WINDOW_TITLE)
            .with_app_id("relive-gui")
            .with_inner_size([860.0, 720.0])
            .with_min_inner_size([560.0, 420.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    // The app name names the settings folder; the title is set on the viewport.
    eframe::run_native(
        APP_NAME,
        native,
        Box::new(|cc| Ok(Box::new(ReliveApp::new(cc, options)?))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
