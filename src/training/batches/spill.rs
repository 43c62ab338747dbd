//! Tokenised examples on disk, for datasets larger than memory: each example's token ids,
//! type ids, token labels and target appended to a spill file, read back through a memory
//! map; only each example's offset and length stay in memory.
//!
//! The file has no name: it is opened with `O_TMPFILE` in the temporary folder (`TMPDIR`),
//! so the system frees it when the process ends, however it ends (a killed run leaves nothing
//! behind). Where the file system cannot (some network file systems), a named file is made and
//! removed at once, before anything is written to it.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::EncodedItem;
use crate::data::{Streamed, Target};
use crate::error::{Error, Result};
use crate::tasks::IGNORE;

const HAS_TYPE_IDS: u8 = 1;
const HAS_TOKEN_LABELS: u8 = 2;

/// Examples are appended here, then [`finish`](SpillWriter::finish)ed into a [`SpillFile`].
pub struct SpillWriter {
    /// The folder the file is in, for messages (the file has no name).
    dir: PathBuf,
    out: BufWriter<File>,
    len: u64,
    record: Vec<u8>,
}

/// A finished spill file, mapped.
pub struct SpillFile {
    map: Mmap,
}

/// The examples of a set stored in a spill file: where each starts and its token count.
/// Label ids in the file are provisional when the set's labels were inferred; `labels`
/// renumbers them as they are read.
#[derive(Clone)]
pub struct SpilledItems {
    pub file: Arc<SpillFile>,
    pub offsets: Vec<u64>,
    pub lengths: Vec<u32>,
    pub labels: Arc<Streamed>,
}

fn spill_error(dir: &Path, e: std::io::Error) -> Error {
    Error::io(dir.join("(unnamed spill file of tokenised examples)"), e)
}

/// An unnamed file in `dir`, freed when closed.
fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        if let Ok(file) = opened {
            return Ok(file);
        }
    }
    // Without O_TMPFILE: a fresh name, removed as soon as it is open.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".adapter-studio-spill-{}-{n}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn out_of_range(what: &str, value: i64) -> Error {
    Error::Invalid(format!(
        "a tokenised example's {what} {value} does not fit the spill file's format"
    ))
}

impl SpillWriter {
    /// A new spill file in the temporary folder.
    pub fn create() -> Result<SpillWriter> {
        let dir = std::env::temp_dir();
        let file = unnamed_file(&dir).map_err(|e| spill_error(&dir, e))?;
        Ok(SpillWriter {
            dir,
            out: BufWriter::with_capacity(1 << 20, file),
            len: 0,
            record: Vec::new(),
        })
    }

    /// Appends `item`; its offset in the file.
    pub fn push(&mut self, item: &EncodedItem) -> Result<u64> {
        let r = &mut self.record;
        r.clear();
        let n = item.ids.len();
        let n = u32::try_from(n).map_err(|_| out_of_range("token count", n as i64))?;
        r.extend_from_slice(&n.to_le_bytes());
        let type_ids = item.type_ids.iter().any(|&t| t != 0);
        let token_labels = !item.token_labels.is_empty();
        let flags = u8::from(type_ids) * HAS_TYPE_IDS + u8::from(token_labels) * HAS_TOKEN_LABELS;
        r.push(flags);
        let id32 = |x: usize| u32::try_from(x).map_err(|_| out_of_range("label id", x as i64));
        match &item.target {
            Target::Class(id) => {
                r.push(0);
                r.extend_from_slice(&id32(*id)?.to_le_bytes());
            }
            Target::Classes(ids) | Target::Tags(ids) => {
                r.push(if matches!(item.target, Target::Classes(_)) {
                    1
                } else {
                    3
                });
                r.extend_from_slice(&id32(ids.len())?.to_le_bytes());
                for &id in ids {
                    r.extend_from_slice(&id32(id)?.to_le_bytes());
                }
            }
            Target::Value(x) => {
                r.push(2);
                r.extend_from_slice(&x.to_bits().to_le_bytes());
            }
        }
        for &id in &item.ids {
            let id = u32::try_from(id).map_err(|_| out_of_range("token id", id))?;
            r.extend_from_slice(&id.to_le_bytes());
        }
        if type_ids {
            if item.type_ids.len() != item.ids.len() {
                return Err(out_of_range("type id count", item.type_ids.len() as i64));
            }
            for &t in &item.type_ids {
                let t = u32::try_from(t).map_err(|_| out_of_range("type id", t))?;
                r.extend_from_slice(&t.to_le_bytes());
            }
        }
        if token_labels {
            if item.token_labels.len() != item.ids.len() {
                return Err(out_of_range(
                    "token label count",
                    item.token_labels.len() as i64,
                ));
            }
            for &l in &item.token_labels {
                let l = i32::try_from(l).map_err(|_| out_of_range("token label", l))?;
                r.extend_from_slice(&l.to_le_bytes());
            }
        }
        self.out
            .write_all(r)
            .map_err(|e| spill_error(&self.dir, e))?;
        let offset = self.len;
        self.len += r.len() as u64;
        Ok(offset)
    }

    /// The written file, mapped for reading.
    pub fn finish(self) -> Result<Arc<SpillFile>> {
        let dir = self.dir;
        let file = self
            .out
            .into_inner()
            .map_err(|e| spill_error(&dir, e.into_error()))?;
        // The file has no name and no other handle: nothing else can change it under the map.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| spill_error(&dir, e))?;
        Ok(Arc::new(SpillFile { map }))
    }
}

/// Reads a record's fields in order.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn ids(&mut self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.u32() as usize).collect()
    }
}

impl SpilledItems {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Example `i` as the in-memory path holds it (final label ids).
    pub fn item(&self, i: usize) -> EncodedItem {
        // Offsets are ours (written by `push` into this very file), so they are in range.
        let offset = self.offsets[i] as usize;
        let mut c = Cursor {
            bytes: &self.file.map[offset..],
            at: 0,
        };
        let n = c.u32() as usize;
        let flags = c.u8();
        let mut target = match c.u8() {
            0 => Target::Class(c.u32() as usize),
            2 => Target::Value(f64::from_bits(u64::from_le_bytes(c.take()))),
            kind => {
                let k = c.u32() as usize;
                match kind {
                    1 => Target::Classes(c.ids(k)),
                    _ => Target::Tags(c.ids(k)),
                }
            }
        };
        self.labels.relabel(&mut target);
        let ids = (0..n).map(|_| i64::from(c.u32())).collect();
        let type_ids = match flags & HAS_TYPE_IDS {
            0 => vec![0; n],
            _ => (0..n).map(|_| i64::from(c.u32())).collect(),
        };
        let token_labels = match flags & HAS_TOKEN_LABELS {
            0 => Vec::new(),
            _ => (0..n)
                .map(|_| match i64::from(i32::from_le_bytes(c.take())) {
                    IGNORE => IGNORE,
                    id => self.labels.label_id(id as usize) as i64,
                })
                .collect(),
        };
        EncodedItem {
            ids,
            type_ids,
            target,
            token_labels,
        }
    }

    /// The examples whose `keep` is true, in order, over the same file.
    pub fn subset(&self, keep: &[bool]) -> SpilledItems {
        let chosen = |i: &usize| keep.get(*i).copied().unwrap_or(false);
        let indices: Vec<usize> = (0..self.len()).filter(chosen).collect();
        SpilledItems {
            file: self.file.clone(),
            offsets: indices.iter().map(|&i| self.offsets[i]).collect(),
            lengths: indices.iter().map(|&i| self.lengths[i]).collect(),
            labels: self.labels.clone(),
        }
    }
}
