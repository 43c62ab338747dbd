//! Hub ids through the Hugging Face cache, against a Hub-compatible server on 127.0.0.1
//! (tests/reference/fake_hub.py, started and stopped by each test), whose protocol the official
//! Python client (`huggingface_hub`) checks in the same tests: downloads by id and revision
//! predict as the local folders, one cache with Python both ways, offline, resume, sha256,
//! tokens, wrong ids.
mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{bin, fixtures, ok, venv_python};
use serde_json::{json, Value};

/// The fake Hub, killed by its PID when dropped (a failing test too).
struct FakeHub {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeHub {
    fn start(repos: Value, extra: Value) -> FakeHub {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.log");
        let mut config = json!({"repos": repos, "log": log, "token": TOKEN});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fake_hub.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the project's .venv exists");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the fake hub prints its port");
        FakeHub {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// The requests served so far, one `METHOD PATH RANGE` line each.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop();
    }
}

const TOKEN: &str = "hf_testtoken123";

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
