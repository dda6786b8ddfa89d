//! Autoregressive generation from a causal LM (an axle checkpoint or a
//! Hugging Face model directory): a prefill program runs a
//! batch of prompts (of different lengths, right-padded) through the
//! decoder and fills its key/value caches; a decode program then adds one
//! token per row, the caches donated from call to call so they are
//! updated in place on the devices. Both run partitioned over a mesh
//! (tensor-parallel decoding with `--mesh model=N`). The next token is
//! chosen on the host from the logits ([`Sampling`]).

mod cli;
mod program;
mod sampling;

pub use cli::{
    GenerateOptions, GenerateReport, ModelSource, continuations_text, is_byte_level, run,
};
pub use sampling::{Sampling, argmax};

use crate::checkpoint::Tensors;
use crate::train_step::StepError;
use crate::trainer::{TrainError, check_mesh, compile_options, layout};
use axle_modules::CausalLm;
use axle_partition::{LogicalRules, Mesh};
use axle_runtime::{Arg, Buffer, Client, Executable, ShardLayout, ShardedArray};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;
use std::time::Instant;

/// Generation failed; the message names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The programs could not be built for this model and mesh.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The model refused (a config that cannot decode, mismatched caches).
    #[error(transparent)]
    Model(#[from] axle_modules::Error),
    /// Tracing failed.
    #[error(transparent)]
    Trace(#[from] axle_compiler::TraceError),
    /// The traced function refused an annotation.
    #[error(transparent)]
    Function(#[from] axle_compiler::FunctionError),
    /// The plugin failed to compile or run a program.
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// The mesh does not fit the devices, or parameters do not fit the model.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Bad prompts or options, named.
    #[error("{0}")]
    Invalid(String),
    /// The tokenizer or a prompts file failed.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// The checkpoint could not be found or read, or does not hold a causal LM.
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    /// The Hugging Face model directory could not be read or converted.
    #[error(transparent)]
    Hf(#[from] crate::hf::HfError),
}

/// The most positions (prompt plus new tokens) a model without a learned
/// position embedding (RoPE) may generate to: the cache and each decode
/// call grow with it, so a mistyped `--max-new-tokens` is refused rather
/// than run for hours.
pub const MAX_POSITIONS: usize = 8192;

/// What a generation produced and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The new tokens of each prompt, in prompt order: `max_new_tokens` of
    /// them, or fewer when the row stopped at an end-of-sequence id (the
    /// last token then, as `transformers` keeps it).
    pub tokens: Vec<Vec<u32>>,
    /// The logits each token was chosen from, `[step][row][vocab]`, when
    /// asked for ([`Generator::generate`]'s `keep_logits`).
    pub logits: Vec<Vec<Vec<f32>>>,
    /// Seconds of the prefill call (prompts in, first logits out).
    pub prefill_s: f64,
    /// Seconds of all decode calls.
    pub decode_s: f64,
    /// Decode calls made: `max_new_tokens - 1`, or fewer when every row
    /// stopped at an end-of-sequence id before.
    pub decode_calls: usize,
    /// Tokens decoded per second: the tokens chosen from decode calls'
    /// logits (every row's tokens but its first, which the prefill gives;
    /// rows that stopped at an end-of-sequence id count no more) over
    /// `decode_s`.
    pub decode_tokens_per_s: f64,
}

/// The compiled programs for one batch size, prompt length and cache length.
struct Programs {
    prefill: Executable,
    decode: Executable,
    /// The layouts of the token ids (and positions) and of the last indices.
    layouts: [ShardLayout; 2],
}

/// A causal LM's parameters placed on a mesh, generating from batches of
/// prompts; programs are compiled once per batch shape and kept.
pub struct Generator {
    client: Client,
    model: CausalLm,
    mesh: Mesh,
    rules: LogicalRules,
    params: Vec<ShardedArray>,
    programs: HashMap<(usize, usize, usize), Programs>,
}

impl Generator {
    /// Places `params` (by path, f32: a checkpoint's) for `model` on `mesh`
    /// of `client`, split as `rules` map the parameters' roles. Errors name
    /// a missing or misshapen parameter, or a mesh the client lacks.
    pub fn new(
        client: &Client,
        model: CausalLm,
        mesh: &Mesh,
        rules: &LogicalRules,
        params: &Tensors,
    ) -> Result<Generator, GenerateError> {
        check_mesh(client, mesh)?;
        let specs = program::param_args(&model, mesh, rules)?;
        let mut placed = Vec::with_capacity(specs.len());
        for a in &specs {
            let value = params.get(&a.name).ok_or_else(|| {
                GenerateError::Invalid(format!("the parameters lack `{}`", a.name))
            })?;
            if value.shape() != a.shape.as_slice() {
                return Err(GenerateError::Invalid(format!(
                    "parameter `{}` is {:?}, the model expects {:?}",
                    a.name,
                    value.shape(),
                    a.shape
                )));
            }
            placed.push(ShardedArray::from_array(client, value, &layout(mesh, a)?)?);
        }
        Ok(Generator {
            client: client.clone(),
            model,
            mesh: mesh.clone(),
            rules: rules.clone(),
            params: placed,
            programs: HashMap::new(),
        })
    }

    /// The model's vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.model.decoder.vocab_size
    }

    /// The most positions (prompt plus new tokens) a generation may use:
    /// the rows of a learned position embedding (GPT-2's `n_positions`),
    /// else [`MAX_POSITIONS`] (RoPE has no table; the cap keeps a mistyped
    /// `--max-new-tokens` from running for hours).
    pub fn max_positions(&self) -> usize {
        self.model
            .decoder
            .position_embedding
            .as_ref()
            .map_or(MAX_POSITIONS, |p| p.num_embeddings)
    }

    /// Generates `max_new_tokens` tokens after each of `prompts` (token ids,
    /// each non-empty and below the vocabulary), choosing each by
    /// `sampling`. One prefill call, then up to `max_new_tokens - 1` decode
    /// calls; `keep_logits` returns the logits of every choice too. A row
    /// stops at its first token in `eos_ids` (kept as its last token, as in
    /// `transformers`' `generate`); the others go on (a stopped row is fed
    /// its end-of-sequence token again, its results unused), and the
    /// generation ends when every row has stopped. Empty `eos_ids`: always
    /// `max_new_tokens` tokens. Errors: [`GenerateError::Invalid`] for
    /// no prompt, an empty prompt, a token outside the vocabulary, or the
    /// longest prompt plus `max_new_tokens` beyond [`Generator::max_positions`].
    pub fn generate(
        &mut self,
        prompts: &[Vec<u32>],
        max_new_tokens: usize,
        sampling: &Sampling,
        eos_ids: &[u32],
        keep_logits: bool,
    ) -> Result<Generation, GenerateError> {
        sampling.validate().map_err(GenerateError::Invalid)?;
        self.check_prompts(prompts, max_new_tokens)?;
        let batch = prompts.len();
        let prompt_len = prompts.iter().map(Vec::len).max().unwrap_or(1);
        let max_len = prompt_len + max_new_tokens;
        let key = (batch, prompt_len, max_len);
        self.compile(key)?;
        let programs = &self.programs[&key];
        let devices = self.mesh.size();

        let start = Instant::now();
        let mut ids = ArrayD::<i32>::zeros(IxDyn(&[batch, prompt_len]));
        for (row, prompt) in prompts.iter().enumerate() {
            for (t, &id) in prompt.iter().enumerate() {
                ids[[row, t]] = id as i32;
            }
        }
        let last: Vec<i32> = prompts.iter().map(|p| p.len() as i32 - 1).collect();
        let last = ArrayD::from_shape_vec(IxDyn(&[batch]), last).expect("one per prompt");
        let input_layouts = &programs.layouts[..2];
        let ids = ShardedArray::from_array(&self.client, &ids, &input_layouts[0])?;
        let last = ShardedArray::from_array(&self.client, &last, &input_layouts[1])?;
        let args: Vec<&ShardedArray> = self.params.iter().chain([&ids, &last]).collect();
        let outputs = programs
            .prefill
            .execute_donating(per_device(devices, &args))?;
        let (mut logits, mut caches) = split_outputs(outputs)?;
        let prefill_s = start.elapsed().as_secs_f64();

        let mut generation = Generation {
            tokens: vec![Vec::with_capacity(max_new_tokens); batch],
            logits: Vec::new(),
            prefill_s,
            decode_s: 0.0,
            decode_calls: 0,
            decode_tokens_per_s: 0.0,
        };
        let mut stopped = vec![false; batch];
        let vocab = self.vocab_size();
        let start = Instant::now();
        for step in 0..max_new_tokens {
            let mut chosen = Vec::with_capacity(batch);
            for (row, tokens) in generation.tokens.iter_mut().enumerate() {
                if stopped[row] {
                    chosen.push(*tokens.last().expect("a stopped row has its EOS") as i32);
                    continue;
                }
                let row_logits = &logits[row * vocab..(row + 1) * vocab];
                let token = sampling.choose(row_logits, row as u64, step as u64);
                tokens.push(token);
                chosen.push(token as i32);
                stopped[row] = eos_ids.contains(&token);
            }
            if keep_logits {
                generation
                    .logits
                    .push(logits.chunks(vocab).map(<[f32]>::to_vec).collect());
            }
            if step + 1 == max_new_tokens || stopped.iter().all(|&s| s) {
                break;
            }
            generation.decode_calls += 1;
            let positions: Vec<i32> = prompts.iter().map(|p| (p.len() + step) as i32).collect();
            let shape = IxDyn(&[batch, 1]);
            let ids = ArrayD::from_shape_vec(shape.clone(), chosen).expect("one per row");
            let positions = ArrayD::from_shape_vec(shape, positions).expect("one per row");
            let ids = ShardedArray::from_array(&self.client, &ids, &input_layouts[0])?;
            let positions = ShardedArray::from_array(&self.client, &positions, &input_layouts[0])?;
            let args: Vec<&ShardedArray> = self.params.iter().chain([&ids, &positions]).collect();
            let mut lists = per_device(devices, &args);
            for (list, device_caches) in lists.iter_mut().zip(caches.drain(..)) {
                list.extend(device_caches.into_iter().map(Arg::Donated));
            }
            let outputs = programs.decode.execute_donating(lists)?;
            (logits, caches) = split_outputs(outputs)?;
        }
        generation.decode_s = start.elapsed().as_secs_f64();
        let decoded: usize = generation.tokens.iter().map(|t| t.len() - 1).sum();
        generation.decode_tokens_per_s =
            decoded as f64 / generation.decode_s.max(f64::MIN_POSITIVE);
        Ok(generation)
    }

    fn check_prompts(
        &self,
        prompts: &[Vec<u32>],
        max_new_tokens: usize,
    ) -> Result<(), GenerateError> {
        if prompts.is_empty() || max_new_tokens == 0 {
            return Err(GenerateError::Invalid(format!(
                "nothing to generate: {} prompts, {max_new_tokens} new tokens",
                prompts.len()
            )));
        }
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let limit = self.max_positions();
        if longest.saturating_add(max_new_tokens) > limit {
            return Err(GenerateError::Invalid(format!(
                "longest prompt ({longest} tokens) + {max_new_tokens} new tokens > {limit} \
                 positions: {}",
                if self.model.decoder.position_embedding.is_some() {
                    "the model's position embedding has no more rows"
                } else {
                    "axle caps generation at this many positions (MAX_POSITIONS)"
                }
            )));
        }
        let vocab = self.vocab_size();
        for (i, prompt) in prompts.iter().enumerate() {
            if prompt.is_empty() {
                return Err(GenerateError::Invalid(format!("prompt {} is empty", i + 1)));
            }
            if let Some(id) = prompt.iter().find(|&&id| id as usize >= vocab) {
                return Err(GenerateError::Invalid(format!(
                    "prompt {} holds token {id}, outside the model's vocabulary 0..{vocab}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    /// Traces and compiles the programs for `key` (batch, prompt length,
    /// cache length) unless they are compiled already.
    fn compile(&mut self, key: (usize, usize, usize)) -> Result<(), GenerateError> {
        if self.programs.contains_key(&key) {
            return Ok(());
        }
        let (batch, prompt_len, max_len) = key;
        let (model, mesh, rules) = (&self.model, &self.mesh, &self.rules);
        let prefill = program::prefill(model, batch, prompt_len, max_len, mesh, rules)?;
        let decode = program::decode(model, batch, max_len, mesh, rules)?;
        let n = self.params.len();
        let options = compile_options(mesh);
        let programs = Programs {
            prefill: self
                .client
                .compile(&prefill.function.to_stablehlo(), &options)?,
            decode: self
                .client
                .compile(&decode.function.to_stablehlo(), &options)?,
            layouts: [
                layout(mesh, &prefill.args[n])?,
                layout(mesh, &prefill.args[n + 1])?,
            ],
        };
        self.programs.insert(key, programs);
        Ok(())
    }
}

/// Each device's list of borrowed shards of `args`, in argument order.
fn per_device<'a>(devices: usize, args: &[&'a ShardedArray]) -> Vec<Vec<Arg<'a>>> {
    (0..devices)
        .map(|d| args.iter().map(|a| Arg::Borrowed(&a.shards()[d])).collect())
        .collect()
}

/// The host logits `[batch * vocab]` (from device 0: they are replicated)
/// and each device's cache buffers `[device][cache]`, from one call's
/// outputs `[device][result]` (the logits first).
fn split_outputs(outputs: Vec<Vec<Buffer>>) -> Result<(Vec<f32>, Vec<Vec<Buffer>>), GenerateError> {
    let mut logits = Vec::new();
    let mut caches = Vec::with_capacity(outputs.len());
    for (device, mut outs) in outputs.into_iter().enumerate() {
        let first = outs.remove(0);
        if device == 0 {
            logits = first.to_vec::<f32>()?;
        }
        caches.push(outs);
    }
    Ok((logits, caches))
}
