//! The main page: choose the client, type the server, review the changes, patch (or restore).

use eframe::egui::{self, RichText};
use relive_patcher::scan::Endpoint;
use relive_patcher::{FileKind, Inspection, PeReport, Plan, Reason};

use super::{SUCCESS, notice, problem, size, step};
use crate::state::{Action, Load, Operation, UiState, progress_label};
use crate::worker::Patched;

/// Draws the page.
pub fn page(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    choose_file(ui, state, actions);
    ui.separator();
    server(ui, state, actions);
    ui.separator();
    review(ui, state);
    ui.add_space(12.0);
}

fn choose_file(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    step(ui, 1, "Choose MSN Messenger or its setup");
    ui.horizontal_wrapped(|ui| {
        let button = egui::Button::new("Choose file…");
        if ui
            .add_enabled(!state.dialog_open && !state.operation.is_running(), button)
            .clicked()
        {
            actions.push(Action::BrowseClient);
        }
        ui.label(
            RichText::new(
                "or drop it on this window: msnmsgr.exe / msmsgs.exe from the Messenger \
                 folder, or the setup (.exe, .msi).",
            )
            .weak(),
        );
    });
    let Some(file) = &state.file else {
        return;
    };
    ui.add_space(4.0);
    ui.label(RichText::new(file.path.display().to_string()).monospace());
    match &file.inspection {
        Load::Empty => {}
        Load::Loading => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the file…");
            });
        }
        Load::Failed(p) => problem(ui, p),
        Load::Ready(found) => {
            ui.label(summary(&found.inspection, found.size));
            found_table(ui, &found.inspection);
        }
    }
}

/// "MSN Messenger 6.0.0602, executable, 1.2 MB".
fn summary(inspection: &Inspection, bytes: u64) -> String {
    let hits: usize = inspection.files.iter().map(|f| f.hits.len()).sum();
    let client = inspection
        .files
        .iter()
        .find(|f| !f.hits.is_empty())
        .or_else(|| inspection.files.iter().find(|f| f.version.is_some()))
        .map(build_name);
    let mut text = match client {
        Some(build) => format!("{build} — {}", inspection.kind),
        None => inspection.kind.to_string(),
    };
    if hits == 0 {
        match inspection.files.iter().find_map(PeReport::patched_for) {
            Some(host) => text.push_str(&format!(", patched: points at {host}")),
            None => text.push_str(", no MSN server address left in it"),
        }
    }
    if !inspection.members.is_empty() {
        text.push_str(&format!(", {} files inside", inspection.members.len()));
    }
    text.push_str(&format!(", {}", size(bytes)));
    text
}

fn build_name(file: &PeReport) -> String {
    match (file.build, file.version) {
        (Some(build), _) => format!("MSN Messenger {build}"),
        (None, Some(v)) => format!("version {v} (not in the catalog; found by content)"),
        (None, None) => "unknown version".into(),
    }
}

/// A port setting: its label, value, and the action that changes it.
type PortField = (&'static str, u16, fn(u16) -> Action);

/// One row of a strings table: the member, the service, the string, its offset.
type StringRow<'a> = (&'a str, Endpoint, &'a str, u64);

/// The MSN server addresses found, or, once patched, where the file points now.
fn found_table(ui: &mut egui::Ui, inspection: &Inspection) {
    let mut found: Vec<StringRow<'_>> = Vec::new();
    let mut points: Vec<StringRow<'_>> = Vec::new();
    for file in &inspection.files {
        let name = if file.path.is_empty() {
            "the file"
        } else {
            file.path.as_str()
        };
        found.extend(
            file.hits
                .iter()
                .map(|h| (name, h.endpoint, h.string.as_str(), h.offset)),
        );
        points.extend(
            file.points_to
                .iter()
                .map(|r| (name, r.endpoint, r.string.as_str(), r.offset)),
        );
    }
    if !found.is_empty() {
        strings_table(ui, "found", "Server addresses found", &found);
    } else if !points.is_empty() {
        strings_table(ui, "points", "Where it points now", &points);
    }
}

fn strings_table(ui: &mut egui::Ui, id: &str, heading: &str, rows: &[StringRow<'_>]) {
    egui::CollapsingHeader::new(format!("{heading}: {}", rows.len()))
        .id_salt(id)
        .default_open(true)
        .show(ui, |ui| {
            egui::Grid::new(id)
                .striped(true)
                .num_columns(4)
                .spacing([16.0, 4.0])
                .show(ui, |ui| {
                    for title in ["In", "Service", "Text", "Offset"] {
                        ui.label(RichText::new(title).strong());
                    }
                    ui.end_row();
                    for (name, endpoint, string, offset) in rows {
                        ui.label(*name);
                        ui.label(endpoint.to_string());
                        ui.label(RichText::new(*string).monospace());
                        ui.label(RichText::new(format!("{offset:#x}")).weak());
                        ui.end_row();
                    }
                });
        });
}

fn server(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    step(ui, 2, "Your Relive server");
    let mut text = state.settings.server.clone();
    let running = state.operation.is_running();
    ui.horizontal(|ui| {
        ui.label("Server address:");
        let edit = egui::TextEdit::singleline(&mut text)
            .hint_text("relive.example.org or 192.168.1.10")
            .desired_width(280.0);
        if ui.add_enabled(!running, edit).changed() {
            actions.push(Action::SetServer(text.clone()));
        }
    });
    match &state.target {
        Ok(target) => {
            ui.label(RichText::new("Messenger will connect to").weak());
            for line in target.summary() {
                ui.label(RichText::new(format!("  • {line}")).weak());
            }
        }
        Err(_) if state.settings.server.trim().is_empty() => {
            ui.label(
                RichText::new("Type the name or IP address of the server (ask its operator).")
                    .weak(),
            );
        }
        Err(p) => {
            let color = ui.visuals().error_fg_color;
            ui.label(RichText::new(p.detail.as_str()).color(color));
        }
    }
    egui::CollapsingHeader::new("Server ports")
        .id_salt("ports")
        .show(ui, |ui| {
            ui.label(
                RichText::new(
                    "relive-server's defaults. Change them only if the server was started with \
                     other --https or --http ports.",
                )
                .weak(),
            );
            ui.add_enabled_ui(!running, |ui| {
                ui.horizontal(|ui| {
                    let ports: [PortField; 2] = [
                        (
                            "HTTPS (sign-in)",
                            state.settings.https_port,
                            Action::SetHttpsPort,
                        ),
                        (
                            "HTTP (MsgrConfig, certificate)",
                            state.settings.http_port,
                            Action::SetHttpPort,
                        ),
                    ];
                    for (label, mut port, action) in ports {
                        ui.label(label);
                        if ui
                            .add(egui::DragValue::new(&mut port).range(1..=u16::MAX))
                            .changed()
                        {
                            actions.push(action(port));
                        }
                    }
                });
            });
        });
    ui.add_space(4.0);
    ui.add_enabled_ui(!running, |ui| {
        let mut http = state.settings.http_login;
        if ui
            .checkbox(&mut http, "Sign in over plain HTTP")
            .on_hover_text(
                "For Windows XP and older, which cannot speak modern HTTPS; no certificate is \
                 needed then. The token travels unencrypted: use it on a LAN or VPN.",
            )
            .changed()
        {
            actions.push(Action::SetHttpLogin(http));
        }
        let mut several = state.settings.multiple_instances;
        if ui
            .checkbox(&mut several, "Allow several Messenger windows at once")
            .on_hover_text("Known client builds only; others are patched without it.")
            .changed()
        {
            actions.push(Action::SetMultipleInstances(several));
        }
        let mut reg = state.settings.registry_file;
        if ui
            .checkbox(&mut reg, "Write a .reg file with the registry changes")
            .on_hover_text(
                "Some versions also read the server from the registry. The .reg file is saved \
                 next to the patched file; double-click it on the Messenger computer.",
            )
            .changed()
        {
            actions.push(Action::SetRegistryFile(reg));
        }
    });
}

fn review(ui: &mut egui::Ui, state: &UiState) {
    step(ui, 3, "Review the changes");
    match &state.plan {
        Load::Empty => {
            ui.label(
                RichText::new("Choose a file and type the server: the changes appear here before anything is written.")
                    .weak(),
            );
        }
        Load::Loading => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Working out the changes…");
            });
        }
        Load::Failed(p) => problem(ui, p),
        Load::Ready(plan) => plan_table(ui, plan),
    }
}

fn plan_table(ui: &mut egui::Ui, plan: &Plan) {
    if plan.is_noop() {
        notice(ui, SUCCESS, |ui| {
            ui.label(
                RichText::new(format!(
                    "This file already points at {}: nothing to change.",
                    plan.target.host
                ))
                .color(SUCCESS)
                .strong(),
            );
        });
    } else {
        let edits: usize = plan.files.iter().map(|f| f.edits.len()).sum();
        ui.label(format!(
            "{edits} change{} in the {}:",
            if edits == 1 { "" } else { "s" },
            plan.kind
        ));
        // An executable is one file: no need for the "In" column.
        let members = plan.kind != FileKind::Executable;
        egui::Grid::new("plan")
            .striped(true)
            .num_columns(if members { 5 } else { 4 })
            .spacing([16.0, 4.0])
            .show(ui, |ui| {
                let titles = ["In", "Offset", "What", "Now", "Becomes"];
                for title in &titles[usize::from(!members)..] {
                    ui.label(RichText::new(*title).strong());
                }
                ui.end_row();
                for file in &plan.files {
                    for edit in &file.edits {
                        let why: Vec<String> = edit.reasons.iter().map(reason).collect();
                        if members {
                            ui.label(&file.path);
                        }
                        ui.label(RichText::new(format!("{:#x}", edit.offset)).weak());
                        ui.label(why.join(", "));
                        ui.label(RichText::new(&edit.before_text).monospace());
                        ui.label(RichText::new(&edit.after_text).monospace().strong());
                        ui.end_row();
                    }
                }
            });
    }
    let destinations = plan.destinations();
    if !destinations.is_empty() {
        ui.add_space(4.0);
        ui.label(RichText::new("The patched Messenger will use:").strong());
        for d in &destinations {
            ui.label(RichText::new(format!("- {} ({})", d.address, d.endpoint)).monospace());
        }
    }
    if !plan.registry.is_empty() {
        ui.add_space(4.0);
        ui.label(RichText::new("Registry (on the computer that runs Messenger):").strong());
        for change in &plan.registry {
            ui.label(RichText::new(format!("- {change}")).monospace());
        }
    }
    if !plan.warnings.is_empty() {
        ui.add_space(4.0);
        let color = ui.visuals().warn_fg_color;
        egui::CollapsingHeader::new(format!("Notes ({})", plan.warnings.len()))
            .id_salt("warnings")
            .show(ui, |ui| {
                for warning in &plan.warnings {
                    ui.label(RichText::new(warning.to_string()).color(color));
                }
            });
    }
}

/// What an edit is for, in a few words (the "Now" column already shows the old text).
fn reason(reason: &Reason) -> String {
    match reason {
        Reason::Redirect { endpoint, .. } => endpoint.to_string(),
        Reason::HttpLogin => "sign in over http".into(),
        Reason::ShortPath { path } => format!("shorter path {path}"),
        Reason::MultipleInstances { .. } => "several windows".into(),
    }
}

/// Step 4, shown at the bottom of the window: Patch, Restore, progress and outcome.
pub fn actions(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let patch = egui::Button::new(RichText::new("Patch").strong().size(16.0))
            .min_size(egui::vec2(120.0, 32.0));
        let response = ui.add_enabled(state.can_patch(), patch);
        let response = match state.file.as_ref() {
            Some(f) => response.on_hover_text(format!(
                "Changes {} in place; the original is kept as {}.relive-backup",
                f.path.display(),
                f.path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )),
            None => response.on_disabled_hover_text("Choose a file and type the server first"),
        };
        if response.clicked() {
            actions.push(Action::Patch);
        }
        let restore = egui::Button::new("Restore original").min_size(egui::vec2(0.0, 32.0));
        if ui
            .add_enabled(state.can_restore(), restore)
            .on_hover_text("Puts back the file as it was before Relive patched it")
            .on_disabled_hover_text("There is no backup: this file was not patched by Relive")
            .clicked()
        {
            actions.push(Action::Restore);
        }
        if let Some(hint) = next_step(state) {
            ui.label(RichText::new(hint).weak());
        }
    });
    ui.add_space(6.0);
    match &state.operation {
        Operation::Idle => {}
        Operation::Patching(progress) => {
            let (text, fraction) = progress
                .as_ref()
                .map_or_else(|| ("Starting…".to_string(), 0.0), progress_label);
            ui.add(
                egui::ProgressBar::new(fraction)
                    .text(text)
                    .animate(true)
                    .desired_width(ui.available_width().min(520.0)),
            );
        }
        Operation::Restoring => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Restoring the original…");
            });
        }
        Operation::Patched(done) => patched(ui, done, actions),
        Operation::Restored { path } => {
            notice(ui, SUCCESS, |ui| {
                ui.label(
                    RichText::new(format!("The original {} is back.", path.display()))
                        .color(SUCCESS)
                        .strong(),
                );
                if ui.small_button("OK").clicked() {
                    actions.push(Action::Dismiss);
                }
            });
        }
        Operation::Failed(p) => {
            problem(ui, p);
            if ui.small_button("OK").clicked() {
                actions.push(Action::Dismiss);
            }
        }
    }
}

/// What the user must do before Patch works, if it does not.
fn next_step(state: &UiState) -> Option<&'static str> {
    if state.can_patch() || state.operation.is_running() {
        return None;
    }
    if state.file.is_none() {
        return Some("First choose MSN Messenger or its setup (step 1).");
    }
    if state.target.is_err() {
        return Some("Now type your server's address (step 2).");
    }
    match &state.plan {
        Load::Ready(plan) if plan.is_noop() => Some("Nothing to patch: the file is ready."),
        Load::Loading => Some("Working out the changes…"),
        _ => None,
    }
}

fn patched(ui: &mut egui::Ui, done: &Patched, actions: &mut Vec<Action>) {
    notice(ui, SUCCESS, |ui| {
        let headline = if done.changed {
            format!("Done! {} now points at {}.", done.path.display(), done.host)
        } else {
            format!(
                "{} already pointed at {}; nothing was written.",
                done.path.display(),
                done.host
            )
        };
        ui.label(RichText::new(headline).color(SUCCESS).strong());
        if let Some(backup) = &done.backup {
            ui.label(format!("The original is kept as {}.", backup.display()));
        }
        if done.signature_removed {
            ui.label("Its digital signature was removed: Windows will show an unknown publisher.");
        }
        match &done.registry_file {
            Some(reg) => {
                ui.label(format!(
                    "Registry: double-click {} on the computer that runs Messenger.",
                    reg.display()
                ));
            }
            None if !done.registry_changes.is_empty() => {
                ui.label("Registry changes to make on the Messenger computer:");
                for change in &done.registry_changes {
                    ui.label(RichText::new(format!("- {change}")).monospace());
                }
            }
            None => {}
        }
        ui.label(
            "Next: trust the server's certificate (the \"Trust the server\" page; not needed \
             when signing in over plain HTTP), then start Messenger and sign in with your \
             e-mail address and an access token (the server's operator creates them).",
        );
        if ui.small_button("OK").clicked() {
            actions.push(Action::Dismiss);
        }
    });
}
