//! `impl eframe::App`: each frame, (1) worker events go into the state, (2) the views draw
//! and collect actions (a dropped file is one too), (3) the state turns actions into jobs for
//! the worker. Nothing here blocks; the worker wakes the window when it has news.

use std::path::PathBuf;

use eframe::egui;

use crate::state::{Action, Settings, Tab, UiState};
use crate::views;
use crate::worker::{Job, Worker};
use crate::{APP_NAME, SETTINGS_KEY};

/// What the command line asks for at start.
#[derive(Default)]
pub struct StartOptions {
    /// Open this client or installer.
    pub open: Option<PathBuf>,
    /// Use this server address (and remember it).
    pub server: Option<String>,
    /// Called once, after a frame was painted with everything loaded and nothing running
    /// (the screenshot test waits for it).
    pub on_ready: Option<Box<dyn FnOnce()>>,
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field("open", &self.open)
            .field("server", &self.server)
            .field("on_ready", &self.on_ready.is_some())
            .finish()
    }
}

/// The app.
pub struct ReliveApp {
    state: UiState,
    worker: Worker,
    on_ready: Option<Box<dyn FnOnce()>>,
    /// Frames painted in a row with nothing running (see [`StartOptions::on_ready`]).
    idle_frames: u8,
}

impl std::fmt::Debug for ReliveApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliveApp")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ReliveApp {
    /// Restores the settings, starts the worker and runs the start options.
    ///
    /// # Errors
    /// When the worker thread cannot start.
    pub fn new(cc: &eframe::CreationContext<'_>, options: StartOptions) -> std::io::Result<Self> {
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, SETTINGS_KEY))
            .unwrap_or_default();
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(move || ctx.request_repaint())?;
        let mut state = UiState::new(settings, cfg!(windows));
        // Downloaded certificates live next to the settings (the app name names the folder).
        if let Some(dir) = eframe::storage_dir(APP_NAME) {
            state.files_dir = dir;
        }
        let mut app = Self {
            state,
            worker,
            on_ready: options.on_ready,
            idle_frames: 0,
        };
        let jobs = app.state.start();
        app.send(jobs);
        if let Some(server) = options.server {
            app.act(Action::SetServer(server));
        }
        if let Some(path) = options.open {
            app.act(Action::Open(path));
        }
        Ok(app)
    }

    fn send(&self, jobs: Vec<Job>) {
        for job in jobs {
            self.worker.send(job);
        }
    }

    fn act(&mut self, action: Action) {
        let jobs = self.state.apply(action);
        self.send(jobs);
    }

    /// Calls `on_ready` on the second idle frame: the first idle one has been painted by then.
    fn check_ready(&mut self, ctx: &egui::Context) {
        if self.on_ready.is_none() {
            return;
        }
        if !self.state.is_idle() {
            self.idle_frames = 0;
            return;
        }
        self.idle_frames = self.idle_frames.saturating_add(1);
        if self.idle_frames >= 2 {
            if let Some(ready) = self.on_ready.take() {
                ready();
            }
        } else {
            ctx.request_repaint();
        }
    }
}

/// A dropped certificate goes to the trust page, anything else is a client to patch.
fn dropped_actions(path: PathBuf) -> [Action; 2] {
    let is_cert = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["crt", "pem", "cer", "der"].contains(&e.to_ascii_lowercase().as_str()));
    if is_cert {
        [Action::ShowTab(Tab::Trust), Action::OpenCa(path)]
    } else {
        [Action::ShowTab(Tab::Patch), Action::Open(path)]
    }
}

impl eframe::App for ReliveApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        while let Some(event) = self.worker.try_recv() {
            let jobs = self.state.on_event(event);
            self.send(jobs);
        }
        let mut actions = Vec::new();
        let dropped = ui
            .ctx()
            .input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()));
        if let Some(path) = dropped {
            actions.extend(dropped_actions(path));
        }
        views::root(ui, &self.state, &mut actions);
        for action in actions {
            self.act(action);
        }
        let ctx = ui.ctx().clone();
        self.check_ready(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.state.settings);
    }
}
