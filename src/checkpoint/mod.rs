//! Checkpoints: parameters and optimizer state in safetensors (tensor names
//! are parameter paths), with the step, the input position and the RNG state
//! beside them in `meta.json`.
//!
//! A checkpoint is written into a temporary directory, flushed to disk and
//! renamed into place, so a crash mid-save never leaves a checkpoint that
//! loads but is wrong: a directory named `step_*` is complete or absent.
//! `meta.json` records a CRC-32 of every file, so corruption after the fact
//! is refused on load instead of restoring wrong numbers. Arrays are stored
//! whole (global shapes), so a checkpoint restores onto any mesh.
//!
//! Training saves in the background ([`BackgroundSaver`]): the step loop
//! waits only for the copy of the state to host memory.
//!
//! A run holds [`Checkpointer::lock`] on its directory for as long as it
//! trains, so two runs never write checkpoints into the same directory.

mod background;
mod stack_layout;

pub use background::BackgroundSaver;
pub use stack_layout::to_stack_layout;

use fs4::FileExt;
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Named f32 arrays, ordered by name (parameter paths such as
/// `decoder/layers/0/attention/q_proj/weight`).
pub type Tensors = BTreeMap<String, ArrayD<f32>>;

const PARAMS_FILE: &str = "params.safetensors";
const OPT_STATE_FILE: &str = "opt_state.safetensors";
const META_FILE: &str = "meta.json";
const STEP_PREFIX: &str = "step_";
const LOCK_FILE: &str = ".lock";
const TMP_PREFIX: &str = ".tmp-";

/// Everything needed to continue a run exactly where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Training steps completed.
    pub step: u64,
    /// Model parameters by path.
    pub params: Tensors,
    /// Optimizer state by path (e.g. `adam/mu/<param path>`).
    pub opt_state: Tensors,
    /// Small values saved beside the tensors.
    pub meta: Meta,
}

impl Checkpoint {
    /// The name of the first tensor (parameter or optimizer state) holding
    /// a NaN or an infinity, if any.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.params
            .iter()
            .chain(&self.opt_state)
            .find(|(_, t)| t.iter().any(|v| !v.is_finite()))
            .map(|(name, _)| name.as_str())
    }
}

/// The non-tensor state of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Batches the training input has produced (see `Loader::position`).
    pub input_position: u64,
    /// The run's RNG state (seed of the next step's randomness).
    pub rng_state: u64,
    /// Free-form description of the run (model name, config overrides).
    pub run: BTreeMap<String, String>,
}

/// What `meta.json` holds on disk: the meta, the step, the checksums of
/// the tensor files, and a checksum of those three (so an edited or
/// damaged `meta.json` is refused too; absent in checkpoints written before
/// it existed).
#[derive(Serialize, Deserialize)]
struct MetaFile {
    step: u64,
    meta: Meta,
    crc32: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta_crc32: Option<u32>,
}

impl MetaFile {
    /// CRC-32 of the step, meta and file checksums, as compact JSON (field
    /// and map orders are fixed, so the bytes are too).
    fn checksum(&self) -> u32 {
        let body =
            serde_json::to_vec(&(self.step, &self.meta, &self.crc32)).expect("meta serializes");
        crc32fast::hash(&body)
    }
}

/// A failure to save or load a checkpoint, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file or directory could not be read, written or renamed.
    #[error("checkpoint I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not what was saved: truncated, corrupted or malformed.
    #[error("checkpoint file {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The checkpoint path exists and is not a directory.
    #[error("checkpoint directory {path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The checkpoint directory is one checkpoint (it or a directory above
    /// it holds `meta.json`), not a run's directory of checkpoints.
    #[error(
        "checkpoint directory {path} is inside the checkpoint {checkpoint}: give the run's directory ({run}), not one of its step directories"
    )]
    InsideCheckpoint {
        /// The path given.
        path: PathBuf,
        /// The checkpoint (step directory) it is in.
        checkpoint: PathBuf,
        /// That checkpoint's run directory.
        run: PathBuf,
    },
    /// Another run (process) holds the directory's lock.
    #[error(
        "checkpoint directory {dir} is in use: another run holds its lock ({dir}/.lock); wait for it to end or choose another directory"
    )]
    Locked {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// The checkpoint holds parameters only: resuming needs the optimizer
    /// state too.
    #[error(
        "checkpoint {dir} holds no optimizer state ({dir}/opt_state.safetensors is absent): its parameters can be evaluated (`axle eval`), generated from or exported, but a run cannot resume from it"
    )]
    NoOptimizerState {
        /// The checkpoint's directory.
        dir: PathBuf,
    },
    /// A tensor could not be encoded.
    #[error("cannot encode tensor {name} for {path}: {message}")]
    Encode {
        /// The tensor's name.
        name: String,
        /// The file being written.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The background thread writing a checkpoint panicked.
    #[error(
        "the background save into checkpoint directory {dir} failed unexpectedly (its thread panicked)"
    )]
    SaveThread {
        /// The checkpoint directory.
        dir: PathBuf,
    },
}

/// The `meta.json` of the checkpoint in `dir`, parsed.
fn read_meta_file(dir: &Path) -> Result<MetaFile, CheckpointError> {
    let meta_path = dir.join(META_FILE);
    let corrupt = |message: String| CheckpointError::Corrupt {
        path: meta_path.clone(),
        message,
    };
    let json = match std::fs::read(&meta_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(corrupt(format!(
                "missing: {} is not a complete checkpoint (axle never leaves one half-written; move it away to use the one before)",
                dir.display()
            )));
        }
        read => read.map_err(io(&meta_path))?,
    };
    let meta: MetaFile = serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
    match meta.meta_crc32 {
        None => {
            return Err(corrupt(
                "it has no CRC-32 of its own (`meta_crc32`): edited, or written by an axle from \
                 before checksums"
                    .into(),
            ));
        }
        Some(recorded) if recorded != meta.checksum() => {
            return Err(corrupt(format!(
                "its contents do not match its own CRC-32 {recorded:08x} (edited or damaged)"
            )));
        }
        Some(_) => {}
    }
    let named = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(STEP_PREFIX))
        .and_then(|s| s.parse::<u64>().ok());
    if let Some(named) = named.filter(|&n| n != meta.step) {
        return Err(corrupt(format!(
            "it records step {}, but its directory is named for step {named}",
            meta.step
        )));
    }
    Ok(meta)
}

/// The [`Meta`] of the checkpoint in `dir`, without reading its tensors.
pub fn load_meta(dir: &Path) -> Result<Meta, CheckpointError> {
    Ok(read_meta_file(dir)?.meta)
}

/// Saves checkpoints under one directory and keeps the last `keep` of them.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    dir: PathBuf,
    keep: usize,
}

/// The exclusive lock of a checkpoint directory, held until dropped (or
/// until the process ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl Checkpointer {
    /// Checkpoints live in `dir/step_<step>`; after each save only the
    /// newest `keep` (at least one) are kept.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        Checkpointer {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory if needed and takes its exclusive lock (a
    /// `flock` on `.lock` inside it, released when the returned guard is
    /// dropped or the process dies), so that no other run writes here; then
    /// removes the temporary directories that dead processes' unfinished
    /// saves left behind. Fails with [`CheckpointError::Locked`] if another
    /// run holds the lock, with [`CheckpointError::InsideCheckpoint`] on a
    /// checkpoint's own step directory, and on a path that is not a writable
    /// directory.
    pub fn lock(&self) -> Result<DirLock, CheckpointError> {
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(CheckpointError::NotADirectory {
                path: self.dir.clone(),
            });
        }
        let absolute = std::path::absolute(&self.dir).map_err(io(&self.dir))?;
        if let Some(checkpoint) = absolute.ancestors().find(|d| d.join(META_FILE).is_file()) {
            return Err(CheckpointError::InsideCheckpoint {
                path: self.dir.clone(),
                checkpoint: checkpoint.to_path_buf(),
                run: checkpoint.parent().unwrap_or(checkpoint).to_path_buf(),
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(CheckpointError::Locked {
                    dir: self.dir.clone(),
                });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        self.remove_stale_tmp()?;
        Ok(DirLock { _file: file })
    }

    /// Writes `checkpoint` atomically and prunes old ones; returns its
    /// directory. A save that fails (a full disk) removes its temporary
    /// directory before returning the error.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let name = format!("{STEP_PREFIX}{:010}", checkpoint.step);
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
        let saved = self.write_and_rename(checkpoint, &name, &tmp);
        if saved.is_err() && tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        saved
    }

    /// The body of [`Checkpointer::save`]: writes into `tmp`, renames it to
    /// `name` and prunes.
    fn write_and_rename(
        &self,
        checkpoint: &Checkpoint,
        name: &str,
        tmp: &Path,
    ) -> Result<PathBuf, CheckpointError> {
        if tmp.exists() {
            std::fs::remove_dir_all(tmp).map_err(io(tmp))?;
        }
        std::fs::create_dir(tmp).map_err(io(tmp))?;
        let mut crc32 = BTreeMap::new();
        for (file, tensors) in [
            (PARAMS_FILE, &checkpoint.params),
            (OPT_STATE_FILE, &checkpoint.opt_state),
        ] {
            let bytes = encode(tensors, &tmp.join(file))?;
            crc32.insert(file.to_string(), crc32fast::hash(&bytes));
            write_synced(&tmp.join(file), &bytes)?;
        }
        let mut meta = MetaFile {
            step: checkpoint.step,
            meta: checkpoint.meta.clone(),
            crc32,
            meta_crc32: None,
        };
        meta.meta_crc32 = Some(meta.checksum());
        let json = serde_json::to_vec_pretty(&meta).expect("meta serializes");
        write_synced(&tmp.join(META_FILE), &json)?;
        let dest = self.dir.join(name);
        if dest.exists() {
            self.discard(&dest)?;
        }
        std::fs::rename(tmp, &dest).map_err(io(&dest))?;
        sync_dir(&self.dir)?;
        self.prune()?;
        Ok(dest)
    }

    /// Completed checkpoints, oldest first, as (step, directory).
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let step = name
                .to_str()
                .and_then(|n| n.strip_prefix(STEP_PREFIX))
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(step) = step {
                found.push((step, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The newest completed checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>, CheckpointError> {
        Ok(self.list()?.pop().map(|(_, path)| path))
    }

    /// Removes every checkpoint of the directory, each crash-safely (a
    /// `step_*` directory is whole or gone).
    pub fn discard_all(&self) -> Result<(), CheckpointError> {
        for (_, path) in self.list()? {
            self.discard(&path)?;
        }
        Ok(())
    }

    /// Removes all but the newest `keep` checkpoints, and the temporary
    /// directories of saves that other (dead) processes left unfinished.
    fn prune(&self) -> Result<(), CheckpointError> {
        self.remove_stale_tmp()?;
        let all = self.list()?;
        let excess = all.len().saturating_sub(self.keep);
        for (_, path) in &all[..excess] {
            self.discard(path)?;
        }
        Ok(())
    }

    /// Removes the temporary directories of other processes' saves (a
    /// process that held the directory's lock before this one, now dead).
    fn remove_stale_tmp(&self) -> Result<(), CheckpointError> {
        let own = format!("-{}", std::process::id());
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(TMP_PREFIX) && !name.ends_with(&own) {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// Deletes the checkpoint directory `path` without ever leaving a
    /// half-deleted `step_*`: it is first renamed to a temporary name (one
    /// atomic step), then removed; a kill during the removal leaves a
    /// temporary directory, which the next save of another process removes.
    fn discard(&self, path: &Path) -> Result<(), CheckpointError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("step");
        let trash = self
            .dir
            .join(format!("{TMP_PREFIX}discard-{name}-{}", std::process::id()));
        std::fs::rename(path, &trash).map_err(io(path))?;
        sync_dir(&self.dir)?;
        std::fs::remove_dir_all(&trash).map_err(io(&trash))
    }
}

/// Loads the checkpoint in `dir`, verifying every file against its
/// checksum: what resuming needs. Errors: [`CheckpointError::NoOptimizerState`]
/// when `opt_state.safetensors` is absent (a parameters-only checkpoint,
/// which [`load_params`] reads), [`CheckpointError::Corrupt`] for a file
/// that does not match its checksum, [`CheckpointError::Io`].
pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let meta = read_meta_file(dir)?;
    if !dir.join(OPT_STATE_FILE).exists() {
        return Err(CheckpointError::NoOptimizerState {
            dir: dir.to_path_buf(),
        });
    }
    Ok(Checkpoint {
        step: meta.step,
        params: read_tensors(dir, &meta, PARAMS_FILE)?,
        opt_state: read_tensors(dir, &meta, OPT_STATE_FILE)?,
        meta: meta.meta,
    })
}

/// Loads the metadata and parameters of the checkpoint in `dir`, verified
/// against their checksums, leaving [`Checkpoint::opt_state`] empty: what
/// evaluation, generation and export need. The optimizer state file is not
/// read, so a checkpoint without one (parameters only) loads. Errors: as
/// [`load`], but never [`CheckpointError::NoOptimizerState`].
pub fn load_params(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let meta = read_meta_file(dir)?;
    Ok(Checkpoint {
        step: meta.step,
        params: read_tensors(dir, &meta, PARAMS_FILE)?,
        opt_state: Tensors::new(),
        meta: meta.meta,
    })
}

/// What [`verify`] found a checkpoint to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Parameters and optimizer state: it resumes, evaluates and exports.
    Complete,
    /// Parameters only (`opt_state.safetensors` absent): it evaluates and
    /// exports, but does not resume.
    ParamsOnly,
}

/// Reads the checkpoint in `dir` and checks every file present against its
/// checksum, as `axle checkpoints` does; a checkpoint without optimizer
/// state is [`Contents::ParamsOnly`], not an error. Errors: those of
/// [`load_params`] and [`load`].
pub fn verify(dir: &Path) -> Result<Contents, CheckpointError> {
    match load(dir) {
        Ok(_) => Ok(Contents::Complete),
        Err(CheckpointError::NoOptimizerState { .. }) => {
            load_params(dir).map(|_| Contents::ParamsOnly)
        }
        Err(e) => Err(e),
    }
}

/// The tensors of `file` in the checkpoint `dir`, after checking the
/// file's CRC-32 against the one `meta` recorded.
fn read_tensors(dir: &Path, meta: &MetaFile, file: &str) -> Result<Tensors, CheckpointError> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let expected = meta.crc32.get(file).copied();
    let actual = crc32fast::hash(&bytes);
    if expected != Some(actual) {
        return Err(CheckpointError::Corrupt {
            path,
            message: format!(
                "CRC-32 {actual:08x} does not match {} recorded in {META_FILE}",
                expected.map_or("nothing".to_string(), |c| format!("{c:08x}"))
            ),
        });
    }
    decode(&bytes, &path)
}

fn encode(tensors: &Tensors, path: &Path) -> Result<Vec<u8>, CheckpointError> {
    encode_f32(tensors, None).map_err(|(name, e)| CheckpointError::Encode {
        name,
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `tensors` as safetensors bytes of f32 values, with `metadata` in the
/// header (checkpoints write none, Hugging Face exports `format: pt`).
/// Errors name the tensor the encoder refused (`"(file)"` for the header).
pub fn encode_f32(
    tensors: &Tensors,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>, (String, safetensors::SafeTensorError)> {
    encode_as(tensors, metadata, safetensors::Dtype::F32, |v, out| {
        out.extend_from_slice(&v.to_le_bytes())
    })
}

/// `tensors` as safetensors bytes of `dtype`, each f32 value appended by
/// `value_bytes` as its little-endian bytes (f32, or bf16 rounded), with
/// `metadata` in the header. Errors name the tensor the encoder refused
/// (`"(file)"` for the header).
pub fn encode_as(
    tensors: &Tensors,
    metadata: Option<std::collections::HashMap<String, String>>,
    dtype: safetensors::Dtype,
    value_bytes: impl Fn(f32, &mut Vec<u8>),
) -> Result<Vec<u8>, (String, safetensors::SafeTensorError)> {
    let bytes: Vec<Vec<u8>> = tensors
        .values()
        .map(|array| {
            let mut data = Vec::with_capacity(array.len() * dtype.bitsize() / 8);
            array.iter().for_each(|&v| value_bytes(v, &mut data));
            data
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, array), data)| {
            safetensors::tensor::TensorView::new(dtype, array.shape().to_vec(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| (name.clone(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata).map_err(|e| ("(file)".to_string(), e))
}

fn decode(bytes: &[u8], path: &Path) -> Result<Tensors, CheckpointError> {
    let corrupt = |message: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut tensors = Tensors::new();
    for (name, view) in file.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(corrupt(format!(
                "tensor {name} has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let array = ArrayD::from_shape_vec(view.shape().to_vec(), values)
            .map_err(|e| corrupt(format!("tensor {name}: {e}")))?;
        tensors.insert(name, array);
    }
    Ok(tensors)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = std::fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}
