//! Choosing a run (Inspect, Playground): shared by the screens that look at a trained run, so
//! that none of them imports another.
use std::path::PathBuf;

use adapter_studio::training::Stage;

use super::runs_ui::RunEntry;

pub fn is_fusion(r: &RunEntry) -> bool {
    r.info
        .as_ref()
        .is_some_and(|i| matches!(i.config.stage, Stage::Fusion { .. }))
}

/// Whether the run has saved a head (its first best checkpoint): it can predict.
pub fn can_predict(r: &RunEntry) -> bool {
    r.has_head
}

/// A labelled drop-down of the runs that `keep` accepts, newest first; picks the newest
/// fusion (else the newest run) when none is chosen. True when the choice changed.
pub fn run_picker_ui(
    ui: &mut egui::Ui,
    label: &str,
    runs: &[RunEntry],
    chosen: &mut Option<PathBuf>,
    keep: impl Fn(&RunEntry) -> bool,
) -> bool {
    let offered: Vec<&RunEntry> = runs.iter().rev().filter(|r| keep(r)).collect();
    if chosen
        .as_ref()
        .is_none_or(|c| !offered.iter().any(|r| &r.dir == c))
    {
        let newest = offered.iter().find(|r| is_fusion(r)).or(offered.first());
        *chosen = newest.map(|r| r.dir.clone());
    }
    let before = chosen.clone();
    let name = |r: &RunEntry| {
        let kind = if is_fusion(r) { "fusion" } else { "adapter" };
        format!("{} ({kind}, {})", r.id, r.status().label())
    };
    let selected = offered
        .iter()
        .find(|r| Some(&r.dir) == chosen.as_ref())
        .map_or("none".to_string(), |r| name(r));
    ui.horizontal(|ui| {
        let l = ui.label(label);
        egui::ComboBox::from_id_salt(label)
            .selected_text(selected)
            .width(360.0)
            .show_ui(ui, |ui| {
                for r in &offered {
                    ui.selectable_value(chosen, Some(r.dir.clone()), name(r));
                }
            })
            .response
            .labelled_by(l.id);
    });
    *chosen != before
}
