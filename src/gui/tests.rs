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

/// `rows` lines of a two-class CSV alternating between two (text, label) pairs.
fn two_class_csv(path: &Path, rows: usize, classes: [(&str, &str); 2]) -> PathBuf {
    let mut text = String::from("text,label\n");
    for i in 0..rows {
        let (t, l) = classes[i % 2];
        text.push_str(&format!("{t} number {i},{l}\n"));
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Adds `train` to the workspace as classification dataset `name`.
fn add_dataset(ws: &mut Workspace, name: &str, train: &Path) {
    ws.modify(|state| {
        state.datasets.push(DatasetEntry {
            name: name.into(),
            train: adapter_studio::data::DataSource::Path(train.to_path_buf()),
            validation: None,
            test: None,
            task: TaskType::CLASSIFICATION,
            columns: Columns::default(),
        })
    })
    .unwrap();
}

/// A workspace with the tiny test model and a small two-class dataset.
fn workspace(dir: &Path) -> Workspace {
    let mut ws = Workspace::open(dir).unwrap();
    ws.add_model(&tiny_model()).unwrap();
    let classes = [("a fine film", "pos"), ("a dull film", "neg")];
    let csv = two_class_csv(&dir.join("reviews.csv"), 100, classes);
    add_dataset(&mut ws, "reviews", &csv);
    ws
}

/// A 4-step seq_bn run on the workspace's first dataset, trained by the library into
/// `runs/NAME`; its folder.
fn train_quickly(ws: &Workspace, name: &str) -> PathBuf {
    train_quickly_with(ws, name, adapter_studio::training::Method::SEQ_BN)
}

fn train_quickly_with(
    ws: &Workspace,
    name: &str,
    method: adapter_studio::training::Method,
) -> PathBuf {
    let mut cfg = adapter_studio::training::TrainConfig::adapter(
        tiny_model(),
        ws.state.datasets[0].train.clone(),
        method,
    );
    cfg.max_steps = Some(4);
    cfg.batch_size = 8;
    let out = ws.runs_dir().join(name);
    adapter_studio::training::train(&cfg, &out, &mut |_| {}, &Default::default()).unwrap();
    out
}

fn harness(app: StudioApp) -> Harness<'static, StudioApp> {
    let h = Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut StudioApp| app.root_ui(ui), app);
    super::apply_style(&h.ctx);
    h
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
    app.runs.runs.first().map_or("none", |r| r.status().label())
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
    // Any screen says so in its corner (the window asks for attention when unfocused).
    let name = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        h.query_by_label_contains(&format!("{name} stopped (resumable)"))
            .is_some(),
        "{:?}",
        h.state().notices.texts()
    );
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
    // The log keeps its history once the run ended: both stops and the resume.
    let log = h.state().runs.runs[0].log.join("\n");
    assert_eq!(log.matches("(resumable)").count(), 2, "{log}");
    assert!(
        log.contains(&format!("resumed at step {stopped_at}")),
        "{log}"
    );
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

#[test]
fn an_mlflow_server_given_in_the_wizard_is_in_the_runs_settings_and_its_command() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let mut wizard = super::wizard_ui::Wizard::new(&ws);
    wizard.mlflow = " http://127.0.0.1:5000 ".into();
    wizard.experiment = "reviews".into();
    let config = wizard.config(&ws).unwrap();
    assert_eq!(
        config.tracking.mlflow.as_deref(),
        Some("http://127.0.0.1:5000")
    );
    let command = config.command_line(Path::new("/tmp/run"));
    for part in ["--mlflow http://127.0.0.1:5000", "--experiment reviews"] {
        assert!(command.contains(part), "{part} missing from {command}");
    }
    wizard.mlflow.clear();
    assert!(wizard.config(&ws).unwrap().tracking.mlflow.is_none());
}

/// Clicks the widget labelled `label` and lets the app draw what follows (a change made while
/// drawing shows in the next frame).
fn click(h: &mut Harness<'static, StudioApp>, label: &str) {
    h.get_by_label(label).click();
    h.step();
    h.step();
}

fn fixture_adapter(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bert_tiny_adapters")
        .join(name)
}

/// Steps until the Adapters screen shows the library as it is on disk (read on the side
/// worker).
fn library_read(h: &mut Harness<'static, StudioApp>) {
    h.step();
    step_until(h, "the adapter library to be read", |a| {
        a.library.is_current()
    });
}

fn fusion_entry(app: &StudioApp) -> Option<&super::runs_ui::RunEntry> {
    app.runs
        .runs
        .iter()
        .find(|r| super::run_picker_ui::is_fusion(r))
}

#[test]
fn a_fusion_composed_from_imported_cards_trains_with_a_live_heatmap_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    let mut h = harness(app);
    h.get_by_label("Adapters").click();
    library_read(&mut h);
    assert!(h.query_by_label_contains("No adapters yet").is_some());
    for name in ["a", "b", "c"] {
        h.state_mut().library.import_input.clear();
        type_into(
            &mut h,
            "Adapter folder",
            &fixture_adapter(name).to_string_lossy(),
        );
        h.get_by_label("Import").click();
        h.step();
        step_until(&mut h, "the import", |a| a.library.import_pending.is_none());
        library_read(&mut h);
    }
    assert_eq!(
        h.state().library.items.len(),
        3,
        "three cards; {:?}",
        h.state().library.message
    );
    for name in ["a", "b"] {
        h.get_by_label(&format!("Fuse {name}")).click();
        h.step();
        eprintln!("chosen {:?}", h.state().library.chosen);
    }
    h.step();
    // The third card is dragged into the composer.
    let from = h.get_by_label("c").rect().center();
    let to = h.get_by_label("2. b").rect().center();
    h.hover_at(from);
    h.step();
    h.drag_at(from);
    h.step();
    for i in 1..=6 {
        h.hover_at(from + (to - from) * (i as f32 / 6.0));
        h.step();
    }
    h.drop_at(to);
    h.step();
    h.step();
    assert_eq!(h.state().library.chosen.len(), 3, "dropped into the fusion");
    assert!(h.query_by_label("Remove c from fusion").is_some());
    // Reordered both ways: the first down, then the last up.
    let order = |h: &Harness<'static, StudioApp>| -> Vec<String> {
        h.state()
            .library
            .chosen
            .iter()
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    h.get_all_by_label("Down").next().unwrap().click();
    h.step();
    h.step();
    assert_eq!(order(&h), ["b", "a", "c"]);
    h.get_all_by_label("Up").last().unwrap().click();
    h.step();
    h.step();
    assert_eq!(order(&h), ["b", "c", "a"]);
    // Back to a, b, c: a up twice.
    h.get_all_by_label("Up").last().unwrap().click();
    h.step();
    h.step();
    h.get_all_by_label("Up").next().unwrap().click();
    h.step();
    h.step();
    assert_eq!(order(&h), ["a", "b", "c"]);
    h.step();
    h.get_by_label("Compose fusion…").click();
    h.step();
    assert_eq!(h.state().screen, Screen::Train);
    h.step();
    let form = &mut h.state_mut().wizard.form;
    form.epochs = 40;
    form.batch_size = 8;
    form.eval_every = Some(4);
    form.patience = None;
    h.get_by_label("4 Review").click();
    h.step();
    let app = h.state();
    let command = app
        .wizard
        .config(&app.ws)
        .unwrap()
        .command_line(Path::new("out"));
    assert!(command.starts_with("adapter-studio fuse"), "{command}");
    h.get_by_label("Start training").click();
    h.step();

    // The heatmap follows the evaluations while the fusion trains.
    h.get_by_label("Inspect").click();
    let start = Instant::now();
    step_until(&mut h, "a first evaluation", |a| {
        if start.elapsed() > Duration::from_secs(100) {
            let runs: Vec<String> = a
                .runs
                .runs
                .iter()
                .map(|r| {
                    format!(
                        "{} {:?} {:?} {:?} {:?}",
                        r.id,
                        r.phase,
                        r.status(),
                        r.error,
                        r.log
                    )
                })
                .collect();
            panic!("no evaluation: {runs:#?}");
        }
        fusion_entry(a).is_some_and(|r| !r.attention.is_empty())
    });
    let n = fusion_entry(h.state()).unwrap().attention.len();
    assert!(h
        .query_by_label_contains(&format!("Evaluation {n} of {n}"))
        .is_some());
    step_until(&mut h, "another evaluation", |a| {
        fusion_entry(a).is_some_and(|r| r.attention.len() > n)
    });
    let m = fusion_entry(h.state()).unwrap().attention.len();
    assert!(
        h.query_by_label_contains(&format!("Evaluation {m} of {m}"))
            .is_some(),
        "the map moved on to the newest evaluation"
    );
    // Replay: an earlier evaluation.
    h.state_mut().inspector.eval_index = Some(0);
    h.step();
    assert!(h.query_by_label_contains("Evaluation 1 of").is_some());

    // The map shown, saved as CSV, PNG and SVG: the figures are labelled (title, layers,
    // adapter names, values), not bare cells.
    let saved = dir.path().join("attention");
    type_into(&mut h, "Save to", &saved.to_string_lossy());
    click(&mut h, "Save CSV");
    click(&mut h, "Save PNG");
    click(&mut h, "Save SVG");
    let svg = std::fs::read_to_string(saved.with_extension("svg")).unwrap();
    for name in ["a", "b", "c", "layer 0"] {
        assert!(
            svg.contains(&format!(">\n{name}\n</text>")),
            "{name} not in the SVG"
        );
    }
    let csv = std::fs::read_to_string(saved.with_extension("csv")).unwrap();
    assert!(csv.starts_with("layer,a,b,c\nlayer 0,"), "{csv}");
    let png = std::fs::read(saved.with_extension("png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "a labelled print-size figure, not a few cells"
    );

    // One typed example, token by token.
    type_into(&mut h, "Your own example", "a fine film");
    h.get_by_label("Show map").click();
    step_until(&mut h, "the example's map", |a| {
        a.inspector.example.is_some()
    });
    let example = h.state().inspector.example.clone().unwrap();
    assert_eq!(example.fusion_adapters, ["a", "b", "c"]);
    assert!(example.fusion_tokens.is_some());

    // Stop, then export the fusion run as a bundle from the Runs screen.
    // The sidebar marks a running training with a dot.
    let runs = if h.query_by_label("Runs •").is_some() {
        "Runs •"
    } else {
        "Runs"
    };
    h.get_by_label(runs).click();
    h.step();
    h.step();
    if h.query_by_label("Stop").is_some() {
        h.get_by_label("Stop").click();
    }
    step_until(&mut h, "the run to end", |a| {
        fusion_entry(a).is_some_and(|r| {
            use super::runs_ui::Shown;
            matches!(
                r.status(),
                Shown::Stopped | Shown::Finished | Shown::StoppedEarly
            )
        })
    });
    h.get_by_label("Export…").click();
    // Opened after the click's frame; a new window is measured, invisibly, in its first frame.
    h.step();
    h.step();
    h.step();
    h.get_by_label("Bundle").click();
    h.step();
    // Where the fresh dialog's top is (nothing exported yet, no message).
    let dialog_top = h.get_by_label("Export").rect().top();
    let bundle = dir.path().join("exported-bundle");
    h.state_mut().export.path = bundle.display().to_string();
    h.step();
    click(&mut h, "Export now");
    step_until(&mut h, "the export", |a| a.export.pending.is_none());
    assert!(
        matches!(h.state().export.message, Some(Ok(_))),
        "{:?}",
        h.state().export.message
    );
    let model = adapter_studio::bundle::load(&bundle, tch::Device::Cpu).unwrap();
    assert_eq!(model.adapters.len(), 3);

    // The same folder again asks before replacing it.
    click(&mut h, "AdapterHub folders");
    h.state_mut().export.path = bundle.display().to_string();
    h.step();
    click(&mut h, "Export now");
    assert!(h.query_by_label("Replace").is_some());
    assert!(
        h.query_by_label_contains("Exported ").is_none(),
        "the last export's message gives way to the question"
    );
    h.step();
    click(&mut h, "Replace");
    step_until(&mut h, "the replacing export", |a| {
        a.export.pending.is_none()
    });
    assert!(
        bundle.join("adapter_setup.json").is_file(),
        "{:?}",
        h.state().export.message
    );
    assert!(
        !bundle.join("manifest.json").exists(),
        "replaced as a whole"
    );
    // With its progress and message shown, the dialog has not grown upwards.
    assert_eq!(h.get_by_label("Export").rect().top(), dialog_top);
    h.get_by_label("Close").click();
    h.step();

    // The playground compares the fusion with what else there is.
    h.get_by_label("Playground").click();
    h.step();
    type_into(&mut h, "Text", "a dull film");
    h.get_by_label("Predict").click();
    step_until(&mut h, "the playground", |a| {
        a.playground.pending.is_none() && !a.playground.results.is_empty()
    });
    let (label, result) = &h.state().playground.results[0];
    assert_eq!(label, "fusion");
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn training_keeps_going_while_only_the_logic_pass_runs_as_when_minimised() {
    // eframe calls only `App::logic` while the window is minimised or hidden: a run that
    // emits more events than the worker's channel holds (1024) must still finish.
    let dir = tempfile::tempdir().unwrap();
    let mut app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    let form = &mut app.wizard.form;
    form.epochs = 12; // 90 training examples, batch 1: 1080 steps, 1080+ events
    form.batch_size = 1;
    form.patience = None;
    form.min_steps = None;
    form.save_every = 10_000;
    app.start_wizard_run();
    let start = Instant::now();
    loop {
        app.drain_events();
        if status(&app) == "finished" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the run stalled at step {} ({})",
            steps(&app),
            status(&app)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(steps(&app), 1080);
}

#[test]
fn a_second_window_is_told_the_workspace_is_in_use_and_read_only_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    assert!(first.in_use.is_none());
    let second = StudioApp::new(Workspace::open(dir.path()).unwrap(), || {}).unwrap();
    let mut h = harness(second);
    h.step();
    assert!(h
        .query_by_label_contains("This workspace is open in another window")
        .is_some());
    assert!(h
        .query_by_label_contains(&format!("pid {}", std::process::id()))
        .is_some());
    h.get_by_label("Open read-only").click();
    h.step();
    h.step();
    assert!(h.state().in_use.is_none());
    assert!(
        h.query_by_label("read-only").is_some(),
        "the status bar says so"
    );
    let before = std::fs::read(dir.path().join("workspace.json")).unwrap();
    h.state_mut().start_wizard_run();
    h.step();
    assert!(h
        .state()
        .runs
        .message
        .as_deref()
        .is_some_and(|m| m.contains("read-only")));
    assert!(h
        .state()
        .runs
        .runs
        .iter()
        .all(|r| r.phase == super::runs_ui::Phase::Idle));
    assert_eq!(
        std::fs::read_dir(dir.path().join("runs")).unwrap().count(),
        0,
        "no run was started"
    );
    assert_eq!(
        std::fs::read(dir.path().join("workspace.json")).unwrap(),
        before
    );
    drop(first);
}

#[test]
fn a_run_another_process_trains_shows_as_running_elsewhere_and_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    // A finished run, then made to look like one that a cluster node is training right now.
    let run = RunDir::new(&train_quickly(&ws, "remote"));
    let finished = std::fs::read_to_string(run.run_json()).unwrap();
    std::fs::write(
        run.run_json(),
        finished.replace("\"status\": \"finished\"", "\"status\": \"running\""),
    )
    .unwrap();
    let now = adapter_studio::training::run_dir::unix_secs();
    let holder = serde_json::json!({
        "host": "node-7.cluster", "pid": 4242, "purpose": "training",
        "since_unix_secs": now, "heartbeat_unix_secs": now, "token": "remote-1"
    });
    std::fs::write(run.lock_file(), holder.to_string()).unwrap();

    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Runs;
    h.step();
    assert_eq!(status(h.state()), "running elsewhere");
    assert!(h.query_by_label_contains("node-7.cluster").is_some());
    assert!(
        h.query_by_label("Resume").is_none(),
        "never offered as interrupted"
    );
    assert!(h.query_by_label("Delete").is_none());

    // The other process finishes: the list follows its files.
    std::fs::write(run.run_json(), finished).unwrap();
    std::fs::remove_file(run.lock_file()).unwrap();
    step_until(&mut h, "the run list to follow", |a| {
        status(a) == "finished"
    });
    assert!(h.query_by_label("Delete").is_some());
}

#[test]
fn a_dataset_in_the_hugging_face_cache_is_listed_and_added_with_its_splits_and_label_names() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir
        .path()
        .join("hub/datasets--fake--pairs/snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    // A Parquet split written by `datasets` (ClassLabel `label`: entailment, not_entailment).
    let parquet = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/pairs.parquet");
    for split in ["train", "validation"] {
        std::fs::copy(
            &parquet,
            snapshot.join(format!("{split}-00000-of-00001.parquet")),
        )
        .unwrap();
    }
    let mut app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    app.datasets.cache_roots = Some(vec![(
        adapter_studio::data::hf::CacheKind::Hub,
        dir.path().join("hub"),
    )]);
    let mut h = harness(app);
    h.get_by_label("Datasets").click();
    step_until(&mut h, "the cache scan", |a| a.datasets.cache_scanned());
    assert!(h.query_by_label("fake/pairs [default]").is_some());
    click(&mut h, "Add");
    let added = h.state().ws.state.datasets.last().unwrap().clone();
    assert_eq!(added.name, "fake/pairs");
    assert!(added.train.to_string().ends_with("0123abcd:train"));
    assert!(added
        .validation
        .as_ref()
        .is_some_and(|v| v.to_string().ends_with("0123abcd:validation")));
    step_until(&mut h, "the dataset statistics", |a| {
        a.datasets.selected == Some(1) && a.datasets.stats_ready()
    });
    // The preview and the label counts show ClassLabel names, not ids.
    assert!(h.get_all_by_label("not_entailment").count() > 0);
}

#[test]
fn a_save_to_disk_folder_and_a_tagging_parquet_file_are_added_by_path_with_label_names() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    // A `Dataset.save_to_disk` folder: state.json naming one Arrow shard written by `datasets`.
    let saved = dir.path().join("saved_pairs");
    std::fs::create_dir(&saved).unwrap();
    std::fs::copy(
        corpus.join("pairs.arrow"),
        saved.join("data-00000-of-00001.arrow"),
    )
    .unwrap();
    std::fs::write(
        saved.join("state.json"),
        r#"{"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": null}"#,
    )
    .unwrap();
    let mut app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    app.datasets.cache_roots = Some(Vec::new());
    let mut h = harness(app);
    h.get_by_label("Datasets").click();
    h.step();
    type_into(&mut h, "Dataset path", &saved.to_string_lossy());
    click(&mut h, "Add file");
    step_until(&mut h, "the folder's statistics", |a| {
        a.datasets.selected == Some(1) && a.datasets.stats_ready()
    });
    assert_eq!(h.state().ws.state.datasets[1].name, "saved_pairs");
    assert!(h.get_all_by_label("not_entailment").count() > 0);
    assert!(h.query_by_label_contains("examples").is_some());

    let tags = dir.path().join("tags.parquet");
    std::fs::copy(corpus.join("tags.parquet"), &tags).unwrap();
    h.get_by_role_and_label(Role::TextInput, "Dataset path")
        .focus();
    h.step();
    h.state_mut().datasets.path_input = tags.to_string_lossy().into_owned();
    click(&mut h, "Add file");
    let mut entry = h.state().ws.state.datasets[2].clone();
    let old = entry.clone();
    entry.task = TaskType::TAGGING;
    h.state_mut().ws.replace_dataset(&old, entry).unwrap();
    // The next frame sees the new task and starts its statistics.
    h.step();
    step_until(&mut h, "the tagging statistics", |a| {
        a.datasets.selected == Some(2)
            && a.datasets.stats_ready()
            && a.ws.state.datasets[2].task == TaskType::TAGGING
    });
    assert!(
        h.get_all_by_label("B-PER").count() > 0,
        "tag names in the counts"
    );
}

#[test]
fn electra_albert_and_deberta_folders_are_added_and_described_on_the_models_screen() {
    // Tiny models written by transformers: ELECTRA (embedding_size 16 ≠ hidden 32) with the
    // tiny BERT's tokenizer; ALBERT and DeBERTa-v2 with only a SentencePiece model trained
    // here on a Debian licence text.
    let dir = tempfile::tempdir().unwrap();
    let code = r#"
import shutil, sys, sentencepiece as spm
from transformers import (ElectraConfig, ElectraModel, AlbertConfig, AlbertModel,
                          DebertaV2Config, DebertaV2Model)
d, bert = sys.argv[1], sys.argv[2]
small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=64)
ElectraModel(ElectraConfig(vocab_size=133, embedding_size=16, **small)).save_pretrained(d + "/electra")
for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(bert + "/" + f, d + "/electra/" + f)
train = dict(input="/usr/share/common-licenses/GPL-3", vocab_size=120, model_type="unigram")
AlbertModel(AlbertConfig(vocab_size=120, embedding_size=16, **small)).save_pretrained(d + "/albert")
spm.SentencePieceTrainer.train(model_prefix=d + "/albert/spiece", pad_id=0, unk_id=1, bos_id=-1,
                               eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"], **train)
DebertaV2Model(DebertaV2Config(vocab_size=128, relative_attention=True, position_buckets=8,
                               **small)).save_pretrained(d + "/deberta")
spm.SentencePieceTrainer.train(model_prefix=d + "/deberta/spm", pad_id=0, pad_piece="[PAD]",
                               bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3,
                               unk_piece="[UNK]", **train)
"#;
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = std::process::Command::new(python)
        .args(["-c", code])
        .arg(dir.path())
        .arg(tiny_model())
        .output()
        .expect("the project's .venv exists (scripts/setup.sh --test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    let mut h = harness(app);
    h.get_by_label("Models").click();
    h.step();
    for (i, (folder, says)) in [
        ("electra", "electra · 2 layers · hidden 32"),
        ("albert", "tokenizer: SentencePiece (spiece.model)"),
        ("deberta", "deberta-v2 · 2 layers · hidden 32"),
    ]
    .into_iter()
    .enumerate()
    {
        type_into(
            &mut h,
            "Model path",
            &dir.path().join(folder).to_string_lossy(),
        );
        click(&mut h, "Add path");
        assert_eq!(
            h.state().ws.state.models.len(),
            2 + i,
            "the {folder} folder was added"
        );
        // Described by the side worker, off the UI thread.
        let start = Instant::now();
        while h.query_by_label_contains(says).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the Models screen describes {folder}: {says}"
            );
            h.step();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A second two-class dataset beside the workspace's `reviews`, added as `films`.
fn add_films(ws: &mut Workspace, dir: &Path) {
    let classes = [("a moving story", "good"), ("a tedious story", "bad")];
    let csv = two_class_csv(&dir.join("films.csv"), 60, classes);
    add_dataset(ws, "films", &csv);
}

#[test]
fn a_study_defined_on_the_studies_screen_runs_here_in_stage_order_reports_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = workspace(dir.path());
    add_films(&mut ws, dir.path());
    let app = StudioApp::new(ws, || {}).unwrap();
    let mut h = harness(app);
    h.state_mut().screen = Screen::Studies;
    h.step();
    assert!(h.query_by_label_contains("No study yet").is_some());

    // The form: name, tasks, two seeds, a few steps per run.
    h.state_mut().studies.form.name = "cmp".into();
    h.state_mut().studies.form.sources.insert("reviews".into());
    h.state_mut().studies.form.targets.insert("films".into());
    h.step();
    h.state_mut().studies.form.seeds.clear();
    type_into(&mut h, "Seeds", "1, 2");
    type_into(&mut h, "Max steps", "6");
    // 2 seeds × (2 adapters + head-only + fusion).
    assert!(h.query_by_label_contains("8 runs").is_some());

    // Slurm: the script that would be submitted follows the form.
    h.get_by_label("a Slurm cluster").click();
    h.step();
    type_into(&mut h, "Partition", "gpu");
    assert!(h
        .query_by_label_contains("#SBATCH --partition=gpu")
        .is_some());
    h.get_by_label("this computer").click();
    h.step();

    click(&mut h, "Create and run here");
    let study = dir.path().join("studies").join("cmp");
    assert!(
        h.state().studies.local.is_some(),
        "{:?}",
        h.state().studies.message
    );
    step_until(&mut h, "the study to end here", |a| {
        a.studies.local.is_none()
    });
    // Fusions ran after their adapters: each fusion started after both adapters finished.
    let started = |id: &str| {
        RunDir::new(&study.join("runs").join(id))
            .read_info()
            .unwrap()
            .started_unix_secs
    };
    for seed in [1, 2] {
        let info = RunDir::new(&study.join("runs").join(format!("films-fusion-s{seed}")))
            .read_info()
            .unwrap();
        assert_eq!(info.status, RunStatus::Finished);
        assert!(
            started(&format!("films-fusion-s{seed}"))
                >= started(&format!("reviews-seq_bn-s{seed}"))
        );
    }
    // The report: every cell has both seeds; the best per target is marked.
    step_until(&mut h, "the report", |a| {
        a.studies
            .snapshot
            .as_ref()
            .is_some_and(|(_, s)| s.as_ref().is_ok_and(|s| s.report.iter().all(|r| r.n == 2)))
    });
    let report = h
        .state()
        .studies
        .snapshot
        .as_ref()
        .unwrap()
        .1
        .as_ref()
        .unwrap()
        .report
        .clone();
    assert_eq!(
        report.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["head-only", "seq_bn", "fusion"]
    );
    assert!(h.query_by_label_contains("8 of 8 runs finished").is_some());
    // The best mean per target is marked (ties are all marked).
    assert!(h.query_all_by_label_contains("best").next().is_some());
    // Study runs are on the Runs screen too, named by study.
    assert!(h
        .state()
        .runs
        .runs
        .iter()
        .any(|r| r.id == "cmp/films-fusion-s2"));

    // Exported as Markdown, CSV, PNG and SVG.
    let out = dir.path().join("exports").join("cmp-report");
    type_into(&mut h, "Save report to", &out.to_string_lossy());
    for button in ["Markdown", "CSV", "PNG", "SVG"] {
        click(&mut h, button);
    }
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(md.contains("| films | fusion | accuracy |"), "{md}");
    let csv = std::fs::read_to_string(out.with_extension("csv")).unwrap();
    assert!(csv.lines().count() == 4, "{csv}");
    assert!(std::fs::read(out.with_extension("png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(svg.contains("films") && svg.contains("head-only"), "{svg}");
}

#[test]
fn the_slurm_submission_the_app_runs_is_a_valid_study_run_with_the_form_options() {
    let form = super::studies_ui::SlurmForm {
        partition: "gpu".into(),
        time: "01:00:00".into(),
        gpus_per_task: "1".into(),
        cpus_per_task: String::new(),
        extra: "--mem=8G\n\n--account=nlp\n".into(),
    };
    let args = super::studies_ui::submit_args(
        Path::new("/s/demo/study.json"),
        Path::new("/s/demo"),
        &form,
    )
    .unwrap();
    assert_eq!(
        args[5..],
        [
            "--backend",
            "slurm",
            "--partition=gpu",
            "--time=01:00:00",
            "--gpus-per-task=1",
            "--sbatch-arg=--mem=8G",
            "--sbatch-arg=--account=nlp"
        ]
    );
    crate::cli::check_args(&args).unwrap();
    let bad = super::studies_ui::SlurmForm {
        gpus_per_task: "two".into(),
        ..form
    };
    let e = super::studies_ui::submit_args(Path::new("s"), Path::new("d"), &bad).unwrap_err();
    assert!(e.contains("GPUs per task") && e.contains("two"), "{e}");
}

#[test]
fn a_study_folder_written_elsewhere_is_followed_with_its_runs_states() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = workspace(dir.path());
    add_films(&mut ws, dir.path());
    // A study planned by someone else (the CLI on a cluster's shared file system).
    let elsewhere = dir.path().join("cluster").join("demo");
    let spec = adapter_studio::study::StudySpec {
        model: tiny_model(),
        sources: vec![adapter_studio::study::TaskSpec::of_dataset(
            &ws.state.datasets[0],
        )],
        targets: vec![adapter_studio::study::TaskSpec::of_dataset(
            &ws.state.datasets[1],
        )],
        methods: vec!["seq_bn".into(), "fusion".into()],
        seeds: vec![1],
        settings: Default::default(),
        train_settings: Default::default(),
        fuse_settings: Default::default(),
    };
    adapter_studio::study::StudyDir::new(&elsewhere)
        .prepare(&spec, &elsewhere.join("study.json"))
        .unwrap();
    let app = StudioApp::new(ws, || {}).unwrap();
    let mut h = harness(app);
    h.state_mut().screen = Screen::Studies;
    h.step();
    type_into(
        &mut h,
        "Follow a study folder",
        &elsewhere.to_string_lossy(),
    );
    click(&mut h, "Follow");
    step_until(&mut h, "the followed study's states", |a| {
        a.studies.snapshot.as_ref().is_some_and(|(_, s)| s.is_ok())
    });
    assert!(h.query_by_label_contains("0 of 3 runs finished").is_some());
    assert!(h.query_by_label_contains("films-fusion-s1").is_some());
    assert_eq!(h.state().ws.state.studies, std::slice::from_ref(&elsewhere));
    // Remembered: a restart lists it again.
    let ws = Workspace::open(dir.path()).unwrap();
    assert_eq!(ws.study_dirs(), [elsewhere]);
}

#[test]
fn overlaid_runs_add_to_the_selected_one_keep_their_colours_and_an_early_stop_says_why() {
    use super::runs_ui::Shown;
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let train = |name: &str, early: bool| {
        let mut cfg = adapter_studio::training::TrainConfig::adapter(
            tiny_model(),
            ws.state.datasets[0].train.clone(),
            adapter_studio::training::Method::SEQ_BN,
        );
        cfg.batch_size = 8;
        cfg.eval_every = Some(2);
        if early {
            // Accuracy stops improving at once on this data: patience 1 ends the run.
            cfg.epochs = 50;
            cfg.patience = Some(1);
            cfg.min_steps = None;
            cfg.early_stop_after = 0.0;
            cfg.min_delta = 0.5;
        } else {
            cfg.max_steps = Some(4);
            cfg.patience = None;
        }
        let out = ws.runs_dir().join(name);
        adapter_studio::training::train(&cfg, &out, &mut |_| {}, &Default::default()).unwrap();
    };
    train("first", false);
    train("second", true);
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Runs;
    h.step();
    let runs = &h.state().runs;
    let (first, second) = (&runs.runs[0], &runs.runs[1]);
    assert_ne!(first.colour, second.colour, "each run has its own colour");
    let colours: Vec<usize> = runs.runs.iter().map(|r| r.colour).collect();

    // The early stop is named in the list and, with its best step, on the run's page.
    assert_eq!(second.status(), Shown::StoppedEarly);
    assert!(h
        .query_all_by_label_contains("finished (early stop)")
        .next()
        .is_some());
    let second_dir = second.dir.clone();
    h.state_mut().runs.selected = Some(second_dir.clone());
    h.step();
    assert!(h
        .query_by_label_contains("Ended early: early stopping at step")
        .is_some());
    assert!(h.query_by_label_contains("; best: step").is_some());

    // Ticking the first run overlays it: the selected run stays in the plots.
    let first_dir = h.state().runs.runs[0].dir.clone();
    h.state_mut().runs.runs[0].overlay = true;
    h.step();
    let app = h.state();
    let shown: Vec<&std::path::Path> = app
        .runs
        .runs_shown_in_plots()
        .into_iter()
        .map(|r| r.dir.as_path())
        .collect();
    assert_eq!(shown, [second_dir.as_path(), first_dir.as_path()]);
    // Colours do not move when the selection or the overlay changes.
    h.state_mut().runs.selected = Some(first_dir);
    h.step();
    let after: Vec<usize> = h.state().runs.runs.iter().map(|r| r.colour).collect();
    assert_eq!(after, colours);
    // The run list says what each run is.
    assert_eq!(
        h.query_all_by_label_contains(" · seq_bn · best accuracy")
            .count(),
        2
    );

    // Both runs have the library's default run name: each says which folder it is.
    assert_eq!(h.query_all_by_label_contains("2 runs are named").count(), 2);
    assert!(h
        .query_by_label_contains("this one is folder first")
        .is_some());

    // Deleting the older run moves it to the trash (off the UI thread); Undo puts it back in
    // its place, not at the end.
    let ids = |a: &StudioApp| a.runs.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let before = ids(h.state());
    h.state_mut().runs.selected = Some(h.state().runs.runs[0].dir.clone());
    h.step();
    click(&mut h, "Delete");
    click(&mut h, "Delete run");
    step_until(&mut h, "the move to the trash", |a| {
        a.runs.trash_pending.is_empty()
    });
    assert_eq!(ids(h.state()), before[1..]);
    assert!(dir.path().join(".trash").read_dir().unwrap().count() == 1);
    click(&mut h, "Undo delete");
    assert_eq!(ids(h.state()), before);
}

#[test]
fn deleting_a_run_names_the_fusions_built_on_it_and_can_take_them_along_and_ctrl_z_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    // Fused adapters need names of their own.
    let source = |name: &str| {
        let mut cfg = adapter_studio::training::TrainConfig::adapter(
            tiny_model(),
            ws.state.datasets[0].train.clone(),
            adapter_studio::training::Method::SEQ_BN,
        );
        (cfg.max_steps, cfg.batch_size, cfg.name) = (Some(2), 8, name.replace('-', "_"));
        let out = ws.runs_dir().join(name);
        adapter_studio::training::train(&cfg, &out, &mut |_| {}, &Default::default()).unwrap();
        out
    };
    let (a, b) = (source("source-a"), source("source-b"));
    let mut cfg = adapter_studio::training::TrainConfig::fusion(
        tiny_model(),
        ws.state.datasets[0].train.clone(),
        vec![a.join("adapter"), b.join("adapter")],
    );
    cfg.max_steps = Some(2);
    cfg.batch_size = 8;
    let fusion = ws.runs_dir().join("the-fusion");
    adapter_studio::training::train(&cfg, &fusion, &mut |_| {}, &Default::default()).unwrap();
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Runs;
    h.state_mut().runs.selected = Some(a.clone());
    h.step();
    let ids = |a: &StudioApp| a.runs.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let before = ids(h.state());
    assert_eq!(before.len(), 3);

    click(&mut h, "Delete");
    assert!(h
        .query_by_label_contains("used by 1 fusion: the-fusion")
        .is_some());
    click(&mut h, "Delete it and the 1 fusion");
    step_until(&mut h, "the moves to the trash", |a| {
        a.runs.trash_pending.is_empty()
    });
    assert_eq!(ids(h.state()), ["source-b"]);
    assert!(!fusion.exists() && !a.exists());
    assert!(
        h.query_by_label_contains("Deleted source-a, the-fusion")
            .is_some()
            || h.query_by_label_contains("Deleted the-fusion, source-a")
                .is_some()
    );

    // Ctrl+Z puts both back, in their places.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    assert_eq!(ids(h.state()), before);
    assert!(fusion.join("run.json").is_file() && a.join("adapter").is_dir());

    // A run nothing is built on says nothing of fusions; Keep changes nothing.
    h.state_mut().runs.selected = Some(fusion.clone());
    h.step();
    click(&mut h, "Delete");
    assert!(h.query_by_label_contains("used by").is_none());
    click(&mut h, "Keep");
    assert_eq!(ids(h.state()), before);

    // Deleting the source alone leaves a fusion that says what it lacks when it is tried.
    h.state_mut().runs.selected = Some(a.clone());
    h.step();
    click(&mut h, "Delete");
    click(&mut h, "Delete the run only");
    step_until(&mut h, "the move to the trash", |a| {
        a.runs.trash_pending.is_empty()
    });
    h.state_mut().screen = Screen::Playground;
    h.state_mut().playground.run = Some(fusion.clone());
    h.step();
    type_into(&mut h, "Text", "a fine film");
    click(&mut h, "Predict");
    assert!(h
        .query_by_label_contains("is gone (was its run deleted?)")
        .is_some());
}

#[test]
fn a_single_adapter_is_tried_in_the_playground_and_inspected_against_gold_labels() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let out = train_quickly(&ws, "solo");
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());

    // No fusion anywhere: the playground still takes the adapter.
    h.state_mut().screen = Screen::Playground;
    h.step();
    assert_eq!(h.state().playground.run.as_deref(), Some(out.as_path()));
    type_into(&mut h, "Text", "a fine film");
    click(&mut h, "Predict");
    step_until(&mut h, "the adapter's prediction", |a| {
        a.playground.pending.is_none() && !a.playground.results.is_empty()
    });
    let (label, result) = &h.state().playground.results[0];
    assert_eq!(label, "solo (seq_bn)");
    let p = &result.as_ref().unwrap()[0];
    assert!(["pos", "neg"].contains(&p.label.as_str().unwrap()), "{p:?}");
    let shown = format!("predicts {}", p.label.as_str().unwrap());
    assert!(
        h.query_by_label(&shown).is_some(),
        "the predicted class stands out"
    );

    // Inspect: its validation examples, each prediction with its probability and gold label.
    h.state_mut().screen = Screen::Inspect;
    step_until(&mut h, "the validation examples", |a| {
        a.inspector.examples_pending.is_none() && !a.inspector.examples.is_empty()
    });
    assert!(h.query_by_label_contains("A single adapter").is_some());
    h.get_all_by_label_contains("line ").next().unwrap().click();
    h.step();
    step_until(&mut h, "the example's prediction", |a| {
        a.inspector.example_pending.is_none() && a.inspector.example.is_some()
    });
    assert!(h.query_by_label_contains("(p = ").is_some());
    let verdict = h.query_by_label_contains(": correct").is_some()
        || h.query_by_label_contains(": wrong").is_some();
    assert!(verdict, "the prediction is compared with the gold label");
}

#[test]
fn the_review_page_estimates_the_steps_and_parameters_the_run_then_has() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(StudioApp::new(workspace(dir.path()), || {}).unwrap());
    h.state_mut().wizard.form.max_steps = Some(6);
    h.state_mut().screen = Screen::Train;
    h.step();
    click(&mut h, "4 Review");
    step_until(&mut h, "the estimate", |a| a.wizard.estimate.is_some());
    let estimate = h.state().wizard.estimate.clone().unwrap().unwrap();
    assert_eq!(estimate.total_steps, 6);
    assert!(estimate.trainable_parameters > 0 && estimate.memory_mib > 0.0);
    assert!(h.query_by_label("Trainable parameters").is_some());
    assert!(h.query_by_label_contains("training, ").is_some());
    click(&mut h, "Start training");
    step_until(&mut h, "the run to end", |a| {
        matches!(status(a), "finished" | "finished (early stop)")
    });
    let info = h.state().runs.runs[0].info.clone().unwrap();
    assert_eq!(info.trainable_parameters, estimate.trainable_parameters);
    assert_eq!(info.total_steps, estimate.total_steps);
    assert_eq!(info.data[0].examples, estimate.train_examples);
}

#[test]
fn the_demo_model_is_known_by_its_folder_and_a_removed_model_comes_back_with_undo() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open_with_demo(dir.path()).unwrap();
    assert!(ws.state.models[0].demo);
    let demo = ws.state.models[0].clone();
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Models;
    h.step();
    click(&mut h, "Remove");
    assert!(h.state().ws.state.models.is_empty());
    // Without it the guided demo says what is missing.
    h.state_mut().screen = Screen::Welcome;
    h.step();
    assert!(h
        .query_by_label_contains("the demo model is not in this workspace")
        .is_some());
    // Ctrl+Z on the Models screen puts it back as it was.
    h.state_mut().screen = Screen::Models;
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    assert_eq!(h.state().ws.state.models, std::slice::from_ref(&demo));

    // Removed, then added again by hand through the folder the link points to: still the
    // demo, under its name, and the guided demo can run.
    click(&mut h, "Remove");
    let real = std::fs::canonicalize(&demo.path).unwrap();
    assert_ne!(real, demo.path);
    type_into(&mut h, "Model path", &real.to_string_lossy());
    click(&mut h, "Add path");
    let models = &h.state().ws.state.models;
    assert_eq!(models.len(), 1);
    assert!(models[0].demo);
    assert_eq!(models[0].name, adapter_studio::workspace::DEMO_MODEL_NAME);
    h.state_mut().screen = Screen::Welcome;
    h.step();
    assert!(h
        .query_by_label_contains("the demo model is not in this workspace")
        .is_none());
}

#[test]
fn a_new_workspace_opens_on_the_welcome_page_whose_guided_demo_runs_adapters_then_the_fusion() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = Workspace::open(dir.path()).unwrap();
    ws.add_model(&tiny_model()).unwrap();
    let classes = [("a fine film", "pos"), ("a dull film", "neg")];
    let csv = two_class_csv(&dir.path().join("reviews.csv"), 40, classes);
    // The tiny model stands in for the demo model (whatever its name); one small file for
    // every demo task.
    ws.modify(|s| s.models[0].demo = true).unwrap();
    for name in ["sentiment", "topic", "emotions", "review_rating"] {
        add_dataset(&mut ws, name, &csv);
    }
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.step();
    assert_eq!(h.state().screen, Screen::Welcome);
    assert!(h.query_by_label_contains("Stage 2").is_some());
    assert!(
        h.query_by_label_contains("minutes").is_some(),
        "the expected time"
    );
    // The demo settings (at least 100 steps per run) on the tiny model.
    click(&mut h, "Run the guided demo");
    assert_eq!(h.state().screen, Screen::Studies);
    step_until(&mut h, "the guided demo", |a| a.studies.local.is_none());
    let study = dir.path().join("studies").join("guided-demo");
    let plan = adapter_studio::study::StudyDir::new(&study).plan().unwrap();
    let ids: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "sentiment-seq_bn-s1",
            "topic-seq_bn-s1",
            "emotions-seq_bn-s1",
            "review_rating-seq_bn-s1",
            "review_rating-fusion-s1"
        ]
    );
    let fusion = RunDir::new(&study.join("runs/review_rating-fusion-s1"))
        .read_info()
        .unwrap();
    assert_eq!(fusion.status, RunStatus::Finished);
    drop(h);
    // Shown once: the next start opens where the work is.
    let h = harness(StudioApp::new(Workspace::open(dir.path()).unwrap(), || {}).unwrap());
    assert_ne!(h.state().screen, Screen::Welcome);
}

#[test]
fn long_texts_are_cut_at_a_word_with_an_ellipsis_and_short_ones_kept() {
    assert_eq!(super::shortened("topic_news", 10), "topic_news");
    assert_eq!(super::shortened("sentiment_reviews", 10), "sentiment…");
    assert_eq!(
        super::shortened("a fine film about the sea and its people", 24),
        "a fine film about the…"
    );
}

#[test]
fn a_study_stopped_here_stops_its_queued_runs_and_continues_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = workspace(dir.path());
    add_films(&mut ws, dir.path());
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Studies;
    h.step();
    let form = &mut h.state_mut().studies.form;
    form.name = "long".into();
    form.targets.insert("films".into());
    form.methods = ["head-only", "seq_bn"].map(String::from).into();
    form.seeds = "1".into();
    // Long enough that Stop lands in the first run (and short on a loaded machine).
    form.max_steps = "200".into();
    h.step();
    click(&mut h, "Create and run here");
    let runs = dir.path().join("studies/long/runs");
    step_until(&mut h, "the first run to train", |a| {
        a.runs.active().is_some_and(|r| r.step() >= 3)
    });
    // The second waits on the worker, said as such (it has no step count yet).
    h.state_mut().screen = Screen::Runs;
    h.step();
    assert!(h
        .query_by_label_contains("queued: starts when the worker is free")
        .is_some());
    h.state_mut().screen = Screen::Studies;
    h.step();
    click(&mut h, "Stop");
    assert!(h.state().studies.local.is_none());
    step_until(&mut h, "the worker to be idle", |a| {
        a.runs.active().is_none()
            && a.runs
                .runs
                .iter()
                .all(|r| r.phase == super::runs_ui::Phase::Idle)
    });
    let status = |id: &str| {
        RunDir::new(&runs.join(id))
            .read_info()
            .map(|i| i.status)
            .ok()
    };
    assert_eq!(status("films-head-only-s1"), Some(RunStatus::Stopped));
    assert_eq!(
        status("films-seq_bn-s1"),
        None,
        "the queued run never started"
    );

    // Continue here: the stopped run resumes, the other starts, both finish.
    step_until(&mut h, "the study's state", |a| {
        a.studies.snapshot.as_ref().is_some_and(|(_, s)| {
            s.as_ref()
                .is_ok_and(|s| s.status.iter().any(|r| r.step > 0))
        })
    });
    click(&mut h, "Continue here");
    step_until(&mut h, "the study to end here", |a| {
        a.studies.local.is_none()
    });
    assert_eq!(status("films-head-only-s1"), Some(RunStatus::Finished));
    assert_eq!(status("films-seq_bn-s1"), Some(RunStatus::Finished));
}

#[test]
fn lora_chosen_in_the_wizard_trains_shows_its_rank_and_two_loras_average_but_do_not_fuse() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let other = train_quickly_with(&ws, "other-lora", method("lora"));
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    choose_method(&mut h, method("lora"));
    assert_eq!(h.state().wizard.method, method("lora"));
    assert_eq!(
        h.state().wizard.form.lr,
        3e-3,
        "choosing LoRA sets its learning rate"
    );
    assert!(h.query_by_label_contains("rank-8 update").is_some());
    let form = &mut h.state_mut().wizard.form;
    form.max_steps = Some(6);
    form.batch_size = 8;
    click(&mut h, "4 Review");
    click(&mut h, "Start training");
    let new_run = |a: &StudioApp| {
        a.runs
            .runs
            .iter()
            .find(|r| r.dir != other)
            .map(|r| (r.dir.clone(), r.status().label()))
    };
    step_until(&mut h, "the LoRA run to end", |a| {
        new_run(a).is_some_and(|(_, s)| matches!(s, "finished" | "finished (early stop)"))
    });
    let run = new_run(h.state()).unwrap().0;
    let (_, config) = adapter_studio::hub::read_adapter_config(&run.join("adapter")).unwrap();
    assert_eq!(config.method_name(), "lora");

    // Both LoRA cards show method, rank and parameters: 3 layers × (query, value) × 2 × 8 × 32.
    h.state_mut().library.stale = true;
    h.state_mut().screen = Screen::Adapters;
    library_read(&mut h);
    let cards = h
        .get_all_by_label_contains("lora, rank 8 · 3072 parameters")
        .count();
    assert_eq!(cards, 2);
    for item in h.state().library.items.clone() {
        if item.artifact == adapter_studio::hub::Artifact::Adapter {
            h.get_by_label(&format!("Choose {}", item.name)).click();
            h.step();
        }
    }
    h.step();
    assert_eq!(h.state().library.chosen.len(), 2);
    assert!(h
        .query_by_label_contains("can be averaged instead")
        .is_some());
    click(&mut h, "Compose fusion…");
    assert_eq!(
        h.state().screen,
        Screen::Adapters,
        "fusion is not offered for LoRA adapters"
    );
    // Averaging asks for the new adapter's name and each one's weight first.
    click(&mut h, "Average into one adapter…");
    let form = h.state().library.average.as_ref().unwrap();
    assert!(form.name.starts_with("avg_"), "{}", form.name);
    assert_eq!(form.weights, [1.0, 1.0]);
    assert_eq!(h.query_all_by_label_contains("weight of ").count(), 2);
    let form = h.state_mut().library.average.as_mut().unwrap();
    form.name = "bad.name".into();
    h.step();
    click(&mut h, "Average");
    assert!(
        h.state().library.average.is_some() && h.state().library.import_pending.is_none(),
        "a name with a dot is not averaged into"
    );
    assert!(h.query_by_label_contains("A name without").is_some());
    let form = h.state_mut().library.average.as_mut().unwrap();
    form.name = "blend".into();
    form.weights = vec![1.0, 3.0];
    h.step();
    click(&mut h, "Average");
    assert!(h.state().library.average.is_none());
    step_until(&mut h, "the average", |a| {
        a.library.import_pending.is_none()
    });
    library_read(&mut h);
    let items = &h.state().library.items;
    let avg = items
        .iter()
        .find(|i| i.name == "blend")
        .unwrap_or_else(|| panic!("{:?}", h.state().library.message));
    assert_eq!(avg.method, "lora, rank 8");
    assert!(!avg.fusable);
    assert!(other.join("adapter").is_dir());
}

/// Opens the wizard's method page and picks `method` from its combo box.
fn choose_method(h: &mut Harness<'static, StudioApp>, method: adapter_studio::training::Method) {
    h.state_mut().screen = Screen::Train;
    h.step();
    click(h, "3 Method");
    h.get_by_role_and_label(Role::ComboBox, "Method").click();
    h.step();
    h.step();
    h.get_by_role_and_label(Role::Button, method.as_str())
        .click();
    h.step();
    h.step();
}

/// Every method other than LoRA (its own test above) is chosen in the wizard the same way: it
/// sets its learning rate and help line, trains, and its card shows its method and size —
/// checked to the parameter for prompt tuning (10 × 32 values) and Compacter++ at reduction 4
/// (per layer 32 + 8 + 8 down, 8 + 32 + 32 up, and one shared 4 × 4 × 4 rule).
#[test]
fn every_method_chosen_in_the_wizard_trains_and_shows_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    for (method, help, exact) in [
        (
            method("prompt_tuning"),
            "before the input's embeddings",
            Some("prompt_tuning, 10 prompt tokens · 320 parameters"),
        ),
        (
            method("compacter++"),
            "Compacter after the feed-forward",
            Some("compacter++, reduction 4 · 424 parameters"),
        ),
        (method("compacter"), "Kronecker", None),
        (method("ia3"), "scaling key, value", None),
        (method("dora"), "learned magnitude", None),
        (method("vera"), "random, frozen and shared", None),
        (method("prefix_tuning"), "key/value vectors", None),
        (method("mam"), "mix-and-match", None),
        (method("unipelt"), "gated prefix tuning", None),
        (
            method("double_seq_bn"),
            "after attention and feed-forward",
            None,
        ),
    ] {
        choose_method(&mut h, method);
        assert_eq!(h.state().wizard.method, method);
        assert_eq!(h.state().wizard.form.lr, method.default_lr());
        assert!(h.query_by_label_contains(help).is_some(), "{help}");
        let form = &mut h.state_mut().wizard.form;
        form.max_steps = Some(4);
        form.batch_size = 8;
        if let adapter_studio::training::Stage::Adapter {
            reduction_factor, ..
        } = &mut form.stage
        {
            // Compacter's preset 32 leaves the tiny model's 32-wide layers a bottleneck of 1.
            *reduction_factor = method.is_bottleneck().then_some(4.0);
        }
        let before = h.state().runs.runs.len();
        click(&mut h, "4 Review");
        click(&mut h, "Start training");
        step_until(&mut h, "the run to end", |a| {
            a.runs.runs.len() > before
                && a.runs.runs.iter().all(|r| {
                    matches!(
                        r.status().label(),
                        "finished" | "finished (early stop)" | "failed"
                    )
                })
        });
        let run = h.state().runs.runs.iter().map(|r| r.dir.clone()).find(|d| {
            adapter_studio::hub::read_adapter_config(&d.join("adapter"))
                .is_ok_and(|(_, c)| c.method_name() == method.as_str())
        });
        let run = run.unwrap_or_else(|| panic!("no finished {} run", method.as_str()));
        let (_, config) = adapter_studio::hub::read_adapter_config(&run.join("adapter")).unwrap();
        h.state_mut().library.stale = true;
        h.state_mut().screen = Screen::Adapters;
        library_read(&mut h);
        let card = exact
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}, {} · ", config.method_name(), config.size_label()));
        assert!(
            h.query_by_label_contains(&card).is_some(),
            "{card}: {:?}",
            h.state()
                .library
                .items
                .iter()
                .map(|i| (&i.method, &i.parameters))
                .collect::<Vec<_>>()
        );
    }
}

/// A registered method by its name.
fn method(name: &str) -> adapter_studio::training::Method {
    name.parse().unwrap()
}

#[path = "../../tests/common/fake_hub.rs"]
mod fake_hub;

/// Settings pointing at `hub`, with a Hugging Face cache of their own in `dir`.
fn hub_settings(hub: &fake_hub::FakeHub, dir: &Path) -> adapter_studio::hf_hub::HubSettings {
    adapter_studio::hf_hub::HubSettings {
        endpoint: hub.url.clone(),
        cache: dir.join("hf-home/hub"),
        offline: false,
        token: None,
    }
}

/// A repo folder holding the files of `src` and `extra`.
fn repo_folder(root: &Path, name: &str, src: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    for (file, text) in extra {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

#[test]
fn a_model_and_an_adapter_from_the_hub_are_found_downloaded_and_join_the_workspace_and_library() {
    let dir = tempfile::tempdir().unwrap();
    let repos = tempfile::tempdir().unwrap();
    let model = repo_folder(repos.path(), "model", &tiny_model(), &[]);
    let card = |model_type: &str| {
        format!(
            "---\nlibrary_name: adapter-transformers\ntags:\n- adapters\n- {model_type}\n---\n# a\n"
        )
    };
    let bert_card = card("bert");
    let adapter = repo_folder(
        repos.path(),
        "adapter",
        &fixture_adapter("a"),
        &[("README.md", &bert_card)],
    );
    let roberta_card = card("roberta");
    let other = repo_folder(
        repos.path(),
        "other",
        &fixture_adapter("b"),
        &[("README.md", &roberta_card)],
    );
    let hub = fake_hub::FakeHub::start(
        serde_json::json!({
            "tiny/bert-hub": {"revisions": {"main": model}},
            "tiny/adapter-hub": {"revisions": {"main": adapter}},
            "tiny/roberta-adapter-hub": {"revisions": {"main": other}},
        }),
        serde_json::json!({}),
    );
    let settings = hub_settings(&hub, repos.path());
    let mut app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    app.models.hub.settings = Some(settings.clone());
    app.library.hub.settings = Some(settings.clone());
    let mut h = harness(app);
    h.state_mut().screen = Screen::Models;
    h.step();
    type_into(&mut h, "Hub search", "hub");
    click(&mut h, "Search");
    step_until(&mut h, "the Hub's answer", |a| a.models.hub.is_idle());
    // Both repos match the words; the model tab lists models of any library.
    assert!(h.query_by_label("Download tiny/adapter-hub").is_some());
    click(&mut h, "Download tiny/bert-hub");
    step_until(&mut h, "the model's download", |a| {
        a.ws.state.models.len() == 2
    });
    let added = h.state().ws.state.models[1].path.clone();
    // In huggingface_hub's layout, in the panel's cache.
    let repo = settings.cache.join("models--tiny--bert-hub");
    assert!(
        added.starts_with(repo.join("snapshots")),
        "{}",
        added.display()
    );
    assert!(added.join("config.json").is_file() && repo.join("refs/main").is_file());
    assert!(h
        .query_by_label_contains("Downloaded tiny/bert-hub")
        .is_some());

    // The adapter tab lists AdapterHub adapters only, and a download becomes a card.
    h.state_mut().screen = Screen::Adapters;
    step_until(&mut h, "the library", |a| a.library.is_current());
    click(&mut h, "From the Hub");
    // The section opens over a few frames (egui animates it).
    for _ in 0..10 {
        h.step();
    }
    type_into(&mut h, "Hub search", "hub");
    click(&mut h, "Search");
    step_until(&mut h, "the Hub's answer", |a| a.library.hub.is_idle());
    assert!(h.query_by_label("Download tiny/bert-hub").is_none());
    // Tagged for another base model than the workspace's BERT: hidden unless asked for.
    assert!(h
        .query_by_label("Download tiny/roberta-adapter-hub")
        .is_none());
    assert!(h
        .query_by_label_contains("1 more found for other base models")
        .is_some());
    click(&mut h, "Only adapters tagged for bert models");
    assert!(h
        .query_by_label("Download tiny/roberta-adapter-hub")
        .is_some());
    // The id opens its card and files before anything is downloaded.
    click(&mut h, "tiny/adapter-hub");
    step_until(&mut h, "the repo's details", |a| a.library.hub.is_idle());
    assert!(
        h.query_by_label("# a").is_some(),
        "the card, without its front matter"
    );
    for file in ["adapter_config.json", "README.md"] {
        assert!(h.query_by_label(file).is_some(), "{file} listed");
    }
    assert!(h.query_by_label_contains("A download takes").is_some());
    assert!(!settings.cache.join("models--tiny--adapter-hub").exists());
    let cache = settings.cache.clone();
    h.get_by_label_contains("Download tiny/adapter-hub (")
        .click();
    h.step();
    step_until(&mut h, "the adapter's card", |a| {
        a.library.is_current() && a.library.items.iter().any(|i| i.dir.starts_with(&cache))
    });
}

#[test]
fn a_run_shared_from_the_runs_screen_is_pushed_with_its_card_and_downloads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let run = train_quickly(&ws, "films-seq");
    // No token in the settings: the one typed in the dialog is used.
    let hub = fake_hub::FakeHub::start(serde_json::json!({}), serde_json::json!({}));
    let settings = hub_settings(&hub, dir.path());
    let mut app = StudioApp::new(ws, || {}).unwrap();
    app.runs.share.settings = Some(settings.clone());
    let mut h = harness(app);
    h.state_mut().screen = Screen::Runs;
    h.step();
    click(&mut h, "Share…");
    assert!(h.state().runs.share.is_open());
    // Suggested from the run's name; the owner is the user's to fill in.
    assert_eq!(h.state().runs.share.repo, "your-name/films-seq");
    h.state_mut().runs.share.repo = "tiny/films-seq".into();
    type_into(&mut h, "Token", fake_hub::TOKEN);
    click(&mut h, "Push");
    step_until(&mut h, "the push", |a| !a.runs.share.is_pushing());
    let said = format!("{:?}", h.state().runs.share.message);
    assert!(said.contains("Pushed to tiny/films-seq"), "{said}");
    // What the Hub now serves is the run's adapter and head, and a card.
    let mut settings = settings.clone();
    settings.token = Some(fake_hub::TOKEN.into());
    let repo = adapter_studio::hf_hub::RepoRef::parse("tiny/films-seq").unwrap();
    let got = adapter_studio::hf_hub::fetch(&repo, &settings, &mut |_| true).unwrap();
    let card = std::fs::read_to_string(got.folder.join("README.md")).unwrap();
    assert!(card.contains("adapter-transformers"), "{card}");
    let served = std::fs::read(got.folder.join("adapter_config.json")).unwrap();
    let ours = std::fs::read(run.join("adapter/adapter_config.json")).unwrap();
    assert_eq!(served, ours);
    assert!(got.folder.join("head_config.json").is_file());
    click(&mut h, "Close");
    assert!(!h.state().runs.share.is_open());
    // The run's adapter card offers the same (its head card does not).
    h.state_mut().screen = Screen::Adapters;
    step_until(&mut h, "the library", |a| a.library.is_current());
    click(&mut h, "Share…");
    assert!(h.state().library.share.is_open());
}

/// A finished run folder `runs/NAME` written as a training leaves it (no training: the
/// Compare view reads only `run.json` and `metrics.jsonl`), with learning rate `lr` and one
/// evaluation of accuracy `accuracy`.
fn finished_run(ws: &Workspace, name: &str, lr: f64, accuracy: f64, started: u64) -> PathBuf {
    finished_run_in(ws, &ws.runs_dir(), name, lr, accuracy, started)
}

/// [`finished_run`] in the folder of runs `runs` (a study's).
fn finished_run_in(
    ws: &Workspace,
    runs: &Path,
    name: &str,
    lr: f64,
    accuracy: f64,
    started: u64,
) -> PathBuf {
    use adapter_studio::training::run_dir::{append_jsonl, EvalRecord, Record, RunInfo};
    let dir = runs.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = adapter_studio::training::TrainConfig::adapter(
        tiny_model(),
        ws.state.datasets[0].train.clone(),
        adapter_studio::training::Method::SEQ_BN,
    );
    config.lr = lr;
    let eval = EvalRecord {
        step: 10,
        epoch: 1.0,
        metrics: [
            ("accuracy".to_string(), accuracy),
            ("loss".to_string(), 0.5),
        ]
        .into(),
        examples: 20,
        elapsed_secs: 1.0,
        best: true,
        confusion: None,
    };
    let run = RunDir::new(&dir);
    run.write_info(&RunInfo {
        config,
        status: RunStatus::Finished,
        step: 10,
        total_steps: 10,
        labels: vec!["neg".into(), "pos".into()],
        data: Vec::new(),
        trainable_parameters: 100,
        best: Some(eval.clone()),
        error: None,
        stopped_early: None,
        head_from: None,
        versions: serde_json::Value::Null,
        device: "cpu".into(),
        started_unix_secs: started,
        updated_unix_secs: started,
    })
    .unwrap();
    append_jsonl(&run.metrics(), &Record::Eval(eval)).unwrap();
    dir
}

/// The compared runs' folder names, in the table's order.
fn compared_rows(app: &StudioApp) -> Vec<String> {
    app.runs.compare.table().map_or(Vec::new(), |t| {
        t.rows
            .iter()
            .map(|r| r.dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    })
}

#[test]
fn two_ticked_runs_are_compared_with_only_differing_settings_and_sorted_by_header_clicks() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    finished_run(&ws, "slow", 1e-4, 0.7, 100);
    finished_run(&ws, "fast", 3e-4, 0.9, 200);
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Runs;
    h.step();
    // The newest run is selected; ticking the other one makes two to compare.
    assert_eq!(h.state().runs.runs[0].id, "slow");
    h.state_mut().runs.runs[0].overlay = true;
    h.step();
    click(&mut h, "Compare 2 runs");
    step_until(&mut h, "the comparison", |a| {
        a.runs.compare.table().is_some()
    });
    assert_eq!(compared_rows(h.state()), ["fast", "slow"], "selected first");
    let table = h.state().runs.compare.table().unwrap();
    let differs = |name: &str| table.columns[table.column(name).unwrap()].differs;
    assert!(differs("lr") && !differs("batch_size"));
    // The setting that differs is shown, those the runs share are not; metrics always are.
    assert!(h.query_by_label("lr").is_some());
    assert!(h.query_by_label("batch_size").is_none());
    assert!(h.query_by_label("best/accuracy").is_some());
    assert!(h.query_by_label("final/accuracy").is_some());
    click(&mut h, "Show all settings");
    assert!(h.query_by_label("batch_size").is_some());
    // (The whole table is wider than the window: the metrics are in view again without.)
    click(&mut h, "Show all settings");
    assert!(h.query_by_label("batch_size").is_none());

    // A header click sorts ascending (numbers by value), a second one reverses.
    click(&mut h, "best/accuracy");
    assert_eq!(compared_rows(h.state()), ["slow", "fast"]);
    click(&mut h, "best/accuracy (asc)");
    assert_eq!(compared_rows(h.state()), ["fast", "slow"]);
    assert!(h.query_by_label("best/accuracy (desc)").is_some());

    click(&mut h, "Copy as Markdown");
    assert!(h
        .query_by_label_contains("Copied the table of 2 runs as Markdown")
        .is_some());
    // Back to the run's page, with its plots.
    click(&mut h, "Back to the run");
    assert!(!h.state().runs.compare.open);
}

#[test]
fn the_compare_view_says_how_to_tick_runs_when_fewer_than_two_are_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    finished_run(&ws, "only", 1e-4, 0.7, 100);
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Runs;
    h.step();
    click(&mut h, "Compare runs");
    assert!(h.state().runs.compare.open);
    assert!(h
        .query_by_label_contains("Tick the box beside two or more runs")
        .is_some());
    assert!(!h.state().runs.compare.is_loading());
}

#[test]
fn open_in_tensorboard_without_tensorboard_installed_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    finished_run(&ws, "only", 1e-4, 0.7, 100);
    let mut app = StudioApp::new(ws, || {}).unwrap();
    // Looked for only where it is not.
    let nowhere = tempfile::tempdir().unwrap();
    app.runs.tensorboard.search = vec![nowhere.path().to_path_buf()];
    let mut h = harness(app);
    h.state_mut().screen = Screen::Runs;
    h.step();
    click(&mut h, "Open in TensorBoard");
    step_until(&mut h, "the search for tensorboard", |a| {
        !a.runs.tensorboard.is_starting()
    });
    assert!(h
        .query_by_label_contains("pip install tensorboard")
        .is_some());
}

#[test]
fn compare_this_studys_runs_on_the_studies_screen_opens_the_table_of_its_started_runs() {
    use adapter_studio::study::{StudyDir, StudySpec};
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let spec: StudySpec = serde_json::from_value(serde_json::json!({
        "model": "demo",
        "sources": [{"name": "s1", "train": "/d/s1.csv"}],
        "targets": [{"name": "t", "train": "/d/t.csv"}],
        "methods": ["seq_bn", "head-only"],
        "seeds": [1],
    }))
    .unwrap();
    let study = StudyDir::new(&ws.studies_dir().join("grid"));
    let plan = study.prepare(&spec, Path::new("study.json")).unwrap();
    let ids: Vec<String> = plan.runs.iter().map(|r| r.id.clone()).collect();
    // Two of its runs have run; the others have not started.
    finished_run_in(&ws, &study.runs(), &ids[0], 1e-4, 0.6, 100);
    finished_run_in(&ws, &study.runs(), &ids[1], 1e-3, 0.8, 200);
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Studies;
    h.state_mut().studies.select(Some(study.root.clone()));
    h.step();
    // The study is read on a thread of its own: its button comes with it.
    let start = Instant::now();
    while h.query_by_label("Compare this study's runs").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no Compare button"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    click(&mut h, "Compare this study's runs");
    assert_eq!(h.state().screen, Screen::Runs);
    step_until(&mut h, "the comparison", |a| {
        a.runs.compare.table().is_some()
    });
    assert_eq!(compared_rows(h.state()), [ids[0].as_str(), ids[1].as_str()]);
    assert!(h
        .query_by_label_contains("Compare the runs of study grid")
        .is_some());
    assert!(h.query_by_label("lr").is_some());
}

// ---- Workspace faults, dataset/preset/adapter removal, forms, the inspector's kept step ----

/// Every screen drawn a few frames (a panic in any fails the test).
fn draw_every_screen(h: &mut Harness<'static, StudioApp>) {
    for s in Screen::ALL {
        h.state_mut().screen = s;
        h.step();
        h.step();
    }
}

#[test]
fn a_workspace_folder_removed_or_broken_while_open_is_named_in_an_error_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let ws = workspace(&root);
    let extra = two_class_csv(
        &dir.path().join("extra.csv"),
        10,
        [("good", "pos"), ("bad", "neg")],
    );
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Datasets;
    h.step();

    // The folder goes away: adding a dataset says so, naming the folder, and does not make
    // an empty workspace in its place.
    std::fs::remove_dir_all(&root).unwrap();
    type_into(&mut h, "Dataset path", &extra.to_string_lossy());
    click(&mut h, "Add file");
    let said = format!("the workspace folder {} is gone", root.display());
    assert!(
        h.query_by_label_contains(&said).is_some(),
        "no error naming {root:?}"
    );
    assert!(!root.exists(), "the workspace folder was made again");
    // A training is not started into it either; every screen still draws.
    h.state_mut().screen = Screen::Train;
    h.step();
    click(&mut h, "4 Review");
    click(&mut h, "Start training");
    assert!(!root.exists(), "a run made the workspace folder again");
    assert!(h.query_by_label_contains(&said).is_some());
    draw_every_screen(&mut h);

    // Put back (as the error suggests), the same add lands beside what was saved before.
    std::fs::create_dir_all(&root).unwrap();
    h.state_mut().screen = Screen::Datasets;
    h.step();
    click(&mut h, "Add file");
    assert!(h.query_by_label_contains("Added extra").is_some());
    let saved = Workspace::open(&root).unwrap().state;
    let names: Vec<&str> = saved.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["reviews", "extra"]);
    assert_eq!(saved.models.len(), 1);

    // workspace.json replaced by a folder: the error names it, and the folder is left alone.
    let file = root.join("workspace.json");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let more = two_class_csv(
        &dir.path().join("more.csv"),
        10,
        [("up", "pos"), ("down", "neg")],
    );
    type_into(&mut h, "Dataset path", &more.to_string_lossy());
    click(&mut h, "Add file");
    let said = format!("{}: is a folder, not a file", file.display());
    assert!(
        h.query_by_label_contains(&said).is_some(),
        "no error naming {file:?}"
    );
    assert!(file.is_dir());
    draw_every_screen(&mut h);
}

#[test]
fn a_workspace_that_cannot_be_made_or_read_is_one_error_naming_it_before_any_window() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "a file, not a folder").unwrap();
    let launch = |ws: PathBuf| super::Launch {
        workspace: Some(ws),
        ..Default::default()
    };
    let err = super::open_workspace(&launch(file.join("ws")))
        .err()
        .expect("a workspace under a file")
        .to_string();
    assert!(
        err.contains(&format!(
            "cannot create the workspace folder {}",
            file.join("ws").display()
        )) && err.contains(&format!("{} is a file, not a folder", file.display()))
            && err.contains("--workspace DIR"),
        "{err}"
    );
    // A workspace.json that is a folder is named, not taken for a new, empty workspace.
    let root = dir.path().join("ws");
    std::fs::create_dir_all(root.join("workspace.json")).unwrap();
    let err = super::open_workspace(&launch(root.clone()))
        .err()
        .expect("workspace.json is a folder")
        .to_string();
    assert!(
        err.contains(&root.join("workspace.json").display().to_string()),
        "{err}"
    );
}

/// The names of the workspace's datasets, in order.
fn dataset_names(app: &StudioApp) -> Vec<String> {
    app.ws
        .state
        .datasets
        .iter()
        .map(|d| d.name.clone())
        .collect()
}

#[test]
fn datasets_refuse_a_model_config_and_a_second_add_and_are_renamed_and_removed_with_undo() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let reviews = ws.state.datasets[0].clone();
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Datasets;
    h.step();

    // A model's config.json is not a dataset: refused with the reason, not added.
    let config = tiny_model().join("config.json");
    type_into(&mut h, "Dataset path", &config.to_string_lossy());
    click(&mut h, "Add file");
    assert!(h
        .query_by_label_contains(
            "is a model's config.json (add the model's folder on the Models screen)"
        )
        .is_some());
    assert_eq!(dataset_names(h.state()), ["reviews"]);

    // The same file again, through a link: said, not listed twice.
    let link = dir.path().join("again.csv");
    std::os::unix::fs::symlink(reviews.train.path(), &link).unwrap();
    h.state_mut().datasets.path_input = link.to_string_lossy().into_owned();
    click(&mut h, "Add file");
    assert!(h
        .query_by_label_contains("this data is in the workspace already, as reviews")
        .is_some());
    assert_eq!(dataset_names(h.state()), ["reviews"]);
    // Another file under a taken name gets a name of its own.
    let other = dir.path().join("sub").join("reviews.csv");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    two_class_csv(&other, 10, [("yes", "pos"), ("no", "neg")]);
    h.state_mut().datasets.path_input = other.to_string_lossy().into_owned();
    click(&mut h, "Add file");
    assert_eq!(dataset_names(h.state()), ["reviews", "reviews-2"]);

    // Renamed, then Ctrl+Z: the old name back.
    h.state_mut().datasets.selected = Some(0);
    h.step();
    click(&mut h, "Rename");
    h.get_by_role_and_label(Role::TextInput, "New name").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_role_and_label(Role::TextInput, "New name")
        .type_text("films");
    h.step();
    click(&mut h, "Save name");
    assert_eq!(dataset_names(h.state()), ["films", "reviews-2"]);
    assert!(h
        .query_by_label_contains("Renamed reviews to films")
        .is_some());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    assert_eq!(dataset_names(h.state()), ["reviews", "reviews-2"]);
    assert_eq!(h.state().ws.state.datasets[0], reviews);

    // A taken name is refused with the reason.
    click(&mut h, "Rename");
    h.state_mut().datasets.set_new_name("reviews-2");
    h.step();
    click(&mut h, "Save name");
    assert!(h
        .query_by_label_contains("there is a dataset named reviews-2 already")
        .is_some());
    assert_eq!(dataset_names(h.state()), ["reviews", "reviews-2"]);

    // Removed (the wizard's choice follows), then Undo: back in its place, files untouched.
    h.state_mut().wizard.dataset = Some(1);
    click(&mut h, "Remove");
    assert_eq!(dataset_names(h.state()), ["reviews-2"]);
    assert_eq!(h.state().wizard.dataset, Some(0));
    assert!(reviews.train.path().is_file());
    click(&mut h, "Undo");
    assert_eq!(dataset_names(h.state()), ["reviews", "reviews-2"]);
    assert_eq!(h.state().wizard.dataset, Some(1));
    let saved = Workspace::open(dir.path()).unwrap().state;
    assert_eq!(saved.datasets[0], reviews);
}

#[test]
fn a_saved_preset_is_deleted_from_the_wizard_and_ctrl_z_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(StudioApp::new(workspace(dir.path()), || {}).unwrap());
    h.state_mut().screen = Screen::Train;
    h.step();
    click(&mut h, "3 Method");
    for name in ["first", "second"] {
        h.state_mut().wizard.preset_name = name.into();
        click(&mut h, "Save preset");
    }
    let names = |a: &StudioApp| -> Vec<String> {
        a.ws.state.presets.iter().map(|p| p.name.clone()).collect()
    };
    assert_eq!(names(h.state()), ["first", "second"]);
    h.get_by_role_and_label(Role::ComboBox, "Delete preset")
        .click();
    h.step();
    h.step();
    h.get_by_role_and_label(Role::Button, "first").click();
    h.step();
    h.step();
    assert_eq!(names(h.state()), ["second"]);
    assert!(h.query_by_label_contains("Deleted preset first").is_some());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    assert_eq!(names(h.state()), ["first", "second"]);
    let saved = Workspace::open(dir.path()).unwrap().state;
    assert_eq!(saved.presets.len(), 2);
}

#[test]
fn a_method_change_keeps_a_presets_learning_rate_and_says_which_defaults_it_set() {
    use adapter_studio::training::{Method, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut ws = workspace(dir.path());
    let mut config = TrainConfig::adapter(PathBuf::new(), Default::default(), Method::SEQ_BN);
    config.lr = 1e-3;
    ws.modify(|s| {
        s.presets.push(adapter_studio::workspace::Preset {
            name: "fast".into(),
            config,
        })
    })
    .unwrap();
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());

    // A default learning rate follows the method, and the wizard says so.
    choose_method(&mut h, method("lora"));
    assert_eq!(h.state().wizard.form.lr, 3e-3);
    assert!(h
        .query_by_label_contains("learning rate set to 3e-3, lora's default")
        .is_some());

    // A preset's learning rate is the user's: head-only keeps it.
    h.get_by_role_and_label(Role::ComboBox, "Load preset")
        .click();
    h.step();
    h.step();
    h.get_by_role_and_label(Role::Button, "fast").click();
    h.step();
    h.step();
    assert_eq!(h.state().wizard.method, Method::SEQ_BN);
    assert_eq!(h.state().wizard.form.lr, 1e-3);
    choose_method(&mut h, Method::HEAD_ONLY);
    assert_eq!(h.state().wizard.form.lr, 1e-3);
    assert!(h.query_by_label_contains("learning rate set to").is_none());

    // Back from a fusion to a single adapter: a batch size the user typed stays, the fusion's
    // learning rate gives way to the adapter's default.
    h.state_mut()
        .wizard
        .start_fusion(vec![fixture_adapter("a")]);
    h.state_mut().wizard.form.batch_size = 8;
    h.state_mut().wizard.page = super::wizard_ui::Page::Method;
    h.step();
    click(&mut h, "Train a single adapter instead");
    let form = &h.state().wizard.form;
    assert_eq!((form.batch_size, form.lr), (8, 1e-4));
    assert!(h
        .query_by_label_contains("learning rate set to 1e-4")
        .is_some());
}

#[test]
fn a_finished_fusion_opens_on_its_kept_checkpoint_and_every_map_says_its_step() {
    use adapter_studio::training::run_dir::{append_jsonl, AttentionRecord};
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    // A fusion that kept its best checkpoint at step 4 and evaluated every 4 steps to 24.
    let run_dir = finished_fusion_run(&ws);
    let run = RunDir::new(&run_dir);
    let mut info = run.read_info().unwrap();
    info.step = 24;
    info.best.as_mut().unwrap().step = 4;
    run.write_info(&info).unwrap();
    for step in (4..=24).step_by(4) {
        let w = step as f64 / 100.0;
        let record = AttentionRecord {
            step,
            adapters: vec!["a".into(), "b".into()],
            layers: vec![0, 1],
            mean: vec![vec![0.5 + w, 0.5 - w], vec![0.5, 0.5]],
            by_gold: Default::default(),
            by_predicted: Default::default(),
            entropy: Vec::new(),
            spread: Vec::new(),
        };
        append_jsonl(&run.attention(), &record).unwrap();
    }
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut()
        .request(super::AppRequest::Inspect(run_dir.clone()));
    h.step();
    h.step();
    h.step();
    assert_eq!(h.state().screen, Screen::Inspect);
    assert_eq!(h.state().inspector.eval_index, Some(0));
    assert!(h
        .query_by_label_contains("Evaluation 1 of 6 (step 4, the kept checkpoint)")
        .is_some());
    assert!(h
        .query_by_label_contains("fusion — step 4: all validation examples (the kept checkpoint)")
        .is_some());
    // The saved figure says it too.
    let figure = dir.path().join("kept");
    h.state_mut().inspector.save_path = figure.to_string_lossy().into_owned();
    click(&mut h, "Save SVG");
    let svg = std::fs::read_to_string(figure.with_extension("svg")).unwrap();
    assert!(svg.contains("the kept checkpoint"), "the figure's title");

    // The latest evaluation is labelled as not kept, and examples say which weights they use.
    click(&mut h, "Follow latest");
    assert_eq!(h.state().inspector.eval_index, None);
    assert!(h
        .query_by_label_contains("(step 24, not kept: the kept checkpoint is step 4)")
        .is_some());
    assert!(h
        .query_by_label_contains(
            "Examples are predicted with the kept checkpoint's weights (step 4)"
        )
        .is_some());
}

#[test]
fn copy_command_says_copied() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(StudioApp::new(workspace(dir.path()), || {}).unwrap());
    h.state_mut().screen = Screen::Train;
    h.step();
    click(&mut h, "4 Review");
    assert!(h.query_by_label("Copied").is_none());
    click(&mut h, "Copy command");
    assert!(h.query_by_label("Copied").is_some());
}

#[test]
fn an_imported_adapter_is_removed_to_the_trash_and_undo_puts_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let imported = adapter_studio::library::import(&ws, &fixture_adapter("a")).unwrap();
    let folder = dir.path().join("library").join("a");
    assert!(imported.iter().all(|i| i.dir.starts_with(&folder)));
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Adapters;
    library_read(&mut h);
    let cards = h.state().library.items.len();
    assert!(cards > 0);
    h.get_all_by_label("Remove").next().unwrap().click();
    h.step();
    h.step();
    library_read(&mut h);
    assert!(!folder.exists(), "moved out of the library");
    assert!(h.state().library.items.is_empty());
    assert!(h
        .query_by_label_contains("Removed the imported a (moved to the workspace's .trash)")
        .is_some());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    library_read(&mut h);
    assert!(folder.is_dir());
    assert_eq!(h.state().library.items.len(), cards);
}

/// [`finished_run`] `runs/fusion` as a fusion of the fixture adapters a and b.
fn finished_fusion_run(ws: &Workspace) -> PathBuf {
    let run_dir = finished_run(ws, "fusion", 5e-4, 0.8, 100);
    let run = RunDir::new(&run_dir);
    let mut info = run.read_info().unwrap();
    info.config.stage = adapter_studio::training::Stage::Fusion {
        adapters: vec![fixture_adapter("a"), fixture_adapter("b")],
        fusion_config: Default::default(),
        init: None,
    };
    run.write_info(&info).unwrap();
    run_dir
}

/// [`finished_fusion_run`] with its fusion and head saved (the fixtures' `fusion_ab` and
/// `head_cls`): its parts predict.
fn finished_fusion_run_with_parts(ws: &Workspace) -> PathBuf {
    use adapter_studio::training::run_dir::RunArtifact;
    let run_dir = finished_fusion_run(ws);
    let run = RunDir::new(&run_dir);
    copy_flat_dir(
        &fixture_adapter("fusion_ab"),
        &run.artifact(RunArtifact::Fusion),
    );
    copy_flat_dir(
        &fixture_adapter("head_cls"),
        &run.artifact(RunArtifact::Head),
    );
    run_dir
}

/// Copies the files of the flat folder `from` into `to`.
fn copy_flat_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Clicks *Prune and measure* and waits for the side worker's report (which must be one).
fn prune_and_measure(
    h: &mut Harness<'static, StudioApp>,
) -> Box<adapter_studio::prune::PruneReport> {
    click(h, "Prune and measure");
    step_until(h, "the pruning", |a| a.inspector.prune.pending.is_none());
    let prune = &h.state().inspector.prune;
    assert!(matches!(prune.message, Some(Ok(_))), "{:?}", prune.message);
    prune.report.clone().unwrap()
}

#[test]
fn the_inspector_prunes_a_fusion_previewing_what_goes_and_shows_before_and_after_side_by_side() {
    use adapter_studio::training::run_dir::{append_jsonl, AttentionRecord};
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    // A finished fusion of the fixture adapters a and b, with its fusion and head saved.
    let run_dir = finished_fusion_run_with_parts(&ws);
    let run = RunDir::new(&run_dir);
    let record = AttentionRecord {
        step: 10,
        adapters: vec!["a".into(), "b".into()],
        layers: vec![0, 1, 2],
        mean: vec![vec![0.7, 0.3], vec![0.6, 0.4], vec![0.55, 0.45]],
        by_gold: Default::default(),
        by_predicted: Default::default(),
        entropy: Vec::new(),
        spread: Vec::new(),
    };
    append_jsonl(&run.attention(), &record).unwrap();
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut()
        .request(super::AppRequest::Inspect(run_dir.clone()));
    h.step();
    h.step();
    click(&mut h, "Prune this fusion (AdapterDrop)");
    h.step();
    // The preview reads the map on screen: b never reaches 0.5.
    h.state_mut().inspector.prune.threshold = 0.5;
    h.step();
    assert!(
        h.query_by_label_contains("Keeps a; drops b (on this evaluation).")
            .is_some(),
        "the preview names what goes"
    );
    let out = dir.path().join("pruned");
    h.state_mut().inspector.prune.out = out.display().to_string();
    h.state_mut().inspector.prune.drop_layers = 1;
    h.step();
    let report = prune_and_measure(&mut h);
    // What the run's data says goes; the two lists hold the fusion's adapters.
    let mut all = [report.kept.clone(), report.dropped.clone()].concat();
    all.sort();
    assert_eq!(all, ["a", "b"]);
    assert_eq!(report.dropped_layers, [0]);
    assert_eq!(report.before.examples, 100);
    assert!(out.join("adapter_setup.json").is_file());
    // Before and after, side by side, with the speed-up.
    h.step();
    assert!(h.query_by_label_contains("examples/s").is_some());
    assert!(h.query_by_label_contains("×)").is_some());

    // Retrained briefly: both adapters kept, the lowest layer dropped, three steps on the
    // run's training data before it is measured.
    h.state_mut().inspector.prune.use_threshold = false;
    h.step();
    click(&mut h, "Retrain the fusion briefly");
    h.state_mut().inspector.prune.retrain_steps = 3;
    h.step();
    let retrained = prune_and_measure(&mut h).retrained.unwrap();
    assert_eq!(retrained.steps, 3);
    assert!(retrained.run.join("run.json").is_file());
    h.step();
    assert!(h.query_by_label_contains("Retrained 3 steps").is_some());
}

#[test]
fn a_fusion_run_is_exported_to_onnx_from_the_export_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let run_dir = finished_fusion_run_with_parts(&ws);
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut()
        .request(super::AppRequest::Export(run_dir.clone()));
    h.step();
    h.step();
    h.step();
    // Each format says in one line what it is for.
    assert!(h.query_by_label_contains("For Python:").is_some());
    assert!(h.query_by_label_contains("Both files:").is_some());
    click(&mut h, "Bundle");
    assert!(h.query_by_label_contains("predict --bundle").is_some());
    click(&mut h, "ONNX");
    assert!(h.query_by_label_contains("For ONNX Runtime:").is_some());
    let out = dir.path().join("onnx-export");
    h.state_mut().export.path = out.display().to_string();
    h.step();
    click(&mut h, "Export now");
    step_until(&mut h, "the export", |a| a.export.pending.is_none());
    assert!(
        matches!(h.state().export.message, Some(Ok(_))),
        "{:?}",
        h.state().export.message
    );
    for file in ["model.onnx", "tokenizer.json", "README.md"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("Fuse(a, b)"), "{readme}");
    // *Open folder* hands the export's folder to the file manager; a failure is said.
    let opened = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = opened.clone();
    h.state_mut().open_folder = Box::new(move |dir| {
        seen.lock().unwrap().push(dir.to_path_buf());
        Err(std::io::Error::other("no file manager here"))
    });
    click(&mut h, "Open folder");
    h.step();
    assert_eq!(*opened.lock().unwrap(), std::slice::from_ref(&out));
    assert!(h.query_by_label_contains("no file manager here").is_some());
}

/// The Hugging Face cache cannot be made (HF_HOME is a file) when a download starts, then is
/// emptied while the app runs: each is one message naming what is wrong, no run folder is
/// made for a model that is gone, and every screen still draws.
#[test]
fn a_hugging_face_cache_that_cannot_be_made_or_vanishes_is_named_and_the_app_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let repos = tempfile::tempdir().unwrap();
    let model = repo_folder(repos.path(), "model", &tiny_model(), &[]);
    let hub = fake_hub::FakeHub::start(
        serde_json::json!({"tiny/bert-hub": {"revisions": {"main": model}}}),
        serde_json::json!({}),
    );
    let settings = hub_settings(&hub, dir.path());
    let home = dir.path().join("hf-home");
    std::fs::write(&home, "a file, not a folder").unwrap();
    let ws_dir = dir.path().join("ws");
    std::fs::create_dir_all(&ws_dir).unwrap();
    let mut app = StudioApp::new(workspace(&ws_dir), || {}).unwrap();
    app.models.hub.settings = Some(settings.clone());
    let mut h = harness(app);
    h.state_mut().screen = Screen::Models;
    h.step();
    h.state_mut().models.hub.search_for("bert");
    step_until(&mut h, "the Hub's answer", |a| a.models.hub.is_idle());
    click(&mut h, "Download tiny/bert-hub");
    step_until(&mut h, "the download's end", |a| a.models.hub.is_idle());
    let said = format!(
        "The download of tiny/bert-hub failed: {}: is not a folder",
        home.display()
    );
    assert!(
        h.query_by_label(&said).is_some(),
        "no error naming {home:?}"
    );
    assert_eq!(h.state().ws.state.models.len(), 1);
    draw_every_screen(&mut h);

    // Put right, the same download lands, named by its Hub id.
    std::fs::remove_file(&home).unwrap();
    h.state_mut().screen = Screen::Models;
    h.step();
    click(&mut h, "Download tiny/bert-hub");
    step_until(&mut h, "the model's download", |a| {
        a.ws.state.models.len() == 2
    });
    let added = h.state().ws.state.models[1].clone();
    assert_eq!(added.name, "tiny/bert-hub");

    // The cache is emptied while the app runs: a training on that model is refused before a
    // run folder is made, naming it; the Models screen shows the folder as missing.
    std::fs::remove_dir_all(&home).unwrap();
    h.state_mut().screen = Screen::Train;
    h.state_mut().wizard.model = Some(1);
    h.step();
    click(&mut h, "4 Review");
    click(&mut h, "Start training");
    assert_eq!(h.state().screen, Screen::Train);
    let said = format!(
        "Not started: the model tiny/bert-hub is gone from {}",
        added.path.display()
    );
    assert!(
        h.query_by_label_contains(&said).is_some(),
        "no error naming the model"
    );
    assert!(
        !ws_dir.join("runs").read_dir().unwrap().any(|_| true),
        "a run folder was made"
    );
    draw_every_screen(&mut h);
    h.state_mut().screen = Screen::Models;
    let missing = format!("{}: not found", added.path.join("config.json").display());
    // Shown again, the screen reads its models' files again.
    h.step();
    step_until(&mut h, "the model's files read again", |a| {
        a.model_details.get_read(&added.path).is_some()
    });
    assert!(
        h.query_by_label(&missing).is_some(),
        "no note that the folder is gone: {:?}",
        h.state().model_details.get_read(&added.path)
    );
}

/// A finished classification run shows the confusion matrix of the evaluation it kept, with
/// each class's precision, recall, F1 and support, read from its metrics.jsonl.
#[test]
fn a_classification_run_shows_the_confusion_matrix_of_its_kept_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let out = train_quickly(&ws, "solo");
    let info = RunDir::new(&out).read_info().unwrap();
    let best = info.best.clone().expect("the run evaluated");
    let confusion = best
        .confusion
        .clone()
        .expect("a classification run keeps its matrix");
    let total: u64 = confusion.counts.iter().flatten().sum();
    assert_eq!(total as usize, best.examples);
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Runs;
    h.state_mut().runs.selected = Some(out.clone());
    h.step();
    let header = format!(
        "Confusion matrix and per-class scores (kept evaluation, step {})",
        best.step
    );
    click(&mut h, &header);
    for _ in 0..5 {
        h.step();
    }
    for shown in ["precision", "recall", "F1", "support", "gold \\ predicted"] {
        assert!(h.query_by_label(shown).is_some(), "{shown} not shown");
    }
    // Each class's support is its gold row's count.
    let scores = confusion.per_class();
    for (i, label) in info.labels.iter().enumerate() {
        assert!(
            h.query_all_by_label(label).count() >= 2,
            "{label}: row and column"
        );
        let support: u64 = confusion.counts[i].iter().sum();
        assert_eq!(scores[i].support, support);
    }
    let recall = format!("{:.3}", scores[0].recall);
    assert!(
        h.query_all_by_label(&recall).count() >= 1,
        "{recall} not shown"
    );
}

/// F1 (or the sidebar's button) lists every keyboard shortcut, screens included, with zoom
/// buttons that do what Ctrl+Plus/Minus do; F1 again closes it.
#[test]
fn f1_lists_the_keyboard_shortcuts_and_the_zoom_can_be_changed_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(StudioApp::new(workspace(dir.path()), || {}).unwrap());
    h.step();
    assert!(h.query_by_label("Keyboard shortcuts").is_none());
    h.key_press(egui::Key::F1);
    h.step();
    assert!(h.query_by_label("Keyboard shortcuts").is_some());
    for shown in [
        "Ctrl+Z",
        "Go to Runs",
        "Ctrl+4",
        "F12",
        "Ctrl+Plus / Ctrl+Minus",
    ] {
        assert!(h.query_by_label(shown).is_some(), "{shown} not listed");
    }
    click(&mut h, "+");
    h.step();
    assert!(h.query_by_label("Zoom 110 %").is_some());
    click(&mut h, "Reset zoom");
    h.step();
    assert!(h.query_by_label("Zoom 100 %").is_some());
    h.key_press(egui::Key::F1);
    h.step();
    assert!(h.query_by_label("Keyboard shortcuts").is_none());
    click(&mut h, "Shortcuts (F1)");
    h.step();
    assert!(h.query_by_label("Keyboard shortcuts").is_some());
}

/// The wizard's method page picks the device (auto, the CPU, or each CUDA device libtorch
/// sees); the choice reaches the run's command line.
#[test]
fn the_wizard_picks_the_device_and_the_command_line_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(StudioApp::new(workspace(dir.path()), || {}).unwrap());
    h.state_mut().screen = Screen::Train;
    h.step();
    click(&mut h, "3 Method");
    assert_eq!(
        h.state().wizard.form.device,
        adapter_studio::device::DeviceChoice::Auto
    );
    let cudas = h.state().wizard.cuda_devices;
    assert_eq!(
        h.query_all_by_label_contains("cuda:").count(),
        cudas,
        "one choice per visible CUDA device"
    );
    click(&mut h, "cpu");
    assert_eq!(
        h.state().wizard.form.device,
        adapter_studio::device::DeviceChoice::Cpu
    );
    click(&mut h, "4 Review");
    let app = h.state();
    let command = app
        .wizard
        .config(&app.ws)
        .unwrap()
        .command_line(Path::new("out"));
    assert!(command.contains("--device cpu"), "{command}");
}

/// The library's filter keeps the cards whose name, kind, method, task or model hold every
/// word typed (any case), and says how many of how many are shown.
#[test]
fn the_adapter_library_is_filtered_by_words_of_name_method_or_task() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    train_quickly(&ws, "alpha");
    train_quickly_with(&ws, "beta", method("lora"));
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Adapters;
    library_read(&mut h);
    let all = h.state().library.items.len();
    assert!(all >= 4, "two adapters and two heads: {all}");
    assert!(h.query_by_label(&format!("{all} of {all} shown")).is_some());
    type_into(&mut h, "Filter", "LoRA adapter");
    let shown: Vec<&str> = h
        .state()
        .library
        .items
        .iter()
        .filter(|i| super::adapters_ui::matches_filter(i, "LoRA adapter"))
        .map(|i| i.dir.to_str().unwrap())
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].contains("beta"), "{shown:?}");
    assert!(h.query_by_label(&format!("1 of {all} shown")).is_some());
}

/// WCAG 2's contrast ratio of two sRGB colours.
fn contrast(a: egui::Color32, b: egui::Color32) -> f64 {
    let luminance = |c: egui::Color32| {
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c.r()) + 0.7152 * lin(c.g()) + 0.0722 * lin(c.b())
    };
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// Help text and hints reach WCAG's 4.5:1 on the panels in both themes, and the status bar
/// switches between the system's theme, light and dark.
#[test]
fn weak_text_has_4_5_to_1_contrast_in_both_themes_and_the_theme_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(StudioApp::new(workspace(dir.path()), || {}).unwrap());
    h.step();
    for theme in [egui::Theme::Dark, egui::Theme::Light] {
        let v = &h.ctx.style_of(theme).visuals;
        let ratio = contrast(v.weak_text_color(), v.panel_fill);
        assert!(ratio >= 4.5, "{theme:?}: weak text {ratio:.2}:1");
        let ratio = contrast(v.text_color(), v.panel_fill);
        assert!(ratio >= 4.5, "{theme:?}: text {ratio:.2}:1");
    }
    click(&mut h, "Light");
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
    click(&mut h, "Dark");
    assert_eq!(h.ctx.theme(), egui::Theme::Dark);
    click(&mut h, "System");
    assert_eq!(
        h.ctx.options(|o| o.theme_preference),
        egui::ThemePreference::System
    );
}

/// A native file dialog runs on a thread of its own: while it is open the window keeps
/// drawing frames (the blocking dialog froze them), and its answer lands in a later frame.
#[test]
fn a_file_dialog_leaves_the_window_drawing_and_its_answer_lands_in_a_later_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = StudioApp::new(workspace(dir.path()), || {}).unwrap();
    // The user takes a moment, then picks the RoBERTa fixture.
    app.models.picker.show = |_| {
        std::thread::sleep(Duration::from_millis(1500));
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join("fixtures")
                .join("roberta_tiny"),
        )
    };
    let mut h = harness(app);
    h.state_mut().screen = Screen::Models;
    h.step();
    click(&mut h, "Add model folder…");
    let opened = Instant::now();
    // Frames go on while the dialog is open: none waits for it.
    for _ in 0..5 {
        let frame = Instant::now();
        h.step();
        assert!(
            frame.elapsed() < Duration::from_millis(500),
            "a frame waited"
        );
    }
    if opened.elapsed() < Duration::from_millis(1400) {
        assert_eq!(h.state().ws.state.models.len(), 1, "no answer yet");
    }
    step_until(&mut h, "the dialog's answer", |a| {
        a.ws.state.models.len() == 2
    });
    assert!(h.state().ws.state.models[1].path.ends_with("roberta_tiny"));
}

/// At 900×600 every screen fits the window's width: no widget reaches past its right edge
/// (scroll areas take the height), every screen of a workspace with a finished fusion run.
#[test]
fn every_screen_fits_a_900_by_600_window() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let run = finished_fusion_run_with_parts(&ws);
    let app = StudioApp::new(ws, || {}).unwrap();
    let mut h = Harness::builder()
        .with_size([900.0, 600.0])
        .build_ui_state(|ui, app: &mut StudioApp| app.root_ui(ui), app);
    super::apply_style(&h.ctx);
    h.state_mut().runs.selected = Some(run.clone());
    h.state_mut()
        .request(super::AppRequest::Inspect(run.clone()));
    let mut clipped = Vec::new();
    for s in Screen::ALL {
        h.state_mut().screen = s;
        for _ in 0..4 {
            h.step();
            std::thread::sleep(Duration::from_millis(20));
        }
        for node in h.query_all(egui_kittest::kittest::By::new()) {
            use egui_kittest::kittest::NodeT;
            let ak = node.accesskit_node();
            // The window's root and containers without bounds of their own.
            let Some(b) = ak.bounding_box() else {
                continue;
            };
            let r = egui::Rect::from_min_max(
                egui::pos2(b.x0 as f32, b.y0 as f32),
                egui::pos2(b.x1 as f32, b.y1 as f32),
            );
            if r.width() > 0.0 && r.max.x > 900.5 {
                let label = ak.label().unwrap_or_default();
                clipped.push(format!("{s:?}: {:?} `{label}` {r:?}", ak.role()));
            }
        }
    }
    assert!(clipped.is_empty(), "{}", clipped.join("\n"));
}

/// The Studies form offers every registered method (LoRA and the rest, as the wizard), says
/// "plus one adapter per source" only with fusion ticked, and the Slurm preview lists the
/// stage-1 runs as planned (an array of that many tasks).
#[test]
fn the_study_form_offers_every_method_and_previews_the_planned_slurm_array() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = workspace(dir.path());
    add_films(&mut ws, dir.path());
    let mut h = harness(StudioApp::new(ws, || {}).unwrap());
    h.state_mut().screen = Screen::Studies;
    h.step();
    for m in adapter_studio::training::Method::all() {
        assert!(
            h.query_by_label(m.as_str()).is_some(),
            "{} not offered",
            m.as_str()
        );
    }
    let form = &mut h.state_mut().studies.form;
    form.name = "grid".into();
    form.targets.insert("films".into());
    form.methods = ["head-only", "lora"].map(String::from).into();
    form.seeds = "1".into();
    h.step();
    assert!(h
        .query_by_label_contains("2 runs (1 targets × 2 methods × 1 seeds)")
        .is_some());
    assert!(h
        .query_by_label_contains("plus one adapter per source")
        .is_none());
    h.get_by_label("a Slurm cluster").click();
    h.step();
    assert!(h.query_by_label_contains("#SBATCH --array=0-1").is_some());
    assert!(h.query_by_label_contains("films-lora-s1").is_some());
    // With fusion the sources' adapters join stage 1, and the line says so.
    let form = &mut h.state_mut().studies.form;
    form.sources.insert("reviews".into());
    form.methods.insert("fusion".into());
    h.step();
    assert!(h
        .query_by_label_contains("plus one adapter per source")
        .is_some());
    // Stage 1: reviews-seq_bn, films-seq_bn, films-head-only, films-lora.
    assert!(h.query_by_label_contains("#SBATCH --array=0-3").is_some());
}
