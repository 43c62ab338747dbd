//! Reading and writing state dicts: `.safetensors` and PyTorch `.bin` (restricted unpickler).
//! Tensors come back on the CPU in file order; loaders copy them into a `VarStore`.
use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::torch_pickle::{self, DType, RawTensor};
use crate::error::{Error, Result};

pub type StateDict = Vec<(String, Tensor)>;

fn kind_of(dtype: DType) -> Kind {
    match dtype {
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
    }
}

fn dtype_of(kind: Kind) -> Option<DType> {
    Some(match kind {
        Kind::Float => DType::F32,
        Kind::Double => DType::F64,
        Kind::Half => DType::F16,
        Kind::BFloat16 => DType::BF16,
        Kind::Int64 => DType::I64,
        Kind::Int => DType::I32,
        Kind::Int16 => DType::I16,
        Kind::Int8 => DType::I8,
        Kind::Uint8 => DType::U8,
        Kind::Bool => DType::Bool,
        _ => return None,
    })
}

fn safetensors_kind(dtype: safetensors::Dtype) -> Option<Kind> {
    use safetensors::Dtype as D;
    Some(match dtype {
        D::F32 => Kind::Float,
        D::F64 => Kind::Double,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::I64 => Kind::Int64,
        D::I32 => Kind::Int,
        D::I16 => Kind::Int16,
        D::I8 => Kind::Int8,
        D::U8 => Kind::Uint8,
        D::BOOL => Kind::Bool,
        _ => return None,
    })
}

fn to_safetensors_dtype(kind: Kind) -> Option<safetensors::Dtype> {
    use safetensors::Dtype as D;
    Some(match kind {
        Kind::Float => D::F32,
        Kind::Double => D::F64,
        Kind::Half => D::F16,
        Kind::BFloat16 => D::BF16,
        Kind::Int64 => D::I64,
        Kind::Int => D::I32,
        Kind::Int16 => D::I16,
        Kind::Int8 => D::I8,
        Kind::Uint8 => D::U8,
        Kind::Bool => D::BOOL,
        _ => return None,
    })
}

/// The safetensors dtype of tensor `name` written to `path`.
fn safetensors_dtype_of(path: &Path, name: &str, t: &Tensor) -> Result<safetensors::Dtype> {
    to_safetensors_dtype(t.kind()).ok_or_else(|| {
        Error::weights(
            path,
            format!("tensor `{name}`: unsupported kind {:?}", t.kind()),
        )
    })
}

fn tensor_from_bytes(
    path: &Path,
    key: &str,
    data: &[u8],
    shape: &[usize],
    kind: Kind,
) -> Result<Tensor> {
    let bad = |msg: String| Error::weights(path, format!("tensor `{key}`: {msg}"));
    let shape = shape
        .iter()
        .map(|&d| i64::try_from(d).map_err(|_| bad(format!("dimension {d} is too large"))))
        .collect::<Result<Vec<i64>>>()?;
    // libtorch copies `numel × element size` bytes from `data` without knowing its length:
    // a shape the bytes do not fill would read past them.
    let need = match shape.contains(&0) {
        true => Some(0),
        false => shape
            .iter()
            .try_fold(kind.elt_size_in_bytes() as u64, |a, &d| {
                a.checked_mul(d as u64)
            }),
    };
    if need != Some(data.len() as u64) {
        return Err(bad(format!(
            "shape {shape:?} of {kind:?} does not match its {} bytes of data",
            data.len()
        )));
    }
    Tensor::f_from_data_size(data, &shape, kind)
        .map_err(|e| Error::weights(path, format!("tensor `{key}`: {e}")))
}

fn tensor_bytes(tensor: &Tensor) -> Vec<u8> {
    let tensor = tensor.to_device(tch::Device::Cpu).contiguous();
    let numel = tensor.numel();
    let mut buf = vec![0u8; numel * tensor.kind().elt_size_in_bytes()];
    tensor.copy_data_u8(&mut buf, numel);
    buf
}

/// Reads a `.safetensors` or a PyTorch `.bin` file. A `.bin` is read by a restricted unpickler
/// that only rebuilds tensors: a weights file never runs code.
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        SafetensorsReader::open(path)?.tensors().collect()
    } else {
        torch_pickle::read_state_dict(path)?
            .into_iter()
            .map(|(name, raw)| {
                let t = tensor_from_bytes(path, &name, &raw.data, &raw.shape, kind_of(raw.dtype))?;
                Ok((name, t))
            })
            .collect()
    }
}

/// A `.safetensors` file mapped into memory (not read): its names are known at once, and its
/// tensors are made one at a time, each page dropped from the resident set once copied, so
/// a model loads with one copy of its weights in memory instead of two.
pub struct SafetensorsReader {
    path: std::path::PathBuf,
    map: memmap2::Mmap,
    /// In file order: name, kind, shape, byte range in `map`.
    entries: Vec<(String, Kind, Vec<usize>, std::ops::Range<usize>)>,
}

impl SafetensorsReader {
    pub fn open(path: &Path) -> Result<Self> {
        // A regular file only: a pipe or device cannot be mapped, and opening a pipe would wait.
        let file = super::open_regular(path, true).map_err(|e| Error::io(path, e))?;
        // SAFETY: a private read-only mapping. Tools that write weights write a new file and
        // rename it; a file truncated under us while mapped would fault, as for any reader
        // of mapped files.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&map)
            .map_err(|e| Error::weights(path, format!("not a valid safetensors file: {e}")))?;
        let base = map.as_ptr() as usize;
        let mut entries = Vec::new();
        for (name, view) in st.tensors() {
            let kind = safetensors_kind(view.dtype()).ok_or_else(|| {
                Error::weights(
                    path,
                    format!("tensor `{name}`: unsupported dtype {:?}", view.dtype()),
                )
            })?;
            let start = view.data().as_ptr() as usize - base;
            let range = start..start + view.data().len();
            entries.push((name, kind, view.shape().to_vec(), range));
        }
        drop(st);
        // Keep the file's order of tensors (by offset), like Python's `load_file`.
        entries.sort_by_key(|e| e.3.start);
        Ok(SafetensorsReader {
            path: path.to_path_buf(),
            map,
            entries,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.0.as_str())
    }

    /// The tensors in file order, made as they are asked for.
    pub fn tensors(self) -> impl Iterator<Item = Result<(String, Tensor)>> {
        let SafetensorsReader { path, map, entries } = self;
        entries.into_iter().map(move |(name, kind, shape, range)| {
            let t = tensor_from_bytes(&path, &name, &map[range.clone()], &shape, kind)?;
            // SAFETY: DontNeed on a private read-only file mapping only drops cached pages;
            // a later read would fault them back in from the file.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
            Ok((name, t))
        })
    }
}

/// Writes a state dict atomically; the format follows the file extension.
pub fn write_state_dict(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    write_state_dict_with_metadata(path, tensors, &[])
}

/// The number of values in a `.safetensors` file, from its header alone.
pub fn safetensors_parameter_count(path: &Path) -> Result<u64> {
    let header = read_safetensors_header(path)?;
    Ok(header
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v.get("shape").and_then(serde_json::Value::as_array))
        .map(|shape| {
            shape
                .iter()
                .filter_map(serde_json::Value::as_u64)
                // A hostile header's shapes must not overflow (a panic in debug builds).
                .fold(1u64, u64::saturating_mul)
        })
        .fold(0u64, u64::saturating_add))
}

/// Reads the `__metadata__` of a `.safetensors` file from its header alone.
pub fn read_safetensors_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let header = read_safetensors_header(path)?;
    Ok(header
        .get("__metadata__")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

fn read_safetensors_header(path: &Path) -> Result<serde_json::Value> {
    use std::io::Read;
    let bad = |m: String| Error::weights(path, format!("not a valid safetensors file: {m}"));
    let mut f = super::open_regular(path, true).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let len = u64::from_le_bytes(len);
    // Checked against the file before allocating: a 9-byte file must not cost 100 MB.
    if len > 100_000_000 || len > file_len.saturating_sub(8) {
        return Err(bad(format!(
            "header of {len} bytes in a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))
}

/// As `write_state_dict`, with extra `__metadata__` entries for `.safetensors` files (one
/// file holding tensors and the state that goes with them is written atomically as a whole).
pub fn write_state_dict_with_metadata(
    path: &Path,
    tensors: &[(String, Tensor)],
    extra_metadata: &[(String, String)],
) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::io::create_dir_all(parent)?;
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        let mut owned = Vec::with_capacity(tensors.len());
        for (name, t) in tensors {
            let dtype = safetensors_dtype_of(path, name, t)?;
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            owned.push((name.clone(), dtype, shape, tensor_bytes(t)));
        }
        let views = owned
            .iter()
            .map(|(name, dtype, shape, data)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::weights(path, format!("tensor `{name}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        metadata.extend(extra_metadata.iter().cloned());
        let metadata = Some(metadata);
        let bytes = safetensors::serialize(views, metadata)
            .map_err(|e| Error::weights(path, format!("cannot serialize: {e}")))?;
        super::write_atomic(path, &bytes)
    } else {
        let raw = tensors
            .iter()
            .map(|(name, t)| {
                let dtype = dtype_of(t.kind()).ok_or_else(|| {
                    Error::weights(
                        path,
                        format!("tensor `{name}`: unsupported kind {:?}", t.kind()),
                    )
                })?;
                let shape = t.size().iter().map(|&d| d as usize).collect();
                Ok((
                    name.clone(),
                    RawTensor {
                        dtype,
                        shape,
                        data: tensor_bytes(t),
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        torch_pickle::write_state_dict(path, &raw)?;
        Ok(())
    }
}

/// Writes a `.safetensors` file tensor by tensor, calling `on_bytes(total so far)` after each
/// one; `on_bytes` returning false stops with `Error::Cancelled`. Not atomic by itself: it is
/// for files inside a folder that is swapped in whole (exports), where a whole-file buffer of
/// a large model would double the memory.
pub fn write_safetensors_streaming(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &[(String, String)],
    on_bytes: &mut dyn FnMut(u64) -> bool,
) -> Result<u64> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
        .collect();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut offset = 0u64;
    for (name, t) in tensors {
        let dtype = safetensors_dtype_of(path, name, t)?;
        let bytes = (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": format!("{dtype:?}"),
                "shape": t.size(),
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| Error::weights(path, e.to_string()))?;
    // The format pads the header with spaces to a multiple of 8 bytes.
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| Error::io(path, e);
    w.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&header).map_err(io)?;
    let mut written = 8 + header.len() as u64;
    for (_, t) in tensors {
        let data = tensor_bytes(t);
        w.write_all(&data).map_err(io)?;
        written += data.len() as u64;
        if !on_bytes(written) {
            return Err(Error::Cancelled);
        }
    }
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(written)
}

/// `sha256` of a file as lowercase hex, read in chunks. Only a regular file is read (a pipe
/// or a device such as /dev/zero would never end).
pub fn file_sha256(path: &Path) -> Result<String> {
    let f = super::open_regular(path, true).map_err(|e| Error::io(path, e))?;
    Ok(reader_sha256(path, f, u64::MAX)?.0)
}

/// `sha256` (lowercase hex) and length of what `reader` yields, reading at most
/// `max_bytes + 1` bytes: a longer input stops there (its length then says so) instead of
/// being read to its end. `path` names the file in errors.
pub fn reader_sha256(
    path: &Path,
    reader: impl std::io::Read,
    max_bytes: u64,
) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = reader.take(max_bytes.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((format!("{:x}", hasher.finalize()), total))
}

/// Copies `tensors` into the variables of `vs`, matching names after `normalize`.
/// Every variable must be found with the right shape. Keys left over are an error when
/// `what` names the artifact (adapters, heads, fusions), and ignored for base models, whose
/// files often carry pretraining heads. Every problem is reported, not only the first.
pub fn assign(
    vs: &tch::nn::VarStore,
    path: &Path,
    tensors: impl IntoIterator<Item = Result<(String, Tensor)>>,
    normalize: impl Fn(&str) -> String,
    what: Option<&str>,
) -> Result<()> {
    // Tensors are copied as they come (a reader may make them one at a time).
    let mut variables: std::collections::HashMap<String, Tensor> =
        vs.variables().into_iter().collect();
    let mut problems: Vec<(String, Error)> = Vec::new();
    let mut left = Vec::new();
    for item in tensors {
        let (key, t) = item?;
        let name = normalize(&key);
        let Some(mut var) = variables.remove(&name) else {
            left.push(name);
            continue;
        };
        if t.size() != var.size() {
            let e = Error::ShapeMismatch {
                path: path.to_path_buf(),
                key: name.clone(),
                found: t.size(),
                expected: var.size(),
            };
            problems.push((name, e));
            continue;
        }
        tch::no_grad(|| var.copy_(&t.to_kind(var.kind()).to_device(var.device())));
    }
    for (name, var) in variables {
        let e = Error::MissingWeight {
            path: path.to_path_buf(),
            key: name.clone(),
            expected: var.size(),
        };
        problems.push((name, e));
    }
    problems.sort_by(|a, b| a.0.cmp(&b.0));
    let mut problems: Vec<Error> = problems.into_iter().map(|(_, e)| e).collect();
    if let Some(what) = what {
        left.sort();
        problems.extend(left.into_iter().map(|key| Error::UnexpectedWeight {
            path: path.to_path_buf(),
            key,
            what: what.to_string(),
        }));
    }
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems.remove(0)),
        _ => Err(Error::WeightProblems {
            path: path.to_path_buf(),
            problems: problems
                .iter()
                .map(|e| {
                    let text = e.to_string();
                    let prefix = format!("{}: ", path.display());
                    text.strip_prefix(&prefix).unwrap_or(&text).to_string()
                })
                .collect(),
        }),
    }
}

/// The variables of `vs` as a state dict, sorted by name.
pub fn state_dict_of(vs: &tch::nn::VarStore) -> StateDict {
    let mut out: StateDict = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(ext: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("w.{ext}"));
        let a = Tensor::from_slice(&[1.5f32, -2.0, 3.25, 4.0, 5.0, 6.0]).reshape([2, 3]);
        let b = Tensor::from_slice(&[7i64, 8]);
        write_state_dict(
            &path,
            &[
                ("x.a".into(), a.shallow_clone()),
                ("x.b".into(), b.shallow_clone()),
            ],
        )
        .unwrap();
        let back = read_state_dict(&path).unwrap();
        assert_eq!(back.len(), 2);
        let get = |n: &str| {
            &back
                .iter()
                .find(|(k, _)| k == n)
                .unwrap_or_else(|| panic!("{n} missing"))
                .1
        };
        assert!(get("x.a").equal(&a));
        assert!(get("x.b").equal(&b));
    }

    #[test]
    fn safetensors_roundtrip_keeps_names_and_values() {
        roundtrip("safetensors");
    }

    #[test]
    fn torch_bin_roundtrip_keeps_names_and_values() {
        roundtrip("bin");
    }

    #[test]
    fn streamed_safetensors_read_back_with_progress_per_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.safetensors");
        let a = Tensor::from_slice(&[1.5f32, -2.0, 3.25]).reshape([3, 1]);
        let b = Tensor::from_slice(&[7i64, 8]);
        let mut seen = Vec::new();
        let total = write_safetensors_streaming(
            &path,
            &[
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            &[("k".into(), "v".into())],
            &mut |n| {
                seen.push(n);
                true
            },
        )
        .unwrap();
        assert_eq!(total, std::fs::metadata(&path).unwrap().len());
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1] - seen[0], 16, "the second tensor is two i64s");
        let back = read_state_dict(&path).unwrap();
        assert!(back[0].1.equal(&a) && back[1].1.equal(&b));
        assert_eq!(read_safetensors_metadata(&path).unwrap()["k"], "v");
        let stopped = write_safetensors_streaming(&path, &[("a".into(), a)], &[], &mut |_| false);
        assert!(matches!(stopped, Err(Error::Cancelled)));
    }

    #[test]
    fn a_shape_its_bytes_do_not_fill_is_refused_before_libtorch_copies_them() {
        let p = Path::new("w.bin");
        let e = tensor_from_bytes(p, "k", &[0u8; 4], &[2, 2], Kind::Float)
            .unwrap_err()
            .to_string();
        assert!(e.contains("w.bin") && e.contains("`k`"), "{e}");
        let e = tensor_from_bytes(p, "k", &[], &[0, usize::MAX], Kind::Float)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        let t = tensor_from_bytes(p, "k", &[0u8; 16], &[2, 2], Kind::Float).unwrap();
        assert_eq!(t.size(), [2, 2]);
        let empty = tensor_from_bytes(p, "k", &[], &[0, 1 << 62], Kind::Float).unwrap();
        assert_eq!(empty.numel(), 0);
    }

    /// The safetensors crate checks that every tensor's offsets hold exactly its shape, in
    /// order, up to the file's end: a header cannot declare more data than the file has.
    #[test]
    fn a_safetensors_header_declaring_more_data_than_the_file_holds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.safetensors");
        for header in [
            r#"{"a":{"dtype":"F32","shape":[1073741824,1073741824],"data_offsets":[0,4]}}"#,
            r#"{"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}"#,
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        ] {
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&[0u8; 4]);
            std::fs::write(&path, &bytes).unwrap();
            let e = read_state_dict(&path).unwrap_err().to_string();
            assert!(e.contains("big.safetensors"), "{header}: {e}");
        }
    }

    #[test]
    fn a_safetensors_header_longer_than_its_file_is_refused_before_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        let mut bytes = 50_000_000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(&path, &bytes).unwrap();
        let e = read_safetensors_metadata(&path).unwrap_err().to_string();
        assert!(
            e.contains("header of 50000000 bytes in a file of 10 bytes"),
            "{e}"
        );
    }

    #[test]
    fn hashing_a_pipe_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(file_sha256(&p).map_err(|e| e.to_string()));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("hashing hung on a pipe")
            .unwrap_err();
        assert!(e.contains("model.safetensors: is a pipe"), "{e}");
        let e = SafetensorsReader::open(&path).err().unwrap().to_string();
        assert!(e.contains("is a pipe"), "{e}");
        // The capped hash stops one byte past its cap.
        let (_, n) = reader_sha256(&path, &[7u8; 100][..], 10).unwrap();
        assert_eq!(n, 11);
    }

    #[test]
    fn corrupt_safetensors_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
        let err = read_state_dict(&path).unwrap_err().to_string();
        assert!(err.contains("bad.safetensors"), "{err}");
    }
}
