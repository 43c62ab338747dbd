//! UI tests (egui_kittest, headless): clicking through the app by accessible labels, with a
//! tiny model and dataset, and a real worker thread.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

use adapter_studio::data::{Columns, TaskType};
use adapter_studio::training::{RunDir, RunStatus};
use adapter_studio::workspace::{DatasetEntry, Workspace};

use super::{Screen, StudioApp};

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("bert_tiny")
}

/// A workspace with the tiny test model and a small two-class dataset.
fn workspace(dir: &Path) -> Workspace {
    let mut ws = Workspace::open(dir).unwrap();
    ws.add_model(&tiny_model()).unwrap();
    let csv = dir.join("reviews.csv");
    let mut text = String::from("text,label\n");
    for i in 0..100 {
        let (t, l) = if i % 2 == 0 {
            ("a fine film", "pos")
        } else {
            ("a dull film", "neg")
        };
        text.push_str(&format!("{t} number {i},{l}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    ws.state.datasets.push(DatasetEntry {
        name: "reviews".into(),
        train: csv,
        validation: None,
        test: None,
        task: TaskType::Classification,
        columns: Columns::default(),
    });
    ws.save().unwrap();
    ws
}

fn harness(app: StudioApp) -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut StudioApp| app.root_ui(ui), app)
}

/// Steps the UI until `done` holds (the worker runs on its own thread meanwhile).
fn step_until(h: &mut Harness<'static, StudioApp>, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

/// Focuses the text field labelled `label` and types `text` into it.
fn type_into(h: &mut Harness<'static, StudioApp>, label: &str, text: &str) {
    h.get_by_role_and_label(Role::TextInput, label).focus();
    h.step();
    h.get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    h.step();
}

fn status(app: &StudioApp) -> &'static str {
    app.runs.runs.first().map_or("none", |r| r.status())
}

fn steps(app: &StudioApp) -> usize {
    app.runs.runs.first().map_or(0, |r| r.step())
}

#[test]
fn the_wizard_starts_a_run_that_streams_loss_stops_resumes_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    let mut h = harness(app);
    // Long enough that Stop lands mid-run.
    let form = &mut h.state_mut().wizard.form;
    form.epochs = 60;
    form.batch_size = 4;
    form.patience = None;

    h.get_by_label("Train").click();
    h.step();
    h.get_by_label("4 Review").click();
    h.step();
    h.get_by_label("Start training").click();
    h.step();
    assert_eq!(h.state().screen, Screen::Runs);
    step_until(&mut h, "loss events", |a| steps(a) >= 3);
    let run_dir = h.state().runs.runs[0].dir.clone();
    assert!(run_dir.starts_with(dir.path().join("runs")));
    assert_eq!(status(h.state()), "running");

    h.get_by_label("Stop").click();
    step_until(&mut h, "the stop", |a| status(a) == "stopped");
    let stopped_at = steps(h.state());
    assert!(
        RunDir::new(&run_dir).checkpoint().exists(),
        "Stop keeps a checkpoint"
    );

    h.get_by_label("Resume").click();
    step_until(&mut h, "the resumed run to move on", |a| {
        status(a) == "running" && steps(a) > stopped_at + 2
    });
    h.get_by_label("Stop").click();
    step_until(&mut h, "the second stop", |a| status(a) == "stopped");
    let recorded = h.state().runs.runs[0].records.len();
    drop(h);

    // A new app on the same workspace finds the run, its state and its curves.
    let app = StudioApp::new(Workspace::open(dir.path()).unwrap(), || {}).unwrap();
    let mut h = harness(app);
    h.step();
    assert_eq!(h.state().screen, Screen::Runs);
    assert_eq!(status(h.state()), "stopped");
    assert_eq!(h.state().runs.runs[0].records.len(), recorded);
    assert!(h.query_by_label("Resume").is_some());

    // The CLI's resume (the same library call) finishes the run the GUI started.
    let out = run_dir.clone();
    let summary = adapter_studio::training::resume(&out, &mut |_| {}, &Default::default()).unwrap();
    assert_eq!(summary.status, RunStatus::Finished);
}

#[test]
fn a_bad_dataset_shows_its_error_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.csv");
    std::fs::write(&bad, "text,label\nfine,pos\ntoo,many,fields\n").unwrap();
    let app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    let mut h = harness(app);
    h.get_by_label("Datasets").click();
    h.step();
    type_into(&mut h, "Dataset path", &bad.to_string_lossy());
    h.get_by_label("Add file").click();
    step_until(&mut h, "the dataset statistics", |a| {
        a.datasets.selected == Some(1) && a.datasets.stats_ready()
    });
    let shown = h.get_all_by_label_contains("line 3").count();
    assert!(shown > 0, "the error with its line is on screen");
}

#[test]
fn a_folder_that_is_not_a_model_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("not-a-model");
    std::fs::create_dir(&empty).unwrap();
    let app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    let mut h = harness(app);
    h.get_by_label("Models").click();
    h.step();
    type_into(&mut h, "Model path", &empty.to_string_lossy());
    h.get_by_label("Add path").click();
    h.step();
    h.step();
    assert!(h.query_by_label_contains("Not added").is_some());
    assert!(h.query_by_label_contains("config.json").is_some());
    assert_eq!(h.state().ws.state.models.len(), 1, "nothing was added");
}

#[test]
fn the_review_page_shows_the_equivalent_command() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let wizard = super::wizard_ui::Wizard::new(&ws);
    let config = wizard.config(&ws).unwrap();
    let command = config.command_line(Path::new("/tmp/run"));
    assert!(command.starts_with("adapter-studio train"), "{command}");
    for part in ["--method seq_bn", "--name reviews", "--out /tmp/run"] {
        assert!(command.contains(part), "{part} missing from {command}");
    }
}
