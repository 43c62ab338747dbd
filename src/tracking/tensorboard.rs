//! TensorBoard event files in `RUN/tensorboard/`: `tensorboard.Event` protobufs in TFRecord
//! framing, as TensorFlow's and PyTorch's summary writers write them. Scalars `train/loss`,
//! `train/learning_rate`, `train/grad_norm` at each step, `eval/<metric>` (`eval/loss`, …) at
//! each evaluation; a fusion run also its mean attention heatmap as the image
//! `fusion/attention` and each layer's attention entropy as `fusion/entropy/layer_N`; the
//! run's settings through the HParams plugin (a session start at step 0, a session end when
//! the run finishes or fails).
//!
//! A resumed run writes a new file: the earlier files are first cut back to the checkpoint's
//! step (rewritten atomically, as `metrics.jsonl` is), so that no reader sees a step twice,
//! and the new file opens with `SessionLog.START` at the first step written again (TensorBoard's
//! own signal to drop anything later that it had read).
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use super::{HParam, RunStart, Tracker};
use crate::error::{Error, Result};
use crate::training::run_dir::{AttentionRecord, EvalRecord, RunStatus, StepRecord};
use crate::training::TrainConfig;

/// The folder of a run's event files.
pub const FOLDER: &str = "tensorboard";
/// What every event file starts with (the reader's check of its format).
const FILE_VERSION: &str = "brain.Event:2";
const HPARAMS_PLUGIN: &str = "hparams";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// The tensorboard.Event messages written here: hand-written mirrors of
/// `tensorboard/compat/proto/{event,summary,tensor}.proto` and
/// `tensorboard/plugins/hparams/plugin_data.proto` (field numbers as there; a `oneof` member
/// is an optional field, which encodes the same way).
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        #[prost(int64, tag = "2")]
        pub step: i64,
        #[prost(string, optional, tag = "3")]
        pub file_version: Option<String>,
        #[prost(message, optional, tag = "5")]
        pub summary: Option<Summary>,
        #[prost(message, optional, tag = "7")]
        pub session_log: Option<SessionLog>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionLog {
        /// 1: START, 2: STOP, 3: CHECKPOINT.
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(string, tag = "3")]
        pub msg: String,
    }
    pub const SESSION_START: i32 = 1;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<Value>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(float, optional, tag = "2")]
        pub simple_value: Option<f32>,
        #[prost(message, optional, tag = "4")]
        pub image: Option<Image>,
        #[prost(message, optional, tag = "8")]
        pub tensor: Option<TensorProto>,
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<SummaryMetadata>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(int32, tag = "1")]
        pub height: i32,
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1: grey, 3: RGB, 4: RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// 1: DT_FLOAT.
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShape>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShape {
        #[prost(message, repeated, tag = "2")]
        pub dim: Vec<Dim>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        #[prost(int64, tag = "1")]
        pub size: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryMetadata {
        #[prost(message, optional, tag = "1")]
        pub plugin_data: Option<PluginData>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HParamsPluginData {
        #[prost(int32, tag = "1")]
        pub version: i32,
        #[prost(message, optional, tag = "3")]
        pub session_start_info: Option<SessionStartInfo>,
        #[prost(message, optional, tag = "4")]
        pub session_end_info: Option<SessionEndInfo>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionStartInfo {
        #[prost(btree_map = "string, message", tag = "1")]
        pub hparams: std::collections::BTreeMap<String, ProtoValue>,
        #[prost(string, tag = "4")]
        pub group_name: String,
        #[prost(double, tag = "5")]
        pub start_time_secs: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionEndInfo {
        /// 1: STATUS_SUCCESS, 2: STATUS_FAILURE, 3: STATUS_RUNNING.
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(double, tag = "2")]
        pub end_time_secs: f64,
    }

    /// `google.protobuf.Value`: a number, a string or a bool.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProtoValue {
        #[prost(double, optional, tag = "2")]
        pub number_value: Option<f64>,
        #[prost(string, optional, tag = "3")]
        pub string_value: Option<String>,
        #[prost(bool, optional, tag = "4")]
        pub bool_value: Option<bool>,
    }
}

/// CRC-32C (Castagnoli), the checksum of TFRecord framing.
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The masked CRC-32C of TFRecord framing (rotated and offset, so that a CRC of bytes holding
/// CRCs does not degenerate).
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = CRC32C.checksum(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: the data's length (u64, little-endian), the masked CRC of those 8 bytes, the
/// data, the masked CRC of the data.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The records of a TFRecord file, up to the first that is torn or fails its checksums (a kill
/// in the middle of a write), and whether the bytes ended cleanly after the last one.
pub fn records(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(len_bytes) = rest.get(..8) else {
            return (out, false);
        };
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
        let crc = |at: usize| {
            rest.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if crc(8) != Some(masked_crc32c(len_bytes)) {
            return (out, false);
        }
        let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(12)) else {
            return (out, false);
        };
        let Some(data) = rest.get(12..end) else {
            return (out, false);
        };
        if crc(end) != Some(masked_crc32c(data)) {
            return (out, false);
        }
        out.push(data);
        rest = &rest[end + 4..];
    }
    (out, true)
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn scalar(tag: &str, value: f64) -> proto::Value {
    proto::Value {
        tag: tag.to_string(),
        simple_value: Some(value as f32),
        ..Default::default()
    }
}

/// An HParams plugin summary (`summary_v2._summary_pb`: the data in the metadata, an empty
/// float tensor as the value).
fn hparams_value(tag: &str, data: proto::HParamsPluginData) -> proto::Value {
    proto::Value {
        tag: tag.to_string(),
        metadata: Some(proto::SummaryMetadata {
            plugin_data: Some(proto::PluginData {
                plugin_name: HPARAMS_PLUGIN.into(),
                content: data.encode_to_vec(),
            }),
        }),
        tensor: Some(proto::TensorProto {
            dtype: 1,
            tensor_shape: Some(proto::TensorShape {
                dim: vec![proto::Dim { size: 0 }],
            }),
        }),
        ..Default::default()
    }
}

/// Width and height of PNG bytes (from the IHDR chunk).
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    let be = |at: usize| {
        png.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    (png.get(12..16) == Some(b"IHDR")).then_some(())?;
    Some((be(16)?, be(20)?))
}

/// An event file's name as TensorFlow and PyTorch write it:
/// `events.out.tfevents.SECS.HOST.PID.N`.
fn is_event_file(name: &str) -> bool {
    name.starts_with("events.out.tfevents.")
}

/// The seconds field of an event file's name.
fn name_secs(name: &str) -> Option<u64> {
    name.strip_prefix("events.out.tfevents.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The event files in `dir`, by name (the order readers take them in).
fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| is_event_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Whether a resumed run keeps `event` of an earlier file: it is at or before the checkpoint
/// (a session end is dropped at any step: the run has not ended).
fn kept_after_resume(event: &proto::Event, checkpoint: usize) -> bool {
    event.step <= checkpoint as i64 && !has_tag(event, SESSION_END_TAG)
}

/// Whether `event` holds a summary value tagged `tag`.
fn has_tag(event: &proto::Event, tag: &str) -> bool {
    event
        .summary
        .as_ref()
        .is_some_and(|s| s.value.iter().any(|v| v.tag == tag))
}

/// Cuts the event file at `path` back to the events a checkpoint at `checkpoint` had seen (and
/// a torn last record away), rewriting it atomically if anything goes. Whether it holds a
/// session start.
fn cut_back(path: &Path, checkpoint: usize) -> Result<bool> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let (found, clean) = records(&bytes);
    let mut kept = Vec::with_capacity(bytes.len());
    let (mut dropped, mut started) = (!clean, false);
    for data in found {
        match proto::Event::decode(data) {
            Ok(event) if !kept_after_resume(&event, checkpoint) => dropped = true,
            Ok(event) => {
                started |= has_tag(&event, SESSION_START_TAG);
                kept.extend(frame(data));
            }
            // Not one of ours: kept as it is.
            Err(_) => kept.extend(frame(data)),
        }
    }
    if dropped {
        // Written beside the file under a name no reader takes for an event file, then renamed
        // over it: a reader sees the old file or the new one.
        let tmp = crate::io::atomic::temp_path_for(&path.with_file_name("rewrite"));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&kept)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(path, e));
        }
        crate::io::sync_parent(path)?;
    }
    Ok(started)
}

/// The TensorBoard tracker of one run.
pub struct TensorBoard {
    dir: PathBuf,
    file: Option<(PathBuf, BufWriter<fs::File>)>,
    /// The last step written (the session end's step).
    step: usize,
}

/// The registry's entry: every run writes event files.
pub fn for_run(root: &Path, _: &TrainConfig) -> Option<Box<dyn Tracker>> {
    Some(Box::new(TensorBoard::new(&root.join(FOLDER))))
}

impl TensorBoard {
    pub fn new(dir: &Path) -> TensorBoard {
        TensorBoard {
            dir: dir.to_path_buf(),
            file: None,
            step: 0,
        }
    }

    /// The file this process writes (after `start`).
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    fn write(&mut self, step: usize, event: proto::Event) -> Result<()> {
        let Some((path, w)) = &mut self.file else {
            return Ok(());
        };
        let event = proto::Event {
            wall_time: wall_time(),
            step: step as i64,
            ..event
        };
        w.write_all(&frame(&event.encode_to_vec()))
            .map_err(|e| Error::io(path.as_path(), e))
    }

    fn summary(&mut self, step: usize, value: Vec<proto::Value>) -> Result<()> {
        self.write(
            step,
            proto::Event {
                summary: Some(proto::Summary { value }),
                ..Default::default()
            },
        )
    }

    /// A new file, named after any earlier one so that readers take it last.
    fn create(&mut self, earlier: &[PathBuf]) -> Result<()> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let last = earlier
            .iter()
            .filter_map(|p| name_secs(&p.file_name()?.to_string_lossy()))
            .max();
        let secs = crate::lock::unix_secs().max(last.map_or(0, |s| s + 1));
        let host: String = crate::lock::host_name()
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.join(format!(
            "events.out.tfevents.{secs}.{host}.{}.{n}",
            std::process::id()
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        self.file = Some((path, BufWriter::new(file)));
        self.write(
            0,
            proto::Event {
                file_version: Some(FILE_VERSION.into()),
                ..Default::default()
            },
        )
    }
}

impl Tracker for TensorBoard {
    fn name(&self) -> &'static str {
        "tensorboard"
    }

    fn start(&mut self, run: &RunStart) -> Result<()> {
        crate::io::create_dir_all(&self.dir)?;
        crate::io::remove_stale_temp_files(&self.dir)?;
        let earlier = event_files(&self.dir);
        let mut started = false;
        if let Some(at) = run.resumed_at {
            for path in &earlier {
                started |= cut_back(path, at)?;
            }
        }
        self.create(&earlier)?;
        if let Some(at) = run.resumed_at {
            self.step = at;
            self.write(
                at + 1,
                proto::Event {
                    session_log: Some(proto::SessionLog {
                        status: proto::SESSION_START,
                        msg: format!("resumed from the checkpoint at step {at}"),
                    }),
                    ..Default::default()
                },
            )?;
        }
        if !started {
            let hparams = run
                .hparams
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        HParam::Number(x) => proto::ProtoValue {
                            number_value: Some(*x),
                            ..Default::default()
                        },
                        HParam::Text(s) => proto::ProtoValue {
                            string_value: Some(s.clone()),
                            ..Default::default()
                        },
                        HParam::Bool(b) => proto::ProtoValue {
                            bool_value: Some(*b),
                            ..Default::default()
                        },
                    };
                    (k.clone(), value)
                })
                .collect();
            let data = proto::HParamsPluginData {
                version: 0,
                session_start_info: Some(proto::SessionStartInfo {
                    hparams,
                    group_name: run.folder(),
                    start_time_secs: run.started_unix_secs as f64,
                }),
                session_end_info: None,
            };
            self.summary(0, vec![hparams_value(SESSION_START_TAG, data)])?;
        }
        self.flush()
    }

    fn step(&mut self, r: &StepRecord) -> Result<()> {
        self.step = r.step;
        let values = super::step_scalars(r)
            .iter()
            .map(|(tag, v)| scalar(tag, *v))
            .collect();
        self.summary(r.step, values)
    }

    fn eval(&mut self, r: &EvalRecord, attention: Option<&AttentionRecord>) -> Result<()> {
        self.step = r.step;
        let mut values: Vec<proto::Value> = super::eval_scalars(r, attention)
            .iter()
            .map(|(tag, v)| scalar(tag, *v))
            .collect();
        // The run page's heatmap, on its automatic scale.
        if let Some(png) = attention.map(super::attention_png).transpose()?.flatten() {
            let (width, height) = png_size(&png).unwrap_or((0, 0));
            values.push(proto::Value {
                tag: "fusion/attention".into(),
                image: Some(proto::Image {
                    height: height as i32,
                    width: width as i32,
                    colorspace: 3,
                    encoded_image_string: png,
                }),
                ..Default::default()
            });
        }
        self.summary(r.step, values)?;
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        match &mut self.file {
            Some((path, w)) => w.flush().map_err(|e| Error::io(path.as_path(), e)),
            None => Ok(()),
        }
    }

    fn end(&mut self, status: RunStatus, step: usize) -> Result<()> {
        let status = match status {
            RunStatus::Finished => Some(1),
            RunStatus::Failed => Some(2),
            // Stopped: resumable, so not ended; a session end would outlive the resume.
            RunStatus::Stopped | RunStatus::Running => None,
        };
        if let Some(status) = status {
            let data = proto::HParamsPluginData {
                version: 0,
                session_start_info: None,
                session_end_info: Some(proto::SessionEndInfo {
                    status,
                    end_time_secs: crate::lock::unix_secs() as f64,
                }),
            };
            self.summary(
                step.max(self.step),
                vec![hparams_value(SESSION_END_TAG, data)],
            )?;
        }
        self.flush()?;
        if let Some((path, w)) = &mut self.file {
            w.get_ref()
                .sync_all()
                .map_err(|e| Error::io(path.as_path(), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masked_crc32c_matches_tensorflows() {
        // CRC-32C("123456789") is 0xE3069283; masked as TFRecord masks it.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn a_file_version_event_is_framed_byte_for_byte_as_tensorflow_frames_it() {
        // tensorboard's Python writer: Event(wall_time=1.5, file_version="brain.Event:2").
        let event = proto::Event {
            wall_time: 1.5,
            file_version: Some(FILE_VERSION.into()),
            ..Default::default()
        };
        let want = "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a32\
                    2a28646c";
        let got: String = frame(&event.encode_to_vec())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn records_stop_at_a_torn_or_corrupt_record() {
        let mut bytes = frame(b"one");
        bytes.extend(frame(b"two"));
        assert_eq!(records(&bytes), (vec![&b"one"[..], &b"two"[..]], true));
        let whole = bytes.len();
        bytes.extend(&frame(b"three")[..10]);
        assert_eq!(records(&bytes), (vec![&b"one"[..], &b"two"[..]], false));
        bytes.truncate(whole);
        bytes[whole - 6] ^= 1; // a bit of "two" flipped
        assert_eq!(records(&bytes), (vec![&b"one"[..]], false));
    }

    fn steps_in(path: &Path) -> Vec<i64> {
        let bytes = fs::read(path).unwrap();
        records(&bytes)
            .0
            .into_iter()
            .map(|d| proto::Event::decode(d).unwrap())
            .filter(|e| e.summary.is_some())
            .map(|e| e.step)
            .collect()
    }

    fn step(n: usize) -> StepRecord {
        StepRecord {
            step: n,
            epoch: 0.0,
            loss: 1.0 / n as f64,
            lr: 1e-3,
            grad_norm: 1.0,
            examples_per_sec: 1.0,
            elapsed_secs: 1.0,
        }
    }

    #[test]
    fn a_resume_cuts_earlier_files_back_to_the_checkpoint_and_starts_a_later_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::training::TrainConfig::adapter(
            "model".into(),
            crate::data::DataSource::Path("train.csv".into()),
            "seq_bn".parse().unwrap(),
        );
        let start = |resumed_at| RunStart {
            root: dir.path(),
            name: "run",
            config: &cfg,
            hparams: &[],
            started_unix_secs: 1,
            total_steps: 10,
            resumed_at,
        };
        let tb = dir.path().join(FOLDER);
        let mut first = TensorBoard::new(&tb);
        first.start(&start(None)).unwrap();
        for n in 1..=6 {
            first.step(&step(n)).unwrap();
        }
        first.end(RunStatus::Failed, 6).unwrap();
        let first_path = first.path().unwrap().to_path_buf();
        drop(first);
        // A torn record at the end, as a kill leaves it.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&first_path)
            .unwrap();
        f.write_all(&frame(b"torn")[..7]).unwrap();

        let mut second = TensorBoard::new(&tb);
        second.start(&start(Some(4))).unwrap();
        second.step(&step(5)).unwrap();
        second.end(RunStatus::Finished, 5).unwrap();
        let second_path = second.path().unwrap().to_path_buf();
        assert_eq!(
            steps_in(&first_path),
            [0, 1, 2, 3, 4],
            "session start, steps 1-4"
        );
        assert_eq!(
            steps_in(&second_path),
            [5, 5],
            "step 5, then the session end"
        );
        assert!(second_path > first_path, "readers take the new file last");
        assert!(
            records(&fs::read(&first_path).unwrap()).1,
            "the torn tail is gone"
        );
        assert_eq!(event_files(&tb).len(), 2, "no temporary file is left");
    }

    #[test]
    fn png_size_reads_the_header() {
        let png = crate::figure::encode_png(&[0; 3 * 6], 3, 2).unwrap();
        assert_eq!(png_size(&png), Some((3, 2)));
    }
}
