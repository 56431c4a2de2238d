//! The command-line vocabulary every Relive program shares, so `relive-server`,
//! `relive-relay`, `relive-gui` and `relive-bench` say the same thing the same way:
//!
//! * `-v`/`-vv` (more log output) and `-q`/`-qq` (less), from each program's default level;
//!   `RUST_LOG`, when set, decides instead (the full `tracing` filter syntax);
//! * `--log-format text|json` (env `RELIVE_LOG_FORMAT`): lines for people, or one JSON object
//!   per line for log shippers; always on standard error, coloured only on a terminal.
//!
//! The other shared words are conventions the programs follow (README "Command line"):
//! `--data-dir` for a program's directory (older spellings such as `--dir` stay as hidden
//! aliases), the positional `EMAIL` for the account a command acts on, `--email` (alias
//! `--handle`) where an account is an option.
//!
//! Only binaries depend on this crate (`relive-relay` behind its `cli` feature), so libraries
//! never pull in clap's derive or the log subscriber through it.

use clap::ArgAction;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (timestamp, level, target, fields, spans).
    Json,
}

/// A log level, from least to most output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// What an operator wants to see.
    Info,
    /// What a developer wants to see.
    Debug,
    /// Everything.
    Trace,
}

impl Level {
    const ALL: [Self; 5] = [
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// The logging flags, flattened into a program's top-level arguments (global: they may come
/// before or after a subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct Logging {
    /// More log output (-v debug, -vv trace). RUST_LOG, when set, decides instead.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less log output (-q warnings and errors, -qq errors only).
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log line format on standard error: text for people, json for log shippers.
    #[arg(long, global = true, env = "RELIVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Logging {
    /// The level `-v`/`-q` make of the program's `default`.
    #[must_use]
    pub fn level(&self, default: Level) -> Level {
        let at = Level::ALL.iter().position(|l| *l == default).unwrap_or(2);
        let at = (at + usize::from(self.verbose)).saturating_sub(usize::from(self.quiet));
        Level::ALL[at.min(Level::ALL.len() - 1)]
    }

    /// The filter: `RUST_LOG` when it is set and valid, else [`Self::level`].
    #[must_use]
    pub fn filter(&self, default: Level) -> EnvFilter {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(self.level(default).as_str()))
    }

    /// Installs the process's log subscriber (once, at start).
    pub fn init(&self, default: Level) {
        let logs = tracing_subscriber::fmt()
            .with_env_filter(self.filter(default))
            .with_writer(std::io::stderr);
        match self.log_format {
            // Colour codes only on a terminal, so logs written to files stay readable.
            LogFormat::Text => logs
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
            LogFormat::Json => logs.json().init(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        logging: Logging,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Run,
    }

    fn parse(args: &[&str]) -> Logging {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map(|cli| cli.logging)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn verbosity_moves_from_the_default_and_stays_in_range() {
        assert_eq!(parse(&[]).level(Level::Info), Level::Info);
        assert_eq!(parse(&["-v"]).level(Level::Info), Level::Debug);
        assert_eq!(parse(&["-vvvv"]).level(Level::Info), Level::Trace);
        assert_eq!(parse(&["-q"]).level(Level::Info), Level::Warn);
        assert_eq!(parse(&["-qqqq"]).level(Level::Warn), Level::Error);
        // Global: after a subcommand too.
        assert_eq!(parse(&["run", "-v"]).level(Level::Warn), Level::Info);
        assert_eq!(parse(&["--log-format", "json"]).log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["x", "-v", "-q"]).is_err());
    }
}
