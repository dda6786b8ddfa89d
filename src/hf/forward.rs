//! The logits of a causal LM's parameters on token ids, run on a PJRT client: what parity
//! checks against `transformers` compare, and a greedy continuation that recomputes the full
//! forward pass for every new token (no KV cache: the reference for cached generation).

use super::{HfError, Result};
use crate::backend::{HostTensor, Program, compile};
use crate::checkpoint::Tensors;
use axle_compiler::{DType, FunctionBuilder};
use axle_modules::{CausalLm, CausalLmConfig, Ctx, Module, declare_params};
use axle_runtime::Client;
use ndarray::{Array2, ArrayD, Axis};

/// The decoder's forward pass compiled for one batch shape, with its parameters.
struct Forward {
    program: Program,
    params: Vec<HostTensor>,
}

impl Forward {
    /// Compiles the logits of `config`'s decoder on `i32[batch, seq]` ids for `client`'s first
    /// device. Errors: [`HfError::Export`] when `params` does not hold exactly the model's
    /// parameters (named), a wrong parameter shape from tracing, and compile errors.
    fn new(
        client: &Client,
        config: &CausalLmConfig,
        params: &Tensors,
        batch: usize,
        seq: usize,
    ) -> Result<Forward> {
        let model = CausalLm::new(config)?;
        let specs = model.param_specs();
        if let Some(path) = specs.keys().find(|p| !params.contains_key(*p)) {
            return Err(HfError::Export(format!("the parameters lack {path}")));
        }
        if let Some(path) = params.keys().find(|p| !specs.contains_key(*p)) {
            return Err(HfError::Export(format!(
                "the model has no parameter {path}"
            )));
        }
        let builder = FunctionBuilder::new("logits");
        let traced = declare_params(&builder, &specs, DType::F32);
        let ids = builder.param("input_ids", DType::I32, &[batch, seq]);
        let mut ctx = Ctx::new(traced, false, None);
        let logits = ctx.scope("decoder", |c| model.decoder.forward(c, &ids, None, None))?;
        let function = builder
            .build(&[("logits", &logits)])
            .map_err(crate::backend::BackendError::from)?;
        Ok(Forward {
            program: compile(client, &function)?,
            params: specs.keys().map(|p| params[p].clone().into()).collect(),
        })
    }

    /// Logits `f32[batch, seq, vocab]` of `ids` `[batch, seq]`.
    fn run(&self, ids: &Array2<i32>) -> Result<ArrayD<f32>> {
        let mut args = self.params.clone();
        args.push(ids.clone().into_dyn().into());
        let out = self.program.run(&args)?.remove(0);
        Ok(ArrayD::<f32>::try_from(out)?)
    }
}

/// Logits `f32[batch, seq, vocab]` of the causal LM `config` with parameters `params` (axle
/// paths) on `input_ids` `[batch, seq]`, positions `0..seq`, computed in f32 on `client`.
pub fn logits(
    client: &Client,
    config: &CausalLmConfig,
    params: &Tensors,
    input_ids: &Array2<i32>,
) -> Result<ArrayD<f32>> {
    let (batch, seq) = input_ids.dim();
    Forward::new(client, config, params, batch, seq)?.run(input_ids)
}

/// The greedy continuation of `prompt` by `new_tokens` tokens: at each step the full forward
/// pass is recomputed over the sequence so far and the highest logit (lowest id on ties, as
/// `torch.argmax`) of its last position is appended. The pass is compiled once for the final
/// length, the unfilled tail padded with id 0: causal attention makes every position's logits
/// independent of the positions after it. Returns the new tokens.
pub fn greedy(
    client: &Client,
    config: &CausalLmConfig,
    params: &Tensors,
    prompt: &[i32],
    new_tokens: usize,
) -> Result<Vec<i32>> {
    let total = prompt.len() + new_tokens;
    let forward = Forward::new(client, config, params, 1, total)?;
    let mut ids = Array2::<i32>::zeros((1, total));
    for (i, &t) in prompt.iter().enumerate() {
        ids[[0, i]] = t;
    }
    let mut out = Vec::with_capacity(new_tokens);
    for len in prompt.len()..total {
        let logits = forward.run(&ids)?;
        let row = logits.index_axis(Axis(0), 0);
        let last = row.index_axis(Axis(0), len - 1);
        let mut best = 0;
        for (i, &v) in last.iter().enumerate() {
            if v > last[best] {
                best = i;
            }
        }
        ids[[0, len]] = best as i32;
        out.push(best as i32);
    }
    Ok(out)
}
