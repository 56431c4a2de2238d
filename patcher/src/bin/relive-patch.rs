//! `relive-patch`: the command-line front end of the Relive patcher.
//!
//! A thin shell over the library: parse arguments, call inspect/plan/patch_file/restore_file,
//! format the result, map errors to exit codes a script can test:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 2 | bad command line |
//! | 3 | not a PE/MSI, or an unsupported or broken file |
//! | 4 | packed executable |
//! | 5 | no MSN server address found (not an MSN client?) |
//! | 6 | the server name does not fit (string too long) |
//! | 7 | file system error (missing file, no write permission...) |
//! | 8 | the file changed since planning, or verification failed |
//! | 9 | nothing to restore |
//! | 10 | the file already points at another server (restore it first) |
//!
//! The port plan (README "Ports"): the patched client dials the server's host on 1863
//! (MSNP; built into the clients), fetches the Passport nexus from `https://HOST:8443` (or
//! `http://HOST:8080` with `--http-login`) and MsgrConfig from `http://HOST:8080`: the ports
//! relive-server listens on by default. `--https-port`/`--http-port` follow a server started
//! with other ports. `plan` and `apply` print where the patched client will connect.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use relive_patcher::scan::{Encoding, Endpoint};
use relive_patcher::{PatchError, Progress, Target};

/// Points MSN Messenger 1.x – 7.x clients and installers at a Relive server.
#[derive(Debug, Parser)]
#[command(name = "relive-patch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a file is and every MSN server address in it.
    Inspect {
        /// msmsgs.exe, msnmsgr.exe, an MSN setup .exe or .msi.
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show which bytes would change, without writing anything.
    Plan {
        /// The file to plan for.
        file: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Patch the file (in place with a `.relive-backup`, or into --out).
    Apply {
        /// The file to patch.
        file: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Write the result here instead of patching in place.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put the original back from its `.relive-backup`.
    Restore {
        /// The patched file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// Host name or IPv4 address of the Relive server (no port, no scheme).
    #[arg(long, short, env = "RELIVE_SERVER")]
    server: String,
    /// The server's HTTPS port (relive-server --https), written into the nexus URL.
    #[arg(long, default_value_t = relive_patcher::DEFAULT_HTTPS_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    https_port: u16,
    /// The server's plain HTTP port (relive-server --http), written into the MsgrConfig URL
    /// and, with --http-login, the nexus URL.
    #[arg(long, default_value_t = relive_patcher::DEFAULT_HTTP_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    http_port: u16,
    /// Log in over plain http (rewrite https:// to http:// in the nexus URL).
    #[arg(long)]
    http_login: bool,
    /// Allow several Messenger windows at once (known builds only).
    #[arg(long)]
    multiple_instances: bool,
}

impl TargetArgs {
    fn target(&self) -> Result<Target, PatchError> {
        Ok(Target::new(&self.server)?
            .with_https_port(self.https_port)
            .with_http_port(self.http_port)
            .with_http_login(self.http_login)
            .with_multiple_instances(self.multiple_instances))
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, PatchError> {
    std::fs::read(path).map_err(|source| PatchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A progress bar on stderr, shown only on a terminal.
fn progress_bar() -> (ProgressBar, impl FnMut(Progress)) {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let handle = bar.clone();
    (bar, move |p: Progress| {
        handle.set_length(p.total);
        handle.set_position(p.done);
        let what = if p.path.is_empty() {
            String::new()
        } else {
            format!(" {}", p.path)
        };
        handle.set_message(format!("{}{what}", p.stage));
    })
}

fn run(cli: Cli) -> Result<(), PatchError> {
    match cli.command {
        Command::Inspect { file, json } => {
            let report = relive_patcher::inspect(&read(&file)?)?;
            if json {
                println!("{}", report.to_json());
                return Ok(());
            }
            println!("{}: {}", file.display(), report.kind);
            for f in &report.files {
                let name = if f.path.is_empty() {
                    "(file)"
                } else {
                    f.path.as_str()
                };
                let version = f
                    .version
                    .map_or_else(|| "no version".into(), |v| v.to_string());
                let build = f
                    .build
                    .map_or_else(|| "unknown build".into(), |b| format!("MSN {b}"));
                println!(
                    "\n{name}: {} {version} ({build}){}{}",
                    if f.is_64 { "PE32+" } else { "PE32" },
                    if f.signed { ", signed" } else { "" },
                    f.packer
                        .map_or_else(String::new, |p| format!(", packed with {p}")),
                );
                for h in &f.hits {
                    print_string(h.offset, h.encoding, h.endpoint, &h.string);
                }
                if let Some(host) = f.patched_for() {
                    println!("  patched: points at {host}");
                    for r in &f.points_to {
                        print_string(r.offset, r.encoding, r.endpoint, &r.string);
                    }
                } else if f.hits.is_empty() {
                    println!("  (no MSN server addresses)");
                }
            }
        }
        Command::Plan { file, target, json } => {
            let plan = relive_patcher::plan(&read(&file)?, &target.target()?)?;
            if json {
                println!("{}", plan.to_json());
            } else {
                print!("{plan}");
            }
        }
        Command::Apply {
            file,
            target,
            out,
            json,
        } => {
            let (bar, mut progress) = progress_bar();
            let report =
                relive_patcher::patch_file(&file, &target.target()?, out.as_deref(), &mut progress);
            bar.finish_and_clear();
            let report = report?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
                return Ok(());
            }
            print!("{}", report.plan);
            if !report.changed {
                println!(
                    "\nnothing to do: {} already points at {}",
                    file.display(),
                    target.server
                );
            } else {
                println!("\npatched: {}", report.output.display());
                if let Some(b) = &report.backup {
                    println!("backup:  {} (relive-patch restore to undo)", b.display());
                }
                if report.signature_removed {
                    println!(
                        "the digital signature was removed (Windows will show an unknown publisher)"
                    );
                }
            }
            if let Some(reg) = &report.registry_file {
                println!(
                    "registry: import {} on the client machine (double-click, or regedit /s)",
                    reg.display()
                );
            }
        }
        Command::Restore { file } => {
            let backup = relive_patcher::restore_file(&file)?;
            println!("restored {} from {}", file.display(), backup.display());
        }
    }
    Ok(())
}

/// One line of `inspect`'s table: offset, encoding, service, the string.
fn print_string(offset: u64, encoding: Encoding, endpoint: Endpoint, string: &str) {
    println!(
        "  {offset:>#10x}  {:<8}  {:<20}  {string:?}",
        encoding.to_string(),
        endpoint.to_string()
    );
}

/// Exit code and a hint for an error; `host` is the server asked for, if any.
fn classify(err: &PatchError, host: Option<&str>) -> (u8, Option<String>) {
    let (code, hint) = classify_static(err);
    let hint = match (err, host) {
        (
            PatchError::DoesNotFit {
                new_len,
                max_len,
                replacement,
                ..
            },
            Some(host),
        ) => {
            let room = max_len.saturating_sub(new_len.saturating_sub(host.len()));
            let mut hint = format!(
                "at most {room} characters of server name fit there (an IP address or a \
                 shorter alias?)"
            );
            if replacement.contains("://") {
                hint.push_str(
                    "; serving HTTPS on 443 and HTTP on 80 (--https-port 443 --http-port 80) \
                     leaves room for 5 more",
                );
            }
            Some(hint)
        }
        _ => hint.map(str::to_owned),
    };
    (code, hint)
}

fn classify_static(err: &PatchError) -> (u8, Option<&'static str>) {
    match err {
        PatchError::NotPe { .. }
        | PatchError::Unsupported { .. }
        | PatchError::Installer { .. } => (
            3,
            Some("give the installed msmsgs.exe/msnmsgr.exe or the original MSN setup"),
        ),
        PatchError::Packed { .. } => (4, None),
        PatchError::NoEndpoints { .. } => (5, Some("is this an MSN Messenger 1.x – 7.x client?")),
        PatchError::DoesNotFit { .. } => (
            6,
            Some(
                "pick a server name no longer than the original (e.g. an IP address or a short alias)",
            ),
        ),
        PatchError::InvalidHost { .. } => (2, None),
        PatchError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => (
            7,
            Some("no write permission: run as administrator, or write elsewhere with --out"),
        ),
        PatchError::Io { .. } => (7, None),
        PatchError::PlanMismatch { .. } | PatchError::VerifyFailed { .. } => {
            (8, Some("the file was not changed"))
        }
        PatchError::NoBackup { .. } => {
            (9, Some("the file was not patched in place by relive-patch"))
        }
        PatchError::PatchedForAnotherServer { .. } => (10, None),
        _ => (1, None),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let host = match &cli.command {
        Command::Plan { target, .. } | Command::Apply { target, .. } => Some(target.server.clone()),
        Command::Inspect { .. } | Command::Restore { .. } => None,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let (code, hint) = classify(&err, host.as_deref());
            eprintln!("relive-patch: {err}");
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed_and_defaults_to_the_servers_ports() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["relive-patch", "plan", "msnmsgr.exe", "--server", "h.test"]);
        let Command::Plan { target, .. } = cli.command else {
            panic!("{cli:?}")
        };
        let target = target.target().unwrap();
        assert_eq!((target.https_port, target.http_port), (8443, 8080));
        assert!(
            Cli::try_parse_from(["relive-patch", "plan", "f", "-s", "h", "--https-port", "0"])
                .is_err()
        );
    }

    #[test]
    fn a_name_that_does_not_fit_is_told_how_much_room_there_is() {
        let client = relive_patcher::synth::msn6_client();
        let host = "a-much-too-long.relive.example";
        let err = relive_patcher::plan(&client, &Target::new(host).unwrap()).unwrap_err();
        let (code, hint) = classify(&err, Some(host));
        assert_eq!(code, 6);
        // messenger.hotmail.com: 21 characters, no scheme or port around the name.
        assert_eq!(
            hint.as_deref(),
            Some(
                "at most 21 characters of server name fit there (an IP address or a shorter alias?)"
            ),
            "{err}"
        );
        // In a URL the ports take room too.
        let url = PatchError::DoesNotFit {
            path: String::new(),
            offset: 0,
            original: "https://nexus.passport.com/rdr/pprdr.asp".into(),
            replacement: "https://twenty-six-characters.test:8443/nexus".into(),
            new_len: 44,
            max_len: 40,
        };
        let hint = classify(&url, Some("twenty-six-characters.test"))
            .1
            .unwrap();
        assert!(
            hint.starts_with("at most 22 characters") && hint.ends_with("room for 5 more"),
            "{hint}"
        );
        let patched = PatchError::PatchedForAnotherServer {
            path: String::new(),
            host: "old.test".into(),
        };
        assert_eq!(classify(&patched, None).0, 10);
        assert!(patched.to_string().contains("already points at old.test"));
    }
}
