//! Hugging Face checkpoints in and out, for the Llama family (Llama 3's RoPE scaling
//! included), Mistral, Qwen2 and GPT-2: `config.json` to and from an axle experiment config
//! ([`config`]), tensor names and layouts to and from axle parameter paths ([`names`],
//! [`convert`]), `model.safetensors` and sharded `model.safetensors.index.json` files
//! ([`files`]), axle checkpoints of imported models ([`checkpoint`]), and the logits of a
//! parameter set and greedy continuations, for parity checks against `transformers` ([`forward`]),
//! and the end-of-sequence ids generation stops at ([`generation_config`]).
//!
//! The mapping, conventions and limits are in `docs/huggingface.md`.

pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod files;
pub mod forward;
pub mod generation_config;
pub mod names;

pub use checkpoint::{export_checkpoint, import_to_checkpoint, initial_checkpoint};
pub use config::{Family, HfModel, experiment, read_config};
pub use convert::{export_params, import_params};
pub use files::{WeightDtype, parse_size, read_tensors, write_sharded, write_tensors};
pub use forward::{greedy, logits};
pub use generation_config::{default_eos_ids, eos_token_ids, eos_token_ids_with_file};

use std::path::PathBuf;

/// The prefix of an experiment name (and of `--init-from`) that names a Hugging Face model
/// directory: `hf:DIR`.
pub const HF_PREFIX: &str = "hf:";

/// A Hugging Face model could not be read, converted or written; the message names the file,
/// tensor, field or architecture at fault.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid JSON or safetensors.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `config.json` names an architecture this converter does not know.
    #[error(
        "unknown architecture {architecture} in {path}: supported are LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and GPT2LMHeadModel"
    )]
    UnknownArchitecture {
        /// The architecture (or `model_type`) named.
        architecture: String,
        /// The config file.
        path: PathBuf,
    },
    /// A config field is missing, of the wrong type, or has a value axle cannot express.
    #[error("{path}: field {field}: {message}")]
    Config {
        /// The config file (or checkpoint) read.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The model's tensors lack one the architecture needs.
    #[error("missing tensor {name} in {dir}")]
    MissingTensor {
        /// The Hugging Face tensor name.
        name: String,
        /// The model directory.
        dir: PathBuf,
    },
    /// The model's tensors hold one the architecture does not have.
    #[error("unexpected tensor {name} in {dir}: the {family} architecture has no such tensor")]
    ExtraTensor {
        /// The Hugging Face tensor name.
        name: String,
        /// The model directory.
        dir: PathBuf,
        /// The architecture.
        family: String,
    },
    /// The model path of an `hf:DIR` experiment (or `--init-from hf:DIR`)
    /// is a file, not a directory.
    #[error(
        "the Hugging Face model path {path} is a file; give the model directory that holds config.json and the safetensors"
    )]
    ModelPathIsFile {
        /// The path.
        path: PathBuf,
    },
    /// The model directory of an `hf:DIR` experiment is not there.
    #[error(
        "the Hugging Face model directory {dir} is not there: an experiment (or a checkpoint that records hf:DIR) reads its config.json, so it must stay in place"
    )]
    ModelDirGone {
        /// The directory.
        dir: PathBuf,
    },
    /// A tensor holds a NaN or an infinity (a checkpoint is never written with one).
    #[error(
        "tensor {name} in {dir} holds a NaN or an infinity (an f16 value that overflowed?): a checkpoint is never written with non-finite values"
    )]
    NonFinite {
        /// The Hugging Face tensor name.
        name: String,
        /// The model directory.
        dir: PathBuf,
    },
    /// A tensor is present under two names (GPT-2's `wte.weight` and `transformer.wte.weight`).
    #[error(
        "tensor {name} in {dir} is given twice, with and without the transformer. prefix: keep one"
    )]
    DuplicateTensor {
        /// The Hugging Face tensor name, with the prefix.
        name: String,
        /// The model directory.
        dir: PathBuf,
    },
    /// A tensor has a shape other than the config implies.
    #[error("tensor {name} in {dir} has shape {got:?}, the config implies {expected:?}")]
    TensorShape {
        /// The Hugging Face tensor name.
        name: String,
        /// The model directory.
        dir: PathBuf,
        /// Its shape.
        got: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// The axle parameters to export lack one the model has, or the model cannot be expressed
    /// as a Hugging Face architecture.
    #[error("cannot export: {0}")]
    Export(String),
    /// The checkpoint directory of an import already holds a checkpoint.
    #[error("{} already holds a checkpoint ({}): import into an empty directory", newest.parent().map_or_else(|| newest.display().to_string(), |p| p.display().to_string()), newest.display())]
    CheckpointDirInUse {
        /// The newest checkpoint there.
        newest: PathBuf,
    },
    /// The model config does not build.
    #[error(transparent)]
    Model(#[from] axle_modules::Error),
    /// Compiling or running the forward pass failed.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The model directory's `tokenizer.json` could not be read.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, HfError>;

/// The model directory of an `--init-from` argument, `hf:DIR`, made absolute; `None` for
/// none. Errors: [`HfError::Config`] naming the flag for an argument without the `hf:`
/// prefix or with no directory after it.
pub fn init_from_arg(arg: Option<&str>) -> Result<Option<PathBuf>> {
    arg.map(|a| {
        let dir = a
            .strip_prefix(HF_PREFIX)
            .filter(|dir| !dir.is_empty())
            .ok_or_else(|| HfError::Config {
                path: PathBuf::from(a),
                field: "--init-from".into(),
                message: "expected hf:DIR, a Hugging Face model directory".into(),
            })?;
        std::path::absolute(dir).map_err(io(std::path::Path::new(dir)))
    })
    .transpose()
}

/// An experiment name with an `hf:DIR` directory made absolute (other names unchanged), so
/// that a checkpoint's record finds the model from any working directory.
pub fn absolute_experiment_name(name: &str) -> String {
    match name.strip_prefix(HF_PREFIX) {
        Some(dir) => match std::path::absolute(dir) {
            Ok(dir) => format!("{HF_PREFIX}{}", dir.display()),
            Err(_) => name.to_string(),
        },
        None => name.to_string(),
    }
}

/// An [`HfError::Io`] for `path`.
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> HfError + '_ {
    move |source| HfError::Io {
        path: path.to_path_buf(),
        source,
    }
}
