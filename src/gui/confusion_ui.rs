//! A classification run's confusion matrix (rows gold, columns predicted; cells shaded by the
//! share of their gold row) and each class's precision, recall, F1 and support, for the
//! evaluation whose checkpoint the run kept.
use adapter_studio::metrics::Confusion;

/// The matrix and the per-class table; `labels` in the run's label order.
pub fn confusion_ui(ui: &mut egui::Ui, labels: &[String], confusion: &Confusion) {
    let name = |i: usize| labels.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
    let strong = ui.visuals().selection.bg_fill;
    let text = ui.visuals().strong_text_color();
    ui.label("Rows: gold label; columns: predicted label.");
    egui::ScrollArea::horizontal()
        .id_salt("confusion_scroll")
        .show(ui, |ui| {
            egui::Grid::new("confusion")
                .spacing([6.0, 3.0])
                .show(ui, |ui| {
                    ui.label("gold \\ predicted");
                    for j in 0..confusion.counts.len() {
                        ui.strong(name(j));
                    }
                    ui.end_row();
                    for (i, row) in confusion.counts.iter().enumerate() {
                        ui.strong(name(i));
                        let total = row.iter().sum::<u64>().max(1) as f32;
                        for &n in row {
                            // Shaded by the share of the gold row (the recall on the diagonal).
                            let share = n as f32 / total;
                            let fill = strong.gamma_multiply(share);
                            egui::Frame::new()
                                .fill(fill)
                                .inner_margin(egui::Margin::symmetric(6, 2))
                                .show(ui, |ui| {
                                    ui.label(egui::RichText::new(n.to_string()).color(text));
                                });
                        }
                        ui.end_row();
                    }
                });
        });
    ui.add_space(4.0);
    egui::Grid::new("per_class_scores")
        .striped(true)
        .spacing([12.0, 3.0])
        .show(ui, |ui| {
            for head in ["class", "precision", "recall", "F1", "support"] {
                ui.strong(head);
            }
            ui.end_row();
            for (i, s) in confusion.per_class().iter().enumerate() {
                ui.label(name(i));
                ui.label(format!("{:.3}", s.precision));
                ui.label(format!("{:.3}", s.recall));
                ui.label(format!("{:.3}", s.f1));
                ui.label(s.support.to_string());
                ui.end_row();
            }
        });
}
