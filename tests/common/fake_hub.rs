//! The Hugging Face Hub stand-in (tests/reference/fake_hub.py) on 127.0.0.1: started by a
//! test, killed by its PID when dropped (a failing test too). Self-contained, so that the
//! app's kittests include it by path as well.
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The token the stand-in accepts for private repos and uploads.
pub const TOKEN: &str = "hf_testtoken123";

pub struct FakeHub {
    child: Child,
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeHub {
    /// Serves `repos` (`{"owner/name": {"revisions": {"main": FOLDER, …}}, …}`), with the keys
    /// of `extra` added to its configuration (`drop_once`, `corrupt`, …).
    pub fn start(repos: serde_json::Value, extra: serde_json::Value) -> FakeHub {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.log");
        let mut config = serde_json::json!({"repos": repos, "log": log, "token": TOKEN});
        for (k, v) in extra.as_object().into_iter().flatten() {
            config[k] = v.clone();
        }
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/reference/fake_hub.py"))
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
    #[allow(dead_code)]
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Stops serving (the Hub "goes down").
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop();
    }
}
