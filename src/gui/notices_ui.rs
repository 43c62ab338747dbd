//! Short notices in the window's lower right corner — a run finished, stopped or failed —
//! that fade after a while or are closed; the window asks for the user's attention when it
//! is not focused.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a notice stays.
const SHOWN: Duration = Duration::from_secs(10);
/// At most this many at once (the oldest goes).
const MOST: usize = 4;

struct Notice {
    text: String,
    error: bool,
    since: Instant,
}

#[derive(Default)]
pub struct Notices {
    items: VecDeque<Notice>,
    /// A new notice arrived since the last frame: ask for attention if unfocused.
    fresh: bool,
}

impl Notices {
    pub fn push(&mut self, text: String, error: bool) {
        if self.items.len() == MOST {
            self.items.pop_front();
        }
        self.items.push_back(Notice {
            text,
            error,
            since: Instant::now(),
        });
        self.fresh = true;
    }

    /// The notices shown now.
    #[cfg(test)]
    pub fn texts(&self) -> Vec<&str> {
        self.items.iter().map(|n| n.text.as_str()).collect()
    }

    /// Draws the notices over the screen (above the status bar).
    pub fn ui(&mut self, ctx: &egui::Context) {
        self.items.retain(|n| n.since.elapsed() < SHOWN);
        if std::mem::take(&mut self.fresh) && !ctx.input(|i| i.viewport().focused.unwrap_or(true)) {
            ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                egui::UserAttentionType::Informational,
            ));
        }
        if self.items.is_empty() {
            return;
        }
        // Fades need frames even without input.
        ctx.request_repaint_after(Duration::from_millis(500));
        let mut close = None;
        egui::Area::new(egui::Id::unique("notices"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                for (i, n) in self.items.iter().enumerate() {
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.set_max_width(360.0);
                        ui.horizontal(|ui| {
                            let text = egui::RichText::new(&n.text);
                            match n.error {
                                true => ui.colored_label(ui.visuals().error_fg_color, text),
                                false => ui.label(text),
                            };
                            if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                                close = Some(i);
                            }
                        });
                    });
                }
            });
        if let Some(i) = close {
            self.items.remove(i);
        }
    }
}
