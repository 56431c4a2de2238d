//! The certificate page: download the server's CA certificate (or open a copy), check its
//! fingerprint, trust it (Windows) or read how to (elsewhere).

use eframe::egui::{self, RichText};

use super::{SUCCESS, notice, problem, step};
use crate::state::{Action, Load, UiState};
use crate::trust::manual_steps;

/// Draws the page.
pub fn page(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    ui.add_space(6.0);
    ui.label(
        "Messenger signs in over HTTPS. Your Relive server made its own certificate \
         authority, and Windows must trust it once, for the user who runs Messenger. \
         (Not needed with \"Sign in over plain HTTP\".)",
    );
    step(ui, 1, "Get the server's certificate");
    let busy = state.trust.ca.is_loading();
    match state.ca_url() {
        Some(url) => {
            ui.horizontal_wrapped(|ui| {
                if ui
                    .add_enabled(!busy, egui::Button::new("Download it from the server"))
                    .clicked()
                {
                    actions.push(Action::FetchCa);
                }
                ui.label(RichText::new(url).monospace().weak());
            });
        }
        None => {
            ui.label(
                RichText::new(
                    "Type your server's address on the \"Patch Messenger\" page, then download \
                     the certificate from here.",
                )
                .weak(),
            );
        }
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("Or open a copy:");
        if ui
            .add_enabled(
                !state.dialog_open && !busy,
                egui::Button::new("Choose certificate…"),
            )
            .clicked()
        {
            actions.push(Action::BrowseCa);
        }
        ui.label(
            RichText::new("(on the server: relive-server cert export relive-ca.crt)")
                .monospace()
                .weak(),
        );
    });
    if let Some(path) = &state.settings.ca_file {
        ui.label(RichText::new(path.display().to_string()).monospace());
    }
    let ca = match &state.trust.ca {
        Load::Empty => return,
        Load::Loading => {
            ui.spinner();
            return;
        }
        Load::Failed(p) => {
            problem(ui, p);
            return;
        }
        Load::Ready(ca) => ca,
    };
    step(ui, 2, "Check it");
    ui.label(
        "SHA-256 fingerprint: compare it with the one relive-server prints when it starts \
         (\"certificate authority … (SHA-256 …)\"), or that its operator gives you:",
    );
    ui.label(RichText::new(&ca.sha256).monospace().small());
    if ca.count > 1 {
        ui.label(format!(
            "The file holds {} certificates; the first one is used.",
            ca.count
        ));
    }
    step(ui, 3, "Trust it");
    if !state.windows {
        ui.label(
            "This computer is not running Windows. On the Windows computer (or VM) with Messenger:",
        );
        for (i, line) in manual_steps(&ca.path).iter().enumerate() {
            ui.label(format!("{}. {line}", i + 1));
        }
        return;
    }
    let busy = state.trust.import.is_loading();
    if ui
        .add_enabled(!busy, egui::Button::new("Trust this certificate"))
        .on_hover_text("Windows will ask you to confirm")
        .clicked()
    {
        actions.push(Action::TrustCa);
    }
    match &state.trust.import {
        Load::Empty => {
            ui.label(RichText::new("Windows shows its own confirmation: answer \"Yes\".").weak());
        }
        Load::Loading => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Waiting for the Windows confirmation…");
            });
        }
        Load::Ready(()) => notice(ui, SUCCESS, |ui| {
            ui.label(
                RichText::new("Trusted. Messenger can now sign in to your server over HTTPS.")
                    .color(SUCCESS)
                    .strong(),
            );
        }),
        Load::Failed(p) => problem(ui, p),
    }
}
