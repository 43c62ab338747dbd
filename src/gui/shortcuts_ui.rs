//! The keyboard shortcuts window (F1, or the sidebar's *Shortcuts*), with the zoom made
//! discoverable: the keys, and buttons that do the same.

/// Every shortcut the app has, besides the screens' (listed from `Screen`).
const KEYS: &[(&str, &str)] = &[
    (
        "Ctrl+Z",
        "Undo the last removal (a model, dataset, preset or adapter)",
    ),
    ("Ctrl+Plus / Ctrl+Minus", "Zoom in / out"),
    (
        "Enter",
        "Search, add or predict from the focused text field",
    ),
    ("F12", "Show the UI's frame time in the status bar"),
    ("F1", "This list"),
];

#[derive(Default)]
pub struct ShortcutsView {
    pub open: bool,
}

impl ShortcutsView {
    /// The window, when open; `screens` are (key, screen) pairs.
    pub fn ui(&mut self, ctx: &egui::Context, screens: &[(String, &str)]) {
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::F1)) {
            self.open = !self.open;
        }
        let mut open = self.open;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts")
                    .striped(true)
                    .spacing([16.0, 4.0])
                    .show(ui, |ui| {
                        for (key, screen) in screens {
                            ui.monospace(key);
                            ui.label(format!("Go to {screen}"));
                            ui.end_row();
                        }
                        for (key, what) in KEYS {
                            ui.monospace(*key);
                            ui.label(*what);
                            ui.end_row();
                        }
                    });
                ui.separator();
                ui.horizontal(|ui| {
                    let zoom = ctx.zoom_factor();
                    ui.label(format!("Zoom {:.0} %", zoom * 100.0));
                    if ui.button("−").on_hover_text("Ctrl+Minus").clicked() {
                        ctx.set_zoom_factor((zoom - 0.1).max(0.5));
                    }
                    if ui.button("+").on_hover_text("Ctrl+Plus").clicked() {
                        ctx.set_zoom_factor((zoom + 0.1).min(3.0));
                    }
                    if ui.button("Reset zoom").clicked() {
                        ctx.set_zoom_factor(1.0);
                    }
                });
            });
        self.open = open;
    }
}
