//! Faults the program must survive (issue 35), each injected for real:
//!
//! - a full disk (ENOSPC) while a run writes its checkpoint or its adapter, while `export`
//!   writes, and while `workspace.json` is written: a size-limited tmpfs that the test mounts
//!   itself (root, or CAP_SYS_ADMIN; `ADAPTER_STUDIO_NO_MOUNT=1` says that it is expected not
//!   to be possible, and the disk-full tests then pass after saying so loudly);
//! - SIGKILL at random moments (seeded: `FAULTS_SEED` changes the seed) of `train` and
//!   `export`, 50 trials.
//!
//! Each checks one clear error naming the file, the previous file left byte for byte, no
//! temporary file left that a later step could take as valid, and the same result as a run
//! or export that was never disturbed once the fault is gone.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use adapter_studio::training::{self, checkpoint, run_dir::RunDir, Event};
use adapter_studio::workspace::{ModelEntry, Workspace};
use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// A small tmpfs of the test's own, unmounted when dropped (also when the test panics).

struct Tmpfs {
    dir: PathBuf,
    // Holds the folder the mount point is in; dropped after the unmount.
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `kib` KiB, or says loudly why it cannot. `None` only when
    /// `ADAPTER_STUDIO_NO_MOUNT=1` says that this machine cannot mount; otherwise a panic, so
    /// that a machine able to run these tests does not skip them quietly.
    fn mount(kib: u64) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("small-disk");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .output();
        let why = match &out {
            Ok(o) if o.status.success() => {
                return Some(Tmpfs {
                    dir,
                    _parent: parent,
                })
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        let expected = std::env::var("ADAPTER_STUDIO_NO_MOUNT").is_ok_and(|v| v == "1");
        eprintln!(
            "\n*** DISK-FULL TEST NOT RUN: mounting a tmpfs failed ({why}); it needs root or \
             CAP_SYS_ADMIN. ***\n"
        );
        assert!(
            expected,
            "mounting a tmpfs failed ({why}): run the tests as root, or set \
             ADAPTER_STUDIO_NO_MOUNT=1 where that is expected"
        );
        None
    }

    /// Gives the file system `kib` KiB in all (`mount -o remount,size=…`): space is back.
    fn resize(&self, kib: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fills the file system until a write fails with ENOSPC, in a new file of its own.
    fn fill(&self) {
        use std::io::Write;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut f = std::fs::File::create(self.dir.join(format!("filler-{n}"))).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }

    /// Fills the file system, then frees `kib` KiB of it again.
    fn fill_leaving(&self, kib: u64) {
        self.fill();
        let fillers = std::fs::read_dir(&self.dir).unwrap().flatten();
        let last = fillers
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("filler-")
            })
            .max()
            .unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        f.set_len(len.saturating_sub(kib * 1024)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process the test started may still have a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

// ---------------------------------------------------------------------------------------
// Tiny runs: the tiny BERT of the fixtures, 64 short texts.

fn tiny_data(dir: &Path) -> PathBuf {
    let path = dir.join("train.csv");
    let mut text = String::from("text,label\n");
    for i in 0..64 {
        let (words, label) = if i % 2 == 0 {
            ("good great fine", "pos")
        } else {
            ("bad awful poor", "neg")
        };
        text.push_str(&format!("\"{words} {i} movie\",{label}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The settings of a tiny run (without `--out`), as `train` takes them.
fn tiny_args(data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--device", "cpu", "--model"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(fixtures().join("bert_tiny").to_string_lossy().into_owned());
    args.push("--train".into());
    args.push(data.to_string_lossy().into_owned());
    for a in [
        "--name",
        "tiny",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--lr",
        "5e-3",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn train_cli(args: &[String], out: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(args).arg("--json").arg("--out").arg(out);
    cmd
}

fn resume_cli(out: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(["train", "--json", "--resume"]).arg(out);
    cmd
}

/// The saved adapter and head, byte for byte.
fn weights_of(run: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for f in [
        "adapter/adapter.safetensors",
        "adapter/pytorch_adapter.bin",
        "adapter/adapter_config.json",
        "head/model_head.safetensors",
        "head/pytorch_model_head.bin",
        "head/head_config.json",
    ] {
        let path = run.join(f);
        bytes.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    bytes
}

/// metrics.jsonl without the fields that measure time.
fn records_without_timing(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("examples_per_sec");
            o.remove("elapsed_secs");
            v
        })
        .collect()
}

/// Names under `dir` (recursively) of temporary or set-aside files and folders.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || name.ends_with(".old") {
            found.push(e.path().display().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(leftovers(&e.path()));
        }
    }
    found
}

/// Every file of a folder, by relative path, with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, files);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                files.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut files);
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------
// Disk full.

/// A full disk when the checkpoint of step 8 is written (the one of step 4 is on disk), and
/// again when the finished run writes its adapter: each time one error naming the file and
/// saying the disk is full, the checkpoint before it byte for byte, no temporary file; once
/// the file system is made larger, `train --resume` finishes with exactly the weights and
/// records of a run that never hit the full disk.
#[test]
fn a_full_disk_while_checkpointing_or_saving_the_adapter_fails_by_name_and_the_run_resumes_to_the_same_weights(
) {
    let Some(disk) = Tmpfs::mount(2048) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data = tiny_data(work.path());
    let args = tiny_args(
        &data,
        &[
            "--validation-split",
            "0",
            "--max-steps",
            "12",
            "--save-every",
            "4",
        ],
    );
    let whole = work.path().join("whole");
    ok(train_cli(&args, &whole).output().unwrap());

    let run = disk.dir.join("run");
    let cfg = training::args::planned_config(&args[..], &run).unwrap();
    let stop = AtomicBool::new(false);
    let checkpoint = RunDir::new(&run).checkpoint();

    // 1. The disk fills after the checkpoint of step 4: the one of step 8 cannot be written.
    let mut kept = None;
    let err = training::train(
        &cfg,
        &run,
        &mut |e| {
            if let Event::Checkpoint { step: 4 } = e {
                kept = Some(std::fs::read(&checkpoint).unwrap());
                disk.fill();
            }
        },
        &stop,
    )
    .expect_err("the checkpoint of step 8 was written to a full disk")
    .to_string();
    assert!(
        err.contains(&*checkpoint.to_string_lossy()) && err.contains("the disk is full"),
        "{err}"
    );
    assert!(
        err.contains("train --resume"),
        "no way on is suggested: {err}"
    );
    let kept = kept.expect("no checkpoint at step 4");
    assert!(
        std::fs::read(&checkpoint).unwrap() == kept,
        "the checkpoint of step 4 changed"
    );
    assert_eq!(leftovers(&run), Vec::<String>::new());
    assert_eq!(checkpoint::load(&checkpoint).unwrap().1.step, 4);

    // 2. Space is back; the resumed run fills the disk again after its last checkpoint
    // (step 12): the adapter folder cannot be written.
    disk.resize(4096);
    let mut kept = None;
    let err = training::resume(
        &run,
        &mut |e| {
            if let Event::Checkpoint { step: 12 } = e {
                kept = Some(std::fs::read(&checkpoint).unwrap());
                disk.fill();
            }
        },
        &stop,
    )
    .expect_err("the adapter was written to a full disk")
    .to_string();
    let adapter = run.join("adapter");
    assert!(
        err.contains(&*adapter.to_string_lossy()) && err.contains("the disk is full"),
        "the error names the file in the run's adapter folder: {err}"
    );
    assert!(!err.contains(".tmp-"), "a temporary name is shown: {err}");
    assert!(
        std::fs::read(&checkpoint).unwrap() == kept.expect("no checkpoint at step 12"),
        "the checkpoint of step 12 changed"
    );
    assert!(
        !adapter.exists(),
        "a half-written adapter folder is in place"
    );
    assert_eq!(leftovers(&run), Vec::<String>::new());

    // 3. Space is back: the command line continues the run to the same result.
    disk.resize(8192);
    let out = ok(resume_cli(&run).output().unwrap());
    assert!(out.contains("\"finished\""), "{out}");
    assert!(weights_of(&run) == weights_of(&whole), "the weights differ");
    assert_eq!(records_without_timing(&run), records_without_timing(&whole));
    assert_eq!(leftovers(&run), Vec::<String>::new());
}

/// `export --force` onto a full disk fails naming the file and saying the disk is full; the
/// previous export is left byte for byte and nothing temporary stays; with space back, the
/// export succeeds and equals one made on a roomy disk.
#[test]
fn a_full_disk_during_an_export_fails_by_name_and_leaves_the_previous_export_intact() {
    let Some(disk) = Tmpfs::mount(2048) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data = tiny_data(work.path());
    let run = work.path().join("run");
    ok(train_cli(
        &tiny_args(&data, &["--validation-split", "0", "--max-steps", "4"]),
        &run,
    )
    .output()
    .unwrap());
    let export = |to: &Path| {
        let mut cmd = bin();
        cmd.args([
            "export", "--quiet", "--format", "bundle", "--force", "--run",
        ])
        .arg(&run)
        .arg("--out")
        .arg(to);
        cmd.output().unwrap()
    };
    let roomy = work.path().join("roomy");
    ok(export(&roomy));
    let dst = disk.dir.join("export");
    ok(export(&dst));
    let before = snapshot(&dst);

    disk.fill();
    let out = export(&dst);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&*dst.to_string_lossy()) && err.contains("the disk is full"),
        "{err}"
    );
    assert!(!err.contains(".tmp-"), "a temporary name is shown: {err}");
    // Said once, in words: not again as the OS's `No space left on device (os error 28)`.
    assert!(!err.contains("os error"), "{err}");
    assert!(snapshot(&dst) == before, "the previous export changed");
    assert_eq!(leftovers(&disk.dir), Vec::<String>::new());

    disk.resize(8192);
    ok(export(&dst));
    assert!(
        snapshot(&dst) == snapshot(&roomy),
        "differs from a roomy export"
    );
    assert_eq!(leftovers(&disk.dir), Vec::<String>::new());
}

/// A change to `workspace.json` on a full disk fails naming the file; the file keeps its
/// bytes and the workspace holds no temporary file; with space back the change lands.
#[test]
fn a_full_disk_while_writing_workspace_json_fails_by_name_and_keeps_the_file() {
    let Some(disk) = Tmpfs::mount(1024) else {
        return;
    };
    let root = disk.dir.join("ws");
    let mut ws = Workspace::open(&root).unwrap();
    // Large enough (several pages) that the write lock's own small file still fits.
    ws.modify(|s| {
        for i in 0..200 {
            s.models.push(ModelEntry {
                name: format!("model {i}"),
                path: PathBuf::from(format!("/models/model-{i}")),
                demo: false,
            });
        }
    })
    .unwrap();
    let file = root.join("workspace.json");
    let before = std::fs::read(&file).unwrap();
    assert!(before.len() > 3 * 4096, "{} bytes", before.len());

    disk.fill_leaving(8);
    let add = |s: &mut adapter_studio::workspace::WorkspaceState| {
        s.models.push(ModelEntry {
            name: "one more".into(),
            path: PathBuf::from("/models/one-more"),
            demo: false,
        })
    };
    let err = ws.modify(add).unwrap_err().to_string();
    assert!(
        err.contains(&*file.to_string_lossy()) && err.contains("the disk is full"),
        "{err}"
    );
    assert!(
        std::fs::read(&file).unwrap() == before,
        "workspace.json changed"
    );
    assert_eq!(leftovers(&root), Vec::<String>::new());
    assert_eq!(
        ws.state.models.len(),
        200,
        "the failed change was kept in memory"
    );
    let names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".workspace.lock")),
        "the write lock stayed: {names:?}"
    );

    disk.resize(4096);
    ws.modify(add).unwrap();
    let again = Workspace::open(&root).unwrap();
    assert_eq!(again.state.models.len(), 201);
}

/// `hub download` into a cache on a full disk fails naming the file and saying the disk is
/// full; nothing in the cache passes for the file (no blob, no snapshot entry); with space
/// back, the download completes with the right bytes.
#[test]
fn a_full_disk_during_a_hub_download_fails_by_name_and_caches_nothing_that_passes_for_the_file() {
    let Some(disk) = Tmpfs::mount(1024) else {
        return;
    };
    let repos = serde_json::json!({"tiny/bert-tiny": {"revisions": {"main": fixtures().join("bert_tiny")}}});
    let hub = common::fake_hub::FakeHub::start(repos, serde_json::json!({}));
    let home = disk.dir.join("hf");
    let download = || {
        let mut cmd = bin();
        for var in [
            "HF_HUB_OFFLINE",
            "HF_TOKEN",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HF_HOME", &home)
            .env("HF_ENDPOINT", &hub.url)
            .env("HF_HUB_DISABLE_XET", "1")
            .args(["hub", "download", "tiny/bert-tiny"]);
        cmd.output().unwrap()
    };
    let weights = fixtures().join("bert_tiny").join("model.safetensors");
    let size = std::fs::metadata(&weights).unwrap().len();
    // Room for the small files, not for the weights.
    disk.fill_leaving(size / 1024 / 2);
    let out = download();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "downloaded onto a full disk");
    assert!(err.contains("the disk is full"), "{err}");
    // The file as the repo names it (its blob's name is a hash).
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(
        err.contains(&*home.to_string_lossy()),
        "no file named: {err}"
    );
    let repo = home.join("hub").join("models--tiny--bert-tiny");
    let blobs: Vec<String> = std::fs::read_dir(repo.join("blobs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let snapshot_weights: Vec<PathBuf> = std::fs::read_dir(repo.join("snapshots"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("model.safetensors"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        snapshot_weights.is_empty(),
        "a snapshot lists weights that were not written: {snapshot_weights:?}"
    );
    let sha = {
        use sha2::Digest;
        format!(
            "{:x}",
            sha2::Sha256::digest(std::fs::read(&weights).unwrap())
        )
    };
    assert!(
        !blobs.contains(&sha),
        "a partial blob passes for the weights: {blobs:?}"
    );

    disk.resize(8192);
    let out = ok(download());
    let snapshot = PathBuf::from(out.lines().last().unwrap());
    assert!(
        std::fs::read(snapshot.join("model.safetensors")).unwrap()
            == std::fs::read(&weights).unwrap()
    );
    assert!(!repo
        .join("blobs")
        .join(format!("{sha}.incomplete"))
        .exists());
}

/// A checkpoint damaged on disk (a changed byte, or cut short) is not resumed from: the
/// resume fails naming the file and saying what to do, and doing it (moving the checkpoint
/// away, resuming) trains the run again to the weights of an undisturbed run.
#[test]
fn a_damaged_checkpoint_is_refused_by_name_with_what_to_do_and_doing_it_finishes_the_run() {
    let work = tempfile::tempdir().unwrap();
    let data = tiny_data(work.path());
    let args = tiny_args(&data, &["--validation-split", "0", "--max-steps", "8"]);
    let whole = work.path().join("whole");
    ok(train_cli(&args, &whole).output().unwrap());

    for damage in ["a changed byte", "cut short"] {
        let run = work.path().join(damage.replace(' ', "-"));
        let cfg = training::args::planned_config(&args[..], &run).unwrap();
        // Stopped after step 3, as Ctrl-C would: a checkpoint and the status `stopped`.
        let stop = AtomicBool::new(false);
        let summary = training::train(
            &cfg,
            &run,
            &mut |e| {
                if let Event::Step(r) = e {
                    if r.step == 3 {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            },
            &stop,
        )
        .unwrap();
        assert_eq!(summary.steps, 3);
        let checkpoint = RunDir::new(&run).checkpoint();
        let mut bytes = std::fs::read(&checkpoint).unwrap();
        if damage == "cut short" {
            bytes.truncate(bytes.len() - 100);
        } else {
            // The last byte is tensor data: the file still reads as safetensors.
            *bytes.last_mut().unwrap() ^= 0x01;
        }
        std::fs::write(&checkpoint, &bytes).unwrap();

        let out = resume_cli(&run).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{damage}: resumed from a damaged checkpoint"
        );
        assert!(
            err.contains(&*checkpoint.to_string_lossy())
                && err.contains("move")
                && err.contains("train --resume"),
            "{damage}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");

        std::fs::rename(&checkpoint, work.path().join("damaged.safetensors")).unwrap();
        ok(resume_cli(&run).output().unwrap());
        assert!(
            weights_of(&run) == weights_of(&whole),
            "{damage}: weights differ"
        );
        assert_eq!(records_without_timing(&run), records_without_timing(&whole));
    }
}

// ---------------------------------------------------------------------------------------
// SIGKILL at random moments.

/// A small seeded generator (xorshift64*): the same kill times on every machine for a seed.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The last training step recorded in a run's metrics.jsonl (0 when none).
fn train_steps(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// When to kill a process.
#[derive(Clone, Copy)]
enum KillAt {
    /// This long after it started.
    Secs(f64),
    /// This long after `run`'s metrics.jsonl first records this training step: right after a
    /// step's record come its evaluation, its checkpoint write or the final save.
    AfterStep(u64, f64),
    Never,
}

/// Runs `cmd`, SIGKILLs it at `at` unless it ended before; whether it was killed, and its
/// output.
fn kill_at(mut cmd: Command, run: &Path, at: KillAt) -> (bool, std::process::Output) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut deadline = match at {
        KillAt::Secs(s) => Some(Duration::from_secs_f64(s)),
        _ => None,
    };
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if let (None, KillAt::AfterStep(step, delay)) = (deadline, at) {
            if train_steps(run) >= step {
                deadline = Some(start.elapsed() + Duration::from_secs_f64(delay));
            }
        }
        if deadline.is_some_and(|d| start.elapsed() >= d) {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (killed, child.wait_with_output().unwrap())
}

/// What a killed run left is either absent or whole: run.json reads, the checkpoint passes its
/// checksum, every saved weights file reads completely.
fn assert_run_readable(run: &Path, trial: usize) {
    let dir = RunDir::new(run);
    if dir.run_json().exists() {
        dir.read_info()
            .unwrap_or_else(|e| panic!("trial {trial}: run.json: {e}"));
    }
    if dir.checkpoint().exists() {
        checkpoint::load(&dir.checkpoint())
            .unwrap_or_else(|e| panic!("trial {trial}: checkpoint: {e}"));
    }
    for folder in ["adapter", "head"] {
        let d = run.join(folder);
        if !d.exists() {
            continue;
        }
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".safetensors") || name.ends_with(".bin") {
                adapter_studio::io::weights::read_state_dict(&p)
                    .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            } else if name.ends_with(".json") {
                adapter_studio::io::read_json::<Value>(&p)
                    .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            }
        }
    }
}

/// 50 SIGKILLs at seeded random moments: 40 of `train` (a checkpoint every step, the best
/// adapter and head saved at evaluations, the final save) and 10 of `export --force` over an
/// existing export. To keep this fast, one run is killed again and again, each kill a trial,
/// each time continued with `train --resume` (or `train` again when the kill came before the
/// run recorded anything). Where each kill falls is drawn from the undisturbed run's measured
/// timeline: loading (its share of the run), or a step still to do plus up to a quarter of
/// one step's time, so kills land on checkpoint writes (one per step here), evaluations with
/// their best saves, the final adapter/head save and the steps between. The kill follows the
/// process's own records, not the clock alone, so a slow or busy machine still kills nearly
/// every process before it ends. After every kill, what is on disk reads whole (a half-written file is never in place);
/// every run ends with the weights and records of the undisturbed run, and every export
/// folder is, byte for byte, the undisturbed export.
#[test]
fn sigkill_at_random_moments_of_train_and_export_never_leaves_a_half_written_file_in_place() {
    const TRAIN_KILLS: usize = 40;
    const EXPORT_KILLS: usize = 10;
    const TOTAL_STEPS: u64 = 60;
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    eprintln!("kill times seeded with FAULTS_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let work = tempfile::tempdir().unwrap();
    let data = tiny_data(work.path());
    let args = tiny_args(
        &data,
        &[
            "--validation-split",
            "0.125",
            "--max-steps",
            &TOTAL_STEPS.to_string(),
            "--eval-every",
            "10",
            "--save-every",
            "1",
        ],
    );

    // The undisturbed run, timed: loading (until its first record) and in all.
    let whole = work.path().join("whole");
    let t0 = Instant::now();
    let mut child = train_cli(&args, &whole)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut load_secs = None;
    while child.try_wait().unwrap().is_none() {
        if load_secs.is_none() && whole.join("metrics.jsonl").exists() {
            load_secs = Some(t0.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success());
    let train_secs = t0.elapsed().as_secs_f64();
    let load_secs = load_secs.unwrap_or(train_secs);
    let step_secs = (train_secs - load_secs) / TOTAL_STEPS as f64;

    let (mut kills, mut runs, mut processes) = (0, 0, 0);
    let (mut mid_write, mut training_kills) = (0, 0);
    let mut finished_runs = Vec::new();
    while kills < TRAIN_KILLS {
        let run = work.path().join(format!("run-{runs}"));
        runs += 1;
        loop {
            let dir = RunDir::new(&run);
            let cmd = match dir.run_json().exists().then(|| dir.read_info().unwrap()) {
                // Killed after it recorded its end (before removing its checkpoint).
                Some(info) if info.status == training::RunStatus::Finished => break,
                Some(_) => resume_cli(&run),
                None => train_cli(&args, &run),
            };
            processes += 1;
            // A share of the kills (the share of loading in one run) falls on loading; the
            // others right after a step still to do: on its checkpoint write, its evaluation
            // and best save, the final save, or the start of the next step.
            let done = train_steps(&run);
            let at = if kills >= TRAIN_KILLS {
                KillAt::Never
            } else if rng.uniform() < load_secs / train_secs {
                KillAt::Secs(rng.uniform() * load_secs)
            } else {
                let left = TOTAL_STEPS.saturating_sub(done).max(1);
                let step = done + 1 + ((rng.uniform() * left as f64) as u64).min(left - 1);
                // Within a quarter of a step: where its writes are (the next step's compute
                // writes nothing).
                KillAt::AfterStep(step, rng.uniform() * step_secs / 4.0)
            };
            let temps_before = leftovers(&run);
            let (killed, out) = kill_at(cmd, &run, at);
            if killed {
                kills += 1;
                // Where it fell: a new temporary file left means inside a write.
                if leftovers(&run).iter().any(|t| !temps_before.contains(t)) {
                    mid_write += 1;
                } else if train_steps(&run) > done {
                    training_kills += 1;
                }
                assert_run_readable(&run, kills);
                continue;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "after kill {kills}, {} did not continue: {stderr}",
                run.display()
            );
            break;
        }
        assert!(
            weights_of(&run) == weights_of(&whole),
            "{}: the weights differ from the undisturbed run",
            run.display()
        );
        assert_eq!(
            records_without_timing(&run),
            records_without_timing(&whole),
            "{}",
            run.display()
        );
        assert_eq!(leftovers(&run), Vec::<String>::new());
        finished_runs.push(run);
    }

    // Exports: an existing export replaced with --force, killed at random moments.
    let export = |to: &Path| {
        let mut cmd = bin();
        cmd.args([
            "export", "--quiet", "--format", "bundle", "--force", "--run",
        ])
        .arg(&finished_runs[0])
        .arg("--out")
        .arg(to);
        cmd
    };
    let reference = work.path().join("reference-export");
    let t0 = Instant::now();
    ok(export(&reference).output().unwrap());
    let export_secs = t0.elapsed().as_secs_f64();
    let expected = snapshot(&reference);
    let dst = work.path().join("export");
    ok(export(&dst).output().unwrap());
    let mut export_kills = 0;
    while export_kills < EXPORT_KILLS {
        let at = KillAt::Secs(rng.uniform() * export_secs);
        let (killed, out) = kill_at(export(&dst), &dst, at);
        if killed {
            export_kills += 1;
        } else {
            ok(out);
        }
        // The next export (or anything reading the folder) finds the old one or the new
        // one, whole; one killed between its two renames left the old one aside, which the
        // next export puts back.
        if !dst.exists() {
            ok(export(&dst).output().unwrap());
        }
        assert!(
            snapshot(&dst) == expected,
            "export kill {export_kills}: the folder is not a whole export"
        );
    }
    ok(export(&dst).output().unwrap());
    assert!(snapshot(&dst) == expected);
    assert_eq!(leftovers(work.path()), Vec::<String>::new());
    eprintln!(
        "{kills} kills of train over {runs} runs ({processes} processes, one undisturbed run: \
         {train_secs:.1} s, {load_secs:.1} s of it loading): {mid_write} inside a write (a temporary file left), \
         {training_kills} more after training steps, the rest while loading; {export_kills} \
         kills of export (one export: {export_secs:.1} s)"
    );
    // Most kills must reach the steps and their writes, not only the loading.
    assert!(
        mid_write + training_kills >= TRAIN_KILLS / 4,
        "too few kills reached training: {mid_write} + {training_kills}"
    );
}
