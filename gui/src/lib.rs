//! Relive desktop app: point an MSN Messenger client (or its installer) at a Relive server in
//! three clicks, put the original back, and trust the server's certificate.
//!
//! The app is a thin front end over [`relive_patcher`]: everything it knows about PE files,
//! installers and plans comes from there, and [`PatchError`](relive_patcher::PatchError)
//! variants are shown as human messages.
//!
//! # Layout
//! - [`app`]: `impl eframe::App`. Each frame it drains worker events into the state, draws
//!   the views, and hands the jobs the state asks for to the worker. Nothing there blocks.
//! - [`state`]: the persisted [`Settings`](state::Settings) and the pure
//!   [`UiState`](state::UiState) reducer (`apply(Action)`, `on_event(WorkerEvent)`), tested
//!   without a window.
//! - [`worker`]: a background thread that owns every blocking call (reading, inspecting,
//!   planning, patching with progress, restoring, file dialogs, certificate import).
//! - [`trust`]: downloading the server's CA certificate from its HTTP listener (or reading a
//!   file) and trusting it (Windows: the system's own `certutil` dialog; elsewhere: steps in
//!   words).
//! - [`views`]: free functions drawing `&UiState` and collecting
//!   [`Action`](state::Action)s; they never touch the file system or the patcher.
//!
//! - [`companion`]: the relay library's companion agent on its own thread and tokio
//!   runtime, started and stopped through the worker; its page shows the connection, the
//!   granted local ports and live transfers.

pub mod app;
pub mod companion;
pub mod state;
pub mod trust;
pub mod views;
pub mod worker;

pub use app::ReliveApp;

/// The window title (the screenshot test checks it).
pub const WINDOW_TITLE: &str = "Relive — MSN Messenger patcher";

/// The app name eframe keeps the settings under (it names their folder).
pub const APP_NAME: &str = "Relive";

/// Key under which [`state::Settings`] are kept in eframe's storage.
pub const SETTINGS_KEY: &str = "relive-gui/settings";
