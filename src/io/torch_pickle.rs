//! Reading and writing PyTorch `.bin` / `.pt` state-dict files (the zip-based
//! `torch.save` format used since torch 1.6) without executing anything.
//!
//! The reader is a restricted pickle VM in the spirit of
//! `torch.load(weights_only=True)`: only a fixed allow-list of globals
//! (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the
//! `torch.*Storage` classes, ...) can be referenced; anything else is an error
//! that names the offending global. Tensor views are materialized as
//! contiguous, row-major, little-endian byte buffers (honoring storage offsets
//! and strides, so tied weights and transposed views work).
//!
//! The writer produces what `torch.save(ordered_dict_of_tensors, f)` produces
//! (pickle protocol 2, uncompressed zip, 64-byte aligned storages), so the
//! files load with `torch.load(f, weights_only=True)` and `mmap=True`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::rc::Rc;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Name of the legacy typed-storage class torch pickles for this dtype.
    fn storage_name(self) -> &'static str {
        match self {
            DType::F32 => "FloatStorage",
            DType::F64 => "DoubleStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::I16 => "ShortStorage",
            DType::I8 => "CharStorage",
            DType::U8 => "ByteStorage",
            DType::Bool => "BoolStorage",
        }
    }

    fn from_storage_name(name: &str) -> Option<DType> {
        const ALL: [DType; 10] = [
            DType::F32,
            DType::F64,
            DType::F16,
            DType::BF16,
            DType::I64,
            DType::I32,
            DType::I16,
            DType::I8,
            DType::U8,
            DType::Bool,
        ];
        ALL.into_iter().find(|d| d.storage_name() == name)
    }

    /// `torch.<name>` dtype objects (may appear in tensor metadata).
    fn from_dtype_name(name: &str) -> Option<DType> {
        Some(match name {
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }
}

/// A dense tensor: contiguous, row-major, little-endian bytes.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Errors from reading or writing a PyTorch weights file. Every message starts
/// with the file path.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    #[error("{path}: {}", crate::error::io_message(source))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a PyTorch zip archive ({reason})")]
    NotZip { path: String, reason: String },
    #[error(
        "{path}: this PyTorch file format is not supported (not the zip format, nor the legacy format torch.save wrote before 1.6); re-save it with a recent torch"
    )]
    LegacyFormat { path: String },
    #[error("{path}: truncated file ({what})")]
    Truncated { path: String, what: String },
    #[error("{path}: zip archive error: {msg}")]
    Zip { path: String, msg: String },
    #[error(
        "{path}: unsupported pickle global `{name}` (only tensors can be loaded from a weights file)"
    )]
    UnsupportedGlobal { path: String, name: String },
    #[error("{path}: unknown pickle opcode 0x{opcode:02x} at offset {offset} of data.pkl")]
    UnknownOpcode {
        path: String,
        opcode: u8,
        offset: usize,
    },
    #[error("{path}: malformed pickle at offset {offset} of data.pkl: {msg}")]
    Malformed {
        path: String,
        offset: usize,
        msg: String,
    },
    #[error("{path}: storage `{name}` missing")]
    MissingStorage { path: String, name: String },
    #[error("{path}: invalid tensor `{key}`: {msg}")]
    InvalidTensor {
        path: String,
        key: String,
        msg: String,
    },
    #[error("{path}: unsupported content: {msg}")]
    Unsupported { path: String, msg: String },
}

fn pstr(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

/// Read a `torch.save`d state dict (`{name: tensor}`), keeping file order.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, RawTensor)>, PickleError> {
    let p = pstr(path);
    let io_err = |e: std::io::Error| PickleError::Io {
        path: p.clone(),
        source: e,
    };
    // A regular file only: opening a pipe would wait for a writer, a device never ends.
    let mut file = super::atomic::open_regular(path, true).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(io_err)? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if !head.starts_with(b"PK\x03\x04") && !head.starts_with(b"PK\x05\x06") {
        if n == 0 {
            return Err(PickleError::NotZip {
                path: p,
                reason: "file is empty".into(),
            });
        }
        // Legacy torch files (before 1.6) are a bare pickle stream starting with the magic
        // number; the older tar form is not read.
        if head.starts_with(LEGACY_MAGIC) {
            return read_legacy(file, &p, file_len);
        }
        if head[0] == 0x80 || (n >= 262 && &head[257..262] == b"ustar") {
            return Err(PickleError::LegacyFormat { path: p });
        }
        return Err(PickleError::NotZip {
            path: p,
            reason: "missing zip signature".into(),
        });
    }
    file.rewind().map_err(io_err)?;
    let mut zip =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|e| PickleError::Truncated {
            path: p.clone(),
            what: format!("cannot read zip directory: {e}"),
        })?;

    let mut names = Vec::with_capacity(zip.len());
    // Uncompressed sizes from the directory, to count storages before reading any.
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| zip_err(&p, e))?;
        names.push(f.name().to_string());
        sizes.insert(f.name().to_string(), f.size());
    }
    // `<prefix>/data.pkl`; prefer a top-level prefix, fall back to any suffix match.
    let pkl_name = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .or_else(|| names.iter().find(|n| n.ends_with("data.pkl")))
        .cloned()
        .ok_or_else(|| PickleError::NotZip {
            path: p.clone(),
            reason: "zip archive has no `data.pkl` entry".into(),
        })?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();

    let mut budget = read_budget(file_len);
    if names.iter().any(|n| *n == format!("{prefix}byteorder")) {
        let bo = read_entry(
            &mut zip,
            &format!("{prefix}byteorder"),
            file_len,
            budget,
            &p,
        )?;
        budget -= bo.len() as u64;
        if bo.trim_ascii() != b"little" {
            return Err(PickleError::Unsupported {
                path: p,
                msg: format!(
                    "byte order `{}` (only little-endian files are supported)",
                    String::from_utf8_lossy(&bo)
                ),
            });
        }
    }

    let pkl = read_entry(&mut zip, &pkl_name, file_len, budget, &p)?;
    let entries = {
        let mut vm = Vm::new(&pkl, &p);
        let top = vm.run()?;
        vm.extract_state_dict(top)?
    };
    budget = budget.saturating_sub(pkl.len() as u64);
    drop(pkl);

    // Load each storage once; drop it after its last use.
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (_, t) in &entries {
        *uses.entry(t.storage.key.clone()).or_default() += 1;
    }
    // Everything the storages and tensors will take is counted before anything is read.
    let mut storage_bytes = 0u64;
    for skey in uses.keys() {
        let ename = format!("{prefix}data/{skey}");
        let Some(&size) = sizes.get(&ename) else {
            return Err(PickleError::MissingStorage {
                path: p,
                name: ename,
            });
        };
        storage_bytes = storage_bytes.saturating_add(size);
    }
    check_total(&entries, storage_bytes, budget, file_len, &p)?;
    let mut cache: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (key, t) in entries {
        let skey = &t.storage.key;
        if !cache.contains_key(skey) {
            let ename = format!("{prefix}data/{skey}");
            if !names.contains(&ename) {
                return Err(PickleError::MissingStorage {
                    path: p,
                    name: ename,
                });
            }
            // Counted above (check_total), from the same directory record.
            let bytes = read_entry(&mut zip, &ename, file_len, u64::MAX, &p)?;
            cache.insert(skey.clone(), bytes);
        }
        let storage = &cache[skey];
        let tensor =
            materialize(&t, storage, file_len).map_err(|msg| PickleError::InvalidTensor {
                path: p.clone(),
                key: key.clone(),
                msg,
            })?;
        let left = uses.get_mut(skey).expect("counted above");
        *left -= 1;
        if *left == 0 {
            cache.remove(skey);
        }
        out.push((key, tensor));
    }
    Ok(out)
}

/// The most bytes reading one file may allocate for its contents: data.pkl, the storages
/// read and the tensors materialised from them, all together. A real file needs about twice
/// its size (each storage once, then its tensors; tied weights and the library's shared
/// prefix pools repeat a few tensors), and torch stores entries uncompressed, so 16 times
/// the file's size is wide room; the 1 GiB floor covers small files whose views repeat a
/// storage. A per-tensor cap alone let a 2 KB file of stride-0 views of one float ask for
/// 1 GiB per tensor, as many times as it names tensors.
fn read_budget(file_len: u64) -> u64 {
    file_len.saturating_mul(16).max(1 << 30)
}

/// Bytes tensor `t` takes once materialised (saturating: an overflow is over any budget).
fn materialized_bytes(t: &TensorSpec) -> u64 {
    if t.size.contains(&0) {
        return 0;
    }
    t.size
        .iter()
        .fold(t.storage.dtype.size_bytes() as u64, |a, &s| {
            a.saturating_mul(s as u64)
        })
}

/// Refuses, before any storage is read or tensor made, a file whose storages
/// (`storage_bytes`) and tensors together would take more than `budget` bytes.
fn check_total(
    entries: &[(String, Rc<TensorSpec>)],
    storage_bytes: u64,
    budget: u64,
    file_len: u64,
    p: &str,
) -> Result<(), PickleError> {
    let mut total = storage_bytes;
    for (key, t) in entries {
        total = total.saturating_add(materialized_bytes(t));
        if total > budget {
            return Err(PickleError::InvalidTensor {
                path: p.to_string(),
                key: key.clone(),
                msg: format!(
                    "the file's storages and tensors up to this one would take {} bytes once \
                     read, more than the {} bytes allowed for a file of {file_len} bytes \
                     (views that repeat one storage, such as stride 0?)",
                    if total == u64::MAX {
                        "2^64 or more".to_string()
                    } else {
                        total.to_string()
                    },
                    read_budget(file_len)
                ),
            });
        }
    }
    Ok(())
}

/// `pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)`: how `torch.save` begins a legacy file.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";

/// The legacy format (`torch.save(..., _use_new_zipfile_serialization=False)`, and every
/// file before torch 1.6): five pickles — magic, protocol version 1001, system info, the
/// object, the list of storage keys — then each storage as an int64 element count and its
/// raw bytes. The object is read by the same restricted VM as the zip format.
fn read_legacy(
    file: File,
    p: &str,
    file_len: u64,
) -> Result<Vec<(String, RawTensor)>, PickleError> {
    let io_err = |e: std::io::Error| PickleError::Io {
        path: p.to_string(),
        source: e,
    };
    // The file already opened (and checked to be a regular file), never more than its size.
    let mut file = file;
    file.rewind().map_err(io_err)?;
    let mut bytes = Vec::with_capacity(file_len as usize);
    file.take(file_len)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let mut at = LEGACY_MAGIC.len();
    // Runs one pickle from `at`, moving `at` past its STOP.
    let next = |at: &mut usize, f: &mut dyn FnMut(&mut Vm, Value) -> Result<(), PickleError>| {
        let mut vm = Vm::new(&bytes[*at..], p);
        let value = vm.run()?;
        f(&mut vm, value)?;
        *at += vm.pos;
        Ok::<(), PickleError>(())
    };
    let unsupported = |msg: String| PickleError::Unsupported {
        path: p.to_string(),
        msg,
    };
    next(&mut at, &mut |_, v| match v {
        Value::Int(1001) => Ok(()),
        other => Err(unsupported(format!(
            "legacy file protocol {} (expected 1001)",
            match other {
                Value::Int(i) => i.to_string(),
                o => o.kind().to_string(),
            }
        ))),
    })?;
    next(&mut at, &mut |_, v| {
        let little = match &v {
            Value::Dict(d) => d.borrow().items.iter().any(|(k, v)| {
                matches!((k, v), (Value::Str(k), Value::Bool(true)) if &**k == "little_endian")
            }),
            _ => false,
        };
        match little {
            true => Ok(()),
            false => Err(unsupported(
                "a big-endian (or unlabelled) legacy file".into(),
            )),
        }
    })?;
    let mut entries = Vec::new();
    next(&mut at, &mut |vm, top| {
        entries = vm.extract_state_dict(top)?;
        Ok(())
    })?;
    let mut keys: Vec<String> = Vec::new();
    next(&mut at, &mut |vm, v| {
        let Value::List(list) = v else {
            return Err(vm.bad(format!("storage key list is a {}", v.kind())));
        };
        for k in list.borrow().iter() {
            match k {
                Value::Str(s) => keys.push(s.to_string()),
                other => return Err(vm.bad(format!("storage key is a {}", other.kind()))),
            }
        }
        Ok(())
    })?;
    // The whole file is in memory already; its tensors may take at most the budget besides.
    check_total(&entries, 0, read_budget(file_len), file_len, p)?;
    // Storages follow in the order of `keys`; each tensor's reference gives its element size.
    let dtypes: HashMap<&str, DType> = entries
        .iter()
        .map(|(_, t)| (t.storage.key.as_str(), t.storage.dtype))
        .collect();
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    let truncated = |what: String| PickleError::Truncated {
        path: p.to_string(),
        what,
    };
    for key in &keys {
        let dtype = *dtypes
            .get(key.as_str())
            .ok_or_else(|| unsupported(format!("storage `{key}` is used by no tensor")))?;
        let count = bytes
            .get(at..at + 8)
            .ok_or_else(|| truncated(format!("storage `{key}` has no size")))?;
        let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
        let len = count
            .checked_mul(dtype.size_bytes() as u64)
            .filter(|&n| n <= file_len)
            .ok_or_else(|| truncated(format!("storage `{key}` claims {count} elements")))?
            as usize;
        let data = bytes
            .get(at + 8..at + 8 + len)
            .ok_or_else(|| truncated(format!("storage `{key}` ends early")))?;
        storages.insert(key.clone(), data);
        at += 8 + len;
    }
    entries
        .into_iter()
        .map(|(key, t)| {
            let storage =
                storages
                    .get(&t.storage.key)
                    .ok_or_else(|| PickleError::MissingStorage {
                        path: p.to_string(),
                        name: t.storage.key.clone(),
                    })?;
            let tensor =
                materialize(&t, storage, file_len).map_err(|msg| PickleError::InvalidTensor {
                    path: p.to_string(),
                    key: key.clone(),
                    msg,
                })?;
            Ok((key, tensor))
        })
        .collect()
}

fn zip_err(p: &str, e: zip::result::ZipError) -> PickleError {
    match e {
        zip::result::ZipError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            PickleError::Truncated {
                path: p.to_string(),
                what: io.to_string(),
            }
        }
        e => PickleError::Zip {
            path: p.to_string(),
            msg: e.to_string(),
        },
    }
}

/// Read a whole zip entry, refusing sizes that cannot be backed by the file or that exceed
/// `limit` (what is left of the file's budget, see `read_budget`).
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    file_len: u64,
    limit: u64,
    p: &str,
) -> Result<Vec<u8>, PickleError> {
    let mut f = zip.by_name(name).map_err(|e| zip_err(p, e))?;
    let size = f.size();
    let csize = f.compressed_size();
    let stored = f.compression() == zip::CompressionMethod::Stored;
    // Deflate cannot expand more than ~1032:1.
    let max = if stored {
        csize
    } else {
        csize.saturating_mul(1100).saturating_add(1024)
    };
    if csize > file_len || size > max || size > isize::MAX as u64 {
        return Err(PickleError::Truncated {
            path: p.to_string(),
            what: format!(
                "entry `{name}` declares {size} bytes but the file is only {file_len} bytes"
            ),
        });
    }
    if size > limit {
        return Err(PickleError::Unsupported {
            path: p.to_string(),
            msg: format!(
                "entry `{name}` unpacks to {size} bytes, more than the {} bytes allowed for a \
                 file of {file_len} bytes",
                read_budget(file_len)
            ),
        });
    }
    let mut buf = Vec::with_capacity(size.min(file_len) as usize);
    (&mut f)
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => PickleError::Truncated {
                path: p.to_string(),
                what: format!("entry `{name}`: {e}"),
            },
            _ => PickleError::Zip {
                path: p.to_string(),
                msg: format!("entry `{name}`: {e}"),
            },
        })?;
    if buf.len() as u64 != size {
        return Err(PickleError::Truncated {
            path: p.to_string(),
            what: format!("entry `{name}` has {} of {size} bytes", buf.len()),
        });
    }
    Ok(buf)
}

#[derive(Debug, Clone)]
struct StorageRef {
    key: String,
    dtype: DType,
    numel: u64,
}

#[derive(Debug)]
struct TensorSpec {
    storage: StorageRef,
    offset: u64,
    size: Vec<usize>,
    stride: Vec<usize>,
}

fn materialize(t: &TensorSpec, storage: &[u8], file_len: u64) -> Result<RawTensor, String> {
    let es = t.storage.dtype.size_bytes();
    if t.size.len() != t.stride.len() {
        return Err(format!(
            "size {:?} and stride {:?} have different ranks",
            t.size, t.stride
        ));
    }
    let avail = (storage.len() / es) as u64;
    if (t.storage.numel) > avail {
        return Err(format!(
            "storage `{}` declares {} elements but its data entry holds only {avail}",
            t.storage.key, t.storage.numel
        ));
    }
    let numel = t
        .size
        .iter()
        .try_fold(1u64, |a, &s| a.checked_mul(s as u64))
        .ok_or("element count overflows")?;
    let shape = t.size.clone();
    if numel == 0 {
        return Ok(RawTensor {
            dtype: t.storage.dtype,
            shape,
            data: Vec::new(),
        });
    }
    let mut last = t.offset;
    for (&s, &st) in t.size.iter().zip(&t.stride) {
        last = (s as u64 - 1)
            .checked_mul(st as u64)
            .and_then(|x| x.checked_add(last))
            .ok_or("view extent overflows")?;
    }
    if last >= t.storage.numel {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches element {last} but storage `{}` has {}",
            t.offset, t.size, t.stride, t.storage.key, t.storage.numel
        ));
    }
    let out_bytes = numel.checked_mul(es as u64).ok_or("byte size overflows")?;
    // Overlapping views (stride 0) can expand; cap far above any real use (the whole file's
    // tensors are held to the same total by `check_total`).
    if out_bytes > read_budget(file_len) {
        return Err(format!(
            "materialized size {out_bytes} bytes is unreasonably large"
        ));
    }
    let mut data = Vec::with_capacity(out_bytes as usize);
    // Contiguous fast path.
    let mut expect = 1usize;
    let mut contiguous = true;
    for (&s, &st) in t.size.iter().zip(&t.stride).rev() {
        if s != 1 && st != expect {
            contiguous = false;
            break;
        }
        expect *= s;
    }
    let off = t.offset as usize;
    // Size-1 dims never advance; zero their strides so the walk cannot overflow.
    let stride: Vec<usize> = t
        .size
        .iter()
        .zip(&t.stride)
        .map(|(&s, &st)| if s == 1 { 0 } else { st })
        .collect();
    if contiguous {
        data.extend_from_slice(&storage[off * es..(off + numel as usize) * es]);
    } else {
        let rank = t.size.len();
        let mut idx = vec![0usize; rank];
        let mut pos = off;
        for _ in 0..numel {
            data.extend_from_slice(&storage[pos * es..(pos + 1) * es]);
            for d in (0..rank).rev() {
                idx[d] += 1;
                pos += stride[d];
                if idx[d] < t.size[d] {
                    break;
                }
                pos -= stride[d] * t.size[d];
                idx[d] = 0;
            }
        }
    }
    Ok(RawTensor {
        dtype: t.storage.dtype,
        shape,
        data,
    })
}

// --- pickle VM --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    Storage(DType),
    DTypeObj(DType),
}

type Seq = Rc<RefCell<Vec<Value>>>;
type Dict = Rc<RefCell<DictObj>>;

/// Insertion-ordered dict; string keys are indexed (later duplicates replace in place).
#[derive(Debug, Default)]
struct DictObj {
    items: Vec<(Value, Value)>,
    index: HashMap<Rc<str>, usize>,
}

impl DictObj {
    fn insert(&mut self, k: Value, v: Value) {
        if let Value::Str(ks) = &k {
            if let Some(&i) = self.index.get(ks) {
                self.items[i].1 = v;
                return;
            }
            self.index.insert(ks.clone(), self.items.len());
        }
        self.items.push((k, v));
    }
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // payloads kept for Debug output
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Seq),
    List(Seq),
    Dict(Dict),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorSpec>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class/function",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
    path: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    // Every container ever created; emptied on drop so that deeply nested or
    // cyclic structures are torn down without recursion or leaks.
    seqs: Vec<Seq>,
    dicts: Vec<Dict>,
    /// Values made or copied so far (containers, their items, memo entries, copied
    /// arguments), against `max_cells`: without a bound, a short pickle that calls
    /// `OrderedDict` or `_rebuild_tensor_v2` again and again on one memoized big argument
    /// grows quadratically.
    cells: usize,
    max_cells: usize,
}

impl Drop for Vm<'_> {
    fn drop(&mut self) {
        for s in &self.seqs {
            s.borrow_mut().clear();
        }
        for d in &self.dicts {
            let mut d = d.borrow_mut();
            d.items.clear();
            d.index.clear();
        }
    }
}

const MAX_STACK: usize = 1 << 24;

/// Values a pickle of `len` bytes may make (see `Vm::cells`): a real state dict makes a few
/// dozen per tensor from a hundred-odd bytes of pickle, far below 16 per byte.
fn max_cells(len: usize) -> usize {
    len.saturating_mul(16).saturating_add(1 << 20)
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8], path: &'a str) -> Self {
        Vm {
            data,
            pos: 0,
            op_start: 0,
            path,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            seqs: Vec::new(),
            dicts: Vec::new(),
            cells: 0,
            max_cells: max_cells(data.len()),
        }
    }

    /// Counts `n` values made or copied; refuses a pickle that makes too many for its size.
    fn charge(&mut self, n: usize) -> Result<(), PickleError> {
        self.cells = self.cells.saturating_add(n);
        if self.cells > self.max_cells {
            return Err(self.bad(format!(
                "the pickle makes more than {} values from {} bytes (a pickle bomb?)",
                self.max_cells,
                self.data.len()
            )));
        }
        Ok(())
    }

    fn bad(&self, msg: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            path: self.path.to_string(),
            offset: self.op_start,
            msg: msg.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(PickleError::Truncated {
                path: self.path.to_string(),
                what: format!(
                    "data.pkl ends inside the opcode at offset {}",
                    self.op_start
                ),
            }),
        }
    }
    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PickleError::Truncated {
                path: self.path.to_string(),
                what: format!(
                    "data.pkl ends inside the opcode at offset {}",
                    self.op_start
                ),
            })?;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl]).map_err(|_| self.bad("non-UTF-8 text argument"))
    }
    fn string(&mut self, n: u64) -> Result<Value, PickleError> {
        let n = usize::try_from(n).map_err(|_| self.bad("string length overflows"))?;
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.bad("invalid UTF-8 in string"))?;
        Ok(Value::Str(s.into()))
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.bad("stack too deep"));
        }
        self.stack.push(v);
        Ok(())
    }
    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.bad("stack underflow"));
        }
        Ok(self.stack.pop().unwrap())
    }
    fn top(&mut self) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.bad("stack underflow"));
        }
        Ok(self.stack.last_mut().unwrap())
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.bad("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }
    fn new_seq(&mut self, items: Vec<Value>) -> Result<Seq, PickleError> {
        self.charge(1 + items.len())?;
        let s = Rc::new(RefCell::new(items));
        self.seqs.push(s.clone());
        Ok(s)
    }
    fn new_dict(&mut self) -> Result<Dict, PickleError> {
        self.charge(1)?;
        let d = Rc::new(RefCell::new(DictObj::default()));
        self.dicts.push(d.clone());
        Ok(d)
    }
    fn tuple(&mut self, items: Vec<Value>) -> Result<Value, PickleError> {
        Ok(Value::Tuple(self.new_seq(items)?))
    }
    fn memo_put(&mut self, idx: u32) -> Result<(), PickleError> {
        self.charge(1)?;
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }
    fn memo_get(&mut self, idx: u32) -> Result<(), PickleError> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.bad(format!("memo key {idx} not found")))?;
        self.push(v)
    }
    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        let Value::Dict(d) = target else {
            return Err(self.bad(format!("SETITEM(S) on a {}", target.kind())));
        };
        if !items.len().is_multiple_of(2) {
            return Err(self.bad("odd number of items for SETITEMS"));
        }
        self.charge(items.len())?;
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.insert(k, v);
        }
        Ok(())
    }

    fn resolve_global(&self, module: &str, name: &str) -> Result<Global, PickleError> {
        let g = match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch._utils", "_rebuild_parameter_with_state") => {
                Some(Global::RebuildParameterWithState)
            }
            ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => {
                Some(Global::Storage(DType::U8))
            }
            ("torch", n) => DType::from_storage_name(n)
                .map(Global::Storage)
                .or_else(|| DType::from_dtype_name(n).map(Global::DTypeObj)),
            _ => None,
        };
        g.ok_or_else(|| PickleError::UnsupportedGlobal {
            path: self.path.to_string(),
            name: format!("{module}.{name}"),
        })
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_start = self.pos;
            if self.pos >= self.data.len() {
                return Err(PickleError::Truncated {
                    path: self.path.to_string(),
                    what: "data.pkl ends without a STOP opcode".into(),
                });
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(self.bad(format!("unsupported pickle protocol {v}")));
                    }
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'}' => {
                    let d = self.new_dict()?;
                    self.push(Value::Dict(d))?;
                }
                b']' => {
                    let s = self.new_seq(Vec::new())?;
                    self.push(Value::List(s))?;
                }
                b')' => {
                    let t = self.tuple(Vec::new())?;
                    self.push(t)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let s = self.new_seq(items)?;
                    self.push(Value::List(s))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = self.new_dict()?;
                    let v = Value::Dict(d);
                    self.set_items(&v, items)?;
                    self.push(v)?;
                }
                b'X' => {
                    let n = self.u32()?;
                    let v = self.string(n as u64)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = self.u8()?;
                    let v = self.string(n as u64)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                b'T' | b'U' | b'B' | b'C' => {
                    let n = if op == b'T' || op == b'B' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let b = self.take(n)?;
                    let v = match (op, std::str::from_utf8(b)) {
                        (b'T' | b'U', Ok(s)) => Value::Str(s.into()),
                        _ => Value::Bytes(b.into()),
                    };
                    self.push(v)?;
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v))?;
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v))?;
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Value::Int(v))?;
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(self.bad(format!("integer of {n} bytes is too large")));
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.push(Value::Float(v))?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.resolve_global(module, name)?;
                    self.push(Value::Global(g))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(m), Value::Str(n)) = (&module, &name) else {
                        return Err(self.bad("STACK_GLOBAL needs two strings"));
                    };
                    let g = self.resolve_global(m, n)?;
                    self.push(Value::Global(g))?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = self.persistent_load(&pid)?;
                    self.push(Value::Storage(Rc::new(s)))?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(&func, &args)?;
                    self.push(v)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match cls {
                        Value::Global(Global::OrderedDict) => {
                            let d = self.new_dict()?;
                            self.push(Value::Dict(d))?;
                        }
                        other => return Err(self.bad(format!("NEWOBJ on a {}", other.kind()))),
                    }
                    drop(args);
                }
                b'b' => {
                    let _state = self.pop()?;
                    match self.top()? {
                        // OrderedDict `_metadata` attributes, tensor/parameter state: ignored.
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => {
                            let k = other.kind();
                            return Err(self.bad(format!("BUILD on a {k}")));
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, items)?;
                }
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    self.charge(items.len())?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => {
                            let k = other.kind();
                            return Err(self.bad(format!("APPEND on a {k}")));
                        }
                    }
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let i = self
                        .line()?
                        .parse()
                        .map_err(|_| self.bad("bad PUT index"))?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'g' => {
                    let i = self
                        .line()?
                        .parse()
                        .map_err(|_| self.bad("bad GET index"))?;
                    self.memo_get(i)?;
                }
                0x94 => {
                    let i =
                        u32::try_from(self.memo.len()).map_err(|_| self.bad("memo overflow"))?;
                    self.memo_put(i)?;
                }
                _ => {
                    return Err(PickleError::UnknownOpcode {
                        path: self.path.to_string(),
                        opcode: op,
                        offset: self.op_start,
                    });
                }
            }
        }
    }

    fn persistent_load(&mut self, pid: &Value) -> Result<StorageRef, PickleError> {
        let Value::Tuple(t) = pid else {
            return Err(self.bad(format!(
                "persistent id is a {}, expected a tuple",
                pid.kind()
            )));
        };
        let t = t.borrow();
        match t.as_slice() {
            // The legacy format adds a sixth element, view metadata (None for whole storages).
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), key, _location, Value::Int(numel)]
            | [Value::Str(tag), Value::Global(Global::Storage(dtype)), key, _location, Value::Int(numel), Value::None]
                if &**tag == "storage" && *numel >= 0 =>
            {
                let key = match key {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    _ => return Err(self.bad("storage key is not a string")),
                };
                if key.is_empty() || key.contains(['/', '\\']) || key.contains("..") {
                    return Err(self.bad(format!("invalid storage key `{key}`")));
                }
                // A copy per load: a memoized long key loaded again and again must count.
                self.charge(key.len())?;
                Ok(StorageRef { key, dtype: *dtype, numel: *numel as u64 })
            }
            _ => Err(self.bad("unsupported persistent id (expected ('storage', torch.XStorage, key, location, numel))")),
        }
    }

    fn call(&mut self, func: &Value, args: &Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else {
            return Err(self.bad(format!(
                "REDUCE arguments are a {}, expected a tuple",
                args.kind()
            )));
        };
        let args = args.borrow().clone();
        self.charge(args.len())?;
        let Value::Global(g) = func else {
            return Err(self.bad(format!("REDUCE on a {}", func.kind())));
        };
        match g {
            Global::OrderedDict => {
                let d = self.new_dict()?;
                match args.as_slice() {
                    [] => {}
                    [Value::List(items)] | [Value::Tuple(items)] => {
                        let items = items.borrow().clone();
                        // The items, each pair's copy, and the dict's entries.
                        self.charge(items.len().saturating_mul(4))?;
                        for it in items {
                            let pair = match &it {
                                Value::Tuple(p) | Value::List(p) if p.borrow().len() == 2 => {
                                    p.borrow().clone()
                                }
                                _ => return Err(self.bad("OrderedDict items must be pairs")),
                            };
                            let mut pair = pair.into_iter();
                            d.borrow_mut()
                                .insert(pair.next().unwrap(), pair.next().unwrap());
                        }
                    }
                    _ => return Err(self.bad("unsupported OrderedDict arguments")),
                }
                Ok(Value::Dict(d))
            }
            Global::RebuildTensorV2 => {
                if args.len() < 6 {
                    return Err(self.bad("_rebuild_tensor_v2 needs at least 6 arguments"));
                }
                let Value::Storage(s) = &args[0] else {
                    return Err(self.bad(format!(
                        "_rebuild_tensor_v2 storage is a {}",
                        args[0].kind()
                    )));
                };
                let Value::Int(offset) = args[1] else {
                    return Err(self.bad("tensor storage offset is not an int"));
                };
                let size = self.int_tuple(&args[2], "size")?;
                let stride = self.int_tuple(&args[3], "stride")?;
                if offset < 0 {
                    return Err(self.bad("negative storage offset"));
                }
                self.charge(s.key.len())?;
                Ok(Value::Tensor(Rc::new(TensorSpec {
                    storage: (**s).clone(),
                    offset: offset as u64,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.bad("_rebuild_parameter expects a tensor")),
            },
            Global::Storage(_) | Global::DTypeObj(_) => {
                Err(self.bad("calling a storage/dtype class is not supported"))
            }
        }
    }

    fn int_tuple(&mut self, v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
        let (Value::Tuple(t) | Value::List(t)) = v else {
            return Err(self.bad(format!("tensor {what} is a {}, expected a tuple", v.kind())));
        };
        self.charge(t.borrow().len())?;
        t.borrow()
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => {
                    usize::try_from(*i).map_err(|_| self.bad(format!("tensor {what} too large")))
                }
                _ => Err(self.bad(format!("tensor {what} must contain non-negative ints"))),
            })
            .collect()
    }

    /// Turn the unpickled top-level object into `(name, tensor)` pairs.
    fn extract_state_dict(&self, top: Value) -> Result<Vec<(String, Rc<TensorSpec>)>, PickleError> {
        let path = self.path.to_string();
        let Value::Dict(d) = top else {
            return Err(PickleError::Unsupported {
                path,
                msg: format!(
                    "top-level object is a {}, expected a dict of tensors",
                    top.kind()
                ),
            });
        };
        let mut items = d.borrow().items.clone();
        // `{"state_dict": {...}}` checkpoints: unwrap the single inner dict.
        let unwrapped = match items.as_slice() {
            [(Value::Str(k), Value::Dict(inner))] if &**k == "state_dict" => {
                Some(inner.borrow().items.clone())
            }
            _ => None,
        };
        if let Some(inner) = unwrapped {
            items = inner;
        }
        let mut out = Vec::with_capacity(items.len());
        for (k, v) in items {
            let Value::Str(k) = k else {
                return Err(PickleError::Unsupported {
                    path,
                    msg: format!("state-dict key is a {}, expected a str", k.kind()),
                });
            };
            match v {
                Value::Tensor(t) => out.push((k.to_string(), t)),
                _ if &*k == "_metadata" => {}
                Value::Dict(_) => {
                    return Err(PickleError::Unsupported {
                        path,
                        msg: format!(
                            "`{k}` is a nested dict; only flat state dicts of tensors are supported (is this a training checkpoint?)"
                        ),
                    });
                }
                other => {
                    return Err(PickleError::Unsupported {
                        path,
                        msg: format!("`{k}` is of type {}, not a tensor", other.kind()),
                    });
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

struct PickleWriter {
    buf: Vec<u8>,
    next_memo: u32,
    memo: HashMap<String, u32>,
}

impl PickleWriter {
    fn put(&mut self) -> u32 {
        let i = self.next_memo;
        self.next_memo += 1;
        if i < 256 {
            self.buf.extend_from_slice(&[b'q', i as u8]);
        } else {
            self.buf.push(b'r');
            self.buf.extend_from_slice(&i.to_le_bytes());
        }
        i
    }
    fn get(&mut self, i: u32) {
        if i < 256 {
            self.buf.extend_from_slice(&[b'h', i as u8]);
        } else {
            self.buf.push(b'j');
            self.buf.extend_from_slice(&i.to_le_bytes());
        }
    }
    /// GLOBAL, memoized like Python's pickler does.
    fn global(&mut self, module: &str, name: &str) {
        let key = format!("{module}\n{name}\n");
        if let Some(&i) = self.memo.get(&key) {
            self.get(i);
            return;
        }
        self.buf.push(b'c');
        self.buf.extend_from_slice(key.as_bytes());
        let i = self.put();
        self.memo.insert(key, i);
    }
    fn str(&mut self, s: &str, memoize: bool) {
        let key = format!("s:{s}");
        if let Some(&i) = self.memo.get(&key).filter(|_| memoize) {
            self.get(i);
            return;
        }
        self.buf.push(b'X');
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        let i = self.put();
        if memoize {
            self.memo.insert(key, i);
        }
    }
    fn int(&mut self, v: u64) {
        if v <= 0xff {
            self.buf.extend_from_slice(&[b'K', v as u8]);
        } else if v <= 0xffff {
            self.buf.push(b'M');
            self.buf.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v < 1 << 31 {
            self.buf.push(b'J');
            self.buf.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            // LONG1: minimal little-endian two's complement.
            let mut bytes = v.to_le_bytes().to_vec();
            while bytes.len() > 1
                && bytes[bytes.len() - 1] == 0
                && bytes[bytes.len() - 2] & 0x80 == 0
            {
                bytes.pop();
            }
            if bytes[bytes.len() - 1] & 0x80 != 0 {
                bytes.push(0);
            }
            self.buf.extend_from_slice(&[0x8a, bytes.len() as u8]);
            self.buf.extend_from_slice(&bytes);
        }
    }
    fn int_tuple(&mut self, v: &[usize]) {
        match v.len() {
            0 => self.buf.push(b')'),
            1..=3 => {
                for &x in v {
                    self.int(x as u64);
                }
                self.buf.push(0x84 + v.len() as u8);
                self.put();
            }
            _ => {
                self.buf.push(b'(');
                for &x in v {
                    self.int(x as u64);
                }
                self.buf.push(b't');
                self.put();
            }
        }
    }
}

/// For each tensor, the index of the first one with the same type and bytes: they share one
/// storage, as `torch.save` stores a tensor saved under several names once (the library's
/// prefix-tuning pools: 7 copies on a 6-layer model otherwise).
fn shared_storages(tensors: &[(String, RawTensor)]) -> Vec<usize> {
    let mut first: HashMap<(&str, &[u8]), usize> = HashMap::new();
    tensors
        .iter()
        .enumerate()
        .map(|(i, (_, t))| *first.entry((t.dtype.storage_name(), &t.data)).or_insert(i))
        .collect()
}

/// Pickle (protocol 2) an OrderedDict of tensors the way `torch.save` does; `storage[i]` is
/// the storage (zip record) tensor `i` reads.
fn build_pickle(tensors: &[(String, RawTensor)], storage: &[usize]) -> Vec<u8> {
    let mut w = PickleWriter {
        buf: vec![0x80, 2],
        next_memo: 0,
        memo: HashMap::new(),
    };
    w.global("collections", "OrderedDict");
    w.buf.push(b')');
    w.buf.push(b'R');
    w.put();
    for (chunk_i, chunk) in tensors.chunks(1000).enumerate() {
        w.buf.push(b'(');
        for (j, (name, t)) in chunk.iter().enumerate() {
            let i = chunk_i * 1000 + j;
            let numel: usize = t.shape.iter().product();
            let mut stride = vec![0usize; t.shape.len()];
            let mut acc = 1usize;
            for d in (0..t.shape.len()).rev() {
                stride[d] = acc;
                acc = acc.saturating_mul(t.shape[d]);
            }
            w.str(name, false);
            w.global("torch._utils", "_rebuild_tensor_v2");
            w.buf.push(b'(');
            // persistent id ('storage', torch.XStorage, key, 'cpu', numel)
            w.buf.push(b'(');
            w.str("storage", true);
            w.global("torch", t.dtype.storage_name());
            w.str(&storage[i].to_string(), false);
            w.str("cpu", true);
            w.int(numel as u64);
            w.buf.push(b't');
            w.put();
            w.buf.push(b'Q');
            w.int(0);
            w.int_tuple(&t.shape);
            w.int_tuple(&stride);
            w.buf.push(0x89); // requires_grad=False
            w.global("collections", "OrderedDict");
            w.buf.push(b')');
            w.buf.push(b'R');
            w.put();
            w.buf.push(b't');
            w.put();
            w.buf.push(b'R');
            w.put();
        }
        w.buf.push(b'u');
    }
    w.buf.push(b'.');
    w.buf
}

/// Write `tensors` as `torch.save(OrderedDict(tensors), path)` would, atomically
/// (via `<path>.tmp-<pid>` and a rename).
pub fn write_state_dict(path: &Path, tensors: &[(String, RawTensor)]) -> Result<(), PickleError> {
    let p = pstr(path);
    for (name, t) in tensors {
        let want = t
            .shape
            .iter()
            .try_fold(t.dtype.size_bytes(), |a, &s| a.checked_mul(s))
            .ok_or_else(|| PickleError::InvalidTensor {
                path: p.clone(),
                key: name.clone(),
                msg: "shape overflows".into(),
            })?;
        if t.data.len() != want {
            return Err(PickleError::InvalidTensor {
                path: p.clone(),
                key: name.clone(),
                msg: format!(
                    "shape {:?} of {:?} needs {want} bytes but data has {}",
                    t.shape,
                    t.dtype,
                    t.data.len()
                ),
            });
        }
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let result = write_zip(&tmp, tensors, &p).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| PickleError::Io {
            path: p.clone(),
            source: e,
        })?;
        // The rename itself reaches the disk (a power loss must not bring back the old name).
        crate::io::atomic::sync_parent(path).map_err(|e| match e {
            crate::error::Error::Io { path, source } => PickleError::Io {
                path: pstr(&path),
                source,
            },
            other => PickleError::Io {
                path: p.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_zip(tmp: &Path, tensors: &[(String, RawTensor)], p: &str) -> Result<(), PickleError> {
    use zip::write::SimpleFileOptions;
    let io_err = |e: std::io::Error| PickleError::Io {
        path: p.to_string(),
        source: e,
    };
    let zerr = |e: zip::result::ZipError| PickleError::Zip {
        path: p.to_string(),
        msg: e.to_string(),
    };
    let file = File::create(tmp).map_err(io_err)?;
    let mut zw = zip::ZipWriter::new(BufWriter::new(file));
    // Like PyTorch (which pads with an extra field "FB"), pad local headers so
    // every payload starts at a multiple of 64 bytes. torch 2.13 loads
    // unaligned files too (even with mmap=True), but aligned is friendlier.
    let opts = |len: usize| {
        SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .with_alignment(64)
            .large_file(len as u64 >= u32::MAX as u64)
    };
    let put = |zw: &mut zip::ZipWriter<BufWriter<File>>,
               name: &str,
               data: &[u8]|
     -> Result<(), PickleError> {
        zw.start_file(format!("archive/{name}"), opts(data.len()))
            .map_err(zerr)?;
        zw.write_all(data).map_err(io_err)
    };
    let storage = shared_storages(tensors);
    put(&mut zw, "data.pkl", &build_pickle(tensors, &storage))?;
    // Deliberately no `.format_version`/`.storage_alignment` records: with them
    // torch may compute storage offsets assuming miniz's exact header layout
    // (data descriptors), which this zip writer does not reproduce. Without
    // them torch looks every record up in the central directory.
    put(&mut zw, "byteorder", b"little")?;
    for (i, (_, t)) in tensors.iter().enumerate() {
        if storage[i] == i {
            put(&mut zw, &format!("data/{i}"), &t.data)?;
        }
    }
    put(&mut zw, "version", b"3\n")?;
    let w = zw.finish().map_err(zerr)?;
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("torch_pickle_{tag}_{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tensor(dtype: DType, shape: &[usize]) -> RawTensor {
        let n: usize = shape.iter().product::<usize>() * dtype.size_bytes();
        RawTensor {
            dtype,
            shape: shape.to_vec(),
            data: (0..n).map(|i| (i * 7 + 3) as u8).collect(),
        }
    }

    /// Write a zip laid out like torch's, with a hand-made pickle.
    fn write_raw(path: &Path, pkl: &[u8], storages: &[(&str, &[u8])]) {
        use zip::write::SimpleFileOptions;
        let mut zw = zip::ZipWriter::new(File::create(path).unwrap());
        let o = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zw.start_file("model/data.pkl", o).unwrap();
        zw.write_all(pkl).unwrap();
        for (k, d) in storages {
            zw.start_file(format!("model/data/{k}"), o).unwrap();
            zw.write_all(d).unwrap();
        }
        zw.start_file("model/version", o).unwrap();
        zw.write_all(b"3\n").unwrap();
        zw.finish().unwrap();
    }

    /// Tensors with the same bytes are stored once (the library's prefix pools saved under
    /// every layer's name) and read back as themselves, however they are shaped.
    #[test]
    fn identical_tensors_share_one_storage() {
        let d = tmpdir("shared");
        let p = d.join("w.bin");
        let pool = tensor(DType::F32, &[64, 100]);
        let mut flat = pool.clone();
        flat.shape = vec![6400];
        let ts = vec![
            ("pool".to_string(), pool.clone()),
            ("layer.0.pool".to_string(), pool.clone()),
            ("layer.1.pool".to_string(), flat),
            ("other".to_string(), tensor(DType::F32, &[3])),
        ];
        write_state_dict(&p, &ts).unwrap();
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size < 2 * 25_600, "one copy of the pool: {size} bytes");
        let back = read_state_dict(&p).unwrap();
        assert_eq!(back.len(), 4);
        for ((n, want), (m, got)) in ts.iter().zip(&back) {
            assert_eq!((n, &want.shape, &want.data), (m, &got.shape, &got.data));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn round_trip_many_dtypes() {
        let d = tmpdir("rt");
        let p = d.join("w.bin");
        let ts = vec![
            ("a.weight".to_string(), tensor(DType::F32, &[3, 4])),
            ("b".to_string(), tensor(DType::F16, &[2, 3, 5])),
            ("c".to_string(), tensor(DType::BF16, &[7])),
            ("scalar".to_string(), tensor(DType::F64, &[])),
            ("empty".to_string(), tensor(DType::I64, &[0, 4])),
            ("i32".to_string(), tensor(DType::I32, &[2, 2])),
            ("i16".to_string(), tensor(DType::I16, &[1, 300])),
            ("i8".to_string(), tensor(DType::I8, &[4, 1, 2, 2, 1])),
            ("u8".to_string(), tensor(DType::U8, &[70000])),
            (
                "bool".to_string(),
                RawTensor {
                    dtype: DType::Bool,
                    shape: vec![3],
                    data: vec![1, 0, 1],
                },
            ),
        ];
        write_state_dict(&p, &ts).unwrap();
        let back = read_state_dict(&p).unwrap();
        assert_eq!(back.len(), ts.len());
        for ((n1, t1), (n2, t2)) in ts.iter().zip(&back) {
            assert_eq!(n1, n2);
            assert_eq!(t1.dtype, t2.dtype);
            assert_eq!(t1.shape, t2.shape);
            assert_eq!(t1.data, t2.data);
        }
        // Payloads are 64-byte aligned.
        let raw = std::fs::read(&p).unwrap();
        let mut zip = zip::ZipArchive::new(File::open(&p).unwrap()).unwrap();
        for i in 0..zip.len() {
            let f = zip.by_index(i).unwrap();
            let start = f.data_start();
            assert_eq!(start % 64, 0, "{:?}", f.name());
            assert!(start as usize <= raw.len());
        }
        assert!(!d.join(format!("w.bin.tmp-{}", std::process::id())).exists());
        // Many entries (> one SETITEMS batch, > 256 memo slots).
        let many: Vec<_> = (0..1200)
            .map(|i| (format!("t{i}"), tensor(DType::F32, &[i % 3])))
            .collect();
        write_state_dict(&p, &many).unwrap();
        let back = read_state_dict(&p).unwrap();
        assert_eq!(back.len(), 1200);
        assert_eq!(back[1199].0, "t1199");
        assert_eq!(back[1199].1.data, many[1199].1.data);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn shared_storage_and_strided_views() {
        let d = tmpdir("views");
        let p = d.join("v.bin");
        // storage 0: 6 f32 values 0..6
        let st: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut pkl = vec![0x80, 2];
        pkl.extend_from_slice(b"ccollections\nOrderedDict\nq\x00)Rq\x01(");
        let mut tensor_op = |name: &str, off: u8, size: &[u8], stride: &[u8]| {
            pkl.push(0x8c);
            pkl.push(name.len() as u8);
            pkl.extend_from_slice(name.as_bytes());
            pkl.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            pkl.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ");
            pkl.extend_from_slice(&[b'K', off]);
            for part in [size, stride] {
                pkl.push(b'(');
                for &x in part {
                    pkl.extend_from_slice(&[b'K', x]);
                }
                pkl.push(b't');
            }
            pkl.extend_from_slice(b"\x89h\x00)Rtq\x05R");
        };
        tensor_op("w", 0, &[2, 3], &[3, 1]);
        tensor_op("w_t", 0, &[3, 2], &[1, 3]); // transposed view of the same storage
        tensor_op("tail", 4, &[2], &[1]);
        tensor_op("col", 1, &[2], &[3]);
        pkl.extend_from_slice(b"X\x09\x00\x00\x00_metadata}u}X\x01\x00\x00\x00xK\x01sb.");
        write_raw(&p, &pkl, &[("0", &st)]);
        let got = read_state_dict(&p).unwrap();
        let vals = |t: &RawTensor| -> Vec<f32> {
            t.data
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        assert_eq!(got.len(), 4);
        assert_eq!(vals(&got[0].1), [0., 1., 2., 3., 4., 5.]);
        assert_eq!(got[1].1.shape, [3, 2]);
        assert_eq!(vals(&got[1].1), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(vals(&got[2].1), [4., 5.]);
        assert_eq!(vals(&got[3].1), [1., 4.]);
        // Out-of-range view is an error, not a panic.
        let needle = b"K\x04(K\x02t(K\x01t";
        let at = pkl.windows(needle.len()).position(|w| w == needle).unwrap();
        let mut bad = pkl.clone();
        bad[at + 1] = 5;
        write_raw(&p, &bad, &[("0", &st)]);
        let e = read_state_dict(&p).unwrap_err().to_string();
        assert!(e.contains("tail") && e.contains("reaches element"), "{e}");
        // Missing storage.
        write_raw(&p, &pkl, &[]);
        let e = read_state_dict(&p).unwrap_err().to_string();
        assert!(e.contains("storage `model/data/0` missing"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A pickle of `views` (name, size, stride) of one FloatStorage `0` of `numel` floats.
    fn views_pickle(views: &[(&str, u32, u8)], numel: u8) -> Vec<u8> {
        let mut pkl = vec![0x80, 2];
        pkl.extend_from_slice(b"ccollections\nOrderedDict\nq\x00)Rq\x01(");
        for (name, size, stride) in views {
            pkl.push(0x8c);
            pkl.push(name.len() as u8);
            pkl.extend_from_slice(name.as_bytes());
            pkl.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            pkl.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
            pkl.push(numel);
            pkl.extend_from_slice(b"tQK\x00(J");
            pkl.extend_from_slice(&size.to_le_bytes());
            pkl.extend_from_slice(&[b't', b'(', b'K', *stride, b't']);
            pkl.extend_from_slice(b"\x89h\x00)Rtq\x05R");
        }
        pkl.extend_from_slice(b"u.");
        pkl
    }

    /// Runs `f` on a thread; panics if it has not finished within `secs` (a read that hangs
    /// on a pipe fails the test instead of hanging it).
    fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(secs))
            .expect("still reading: it hung")
    }

    #[test]
    fn stride_zero_views_beyond_the_files_budget_are_refused_before_any_is_made() {
        let d = tmpdir("budget");
        let p = d.join("views.bin");
        let one_float = 1.5f32.to_le_bytes();
        // Each view is 400 MB (under the per-tensor cap of 1 GiB); the third brings the file's
        // total over its budget (1 GiB for a small file).
        let n = 100_000_000;
        let pkl = views_pickle(&[("a", n, 0), ("b", n, 0), ("c", n, 0)], 1);
        write_raw(&p, &pkl, &[("0", &one_float)]);
        let e = read_state_dict(&p).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, PickleError::InvalidTensor { ref key, .. } if key == "c"),
            "{msg}"
        );
        assert!(
            msg.starts_with(&p.display().to_string()) && msg.contains("allowed for a file of"),
            "{msg}"
        );
        // Small stride-0 views stay readable (a broadcast bias saved as a view).
        let pkl = views_pickle(&[("a", 4, 0), ("b", 1, 1)], 1);
        write_raw(&p, &pkl, &[("0", &one_float)]);
        let got = read_state_dict(&p).unwrap();
        assert_eq!(got[0].1.data, one_float.repeat(4));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_pickle_rebuilding_one_big_argument_again_and_again_is_refused() {
        let d = tmpdir("bomb");
        let p = d.join("bomb.bin");
        // A list of 5000 pairs, memoized as OrderedDict's arguments, then 1000 calls on it:
        // 6 bytes per call, 5000 dict entries each, kept to the end.
        let mut pkl = vec![0x80, 2];
        pkl.extend_from_slice(b"ccollections\nOrderedDict\nq\x000]q\x01(");
        for _ in 0..5000 {
            pkl.extend_from_slice(b"K\x01K\x02\x86");
        }
        pkl.extend_from_slice(b"e\x85q\x020");
        for _ in 0..1000 {
            pkl.extend_from_slice(b"h\x00h\x02R0");
        }
        pkl.extend_from_slice(b"}.");
        write_raw(&p, &pkl, &[]);
        let msg = read_state_dict(&p).unwrap_err().to_string();
        assert!(
            msg.contains("bomb.bin") && msg.contains("pickle bomb"),
            "{msg}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bin_that_is_a_pipe_is_refused_without_waiting_for_a_writer() {
        let d = tmpdir("fifo");
        let p = d.join("w.bin");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let shown = p.clone();
        let msg = within(10, move || read_state_dict(&shown).unwrap_err().to_string());
        assert!(msg.contains("w.bin") && msg.contains("pipe"), "{msg}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rejects_malicious_global() {
        let d = tmpdir("evil");
        let p = d.join("evil.bin");
        write_raw(
            &p,
            b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.",
            &[],
        );
        let e = read_state_dict(&p).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PickleError::UnsupportedGlobal { .. }));
        assert!(
            msg.contains("`os.system`") && msg.contains("evil.bin"),
            "{msg}"
        );
        // STACK_GLOBAL form too.
        write_raw(&p, b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", &[]);
        assert!(read_state_dict(&p)
            .unwrap_err()
            .to_string()
            .contains("`builtins.eval`"));
        // Unknown opcode reports byte and offset.
        write_raw(&p, b"\x80\x02}\xff.", &[]);
        let msg = read_state_dict(&p).unwrap_err().to_string();
        assert!(msg.contains("0xff") && msg.contains("offset 3"), "{msg}");
        // Non-tensor values and nested dicts are rejected by name.
        write_raw(
            &p,
            b"\x80\x02}X\x03\x00\x00\x00lrsG?\xf0\x00\x00\x00\x00\x00\x00s.",
            &[],
        );
        assert!(read_state_dict(&p)
            .unwrap_err()
            .to_string()
            .contains("`lrs` is of type float"));
        write_raw(&p, b"\x80\x02}X\x05\x00\x00\x00optim}s.", &[]);
        assert!(read_state_dict(&p)
            .unwrap_err()
            .to_string()
            .contains("`optim` is a nested dict"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncated_and_not_zip() {
        let d = tmpdir("trunc");
        let p = d.join("w.bin");
        write_state_dict(&p, &[("x".into(), tensor(DType::F32, &[64, 64]))]).unwrap();
        let full = std::fs::read(&p).unwrap();
        for cut in [full.len() - 1, full.len() / 2, 100, 10, 4] {
            std::fs::write(&p, &full[..cut]).unwrap();
            let msg = read_state_dict(&p).unwrap_err().to_string();
            assert!(msg.starts_with(&p.display().to_string()), "{msg}");
            assert!(msg.contains("truncated"), "cut {cut}: {msg}");
        }
        // Truncated pickle stream inside a valid zip.
        write_raw(&p, b"\x80\x02}X\xff\xff\xff\x00ab", &[]);
        assert!(read_state_dict(&p)
            .unwrap_err()
            .to_string()
            .contains("truncated file"));
        // Every truncation point of a small file errors without panicking.
        write_state_dict(&p, &[("x".into(), tensor(DType::F16, &[3]))]).unwrap();
        let small = std::fs::read(&p).unwrap();
        for cut in 0..small.len() {
            std::fs::write(&p, &small[..cut]).unwrap();
            assert!(read_state_dict(&p).is_err());
        }
        std::fs::write(&p, b"hello, not a zip").unwrap();
        let msg = read_state_dict(&p).unwrap_err().to_string();
        assert!(msg.contains("not a PyTorch zip archive"), "{msg}");
        // A legacy file cut after its magic number.
        std::fs::write(&p, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
        let msg = read_state_dict(&p).unwrap_err().to_string();
        assert!(msg.contains("truncated"), "{msg}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fuzz_like_corruption_never_panics() {
        let d = tmpdir("fuzz");
        let p = d.join("w.bin");
        write_state_dict(
            &p,
            &[
                ("a".into(), tensor(DType::F32, &[2, 3])),
                ("b".into(), tensor(DType::I64, &[4])),
            ],
        )
        .unwrap();
        let full = std::fs::read(&p).unwrap();
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..300 {
            let mut m = full.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 32) as u8;
            }
            std::fs::write(&p, &m).unwrap();
            let _ = read_state_dict(&p);
        }
        // Deeply nested lists are torn down without recursion.
        let mut pkl = vec![0x80, 2];
        pkl.extend(std::iter::repeat_n(b']', 200_000));
        pkl.extend(std::iter::repeat_n(b'a', 199_999));
        pkl.push(b'.');
        write_raw(&p, &pkl, &[]);
        assert!(read_state_dict(&p)
            .unwrap_err()
            .to_string()
            .contains("list"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// `torch.save` output (torch 2.13) of OrderedDict(w=arange(6).reshape(2,3) f32, w_t=w.t(),
    /// h=[1.5,-2] f16, l=[-7, 2**40] i64): FB-padded entries, data descriptors, shared storage.
    const TORCH_FIXTURE_HEX: &str = concat!(
        "504b03040000080800000000000000000000000000000000000010001200666978747572652f646174612e706b6c4642",
        "0e005a5a5a5a5a5a5a5a5a5a5a5a5a5a800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271",
        "0128580100000077710263746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a7103282858",
        "0700000073746f72616765710463746f7263680a466c6f617453746f726167650a710558010000003071065803000000",
        "63707571074b06747108514b004b024b038671094b034b0186710a8968002952710b74710c52710d5803000000775f74",
        "710e6803282868046805680668074b0674710f514b004b034b028671104b014b03867111896800295271127471135271",
        "14580100000068711568032828680463746f7263680a48616c6653746f726167650a7116580100000031711768074b02",
        "747118514b004b028571194b0185711a8968002952711b74711c52711d58010000006c711e68032828680463746f7263",
        "680a4c6f6e6753746f726167650a711f580100000032712068074b02747121514b004b028571224b0185712389680029",
        "527124747125527126752e504b070872c0a1877b0100007b010000504b03040000080800000000000000000000000000",
        "000000000017004000666978747572652f2e666f726d61745f76657273696f6e46423c005a5a5a5a5a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "31504b0708b7efdc830100000001000000504b0304000008080000000000000000000000000000000000001a00370066",
        "6978747572652f2e73746f726167655f616c69676e6d656e74464233005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a3634504b07083f7771e9020000000200",
        "0000504b03040000080800000000000000000000000000000000000011003f00666978747572652f627974656f726465",
        "7246423b005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a6c6974746c65504b0708853de3190600000006000000504b0304000008080000",
        "000000000000000000000000000000000e003e00666978747572652f646174612f3046423a005a5a5a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "000000000000803f0000004000004040000080400000a040504b07081790e7911800000018000000504b030400000808",
        "0000000000000000000000000000000000000e002c00666978747572652f646174612f31464228005a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a003e00c0504b070836d5d59404000000",
        "04000000504b0304000008080000000000000000000000000000000000000e004000666978747572652f646174612f32",
        "46423c005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5af9ffffffffffffff0000000000010000504b0708bcc586291000000010000000",
        "504b0304000008080000000000000000000000000000000000000f003300666978747572652f76657273696f6e46422f",
        "005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "330a504b0708d19e67550200000002000000504b0304000008080000000000000000000000000000000000001e003200",
        "666978747572652f2e646174612f73657269616c697a6174696f6e5f696446422e005a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a30383439343838383437393635303438",
        "373335303133363136383538363431393832343236393330504b0708a5f1389d2800000028000000504b010200000000",
        "080800000000000072c0a1877b0100007b010000100000000000000000000000000000000000666978747572652f6461",
        "74612e706b6c504b0102000000000808000000000000b7efdc8301000000010000001700000000000000000000000000",
        "cb010000666978747572652f2e666f726d61745f76657273696f6e504b01020000000008080000000000003f7771e902",
        "000000020000001a0000000000000000000000000051020000666978747572652f2e73746f726167655f616c69676e6d",
        "656e74504b0102000000000808000000000000853de31906000000060000001100000000000000000000000000d20200",
        "00666978747572652f627974656f72646572504b01020000000008080000000000001790e79118000000180000000e00",
        "00000000000000000000000056030000666978747572652f646174612f30504b010200000000080800000000000036d5",
        "d59404000000040000000e00000000000000000000000000e8030000666978747572652f646174612f31504b01020000",
        "00000808000000000000bcc5862910000000100000000e0000000000000000000000000054040000666978747572652f",
        "646174612f32504b0102000000000808000000000000d19e675502000000020000000f00000000000000000000000000",
        "e0040000666978747572652f76657273696f6e504b0102000000000808000000000000a5f1389d28000000280000001e",
        "0000000000000000000000000052050000666978747572652f2e646174612f73657269616c697a6174696f6e5f696450",
        "4b06062c000000000000001e032d000000000000000000090000000000000009000000000000004702000000000000f8",
        "05000000000000504b0607000000003f0800000000000001000000504b0506000000000900090047020000f805000000",
        "00",
    );

    #[test]
    fn reads_file_written_by_torch() {
        let d = tmpdir("fixture");
        let p = d.join("fixture.bin");
        let bytes: Vec<u8> = (0..TORCH_FIXTURE_HEX.len() / 2)
            .map(|i| u8::from_str_radix(&TORCH_FIXTURE_HEX[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        std::fs::write(&p, &bytes).unwrap();
        let got = read_state_dict(&p).unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w", "w_t", "h", "l"]);
        let f32s = |t: &RawTensor| -> Vec<f32> {
            t.data
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        assert_eq!(
            (got[0].1.dtype, &got[0].1.shape[..]),
            (DType::F32, &[2, 3][..])
        );
        assert_eq!(f32s(&got[0].1), [0., 1., 2., 3., 4., 5.]);
        assert_eq!(got[1].1.shape, [3, 2]);
        assert_eq!(f32s(&got[1].1), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(got[2].1.dtype, DType::F16);
        assert_eq!(got[2].1.data, [0x00, 0x3e, 0x00, 0xc0]);
        let l: Vec<i64> = got[3]
            .1
            .data
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(l, [-7, 1 << 40]);
        // Rewriting and re-reading is lossless.
        write_state_dict(&p, &got).unwrap();
        let again = read_state_dict(&p).unwrap();
        assert!(got
            .iter()
            .zip(&again)
            .all(|(a, b)| a.0 == b.0 && a.1.data == b.1.data && a.1.shape == b.1.shape));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Python interop with the project's torch (`.venv`, made by scripts/setup.sh).
    #[test]
    fn python_interop() {
        let py = std::env::var("TORCH_PYTHON")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").into());
        let d = tmpdir("py");
        let from_py = d.join("from_py.bin");
        let script = r#"
import sys, torch
torch.manual_seed(0)
lin = torch.nn.Linear(4, 3)
sd = {"w": lin.weight.detach(), "w_t": lin.weight.detach().t(), "tied": lin.weight.detach(),
      "h": torch.randn(2, 5).half(), "l": torch.arange(-3, 9).reshape(3, 4), "s": torch.tensor(2.5)}
torch.save(sd, sys.argv[1])
"#;
        let ok = std::process::Command::new(&py)
            .args(["-c", script])
            .arg(&from_py)
            .status()
            .unwrap();
        assert!(ok.success());
        let got = read_state_dict(&from_py).unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w", "w_t", "tied", "h", "l", "s"]);
        assert_eq!(got[1].1.shape, [4, 3]);
        assert_eq!(got[0].1.data, got[2].1.data);
        let l: Vec<i64> = got[4]
            .1
            .data
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(l, (-3..9).collect::<Vec<_>>());
        let to_py = d.join("to_py.bin");
        write_state_dict(&to_py, &got).unwrap();
        let check = r#"
import sys, torch
a = torch.load(sys.argv[1], weights_only=True); b = torch.load(sys.argv[2], weights_only=True, mmap=True)
assert list(a) == list(b)
for k in a: assert a[k].dtype == b[k].dtype and torch.equal(a[k].contiguous(), b[k]), k
"#;
        let ok = std::process::Command::new(&py)
            .args(["-c", check])
            .arg(&from_py)
            .arg(&to_py)
            .status()
            .unwrap();
        assert!(ok.success());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
