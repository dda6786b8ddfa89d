//! Writes axle's logits of a checkpoint's parameters on a fixture's token ids, in the
//! fixture format (`logits.safetensors`: `input_ids` i32 and `logits` f32), so that
//! `tests/fixtures/hf/make.py check EXPORT OUT` can compare what `transformers` computes
//! with a model exported by `axle export-hf` against what axle computes, for any weights
//! (a fine-tuned checkpoint, not only an import):
//!
//! ```sh
//! axle train --init-from hf:tests/fixtures/hf/llama3 --steps 20 --checkpoint-dir /tmp/ft/ckpt
//! axle export-hf --checkpoint-dir /tmp/ft/ckpt --out /tmp/ft/hf
//! cargo run --example hf_logits -- /tmp/ft/ckpt tests/fixtures/hf/llama3 /tmp/ft/axle
//! python tests/fixtures/hf/make.py check /tmp/ft/hf /tmp/ft/axle
//! ```

use axle::checkpoint::{self, Checkpointer};
use axle::experiment::ExperimentConfig;
use axle::modules::ModelConfig;
use axle::runtime::Client;
use ndarray::Array2;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [checkpoint_dir, fixture, out] = args.as_slice() else {
        return Err("usage: hf_logits CHECKPOINT_DIR FIXTURE_DIR OUT_DIR".into());
    };
    let latest = Checkpointer::new(checkpoint_dir, 1)
        .latest()?
        .ok_or_else(|| format!("no checkpoint in {}", checkpoint_dir.display()))?;
    let checkpoint = checkpoint::load(&latest)?;
    let text = checkpoint
        .meta
        .run
        .get(axle::run::RECORDED_CONFIG)
        .ok_or_else(|| format!("{} records no config", latest.display()))?;
    let ModelConfig::CausalLm(model) = serde_json::from_str::<ExperimentConfig>(text)?.model else {
        return Err(format!("{} is not a causal LM", latest.display()).into());
    };
    let bytes = std::fs::read(fixture.join("logits.safetensors"))?;
    let ids = SafeTensors::deserialize(&bytes)?.tensor("input_ids")?;
    let ids = Array2::from_shape_vec(
        (ids.shape()[0], ids.shape()[1]),
        ids.data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )?;
    let logits = axle::hf::logits(&Client::cpu(1)?, &model, &checkpoint.params, &ids)?;
    let id_bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let logit_bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = [
        (
            "input_ids",
            TensorView::new(Dtype::I32, ids.shape().to_vec(), &id_bytes)?,
        ),
        (
            "logits",
            TensorView::new(Dtype::F32, logits.shape().to_vec(), &logit_bytes)?,
        ),
    ];
    std::fs::create_dir_all(out)?;
    let path = out.join("logits.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
