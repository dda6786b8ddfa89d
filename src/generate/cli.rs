//! `axle generate`: a causal LM (the newest checkpoint of a run, or a
//! Hugging Face model directory read as it is), its tokenizer, a batch of
//! prompts, and the continuations.

use super::{GenerateError, Generation, Generator, Sampling};
use crate::checkpoint::{self, Checkpointer, Tensors};
use crate::run::record::{DATA, EOS_TOKEN_IDS, TOKENIZER, check_tokenizer, recorded_config};
use crate::run::{RunError, RunOptions};
use crate::text::TextTokenizer;
use axle_modules::{CausalLm, CausalLmConfig, ModelConfig};
use axle_partition::LogicalRules;
use std::path::{Path, PathBuf};

/// Where the model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// The newest checkpoint in this directory, its model rebuilt from the
    /// config the run recorded.
    Checkpoint(PathBuf),
    /// A Hugging Face model directory (`config.json` and `model.safetensors`
    /// or a sharded index), read without an import step (`--hf DIR`).
    Hf(PathBuf),
}

/// What `axle generate` was asked.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// The model.
    pub source: ModelSource,
    /// The prompts, as text.
    pub prompts: Vec<String>,
    /// More prompts, as token ids (`--prompt-ids 1,17,42`), after the text ones.
    pub prompt_ids: Vec<Vec<u32>>,
    /// Tokens to generate after each prompt (at most: a row stops at its
    /// first end-of-sequence id).
    pub max_new_tokens: usize,
    /// The end-of-sequence ids (`--eos-id`; empty: never stop early,
    /// `--ignore-eos`). When `None`, the model's: a Hugging Face directory's
    /// ([`crate::hf::default_eos_ids`]: its `eos_token_id`, else its
    /// tokenizer's `<|endoftext|>`); for a checkpoint, those its run
    /// recorded (`import-hf`), else the same rule on the `hf:DIR` it
    /// records, else none. Only then is a `generation_config.json` read.
    pub eos_ids: Option<Vec<u32>>,
    /// How each token is chosen.
    pub sampling: Sampling,
    /// A `tokenizer.json`. When `None`: for a checkpoint, the one the run
    /// recorded, else bytes for a byte-level model ([`is_byte_level`]);
    /// for a Hugging Face directory, its `tokenizer.json` if there is one.
    /// Without a tokenizer, text prompts are refused and continuations
    /// print as token ids. A checkpoint's must be what the run recorded.
    pub tokenizer: Option<PathBuf>,
    /// The mesh (`model=4` for tensor-parallel decoding); one device when `None`.
    pub mesh: Option<String>,
    /// XLA compiler options `name=value` over the default mesh rule's for the devices
    /// ([`crate::compiler_options::add_options`]).
    pub xla_options: Vec<String>,
    /// The plugin: `cpu`, `cuda`, `tpu` or a path.
    pub plugin: String,
    /// Virtual CPU devices.
    pub cpu_devices: Option<usize>,
}

/// The prompts' token ids, the continuations and their texts.
#[derive(Clone, Debug)]
pub struct GenerateReport {
    /// The checkpoint or Hugging Face model directory used.
    pub model: PathBuf,
    /// Each prompt's token ids.
    pub prompt_ids: Vec<Vec<u32>>,
    /// The new tokens, timings and throughput.
    pub generation: Generation,
    /// Each continuation decoded to text.
    pub texts: Vec<String>,
    /// The end-of-sequence ids the rows stopped at.
    pub eos_ids: Vec<u32>,
    /// Things to tell the user that do not stop the generation (positions
    /// beyond the sequence length the model was trained at).
    pub warnings: Vec<String>,
}

/// A causal LM ready to place: its config, parameters, sharding rules,
/// tokenizer, the sequence length it was made for, and where it came from.
struct Loaded {
    model: CausalLmConfig,
    params: Tensors,
    rules: LogicalRules,
    tokenizer: Option<TextTokenizer>,
    /// Whether prompts and continuations are bytes when there is no tokenizer.
    bytes: bool,
    seq_len: usize,
    /// The end-of-sequence ids the run recorded, and where from.
    recorded_eos: Option<(Vec<u32>, String)>,
    /// The Hugging Face directory whose default end-of-sequence ids apply
    /// when none are recorded or given.
    hf_dir: Option<PathBuf>,
    path: PathBuf,
}

impl GenerateOptions {
    /// How each prompt is shown in the text output: the text prompts as
    /// given, then the id prompts as `[1, 17, 42]`.
    pub fn labels(&self) -> Vec<String> {
        let ids = self.prompt_ids.iter().map(|ids| format!("{ids:?}"));
        self.prompts.iter().cloned().chain(ids).collect()
    }
}

/// Runs `axle generate`: loads the model of `options.source`, places its
/// parameters on the mesh, tokenizes the prompts and generates, each row
/// stopping at its first end-of-sequence id ([`GenerateOptions::eos_ids`]). Errors name the checkpoint, model
/// directory, tokenizer or prompt at fault: a checkpoint of a model that is
/// not a causal LM is refused, and so is a tokenizer whose CRC-32 differs
/// from the one the run recorded ([`crate::text::TextError::TokenizerChanged`]),
/// text prompts with no tokenizer for a model that is not byte-level
/// ([`is_byte_level`]), and end-of-sequence ids outside the vocabulary
/// (naming where they came from). Prompt
/// plus new tokens beyond the model's sequence length (a checkpoint's
/// `input.seq_len`, a Hugging Face model's `max_position_embeddings`) is a
/// warning in the report; beyond [`super::Generator::max_positions`], an error.
pub fn run(options: &GenerateOptions) -> Result<GenerateReport, GenerateError> {
    let loaded = match &options.source {
        ModelSource::Checkpoint(dir) => load_checkpoint(dir, options.tokenizer.as_deref())?,
        ModelSource::Hf(dir) => load_hf(dir, options.tokenizer.as_deref())?,
    };
    let model = CausalLm::new(&loaded.model)?;
    let vocab = model.decoder.vocab_size;
    let tokenizer = &loaded.tokenizer;
    let mut prompt_ids = options
        .prompts
        .iter()
        .map(|p| match (tokenizer, loaded.bytes) {
            (Some(t), _) => Ok(t.encode(p)?),
            (None, true) => Ok(p.bytes().map(u32::from).collect()),
            (None, false) => Err(GenerateError::Invalid(format!(
                "{} has no tokenizer (none given or recorded, and its vocabulary of {} is not bytes), \
                 so a text prompt cannot be encoded: give --tokenizer FILE (or --prompt-ids)",
                loaded.path.display(),
                vocab
            ))),
        })
        .collect::<Result<Vec<_>, GenerateError>>()?;
    prompt_ids.extend(options.prompt_ids.iter().cloned());
    let (eos_ids, eos_source) = match &options.eos_ids {
        Some(ids) => (ids.clone(), "--eos-id".to_string()),
        None => default_eos(&loaded)?,
    };
    if let Some(id) = eos_ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(GenerateError::Invalid(format!(
            "end-of-sequence id {id} (from {eos_source}) is outside the model's vocabulary \
             0..{vocab}: give --eos-id ID below {vocab}, or --ignore-eos"
        )));
    }
    let mut warnings = Vec::new();
    if let Some((i, longest)) = prompt_ids
        .iter()
        .map(Vec::len)
        .enumerate()
        .max_by_key(|&(i, len)| (len, std::cmp::Reverse(i)))
    {
        let positions = longest.saturating_add(options.max_new_tokens);
        if positions > loaded.seq_len {
            warnings.push(format!(
                "prompt {} ({longest} tokens) + {} new tokens = {positions} positions, beyond \
                 the sequence length {} the model was trained at: the continuation past it \
                 may degrade",
                i + 1,
                options.max_new_tokens,
                loaded.seq_len
            ));
        }
    }
    let run = RunOptions {
        plugin: options.plugin.clone(),
        cpu_devices: options.cpu_devices,
        mesh: Some(options.mesh.clone().unwrap_or_else(|| "data=1".into())),
        xla_options: options.xla_options.clone(),
        ..RunOptions::default()
    };
    let (client, mesh) = run.client_and_mesh()?;
    let mut generator = Generator::new(&client, model, &mesh, &loaded.rules, &loaded.params)?;
    let generation = generator.generate(
        &prompt_ids,
        options.max_new_tokens,
        &options.sampling,
        &eos_ids,
        false,
    )?;
    let texts = generation
        .tokens
        .iter()
        .map(|ids| match (tokenizer, loaded.bytes) {
            (Some(t), _) => t.decode(ids),
            (None, true) => Ok(String::from_utf8_lossy(
                &ids.iter()
                    .map(|&id| u8::try_from(id).unwrap_or(b'?'))
                    .collect::<Vec<u8>>(),
            )
            .into_owned()),
            (None, false) => Ok(format!("{ids:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GenerateReport {
        model: loaded.path,
        prompt_ids,
        generation,
        texts,
        eos_ids,
        warnings,
    })
}

/// The end-of-sequence ids `loaded` stops at unless told otherwise, and
/// where they come from: those its run recorded, else
/// [`crate::hf::default_eos_ids`] of its Hugging Face directory, else none.
fn default_eos(loaded: &Loaded) -> Result<(Vec<u32>, String), GenerateError> {
    if let Some(recorded) = &loaded.recorded_eos {
        return Ok(recorded.clone());
    }
    match &loaded.hf_dir {
        Some(dir) => Ok(crate::hf::default_eos_ids(dir, loaded.tokenizer.as_ref())?),
        None => Ok((Vec::new(), String::new())),
    }
}

/// Whether a run that recorded no tokenizer is byte-level, so that text is
/// its bytes: what `axle train` feeds a model from a data file that is not
/// `.npy` or `.bin` without `--tokenizer` (`src/data/files.rs`), or a model
/// whose vocabulary is the 256 bytes (259 with three special tokens).
pub fn is_byte_level(run: &std::collections::BTreeMap<String, String>, vocab: usize) -> bool {
    let data = run.get(DATA).map_or("", String::as_str);
    let ext = Path::new(data).extension().and_then(|e| e.to_str());
    let byte_file = !data.is_empty() && !matches!(ext, Some("npy" | "bin"));
    let hf = run
        .get(crate::run::RECORDED_EXPERIMENT)
        .is_some_and(|name| name.starts_with(crate::hf::HF_PREFIX));
    !hf && (byte_file || vocab == 256 || vocab == 259)
}

/// The causal LM of the newest checkpoint in `dir` and its tokenizer
/// (`tokenizer`, else the recorded one, checked against the recorded CRC-32).
fn load_checkpoint(dir: &Path, tokenizer: Option<&Path>) -> Result<Loaded, GenerateError> {
    let latest = Checkpointer::new(dir, 1)
        .latest()
        .map_err(RunError::from)?
        .ok_or_else(|| {
            let hint = match dir.file_name().and_then(|n| n.to_str()) {
                Some(name) if name.starts_with("step_") => format!(
                    " ({name} is one checkpoint: pass the run's directory {})",
                    dir.parent().unwrap_or(Path::new(".")).display()
                ),
                _ => String::new(),
            };
            RunError::NoCheckpoint(format!("no checkpoint in {}{hint}", dir.display()))
        })?;
    let restored = checkpoint::load_params(&latest).map_err(RunError::from)?;
    let config = recorded_config(&restored.meta, &latest)?.ok_or_else(|| {
        RunError::NoCheckpoint(format!(
            "{} records no experiment config, so its model cannot be rebuilt",
            latest.display()
        ))
    })?;
    let ModelConfig::CausalLm(model) = &config.model else {
        return Err(GenerateError::Invalid(format!(
            "{} holds a model that is not a causal LM; only causal LMs generate",
            latest.display()
        )));
    };
    let tokenizer_path = tokenizer.map(Path::to_path_buf).or_else(|| {
        restored
            .meta
            .run
            .get(TOKENIZER)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    let tokenizer = tokenizer_path
        .as_deref()
        .map(TextTokenizer::load)
        .transpose()?;
    if let Some(t) = &tokenizer {
        check_tokenizer(&restored.meta, t)?;
    }
    let hf_dir = restored
        .meta
        .run
        .get(crate::run::RECORDED_EXPERIMENT)
        .and_then(|name| name.strip_prefix(crate::hf::HF_PREFIX))
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir());
    let recorded_eos = match restored.meta.run.get(EOS_TOKEN_IDS) {
        Some(text) => {
            let ids: Vec<u32> = serde_json::from_str(text).map_err(|e| {
                GenerateError::Invalid(format!(
                    "{}: the recorded {EOS_TOKEN_IDS} `{text}` is not a list of token ids: {e}",
                    latest.join("meta.json").display()
                ))
            })?;
            Some((ids, format!("the run record of {}", latest.display())))
        }
        None => None,
    };
    Ok(Loaded {
        model: model.clone(),
        params: restored.params,
        rules: config.sharding.clone(),
        tokenizer,
        bytes: is_byte_level(&restored.meta.run, CausalLm::new(model)?.decoder.vocab_size),
        seq_len: config.input.seq_len,
        recorded_eos,
        hf_dir,
        path: latest,
    })
}

/// The causal LM of the Hugging Face model directory `dir` (its
/// `config.json` and weights, converted as `axle import-hf` converts them)
/// and its tokenizer (`tokenizer`, else `dir/tokenizer.json` if present).
/// A `dir` that is a file is refused as such.
fn load_hf(dir: &Path, tokenizer: Option<&Path>) -> Result<Loaded, GenerateError> {
    if dir.is_file() {
        return Err(GenerateError::Invalid(format!(
            "--hf {} is a file, expected a model directory (config.json and safetensors)",
            dir.display()
        )));
    }
    let experiment = crate::hf::experiment(dir)?;
    let hf = crate::hf::read_config(dir)?;
    let params = crate::hf::import_params(dir, &hf)?;
    let default = dir.join("tokenizer.json");
    let tokenizer = match tokenizer {
        Some(path) => Some(TextTokenizer::load(path)?),
        None if default.is_file() => Some(TextTokenizer::load(&default)?),
        None => None,
    };
    Ok(Loaded {
        model: hf.config,
        params,
        rules: experiment.config.sharding,
        tokenizer,
        bytes: false,
        seq_len: hf.max_positions,
        recorded_eos: None,
        hf_dir: Some(dir.to_path_buf()),
        path: dir.to_path_buf(),
    })
}

/// The text `axle generate` prints: the continuation alone for one prompt;
/// for several, each after a header line `=== prompt I: PROMPT ===` (I from
/// 1), so that continuations spanning lines stay apart. Each ends with a
/// newline.
pub fn continuations_text(prompts: &[String], texts: &[String]) -> String {
    if let [text] = texts {
        return format!("{text}\n");
    }
    prompts
        .iter()
        .zip(texts)
        .enumerate()
        .map(|(i, (prompt, text))| format!("=== prompt {}: {prompt} ===\n{text}\n", i + 1))
        .collect()
}
