//! Drawing. Free functions read the [`UiState`] and push [`Action`]s; they never touch the
//! file system or the patcher, so what they show is exactly what the state says.
//!
//! - [`patch`]: the main page, four numbered steps (file, server, review, patch).
//! - [`trust`]: the server's certificate.
//! - [`companion`]: the companion agent.

pub mod companion;
pub mod patch;
pub mod trust;

use eframe::egui::{self, Color32, RichText};

use crate::state::{Action, Problem, Tab, UiState};

/// Blue behind step numbers (white text reads on it in the dark and the light theme).
const STEP: Color32 = Color32::from_rgb(0x1f, 0x6f, 0xb5);

/// Green for "done".
pub(crate) const SUCCESS: Color32 = Color32::from_rgb(0x2e, 0x9d, 0x4a);

/// The whole window: a header with the pages, the page, and a drop hint while a file is
/// dragged over the window.
pub fn root(ui: &mut egui::Ui, state: &UiState, actions: &mut Vec<Action>) {
    egui::Panel::top("header").show(ui, |ui| {
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            ui.heading(RichText::new("Relive").strong());
            ui.label(RichText::new("MSN Messenger, back on your own server").weak());
        });
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            for (tab, label) in [
                (Tab::Patch, "Patch Messenger"),
                (Tab::Trust, "Trust the server"),
                (Tab::Companion, "Companion"),
            ] {
                if ui.selectable_label(state.tab == tab, label).clicked() {
                    actions.push(Action::ShowTab(tab));
                }
            }
        });
        ui.add_space(4.0);
    });
    if state.tab == Tab::Patch {
        // The Patch button and its outcome stay in view however long the page is.
        egui::Panel::bottom("actions").show(ui, |ui| {
            ui.add_space(6.0);
            patch::actions(ui, state, actions);
            ui.add_space(6.0);
        });
    }
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show(ui, |ui| match state.tab {
                Tab::Patch => patch::page(ui, state, actions),
                Tab::Trust => trust::page(ui, state, actions),
                Tab::Companion => companion::page(ui, state, actions),
            });
    });
    let hovering = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
    if hovering {
        drop_overlay(ui);
    }
}

fn drop_overlay(ui: &egui::Ui) {
    let rect = ui.ctx().content_rect();
    let painter = ui.ctx().layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("relive-drop-overlay"),
    ));
    painter.rect_filled(rect, 0.0, Color32::from_black_alpha(180));
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        "Drop to open",
        egui::FontId::proportional(28.0),
        Color32::WHITE,
    );
}

/// A numbered step heading.
pub(crate) fn step(ui: &mut egui::Ui, number: u8, title: &str) {
    ui.add_space(10.0);
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(format!(" {number} "))
                .strong()
                .color(Color32::WHITE)
                .background_color(STEP),
        );
        ui.label(RichText::new(title).strong().size(17.0));
    });
    ui.add_space(4.0);
}

/// A coloured box with a problem: what, details, what to do.
pub(crate) fn problem(ui: &mut egui::Ui, problem: &Problem) {
    let color = ui.visuals().error_fg_color;
    notice(ui, color, |ui| {
        ui.label(RichText::new(&problem.title).strong().color(color));
        if let Some(hint) = &problem.hint {
            ui.label(hint);
        }
        if !problem.detail.is_empty() {
            ui.label(RichText::new(&problem.detail).small().weak());
        }
    });
}

/// A framed box with a coloured edge.
pub(crate) fn notice(ui: &mut egui::Ui, color: Color32, add: impl FnOnce(&mut egui::Ui)) {
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(1.5, color))
        .inner_margin(8.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            add(ui);
        });
}

/// `1.2 MB`, `512 KB`, `300 bytes`.
pub(crate) fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let b = bytes as f64;
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{:.0} KB", b / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}
