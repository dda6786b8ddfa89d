//! `axle generate`: the newest checkpoint of a run, its recorded model and
//! tokenizer, a batch of prompts, and the continuations.

use super::{GenerateError, Generation, Generator, Sampling};
use crate::checkpoint::{self, Checkpointer};
use crate::run::record::{TOKENIZER, check_tokenizer, recorded_config};
use crate::run::{RunError, RunOptions};
use crate::text::TextTokenizer;
use axle_modules::{CausalLm, ModelConfig};
use axle_partition::MeshShape;
use std::path::PathBuf;

/// What `axle generate` was asked.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Directory of the run's checkpoints (the newest is used).
    pub checkpoint_dir: PathBuf,
    /// The prompts, as text.
    pub prompts: Vec<String>,
    /// Tokens to generate after each prompt.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: Sampling,
    /// A `tokenizer.json`; the one the run recorded when `None`, and bytes
    /// when it recorded none. Its content must be what the run recorded.
    pub tokenizer: Option<PathBuf>,
    /// The mesh (`model=4` for tensor-parallel decoding); one device when `None`.
    pub mesh: Option<String>,
    /// The plugin: `cpu`, `cuda`, `tpu` or a path.
    pub plugin: String,
    /// Virtual CPU devices.
    pub cpu_devices: Option<usize>,
}

/// The prompts' token ids, the continuations and their texts.
#[derive(Clone, Debug)]
pub struct GenerateReport {
    /// The checkpoint used.
    pub checkpoint: PathBuf,
    /// Each prompt's token ids.
    pub prompt_ids: Vec<Vec<u32>>,
    /// The new tokens, timings and throughput.
    pub generation: Generation,
    /// Each continuation decoded to text.
    pub texts: Vec<String>,
    /// Things to tell the user that do not stop the generation (positions
    /// beyond the sequence length the model was trained at).
    pub warnings: Vec<String>,
}

/// Runs `axle generate`: rebuilds the causal LM the newest checkpoint in
/// `options.checkpoint_dir` recorded, places its parameters on the mesh,
/// tokenizes the prompts (tokenizer given, else recorded, else bytes) and
/// generates (not stopping at an end-of-text token). Errors name the
/// checkpoint, the tokenizer or the prompt at fault; a checkpoint of a model
/// that is not a causal LM is refused, and so is a tokenizer whose CRC-32
/// differs from the one the run recorded
/// ([`crate::text::TextError::TokenizerChanged`]). Prompt plus new tokens
/// beyond the model's sequence length (`input.seq_len`) is a warning in the
/// report; beyond [`super::Generator::max_positions`], an error.
pub fn generate_from_checkpoint(
    options: &GenerateOptions,
) -> Result<GenerateReport, GenerateError> {
    let dir = &options.checkpoint_dir;
    let latest = Checkpointer::new(dir, 1)
        .latest()
        .map_err(RunError::from)?
        .ok_or_else(|| RunError::NoCheckpoint(format!("no checkpoint in {}", dir.display())))?;
    let restored = checkpoint::load_params(&latest).map_err(RunError::from)?;
    let config = recorded_config(&restored.meta, &latest)?.ok_or_else(|| {
        RunError::NoCheckpoint(format!(
            "{} records no experiment config, so its model cannot be rebuilt",
            latest.display()
        ))
    })?;
    let ModelConfig::CausalLm(model_config) = &config.model else {
        return Err(GenerateError::Invalid(format!(
            "{} holds a model that is not a causal LM; only causal LMs generate",
            latest.display()
        )));
    };
    let model = CausalLm::new(model_config)?;
    let tokenizer_path = options.tokenizer.clone().or_else(|| {
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
    let prompt_ids = options
        .prompts
        .iter()
        .map(|p| match &tokenizer {
            Some(t) => t.encode(p),
            None => Ok(p.bytes().map(u32::from).collect()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut warnings = Vec::new();
    let longest = prompt_ids.iter().map(Vec::len).max().unwrap_or(0);
    let positions = longest.saturating_add(options.max_new_tokens);
    if positions > config.input.seq_len {
        warnings.push(format!(
            "prompt {longest} + {} new tokens = {positions} positions, beyond the sequence length \
             {} the model was trained at: the continuation past it may degrade",
            options.max_new_tokens, config.input.seq_len
        ));
    }
    let run = RunOptions {
        plugin: options.plugin.clone(),
        cpu_devices: options.cpu_devices,
        ..RunOptions::default()
    };
    let client = run.client()?;
    let shape: MeshShape = options
        .mesh
        .as_deref()
        .unwrap_or("data=1")
        .parse()
        .map_err(|e| RunError::Mesh(format!("{e}")))?;
    let devices = client.addressable_devices()?.len();
    let mesh = shape
        .resolve(devices)
        .map_err(|e| RunError::Mesh(e.to_string()))?;
    let mut generator = Generator::new(&client, model, &mesh, &config.sharding, &restored.params)?;
    let generation = generator.generate(
        &prompt_ids,
        options.max_new_tokens,
        &options.sampling,
        false,
    )?;
    let texts = generation
        .tokens
        .iter()
        .map(|ids| match &tokenizer {
            Some(t) => t.decode(ids),
            None => Ok(String::from_utf8_lossy(
                &ids.iter()
                    .map(|&id| u8::try_from(id).unwrap_or(b'?'))
                    .collect::<Vec<u8>>(),
            )
            .into_owned()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GenerateReport {
        checkpoint: latest,
        prompt_ids,
        generation,
        texts,
        warnings,
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
