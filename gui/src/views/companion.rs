//! The Companion page: sign in to the relay, start/stop the agent, see its state, the local
//! ports it may open and live transfers.

use eframe::egui::{self, RichText};

use super::{SUCCESS, problem, size};
use crate::state::{Action, AgentStatus, Secret, UiState};

/// Draws the page.
pub fn page(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    ui.add_space(6.0);
    ui.label(
        "The companion lets friends send you files even when your computer cannot be reached \
         directly: the server relays each transfer to Messenger on this computer.",
    );
    let status = &state.companion.status;
    let editable = !status.is_running() && *status != AgentStatus::Stopping;
    egui::Grid::new("companion-sign-in")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("Server");
            let mut server = state.settings.companion_server.clone();
            if ui
                .add_enabled(editable, egui::TextEdit::singleline(&mut server))
                .changed()
            {
                actions.push(Action::SetCompanionServer(server));
            }
            ui.end_row();
            ui.label("Handle");
            let mut handle = state.settings.companion_handle.clone();
            if ui
                .add_enabled(editable, egui::TextEdit::singleline(&mut handle))
                .changed()
            {
                actions.push(Action::SetCompanionHandle(handle));
            }
            ui.end_row();
            ui.label("Access token");
            let mut token = state.companion.token.0.clone();
            if ui
                .add_enabled(
                    editable,
                    egui::TextEdit::singleline(&mut token).password(true),
                )
                .changed()
            {
                actions.push(Action::SetCompanionToken(Secret(token)));
            }
            ui.end_row();
            ui.label("Certificate");
            match &state.settings.ca_file {
                Some(path) => ui.label(RichText::new(path.display().to_string()).monospace()),
                None => ui.label("get it on the \"Trust the server\" page"),
            };
            ui.end_row();
        });
    let mut remember = state.settings.remember_token;
    if ui
        .checkbox(&mut remember, "Remember the token on this computer")
        .changed()
    {
        actions.push(Action::SetRememberToken(remember));
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(editable, egui::Button::new("Start"))
            .clicked()
        {
            actions.push(Action::StartCompanion);
        }
        if ui
            .add_enabled(status.is_running(), egui::Button::new("Stop"))
            .clicked()
        {
            actions.push(Action::StopCompanion);
        }
    });
    ui.add_space(6.0);
    match status {
        AgentStatus::Off => {
            ui.label("Not running.");
        }
        AgentStatus::Connecting => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Connecting…");
            });
        }
        AgentStatus::Connected { user } => {
            ui.label(RichText::new(format!("Connected as {user}")).color(SUCCESS));
        }
        AgentStatus::Retrying {
            error,
            retry_in_secs,
        } => {
            ui.label(format!(
                "Connection lost ({error}); retrying in {retry_in_secs} s."
            ));
        }
        AgentStatus::Stopping => {
            ui.label("Stopping…");
        }
        AgentStatus::Failed(p) => problem(ui, p),
    }
    let companion = &state.companion;
    if !companion.ports.is_empty() {
        ui.add_space(6.0);
        let ports: Vec<String> = companion.ports.iter().map(u16::to_string).collect();
        ui.label(format!("Local ports it may open: {}", ports.join(", ")));
    }
    if !companion.transfers.is_empty() {
        ui.add_space(6.0);
        ui.label(RichText::new("Transfers").strong());
        for t in companion.transfers.iter().rev() {
            let text = if t.done {
                let how = t
                    .error
                    .as_deref()
                    .map_or("done".to_owned(), |e| format!("failed: {e}"));
                format!("port {}: {} — {how}", t.port, size(t.total()))
            } else {
                format!(
                    "port {}: {} received, {} sent, {}/s",
                    t.port,
                    size(t.to_local),
                    size(t.to_relay),
                    size(t.bytes_per_sec)
                )
            };
            ui.label(text);
        }
    }
}
