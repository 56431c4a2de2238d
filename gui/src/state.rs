//! What the app knows and how it changes: the persisted [`Settings`] and the pure
//! [`UiState`] reducer.
//!
//! Views turn clicks into [`Action`]s; [`UiState::apply`] folds an action into the state and
//! returns the [`Job`]s the worker must run; [`UiState::on_event`] folds a [`WorkerEvent`]
//! back in (and may ask for more jobs, e.g. a fresh inspection after patching). Nothing here
//! does I/O, so every user action is tested with plain unit tests.
//!
//! Results of slow jobs carry a generation number: opening another file or changing the server
//! while a plan is being computed makes the late answer stale, and it is dropped. Opening a
//! file is one job ([`Job::Open`]): the worker reads and parses it once for the inspection and
//! the plan.
//!
//! The server typed on the Patch page is used throughout: the patch (with the server's HTTPS
//! and HTTP ports, relive-server's defaults unless changed), the certificate download on the
//! Trust page, and the Companion page's server until that one is edited.

use std::path::{Path, PathBuf};

use relive_patcher::{
    DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, Inspection, PatchError, Plan, Progress, Stage, Target,
};
use serde::{Deserialize, Serialize};

mod companion;

pub use companion::{AgentStatus, CompanionState, MAX_FIELD, Secret, Transfer};

use crate::companion::SignIn;
use crate::trust::{CaError, CaInfo};
use crate::worker::{Job, Opened, Patched, Pick, WorkerEvent};

/// Settings remembered between runs (eframe storage). New fields must have defaults so old
/// saved settings still load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The server's host name or IP address, as the user typed it.
    pub server: String,
    /// The server's HTTPS port (relive-server `--https`), for the patched nexus URL.
    pub https_port: u16,
    /// The server's plain HTTP port (relive-server `--http`): MsgrConfig, the nexus with
    /// `http_login`, and where the certificate is downloaded from.
    pub http_port: u16,
    /// Log in over plain `http://` (nexus URL rewrite).
    pub http_login: bool,
    /// Allow several Messenger windows at once (catalog builds only).
    pub multiple_instances: bool,
    /// Write the `.reg` file with the registry changes next to the patched file.
    pub registry_file: bool,
    /// The server's CA certificate file last used.
    pub ca_file: Option<PathBuf>,
    /// Folder of the last file opened, where the file dialog starts.
    pub last_dir: Option<PathBuf>,
    /// Companion: the relay, `host` or `host:port` (QUIC).
    pub companion_server: String,
    /// Companion: the user's handle.
    pub companion_handle: String,
    /// Companion: keep the token between runs.
    pub remember_token: bool,
    /// Companion: the token, only when `remember_token` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub companion_token: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: String::new(),
            https_port: DEFAULT_HTTPS_PORT,
            http_port: DEFAULT_HTTP_PORT,
            http_login: false,
            multiple_instances: false,
            registry_file: true,
            ca_file: None,
            last_dir: None,
            companion_server: String::new(),
            companion_handle: String::new(),
            remember_token: false,
            companion_token: None,
        }
    }
}

/// Longest server field we accept (a host name is at most 253 characters, plus slack).
const MAX_SERVER_INPUT: usize = 260;

/// Turns the server field and the ports into a patcher [`Target`] with the options.
///
/// Accepts a host name or IP address; a scheme, path or port is refused with a reason the
/// user can act on (the ports have their own fields).
///
/// # Errors
/// [`PatchError::InvalidHost`] with the reason.
pub fn target_of(settings: &Settings) -> Result<Target, PatchError> {
    let input = settings.server.trim();
    let invalid = |reason| PatchError::InvalidHost {
        host: input.chars().take(MAX_SERVER_INPUT).collect(),
        reason,
    };
    if input.len() > MAX_SERVER_INPUT {
        return Err(invalid("it is too long"));
    }
    if input.contains("://") {
        return Err(invalid(
            "type the server name only, without http:// or https://",
        ));
    }
    if input.contains(':') {
        return Err(invalid(
            "type the server name only: its ports are under \"Server ports\"",
        ));
    }
    let port = |p: u16| {
        if p == 0 {
            Err(invalid("a port must be a number from 1 to 65535"))
        } else {
            Ok(p)
        }
    };
    Ok(Target::new(input)?
        .with_https_port(port(settings.https_port)?)
        .with_http_port(port(settings.http_port)?)
        .with_http_login(settings.http_login)
        .with_multiple_instances(settings.multiple_instances))
}

/// The pages of the window. The companion agent gets its own page once the relay library
/// ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    /// Patch a client or installer.
    #[default]
    Patch,
    /// Trust the server's certificate.
    Trust,
    /// Run the companion agent.
    Companion,
}

/// Everything a user can do. Views emit these; [`UiState::apply`] handles them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Switch page.
    ShowTab(Tab),
    /// Open the native file dialog to choose a client or installer.
    BrowseClient,
    /// Use this client or installer (from the dialog, drag and drop, or the command line).
    Open(PathBuf),
    /// The server field changed.
    SetServer(String),
    /// The server's HTTPS port changed.
    SetHttpsPort(u16),
    /// The server's plain HTTP port changed.
    SetHttpPort(u16),
    /// Toggle the plain-http login option.
    SetHttpLogin(bool),
    /// Toggle the several-instances option.
    SetMultipleInstances(bool),
    /// Toggle writing the `.reg` file.
    SetRegistryFile(bool),
    /// Patch the open file with the plan shown.
    Patch,
    /// Put the original back from its backup.
    Restore,
    /// Hide the last success or error message.
    Dismiss,
    /// Download the server's CA certificate from its HTTP listener.
    FetchCa,
    /// Open the native file dialog to choose the server's CA certificate.
    BrowseCa,
    /// Use this CA certificate file.
    OpenCa(PathBuf),
    /// Import the CA certificate into the user's trusted roots (Windows).
    TrustCa,
    /// Companion: the relay field changed.
    SetCompanionServer(String),
    /// Companion: the handle field changed.
    SetCompanionHandle(String),
    /// Companion: the token field changed.
    SetCompanionToken(Secret),
    /// Companion: toggle remembering the token.
    SetRememberToken(bool),
    /// Companion: start the agent.
    StartCompanion,
    /// Companion: stop the agent.
    StopCompanion,
}

/// A message for the user, made from an error: what happened, the details, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// One line: what went wrong.
    pub title: String,
    /// The precise error text.
    pub detail: String,
    /// What to do about it, when we know.
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(title: &str, detail: impl ToString, hint: Option<&str>) -> Self {
        Self {
            title: title.to_string(),
            detail: detail.to_string(),
            hint: hint.map(str::to_string),
        }
    }
}

/// Turns a [`PatchError`] into words a first-time user can act on.
pub fn describe(err: &PatchError) -> Problem {
    match err {
        PatchError::NotPe { .. } => Problem::new(
            "This is not an MSN Messenger program or setup.",
            err,
            Some(
                "Choose msmsgs.exe or msnmsgr.exe from the Messenger folder, or the original \
                 MSN Messenger setup (.exe or .msi).",
            ),
        ),
        PatchError::Unsupported { .. } | PatchError::Installer { .. } => Problem::new(
            "This file cannot be patched.",
            err,
            Some(
                "Try the installed msnmsgr.exe / msmsgs.exe instead of the setup, or another \
                 copy of the setup.",
            ),
        ),
        PatchError::Packed { .. } => Problem::new(
            "This program is compressed, so its server addresses cannot be read.",
            err,
            Some("Use an unmodified copy of the client, or unpack it first."),
        ),
        PatchError::NoEndpoints { .. } => Problem::new(
            "No MSN server address was found in this file.",
            err,
            Some("Is this MSN Messenger 1.x – 7.x, or its setup?"),
        ),
        PatchError::DoesNotFit {
            max_len,
            new_len,
            replacement,
            ..
        } => {
            // How much of the room the server name may take: the rest is scheme, port, path.
            let host_len = replacement
                .split_once("://")
                .map_or(replacement.as_str(), |(_, rest)| rest)
                .split([':', '/'])
                .next()
                .map_or(0, str::len);
            let room = max_len.saturating_sub(new_len.saturating_sub(host_len));
            let mut hint = format!(
                "At most {room} characters of server name fit there: use the server's IP \
                 address or a shorter alias."
            );
            if replacement.contains("://") {
                hint.push_str(" (With HTTPS on port 443 and HTTP on 80 there is room for 5 more.)");
            }
            Problem {
                title: "The server name is too long for this client.".into(),
                detail: err.to_string(),
                hint: Some(hint),
            }
        }
        PatchError::PatchedForAnotherServer { host, .. } => Problem::new(
            "This file was already patched for another server.",
            err,
            Some(&format!(
                "It points at {host}. Press \"Restore original\" (or use the copy from before \
                 patching), then patch it for this server."
            )),
        ),
        PatchError::InvalidHost { .. } => Problem::new(
            "Check the server address.",
            err,
            Some("Type the server's name or IP address, e.g. relive.example.org or 192.168.1.10."),
        ),
        PatchError::PlanMismatch { .. } | PatchError::VerifyFailed { .. } => Problem::new(
            "The file did not check out, so nothing was written.",
            err,
            Some("The file may have changed since it was opened: open it again and retry."),
        ),
        PatchError::NoBackup { .. } => Problem::new(
            "There is no backup to restore.",
            err,
            Some("Relive keeps the original next to the file as <name>.relive-backup; it is gone."),
        ),
        PatchError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Problem::new(
                "Windows did not allow changing this file.",
                err,
                Some(
                    "Close Messenger, then start Relive as administrator (right-click → Run as \
                     administrator), or copy the file to a folder of yours and patch the copy.",
                ),
            )
        }
        PatchError::Io { .. } => Problem::new("A file could not be read or written.", err, None),
        _ => Problem::new("Something went wrong.", err, None),
    }
}

fn describe_ca(err: &CaError) -> Problem {
    match err {
        CaError::Import { .. } => Problem::new(
            "The certificate could not be used.",
            err,
            Some(
                "If you pressed \"No\" in the Windows dialog, nothing was changed; press Trust \
                 again to retry.",
            ),
        ),
        CaError::Download { .. } => Problem::new(
            "The certificate could not be downloaded.",
            err,
            Some(
                "Check the server's address and HTTP port on the \"Patch Messenger\" page, and \
                 that relive-server is running. Or, on the server, run `relive-server cert \
                 export relive-ca.crt` and open that file here.",
            ),
        ),
        _ => Problem::new(
            "The certificate could not be used.",
            err,
            Some(
                "On the server, run `relive-server cert export relive-ca.crt` and open that file.",
            ),
        ),
    }
}

/// Something that loads in the background.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Load<T> {
    /// Nothing asked for.
    #[default]
    Empty,
    /// The worker is on it.
    Loading,
    /// Done.
    Ready(T),
    /// It failed.
    Failed(Problem),
}

impl<T> Load<T> {
    /// The value, when ready.
    pub fn ready(&self) -> Option<&T> {
        match self {
            Self::Ready(v) => Some(v),
            _ => None,
        }
    }

    /// True while the worker is on it.
    pub fn is_loading(&self) -> bool {
        matches!(self, Self::Loading)
    }
}

/// The open client or installer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// Where it is.
    pub path: PathBuf,
    /// Generation: bumped on every open, so late results for an older file are dropped.
    pub generation: u64,
    /// What the patcher found in it.
    pub inspection: Load<Inspected>,
}

/// What an inspection found, plus what the worker saw around the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The patcher's report.
    pub inspection: Inspection,
    /// File size in bytes.
    pub size: u64,
    /// A `.relive-backup` exists next to it (so "Restore original" can work).
    pub has_backup: bool,
}

/// The patch (or restore) operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Operation {
    /// Nothing running, nothing to report.
    #[default]
    Idle,
    /// Patching; the last progress report, if any.
    Patching(Option<Progress>),
    /// Restoring the original.
    Restoring,
    /// Patched.
    Patched(Patched),
    /// The original is back.
    Restored {
        /// The file restored.
        path: PathBuf,
    },
    /// It failed.
    Failed(Problem),
}

impl Operation {
    /// True while something runs.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Patching(_) | Self::Restoring)
    }
}

/// The trust page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustState {
    /// The certificate file and what is in it.
    pub ca: Load<CaInfo>,
    /// The import: `Loading` while the system dialog is up, `Ready(())` when trusted.
    pub import: Load<()>,
}

/// The whole state of the window (transient, except [`Settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiState {
    /// Persisted settings.
    pub settings: Settings,
    /// The page shown.
    pub tab: Tab,
    /// True on Windows: the app can import the certificate itself. A field (not a `cfg!`
    /// in the views) so both variants are testable anywhere.
    pub windows: bool,
    /// The open file, if any.
    pub file: Option<OpenFile>,
    /// The target from the settings, or why the server field is not usable.
    pub target: Result<Target, Problem>,
    /// The plan for the open file and target.
    pub plan: Load<Plan>,
    /// Generation of the plan asked for last.
    pub plan_generation: u64,
    /// Patch or restore.
    pub operation: Operation,
    /// A native file dialog is open (buttons that open another one are disabled).
    pub dialog_open: bool,
    /// Folder downloaded certificates are saved in (the app's own; the app sets it).
    pub files_dir: PathBuf,
    /// The trust page.
    pub trust: TrustState,
    /// The companion page.
    pub companion: CompanionState,
    /// Counter behind every generation number.
    next_generation: u64,
}

impl UiState {
    /// A fresh state with `settings`; `windows` says whether certificate import is offered.
    pub fn new(settings: Settings, windows: bool) -> Self {
        let target = target_of(&settings).map_err(|e| describe(&e));
        let settings_token = settings.companion_token.clone().unwrap_or_default();
        let mut settings = settings;
        if settings.companion_server.trim().is_empty() {
            settings.companion_server = settings.server.trim().to_owned();
        }
        Self {
            settings,
            tab: Tab::Patch,
            windows,
            file: None,
            target,
            plan: Load::Empty,
            plan_generation: 0,
            operation: Operation::Idle,
            dialog_open: false,
            files_dir: std::env::temp_dir(),
            companion: CompanionState {
                token: settings_token,
                ..CompanionState::default()
            },
            trust: TrustState::default(),
            next_generation: 0,
        }
    }

    /// Jobs to run at start: the remembered CA file is read again.
    pub fn start(&mut self) -> Vec<Job> {
        match self.settings.ca_file.clone() {
            Some(path) => self.open_ca(path),
            None => Vec::new(),
        }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// True when nothing runs that must finish before the next step (patch, restore,
    /// inspection, planning).
    pub fn is_idle(&self) -> bool {
        !self.operation.is_running()
            && !self.plan.is_loading()
            && !self
                .file
                .as_ref()
                .is_some_and(|f| f.inspection.is_loading())
            && !self.trust.ca.is_loading()
            && !self.trust.import.is_loading()
    }

    /// Where the server's certificate is downloaded from, when the server field is usable.
    pub fn ca_url(&self) -> Option<String> {
        self.target.as_ref().ok().map(crate::trust::ca_url)
    }

    /// The Patch button is usable: a fresh plan with changes, nothing running.
    pub fn can_patch(&self) -> bool {
        !self.operation.is_running() && self.plan.ready().is_some_and(|p| !p.is_noop())
    }

    /// The Restore button is usable: a backup exists, nothing running.
    pub fn can_restore(&self) -> bool {
        !self.operation.is_running()
            && self
                .file
                .as_ref()
                .and_then(|f| f.inspection.ready())
                .is_some_and(|i| i.has_backup)
    }

    /// Folds a user action into the state; returns the jobs for the worker.
    pub fn apply(&mut self, action: Action) -> Vec<Job> {
        match action {
            Action::ShowTab(tab) => {
                self.tab = tab;
                Vec::new()
            }
            Action::BrowseClient => self.browse(Pick::Client),
            Action::BrowseCa => self.browse(Pick::Ca),
            Action::FetchCa => self.fetch_ca(),
            Action::Open(path) => {
                let jobs = self.open(path);
                if !self.operation.is_running() {
                    // The last message was about the previous file.
                    self.operation = Operation::Idle;
                }
                jobs
            }
            Action::SetServer(server) => {
                let before = self.settings.server.trim().to_owned();
                self.settings.server = server.chars().take(MAX_SERVER_INPUT).collect();
                // The Companion page follows until its own server field is edited.
                let companion = self.settings.companion_server.trim();
                if companion.is_empty() || companion == before {
                    self.settings.companion_server = self.settings.server.trim().to_owned();
                }
                self.target_changed()
            }
            Action::SetHttpsPort(port) => self.change_target(|s| s.https_port = port),
            Action::SetHttpPort(port) => self.change_target(|s| s.http_port = port),
            Action::SetHttpLogin(on) => self.change_target(|s| s.http_login = on),
            Action::SetMultipleInstances(on) => self.change_target(|s| s.multiple_instances = on),
            Action::SetRegistryFile(on) => {
                self.settings.registry_file = on;
                Vec::new()
            }
            Action::Patch => self.patch(),
            Action::Restore => self.restore(),
            Action::Dismiss => {
                if !self.operation.is_running() {
                    self.operation = Operation::Idle;
                }
                if !self.trust.import.is_loading() {
                    self.trust.import = Load::Empty;
                }
                Vec::new()
            }
            Action::OpenCa(path) => self.open_ca(path),
            Action::TrustCa => self.trust_ca(),
            Action::SetCompanionServer(server) => {
                self.settings.companion_server = server.chars().take(MAX_FIELD).collect();
                Vec::new()
            }
            Action::SetCompanionHandle(handle) => {
                self.settings.companion_handle = handle.chars().take(MAX_FIELD).collect();
                Vec::new()
            }
            Action::SetCompanionToken(token) => {
                self.companion.token = Secret(token.0.chars().take(MAX_FIELD).collect());
                if self.settings.remember_token {
                    self.settings.companion_token = Some(self.companion.token.clone());
                }
                Vec::new()
            }
            Action::SetRememberToken(on) => {
                self.settings.remember_token = on;
                self.settings.companion_token = on.then(|| self.companion.token.clone());
                Vec::new()
            }
            Action::StartCompanion => self.start_companion(),
            Action::StopCompanion => {
                if !self.companion.status.is_running() {
                    return Vec::new();
                }
                self.companion.status = AgentStatus::Stopping;
                vec![Job::StopCompanion]
            }
        }
    }

    /// The sign-in from the fields, or what is missing.
    pub fn sign_in(&self) -> Result<SignIn, Problem> {
        let missing = |title: &str, hint: &str| Problem {
            title: title.to_owned(),
            detail: String::new(),
            hint: Some(hint.to_owned()),
        };
        let server = self.settings.companion_server.trim();
        let handle = self.settings.companion_handle.trim();
        let token = self.companion.token.0.trim();
        if server.is_empty() {
            return Err(missing(
                "Which server? Type its name or IP address.",
                "The same Relive server as on the \"Patch Messenger\" page.",
            ));
        }
        if handle.is_empty() {
            return Err(missing(
                "Type your handle.",
                "The e-mail address you sign in to Messenger with.",
            ));
        }
        if token.is_empty() {
            return Err(missing(
                "Type one of your access tokens.",
                "The token you sign in to Messenger with. The server's operator creates them \
                 (`relive-server token new YOUR-EMAIL`).",
            ));
        }
        let Some(ca_file) = self.settings.ca_file.clone() else {
            return Err(missing(
                "The server's certificate is not here yet.",
                "Get it on the \"Trust the server\" page (one click: download from the server).",
            ));
        };
        Ok(SignIn {
            server: server.to_owned(),
            handle: handle.to_owned(),
            token: token.to_owned(),
            ca_file,
        })
    }

    fn start_companion(&mut self) -> Vec<Job> {
        if self.companion.status.is_running() || self.companion.status == AgentStatus::Stopping {
            return Vec::new();
        }
        match self.sign_in() {
            Ok(sign_in) => {
                let session = self.generation();
                self.companion.session = session;
                self.companion.status = AgentStatus::Connecting;
                self.companion.ports.clear();
                vec![Job::StartCompanion { session, sign_in }]
            }
            Err(problem) => {
                self.companion.status = AgentStatus::Failed(problem);
                Vec::new()
            }
        }
    }

    fn browse(&mut self, pick: Pick) -> Vec<Job> {
        if self.dialog_open {
            return Vec::new();
        }
        self.dialog_open = true;
        let start_dir = match pick {
            Pick::Client => self.settings.last_dir.clone(),
            Pick::Ca => self
                .settings
                .ca_file
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .or_else(|| self.settings.last_dir.clone()),
        };
        vec![Job::Pick { pick, start_dir }]
    }

    fn open(&mut self, path: PathBuf) -> Vec<Job> {
        if self.operation.is_running() {
            // Never swap the file under a running patch.
            return Vec::new();
        }
        let generation = self.generation();
        self.settings.last_dir = path.parent().map(Path::to_path_buf);
        self.file = Some(OpenFile {
            path: path.clone(),
            generation,
            inspection: Load::Loading,
        });
        // One job: the worker parses the file once for the inspection and the plan.
        let plan = match self.replan().pop() {
            Some(Job::Plan {
                generation, target, ..
            }) => Some((generation, target)),
            _ => None,
        };
        vec![Job::Open {
            generation,
            path,
            plan,
        }]
    }

    /// Changes a setting the target is made of, then replans.
    fn change_target(&mut self, change: impl FnOnce(&mut Settings)) -> Vec<Job> {
        change(&mut self.settings);
        self.target_changed()
    }

    fn target_changed(&mut self) -> Vec<Job> {
        self.target = target_of(&self.settings).map_err(|e| describe(&e));
        if matches!(self.operation, Operation::Failed(_) | Operation::Patched(_)) {
            // The message was about the previous target.
            self.operation = Operation::Idle;
        }
        self.replan()
    }

    /// Asks for a plan of the open file for the current target, if both are usable.
    fn replan(&mut self) -> Vec<Job> {
        let generation = self.generation();
        self.plan_generation = generation;
        let (Some(file), Ok(target)) = (&self.file, &self.target) else {
            self.plan = Load::Empty;
            return Vec::new();
        };
        if matches!(file.inspection, Load::Failed(_)) {
            self.plan = Load::Empty;
            return Vec::new();
        }
        self.plan = Load::Loading;
        vec![Job::Plan {
            generation,
            path: file.path.clone(),
            target: target.clone(),
        }]
    }

    fn patch(&mut self) -> Vec<Job> {
        if !self.can_patch() {
            return Vec::new();
        }
        let (Some(file), Some(plan)) = (&self.file, self.plan.ready()) else {
            return Vec::new();
        };
        let job = Job::Patch {
            path: file.path.clone(),
            plan: Box::new(plan.clone()),
            registry_file: self.settings.registry_file,
        };
        self.operation = Operation::Patching(None);
        vec![job]
    }

    fn restore(&mut self) -> Vec<Job> {
        if !self.can_restore() {
            return Vec::new();
        }
        let Some(file) = &self.file else {
            return Vec::new();
        };
        let job = Job::Restore {
            path: file.path.clone(),
        };
        self.operation = Operation::Restoring;
        vec![job]
    }

    fn fetch_ca(&mut self) -> Vec<Job> {
        if self.trust.ca.is_loading() {
            return Vec::new();
        }
        let Ok(target) = &self.target else {
            self.trust.ca = Load::Failed(Problem {
                title: "Which server? Type its address on the \"Patch Messenger\" page first."
                    .to_owned(),
                detail: String::new(),
                hint: None,
            });
            return Vec::new();
        };
        let url = crate::trust::ca_url(target);
        let into = self
            .files_dir
            .join(format!("relive-ca-{}.crt", target.host));
        self.settings.ca_file = Some(into.clone());
        self.trust.ca = Load::Loading;
        self.trust.import = Load::Empty;
        vec![Job::FetchCa { url, into }]
    }

    fn open_ca(&mut self, path: PathBuf) -> Vec<Job> {
        self.settings.ca_file = Some(path.clone());
        self.trust.ca = Load::Loading;
        self.trust.import = Load::Empty;
        vec![Job::LoadCa { path }]
    }

    fn trust_ca(&mut self) -> Vec<Job> {
        if !self.windows || self.trust.import.is_loading() {
            return Vec::new();
        }
        let Some(ca) = self.trust.ca.ready() else {
            return Vec::new();
        };
        let job = Job::TrustCa {
            path: ca.path.clone(),
        };
        self.trust.import = Load::Loading;
        vec![job]
    }

    /// Re-reads the open file after it changed on disk (patched or restored).
    fn reload(&mut self) -> Vec<Job> {
        match &self.file {
            Some(file) => {
                let path = file.path.clone();
                self.open(path)
            }
            None => Vec::new(),
        }
    }

    /// Folds a worker event into the state; returns follow-up jobs.
    pub fn on_event(&mut self, event: WorkerEvent) -> Vec<Job> {
        match event {
            WorkerEvent::Picked { pick, path } => {
                self.dialog_open = false;
                match (pick, path) {
                    (Pick::Client, Some(path)) => self.open(path),
                    (Pick::Ca, Some(path)) => self.open_ca(path),
                    (_, None) => Vec::new(),
                }
            }
            WorkerEvent::Inspected { generation, result } => {
                let Some(file) = self.file.as_mut().filter(|f| f.generation == generation) else {
                    return Vec::new();
                };
                match result {
                    Ok(Opened {
                        inspection,
                        size,
                        has_backup,
                    }) => {
                        file.inspection = Load::Ready(Inspected {
                            inspection,
                            size,
                            has_backup,
                        });
                    }
                    Err(e) => {
                        file.inspection = Load::Failed(describe(&e));
                        // The plan would fail the same way; the inspection says it already.
                        self.plan = Load::Empty;
                        self.plan_generation = self.generation();
                    }
                }
                Vec::new()
            }
            WorkerEvent::Planned { generation, result } => {
                if generation == self.plan_generation {
                    self.plan = match result {
                        Ok(plan) => Load::Ready(*plan),
                        Err(e) => Load::Failed(describe(&e)),
                    };
                }
                Vec::new()
            }
            WorkerEvent::Progress(progress) => {
                if let Operation::Patching(last) = &mut self.operation {
                    *last = Some(progress);
                }
                Vec::new()
            }
            WorkerEvent::Patched(result) => match result {
                Ok(patched) => {
                    self.operation = Operation::Patched(*patched);
                    self.reload()
                }
                Err(e) => {
                    self.operation = Operation::Failed(describe(&e));
                    Vec::new()
                }
            },
            WorkerEvent::Restored(result) => match result {
                Ok(path) => {
                    self.operation = Operation::Restored { path };
                    self.reload()
                }
                Err(e) => {
                    self.operation = Operation::Failed(describe(&e));
                    Vec::new()
                }
            },
            WorkerEvent::CaLoaded { path, result } => {
                if self.settings.ca_file.as_deref() == Some(path.as_path()) {
                    self.trust.ca = match result {
                        Ok(info) => Load::Ready(info),
                        Err(e) => Load::Failed(describe_ca(&e)),
                    };
                }
                Vec::new()
            }
            WorkerEvent::CaTrusted(result) => {
                self.trust.import = match result {
                    Ok(()) => Load::Ready(()),
                    Err(e) => Load::Failed(describe_ca(&e)),
                };
                Vec::new()
            }
            WorkerEvent::Companion { session, event } => {
                if session == self.companion.session {
                    self.companion.on_event(event);
                }
                Vec::new()
            }
        }
    }
}

/// A short label for a progress report: "Extracting msnmsgr.exe" and a fraction in 0..=1.
pub fn progress_label(progress: &Progress) -> (String, f32) {
    let stage = match progress.stage {
        Stage::Extracting => "Extracting",
        Stage::Patching => "Patching",
        Stage::Repacking => "Repacking",
        Stage::Verifying => "Checking the result",
        Stage::Writing => "Writing",
        _ => "Working",
    };
    let text = if progress.path.is_empty() {
        stage.to_string()
    } else {
        format!("{stage} {}", progress.path)
    };
    #[allow(clippy::cast_precision_loss)] // a progress bar does not need 53 bits
    let fraction = if progress.total == 0 {
        0.0
    } else {
        (progress.done.min(progress.total) as f64 / progress.total as f64) as f32
    };
    (text, fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_patcher::synth;

    /// A synthetic MSN 6.0 client (real PE bytes from the patcher's builder).
    fn client() -> Vec<u8> {
        synth::msn6_client()
    }

    fn with_server(server: &str) -> UiState {
        UiState::new(
            Settings {
                server: server.into(),
                ..Settings::default()
            },
            false,
        )
    }

    fn opened() -> Opened {
        Opened {
            inspection: relive_patcher::inspect(&client()).unwrap(),
            size: 4096,
            has_backup: false,
        }
    }

    /// The file and plan generations of the one [`Job::Open`] in `jobs`.
    fn open_generations(jobs: &[Job]) -> (u64, u64) {
        match jobs {
            [
                Job::Open {
                    generation,
                    plan: Some((plan_generation, _)),
                    ..
                },
            ] => (*generation, *plan_generation),
            _ => panic!("{jobs:?}"),
        }
    }

    /// Opens `path` and answers the open job with real results, as the worker does.
    fn open_and_plan(state: &mut UiState, path: &str) {
        let jobs = state.apply(Action::Open(path.into()));
        let [
            Job::Open {
                generation, plan, ..
            },
        ] = &jobs[..]
        else {
            panic!("unexpected jobs {jobs:?}")
        };
        let inspected = WorkerEvent::Inspected {
            generation: *generation,
            result: Ok(opened()),
        };
        assert!(state.on_event(inspected).is_empty());
        if let Some((generation, target)) = plan {
            let planned = WorkerEvent::Planned {
                generation: *generation,
                result: relive_patcher::plan(&client(), target).map(Box::new),
            };
            assert!(state.on_event(planned).is_empty());
        }
    }

    #[test]
    fn show_tab_switches_page() {
        let mut s = with_server("");
        assert!(s.apply(Action::ShowTab(Tab::Trust)).is_empty());
        assert_eq!(s.tab, Tab::Trust);
    }

    #[test]
    fn browse_client_opens_one_dialog_and_picking_opens_the_file() {
        let mut s = with_server("relive.test");
        s.settings.last_dir = Some("/clients".into());
        assert_eq!(
            s.apply(Action::BrowseClient),
            vec![Job::Pick {
                pick: Pick::Client,
                start_dir: Some("/clients".into())
            }]
        );
        assert!(s.dialog_open);
        assert!(
            s.apply(Action::BrowseClient).is_empty(),
            "one dialog at a time"
        );
        let jobs = s.on_event(WorkerEvent::Picked {
            pick: Pick::Client,
            path: Some("/c/msnmsgr.exe".into()),
        });
        assert!(!s.dialog_open);
        assert!(matches!(&jobs[..], [Job::Open { path, plan: Some(_), .. }]
            if path == Path::new("/c/msnmsgr.exe")));
        assert_eq!(s.settings.last_dir, Some(PathBuf::from("/c")));
    }

    #[test]
    fn cancelled_dialog_changes_nothing() {
        let mut s = with_server("relive.test");
        s.apply(Action::BrowseClient);
        assert!(
            s.on_event(WorkerEvent::Picked {
                pick: Pick::Client,
                path: None
            })
            .is_empty()
        );
        assert!(!s.dialog_open);
        assert!(s.file.is_none());
    }

    #[test]
    fn open_without_server_only_inspects() {
        let mut s = with_server("");
        let jobs = s.apply(Action::Open("/c/msnmsgr.exe".into()));
        assert!(matches!(&jobs[..], [Job::Open { plan: None, .. }]));
        assert_eq!(s.plan, Load::Empty);
        assert!(s.file.as_ref().unwrap().inspection.is_loading());
    }

    #[test]
    fn open_shows_inspection_and_plan() {
        let mut s = with_server("relive.test");
        open_and_plan(&mut s, "/c/msnmsgr.exe");
        let found = s.file.as_ref().unwrap().inspection.ready().unwrap();
        assert!(!found.inspection.files[0].hits.is_empty());
        let plan = s.plan.ready().unwrap();
        assert_eq!(plan.target.host, "relive.test");
        assert!(s.can_patch());
        assert!(!s.can_restore());
        assert!(s.is_idle());
    }

    #[test]
    fn failed_inspection_is_explained_and_drops_the_plan() {
        let mut s = with_server("relive.test");
        let jobs = s.apply(Action::Open("/c/readme.txt".into()));
        let (generation, plan_generation) = open_generations(&jobs);
        s.on_event(WorkerEvent::Inspected {
            generation,
            result: relive_patcher::inspect(b"hello").map(|inspection| Opened {
                inspection,
                size: 5,
                has_backup: false,
            }),
        });
        let Load::Failed(p) = &s.file.as_ref().unwrap().inspection else {
            panic!("{s:?}")
        };
        assert_eq!(p.title, "This is not an MSN Messenger program or setup.");
        assert_eq!(s.plan, Load::Empty);
        // The plan answer that comes after is now stale.
        s.on_event(WorkerEvent::Planned {
            generation: plan_generation,
            result: Err(PatchError::NoEndpoints {
                path: String::new(),
            }),
        });
        assert_eq!(s.plan, Load::Empty);
        assert!(!s.can_patch());
    }

    #[test]
    fn stale_results_are_dropped() {
        let mut s = with_server("relive.test");
        let first = s.apply(Action::Open("/c/old.exe".into()));
        open_and_plan(&mut s, "/c/new.exe");
        let plan = s.plan.clone();
        let (generation, plan_generation) = open_generations(&first);
        let old = || PatchError::NotPe {
            reason: "old".into(),
        };
        s.on_event(WorkerEvent::Inspected {
            generation,
            result: Err(old()),
        });
        s.on_event(WorkerEvent::Planned {
            generation: plan_generation,
            result: Err(old()),
        });
        assert_eq!(s.plan, plan);
        assert!(s.file.as_ref().unwrap().inspection.ready().is_some());
    }

    #[test]
    fn set_server_replans_with_the_servers_ports_and_validates() {
        let mut s = with_server("");
        s.apply(Action::Open("/c/msnmsgr.exe".into()));
        let jobs = s.apply(Action::SetServer(" relive.test ".into()));
        let [Job::Plan { target, .. }] = &jobs[..] else {
            panic!("{jobs:?}")
        };
        // relive-server's default ports unless told otherwise.
        assert_eq!(
            (target.host.as_str(), target.https_port, target.http_port),
            ("relive.test", 8443, 8080)
        );
        let jobs = s.apply(Action::SetHttpsPort(443));
        let [Job::Plan { target, .. }] = &jobs[..] else {
            panic!("{jobs:?}")
        };
        assert_eq!((target.https_port, target.http_port), (443, 8080));
        assert_eq!(
            s.ca_url().as_deref(),
            Some("http://relive.test:8080/relive-ca.crt")
        );
        assert!(s.apply(Action::SetHttpPort(0)).is_empty());
        assert!(s.target.is_err());
        s.apply(Action::SetHttpPort(8080));

        for bad in [
            "https://relive.test",
            "relive.test:8080",
            "relive test",
            "relive.test:0",
        ] {
            assert!(s.apply(Action::SetServer(bad.into())).is_empty(), "{bad}");
            assert_eq!(s.plan, Load::Empty, "{bad}");
            assert_eq!(
                s.target.as_ref().unwrap_err().title,
                "Check the server address."
            );
        }
        assert!(s.apply(Action::SetServer("x".repeat(10_000))).is_empty());
        assert_eq!(s.settings.server.len(), MAX_SERVER_INPUT);
    }

    #[test]
    fn options_replan_with_the_flags() {
        let mut s = with_server("relive.test");
        s.apply(Action::Open("/c/msnmsgr.exe".into()));
        let jobs = s.apply(Action::SetHttpLogin(true));
        let [Job::Plan { target, .. }] = &jobs[..] else {
            panic!("{jobs:?}")
        };
        assert!(target.http_login && !target.multiple_instances);
        let jobs = s.apply(Action::SetMultipleInstances(true));
        let [Job::Plan { target, .. }] = &jobs[..] else {
            panic!("{jobs:?}")
        };
        assert!(target.http_login && target.multiple_instances);
        assert!(s.settings.http_login && s.settings.multiple_instances);
    }

    #[test]
    fn registry_file_option_goes_into_the_patch_job() {
        let mut s = with_server("relive.test");
        assert!(s.apply(Action::SetRegistryFile(false)).is_empty());
        open_and_plan(&mut s, "/c/msnmsgr.exe");
        let jobs = s.apply(Action::Patch);
        assert!(matches!(
            &jobs[..],
            [Job::Patch {
                registry_file: false,
                ..
            }]
        ));
    }

    #[test]
    fn patch_needs_a_plan_with_changes() {
        let mut s = with_server("relive.test");
        assert!(s.apply(Action::Patch).is_empty());
        s.apply(Action::Open("/c/msnmsgr.exe".into()));
        assert!(s.apply(Action::Patch).is_empty(), "plan still loading");
        assert!(s.operation == Operation::Idle);
    }

    #[test]
    fn patch_runs_reports_progress_and_reloads() {
        let mut s = with_server("relive.test");
        open_and_plan(&mut s, "/c/msnmsgr.exe");
        let jobs = s.apply(Action::Patch);
        let [Job::Patch { path, plan, .. }] = &jobs[..] else {
            panic!("{jobs:?}")
        };
        assert_eq!(path, Path::new("/c/msnmsgr.exe"));
        assert_eq!(Some(plan.as_ref()), s.plan.ready());
        assert!(!s.can_patch() && !s.is_idle());
        assert!(
            s.apply(Action::Patch).is_empty(),
            "no second patch while running"
        );
        assert!(s.apply(Action::Open("/c/other.exe".into())).is_empty());

        let step = Progress {
            stage: Stage::Writing,
            path: String::new(),
            done: 50,
            total: 200,
        };
        s.on_event(WorkerEvent::Progress(step.clone()));
        assert_eq!(s.operation, Operation::Patching(Some(step.clone())));
        assert_eq!(progress_label(&step), ("Writing".to_string(), 0.25));

        let done = Patched {
            path: "/c/msnmsgr.exe".into(),
            changed: true,
            backup: Some("/c/msnmsgr.exe.relive-backup".into()),
            registry_file: None,
            registry_changes: Vec::new(),
            members: vec![String::new()],
            signature_removed: false,
            host: "relive.test".into(),
        };
        let jobs = s.on_event(WorkerEvent::Patched(Ok(Box::new(done.clone()))));
        assert!(matches!(&jobs[..], [Job::Open { plan: Some(_), .. }]));
        assert_eq!(s.operation, Operation::Patched(done));
    }

    #[test]
    fn failed_patch_is_explained() {
        let mut s = with_server("relive.test");
        open_and_plan(&mut s, "/c/msnmsgr.exe");
        s.apply(Action::Patch);
        let denied = PatchError::Io {
            path: "/c/msnmsgr.exe".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(s.on_event(WorkerEvent::Patched(Err(denied))).is_empty());
        let Operation::Failed(p) = &s.operation else {
            panic!("{s:?}")
        };
        assert_eq!(p.title, "Windows did not allow changing this file.");
        assert!(p.hint.as_deref().unwrap().contains("administrator"));
        assert!(s.can_patch(), "the user may retry");
    }

    #[test]
    fn restore_needs_a_backup_and_reloads() {
        let mut s = with_server("relive.test");
        open_and_plan(&mut s, "/c/msnmsgr.exe");
        assert!(s.apply(Action::Restore).is_empty(), "no backup");
        if let Some(OpenFile {
            inspection: Load::Ready(found),
            ..
        }) = &mut s.file
        {
            found.has_backup = true;
        }
        assert!(s.can_restore());
        let jobs = s.apply(Action::Restore);
        assert_eq!(
            jobs,
            vec![Job::Restore {
                path: "/c/msnmsgr.exe".into()
            }]
        );
        assert_eq!(s.operation, Operation::Restoring);
        let jobs = s.on_event(WorkerEvent::Restored(Ok("/c/msnmsgr.exe".into())));
        assert!(matches!(&jobs[..], [Job::Open { plan: Some(_), .. }]));
        assert!(matches!(s.operation, Operation::Restored { .. }));
    }

    #[test]
    fn failed_restore_is_explained() {
        let mut s = with_server("relive.test");
        s.operation = Operation::Restoring;
        s.on_event(WorkerEvent::Restored(Err(PatchError::NoBackup {
            path: "/c/x.relive-backup".into(),
        })));
        let Operation::Failed(p) = &s.operation else {
            panic!("{s:?}")
        };
        assert_eq!(p.title, "There is no backup to restore.");
    }

    #[test]
    fn dismiss_clears_the_message_but_not_a_running_patch() {
        let mut s = with_server("relive.test");
        s.operation = Operation::Failed(describe(&PatchError::NotPe { reason: "x".into() }));
        assert!(s.apply(Action::Dismiss).is_empty());
        assert_eq!(s.operation, Operation::Idle);
        s.operation = Operation::Patching(None);
        s.apply(Action::Dismiss);
        assert_eq!(s.operation, Operation::Patching(None));
    }

    #[test]
    fn ca_file_is_read_remembered_and_reloaded_at_start() {
        let mut s = with_server("");
        assert_eq!(
            s.apply(Action::BrowseCa),
            vec![Job::Pick {
                pick: Pick::Ca,
                start_dir: None
            }]
        );
        let jobs = s.on_event(WorkerEvent::Picked {
            pick: Pick::Ca,
            path: Some("/d/relive-ca.crt".into()),
        });
        assert_eq!(
            jobs,
            vec![Job::LoadCa {
                path: "/d/relive-ca.crt".into()
            }]
        );
        assert_eq!(s.settings.ca_file, Some("/d/relive-ca.crt".into()));
        let info = CaInfo {
            path: "/d/relive-ca.crt".into(),
            sha256: "AB".into(),
            count: 1,
        };
        s.on_event(WorkerEvent::CaLoaded {
            path: "/d/relive-ca.crt".into(),
            result: Ok(info.clone()),
        });
        assert_eq!(s.trust.ca, Load::Ready(info));

        let mut again = UiState::new(s.settings.clone(), false);
        assert_eq!(
            again.start(),
            vec![Job::LoadCa {
                path: "/d/relive-ca.crt".into()
            }]
        );
        // Browsing again starts next to the last certificate.
        assert_eq!(
            again.apply(Action::BrowseCa),
            vec![Job::Pick {
                pick: Pick::Ca,
                start_dir: Some("/d".into())
            }]
        );
    }

    #[test]
    fn open_ca_failure_is_explained() {
        let mut s = with_server("");
        s.apply(Action::OpenCa("/d/readme.txt".into()));
        s.on_event(WorkerEvent::CaLoaded {
            path: "/d/readme.txt".into(),
            result: Err(CaError::NotCertificate {
                path: "/d/readme.txt".into(),
            }),
        });
        let Load::Failed(p) = &s.trust.ca else {
            panic!("{s:?}")
        };
        assert!(p.hint.as_deref().unwrap().contains("cert export"));
    }

    #[test]
    fn trust_is_offered_on_windows_only_and_reports_the_answer() {
        let info = CaInfo {
            path: "/d/relive-ca.crt".into(),
            sha256: "AB".into(),
            count: 1,
        };
        let mut linux = with_server("");
        linux.trust.ca = Load::Ready(info.clone());
        assert!(linux.apply(Action::TrustCa).is_empty());

        let mut windows = UiState::new(Settings::default(), true);
        assert!(
            windows.apply(Action::TrustCa).is_empty(),
            "no certificate yet"
        );
        windows.trust.ca = Load::Ready(info);
        assert_eq!(
            windows.apply(Action::TrustCa),
            vec![Job::TrustCa {
                path: "/d/relive-ca.crt".into()
            }]
        );
        assert!(
            windows.apply(Action::TrustCa).is_empty(),
            "dialog already up"
        );
        windows.on_event(WorkerEvent::CaTrusted(Err(CaError::Import {
            reason: "cancelled".into(),
        })));
        assert!(matches!(windows.trust.import, Load::Failed(_)));
        windows.apply(Action::TrustCa);
        windows.on_event(WorkerEvent::CaTrusted(Ok(())));
        assert_eq!(windows.trust.import, Load::Ready(()));
    }

    #[test]
    fn every_error_has_a_human_title() {
        let errors = [
            PatchError::Packed {
                packer: "UPX".into(),
            },
            PatchError::DoesNotFit {
                path: String::new(),
                offset: 0x10,
                original: "messenger.hotmail.com".into(),
                replacement: "x".repeat(30),
                new_len: 30,
                max_len: 21,
            },
            PatchError::Installer {
                what: "cabinet",
                reason: "bad".into(),
            },
            PatchError::VerifyFailed {
                reason: "bad".into(),
            },
        ];
        let titles: Vec<String> = errors.iter().map(|e| describe(e).title).collect();
        assert_eq!(
            titles,
            [
                "This program is compressed, so its server addresses cannot be read.",
                "The server name is too long for this client.",
                "This file cannot be patched.",
                "The file did not check out, so nothing was written.",
            ]
        );
        // `messenger.hotmail.com` (21) with no scheme or port: 21 characters of name fit.
        assert!(
            describe(&errors[1])
                .hint
                .unwrap()
                .contains("At most 21 characters")
        );
    }

    #[test]
    fn the_server_of_the_patch_page_is_the_companions_until_edited_there() {
        let mut s = with_server("");
        assert_eq!(s.settings.companion_server, "");
        for typed in ["r", "re", "relive.test"] {
            s.apply(Action::SetServer(typed.into()));
        }
        assert_eq!(s.settings.companion_server, "relive.test");
        // Saved settings from before: an empty companion server starts as the patch server.
        let old = UiState::new(s.settings.clone(), false);
        assert_eq!(old.settings.companion_server, "relive.test");
        // Once edited on its own page, it stays.
        s.apply(Action::SetCompanionServer("relay.test:1865".into()));
        s.apply(Action::SetServer("other.test".into()));
        assert_eq!(s.settings.companion_server, "relay.test:1865");
    }

    #[test]
    fn the_certificate_is_downloaded_from_the_servers_http_port() {
        let mut s = with_server("");
        assert!(s.apply(Action::FetchCa).is_empty());
        let Load::Failed(p) = &s.trust.ca else {
            panic!("{s:?}")
        };
        assert!(p.title.contains("Patch Messenger"), "{p:?}");
        let mut s = with_server("relive.test");
        s.files_dir = "/app".into();
        let jobs = s.apply(Action::FetchCa);
        assert_eq!(
            jobs,
            vec![Job::FetchCa {
                url: "http://relive.test:8080/relive-ca.crt".into(),
                into: "/app/relive-ca-relive.test.crt".into(),
            }]
        );
        assert!(s.trust.ca.is_loading() && !s.is_idle());
        assert!(
            s.apply(Action::FetchCa).is_empty(),
            "one download at a time"
        );
        s.on_event(WorkerEvent::CaLoaded {
            path: "/app/relive-ca-relive.test.crt".into(),
            result: Err(CaError::Download {
                url: "http://relive.test:8080/relive-ca.crt".into(),
                reason: "refused".into(),
            }),
        });
        let Load::Failed(p) = &s.trust.ca else {
            panic!("{s:?}")
        };
        assert_eq!(p.title, "The certificate could not be downloaded.");
        // The companion uses the downloaded file.
        assert_eq!(
            s.settings.ca_file.as_deref(),
            Some(Path::new("/app/relive-ca-relive.test.crt"))
        );
    }

    #[test]
    fn missing_companion_fields_are_named_in_plain_words() {
        let mut s = with_server("");
        let title = |s: &UiState| s.sign_in().unwrap_err().title;
        assert_eq!(title(&s), "Which server? Type its name or IP address.");
        s.apply(Action::SetCompanionServer("relive.test".into()));
        assert_eq!(title(&s), "Type your handle.");
        s.apply(Action::SetCompanionHandle("alice@example.com".into()));
        assert_eq!(title(&s), "Type one of your access tokens.");
        s.apply(Action::SetCompanionToken(Secret("token".into())));
        let problem = s.sign_in().unwrap_err();
        assert_eq!(problem.title, "The server's certificate is not here yet.");
        assert!(problem.hint.unwrap().contains("Trust the server"));
        s.settings.ca_file = Some("/app/relive-ca.crt".into());
        assert!(s.sign_in().is_ok());
    }

    #[test]
    fn a_file_patched_for_another_server_is_explained() {
        let p = describe(&PatchError::PatchedForAnotherServer {
            path: String::new(),
            host: "old.test".into(),
        });
        assert_eq!(p.title, "This file was already patched for another server.");
        assert!(p.hint.unwrap().contains("old.test"));
    }

    #[test]
    fn settings_load_with_missing_fields() {
        let old: Settings = serde_json::from_str(r#"{"server":"relive.test"}"#).unwrap();
        assert_eq!(old.server, "relive.test");
        assert!(old.registry_file, "new fields take their defaults");
        assert_eq!((old.https_port, old.http_port), (8443, 8080));
    }
}
