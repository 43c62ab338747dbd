//! One writer at a time: lock files for run folders and workspaces that hold on local disks and
//! on shared cluster file systems (NFS, Lustre), where `flock` is unreliable.
//!
//! The protocol: a lock is a small JSON file naming its holder (host, PID, the process's start
//! time, since when, a heartbeat, a random token). It is taken by writing a private file and
//! hard-linking it to the lock's name: `link` is atomic on NFS as well and fails when the name
//! exists (the usual NFS-safe recipe; `O_EXCL` is not safe on older NFS). The holder rewrites the
//! file every [`HEARTBEAT_SECS`] (temp file + rename, so the name never disappears). A lock whose
//! holder is gone is taken over, with a notice: on the same host when its PID no longer runs (or
//! now runs another process), on any host when its heartbeat is older than [`STALE_SECS`]. Two
//! processes taking over at once are serialised by a short `NAME.takeover` lock.
//!
//! No crate fits: the well-kept ones (`fs2`, `fd-lock`, `fslock`) are `flock`/`fcntl` based.
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How often a holder refreshes its lock file.
pub const HEARTBEAT_SECS: u64 = 10;
/// A heartbeat older than this means the holder is gone (a crashed node, a killed job).
pub const STALE_SECS: u64 = 60;

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// The process's start time (clock ticks after boot, `/proc/PID/stat`): a reused PID is
    /// another process.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// What the holder does: "training", "exporting", "the app", …
    pub purpose: String,
    pub since_unix_secs: u64,
    pub heartbeat_unix_secs: u64,
    pub token: String,
}

impl Holder {
    pub(crate) fn me(purpose: &str) -> Self {
        let now = unix_secs();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        Holder {
            host: host_name(),
            pid,
            pid_start: process_start(pid),
            purpose: purpose.to_string(),
            since_unix_secs: now,
            heartbeat_unix_secs: now,
            token: format!(
                "{pid}-{now}-{}-{}",
                COUNTER.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            ),
        }
    }

    /// Whether the holder has gone away: its process no longer runs on this host, or its
    /// heartbeat stopped.
    pub fn is_gone(&self, now_unix_secs: u64) -> bool {
        if now_unix_secs.saturating_sub(self.heartbeat_unix_secs) > STALE_SECS {
            return true;
        }
        self.host == host_name() && !process_alive(self.pid, self.pid_start)
    }

    /// "pid 4242 on host `node-3`, training since 2026-12-01 22:14:32 UTC".
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host `{}`, {} since {}",
            self.pid,
            crate::error::clip(&self.host),
            crate::error::clip(&self.purpose),
            utc_text(self.since_unix_secs)
        )
    }
}

/// What a lock file says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Free,
    Held(Holder),
    /// Held by someone who is gone: the next `acquire` takes it over.
    Stale(Holder),
}

/// The lock file's state, for views that only look (the app's run list).
pub fn state(path: &Path) -> State {
    match read_holder(path) {
        None => State::Free,
        Some(h) if h.is_gone(unix_secs()) => State::Stale(h),
        Some(h) => State::Held(h),
    }
}

/// A held lock: refreshed by a heartbeat thread, removed on drop.
pub struct Lock {
    path: PathBuf,
    token: String,
    /// The gone holder this lock was taken over from.
    pub took_over: Option<Holder>,
    lost: Arc<AtomicBool>,
    heartbeat: Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("path", &self.path).finish()
    }
}

impl Lock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Someone took the lock over (our heartbeat stalled beyond [`STALE_SECS`]): stop writing.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The takeover notice, when there is one.
    pub fn notice(&self) -> Option<String> {
        self.took_over.as_ref().map(|h| {
            format!(
                "took over the lock {} from a holder that is gone ({})",
                self.path.display(),
                h.describe()
            )
        })
    }

    /// The locked folder was moved (to the trash): release the lock file at its new place.
    pub fn release_moved(mut self, new_path: &Path) {
        self.stop_heartbeat();
        remove_if_ours(new_path, &self.token);
        self.token.clear();
    }

    fn stop_heartbeat(&mut self) {
        if let Some((tx, handle)) = self.heartbeat.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop_heartbeat();
        if !self.token.is_empty() {
            remove_if_ours(&self.path, &self.token);
        }
    }
}

fn remove_if_ours(path: &Path, token: &str) {
    if read_holder(path).is_some_and(|h| h.token == token) {
        let _ = fs::remove_file(path);
    }
}

/// Takes the lock at `path` for `purpose`, or says who holds it (`Error::Locked`).
pub fn acquire(path: &Path, purpose: &str) -> Result<Lock> {
    match try_acquire(path, purpose)? {
        Ok(lock) => Ok(lock),
        Err(holder) => Err(Error::Locked {
            path: path.to_path_buf(),
            holder: holder.describe(),
        }),
    }
}

/// Takes the lock, waiting while someone holds it; `on_wait` hears about the holder once.
/// Setting `stop` gives up (`Error::Cancelled`); `timeout` gives up with `Error::Locked`.
pub fn acquire_waiting(
    path: &Path,
    purpose: &str,
    stop: &AtomicBool,
    timeout: Option<Duration>,
    on_wait: &mut dyn FnMut(&Holder),
) -> Result<Lock> {
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        match try_acquire(path, purpose)? {
            Ok(lock) => return Ok(lock),
            Err(holder) => {
                if timeout.is_some_and(|t| started.elapsed() >= t) {
                    return Err(Error::Locked {
                        path: path.to_path_buf(),
                        holder: holder.describe(),
                    });
                }
                if !told {
                    on_wait(&holder);
                    told = true;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `Ok(Ok(lock))`, or `Ok(Err(holder))` when a live holder has it.
pub fn try_acquire(path: &Path, purpose: &str) -> Result<std::result::Result<Lock, Holder>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::io::create_dir_all(parent)?;
    }
    let me = Holder::me(purpose);
    for _ in 0..50 {
        if link_new(path, &me)? {
            return Ok(Ok(start(path, me, None)));
        }
        let Some(holder) = read_holder(path) else {
            continue; // released in between: try again
        };
        if !holder.is_gone(unix_secs()) {
            return Ok(Err(holder));
        }
        match take_over(path, &holder, &me)? {
            Some(true) => return Ok(Ok(start(path, me, Some(holder)))),
            // Someone else is taking over (or just did): look again.
            Some(false) | None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Err(Error::Invalid(format!(
        "{}: the lock changes hands too fast to take it",
        path.display()
    )))
}

/// Replaces the gone `stale` holder's lock with ours, under the `.takeover` lock.
/// `Some(true)`: ours now; `Some(false)`: the lock is no longer `stale`'s; `None`: someone else
/// is taking it over.
fn take_over(path: &Path, stale: &Holder, me: &Holder) -> Result<Option<bool>> {
    let guard = sibling(path, "takeover");
    if !link_new(&guard, me)? {
        // A taker that died mid-way (killed during a resume) leaves its guard: gone at once
        // when its process is (as a lock's holder), else old after a few seconds.
        let old = fs::metadata(&guard)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 10);
        let dead = read_holder(&guard).is_some_and(|h| h.pid != 0 && h.is_gone(unix_secs()));
        if old || dead {
            let _ = fs::remove_file(&guard);
        }
        return Ok(None);
    }
    let result = (|| {
        if read_holder(path).map(|h| h.token) != Some(stale.token.clone()) {
            return Ok(false);
        }
        fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        link_new(path, me)
    })();
    let _ = fs::remove_file(&guard);
    result.map(Some)
}

fn start(path: &Path, me: Holder, took_over: Option<Holder>) -> Lock {
    let lost = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    let (file, token, flag) = (path.to_path_buf(), me.token.clone(), lost.clone());
    let handle = std::thread::Builder::new()
        .name("lock-heartbeat".into())
        .spawn(move || {
            let mut me = me;
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_secs(HEARTBEAT_SECS))
            {
                if read_holder(&file).map(|h| h.token) != Some(me.token.clone()) {
                    flag.store(true, Ordering::Relaxed);
                    return;
                }
                me.heartbeat_unix_secs = unix_secs();
                if let Ok(bytes) = serde_json::to_vec_pretty(&me) {
                    let _ = crate::io::write_atomic(&file, &bytes);
                }
            }
        });
    Lock {
        path: path.to_path_buf(),
        token,
        took_over,
        lost,
        heartbeat: handle.ok().map(|h| (tx, h)),
    }
}

/// Creates `path` holding `who`, atomically, only if it does not exist: a private file
/// hard-linked to the name. `Ok(false)` when the name exists.
fn link_new(path: &Path, who: &Holder) -> Result<bool> {
    let private = sibling(path, &format!("{}.{}", who.host, who.token));
    let bytes = serde_json::to_vec_pretty(who).map_err(|source| Error::Json {
        path: private.clone(),
        source,
    })?;
    let written = (|| {
        let mut f = fs::File::create(&private)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&private);
        return Err(Error::io(&private, e));
    }
    let linked = match fs::hard_link(&private, path) {
        Ok(()) => Ok(true),
        // NFS can lose the reply of a link that succeeded: the link count tells.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(fs::metadata(&private).is_ok_and(|m| m.nlink() == 2))
        }
        Err(e) => Err(Error::io(path, e)),
    };
    let _ = fs::remove_file(&private);
    linked
}

/// `.NAME.what` next to `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.{what}"))
}

/// The holder named by the lock file; `None` when there is none. A file that is not ours to
/// read as a holder (damaged) counts as held since its modification time, by nobody alive.
fn read_holder(path: &Path) -> Option<Holder> {
    // A holder is a few hundred bytes: anything past 64 KiB (a lock replaced by a link to
    // /dev/zero, say) is damaged, not something to read whole.
    const MAX_LOCK_BYTES: u64 = 64 * 1024;
    let mut bytes = Vec::new();
    // Opening a FIFO would wait for a writer.
    let regular = fs::metadata(path).map_or(true, |m| m.is_file());
    let opened = match regular {
        true => fs::File::open(path),
        false => Err(std::io::Error::other("not a regular file")),
    };
    match opened {
        Ok(f) => {
            use std::io::Read;
            if f.take(MAX_LOCK_BYTES + 1).read_to_end(&mut bytes).is_err()
                || bytes.len() as u64 > MAX_LOCK_BYTES
            {
                bytes.clear();
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => {}
    }
    serde_json::from_slice(&bytes).ok().or_else(|| {
        let modified = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(Holder {
            host: "?".into(),
            pid: 0,
            pid_start: None,
            purpose: "an unreadable lock file".into(),
            since_unix_secs: modified,
            heartbeat_unix_secs: modified,
            token: format!("unreadable-{modified}-{}", bytes.len()),
        })
    })
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// This machine's name (Linux), as cluster nodes tell each other apart.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Field 22 of `/proc/PID/stat`: when the process started.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` still runs the process that started at `start`. Without `/proc` we cannot
/// tell, and say yes: the heartbeat decides then.
pub(crate) fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match process_start(pid) {
        None => {
            !matches!(fs::metadata(format!("/proc/{pid}")), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        }
        Some(now) => start.is_none_or(|s| s == now),
    }
}

/// "2026-12-01 22:14:32 UTC".
pub fn utc_text(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Days to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder on this host whose process has exited.
    fn dead_holder() -> Holder {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let mut gone = Holder::me("training");
        gone.pid = dead_pid;
        gone.pid_start = Some(1);
        gone
    }

    fn fake(path: &Path, holder: &Holder) {
        fs::write(path, serde_json::to_vec(holder).unwrap()).unwrap();
    }

    #[test]
    fn a_second_taker_is_refused_with_the_holder_named_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = acquire(&path, "training").unwrap();
        assert!(first.took_over.is_none());
        let err = acquire(&path, "training").unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(
            err.contains(&host_name()) && err.contains("training since"),
            "{err}"
        );
        assert!(matches!(state(&path), State::Held(h) if h.purpose == "training"));
        drop(first);
        assert_eq!(state(&path), State::Free);
        let again = acquire(&path, "exporting").unwrap();
        // Nothing but the lock file is left next to it (no private link files).
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [".lock"]);
        drop(again);
    }

    #[test]
    fn among_many_threads_taking_one_lock_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let barrier = std::sync::Barrier::new(8);
        let won: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        acquire(&path, "training").map(std::mem::forget).is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    }

    #[test]
    fn a_lock_whose_process_is_dead_on_this_host_is_taken_over_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let gone = dead_holder();
        let dead_pid = gone.pid;
        fake(&path, &gone);
        assert!(matches!(state(&path), State::Stale(_)));
        let lock = acquire(&path, "training").unwrap();
        assert_eq!(lock.took_over.as_ref().map(|h| h.pid), Some(dead_pid));
        assert!(lock.notice().unwrap().contains(&format!("pid {dead_pid}")));
        assert!(matches!(state(&path), State::Held(h) if h.pid == std::process::id()));
    }

    /// A process killed while taking a lock over leaves the takeover guard behind: the next
    /// taker removes it at once (its process is dead) instead of failing for ten seconds.
    #[test]
    fn a_takeover_guard_left_by_a_dead_process_does_not_block_the_next_taker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let gone = dead_holder();
        let dead_pid = gone.pid;
        fake(&path, &gone);
        let mut taker = dead_holder();
        taker.token = "killed-mid-takeover".into();
        fake(&sibling(&path, "takeover"), &taker);
        let lock = acquire(&path, "training").unwrap();
        assert_eq!(lock.took_over.as_ref().map(|h| h.pid), Some(dead_pid));
        assert!(!sibling(&path, "takeover").exists());
    }

    #[test]
    fn a_reused_pid_is_another_process_and_its_lock_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let mut reused = Holder::me("training");
        reused.pid_start = reused.pid_start.map(|s| s + 1);
        fake(&path, &reused);
        assert!(acquire(&path, "training").unwrap().took_over.is_some());
    }

    #[test]
    fn another_hosts_lock_holds_while_its_heartbeat_is_fresh_and_is_taken_over_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let mut remote = Holder::me("training");
        remote.host = "node-17.cluster".into();
        remote.pid = 1; // alive here, but another host's PID means nothing here
        fake(&path, &remote);
        let err = acquire(&path, "training").unwrap_err().to_string();
        assert!(err.contains("node-17.cluster"), "{err}");
        remote.heartbeat_unix_secs -= STALE_SECS + 5;
        fake(&path, &remote);
        let lock = acquire(&path, "training").unwrap();
        assert_eq!(
            lock.took_over.as_ref().map(|h| h.host.as_str()),
            Some("node-17.cluster")
        );
    }

    #[test]
    fn a_damaged_lock_file_counts_as_held_until_it_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        fs::write(&path, b"\0garbage").unwrap();
        let err = acquire(&path, "training").unwrap_err().to_string();
        assert!(err.contains("unreadable lock file"), "{err}");
        let old = std::time::SystemTime::now() - Duration::from_secs(STALE_SECS + 5);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(acquire(&path, "training").unwrap().took_over.is_some());
    }

    #[test]
    fn a_lock_file_linked_to_dev_zero_or_naming_a_huge_host_is_read_bounded_and_shown_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        // Read no further than a lock's size: damaged, held since the link's target changed
        // (boot time for /dev/zero), so long ago that it is taken over.
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let lock = acquire(&path, "training").unwrap();
        let previous = lock.took_over.as_ref().map(|h| h.purpose.as_str());
        assert_eq!(previous, Some("an unreadable lock file"));
        drop(lock);
        let _ = fs::remove_file(&path);
        let mut other = Holder::me("training");
        other.host = "h".repeat(50_000);
        other.pid = 1; // alive, on "another host": held
        fake(&path, &other);
        let err = acquire(&path, "training").unwrap_err().to_string();
        assert!(
            err.len() < 1000 && err.contains("more bytes"),
            "{}",
            err.len()
        );
    }

    #[test]
    fn a_lock_taken_over_from_its_holder_is_reported_lost_by_the_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let lock = acquire(&path, "training").unwrap();
        let mut other = Holder::me("training");
        other.host = "elsewhere".into();
        fake(&path, &other);
        assert!(!lock.is_lost());
        std::thread::sleep(Duration::from_secs(HEARTBEAT_SECS + 1));
        assert!(lock.is_lost());
        drop(lock);
        assert!(path.exists(), "the new holder's lock file stays");
    }

    #[test]
    fn waiting_takes_the_lock_once_the_holder_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = acquire(&path, "training").unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(first);
        });
        let mut heard = Vec::new();
        let stop = AtomicBool::new(false);
        let lock =
            acquire_waiting(&path, "training", &stop, None, &mut |h| heard.push(h.pid)).unwrap();
        released.join().unwrap();
        assert_eq!(heard, [std::process::id()], "told once about the holder");
        assert!(lock.took_over.is_none());
        let err = acquire_waiting(
            &path,
            "x",
            &stop,
            Some(Duration::from_millis(300)),
            &mut |_| {},
        );
        assert!(matches!(err, Err(Error::Locked { .. })));
    }

    #[test]
    fn utc_text_formats_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_text(1_796_164_472), "2026-12-01 22:34:32 UTC");
    }
}
