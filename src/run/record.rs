//! What a checkpoint records about its run (`meta.json`'s `run` map), so
//! that evaluation and resumption rebuild or check the run.

use super::{RunError, RunOptions, Setup};
use crate::checkpoint::{CheckpointError, Meta};
use crate::experiment::ExperimentConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The experiment name (or the name given to [`super::Setup::new`]).
pub const EXPERIMENT: &str = "experiment";
/// The resolved experiment config, as JSON.
pub const CONFIG: &str = "config";
/// Modifiers, as a JSON list.
pub const MODIFIERS: &str = "modifiers";
/// Overrides, as a JSON list.
pub const OVERRIDES: &str = "overrides";
/// The run's `--xla-option`s (`name=value`), as a JSON list, for the record: XLA options belong
/// to the hardware (a TPU flag is an error on CPU), so a resume or evaluation applies only its
/// own, and says so when the recorded ones differ.
pub const XLA_OPTIONS: &str = "xla_options";
/// The data file, empty for the synthetic task.
pub const DATA: &str = "data";
/// The mesh.
pub const MESH: &str = "mesh";
/// Batches per evaluation.
pub const EVAL_BATCHES: &str = "eval_batches";
/// The tokenizer file of a text run, empty or absent for bytes.
pub const TOKENIZER: &str = "tokenizer";
/// The CRC-32 of the data file's bytes (8 hex digits), checked when the
/// run is resumed or evaluated: a file changed in place is refused, a file
/// moved (`--data NEWPATH`) with the same bytes accepted.
pub const DATA_CRC32: &str = "data_crc32";
/// The CRC-32 of the tokenizer file's bytes (8 hex digits), checked when
/// the run is resumed, evaluated or generated from.
pub const TOKENIZER_CRC32: &str = "tokenizer_crc32";
/// The end-of-sequence token ids of a model from a Hugging Face directory (`axle import-hf`,
/// `axle train --init-from hf:DIR`), as a JSON list, read at import or when the run started
/// ([`crate::hf::default_eos_ids`]) so that a later edit of the directory's
/// `generation_config.json` does not change where `axle generate` stops.
pub const EOS_TOKEN_IDS: &str = "eos_token_ids";
/// The training loss of the checkpoint's step, as written to the metrics
/// file (Rust's shortest round-trip form of the f64): a resumed run checks
/// that its metrics file holds this very record before cutting the file.
pub const LOSS: &str = "loss";
/// Where a text run's training stream stands (a [`crate::text::PackedTextState`] as JSON).
pub const TEXT_STATE: &str = "text_state";

impl RunOptions {
    /// What checkpoints record about this run, so that evaluation and
    /// resumption rebuild it with no other flag.
    pub(super) fn record(&self, setup: &Setup) -> BTreeMap<String, String> {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        let mut run = BTreeMap::from([
            (EXPERIMENT.to_string(), setup.name.clone()),
            (
                MODIFIERS.to_string(),
                json(&[setup.mesh_modifiers.clone(), self.modifiers.clone()].concat()),
            ),
            (OVERRIDES.to_string(), json(&self.recorded_overrides())),
            (XLA_OPTIONS.to_string(), json(&self.xla_options)),
            (
                DATA.to_string(),
                self.data
                    .as_deref()
                    .map_or(String::new(), |p| absolute(p).display().to_string()),
            ),
            (MESH.to_string(), setup.mesh.to_string()),
            (EVAL_BATCHES.to_string(), self.eval_batches.to_string()),
        ]);
        if let Some(tokenizer) = &self.tokenizer {
            run.insert(
                TOKENIZER.to_string(),
                absolute(tokenizer).display().to_string(),
            );
        }
        if let Some(crc32) = &setup.data_crc32 {
            run.insert(DATA_CRC32.to_string(), crc32.clone());
        }
        if let Some(crc32) = setup.text.as_ref().and_then(|t| t.tokenizer().crc32()) {
            run.insert(TOKENIZER_CRC32.to_string(), crc32);
        }
        if let Some(config) = &setup.config {
            run.insert(
                CONFIG.to_string(),
                serde_json::to_string(config).expect("configs serialize"),
            );
        }
        run
    }
}

/// The training loss `meta` records for its step ([`LOSS`]); `None` for
/// checkpoints that record none (older ones, `axle import-hf`'s) or an
/// unreadable value.
pub fn recorded_loss(meta: &Meta) -> Option<f64> {
    meta.run.get(LOSS).and_then(|l| l.parse().ok())
}

/// What a checkpoint records about a run of the experiment `name`, resolved to `config`,
/// with no modifier, override or data file, and the mesh left to the mesh rules (what
/// `axle import-hf` writes for the step-0 checkpoint of an imported model).
pub fn experiment_record(name: &str, config: &ExperimentConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        (EXPERIMENT.to_string(), name.to_string()),
        (MODIFIERS.to_string(), "[]".to_string()),
        (OVERRIDES.to_string(), "[]".to_string()),
        (DATA.to_string(), String::new()),
        (
            CONFIG.to_string(),
            serde_json::to_string(config).expect("configs serialize"),
        ),
    ])
}

impl RunOptions {
    /// The overrides, then the batch size and sequence length options as
    /// the `input.` overrides they are, so a record replays them.
    fn recorded_overrides(&self) -> Vec<String> {
        let mut overrides = self.overrides.clone();
        overrides.extend(self.batch_size.map(|b| format!("input.batch_size={b}")));
        overrides.extend(self.seq_len.map(|s| format!("input.seq_len={s}")));
        overrides
    }

    /// These options completed from the run a checkpoint in `dir`
    /// recorded, so that they rebuild it: its experiment unless these
    /// options name one; its modifiers and overrides, then these options'
    /// (the caller compares the resulting config with the recorded one);
    /// its mesh unless these options give one; its data and tokenizer
    /// unless these options name the same files (a recorded tokenizer only
    /// with data); and its seed, which
    /// orders the data, unless these options give the same. Other data,
    /// tokenizer or seed given are a [`RunError::Mismatch`].
    pub(super) fn completed_from(&self, meta: &Meta, dir: &Path) -> Result<RunOptions, RunError> {
        let run = &meta.run;
        let list = |key: &str| -> Vec<String> {
            run.get(key)
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default()
        };
        let mut options = self.clone();
        options.experiment = self
            .experiment
            .clone()
            .or_else(|| run.get(EXPERIMENT).cloned());
        options.modifiers = list(MODIFIERS);
        options.modifiers.extend(self.modifiers.iter().cloned());
        options.overrides = list(OVERRIDES);
        options.overrides.extend(self.recorded_overrides());
        let recorded_xla = list(XLA_OPTIONS);
        if !recorded_xla.is_empty() && recorded_xla != self.xla_options {
            eprintln!(
                "note: the run in {} used --xla-option {}; XLA options belong to the hardware \
                 and are not applied again: give them again to use them",
                dir.display(),
                recorded_xla.join(" ")
            );
        }
        (options.batch_size, options.seq_len) = (None, None);
        if options.mesh.is_none() {
            options.mesh = run.get(MESH).cloned();
        }
        let recorded = run.get(DATA).filter(|d| !d.is_empty()).map(PathBuf::from);
        let given = self.data.as_deref().map(absolute);
        let crc = run.get(DATA_CRC32);
        let unchanged =
            |path: &Path| crc.is_none_or(|c| file_crc32(path).is_ok_and(|now| &now == c));
        match (&recorded, &given) {
            (Some(r), _) if given.as_ref().is_none_or(|g| g == r) => {
                if !r.exists() {
                    return Err(RunError::Mismatch {
                        dir: dir.to_path_buf(),
                        differences: format!(
                            "  data file {} is missing: give its new path with --data (the \
                             same bytes are accepted there)",
                            r.display()
                        ),
                    });
                }
                if !unchanged(r) {
                    return Err(RunError::Mismatch {
                        dir: dir.to_path_buf(),
                        differences: format!(
                            "  data file {} changed since the checkpoint: its CRC-32 is not the \
                             recorded {}",
                            r.display(),
                            crc.map_or("", String::as_str)
                        ),
                    });
                }
                options.data = recorded.clone();
            }
            (_, None) => options.data = recorded,
            (Some(_), Some(g)) if crc.is_some() && unchanged(g) => options.data = given.clone(),
            _ => {
                let show = |d: &Option<PathBuf>| {
                    d.as_ref().map_or("the synthetic task".to_string(), |p| {
                        p.display().to_string()
                    })
                };
                return Err(RunError::Mismatch {
                    dir: dir.to_path_buf(),
                    differences: format!(
                        "  checkpoint: data = {}\n  this run:   data = {}",
                        show(&recorded),
                        show(&given)
                    ),
                });
            }
        }
        let recorded = run
            .get(TOKENIZER)
            .filter(|t| !t.is_empty())
            .map(PathBuf::from);
        match (recorded, self.tokenizer.as_deref().map(absolute)) {
            // A tokenizer recorded without data (`import-hf` of a directory with a
            // `tokenizer.json`) is for generation: with no data the run is the synthetic task.
            (recorded, None) => options.tokenizer = recorded.filter(|_| options.data.is_some()),
            (Some(r), Some(g)) if r == g => {}
            (recorded, Some(given)) => {
                return Err(RunError::Mismatch {
                    dir: dir.to_path_buf(),
                    differences: format!(
                        "  checkpoint: tokenizer = {}\n  this run:   tokenizer = {}",
                        recorded.map_or("none (bytes)".into(), |p| p.display().to_string()),
                        given.display()
                    ),
                });
            }
        }
        options.seed = Some(self.resumed_seed(meta, dir)?);
        Ok(options)
    }
}

impl RunOptions {
    /// The seed of a run continuing (or evaluating) the checkpoint in `dir`
    /// whose meta is `meta`: the recorded one, which ordered its data and
    /// drew its dropout. Errors: [`RunError::Mismatch`] naming both seeds
    /// when these options give another.
    pub(super) fn resumed_seed(&self, meta: &Meta, dir: &Path) -> Result<u64, RunError> {
        match self.seed {
            Some(given) if given != meta.rng_state => Err(RunError::Mismatch {
                dir: dir.to_path_buf(),
                differences: format!(
                    "  checkpoint: seed = {}\n  this run:   seed = {given}",
                    meta.rng_state
                ),
            }),
            _ => Ok(meta.rng_state),
        }
    }
}

/// The CRC-32 (IEEE, `crc32fast`) of the bytes of the file at `path`, as
/// 8 hex digits, as the tokenizer's is recorded. Errors:
/// [`RunError::InvalidOption`] naming the data file it cannot read.
pub fn file_crc32(path: &Path) -> Result<String, RunError> {
    let bytes = std::fs::read(path)
        .map_err(|e| RunError::InvalidOption(format!("data file {}: {e}", path.display())))?;
    Ok(format!("{:08x}", crc32fast::hash(&bytes)))
}

/// `path` made absolute (against the working directory) and, where it
/// exists, canonical, so a recorded data file is found from anywhere.
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The lines of two config dumps that differ, for error messages.
pub(super) fn differences(checkpoint: &ExperimentConfig, run: &ExperimentConfig) -> String {
    let (a, b) = (checkpoint.dump(), run.dump());
    let a_lines: Vec<&str> = a.lines().collect();
    let b_lines: Vec<&str> = b.lines().collect();
    let mut out = Vec::new();
    for line in &a_lines {
        if !b_lines.contains(line) {
            out.push(format!("  checkpoint: {line}"));
        }
    }
    for line in &b_lines {
        if !a_lines.contains(line) {
            out.push(format!("  this run:   {line}"));
        }
    }
    out.join("\n")
}

/// Config fields that change how the step is traced, not what the
/// parameters mean: a checkpoint written with one value restores under
/// another. `scan` (the trainer converts scanned and unrolled stacks'
/// tensors), `remat` (what the backward pass recomputes) and
/// `micro_batches` (how the batch is accumulated), so that a run which no
/// longer fits resumes with the remat policy or accumulation the memory
/// check suggests.
const TRACE_ONLY_FIELDS: [&str; 3] = ["scan", "remat", "micro_batches"];

/// Whether a run of config `run` may restore a checkpoint of config
/// `checkpoint`: equal but for [`TRACE_ONLY_FIELDS`].
pub(super) fn same_model(checkpoint: &ExperimentConfig, run: &ExperimentConfig) -> bool {
    let model_lines = |config: &ExperimentConfig| -> Vec<String> {
        config
            .dump()
            .lines()
            .filter(|line| {
                let field = line.split(" = ").next().unwrap_or("");
                !TRACE_ONLY_FIELDS
                    .iter()
                    .any(|f| field == *f || field.ends_with(&format!(".{f}")))
            })
            .map(str::to_string)
            .collect()
    };
    model_lines(checkpoint) == model_lines(run)
}

/// The config a checkpoint recorded, if it recorded one.
pub(crate) fn recorded_config(
    meta: &Meta,
    dir: &Path,
) -> Result<Option<ExperimentConfig>, RunError> {
    meta.run
        .get(CONFIG)
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                RunError::Checkpoint(CheckpointError::Corrupt {
                    path: dir.join("meta.json"),
                    message: format!("the recorded config does not parse: {e}"),
                })
            })
        })
        .transpose()
}

/// Checks that `tokenizer` has the content the checkpoint whose meta is
/// `meta` recorded (checkpoints written before the CRC-32 was recorded
/// pass). Errors: [`crate::text::TextError::TokenizerChanged`].
pub(crate) fn check_tokenizer(
    meta: &Meta,
    tokenizer: &crate::text::TextTokenizer,
) -> Result<(), crate::text::TextError> {
    match meta.run.get(TOKENIZER_CRC32) {
        Some(recorded) => tokenizer.check_crc32(recorded),
        None => Ok(()),
    }
}
