//! The background thread that does every blocking thing, so the window never freezes.
//!
//! The app sends [`Job`]s over an `mpsc` channel; the thread answers with [`WorkerEvent`]s and
//! calls the `notify` callback (the app's `ctx.request_repaint()`) after each one. Jobs run in
//! order; when several plans are queued (the user is typing a server name) only the last one
//! runs. Native file dialogs run on their own short-lived thread so they never hold up a patch.
//! Opening a file reads and parses it once ([`relive_patcher::inspect_and_plan`]); plans for
//! later keystrokes reuse the bytes read.
//!
//! Patching applies *the plan the user saw* to freshly read bytes: if the file changed since,
//! the patcher reports a mismatch and nothing is written. Then, like
//! [`relive_patcher::patch_file`], the original is kept as `<file>.relive-backup` (only once: an
//! existing backup is the pristine original) and the result is written atomically.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use relive_patcher::file::{REG_SUFFIX, write_atomic};
use relive_patcher::{Inspection, PatchError, Plan, Progress, Target, backup_path};

use crate::companion::{Companion, CompanionEvent, SignIn};
use crate::trust::{self, CaError, CaInfo};

/// Largest file we open. MSN installers are under 30 MB; anything much bigger is not one.
pub const MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

/// Which file dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A client executable or installer.
    Client,
    /// The server's CA certificate.
    Ca,
}

/// Work for the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Show a native file dialog.
    Pick {
        /// Which one.
        pick: Pick,
        /// Folder to start in.
        start_dir: Option<PathBuf>,
    },
    /// Read a file, inspect it and, with a target, plan it, parsing it once.
    Open {
        /// Echoed back in [`WorkerEvent::Inspected`].
        generation: u64,
        /// The file.
        path: PathBuf,
        /// The plan's generation (echoed back in [`WorkerEvent::Planned`]) and target.
        plan: Option<(u64, Target)>,
    },
    /// Plan a file for a target.
    Plan {
        /// Echoed back in [`WorkerEvent::Planned`].
        generation: u64,
        /// The file.
        path: PathBuf,
        /// The server and options.
        target: Target,
    },
    /// Apply a plan to a file in place, with a backup.
    Patch {
        /// The file.
        path: PathBuf,
        /// The plan shown to the user.
        plan: Box<Plan>,
        /// Also write the `.reg` file when the plan has registry changes.
        registry_file: bool,
    },
    /// Put the original back.
    Restore {
        /// The patched file.
        path: PathBuf,
    },
    /// Read a CA certificate.
    LoadCa {
        /// The file.
        path: PathBuf,
    },
    /// Download the server's CA certificate and save it; answered with
    /// [`WorkerEvent::CaLoaded`] for `into`.
    FetchCa {
        /// `http://host:port/relive-ca.crt`.
        url: String,
        /// Where to save it.
        into: PathBuf,
    },
    /// Import a CA certificate into the user's trusted roots.
    TrustCa {
        /// The file.
        path: PathBuf,
    },
    /// Start the companion agent (stopping one that runs).
    StartCompanion {
        /// Echoed back in [`WorkerEvent::Companion`].
        session: u64,
        /// Where and who.
        sign_in: SignIn,
    },
    /// Stop the companion agent.
    StopCompanion,
}

/// A file that was opened and inspected.
#[derive(Debug)]
pub struct Opened {
    /// The patcher's report.
    pub inspection: Inspection,
    /// Size in bytes.
    pub size: u64,
    /// `<file>.relive-backup` exists.
    pub has_backup: bool,
}

/// What patching did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    /// The patched file.
    pub path: PathBuf,
    /// False when the file already pointed at the server (nothing written).
    pub changed: bool,
    /// The backup of the original.
    pub backup: Option<PathBuf>,
    /// The `.reg` file written, if any.
    pub registry_file: Option<PathBuf>,
    /// Registry changes the client needs (shown even when no file is written).
    pub registry_changes: Vec<String>,
    /// Members patched (empty string for the file itself).
    pub members: Vec<String>,
    /// An Authenticode signature was removed.
    pub signature_removed: bool,
    /// The server it now points at.
    pub host: String,
}

/// Answers from the thread.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A file dialog closed (`None`: cancelled).
    Picked {
        /// Which dialog.
        pick: Pick,
        /// The file chosen.
        path: Option<PathBuf>,
    },
    /// An inspection finished.
    Inspected {
        /// From the job.
        generation: u64,
        /// The result.
        result: Result<Opened, PatchError>,
    },
    /// A plan finished.
    Planned {
        /// From the job.
        generation: u64,
        /// The result.
        result: Result<Box<Plan>, PatchError>,
    },
    /// Patching is at this step.
    Progress(Progress),
    /// Patching finished.
    Patched(Result<Box<Patched>, PatchError>),
    /// Restoring finished; the path restored.
    Restored(Result<PathBuf, PatchError>),
    /// A CA certificate was read.
    CaLoaded {
        /// The file.
        path: PathBuf,
        /// What is in it.
        result: Result<CaInfo, CaError>,
    },
    /// The import finished.
    CaTrusted(Result<(), CaError>),
    /// News from the companion agent.
    Companion {
        /// From [`Job::StartCompanion`].
        session: u64,
        /// What happened.
        event: CompanionEvent,
    },
}

/// Handle to the worker thread. Dropping it stops the thread after its current job.
#[derive(Debug)]
pub struct Worker {
    jobs: Sender<Job>,
    events: Receiver<WorkerEvent>,
}

type Notify = Arc<dyn Fn() + Send + Sync>;

impl Worker {
    /// Starts the thread. `notify` is called after every event (use `ctx.request_repaint()`).
    ///
    /// # Errors
    /// When the OS cannot start a thread.
    pub fn spawn(notify: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let (jobs, job_rx) = std::sync::mpsc::channel();
        let (event_tx, events) = std::sync::mpsc::channel();
        let notify: Notify = Arc::new(notify);
        std::thread::Builder::new()
            .name("relive-worker".into())
            .spawn(move || run(&job_rx, &Outbox { event_tx, notify }))?;
        Ok(Self { jobs, events })
    }

    /// Queues a job. A job sent after the thread died is dropped (the thread only ends when
    /// the app does).
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<WorkerEvent> {
        self.events.try_recv().ok()
    }

    /// Waits for the next event (tests; the app never blocks).
    pub fn recv(&self) -> Option<WorkerEvent> {
        self.events.recv().ok()
    }

    /// Waits up to `timeout` for the next event (tests).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<WorkerEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

/// Sends events and wakes the UI.
#[derive(Clone)]
struct Outbox {
    event_tx: Sender<WorkerEvent>,
    notify: Notify,
}

impl Outbox {
    fn send(&self, event: WorkerEvent) {
        if self.event_tx.send(event).is_ok() {
            (self.notify)();
        }
    }
}

/// The bytes of the file last read, so planning while the user types does not re-read it.
struct Cache {
    path: PathBuf,
    bytes: Arc<Vec<u8>>,
}

fn run(job_rx: &Receiver<Job>, out: &Outbox) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut cache: Option<Cache> = None;
    let mut companion: Option<Companion> = None;
    loop {
        if queue.is_empty() {
            match job_rx.recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => return,
            }
        }
        // Take whatever else is waiting, then drop plans that a later plan supersedes.
        loop {
            match job_rx.try_recv() {
                Ok(job) => queue.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if queue.is_empty() {
                        return;
                    }
                    break;
                }
            }
        }
        let last_plan = queue.iter().rposition(|j| matches!(j, Job::Plan { .. }));
        let mut index = 0;
        queue.retain(|j| {
            let keep = !matches!(j, Job::Plan { .. }) || Some(index) == last_plan;
            index += 1;
            keep
        });
        if let Some(job) = queue.pop_front() {
            handle(job, out, &mut cache, &mut companion);
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, PatchError> {
    let io = |source| PatchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_SIZE {
        return Err(PatchError::Unsupported {
            reason: format!(
                "the file is {} MB; MSN Messenger clients and installers are much smaller",
                size / (1024 * 1024)
            ),
        });
    }
    std::fs::read(path).map_err(io)
}

fn cached(cache: &mut Option<Cache>, path: &Path) -> Result<Arc<Vec<u8>>, PatchError> {
    if let Some(c) = cache.as_ref().filter(|c| c.path == path) {
        return Ok(Arc::clone(&c.bytes));
    }
    let bytes = Arc::new(read_file(path)?);
    *cache = Some(Cache {
        path: path.to_path_buf(),
        bytes: Arc::clone(&bytes),
    });
    Ok(bytes)
}

fn handle(job: Job, out: &Outbox, cache: &mut Option<Cache>, companion: &mut Option<Companion>) {
    match job {
        Job::Pick { pick, start_dir } => {
            let dialog_out = out.clone();
            // A dialog may stay open for minutes: give it its own thread.
            let spawned = std::thread::Builder::new()
                .name("relive-dialog".into())
                .spawn(move || {
                    let path = pick_file(pick, start_dir.as_deref());
                    dialog_out.send(WorkerEvent::Picked { pick, path });
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the file dialog thread");
                out.send(WorkerEvent::Picked { pick, path: None });
            }
        }
        Job::Open {
            generation,
            path,
            plan,
        } => {
            // Always read afresh: the file may have been patched or restored.
            *cache = None;
            let target = plan.as_ref().map(|(_, target)| target);
            let examined = cached(cache, &path).and_then(|bytes| {
                let (inspection, planned) = relive_patcher::inspect_and_plan(&bytes, target)?;
                let opened = Opened {
                    inspection,
                    size: bytes.len() as u64,
                    has_backup: backup_path(&path).is_file(),
                };
                Ok((opened, planned))
            });
            let (result, planned) = match examined {
                Ok((opened, planned)) => (Ok(opened), planned),
                // The reducer drops the plan when the inspection failed.
                Err(e) => (Err(e), None),
            };
            out.send(WorkerEvent::Inspected { generation, result });
            if let (Some((generation, _)), Some(result)) = (plan, planned) {
                out.send(WorkerEvent::Planned {
                    generation,
                    result: result.map(Box::new),
                });
            }
        }
        Job::Plan {
            generation,
            path,
            target,
        } => {
            let result = cached(cache, &path)
                .and_then(|bytes| relive_patcher::plan(&bytes, &target).map(Box::new));
            out.send(WorkerEvent::Planned { generation, result });
        }
        Job::Patch {
            path,
            plan,
            registry_file,
        } => {
            *cache = None;
            let result = patch(&path, &plan, registry_file, out).map(Box::new);
            out.send(WorkerEvent::Patched(result));
        }
        Job::Restore { path } => {
            *cache = None;
            let result = relive_patcher::restore_file(&path).map(|_| path);
            out.send(WorkerEvent::Restored(result));
        }
        Job::LoadCa { path } => {
            let result = trust::read_ca(&path);
            out.send(WorkerEvent::CaLoaded { path, result });
        }
        Job::FetchCa { url, into } => {
            let result = trust::download_ca(&url, &into);
            out.send(WorkerEvent::CaLoaded { path: into, result });
        }
        Job::TrustCa { path } => {
            out.send(WorkerEvent::CaTrusted(trust::import(&path)));
        }
        Job::StartCompanion { session, sign_in } => {
            // Stops the previous one (its events carry the old session and are dropped).
            *companion = None;
            let events = out.clone();
            let started = Companion::start(sign_in, move |event| {
                events.send(WorkerEvent::Companion { session, event });
            });
            match started {
                Ok(c) => *companion = Some(c),
                Err(e) => out.send(WorkerEvent::Companion {
                    session,
                    event: CompanionEvent::Failed(format!("cannot start the agent: {e}")),
                }),
            }
        }
        Job::StopCompanion => *companion = None,
    }
}

/// Applies `plan` to the file at `path`, in place with a backup.
fn patch(
    path: &Path,
    plan: &Plan,
    registry_file: bool,
    out: &Outbox,
) -> Result<Patched, PatchError> {
    let data = read_file(path)?;
    let mut last: Option<(relive_patcher::Stage, String, u64)> = None;
    let mut progress = |p: Progress| {
        // Report each step, and within a step every whole percent: enough for a smooth bar,
        // few enough events not to flood the UI.
        let percent = p.done.saturating_mul(100).checked_div(p.total).unwrap_or(0);
        let key = (p.stage, p.path.clone(), percent);
        if last.as_ref() != Some(&key) {
            last = Some(key);
            out.send(WorkerEvent::Progress(p));
        }
    };
    let applied = relive_patcher::apply(&data, plan, &mut progress)?;
    let mut backup = None;
    if applied.changed {
        progress(Progress {
            stage: relive_patcher::Stage::Writing,
            path: String::new(),
            done: 0,
            total: applied.bytes.len() as u64,
        });
        let b = backup_path(path);
        if !b.exists() {
            write_atomic(&b, &data, Some(path))?;
        }
        backup = Some(b);
        write_atomic(path, &applied.bytes, Some(path))?;
        progress(Progress {
            stage: relive_patcher::Stage::Writing,
            path: String::new(),
            done: applied.bytes.len() as u64,
            total: applied.bytes.len() as u64,
        });
    }
    let registry_file = match plan.registry_file().filter(|_| registry_file) {
        Some(text) => {
            let mut name = path.as_os_str().to_owned();
            name.push(REG_SUFFIX);
            let reg = PathBuf::from(name);
            write_atomic(&reg, text.as_bytes(), None)?;
            Some(reg)
        }
        None => None,
    };
    Ok(Patched {
        path: path.to_path_buf(),
        changed: applied.changed,
        backup,
        registry_file,
        registry_changes: plan.registry.iter().map(ToString::to_string).collect(),
        members: applied.patched,
        signature_removed: applied.signature_removed,
        host: plan.target.host.clone(),
    })
}

/// Shows the native dialog (blocking this thread only).
fn pick_file(pick: Pick, start_dir: Option<&Path>) -> Option<PathBuf> {
    let mut dialog = rfd::FileDialog::new();
    if let Some(dir) = start_dir.filter(|d| d.is_dir()) {
        dialog = dialog.set_directory(dir);
    }
    dialog = match pick {
        Pick::Client => dialog
            .set_title("Choose MSN Messenger (msnmsgr.exe, msmsgs.exe) or its setup")
            .add_filter("MSN Messenger or setup", &["exe", "msi"])
            .add_filter("All files", &["*"]),
        Pick::Ca => dialog
            .set_title("Choose the server's certificate (relive-ca.crt)")
            .add_filter("Certificate", &["crt", "pem", "cer", "der"])
            .add_filter("All files", &["*"]),
    };
    dialog.pick_file()
}
