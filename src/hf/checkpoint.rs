//! Axle checkpoints of Hugging Face models: `axle import-hf` writes one at step 0 that
//! `axle eval` and `axle train --resume` accept (its run is the experiment `hf:DIR`);
//! `axle export-hf` writes a checkpoint's parameters back as a Hugging Face model directory.

use super::config::{Family, experiment, export_config, read_config};
use super::convert::{export_params, import_params};
use super::files::{WeightDtype, write_sharded, write_tensors};
use super::{HF_PREFIX, HfError, Result, io};
use crate::checkpoint::{self, Checkpoint, Checkpointer, Meta, Tensors};
use crate::experiment::ExperimentConfig;
use crate::learner::LearnerConfig;
use crate::run::{experiment_record, record};
use crate::text::TextTokenizer;
use axle_modules::{CausalLm, Model, ModelConfig, Module};
use ndarray::{ArrayD, IxDyn};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A checkpoint at step 0 holding `params` and the zero optimizer state `learner` starts
/// from (what a fresh trainer holds), with `run` as its record.
pub fn initial_checkpoint(
    model: &dyn Model,
    learner: &LearnerConfig,
    params: Tensors,
    run: std::collections::BTreeMap<String, String>,
) -> Checkpoint {
    let opt_state = learner
        .state_specs(&model.param_specs())
        .into_iter()
        .map(|(name, spec)| (name, ArrayD::zeros(IxDyn(&spec.shape))))
        .collect();
    Checkpoint {
        step: 0,
        params,
        opt_state,
        meta: Meta {
            input_position: 0,
            rng_state: 0,
            run,
        },
    }
}

/// Imports the Hugging Face model in `dir` into a new axle checkpoint at step 0 in
/// `checkpoint_dir`, recording the experiment `hf:DIR` (absolute) with its resolved config, so
/// that `axle eval --checkpoint-dir` and `axle train --checkpoint-dir --resume` rebuild it (the
/// model directory must stay where it is for that). When `DIR/tokenizer.json` exists, its path
/// and CRC-32 are recorded as a text run records its tokenizer, so `axle generate` and
/// `axle train --resume` find it; the default end-of-sequence ids
/// ([`super::default_eos_ids`]) are recorded too, so a later edit of `DIR` does not change
/// where generation stops. Returns the checkpoint's path. Errors: those of [`read_config`],
/// [`import_params`], [`super::default_eos_ids`] and of loading the tokenizer,
/// [`HfError::CheckpointDirInUse`] when `checkpoint_dir` already holds a checkpoint, and
/// checkpoint I/O.
pub fn import_to_checkpoint(dir: &Path, checkpoint_dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    let exp = experiment(&dir)?;
    let params = import_params(&dir, &read_config(&dir)?)?;
    let saver = Checkpointer::new(checkpoint_dir, 1);
    if let Some(newest) = saver.latest()? {
        return Err(HfError::CheckpointDirInUse { newest });
    }
    let name = format!("{HF_PREFIX}{}", dir.display());
    let mut run = experiment_record(&name, &exp.config);
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = tokenizer_path
        .is_file()
        .then(|| TextTokenizer::load(&tokenizer_path))
        .transpose()?;
    if let Some(t) = &tokenizer {
        run.insert(
            record::TOKENIZER.into(),
            tokenizer_path.display().to_string(),
        );
        if let Some(crc) = t.crc32() {
            run.insert(record::TOKENIZER_CRC32.to_string(), crc);
        }
    }
    let (eos, _) = super::default_eos_ids(&dir, tokenizer.as_ref())?;
    run.insert(
        record::EOS_TOKEN_IDS.into(),
        serde_json::to_string(&eos).expect("ids serialize"),
    );
    let model = exp.config.model.build()?;
    let checkpoint = initial_checkpoint(model.as_ref(), &exp.config.learner, params, run);
    Ok(saver.save(&checkpoint)?)
}

/// Writes the newest checkpoint in `checkpoint_dir` as a Hugging Face model directory `out`
/// (`config.json` and `model.safetensors`, in `dtype`, which `config.json`'s `dtype` and
/// `torch_dtype` record; with `max_shard_bytes`, shards and an index as [`write_sharded`]
/// writes them) that `transformers`' `from_pretrained` loads.
/// When the run is an `hf:DIR` experiment whose `config.json` is still there, that file is
/// the base of the new one, so fields axle does not model (token ids, ...) are kept. Returns
/// the family written. `generation_config.json` is written (replaced) like `config.json`:
/// the run's recorded end-of-sequence ids, else those of its `hf:DIR`
/// ([`super::default_eos_ids`]), as `eos_token_id` (an id, or a list of several), and
/// `config.json`'s `bos_token_id` when it has one. `out` must not hold weight files already
/// (stale shards or an index would be loaded with the new file): other files (a
/// `tokenizer.json`) are left alone. Errors: [`HfError::Export`] for an `out` that is or lies
/// inside `checkpoint_dir`, an `out` holding weight files (naming one), a checkpoint without a
/// recorded causal LM config or a model no supported family expresses, and checkpoint and file
/// I/O.
pub fn export_checkpoint(
    checkpoint_dir: &Path,
    out: &Path,
    dtype: WeightDtype,
    max_shard_bytes: Option<u64>,
) -> Result<Family> {
    let absolute = |p: &Path| std::path::absolute(p).map_err(io(p));
    if absolute(out)?.starts_with(absolute(checkpoint_dir)?) {
        return Err(HfError::Export(format!(
            "--out {} is inside the checkpoint directory {}: export to a directory of its own",
            out.display(),
            checkpoint_dir.display()
        )));
    }
    if let Some(stale) = weight_file_in(out)? {
        return Err(HfError::Export(format!(
            "{} already holds weight files ({}): export into a directory without \
             model*.safetensors, *.bin or *.index.json files",
            out.display(),
            stale.display()
        )));
    }
    let latest = Checkpointer::new(checkpoint_dir, 1)
        .latest()?
        .ok_or_else(|| HfError::Export(format!("no checkpoint in {}", checkpoint_dir.display())))?;
    let checkpoint = checkpoint::load_params(&latest)?;
    let text = checkpoint
        .meta
        .run
        .get(crate::run::RECORDED_CONFIG)
        .ok_or_else(|| {
            HfError::Export(format!("{} records no experiment config", latest.display()))
        })?;
    let config: ExperimentConfig = serde_json::from_str(text).map_err(|e| HfError::Malformed {
        path: latest.join("meta.json"),
        message: format!("the recorded config does not parse: {e}"),
    })?;
    let ModelConfig::CausalLm(recorded) = &config.model else {
        return Err(HfError::Export(format!(
            "{} holds a {} model; only causal LMs export",
            latest.display(),
            config.model.build()?.kind()
        )));
    };
    // A scanned stack exports as the unrolled one it equals: the layout is
    // how the step was traced, not what the parameters mean.
    let mut unrolled = recorded.clone();
    unrolled.decoder.transformer.scan = false;
    let model = &unrolled;
    let expected: Vec<(String, Vec<usize>)> = CausalLm::new(model)?
        .param_specs()
        .into_iter()
        .map(|(name, spec)| (name, spec.shape))
        .collect();
    let params = checkpoint::to_stack_layout(checkpoint.params.clone(), &expected);
    let hf_dir = checkpoint
        .meta
        .run
        .get(crate::run::RECORDED_EXPERIMENT)
        .and_then(|name| name.strip_prefix(HF_PREFIX))
        .map(PathBuf::from);
    let eos = match checkpoint.meta.run.get(record::EOS_TOKEN_IDS) {
        Some(text) => serde_json::from_str(text).map_err(|e| HfError::Malformed {
            path: latest.join("meta.json"),
            message: format!("the recorded {} does not parse: {e}", record::EOS_TOKEN_IDS),
        })?,
        None => match &hf_dir {
            Some(dir) if dir.is_dir() => super::eos_token_ids(dir)?.unwrap_or_default(),
            _ => Vec::new(),
        },
    };
    let base = hf_dir
        .as_deref()
        .and_then(|dir| std::fs::read_to_string(dir.join("config.json")).ok())
        .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok());
    let max_positions = base
        .as_ref()
        .and_then(|b| b.get("max_position_embeddings"))
        .and_then(Value::as_u64)
        .map_or(config.input.seq_len, |n| n as usize);
    let (family, mut hf_config) = export_config(model, max_positions, base)?;
    for field in ["dtype", "torch_dtype"] {
        hf_config.insert(field.into(), Value::from(dtype.torch_name()));
    }
    let tensors = export_params(family, model, &params)?;
    match max_shard_bytes {
        Some(max) => write_sharded(out, &tensors, dtype, max)?,
        None => write_tensors(out, &tensors, dtype)?,
    }
    let mut generation = Map::new();
    if let Some(bos) = hf_config.get("bos_token_id").filter(|b| !b.is_null()) {
        generation.insert("bos_token_id".into(), bos.clone());
    }
    match eos.as_slice() {
        [] => {}
        [one] => {
            generation.insert("eos_token_id".into(), Value::from(*one));
        }
        many => {
            generation.insert("eos_token_id".into(), Value::from(many.to_vec()));
        }
    }
    for (name, json) in [
        ("config.json", hf_config),
        ("generation_config.json", generation),
    ] {
        let path = out.join(name);
        let text = serde_json::to_string_pretty(&json).expect("JSON values serialize");
        std::fs::write(&path, text + "\n").map_err(io(&path))?;
    }
    Ok(family)
}

/// The first Hugging Face weight file in `dir` (`*.safetensors`, `*.bin`, `*.index.json`), if
/// `dir` exists and holds one.
fn weight_file_in(dir: &Path) -> Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        names.push(entry.map_err(io(dir))?.path());
    }
    names.sort();
    Ok(names.into_iter().find(|path| {
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        name.ends_with(".safetensors") || name.ends_with(".bin") || name.ends_with(".index.json")
    }))
}
