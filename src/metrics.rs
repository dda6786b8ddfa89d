//! Training metrics: one JSON object per line (`metrics.jsonl`), FLOP
//! counts for model FLOP utilisation, and the peak FLOP/s of known devices.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`: a training step or an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The outcome of one training step.
    Train {
        /// Step number, counting from 1.
        step: u64,
        /// Mean loss of the step's batch.
        loss: f64,
        /// Global L2 norm of the gradients, before clipping.
        grad_norm: f64,
        /// The learning rate the step used.
        learning_rate: f64,
        /// Whether the learner skipped the step (`learner.drop_grad_norm`).
        #[serde(default)]
        skipped: bool,
        /// Wall-clock seconds of the step (host to host).
        step_time_s: f64,
        /// Training tokens per second (examples per second for models
        /// without a sequence).
        tokens_per_s: f64,
        /// Model FLOP utilisation, when the device's peak is known.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        mfu: Option<f64>,
        /// The model's summaries by path (`loss/cross_entropy`,
        /// `decoder/transformer/layers/0/output_rms`, `accuracy`, ...).
        #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
        summaries: BTreeMap<String, f64>,
    },
    /// A periodic evaluation on held-out data.
    Eval {
        /// The training step after which it ran.
        step: u64,
        /// Mean loss over the evaluation batches (weighted by their
        /// live targets).
        loss: f64,
        /// Mean summaries and the model's derived metrics (accuracy,
        /// perplexity).
        #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
        metrics: BTreeMap<String, f64>,
    },
}

impl Record {
    /// The training step the record belongs to.
    pub fn step(&self) -> u64 {
        match self {
            Record::Train { step, .. } | Record::Eval { step, .. } => *step,
        }
    }

    /// The record's step and its numbers as TensorBoard scalars, tagged
    /// `train/<name>` or `eval/<name>` (summaries and metrics by path).
    pub fn scalars(&self) -> (u64, Vec<(String, f64)>) {
        match self {
            Record::Train {
                step,
                loss,
                grad_norm,
                learning_rate,
                skipped,
                step_time_s,
                tokens_per_s,
                mfu,
                summaries,
            } => {
                let mut out = vec![
                    ("train/loss".to_string(), *loss),
                    ("train/grad_norm".to_string(), *grad_norm),
                    ("train/learning_rate".to_string(), *learning_rate),
                    ("train/skipped".to_string(), f64::from(u8::from(*skipped))),
                    ("train/step_time_s".to_string(), *step_time_s),
                    ("train/tokens_per_s".to_string(), *tokens_per_s),
                ];
                out.extend(mfu.map(|m| ("train/mfu".to_string(), m)));
                out.extend(summaries.iter().map(|(k, v)| (format!("train/{k}"), *v)));
                (*step, out)
            }
            Record::Eval {
                step,
                loss,
                metrics,
            } => {
                let mut out = vec![("eval/loss".to_string(), *loss)];
                out.extend(metrics.iter().map(|(k, v)| (format!("eval/{k}"), *v)));
                (*step, out)
            }
        }
    }
}

/// Appends [`Record`]s to a JSON-lines file, flushing each line so a crash
/// loses nothing already reported. It holds the file's lock while it lives.
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

/// A metrics file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("metrics file {path}: {message}")]
pub struct MetricsError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl MetricsWriter {
    /// A writer for a fresh run: creates `path` and its directory; a file
    /// that already holds records (another run's) is refused rather than
    /// mixed with this run's, and so is any other non-empty file.
    pub fn create(path: &Path) -> Result<Self, MetricsError> {
        MetricsWriter::create_refusing(
            path,
            "remove it, choose another file, resume that run (--resume) or replace it \
             (--overwrite)",
        )
    }

    /// [`MetricsWriter::create`] for a resumed run that found no checkpoint
    /// and so starts at step 0: the records already there cannot be
    /// continued, and the refusal says so instead of suggesting `--resume`.
    pub fn create_without_checkpoint(path: &Path) -> Result<Self, MetricsError> {
        MetricsWriter::create_refusing(
            path,
            "there is no checkpoint to continue them from: remove it, choose another file \
             or replace it (--overwrite instead of --resume)",
        )
    }

    /// Creates `path` for a fresh run, refusing one that holds records with
    /// `what_to_do` ([`MetricsWriter::create`]).
    fn create_refusing(path: &Path, what_to_do: &str) -> Result<Self, MetricsError> {
        let writer = MetricsWriter::append(path)?;
        if writer.len()? > 0 {
            writer.check_is_metrics()?;
            return Err(writer.error(&format!(
                "already holds an earlier run's records: {what_to_do}"
            )));
        }
        Ok(writer)
    }

    /// A writer for a fresh run that replaces an earlier run's records:
    /// `path` is emptied (once its lock is held). Only an empty file or one
    /// that reads as axle metrics is emptied; any other file is refused
    /// (`check_is_metrics`: every complete line a record), so that `--overwrite` never
    /// destroys a file given by mistake.
    pub fn replace(path: &Path) -> Result<Self, MetricsError> {
        let writer = MetricsWriter::append(path)?;
        writer.check_is_metrics()?;
        writer
            .file
            .set_len(0)
            .map_err(|e| writer.error(&e.to_string()))?;
        Ok(writer)
    }

    /// A writer for a run resumed after `step`: the file is cut before the
    /// first record of a later step (written after the checkpoint the run
    /// resumes from; records are in step order), so it holds each step
    /// once, and the records kept are the very bytes written before. A last
    /// line without its newline (a write cut short by a crash or a full
    /// disk) is cut as well.
    ///
    /// `loss` is the training loss the checkpoint recorded for `step`
    /// (`None` for checkpoints that record none): a non-empty file must
    /// hold a train record of `step` with exactly that loss, so that the
    /// metrics file of another run is refused, untouched, rather than cut.
    pub fn resume_at(path: &Path, step: u64, loss: Option<f64>) -> Result<Self, MetricsError> {
        let writer = MetricsWriter::append(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| writer.error(&e.to_string()))?;
        let mut keep = 0;
        let mut found = None;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if !line.ends_with('\n') {
                break;
            }
            if !line.trim().is_empty() {
                let record: Record = serde_json::from_str(line).map_err(|e| {
                    writer.error(&format!(
                        "line {}: {e}: not an axle metrics file; give this run's metrics file \
                         or another path",
                        i + 1
                    ))
                })?;
                if record.step() > step {
                    break;
                }
                if let Record::Train { step: s, loss, .. } = record
                    && s == step
                {
                    found = Some(loss);
                }
            }
            keep += line.len();
        }
        if let Some(expected) = loss
            && !text.is_empty()
            && found.map(f64::to_bits) != Some(expected.to_bits())
        {
            let held = found.map_or_else(
                || format!("holds no train record of step {step}"),
                |l| format!("records loss {l} at step {step}"),
            );
            return Err(writer.error(&format!(
                "belongs to another run: it {held}, while the checkpoint resumed recorded \
                 loss {expected}; nothing was cut. Give this run's metrics file or another path"
            )));
        }
        writer
            .file
            .set_len(keep as u64)
            .map_err(|e| writer.error(&e.to_string()))?;
        Ok(writer)
    }

    /// Refuses a file that is neither empty nor axle metrics: every
    /// complete line must be blank or a [`Record`], and at least one must
    /// be a record (a last line without its newline, torn by a crash, is
    /// allowed after them). Errors: [`MetricsError`] saying "not an axle
    /// metrics file" with the first line at fault.
    fn check_is_metrics(&self) -> Result<(), MetricsError> {
        let not_metrics = |why: String| {
            self.error(&format!(
                "{why}: not an axle metrics file; refusing to replace it (give another path)"
            ))
        };
        let bytes = std::fs::read(&self.path).map_err(|e| self.error(&e.to_string()))?;
        if bytes.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8(bytes).map_err(|_| not_metrics("not UTF-8 text".into()))?;
        let mut records = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if !line.ends_with('\n') || line.trim().is_empty() {
                continue;
            }
            serde_json::from_str::<Record>(line)
                .map_err(|e| not_metrics(format!("line {}: {e}", i + 1)))?;
            records += 1;
        }
        if records == 0 {
            return Err(not_metrics("no complete record line".into()));
        }
        Ok(())
    }

    /// Opens `path` for appending, creating it and its directory, and takes
    /// its exclusive lock (a `flock`, released when the writer is dropped or
    /// the process ends), so two runs never write one metrics file.
    fn append(path: &Path) -> Result<Self, MetricsError> {
        let error = |message: String| MetricsError {
            path: path.to_path_buf(),
            message,
        };
        if path.is_dir() {
            return Err(error("is a directory; give a file path".into()));
        }
        if let Some(dir) = path.parent() {
            if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
                return Err(error(format!(
                    "its parent {} is a file, not a directory",
                    file.display()
                )));
            }
            std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| error(e.to_string()))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(error(
                    "is in use: another run holds its lock; wait for it to end or choose another file"
                        .into(),
                ));
            }
            Err(fs4::TryLockError::Error(e)) => return Err(error(e.to_string())),
        }
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The file's length in bytes.
    fn len(&self) -> Result<u64, MetricsError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| self.error(&e.to_string()))
    }

    fn error(&self, message: &str) -> MetricsError {
        MetricsError {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// Writes one record as one line. If the write fails (a full disk), the
    /// file is cut back to its previous length, so it holds whole lines
    /// only.
    pub fn write(&mut self, record: &Record) -> Result<(), MetricsError> {
        let mut line = serde_json::to_string(record).expect("records serialize");
        line.push('\n');
        let before = self.file.metadata().map(|m| m.len());
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush());
        written.map_err(|e| {
            if let Ok(len) = before {
                let _ = self.file.set_len(len);
            }
            MetricsError {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })
    }
}

/// Reads every record of a JSON-lines metrics file.
pub fn read_records(path: &Path) -> Result<Vec<Record>, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| MetricsError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_records(&text, path)
}

/// Parses JSON lines read from `path` (named in errors, with the line).
fn parse_records(text: &str, path: &Path) -> Result<Vec<Record>, MetricsError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| MetricsError {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// Dense peak FLOP/s of a device for a dtype (`"f32"` or `"bf16"`), from the
/// vendors' data sheets, matched on a substring of the device kind that
/// PJRT reports. `None` for devices or dtypes not in the table (CPUs, and
/// f32 on TPUs, which have no published f32 matmul peak): give the peak
/// with `--peak-flops` instead.
pub fn peak_flops(device_kind: &str, dtype: &str) -> Option<f64> {
    const TABLE: &[(&str, Option<f64>, f64)] = &[
        // (kind substring, f32 FLOP/s without tensor cores, bf16 FLOP/s)
        ("h200", Some(67e12), 989e12),
        ("h100", Some(67e12), 989e12),
        ("a100", Some(19.5e12), 312e12),
        ("l4", Some(30.3e12), 121e12),
        ("tpu v4", None, 275e12),
        ("tpu v5 lite", None, 197e12),
        ("tpu v5e", None, 197e12),
        ("tpu v5p", None, 459e12),
        ("tpu v6", None, 918e12),
    ];
    let kind = device_kind.to_ascii_lowercase();
    let &(_, f32_peak, bf16_peak) = TABLE.iter().find(|(name, _, _)| kind.contains(name))?;
    if dtype == "bf16" {
        Some(bf16_peak)
    } else {
        f32_peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks() {
        assert_eq!(peak_flops("NVIDIA H100 80GB HBM3", "bf16"), Some(989e12));
        assert_eq!(peak_flops("TPU v5p", "f32"), None);
        assert_eq!(peak_flops("cpu", "f32"), None);
    }

    #[test]
    fn records_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/metrics.jsonl");
        let records = [
            Record::Train {
                step: 1,
                loss: 6.9,
                grad_norm: 1.5,
                learning_rate: 1e-3,
                skipped: false,
                step_time_s: 0.4,
                tokens_per_s: 2560.0,
                mfu: None,
                summaries: BTreeMap::from([("loss/z_loss".to_string(), 40.5)]),
            },
            Record::Eval {
                step: 1,
                loss: 6.8,
                metrics: BTreeMap::from([("perplexity".to_string(), 897.8)]),
            },
        ];
        let mut writer = MetricsWriter::append(&path).unwrap();
        for record in &records {
            writer.write(record).unwrap();
        }
        assert_eq!(read_records(&path).unwrap(), records);
        std::fs::write(&path, "{not json\n").unwrap();
        let err = read_records(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    /// A line cut short by a crash or a full disk is dropped on resume, as
    /// are the records after the checkpoint's step; the file is whole JSON
    /// lines again.
    #[test]
    fn resuming_drops_a_torn_last_line_and_later_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let eval = |step| Record::Eval {
            step,
            loss: 1.0,
            metrics: BTreeMap::new(),
        };
        let mut writer = MetricsWriter::create(&path).unwrap();
        for step in 1..=3 {
            writer.write(&eval(step)).unwrap();
        }
        drop(writer);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"kind":"eval","step":4,"lo"#).unwrap();
        drop(file);
        MetricsWriter::resume_at(&path, 2, None)
            .unwrap()
            .write(&eval(3))
            .unwrap();
        assert_eq!(read_records(&path).unwrap(), [eval(1), eval(2), eval(3)]);
    }

    /// A resume cuts only the metrics file of the run it resumes: the
    /// train record of the checkpoint's step must carry the very loss the
    /// checkpoint recorded (compared bit for bit, as both are the same f32
    /// widened to f64 and printed in round-trip form); another run's file
    /// is refused, naming it, and left as it was.
    #[test]
    fn resuming_refuses_the_metrics_file_of_another_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let line = |step: u64, loss: f64| {
            format!(
                "{{\"kind\":\"train\",\"step\":{step},\"loss\":{loss},\"grad_norm\":1.0,\
                 \"learning_rate\":0.1,\"step_time_s\":1.0,\"tokens_per_s\":1.0}}\n"
            )
        };
        let text = [line(1, 5.5), line(2, 5.25), line(3, 5.0)].concat();
        std::fs::write(&path, &text).unwrap();
        for other in [Some(4.75), None] {
            let loss = other.unwrap_or(5.25);
            let step = if other.is_some() { 2 } else { 7 };
            let err = MetricsWriter::resume_at(&path, step, Some(loss))
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("metrics.jsonl") && err.contains("belongs to another run"),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
        MetricsWriter::resume_at(&path, 2, Some(5.25)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            [line(1, 5.5), line(2, 5.25)].concat()
        );
    }

    /// `--overwrite` (`replace`) empties only an empty file or axle
    /// metrics; a fresh run (`create`) refuses another non-empty file as
    /// "not an axle metrics file", not as an earlier run's records. Either
    /// way the file is left as it was.
    #[test]
    fn only_metrics_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("README.md");
        let readme = "# axle\n\nA training system.\n";
        std::fs::write(&path, readme).unwrap();
        for err in [
            MetricsWriter::replace(&path).err().unwrap(),
            MetricsWriter::create(&path).err().unwrap(),
        ] {
            let err = err.to_string();
            assert!(
                err.contains("README.md")
                    && err.contains("not an axle metrics file")
                    && !err.contains("earlier run"),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), readme);
        }
        std::fs::write(&path, "").unwrap();
        assert!(MetricsWriter::replace(&path).is_ok());
    }

    /// A resume keeps the earlier records' very bytes (no float is parsed
    /// and printed again), and the file is locked while a writer lives: a
    /// second writer is refused, naming the file; a directory is refused.
    #[test]
    fn resuming_keeps_bytes_and_the_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let line = |step: u64| {
            format!(
                "{{\"kind\":\"eval\",\"step\":{step},\"loss\":11.418347358703613000,\"metrics\":{{}}}}\n"
            )
        };
        std::fs::write(&path, [line(1), line(2), line(3)].concat()).unwrap();
        let writer = MetricsWriter::resume_at(&path, 2, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            [line(1), line(2)].concat()
        );
        let err = MetricsWriter::replace(&path).err().unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(writer);
        assert!(MetricsWriter::replace(&path).is_ok());
        let err = MetricsWriter::create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let err = MetricsWriter::create(&path.join("m.jsonl")).err().unwrap();
        assert!(
            err.to_string()
                .contains(&format!("parent {} is a file", path.display())),
            "{err}"
        );
    }

    /// A write that fails (here on `/dev/full`, which always reports a full
    /// disk) is an error naming the file.
    #[test]
    fn a_full_disk_is_an_error_naming_the_file() {
        let path = Path::new("/dev/full");
        let mut writer = MetricsWriter::append(path).unwrap();
        let err = writer
            .write(&Record::Eval {
                step: 1,
                loss: 1.0,
                metrics: BTreeMap::new(),
            })
            .unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
}
