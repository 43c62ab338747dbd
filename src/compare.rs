//! Comparing runs: one row per run folder with its hyper-parameters (flattened from `run.json`'s
//! settings by [`crate::tracking::hparams`], the names TensorBoard's HParams show) and its best,
//! final and (in a study) test metrics. Columns whose values differ between the runs are
//! marked, so that the table can show only what changed. The app's Compare view and the CLI's
//! `compare` build the same [`Comparison`].
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::study::StudyDir;
use crate::tracking::{hparams, HParam};
use crate::training::run_dir::{read_jsonl, EvalRecord, Record, RunDir, RunInfo, RunStatus};
use crate::training::Stage;

/// One value of the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Text(String),
    /// The run has no such setting or metric.
    Missing,
}

impl Cell {
    /// The value in full (CSV): numbers as Rust writes them shortest (`0.0001`, `8`).
    pub fn text(&self) -> String {
        match self {
            Cell::Number(x) => x.to_string(),
            Cell::Text(s) => s.clone(),
            Cell::Missing => String::new(),
        }
    }

    /// The value as a table shows it: integers whole, other numbers to 4 decimals (trailing
    /// zeros cut), very small ones (learning rates) in scientific notation.
    pub fn short(&self) -> String {
        match self {
            Cell::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
            Cell::Number(x) if x.abs() < 1e-3 => format!("{x:e}"),
            Cell::Number(x) => {
                let s = format!("{x:.4}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            Cell::Text(s) => s.clone(),
            Cell::Missing => "–".into(),
        }
    }

    fn same(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Number(a), Cell::Number(b)) => a == b || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        }
    }

    /// Numbers before text; numbers by value, text lexically.
    fn order(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Number(a), Cell::Number(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Number(_), _) => Ordering::Less,
            (_, Cell::Number(_)) => Ordering::Greater,
            _ => Ordering::Equal,
        }
    }
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// What the run is: its name in lists, status, method, steps (always shown).
    Run,
    /// A setting of `run.json` (shown when it differs between the runs, or with all columns).
    HParam,
    /// `best/…`, `final/…`, `test/…` (always shown).
    Metric,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// Not every run has the same value here.
    pub differs: bool,
}

/// One run's values, in the order of [`Comparison::columns`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub dir: PathBuf,
    pub cells: Vec<Cell>,
}

/// A run folder left out of the comparison, and why (its error names the file).
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub dir: PathBuf,
    pub reason: String,
}

/// The runs side by side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// Folders that could not be read (the others are compared).
    pub skipped: Vec<Skipped>,
}

/// What a run folder holds for the table.
struct RunValues {
    dir: PathBuf,
    info: RunInfo,
    /// The last evaluation of `metrics.jsonl`.
    last_eval: Option<EvalRecord>,
    /// A study run's test-set metrics (`STUDY/test/ID.json`).
    test: Option<Metrics>,
}

impl RunValues {
    fn read(dir: &Path) -> Result<RunValues> {
        let run = RunDir::new(dir);
        let info = run.read_info()?;
        let records: Vec<Record> = read_jsonl(&run.metrics())?;
        let last_eval = records.into_iter().rev().find_map(|r| match r {
            Record::Eval(e) => Some(e),
            Record::Train(_) => None,
        });
        let test = study_of(dir).and_then(|(study, id)| study.test_metrics(&id));
        Ok(RunValues {
            dir: dir.to_path_buf(),
            info,
            last_eval,
            test,
        })
    }

    /// As the app's run list says it: an unfinished run nobody holds was interrupted.
    fn status(&self) -> String {
        let held = || {
            matches!(
                crate::lock::state(&RunDir::new(&self.dir).lock_file()),
                crate::lock::State::Held(_)
            )
        };
        match self.info.status {
            RunStatus::Finished if self.info.stopped_early.is_some() => "finished (early stop)",
            RunStatus::Finished => "finished",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Running if held() => "running",
            RunStatus::Running => "interrupted",
        }
        .into()
    }

    fn method(&self) -> String {
        match &self.info.config.stage {
            Stage::Adapter { method, .. } => method.as_str().into(),
            Stage::Fusion { .. } => "fusion".into(),
        }
    }
}

/// The study a run folder belongs to (`STUDY/runs/ID`), and the run's id there.
fn study_of(dir: &Path) -> Option<(StudyDir, String)> {
    let runs = dir.parent()?;
    let root = runs.parent()?;
    if runs.file_name()? != "runs" || !root.join("plan.json").is_file() {
        return None;
    }
    let id = dir.file_name()?.to_string_lossy().into_owned();
    Some((StudyDir::new(root), id))
}

/// The run folders of a study (those its runs have written so far), in plan order.
pub fn study_runs(study: &Path) -> Result<Vec<PathBuf>> {
    let dir = StudyDir::new(study);
    let plan = dir.plan()?;
    Ok(plan
        .runs
        .iter()
        .filter(|r| dir.has_run(&r.id))
        .map(|r| dir.run(&r.id))
        .collect())
}

/// The names of the always-shown columns that say what a run is.
const RUN_COLUMNS: [&str; 4] = ["run", "status", "method", "steps"];

impl Comparison {
    /// Reads each run folder (its `run.json` and `metrics.jsonl`). A folder that cannot be read
    /// is listed in `skipped` with its error; if none can be, the first error is returned.
    pub fn load(dirs: &[PathBuf]) -> Result<Comparison> {
        if dirs.is_empty() {
            return Err(Error::Invalid("no runs to compare".into()));
        }
        let mut runs = Vec::new();
        let mut skipped = Vec::new();
        let mut first_error = None;
        let mut seen = std::collections::HashSet::new();
        for dir in dirs {
            if !seen.insert(dir.clone()) {
                continue;
            }
            match RunValues::read(dir) {
                Ok(r) => runs.push(r),
                Err(e) => {
                    skipped.push(Skipped {
                        dir: dir.clone(),
                        reason: e.to_string(),
                    });
                    first_error.get_or_insert(e);
                }
            }
        }
        if runs.is_empty() {
            return Err(first_error.unwrap_or_else(|| Error::Invalid("no runs to compare".into())));
        }
        let mut table = Comparison::of(&runs);
        table.skipped = skipped;
        Ok(table)
    }

    fn of(runs: &[RunValues]) -> Comparison {
        let mut columns: Vec<Column> = Vec::new();
        let mut rows: Vec<Row> = runs
            .iter()
            .map(|r| Row {
                dir: r.dir.clone(),
                cells: Vec::new(),
            })
            .collect();
        let mut add = |name: String, kind: ColumnKind, values: Vec<Cell>| {
            columns.push(Column {
                name,
                kind,
                differs: false,
            });
            for (row, v) in rows.iter_mut().zip(values) {
                row.cells.push(v);
            }
        };
        for name in RUN_COLUMNS {
            let values = runs
                .iter()
                .map(|r| match name {
                    "run" => Cell::Text(crate::workspace::run_id(&r.dir)),
                    "status" => Cell::Text(r.status()),
                    "method" => Cell::Text(r.method()),
                    _ => Cell::Number(r.info.step as f64),
                })
                .collect();
            add(name.into(), ColumnKind::Run, values);
        }

        // Hyper-parameters: every name any run has, in the order of its settings.
        let params: Vec<Vec<(String, HParam)>> =
            runs.iter().map(|r| hparams(&r.info.config)).collect();
        let mut names: Vec<&str> = Vec::new();
        for p in &params {
            for (n, _) in p {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
        for name in names {
            let values = params
                .iter()
                .map(
                    |p| match p.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
                        Some(HParam::Number(x)) => Cell::Number(*x),
                        Some(HParam::Text(s)) => Cell::Text(s.clone()),
                        Some(HParam::Bool(b)) => Cell::Text(b.to_string()),
                        None => Cell::Missing,
                    },
                )
                .collect();
            add(name.to_string(), ColumnKind::HParam, values);
        }

        // Metrics: the best evaluation (the kept checkpoint's), the last one, the test set's.
        let best: Vec<Option<&Metrics>> = runs
            .iter()
            .map(|r| r.info.best.as_ref().map(|b| &b.metrics))
            .collect();
        let best_step = runs
            .iter()
            .map(|r| {
                r.info
                    .best
                    .as_ref()
                    .map_or(Cell::Missing, |b| Cell::Number(b.step as f64))
            })
            .collect::<Vec<_>>();
        if best_step.iter().any(|c| *c != Cell::Missing) {
            add("best/step".into(), ColumnKind::Metric, best_step);
        }
        let last: Vec<Option<&Metrics>> = runs
            .iter()
            .map(|r| r.last_eval.as_ref().map(|e| &e.metrics))
            .collect();
        let test: Vec<Option<&Metrics>> = runs.iter().map(|r| r.test.as_ref()).collect();
        for (prefix, of_runs) in [("best", &best), ("final", &last), ("test", &test)] {
            let mut metric_names: Vec<&String> =
                of_runs.iter().flatten().flat_map(|m| m.keys()).collect();
            metric_names.sort();
            metric_names.dedup();
            for m in metric_names {
                let values = of_runs
                    .iter()
                    .map(|r| {
                        r.and_then(|r| r.get(m))
                            .map_or(Cell::Missing, |v| Cell::Number(*v))
                    })
                    .collect();
                add(format!("{prefix}/{m}"), ColumnKind::Metric, values);
            }
        }

        for (i, c) in columns.iter_mut().enumerate() {
            c.differs = rows
                .first()
                .is_some_and(|first| rows.iter().any(|r| !r.cells[i].same(&first.cells[i])));
        }
        Comparison {
            columns,
            rows,
            skipped: Vec::new(),
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The columns to show: what a run is, the hyper-parameters that differ (all of them with
    /// `all`) and every metric.
    pub fn visible(&self, all: bool) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| {
                let c = &self.columns[i];
                all || c.kind != ColumnKind::HParam || c.differs
            })
            .collect()
    }

    /// Sorts the rows by column `i`: numbers by value, text lexically, runs without a value
    /// last in either direction; rows that tie keep their order.
    pub fn sort_by(&mut self, i: usize, descending: bool) {
        if i >= self.columns.len() {
            return;
        }
        self.rows.sort_by(|a, b| match (&a.cells[i], &b.cells[i]) {
            (Cell::Missing, Cell::Missing) => Ordering::Equal,
            (Cell::Missing, _) => Ordering::Greater,
            (_, Cell::Missing) => Ordering::Less,
            (x, y) if descending => y.order(x),
            (x, y) => x.order(y),
        });
    }

    /// Sorts by the column called `name`; an unknown name is refused with the names there are.
    pub fn sort_by_name(&mut self, name: &str, descending: bool) -> Result<()> {
        let Some(i) = self.column(name) else {
            let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "no column `{name}` to sort by; the columns are: {}",
                names.join(", ")
            )));
        };
        self.sort_by(i, descending);
        Ok(())
    }

    /// The visible columns (see [`Comparison::visible`]) as CSV, values in full.
    pub fn to_csv(&self, all: bool) -> Result<String> {
        let columns = self.visible(all);
        let mut w = csv::Writer::from_writer(Vec::new());
        let failed = |e: csv::Error| Error::Invalid(format!("cannot write the CSV: {e}"));
        w.write_record(columns.iter().map(|&i| self.columns[i].name.as_str()))
            .map_err(failed)?;
        for row in &self.rows {
            w.write_record(columns.iter().map(|&i| row.cells[i].text()))
                .map_err(failed)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::Invalid(format!("cannot write the CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| Error::Invalid(format!("cannot write the CSV: {e}")))
    }

    /// The visible columns as a Markdown table, values as the table shows them.
    pub fn to_markdown(&self, all: bool) -> String {
        let columns = self.visible(all);
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let mut out = line(
            columns
                .iter()
                .map(|&i| markdown_cell(&self.columns[i].name))
                .collect(),
        );
        out.push_str(&line(
            columns
                .iter()
                .map(|&i| match self.columns[i].kind {
                    ColumnKind::Metric => "---:".to_string(),
                    _ => "---".to_string(),
                })
                .collect(),
        ));
        for row in &self.rows {
            out.push_str(&line(
                columns
                    .iter()
                    .map(|&i| markdown_cell(&row.cells[i].short()))
                    .collect(),
            ));
        }
        out
    }

    /// The visible columns as aligned plain text for a terminal; the hyper-parameters that
    /// differ between the runs are marked `*`.
    pub fn to_text(&self, all: bool) -> String {
        let columns = self.visible(all);
        let header: Vec<String> = columns
            .iter()
            .map(|&i| {
                let c = &self.columns[i];
                match c.kind == ColumnKind::HParam && c.differs {
                    true => format!("{}*", c.name),
                    false => c.name.clone(),
                }
            })
            .collect();
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| columns.iter().map(|&i| r.cells[i].short()).collect())
            .collect();
        let width = |j: usize| {
            std::iter::once(&header[j])
                .chain(body.iter().map(|r| &r[j]))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns.len()).map(width).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(s, &w)| format!("{s:<w$}"))
                .collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(&header);
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&line(&rule));
        for r in &body {
            out.push_str(&line(r));
        }
        if header.iter().any(|h| h.ends_with('*')) {
            out.push_str("* differs between the runs\n");
        }
        out
    }
}

/// A cell's text that cannot end the cell or the row early: `|` escaped, line breaks as spaces.
fn markdown_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::run_dir::append_jsonl;
    use crate::training::{Method, TrainConfig};

    fn eval(step: usize, metrics: &[(&str, f64)]) -> EvalRecord {
        EvalRecord {
            step,
            epoch: 1.0,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            examples: 10,
            elapsed_secs: 1.0,
            best: true,
            confusion: None,
        }
    }

    /// A finished run folder `root/name` with learning rate `lr`, its best evaluation and a
    /// later, last one.
    fn write_run(root: &Path, name: &str, lr: f64, best: f64, last: f64) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = TrainConfig::adapter(
            "model".into(),
            crate::data::DataSource::Path("train.csv".into()),
            Method::SEQ_BN,
        );
        config.lr = lr;
        config.name = "films".into();
        let info = RunInfo {
            config,
            status: RunStatus::Finished,
            step: 20,
            total_steps: 20,
            labels: Vec::new(),
            data: Vec::new(),
            trainable_parameters: 0,
            best: Some(eval(10, &[("accuracy", best), ("loss", 0.5)])),
            error: None,
            stopped_early: None,
            head_from: None,
            versions: serde_json::Value::Null,
            device: "cpu".into(),
            started_unix_secs: 0,
            updated_unix_secs: 0,
        };
        let run = RunDir::new(&dir);
        run.write_info(&info).unwrap();
        append_jsonl(
            &run.metrics(),
            &Record::Eval(eval(10, &[("accuracy", best)])),
        )
        .unwrap();
        append_jsonl(
            &run.metrics(),
            &Record::Eval(eval(20, &[("accuracy", last)])),
        )
        .unwrap();
        dir
    }

    fn column<'a>(t: &'a Comparison, name: &str) -> Vec<&'a Cell> {
        let i = t.column(name).unwrap();
        t.rows.iter().map(|r| &r.cells[i]).collect()
    }

    #[test]
    fn only_differing_hyper_parameters_are_shown_unless_all_are_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_run(tmp.path(), "a", 1e-4, 0.8, 0.75);
        let b = write_run(tmp.path(), "b", 3e-4, 0.9, 0.9);
        let t = Comparison::load(&[a, b]).unwrap();
        let shown: Vec<&str> = t
            .visible(false)
            .into_iter()
            .map(|i| t.columns[i].name.as_str())
            .collect();
        assert!(shown.contains(&"lr"), "{shown:?}");
        assert!(
            !shown.contains(&"batch_size"),
            "equal settings hidden: {shown:?}"
        );
        assert!(!t.columns[t.column("batch_size").unwrap()].differs);
        assert!(t.columns[t.column("lr").unwrap()].differs);
        // Metrics and what a run is are shown even where equal.
        for name in [
            "run",
            "status",
            "steps",
            "best/loss",
            "best/accuracy",
            "final/accuracy",
        ] {
            assert!(shown.contains(&name), "{name} in {shown:?}");
        }
        assert_eq!(
            column(&t, "final/accuracy"),
            [&Cell::Number(0.75), &Cell::Number(0.9)]
        );
        assert_eq!(
            column(&t, "best/step"),
            [&Cell::Number(10.0), &Cell::Number(10.0)]
        );
        let all = t.visible(true);
        assert_eq!(all.len(), t.columns.len());
        assert!(all.contains(&t.column("batch_size").unwrap()));
    }

    /// Changes a run folder's `run.json`.
    fn edit(dir: &Path, f: impl FnOnce(&mut RunInfo)) {
        let run = RunDir::new(dir);
        let mut info = run.read_info().unwrap();
        f(&mut info);
        run.write_info(&info).unwrap();
    }

    #[test]
    fn numbers_sort_by_value_and_missing_values_go_last_either_way() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["r1", "r2", "r3", "r4"]
            .iter()
            .zip([0.8, 0.7, 0.9, 0.6])
            .map(|(name, acc)| write_run(tmp.path(), name, 1e-4, acc, acc))
            .collect();
        // As text, "128" < "16" < "32" < "8": sorted as numbers they are not.
        for (dir, batch) in dirs.iter().zip([16, 8, 128, 32]) {
            edit(dir, |i| i.config.batch_size = batch);
        }
        // A run without evaluations has no final accuracy.
        std::fs::remove_file(RunDir::new(&dirs[3]).metrics()).unwrap();
        let mut t = Comparison::load(&dirs).unwrap();
        let ids =
            |t: &Comparison| -> Vec<String> { column(t, "run").iter().map(|c| c.text()).collect() };
        t.sort_by_name("batch_size", false).unwrap();
        assert_eq!(ids(&t), ["r2", "r1", "r4", "r3"]);
        t.sort_by_name("batch_size", true).unwrap();
        assert_eq!(ids(&t), ["r3", "r4", "r1", "r2"]);
        t.sort_by_name("final/accuracy", true).unwrap();
        assert_eq!(ids(&t), ["r3", "r1", "r2", "r4"]);
        t.sort_by_name("final/accuracy", false).unwrap();
        assert_eq!(ids(&t), ["r2", "r1", "r3", "r4"]);
        t.sort_by_name("run", true).unwrap();
        assert_eq!(ids(&t), ["r4", "r3", "r2", "r1"]);
        let e = t.sort_by_name("nope", false).unwrap_err().to_string();
        assert!(
            e.contains("no column `nope`") && e.contains("batch_size"),
            "{e}"
        );
    }

    #[test]
    fn csv_quotes_and_markdown_escapes_pipes_and_line_breaks() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_run(tmp.path(), "a", 1e-4, 0.8, 0.75);
        let b = write_run(tmp.path(), "b", 2e-4, 0.9, 0.9);
        // A run name with a pipe, a comma and a quote, and one with a line break.
        for (dir, name) in [(&a, "x|y, \"z\""), (&b, "two\nlines")] {
            edit(dir, |i| i.config.name = name.into());
        }
        let t = Comparison::load(&[a, b]).unwrap();
        let csv = t.to_csv(false).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("run,status,method,steps,"), "{header}");
        assert!(header.contains(",name,"), "{header}");
        assert!(csv.contains("\"x|y, \"\"z\"\"\""), "{csv}");
        assert!(csv.contains("0.0001"), "full values in CSV: {csv}");
        // Read back, the cells are the values.
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let name_at = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "name")
            .unwrap();
        let names: Vec<String> = r
            .records()
            .map(|x| x.unwrap()[name_at].to_string())
            .collect();
        assert_eq!(names, ["x|y, \"z\"", "two\nlines"]);

        let md = t.to_markdown(false);
        assert!(md.contains("x\\|y, \"z\""), "{md}");
        assert!(md.contains("two lines"), "{md}");
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4, "a header, a rule and a line per run: {md}");
        // Every line has as many unescaped pipes as the header.
        let pipes = |l: &str| l.replace("\\|", "").matches('|').count();
        assert!(lines.iter().all(|l| pipes(l) == pipes(lines[0])), "{md}");
    }

    #[test]
    fn an_unreadable_folder_is_skipped_by_name_and_alone_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_run(tmp.path(), "a", 1e-4, 0.8, 0.75);
        let broken = tmp.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("run.json"), "{").unwrap();
        let t = Comparison::load(&[a, broken.clone()]).unwrap();
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.skipped.len(), 1);
        assert!(t.skipped[0].reason.contains("broken"), "{:?}", t.skipped);
        let e = Comparison::load(&[broken]).unwrap_err().to_string();
        assert!(e.contains("broken"), "{e}");
        let e = Comparison::load(&[tmp.path().join("missing")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn a_studys_started_runs_are_compared_in_plan_order_with_their_test_metrics() {
        let tmp = tempfile::tempdir().unwrap();
        let spec: crate::study::StudySpec = serde_json::from_value(serde_json::json!({
            "model": "demo",
            "sources": [{"name": "s1", "train": "/d/s1.csv"}],
            "targets": [{"name": "t", "train": "/d/t.csv", "test": "/d/t_test.csv"}],
            "methods": ["seq_bn", "head-only"],
            "seeds": [1, 2],
        }))
        .unwrap();
        let root = tmp.path().join("grid");
        let study = StudyDir::new(&root);
        let plan = study.prepare(&spec, Path::new("study.json")).unwrap();
        let ids: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
        // Two runs have started, the later one of the plan first; the rest have not.
        let (first, later) = (ids[0], ids[ids.len() - 1]);
        write_run(&study.runs(), later, 1e-4, 0.8, 0.8);
        write_run(&study.runs(), first, 3e-4, 0.7, 0.7);
        crate::io::write_atomic(
            &root.join("test").join(format!("{later}.json")),
            br#"{"accuracy": 0.65}"#,
        )
        .unwrap();
        let runs = study_runs(&root).unwrap();
        assert_eq!(runs, [study.run(first), study.run(later)]);
        let t = Comparison::load(&runs).unwrap();
        let names: Vec<String> = column(&t, "run").iter().map(|c| c.text()).collect();
        assert_eq!(names, [format!("grid/{first}"), format!("grid/{later}")]);
        assert_eq!(
            column(&t, "test/accuracy"),
            [&Cell::Missing, &Cell::Number(0.65)]
        );
        let e = study_runs(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not a study folder"), "{e}");
    }

    #[test]
    fn numbers_read_whole_rounded_or_scientific() {
        assert_eq!(Cell::Number(8.0).short(), "8");
        assert_eq!(Cell::Number(0.91236).short(), "0.9124");
        assert_eq!(Cell::Number(0.5).short(), "0.5");
        assert_eq!(Cell::Number(1e-4).short(), "1e-4");
        assert_eq!(Cell::Number(1e-4).text(), "0.0001");
        assert_eq!(Cell::Missing.text(), "");
    }
}
