//! Scalar summaries as TensorBoard event files, for `tensorboard --logdir DIR`.
//!
//! # Format
//!
//! An event file is a TFRecord file of serialized `Event` protocol buffers.
//! Each record is, as written by TensorFlow's `RecordWriter`
//! (`tensorflow/core/lib/io/record_writer.cc`, now in `tsl`):
//!
//! ```text
//! u64 little-endian  length of the data
//! u32 little-endian  masked CRC-32C of those 8 length bytes
//! [u8; length]       data: one serialized Event
//! u32 little-endian  masked CRC-32C of the data
//! ```
//!
//! where `mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping)
//! and CRC-32C is the Castagnoli CRC (from the `crc32c` crate).
//!
//! The messages are the subset of `tensorflow/core/util/event.proto` and
//! `tensorflow/core/framework/summary.proto` that scalars need:
//! `Event { wall_time = 1 (double, seconds since the Unix epoch), step = 2
//! (int64), file_version = 3 (string), summary = 5 (Summary) }`,
//! `Summary { value = 1 (repeated Value) }`, `Value { tag = 1 (string),
//! simple_value = 2 (float) }`, and `Event.session_log = 7 (SessionLog
//! { status = 1 (enum, START = 1) })`. `file_version`, `summary` and
//! `session_log` are members of a oneof, and `simple_value` of another;
//! encoding them as proto3 optional fields gives the same bytes. The first
//! event of a file carries only `file_version = "brain.Event:2"`, as
//! TensorFlow's `EventsWriter` writes it.
//!
//! # Resumed runs
//!
//! A run resumed from a checkpoint at step `s` writes a new file in the same
//! directory, whose first event after the version is a
//! `SessionLog { status: START }` at step `s + 1`
//! ([`SummaryWriter::session_start`]). TensorBoard's `EventAccumulator`,
//! with `purge_orphaned_data` (its default), drops on such an event every
//! event already read with a step at or above it
//! (`_CheckForRestartAndMaybePurge`, `_Purge(event, by_tags=False)` in
//! `tensorboard/backend/event_processing/event_accumulator.py`, for files
//! of version 2): the steps the first run wrote after its last checkpoint,
//! which the resumed run writes again. TensorBoard reads a directory's
//! files in the order of their names; the seconds in the name keep that the
//! order they were written in.
//!
//! TensorBoard finds event files by the `tfevents` in their name; ours are
//! `events.out.tfevents.<secs>.<hostname>.<pid>.axle`, the seconds
//! zero-padded to 10 digits like TensorFlow's.
//!
//! # Testing
//!
//! `tests/tensorboard.rs` reads the files back with TensorBoard itself
//! (`tests/tensorboard_read.py`, packages pinned by hash in
//! `third_party/tensorboard-requirements.txt`): its record reader, which
//! checks both CRCs of every record, then its `EventAccumulator`, which
//! finds the scalars by tag and step. TensorBoard was chosen over the
//! `tfrecord` crate: that crate always builds an HTTP client, TLS and
//! `prost-build` for its build script (about two more minutes of CI build),
//! while installing TensorBoard's wheels takes seconds, and TensorBoard is
//! the reader these files are for.
//!
//! No crate writes the files here: `tensorboard-rs` 0.5.9 pulls in
//! `protobuf` 2 and `image` 0.23, `tboard` 0.1.1 needs `protoc` at build
//! time, and `tfrecord` 0.15.0 brings the build dependencies above and a
//! second `prost`; the writer is this page of code on `prost`'s derive.

use prost::Message;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `tensorflow.Event`, the fields a scalar summary uses.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    wall_time: f64,
    /// The training step.
    #[prost(int64, tag = "2")]
    step: i64,
    /// `"brain.Event:2"` in the first event of a file, absent after.
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    /// The values of this step.
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
    /// A session's start (a run resumed at `step`), absent otherwise.
    #[prost(message, optional, tag = "7")]
    session_log: Option<SessionLog>,
}

/// `tensorflow.SessionLog`, the field a restart marker uses.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    /// `SessionLog.SessionStatus`: 1 is `START`.
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `SessionLog.SessionStatus.START`.
const SESSION_START: i32 = 1;

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    /// One entry per tag.
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `tensorflow.Summary.Value` holding a `simple_value`.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    /// The series name TensorBoard plots under, such as `"loss"`.
    #[prost(string, tag = "1")]
    tag: String,
    /// The scalar.
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// The `file_version` of the first event, as TensorFlow's `EventsWriter`
/// writes it (`"brain.Event:"` followed by version 2).
const FILE_VERSION: &str = "brain.Event:2";

/// An event file could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("TensorBoard summaries in {path}: {source}")]
pub struct SummaryError {
    /// The event file, or the directory when the file could not be created.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

/// Appends scalar summaries to a new TensorBoard event file.
///
/// Events are buffered: call [`SummaryWriter::flush`] to make them visible
/// to TensorBoard (dropping the writer flushes too, ignoring errors).
pub struct SummaryWriter {
    path: PathBuf,
    file: BufWriter<File>,
    /// The directory's lock ([`SummaryWriter::for_run`]), held while the
    /// writer lives.
    _lock: Option<File>,
}

/// How a training run treats the event files already in its summaries
/// directory ([`SummaryWriter::for_run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlierEvents {
    /// A fresh run: event files there (another run's) are refused.
    Refuse,
    /// A resumed run: they stay; its `SessionLog` START purges the steps
    /// it writes again.
    Keep,
    /// `--overwrite`: axle's own event files (`events.out.tfevents.*.axle`)
    /// are removed; another writer's are refused.
    RemoveOwn,
}

/// The lock file of a summaries directory, apart from the checkpoint
/// directory's `.lock` so that one directory may serve as both.
const LOCK_FILE: &str = ".summaries.lock";

impl SummaryWriter {
    /// [`SummaryWriter::create`] for a training run: takes `dir`'s
    /// exclusive lock (`dir/.summaries.lock`, an fs4 `flock` held while the
    /// writer lives, as the checkpoint directory and metrics file are
    /// locked), then deals with the event files already there as `earlier`
    /// says. Errors: [`SummaryError`] naming the directory when another run
    /// holds it, or naming an event file of another run that is refused.
    pub fn for_run(dir: &Path, earlier: EarlierEvents) -> Result<SummaryWriter, SummaryError> {
        let dir_error = |message: String| SummaryError {
            path: dir.to_path_buf(),
            source: std::io::Error::other(message),
        };
        if dir.exists() && !dir.is_dir() {
            return Err(dir_error(
                "exists and is not a directory; --summaries takes a directory".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| dir_error(e.to_string()))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| dir_error(e.to_string()))?;
        match fs4::FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(dir_error(
                    "is in use: another run holds its lock; wait for it to end or choose \
                     another directory"
                        .into(),
                ));
            }
            Err(fs4::TryLockError::Error(e)) => return Err(dir_error(e.to_string())),
        }
        let entries = std::fs::read_dir(dir).map_err(|e| dir_error(e.to_string()))?;
        let mut events = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| dir_error(e.to_string()))?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents."))
            {
                events.push(path);
            }
        }
        events.sort();
        for path in events {
            let ours = path.extension().is_some_and(|e| e == "axle");
            let refuse = match earlier {
                EarlierEvents::Keep => continue,
                EarlierEvents::RemoveOwn if ours => {
                    std::fs::remove_file(&path).map_err(|source| SummaryError {
                        path: path.clone(),
                        source,
                    })?;
                    continue;
                }
                EarlierEvents::RemoveOwn => {
                    "is not axle's (--overwrite removes only `events.out.tfevents.*.axle`); \
                     remove it or choose another directory"
                }
                EarlierEvents::Refuse => {
                    "is an event file of an earlier run: resume that run (--resume), replace \
                     it (--overwrite) or choose another directory"
                }
            };
            return Err(SummaryError {
                path,
                source: std::io::Error::other(refuse),
            });
        }
        let mut writer = SummaryWriter::create(dir)?;
        writer._lock = Some(lock);
        Ok(writer)
    }

    /// Creates `dir` if needed and a new event file
    /// `events.out.tfevents.<secs>.<hostname>.<pid>.axle` in it, starting
    /// with the `file_version` event `"brain.Event:2"`. Where a file of that
    /// name exists (a second writer of this process in the same directory
    /// within the same second), the seconds of the name are counted on until
    /// it is new, so that the newer file sorts after the older one.
    pub fn create(dir: &Path) -> Result<SummaryWriter, SummaryError> {
        let dir_error = |source| SummaryError {
            path: dir.to_path_buf(),
            source,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(dir_error(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "exists and is not a directory; --summaries takes a directory",
            )));
        }
        std::fs::create_dir_all(dir).map_err(dir_error)?;
        let wall_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = gethostname::gethostname();
        let mut secs = wall_time.as_secs();
        let (path, file) = loop {
            let name = format!(
                "events.out.tfevents.{secs:010}.{}.{}.axle",
                host.to_string_lossy(),
                std::process::id()
            );
            let path = dir.join(name);
            match File::create_new(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => secs += 1,
                Err(source) => return Err(SummaryError { path, source }),
            }
        };
        let mut writer = SummaryWriter {
            path,
            file: BufWriter::new(file),
            _lock: None,
        };
        writer.write_event(&Event {
            wall_time: wall_time.as_secs_f64(),
            step: 0,
            file_version: Some(FILE_VERSION.to_string()),
            summary: None,
            session_log: None,
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// Appends one scalar (`tag`, `step`, `value`) as an event with one
    /// summary value. TensorBoard stores scalars as f32, so `value` is
    /// rounded to f32.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), SummaryError> {
        self.scalars(step, &[(tag.to_string(), value)])
    }

    /// Appends several scalars of one step, `(tag, value)` pairs, as one
    /// event; values are rounded to f32.
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> Result<(), SummaryError> {
        let step = self.event_step(step)?;
        let value = values
            .iter()
            .map(|(tag, value)| Value {
                tag: tag.clone(),
                simple_value: Some(*value as f32),
            })
            .collect();
        self.write_event(&Event {
            wall_time: now_seconds(),
            step,
            file_version: None,
            summary: Some(Summary { value }),
            session_log: None,
        })
    }

    /// Appends a `SessionLog { status: START }` event at `step`: the mark
    /// of a run resumed to write `step` next, on which TensorBoard discards
    /// the events of earlier files with steps at or above `step` (see the
    /// module docs, "Resumed runs").
    pub fn session_start(&mut self, step: u64) -> Result<(), SummaryError> {
        let step = self.event_step(step)?;
        self.write_event(&Event {
            wall_time: now_seconds(),
            step,
            file_version: None,
            summary: None,
            session_log: Some(SessionLog {
                status: SESSION_START,
            }),
        })
    }

    /// `step` as an event's int64 step. Errors: a step beyond `i64::MAX`.
    fn event_step(&self, step: u64) -> Result<i64, SummaryError> {
        i64::try_from(step).map_err(|_| SummaryError {
            path: self.path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("step {step} does not fit the event's int64"),
            ),
        })
    }

    /// Writes the buffered events to the file.
    pub fn flush(&mut self) -> Result<(), SummaryError> {
        self.file.flush().map_err(|source| self.error(source))
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` as one TFRecord.
    fn write_event(&mut self, event: &Event) -> Result<(), SummaryError> {
        let data = event.encode_to_vec();
        let length = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&length);
        record.extend_from_slice(&masked_crc(&length).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc(&data).to_le_bytes());
        self.file
            .write_all(&record)
            .map_err(|source| self.error(source))
    }

    /// `source` as an error on this writer's file.
    fn error(&self, source: std::io::Error) -> SummaryError {
        SummaryError {
            path: self.path.clone(),
            source,
        }
    }
}

/// The masked CRC-32C of TFRecords (`tsl/lib/hash/crc32c.h`, `Mask`):
/// rotated right by 15 bits plus a constant, so that the CRC of data that
/// holds CRCs is not degenerate.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}
/// Seconds since the Unix epoch, an event's `wall_time`.
fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
