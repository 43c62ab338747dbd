//! Welcome: what adapters and AdapterFusion are, in a few lines, and a guided demo — three
//! demo source adapters, the target's own adapter and a fusion of them on the demo target,
//! queued in one click as a study (so the order, the report and the curves come for free).
use std::collections::BTreeMap;

use adapter_studio::study::{StudySpec, TaskSpec};
use adapter_studio::workspace::{DatasetEntry, ModelEntry};

use super::runs_ui::RunEntry;
use super::Screen;

/// The guided demo's tasks: three sources whose adapters fusion combines, and the small target.
pub const DEMO_SOURCES: [&str; 3] = ["sentiment", "topic", "emotions"];
pub const DEMO_TARGET: &str = "review_rating";
/// The study folder the guided demo runs in.
pub const DEMO_STUDY: &str = "guided-demo";

/// What the welcome page asks the app to do.
#[derive(Debug)]
pub enum WelcomeRequest {
    /// Plan and run the guided demo study here.
    GuidedDemo(Box<StudySpec>),
    Open(Screen),
}

/// The guided demo as a study: the demo model, the sources and the target of the workspace's
/// demo datasets, fusion only, one seed, the demo study file's settings.
pub fn demo_spec(models: &[ModelEntry], datasets: &[DatasetEntry]) -> Result<StudySpec, String> {
    let model = models
        .iter()
        .find(|m| m.demo)
        .ok_or("the demo model is not in this workspace (Models screen)")?;
    let task = |name: &str| {
        datasets
            .iter()
            .find(|d| d.name == name)
            .map(TaskSpec::of_dataset)
            .ok_or(format!(
                "the demo dataset `{name}` is not in this workspace"
            ))
    };
    let sources = DEMO_SOURCES
        .iter()
        .map(|n| task(n))
        .collect::<Result<Vec<_>, String>>()?;
    let settings: BTreeMap<String, serde_json::Value> = [
        ("epochs".to_string(), serde_json::json!(10)),
        ("max_length".to_string(), serde_json::json!(64)),
    ]
    .into();
    Ok(StudySpec {
        model: model.path.clone(),
        sources,
        targets: vec![task(DEMO_TARGET)?],
        methods: vec!["fusion".into()],
        seeds: vec![1],
        settings,
        // The demo study's adapter learning rate (see assets/studies/demo.json).
        train_settings: [("lr".to_string(), serde_json::json!(0.001))].into(),
        fuse_settings: BTreeMap::new(),
    })
}

/// Examples the guided demo trains on (10 epochs, at least 100 steps of 32, per run; the
/// fusion counted half again for its extra forward passes).
fn demo_examples(datasets: &[DatasetEntry]) -> Option<f64> {
    let rows = |name: &str| -> Option<f64> {
        let d = datasets.iter().find(|d| d.name == name)?;
        let text = std::fs::read_to_string(d.train.path()).ok()?;
        Some(text.lines().filter(|l| !l.trim().is_empty()).count() as f64)
    };
    let per_run = |n: f64| (10.0 * n).max(3200.0);
    let mut total = 0.0;
    for s in DEMO_SOURCES {
        total += per_run(rows(s)?);
    }
    let target = per_run(rows(DEMO_TARGET)?);
    Some(total + target + 1.5 * target)
}

/// "about 12 minutes here (from earlier runs' speed)" or the measured figure for a small CPU.
fn expected_time(runs: &[RunEntry], examples: Option<f64>) -> String {
    let speeds: Vec<f64> = runs.iter().filter_map(RunEntry::examples_per_sec).collect();
    match (examples, speeds.is_empty()) {
        (Some(n), false) => {
            let eps = speeds.iter().sum::<f64>() / speeds.len() as f64;
            // Evaluations add about a fifth.
            let minutes = (1.2 * n / eps / 60.0).ceil();
            format!("about {minutes:.0} minutes on this machine (at the speed of its earlier runs)")
        }
        _ => "about 12 minutes on a 2-core laptop CPU (measured), a minute or two on a GPU".into(),
    }
}

/// The welcome page's state: the demo's size, counted once (reading the datasets is not work
/// for every frame).
#[derive(Default)]
pub struct WelcomeView {
    demo_examples: Option<Option<f64>>,
}

impl WelcomeView {
    /// The welcome page; returns what the user asked for.
    pub fn welcome_ui(
        &mut self,
        ui: &mut egui::Ui,
        models: &[ModelEntry],
        datasets: &[DatasetEntry],
        runs: &[RunEntry],
    ) -> Option<WelcomeRequest> {
        let examples = *self
            .demo_examples
            .get_or_insert_with(|| demo_examples(datasets));
        welcome_page_ui(ui, models, datasets, runs, examples)
    }
}

fn welcome_page_ui(
    ui: &mut egui::Ui,
    models: &[ModelEntry],
    datasets: &[DatasetEntry],
    runs: &[RunEntry],
    examples: Option<f64>,
) -> Option<WelcomeRequest> {
    let mut request = None;
    // Lines a reader can follow: not the whole width of a large window.
    ui.set_max_width(760.0);
    ui.heading("Welcome to Adapter Studio");
    ui.add_space(6.0);
    ui.label(
        "Adapters are small layers added to every layer of a frozen pretrained model: training \
         one teaches the model a task with a few percent of its parameters, and the base stays \
         shared by every task.",
    );
    ui.add_space(4.0);
    for (stage, text) in [
        (
            "Stage 1",
            "Train one adapter per task you have data for (Train screen): each is a few MB, \
             trained on its own, and can be shared in AdapterHub's format.",
        ),
        (
            "Stage 2",
            "AdapterFusion learns, per layer, how much to listen to each trained adapter for a \
             new target task (Adapters screen, then Compose). The Inspect screen shows those \
             weights; the Playground tries texts.",
        ),
    ] {
        ui.add_space(4.0);
        ui.strong(stage);
        ui.label(text);
    }
    ui.add_space(10.0);
    ui.heading("Guided demo");
    let spec = demo_spec(models, datasets);
    ui.label(format!(
        "Trains adapters for {} and for the target {DEMO_TARGET}, then a fusion of all four on \
         {DEMO_TARGET} (a small rating task the others help with): {}. It runs as the study \
         “{DEMO_STUDY}”, so the Studies screen reports it and Runs shows each curve.",
        DEMO_SOURCES.join(", "),
        expected_time(runs, examples)
    ));
    ui.horizontal(|ui| {
        match &spec {
            Ok(s) => {
                if ui
                    .button("Run the guided demo")
                    .on_hover_text("Queues the five runs on this computer")
                    .clicked()
                {
                    request = Some(WelcomeRequest::GuidedDemo(Box::new(s.clone())));
                }
            }
            Err(e) => {
                ui.add_enabled(false, egui::Button::new("Run the guided demo"));
                ui.colored_label(ui.visuals().warn_fg_color, e);
            }
        }
        if ui.button("Train my own adapter").clicked() {
            request = Some(WelcomeRequest::Open(Screen::Train));
        }
        if ui.button("Look around").clicked() {
            request = Some(WelcomeRequest::Open(Screen::Models));
        }
    });
    request
}
