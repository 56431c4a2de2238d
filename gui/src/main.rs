//! `relive-gui`: the desktop app. Parses the command line (clap, with the flags every Relive
//! program shares: [`relive_cli`]), sets up logging, opens the window.
//!
//! ```text
//! relive-gui [--server HOST] [-v|-q] [--log-format text|json] [FILE]
//! ```
//!
//! A file given on the command line (as Windows does for "Open with" or a drop on the icon) is
//! opened at start. With `RELIVE_GUI_READY=1`, the app prints `relive-gui: ready` on stdout
//! once everything is loaded and painted (the screenshot test waits for it).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::path::PathBuf;

use clap::Parser;
use eframe::egui;
use relive_cli::{Level, Logging};
use relive_gui::app::StartOptions;
use relive_gui::{APP_NAME, ReliveApp, WINDOW_TITLE};

/// Relive desktop app: points MSN Messenger clients at your Relive server.
///
/// Open an MSN Messenger 1.x–7.x client (msmsgs.exe, msnmsgr.exe) or its installer (setup
/// .exe or .msi), enter the Relive server's address, and patch it: the client then signs in
/// to that server instead of Microsoft's, and the original is kept to restore. The Companion
/// page runs the companion agent, which carries file transfers through the server's relay
/// when your PC is behind a NAT or a VPN.
#[derive(Debug, Parser)]
#[command(name = "relive-gui", version, about, long_about)]
struct Cli {
    /// The Relive server's host name or address (remembered for next time).
    #[arg(long, value_name = "HOST")]
    server: Option<String>,
    /// A client or installer to open at start (as "Open with" passes it).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// The same as FILE (older spelling).
    #[arg(
        long = "open",
        value_name = "FILE",
        hide = true,
        conflicts_with = "file"
    )]
    open: Option<PathBuf>,
    #[command(flatten)]
    logging: Logging,
}

impl Cli {
    fn start_options(self) -> StartOptions {
        StartOptions {
            server: self.server,
            open: self.file.or(self.open),
            ..StartOptions::default()
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.logging.init(Level::Warn);
    let mut options = cli.start_options();
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn help_says_what_the_app_does() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for words in [
            "MSN Messenger",
            "patch",
            "Companion",
            "--server",
            "--log-format",
            "-v",
        ] {
            assert!(help.contains(words), "{words:?} missing from:\n{help}");
        }
    }

    #[test]
    fn a_file_comes_positionally_or_after_open() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("relive-gui").chain(args.iter().copied()))
                .map(Cli::start_options)
        };
        let options = parse(&["--server", "msn.example", "msmsgs.exe"]).unwrap();
        assert_eq!(options.server.as_deref(), Some("msn.example"));
        assert_eq!(options.open, Some(PathBuf::from("msmsgs.exe")));
        let options = parse(&["--open", "setup.msi", "-q"]).unwrap();
        assert_eq!(options.open, Some(PathBuf::from("setup.msi")));
        assert!(parse(&["--bogus"]).is_err());
    }
}
