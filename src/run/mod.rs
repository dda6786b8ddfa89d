//! A training run from options to metrics and checkpoints: what `axle
//! train` and `axle eval` do, callable from tests and other programs, for
//! registered experiments ([`RunOptions::setup`]) and for any model
//! ([`Setup::new`]).

mod device_memory;
mod eval;
pub(crate) mod record;
mod setup;
mod train_loop;
mod watchdog;

pub use device_memory::{
    DEVICE_MEMORY_LIMIT_ENV, DeviceMemoryShortfall, MemoryLimit, check_device_memory,
    device_bytes_needed, device_memory_limit, device_memory_limit_from_env, show_bytes,
};
pub use eval::{EvalReport, Evaluation, evaluate, evaluate_trainer};
pub use record::{CONFIG as RECORDED_CONFIG, EXPERIMENT as RECORDED_EXPERIMENT, experiment_record};
pub use setup::{Setup, open_source};
pub use train_loop::{RunSummary, train, train_setup};
pub use watchdog::{SLOW_FACTOR, TIMEOUT_EXIT_CODE, Watchdog};

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::metrics::MetricsError;
use crate::summary_writer::SummaryError;
use crate::trainer::TrainError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The experiment trained when none is named.
pub const DEFAULT_EXPERIMENT: &str = "llama-tiny";

/// Everything that defines a run (the `axle train` options).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Registered experiment name; [`DEFAULT_EXPERIMENT`] for training when
    /// `None`, the checkpoint's for evaluation.
    pub experiment: Option<String>,
    /// Modifiers `NAME[=ARGS]`, applied in order after the mesh rule's.
    pub modifiers: Vec<String>,
    /// Config overrides `path=value`, applied after the modifiers
    /// (see [`crate::experiment::ExperimentConfig::apply_overrides`] for paths).
    pub overrides: Vec<String>,
    /// An explicit mesh (`data=2,fsdp=4`); the mesh rules choose otherwise.
    pub mesh: Option<String>,
    /// XLA compiler options `name=value` (`--xla-option`), over the mesh rule's: each replaces
    /// the rule's option of the same name or is added ([`crate::compiler_options::add_options`]).
    pub xla_options: Vec<String>,
    /// The plugin: `cpu`, `cuda`, `tpu` or a path to a PJRT plugin.
    pub plugin: String,
    /// Virtual CPU devices (`cpu_device_count`); ignored by other plugins.
    pub cpu_devices: Option<usize>,
    /// Training data file; the experiment's synthetic task when `None`.
    pub data: Option<PathBuf>,
    /// A `tokenizer.json`: `data` (a file or a directory of files) is then
    /// text, streamed, tokenized and packed ([`crate::text::TextInput`]).
    pub tokenizer: Option<PathBuf>,
    /// Train until this many steps are done.
    pub steps: u64,
    /// Batch size (`input.batch_size` of the experiment when `None`).
    pub batch_size: Option<usize>,
    /// Sequence length (`input.seq_len` of the experiment when `None`).
    pub seq_len: Option<usize>,
    /// Seed of initialisation, data order, synthetic task and dropout
    /// ([`RunOptions::seed`]): 0 for a fresh run when `None`, the
    /// checkpoint's on resume. A resume or evaluation given a seed other
    /// than the checkpoint's is refused ([`RunError::Mismatch`]).
    pub seed: Option<u64>,
    /// Where checkpoints go; none are written when `None`.
    pub checkpoint_dir: Option<PathBuf>,
    /// Save every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep: usize,
    /// Write checkpoints on a background thread ([`crate::checkpoint::BackgroundSaver`]),
    /// so that training waits only for the copy of the state to host memory.
    pub async_checkpoints: bool,
    /// A train step, evaluation or checkpoint copy running longer than this
    /// ends the process with status [`TIMEOUT_EXIT_CODE`] (see [`Watchdog`]);
    /// no watchdog when `None`.
    pub step_timeout: Option<Duration>,
    /// Continue from the newest checkpoint in `checkpoint_dir`, if any.
    pub resume: bool,
    /// Start afresh where an earlier run left checkpoints and metrics: its
    /// checkpoints are removed once the step has compiled, its metrics file
    /// is emptied. Without it such a run is refused.
    pub overwrite: bool,
    /// Evaluate every this many steps (0: never).
    pub eval_every: u64,
    /// Batches per evaluation.
    pub eval_batches: u64,
    /// Where metrics go (JSON lines); none when `None`.
    pub metrics: Option<PathBuf>,
    /// Directory for TensorBoard event files (`train/...` and `eval/...`
    /// scalars); none when `None`.
    pub summaries: Option<PathBuf>,
    /// Peak FLOP/s of one device, for MFU (from the device table when `None`).
    pub peak_flops: Option<f64>,
    /// Set to `true` (from a signal handler, another thread) to stop the
    /// run at the next step boundary: it saves a checkpoint there (with a
    /// checkpoint directory) and returns normally, with
    /// [`RunSummary::interrupted`] set.
    pub stop: Option<Arc<AtomicBool>>,
    /// A Hugging Face model directory whose weights replace the initial
    /// parameters of a fresh run (`--init-from hf:DIR`; a resumed run
    /// ignores it). The experiment must be that model's (`hf:DIR`).
    pub init_from: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            experiment: None,
            modifiers: Vec::new(),
            overrides: Vec::new(),
            mesh: None,
            xla_options: Vec::new(),
            plugin: "cpu".into(),
            cpu_devices: None,
            data: None,
            tokenizer: None,
            steps: 300,
            batch_size: None,
            seq_len: None,
            seed: None,
            checkpoint_dir: None,
            checkpoint_every: 100,
            keep: 3,
            async_checkpoints: true,
            step_timeout: Some(DEFAULT_STEP_TIMEOUT),
            resume: false,
            overwrite: false,
            eval_every: 50,
            eval_batches: 4,
            metrics: None,
            summaries: None,
            peak_flops: None,
            stop: None,
            init_from: None,
        }
    }
}

impl RunOptions {
    /// The seed of a run that resumes nothing: [`RunOptions::seed`], or 0.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }
}

/// The step timeout of [`RunOptions::default`]: one hour, far above any
/// step that is not hung.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Bytes in a GiB, for messages.
const GIB: f64 = (1u64 << 30) as f64;

/// A run failed; the message names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A Hugging Face model could not be read or converted.
    #[error(transparent)]
    Hf(#[from] crate::hf::HfError),
    /// The model config or an override is wrong.
    #[error(transparent)]
    Config(#[from] axle_modules::Error),
    /// The model's parameters and optimizer state would not fit in the
    /// host's memory while they are initialised.
    #[error(
        "the parameters and optimizer state need {:.1} GiB of host memory to initialise, {:.1} GiB is available",
        *needed as f64 / GIB,
        *available as f64 / GIB
    )]
    HostMemory {
        /// Bytes needed.
        needed: u64,
        /// Bytes available (`MemAvailable`).
        available: u64,
    },
    /// The compiled train step needs more memory on one device than the
    /// device has; found after compiling, before anything is placed on the
    /// devices (boxed: the sizes would make every `Result` of this error
    /// large).
    #[error(transparent)]
    DeviceMemory(Box<DeviceMemoryShortfall>),
    /// A loop option that cannot work (zero checkpoints kept, zero
    /// evaluation batches, `resume` without a checkpoint directory).
    #[error("{0}")]
    InvalidOption(String),
    /// A modifier is unknown or its argument is wrong.
    #[error("{0}")]
    Modifier(String),
    /// The mesh text or the mesh rules failed.
    #[error("mesh: {0}")]
    Mesh(String),
    /// The plugin or device failed.
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// The trainer failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The text input or its tokenizer failed.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A fresh run (no `--resume`) was pointed at a directory that holds
    /// another run's checkpoints.
    #[error(
        "{} holds checkpoints of an earlier run (newest {}): pass --resume to continue it, --overwrite to replace it, or choose another checkpoint directory",
        newest.parent().map_or_else(|| newest.display().to_string(), |p| p.display().to_string()),
        newest.display()
    )]
    CheckpointDirInUse {
        /// The newest checkpoint there.
        newest: PathBuf,
    },
    /// There is no checkpoint to evaluate.
    #[error("{0}")]
    NoCheckpoint(String),
    /// The checkpoint was written by a different run than the one asked for.
    #[error("checkpoint {dir} does not match this run:\n{differences}")]
    Mismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The differing config lines, `checkpoint: ...` / `this run: ...`.
        differences: String,
    },
    /// Metrics could not be written.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// TensorBoard summaries could not be written.
    #[error(transparent)]
    Summaries(#[from] SummaryError),
    /// A step produced a non-finite loss, gradient norm or new state; the
    /// run stops before saving that state, keeping the last good checkpoint.
    #[error(
        "{what} at step {step}: stopping; the last good checkpoint ({last_checkpoint}) is kept"
    )]
    NonFinite {
        /// The step that went wrong.
        step: u64,
        /// What is not finite (`loss is NaN`, `gradient norm is inf`, ...).
        what: String,
        /// The newest checkpoint on disk.
        last_checkpoint: String,
    },
}
