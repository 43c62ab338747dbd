//! Hub ids through the Hugging Face cache, against a Hub-compatible server on 127.0.0.1
//! (tests/reference/fake_hub.py, started and stopped by each test), whose protocol the official
//! Python client (`huggingface_hub`) checks in the same tests: downloads by id and revision
//! predict as the local folders, one cache with Python both ways, offline, resume, sha256,
//! tokens, wrong ids; pushes (the repo, preupload, LFS batch/PUT/verify and commit APIs) that
//! Python's `snapshot_download` reads back byte for byte with AdapterHub's card, the same
//! server taking `HfApi.upload_folder`'s pushes, and search.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::fake_hub::{FakeHub, TOKEN};
use common::{bin, fixtures, ok, venv_python};
use serde_json::{json, Value};

/// A repo folder made from fixture folders (their files side by side at the root).
fn repo_dir(root: &Path, name: &str, parts: &[&str], extra: &[(&str, &[u8])]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for part in parts {
        for entry in std::fs::read_dir(fixtures().join(part)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    for (file, bytes) in extra {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

/// The repos most tests serve: a tiny BERT (with TensorFlow weights beside, which downloads
/// skip), and a LoRA adapter with its head at the root as `push_adapter_to_hub` saves them;
/// its tag `v1` holds another LoRA.
fn standard_repos(root: &Path) -> Value {
    let model = repo_dir(
        root,
        "model",
        &["bert_tiny"],
        &[("tf_model.h5", b"not needed"), ("README.md", b"# tiny\n")],
    );
    let lora = repo_dir(
        root,
        "lora",
        &["methods/bert/lora", "methods/bert/head_cls"],
        &[],
    );
    let lora2 = repo_dir(
        root,
        "lora2",
        &["methods/bert/lora2", "methods/bert/head_cls"],
        &[],
    );
    json!({
        "tiny/bert-tiny": {"revisions": {"main": model}},
        "tiny/lora": {"revisions": {"main": lora, "v1": lora2}},
    })
}

/// The environment of one user: a fresh HF_HOME and the fake Hub as the endpoint; nothing
/// of the machine's own Hugging Face settings.
fn user_env(cmd: &mut Command, home: &Path, endpoint: &str) {
    for var in [
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "HF_DATASETS_OFFLINE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_DISABLE_XET", "1");
}

fn studio(home: &Path, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    user_env(&mut cmd, home, endpoint);
    cmd.args(args).envs(env.iter().copied());
    cmd.output().unwrap()
}

/// The last stdout line of `hub download` that must have succeeded: the snapshot folder.
fn download(home: &Path, endpoint: &str, id: &str, env: &[(&str, &str)]) -> PathBuf {
    let out = ok(studio(home, endpoint, &["hub", "download", id], env));
    PathBuf::from(out.lines().last().expect("a last line"))
}

/// The error of a command that must have failed: one line, the last on stderr (a line saying
/// what is downloaded may come before it).
fn failure(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    errors[0].to_string()
}

/// Runs Python's `huggingface_hub` with `code` in this user's environment.
fn python(home: &Path, endpoint: &str, code: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(venv_python());
    user_env(&mut cmd, home, endpoint);
    cmd.args(["-c", code]).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `predict --json` of one text with these model, adapter and head arguments.
fn predict(home: &Path, endpoint: &str, parts: [&str; 3], env: &[(&str, &str)]) -> Value {
    let [model, adapter, head] = parts;
    let args = [
        "predict",
        "--device",
        "cpu",
        "--json",
        "--text",
        "a tiny test",
        "--model",
        model,
        "--adapter",
        adapter,
        "--head",
        head,
    ];
    let out = ok(studio(home, endpoint, &args, env));
    serde_json::from_str(&out).unwrap()
}

fn local(part: &str) -> String {
    fixtures().join(part).display().to_string()
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn downloads_by_id_and_revision_predict_as_local_folders_and_python_finds_them_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.as_str();

    let model = download(&home, url, "tiny/bert-tiny", &[]);
    let repo_root = home.join("hub/models--tiny--bert-tiny");
    let commit = std::fs::read_to_string(repo_root.join("refs/main")).unwrap();
    assert_eq!(model, repo_root.join("snapshots").join(&commit));
    // huggingface_hub's layout: relative links into blobs/, named by ETag (sha256 for LFS).
    let weights = model.join("model.safetensors");
    let target = std::fs::read_link(&weights).unwrap();
    assert!(target.starts_with("../../blobs"), "{}", target.display());
    let blob = target.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        blob,
        sha256_hex(&fixtures().join("bert_tiny/model.safetensors"))
    );
    assert!(
        !model.join("tf_model.h5").exists(),
        "other frameworks' weights are skipped"
    );
    assert!(model.join("README.md").is_file());

    // Cached: a second download asks for the listing only.
    let before = hub.requests().len();
    assert_eq!(download(&home, url, "tiny/bert-tiny", &[]), model);
    let asked = &hub.requests()[before..];
    assert!(
        asked.len() == 1 && asked[0].starts_with("GET /api/models/tiny/bert-tiny/revision/main"),
        "{asked:?}"
    );

    // Python finds what we downloaded, offline.
    let code = "import huggingface_hub as h\n\
                print(h.snapshot_download('tiny/bert-tiny', local_files_only=True))\n\
                print(h.hf_hub_download('tiny/bert-tiny', 'model.safetensors', local_files_only=True))";
    let found = python(&home, url, code, &[("HF_HUB_OFFLINE", "1")]);
    let found: Vec<&str> = found.lines().collect();
    assert_eq!(found, [model.to_str().unwrap(), weights.to_str().unwrap()]);

    // Ids (and revisions: a tag, a commit) predict as the local folders.
    let with_lora = predict(
        &home,
        url,
        [
            &local("bert_tiny"),
            &local("methods/bert/lora"),
            &local("methods/bert/head_cls"),
        ],
        &[],
    );
    let by_id = predict(
        &home,
        url,
        ["tiny/bert-tiny", "tiny/lora", "tiny/lora"],
        &[],
    );
    assert_eq!(by_id, with_lora);
    let with_lora2 = predict(
        &home,
        url,
        [
            &local("bert_tiny"),
            &local("methods/bert/lora2"),
            &local("methods/bert/head_cls"),
        ],
        &[],
    );
    assert_ne!(
        with_lora2, with_lora,
        "the two adapters must differ for this test to mean anything"
    );
    let by_tag = predict(
        &home,
        url,
        ["tiny/bert-tiny", "tiny/lora@v1", "tiny/lora@v1"],
        &[],
    );
    assert_eq!(by_tag, with_lora2);
    let main_commit =
        std::fs::read_to_string(home.join("hub/models--tiny--lora/refs/main")).unwrap();
    let pinned = format!("tiny/lora@{main_commit}");
    let by_commit = predict(&home, url, ["tiny/bert-tiny", &pinned, &pinned], &[]);
    assert_eq!(by_commit, with_lora);
    // `--revision` says the same as `@`.
    let out = ok(studio(
        &home,
        url,
        &["hub", "download", "tiny/lora", "--revision", "v1"],
        &[],
    ));
    let v1 = std::fs::read_to_string(home.join("hub/models--tiny--lora/refs/v1")).unwrap();
    assert!(out.trim_end().ends_with(&v1), "{out}");
}

#[test]
fn files_python_downloaded_are_used_offline_with_no_server_running() {
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.clone();
    // The official client downloads through the fake Hub (the LFS redirect, the headers).
    let code = "import huggingface_hub as h\n\
                print(h.snapshot_download('tiny/bert-tiny'))\n\
                print(h.snapshot_download('tiny/lora', revision='v1'))";
    let paths = python(&home, &url, code, &[]);
    let paths: Vec<&str> = paths.lines().collect();
    assert_eq!(
        std::fs::read(Path::new(paths[0]).join("model.safetensors")).unwrap(),
        std::fs::read(fixtures().join("bert_tiny/model.safetensors")).unwrap()
    );
    hub.stop();

    let expected = predict(
        &home,
        &url,
        [
            &local("bert_tiny"),
            &local("methods/bert/lora2"),
            &local("methods/bert/head_cls"),
        ],
        &[],
    );
    let offline = [("HF_HUB_OFFLINE", "1")];
    let got = predict(
        &home,
        &url,
        ["tiny/bert-tiny", "tiny/lora@v1", "tiny/lora@v1"],
        &offline,
    );
    assert_eq!(got, expected);
    assert_eq!(
        download(&home, &url, "tiny/bert-tiny", &offline),
        Path::new(paths[0])
    );
    // Without HF_HUB_OFFLINE, an unreachable Hub falls back to the cache, with a warning.
    let out = studio(&home, &url, &["hub", "download", "tiny/lora@v1"], &[]);
    assert_eq!(ok(out.clone()).trim(), paths[1]);
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("cached snapshot") && warning.contains("cannot be reached"),
        "{warning}"
    );
}

#[test]
fn offline_a_missing_file_or_repo_is_one_error_naming_repo_file_and_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let model = download(&home, &hub.url, "tiny/bert-tiny", &[]);
    let served = hub.requests().len();
    // As a partial download leaves it: the weights' entry is missing.
    std::fs::remove_file(model.join("model.safetensors")).unwrap();
    let offline = [("HF_HUB_OFFLINE", "1")];
    let err = failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "tiny/bert-tiny"],
        &offline,
    ));
    for part in [
        "tiny/bert-tiny",
        "model.safetensors",
        "offline",
        "HF_HUB_OFFLINE",
        "hub download",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let err = failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "tiny/lora"],
        &offline,
    ));
    assert!(
        err.contains("tiny/lora") && err.contains("not in the cache"),
        "{err}"
    );
    assert_eq!(hub.requests().len(), served, "offline asks nothing");
}

#[test]
fn a_dropped_connection_resumes_to_a_complete_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(
        standard_repos(&tmp.path().join("repos")),
        json!({"drop_once": ["tiny/bert-tiny/model.safetensors"]}),
    );
    let home = tmp.path().join("hf");
    let sha = sha256_hex(&fixtures().join("bert_tiny/model.safetensors"));
    let blobs = home.join("hub/models--tiny--bert-tiny/blobs");
    let err = failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "tiny/bert-tiny"],
        &[],
    ));
    assert!(
        err.contains("model.safetensors") && err.contains("resume"),
        "{err}"
    );
    let partial = blobs.join(format!("{sha}.incomplete"));
    let size = std::fs::metadata(fixtures().join("bert_tiny/model.safetensors"))
        .unwrap()
        .len();
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), size / 2);
    assert!(!blobs.join(&sha).exists(), "no half-written blob");

    let model = download(&home, &hub.url, "tiny/bert-tiny", &[]);
    assert!(!partial.exists());
    assert_eq!(sha256_hex(&blobs.join(&sha)), sha);
    assert_eq!(sha256_hex(&model.join("model.safetensors")), sha);
    let ranged: Vec<String> = hub
        .requests()
        .into_iter()
        .filter(|r| r.contains("/lfs/") && r.ends_with(&format!("bytes={}-", size / 2)))
        .collect();
    assert_eq!(
        ranged.len(),
        1,
        "the second try asks for the rest only: {:?}",
        hub.requests()
    );
}

#[test]
fn a_sha256_mismatch_is_refused_and_nothing_of_it_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(
        standard_repos(&tmp.path().join("repos")),
        json!({"corrupt": ["tiny/bert-tiny/model.safetensors"]}),
    );
    let home = tmp.path().join("hf");
    let err = failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "tiny/bert-tiny"],
        &[],
    ));
    assert!(
        err.contains("model.safetensors") && err.contains("sha256"),
        "{err}"
    );
    let root = home.join("hub/models--tiny--bert-tiny");
    let sha = sha256_hex(&fixtures().join("bert_tiny/model.safetensors"));
    let blobs: Vec<String> = std::fs::read_dir(root.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!blobs.iter().any(|b| b.starts_with(&sha)), "{blobs:?}");
    let commit = std::fs::read_to_string(root.join("refs/main")).unwrap();
    let entry = root
        .join("snapshots")
        .join(commit)
        .join("model.safetensors");
    assert!(std::fs::symlink_metadata(entry).is_err());
}

#[test]
fn a_private_repo_needs_hf_token_or_the_login_token_file() {
    let tmp = tempfile::tempdir().unwrap();
    let lora = repo_dir(tmp.path(), "lora", &["methods/bert/lora"], &[]);
    let hub = FakeHub::start(
        json!({"me/secret": {"revisions": {"main": lora}, "private": true}}),
        json!({}),
    );
    let home = tmp.path().join("hf");
    let err = failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "me/secret"],
        &[],
    ));
    assert!(
        err.contains("me/secret") && err.contains("HF_TOKEN") && err.contains("login"),
        "{err}"
    );
    let folder = download(&home, &hub.url, "me/secret", &[("HF_TOKEN", TOKEN)]);
    assert!(folder.join("adapter.safetensors").is_file());
    // The file `huggingface-cli login` writes serves as well (a fresh cache: nothing cached).
    let home2 = tmp.path().join("hf2");
    std::fs::create_dir_all(&home2).unwrap();
    std::fs::write(home2.join("token"), format!("{TOKEN}\n")).unwrap();
    let folder = download(&home2, &hub.url, "me/secret", &[]);
    assert!(folder.join("adapter_config.json").is_file());
    let err = failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "me/secret"],
        &[("HF_TOKEN", "hf_wrong")],
    ));
    assert!(err.contains("no access"), "{err}");
}

#[test]
fn a_wrong_id_revision_or_unreachable_hub_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.clone();
    let err = failure(studio(&home, &url, &["hub", "download", "tiny/nope"], &[]));
    assert!(
        err.contains("tiny/nope") && err.contains("not found"),
        "{err}"
    );
    let err = failure(studio(
        &home,
        &url,
        &["hub", "download", "tiny/bert-tiny@nope"],
        &[],
    ));
    assert!(err.contains("no revision `nope`"), "{err}");
    let err = failure(studio(&home, &url, &["hub", "download", "not an id"], &[]));
    assert!(err.contains("not a Hub repo id"), "{err}");
    // A folder argument that is neither a folder nor a repo says both.
    let args = ["info", "--model", "tiny/nope"];
    let err = failure(studio(&home, &url, &args, &[]));
    assert!(
        err.contains("no local folder") && err.contains("tiny/nope"),
        "{err}"
    );
    hub.stop();
    let err = failure(studio(
        &home,
        &url,
        &["hub", "download", "tiny/bert-tiny"],
        &[],
    ));
    assert!(
        err.contains("cannot be reached") && err.contains("not in the cache"),
        "{err}"
    );
}

#[test]
fn two_processes_downloading_one_repo_both_get_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let spawn = || {
        let mut cmd = bin();
        user_env(&mut cmd, &home, &hub.url);
        cmd.args(["hub", "download", "tiny/bert-tiny"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let a = ok(a.wait_with_output().unwrap());
    let b = ok(b.wait_with_output().unwrap());
    assert_eq!(a.lines().last(), b.lines().last());
    let folder = PathBuf::from(a.lines().last().unwrap());
    let sha = sha256_hex(&fixtures().join("bert_tiny/model.safetensors"));
    assert_eq!(sha256_hex(&folder.join("model.safetensors")), sha);
    let leftovers: Vec<_> = std::fs::read_dir(home.join("hub/models--tiny--bert-tiny/blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The lock files are where huggingface_hub takes them.
    assert!(home
        .join(format!("hub/.locks/models--tiny--bert-tiny/{sha}.lock"))
        .is_file());
}

#[test]
fn python_resumes_what_our_interrupted_download_left() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(
        standard_repos(&tmp.path().join("repos")),
        json!({"drop_once": ["tiny/bert-tiny/model.safetensors"]}),
    );
    let home = tmp.path().join("hf");
    failure(studio(
        &home,
        &hub.url,
        &["hub", "download", "tiny/bert-tiny"],
        &[],
    ));
    let size = std::fs::metadata(fixtures().join("bert_tiny/model.safetensors"))
        .unwrap()
        .len();
    let code = "import huggingface_hub as h\nprint(h.snapshot_download('tiny/bert-tiny'))";
    let folder = PathBuf::from(python(&home, &hub.url, code, &[]));
    let sha = sha256_hex(&fixtures().join("bert_tiny/model.safetensors"));
    assert_eq!(sha256_hex(&folder.join("model.safetensors")), sha);
    let resumed = hub
        .requests()
        .iter()
        .filter(|r| r.ends_with(&format!("bytes={}-", size / 2)))
        .count();
    assert_eq!(
        resumed,
        1,
        "Python asked for the rest only: {:?}",
        hub.requests()
    );
    let blobs = home.join("hub/models--tiny--bert-tiny/blobs");
    assert!(!blobs.join(format!("{sha}.incomplete")).exists());
}

/// `hub push DIR --repo REPO ARGS…` with the token unless `env` says otherwise.
fn push(home: &Path, endpoint: &str, dir: &Path, repo: &str, args: &[&str]) -> Output {
    let mut all = vec!["hub", "push", dir.to_str().unwrap(), "--repo", repo];
    all.extend_from_slice(args);
    studio(home, endpoint, &all, &[("HF_TOKEN", TOKEN)])
}

/// The commit id `hub push` printed as its last line (it must have succeeded).
fn pushed_commit(out: Output) -> String {
    let stdout = ok(out);
    let commit = stdout.lines().last().expect("a last line").to_string();
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{stdout}"
    );
    commit
}

/// The requests of one kind (`METHOD PATH` prefix) served so far.
fn count(hub: &FakeHub, prefix: &str) -> usize {
    hub.requests()
        .iter()
        .filter(|r| r.starts_with(prefix))
        .count()
}

/// A run folder as training leaves it: the LoRA adapter and its head in `adapter/`, `head/`,
/// a checkpoint and logs that stay home, and a run.json whose model and training file are in
/// the Hugging Face caches (so the card can name them as Hub ids) with best metrics.
fn run_folder(root: &Path) -> PathBuf {
    let run = root.join("run");
    for (part, fixture) in [
        ("adapter", "methods/bert/lora"),
        ("head", "methods/bert/head_cls"),
    ] {
        std::fs::create_dir_all(run.join(part)).unwrap();
        for entry in std::fs::read_dir(fixtures().join(fixture)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), run.join(part).join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(run.join("checkpoint.safetensors"), b"not pushed").unwrap();
    std::fs::write(run.join("metrics.jsonl"), b"{}\n").unwrap();
    let mut info: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("run_v0/run.json")).unwrap())
            .unwrap();
    let zeros = "0".repeat(40);
    info["config"]["model"] = json!(format!("/c/hub/models--tiny--bert-tiny/snapshots/{zeros}"));
    info["config"]["train"] = json!(format!(
        "/c/hub/datasets--tiny--reviews/snapshots/{zeros}/train.csv"
    ));
    info["best"] = json!({"step": 2, "epoch": 1.0, "examples": 16, "elapsed_secs": 1.0,
        "best": true, "metrics": {"accuracy": 0.75, "macro_f1": 0.7, "loss": 0.5}});
    std::fs::write(run.join("run.json"), info.to_string()).unwrap();
    run
}

#[test]
fn a_pushed_run_is_one_commit_python_downloads_byte_for_byte_with_adapterhubs_card() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.as_str();
    let run = run_folder(tmp.path());
    let commit = pushed_commit(push(&home, url, &run, "me/run-lora", &[]));
    assert_eq!(count(&hub, "POST /api/models/me/run-lora/commit/main"), 1);
    assert_eq!(
        count(&hub, "PUT /lfs-upload/me/run-lora/"),
        2,
        "the two weights by LFS"
    );

    // The official client reads the commit back: the files, and the card's front matter.
    let code = format!(
        "import huggingface_hub as h, hashlib, json, os, yaml\n\
         p = h.snapshot_download('me/run-lora', revision='{commit}')\n\
         files = {{}}\n\
         for d, _, names in os.walk(p):\n\
         \x20   for n in names:\n\
         \x20       f = os.path.join(d, n)\n\
         \x20       files[os.path.relpath(f, p)] = hashlib.sha256(open(f, 'rb').read()).hexdigest()\n\
         card = open(os.path.join(p, 'README.md')).read()\n\
         meta = yaml.safe_load(card.split('---')[1])\n\
         print(json.dumps({{'files': files, 'meta': meta, 'card': card}}))"
    );
    let got: Value = serde_json::from_str(&python(&home, url, &code, &[])).unwrap();
    let mut expected = serde_json::Map::new();
    for (part, fixture) in [
        ("adapter", "methods/bert/lora"),
        ("head", "methods/bert/head_cls"),
    ] {
        for entry in std::fs::read_dir(run.join(part)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = sha256_hex(&fixtures().join(fixture).join(&name));
            expected.insert(name, json!(sha));
        }
    }
    let files = got["files"].as_object().unwrap();
    for (name, sha) in &expected {
        assert_eq!(&files[name], sha, "{name}");
    }
    let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".gitattributes",
            "README.md",
            "adapter.safetensors",
            "adapter_config.json",
            "head_config.json",
            "model_head.safetensors"
        ],
        "the run's checkpoint and logs stay home"
    );
    let meta = &got["meta"];
    assert_eq!(meta["library_name"], "adapter-transformers");
    let tags: Vec<&str> = meta["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tag in [
        "adapter-transformers",
        "adapters",
        "bert",
        "text-classification",
    ] {
        assert!(tags.contains(&tag), "{tag}: {tags:?}");
    }
    assert_eq!(meta["base_model"], "tiny/bert-tiny");
    assert_eq!(meta["datasets"], json!(["tiny/reviews"]));
    assert_eq!(meta["metrics"], json!(["accuracy", "f1"]));
    let card = got["card"].as_str().unwrap();
    for part in [
        "AutoAdapterModel.from_pretrained(\"tiny/bert-tiny\")",
        "model.load_adapter(\"me/run-lora\", set_active=True)",
        "| accuracy | 0.7500 |",
        "[tiny/reviews](https://huggingface.co/datasets/tiny/reviews/)",
    ] {
        assert!(card.contains(part), "{part}:\n{card}");
    }
    assert!(
        !run.join("README.md").exists(),
        "the card is not written into the folder"
    );

    // Our own download of the pushed repo predicts as the local folders.
    let local_logits = predict(
        &home,
        url,
        [
            &local("bert_tiny"),
            &local("methods/bert/lora"),
            &local("methods/bert/head_cls"),
        ],
        &[],
    );
    let pushed = predict(
        &home,
        url,
        [&local("bert_tiny"), "me/run-lora", "me/run-lora"],
        &[],
    );
    assert_eq!(pushed, local_logits);
}

#[test]
fn push_without_a_token_or_with_a_symlink_is_one_clear_error_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(json!({}), json!({}));
    let home = tmp.path().join("hf");
    let dir = repo_dir(tmp.path(), "lora", &["methods/bert/lora"], &[]);
    let args = ["hub", "push", dir.to_str().unwrap(), "--repo", "me/x"];
    let err = failure(studio(&home, &hub.url, &args, &[]));
    assert!(
        err.contains("me/x") && err.contains("HF_TOKEN") && err.contains("huggingface-cli login"),
        "{err}"
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    let err = failure(push(&home, &hub.url, &dir, "me/x", &[]));
    assert!(
        err.contains("passwd") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(hub.requests(), Vec::<String>::new(), "nothing was asked");
    // A wrong token: the Hub's refusal, named.
    std::fs::remove_file(dir.join("passwd")).unwrap();
    let err = failure(studio(&home, &hub.url, &args, &[("HF_TOKEN", "hf_wrong")]));
    assert!(err.contains("token was refused"), "{err}");
}

#[test]
fn pushing_twice_makes_two_commits_the_second_served_and_an_unchanged_push_makes_none() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(json!({}), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.as_str();
    let first = repo_dir(
        tmp.path(),
        "first",
        &["methods/bert/lora", "methods/bert/head_cls"],
        &[],
    );
    let second = repo_dir(
        tmp.path(),
        "second",
        &["methods/bert/lora2", "methods/bert/head_cls"],
        &[],
    );
    let c1 = pushed_commit(push(&home, url, &first, "me/twice", &[]));
    let c2 = pushed_commit(push(
        &home,
        url,
        &second,
        "me/twice",
        &["--message", "lora2"],
    ));
    assert_ne!(c1, c2);
    let lora2 = sha256_hex(&fixtures().join("methods/bert/lora2/adapter.safetensors"));
    let lora = sha256_hex(&fixtures().join("methods/bert/lora/adapter.safetensors"));
    let main = download(&home, url, "me/twice", &[]);
    assert!(main.ends_with(&c2), "{}", main.display());
    assert_eq!(sha256_hex(&main.join("adapter.safetensors")), lora2);
    let old = download(&home, url, &format!("me/twice@{c1}"), &[]);
    assert_eq!(sha256_hex(&old.join("adapter.safetensors")), lora);
    // The head did not change: only the adapter's bytes went the second time.
    assert_eq!(count(&hub, "PUT /lfs-upload/me/twice/"), 3);

    let commits = count(&hub, "POST /api/models/me/twice/commit/");
    assert_eq!(
        pushed_commit(push(&home, url, &second, "me/twice", &[])),
        c2
    );
    assert_eq!(
        count(&hub, "POST /api/models/me/twice/commit/"),
        commits,
        "no empty commit"
    );

    // A branch: created from main, main untouched.
    let c3 = pushed_commit(push(&home, url, &first, "me/twice", &["--revision", "dev"]));
    let dev = download(&home, url, "me/twice@dev", &[]);
    assert!(dev.ends_with(&c3));
    assert_eq!(sha256_hex(&dev.join("adapter.safetensors")), lora);
    assert!(download(&home, url, "me/twice", &[]).ends_with(&c2));
}

#[test]
fn the_official_clients_upload_folder_works_on_the_fake_hub_and_search_lists_adapters_as_python() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(standard_repos(&tmp.path().join("repos")), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.as_str();
    let card = b"---\nlibrary_name: adapter-transformers\ntags:\n- adapters\n---\n# py\n";
    let dir = repo_dir(
        tmp.path(),
        "py",
        &["methods/bert/lora", "methods/bert/head_cls"],
        &[("README.md", card)],
    );
    let code = format!(
        "import huggingface_hub as h\n\
         api = h.HfApi(endpoint='{url}', token='{TOKEN}')\n\
         api.create_repo('me/py-lora', exist_ok=True)\n\
         api.create_repo('me/py-lora', exist_ok=True)\n\
         print(api.upload_folder(repo_id='me/py-lora', folder_path='{}').oid)",
        dir.display()
    );
    let commit = python(&home, url, &code, &[]);
    let folder = download(&home, url, "me/py-lora", &[]);
    assert!(folder.ends_with(&commit), "{}", folder.display());
    for name in [
        "adapter.safetensors",
        "adapter_config.json",
        "model_head.safetensors",
        "README.md",
    ] {
        assert_eq!(
            sha256_hex(&folder.join(name)),
            sha256_hex(&dir.join(name)),
            "{name}"
        );
    }
    // Ours, then theirs, into the one server; search finds adapters as Python's filter does.
    let ours = repo_dir(tmp.path(), "ours", &["methods/bert/lora"], &[]);
    pushed_commit(push(&home, url, &ours, "me/our-lora", &[]));
    let lines = |args: &[&str]| -> Vec<String> {
        ok(studio(&home, url, args, &[]))
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        lines(&["hub", "search", "lora", "--adapters"]),
        ["me/our-lora", "me/py-lora"]
    );
    let code = "import huggingface_hub as h\n\
                print('\\n'.join(m.id for m in h.HfApi().list_models(search='lora', filter='adapter-transformers')))";
    assert_eq!(python(&home, url, code, &[]), "me/our-lora\nme/py-lora");
    assert_eq!(
        lines(&["hub", "search", "bert-tiny", "--adapters"]),
        Vec::<String>::new()
    );
    assert_eq!(lines(&["hub", "search", "bert-tiny"]), ["tiny/bert-tiny"]);
    let out = ok(studio(
        &home,
        url,
        &["hub", "search", "our", "--limit", "1"],
        &[],
    ));
    assert!(
        out.contains("me/our-lora") && out.contains("modified 20"),
        "{out}"
    );
}

#[test]
fn hub_info_lists_the_sizes_python_sees_marks_what_a_download_takes_and_shows_the_card() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    let hub = FakeHub::start(standard_repos(&repos), json!({}));
    let home = tmp.path().join("hf");
    let url = hub.url.as_str();
    let out = ok(studio(
        &home,
        url,
        &["hub", "info", "tiny/bert-tiny", "--json"],
        &[],
    ));
    let info: Value = serde_json::from_str(&out).unwrap();
    let code = "import huggingface_hub as h, json\n\
                i = h.HfApi().model_info('tiny/bert-tiny', files_metadata=True)\n\
                print(json.dumps({'sha': i.sha, 'sizes': {s.rfilename: s.size for s in i.siblings}}))";
    let python_sees: Value = serde_json::from_str(&python(&home, url, code, &[])).unwrap();
    assert_eq!(info["commit"], python_sees["sha"]);
    let files = info["files"].as_array().unwrap();
    assert_eq!(files.len(), python_sees["sizes"].as_object().unwrap().len());
    let mut total = 0;
    for f in files {
        let name = f["name"].as_str().unwrap();
        let on_disk = std::fs::metadata(repos.join("model").join(name))
            .unwrap()
            .len();
        assert_eq!(f["size"], python_sees["sizes"][name], "{name}");
        assert_eq!(f["size"].as_u64(), Some(on_disk), "{name}");
        // TensorFlow weights beside torch ones are not downloaded; everything else is.
        let taken = name != "tf_model.h5";
        assert_eq!(f["downloaded"], taken, "{name}");
        total += if taken { on_disk } else { 0 };
    }
    assert_eq!(info["download_bytes"].as_u64(), Some(total));
    assert_eq!(info["card"], "# tiny\n");
    // Nothing was downloaded to tell this.
    assert!(!home.join("hub").join("models--tiny--bert-tiny").exists());

    let text = ok(studio(&home, url, &["hub", "info", "tiny/lora@v1"], &[]));
    assert!(
        text.contains("* ") && text.contains("adapter_config.json"),
        "{text}"
    );
    assert!(
        text.contains("a download takes") && text.contains("(no model card)"),
        "{text}"
    );
    let e = failure(studio(
        &home,
        url,
        &["hub", "info", "tiny/lora"],
        &[("HF_HUB_OFFLINE", "1")],
    ));
    assert!(
        e.contains("tiny/lora") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    let e = failure(studio(&home, url, &["hub", "info", "tiny/nothing"], &[]));
    assert!(e.contains("tiny/nothing"), "{e}");
}

/// The chunk size the multipart tests give the fake Hub: the LoRA's weights (13,744 bytes)
/// go in three parts, the head's (4,932) by one PUT.
const CHUNK: u64 = 5000;

#[test]
fn weights_over_the_chunk_size_go_up_in_parts_with_one_completion_and_python_reads_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(json!({}), json!({"multipart_chunk_size": CHUNK}));
    let home = tmp.path().join("hf");
    let url = hub.url.as_str();
    let dir = repo_dir(
        tmp.path(),
        "parts",
        &["methods/bert/lora", "methods/bert/head_cls"],
        &[],
    );
    let size = std::fs::metadata(dir.join("adapter.safetensors"))
        .unwrap()
        .len();
    let parts = size.div_ceil(CHUNK);
    assert_eq!(
        parts, 3,
        "the fixture's size changed: pick another chunk size"
    );
    let commit = pushed_commit(push(&home, url, &dir, "me/parts", &[]));

    // The log: one PUT per part, in order, then one completion; the head by a single PUT.
    let log = hub.requests();
    let part_puts: Vec<&String> = log
        .iter()
        .filter(|r| r.starts_with("PUT /lfs-part/me/parts/"))
        .collect();
    assert_eq!(part_puts.len() as u64, parts, "{log:?}");
    for (i, put) in part_puts.iter().enumerate() {
        assert!(put.contains(&format!("partNumber={} ", i + 1)), "{put}");
    }
    assert_eq!(count(&hub, "POST /api/complete_multipart?"), 1, "{log:?}");
    assert_eq!(
        count(&hub, "PUT /lfs-upload/me/parts/"),
        1,
        "the head in one PUT"
    );
    assert_eq!(
        count(&hub, "POST /me/parts.git/info/lfs/objects/verify"),
        2,
        "both verified"
    );
    let completion = log
        .iter()
        .position(|r| r.starts_with("POST /api/complete_multipart?"))
        .unwrap();
    let last_part = log
        .iter()
        .rposition(|r| r.starts_with("PUT /lfs-part/"))
        .unwrap();
    assert!(last_part < completion, "{log:?}");

    // The official client downloads what went up in parts byte for byte.
    let code = format!(
        "import huggingface_hub as h, hashlib, json, os\n\
         p = h.snapshot_download('me/parts', revision='{commit}')\n\
         print(json.dumps({{n: hashlib.sha256(open(os.path.join(p, n), 'rb').read()).hexdigest() \
         for n in os.listdir(p)}}))"
    );
    let got: Value = serde_json::from_str(&python(&home, url, &code, &[])).unwrap();
    for name in [
        "adapter.safetensors",
        "model_head.safetensors",
        "adapter_config.json",
    ] {
        assert_eq!(got[name], json!(sha256_hex(&dir.join(name))), "{name}");
    }

    // The protocol is the Hub's: the official `upload_folder` pushes in parts to the same
    // fake (it parses the part URLs and completes as it does on the Hub), and we read it back.
    let code = format!(
        "import huggingface_hub as h\n\
         api = h.HfApi(endpoint='{url}', token='{TOKEN}')\n\
         api.create_repo('me/py-parts')\n\
         print(api.upload_folder(repo_id='me/py-parts', folder_path='{}').oid)",
        dir.display()
    );
    let py_commit = python(&home, url, &code, &[]);
    assert_eq!(
        count(&hub, "PUT /lfs-part/me/py-parts/") as u64,
        parts,
        "Python went by parts too"
    );
    assert_eq!(count(&hub, "POST /api/complete_multipart?"), 2);
    let folder = download(&home, url, "me/py-parts", &[]);
    assert!(folder.ends_with(&py_commit), "{}", folder.display());
    for name in ["adapter.safetensors", "model_head.safetensors"] {
        assert_eq!(
            sha256_hex(&folder.join(name)),
            sha256_hex(&dir.join(name)),
            "{name}"
        );
    }
}

#[test]
fn a_part_failing_once_is_sent_again_and_one_refused_for_good_is_one_error_naming_file_and_part() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let dir = repo_dir(tmp.path(), "lora", &["methods/bert/lora"], &[]);

    // A 503 (S3's "slow down") on part 2: sent again, the push goes through.
    let hub = FakeHub::start(
        json!({}),
        json!({"multipart_chunk_size": CHUNK,
               "fail_part": {"number": 2, "times": 1, "status": 503}}),
    );
    let commit = pushed_commit(push(&home, &hub.url, &dir, "me/retry", &[]));
    let puts: Vec<String> = hub
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT /lfs-part/"))
        .collect();
    assert_eq!(puts.len(), 4, "part 2 twice: {puts:?}");
    assert_eq!(
        puts.iter().filter(|r| r.contains("partNumber=2 ")).count(),
        2
    );
    let folder = download(&home, &hub.url, "me/retry", &[]);
    assert!(folder.ends_with(&commit));
    assert_eq!(
        sha256_hex(&folder.join("adapter.safetensors")),
        sha256_hex(&dir.join("adapter.safetensors"))
    );

    // A 403 (an expired presigned URL) is not retried: one line naming the file and the part,
    // and no completion, no commit.
    let hub = FakeHub::start(
        json!({}),
        json!({"multipart_chunk_size": CHUNK,
               "fail_part": {"number": 2, "times": 100, "status": 403}}),
    );
    let err = failure(push(&home, &hub.url, &dir, "me/refused", &[]));
    assert!(
        err.contains("me/refused")
            && err.contains("part 2 of 3")
            && err.contains("`adapter.safetensors`")
            && err.contains("HTTP 403"),
        "{err}"
    );
    assert_eq!(count(&hub, "PUT /lfs-part/"), 2, "parts 1 and 2, once each");
    assert_eq!(count(&hub, "POST /api/complete_multipart"), 0);
    assert_eq!(count(&hub, "POST /api/models/me/refused/commit/"), 0);
}
