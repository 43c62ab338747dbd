//! Starting TensorBoard on a folder of runs (the app's *Open in TensorBoard*, the CLI's
//! `tensorboard`): finds the `tensorboard` program (on `PATH`, or in the project's `.venv`),
//! runs `tensorboard --logdir DIR --host 127.0.0.1 --port PORT` as a child process that a
//! named thread watches, and says where it answers. Dropping the [`TensorBoard`] stops it.
use std::collections::VecDeque;
use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The program's file name.
pub const PROGRAM: &str = "tensorboard";

/// What to do when TensorBoard is not installed.
pub const INSTALL_HINT: &str = "install it with `pip install tensorboard` (in a checkout of \
     Adapter Studio, `scripts/setup.sh --test` installs it into .venv)";

/// Lines of the program's error output kept to explain an early exit.
const KEPT_LINES: usize = 20;

/// Where to look for `tensorboard`: each folder of `PATH`, then the project's `.venv/bin` next
/// to this binary's checkout (`target/<profile>/adapter-studio`) and at build time's checkout.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            dirs.push(root.join(".venv").join("bin"));
        }
    }
    dirs.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv")
            .join("bin"),
    );
    dirs
}

/// The first executable `tensorboard` in `dirs`, or an error that says how to install it.
pub fn find(dirs: &[PathBuf]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(PROGRAM))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            Error::Invalid(format!(
                "TensorBoard is not installed (no `{PROGRAM}` on PATH or in the project's \
                 .venv): {INSTALL_HINT}"
            ))
        })
}

/// What the watching thread saw of the child.
#[derive(Default)]
struct Watch {
    /// How it ended, once it has.
    exit: Option<String>,
    /// The last lines of its error output (where TensorBoard writes its messages).
    stderr: VecDeque<String>,
}

/// A running TensorBoard; stopped (with its process group) when dropped.
pub struct TensorBoard {
    child: Arc<Mutex<Child>>,
    watch: Arc<Mutex<Watch>>,
    port: u16,
    logdir: PathBuf,
}

/// A port nobody listens on now (the OS's pick); TensorBoard binds it a moment later.
fn free_port() -> Result<u16> {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    TcpListener::bind(any)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Invalid(format!("cannot find a free port for TensorBoard: {e}")))
}

/// Starts `program --logdir LOGDIR --host 127.0.0.1 --port PORT` (a free port when `port` is
/// None). It answers a little later: see [`TensorBoard::wait_ready`].
pub fn start(program: &Path, logdir: &Path, port: Option<u16>) -> Result<TensorBoard> {
    if !logdir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: no such folder (no runs yet?)",
            logdir.display()
        )));
    }
    let port = match port {
        Some(p) => p,
        None => free_port()?,
    };
    let mut child = Command::new(program)
        .arg("--logdir")
        .arg(logdir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // A group of its own: stopping it stops what it started, and a Ctrl-C in the terminal
        // reaches us only (the CLI stops it then).
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(program, e))?;
    let stderr = child.stderr.take();
    let child = Arc::new(Mutex::new(child));
    let watch = Arc::new(Mutex::new(Watch::default()));
    let (c, w) = (child.clone(), watch.clone());
    // The thread ends when the child does (or is stopped): its error output ends first.
    let watcher = std::thread::Builder::new()
        .name("adapter-studio-tensorboard".into())
        .spawn(move || watch_child(c, w, stderr));
    let tb = TensorBoard {
        child,
        watch,
        port,
        logdir: logdir.to_path_buf(),
    };
    // Without its watcher nobody would see it end: stop it (`tb` is dropped).
    watcher.map_err(|e| Error::Invalid(format!("cannot watch TensorBoard: {e}")))?;
    Ok(tb)
}

/// Keeps the last lines of the child's error output, then notes how it ended.
fn watch_child(
    child: Arc<Mutex<Child>>,
    watch: Arc<Mutex<Watch>>,
    stderr: Option<std::process::ChildStderr>,
) {
    if let Some(err) = stderr {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut w) = watch.lock() {
                if w.stderr.len() == KEPT_LINES {
                    w.stderr.pop_front();
                }
                w.stderr.push_back(line);
            }
        }
    }
    loop {
        let status = match child.lock() {
            Ok(mut c) => c.try_wait(),
            Err(_) => return,
        };
        match status {
            Ok(Some(s)) => {
                if let Ok(mut w) = watch.lock() {
                    w.exit = Some(s.to_string());
                }
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                if let Ok(mut w) = watch.lock() {
                    w.exit = Some(e.to_string());
                }
                return;
            }
        }
    }
}

impl TensorBoard {
    /// Where it answers (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn logdir(&self) -> &Path {
        &self.logdir
    }

    /// Why it is no longer running (its exit status and last error lines), once it ended.
    pub fn exited(&self) -> Option<String> {
        let w = self.watch.lock().ok()?;
        let exit = w.exit.as_ref()?;
        let said: Vec<&str> = w.stderr.iter().map(String::as_str).collect();
        Some(match said.is_empty() {
            true => format!("TensorBoard ended ({exit})"),
            false => format!("TensorBoard ended ({exit}): {}", said.join("\n")),
        })
    }

    /// Waits until it accepts connections on its port; an error if it ends first or does
    /// not answer within `timeout` (it is then stopped when dropped).
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(why) = self.exited() {
                return Err(Error::Invalid(why));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let said = self
                    .watch
                    .lock()
                    .map(|w| w.stderr.iter().cloned().collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "TensorBoard did not answer on port {} within {} s{}",
                    self.port,
                    timeout.as_secs(),
                    match said.is_empty() {
                        true => String::new(),
                        false => format!(": {said}"),
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it: SIGTERM to its process group, SIGKILL if it is still there after 2 s.
    pub fn stop(&mut self) {
        let Ok(mut child) = self.child.lock() else {
            return;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        let group = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group of a child we started; no memory is touched.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(2) {
                // SAFETY: as above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TensorBoard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens `url` in the desktop's browser (`xdg-open`, `open` on macOS), without waiting for it.
pub fn open_in_browser(url: &str) -> Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let mut child = Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::Invalid(format!(
                "cannot open a browser ({opener}: {e}); open {url} yourself"
            ))
        })?;
    // Reaped on a thread of its own: the opener returns at once, the browser lives on.
    std::thread::Builder::new()
        .name("adapter-studio-browser".into())
        .spawn(move || {
            let _ = child.wait();
        })
        .map_err(|e| Error::Invalid(format!("cannot open a browser: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in `tensorboard` in a folder of its own: it writes its arguments to
    /// `args.txt` beside it, then runs `body` (with `$port` set from `--port`).
    fn fake(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROGRAM);
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args.txt\"\n\
             while [ $# -gt 0 ]; do [ \"$1\" = --port ] && port=$2; shift; done\n{body}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_missing_tensorboard_says_how_to_install_it_and_a_present_one_is_found() {
        let empty = tempfile::tempdir().unwrap();
        let e = find(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("pip install tensorboard"), "{e}");
        // A file of that name that cannot run is not it.
        std::fs::write(empty.path().join(PROGRAM), "").unwrap();
        assert!(find(&[empty.path().to_path_buf()]).is_err());
        let (dir, path) = fake("exit 0");
        let found = find(&[empty.path().to_path_buf(), dir.path().to_path_buf()]).unwrap();
        assert_eq!(found, path);
    }

    #[test]
    fn it_starts_on_the_logdir_and_a_free_local_port_answers_and_stops_when_dropped() {
        // Listens on the port it was given, as TensorBoard does.
        let (dir, program) = fake(
            "exec python3 -c \"import socket,time; s=socket.socket(); \
             s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(60)\"",
        );
        let logdir = tempfile::tempdir().unwrap();
        let tb = start(&program, logdir.path(), None).unwrap();
        tb.wait_ready(Duration::from_secs(30)).unwrap();
        assert_eq!(tb.url(), format!("http://127.0.0.1:{}/", tb.port()));
        let args = std::fs::read_to_string(dir.path().join("args.txt")).unwrap();
        let want = format!(
            "--logdir\n{}\n--host\n127.0.0.1\n--port\n{}\n",
            logdir.path().display(),
            tb.port()
        );
        assert_eq!(args, want);
        assert!(tb.exited().is_none());
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, tb.port()));
        drop(tb);
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "stopped with the handle"
        );
    }

    #[test]
    fn one_that_ends_at_once_is_an_error_with_what_it_said() {
        let (_dir, program) = fake("echo 'no module named tensorboard' >&2; exit 3");
        let logdir = tempfile::tempdir().unwrap();
        let tb = start(&program, logdir.path(), None).unwrap();
        let e = tb
            .wait_ready(Duration::from_secs(30))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no module named tensorboard"), "{e}");
        assert!(e.contains('3'), "the exit status: {e}");
        let e = start(&program, &logdir.path().join("nope"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no such folder"), "{e}");
    }
}
