//! The two programs of generation, traced from a causal LM's decoder with a
//! key/value cache: prefill (a batch of right-padded prompts in, the logits
//! after each prompt's last token and the filled caches out) and decode
//! (one token per row in, its logits and the caches out, the caches donated
//! so that each step updates them in place). Both are partitioned over a
//! mesh like the training step: parameters split as the experiment's rules
//! map their roles (`heads` and `mlp` over `model` for tensor parallelism),
//! caches split by batch and heads.

use super::GenerateError;
use crate::train_step::{ArgSpec, annotate, arg, replicate_results};
use axle_compiler::{DType, Function, FunctionBuilder, Tensor, einsum};
use axle_modules::{CausalLm, Ctx, KvCache, Module, ParamTree, declare_params};
use axle_partition::{LogicalRules, LogicalSpec, Mesh};

/// The result holding the logits after the last token of each row, `f32[batch, vocab]`.
pub const LOGITS: &str = "logits";
/// The argument of new token ids, `i32[batch, new]`.
pub const INPUT_IDS: &str = "input_ids";
/// The argument of each prompt's last index (prefill), `i32[batch]`.
pub const LAST: &str = "last";
/// The argument of the new tokens' positions (decode), `i32[batch, 1]`.
pub const POSITIONS: &str = "positions";

/// A traced program and the layout of its arguments.
pub struct Traced {
    /// The annotated function.
    pub function: Function,
    /// Its arguments in order: parameters, then the program's inputs, then
    /// (decode) the caches.
    pub args: Vec<ArgSpec>,
}

/// The name of layer `i`'s cached keys or values.
fn cache_name(i: usize, what: &str) -> String {
    format!("cache/{i}/{what}")
}

/// Argument specs of `model`'s parameters on `mesh`.
pub(super) fn param_args(
    model: &CausalLm,
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<Vec<ArgSpec>, GenerateError> {
    model
        .param_specs()
        .iter()
        .map(|(path, spec)| {
            Ok(arg(
                path,
                DType::F32,
                &spec.shape,
                &rules.resolve(&spec.roles, mesh),
                mesh,
            )?)
        })
        .collect()
}

/// Argument specs of the caches of `batch` rows of `max_len` positions.
fn cache_args(
    model: &CausalLm,
    batch: usize,
    max_len: usize,
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<Vec<ArgSpec>, GenerateError> {
    let roles: LogicalSpec = "(batch, _, heads, _)".parse().expect("valid roles");
    let partition = rules.resolve(&roles, mesh);
    let mut args = Vec::new();
    for (i, shape) in model
        .decoder
        .transformer
        .kv_cache_shapes(batch, max_len)
        .iter()
        .enumerate()
    {
        for what in ["keys", "values"] {
            args.push(arg(
                &cache_name(i, what),
                DType::F32,
                shape,
                &partition,
                mesh,
            )?);
        }
    }
    Ok(args)
}

/// The decoder's logits and updated caches for `ids` at `positions`, traced
/// in evaluation mode on `mesh`.
fn extend(
    model: &CausalLm,
    params: ParamTree<Tensor>,
    ids: &Tensor,
    positions: &Tensor,
    caches: &[KvCache],
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<(Tensor, Vec<KvCache>), GenerateError> {
    let mut ctx = Ctx::new(params, false, None);
    if mesh.size() > 1 {
        ctx = ctx.with_mesh(mesh.clone(), rules.clone());
    }
    Ok(ctx.scope("decoder", |c| {
        model.decoder.extend(c, ids, positions, caches)
    })?)
}

/// Builds the function from the logits and caches, annotates it for `mesh`
/// (the caches split as `caches` says, the logits replicated) and, for
/// decode, donates each cache argument to its result.
fn finish(
    b: &FunctionBuilder,
    logits: &Tensor,
    updated: &[KvCache],
    args: Vec<ArgSpec>,
    caches: Vec<ArgSpec>,
    donate: bool,
    mesh: &Mesh,
) -> Result<Traced, GenerateError> {
    let mut results: Vec<(&str, &Tensor)> = vec![(LOGITS, logits)];
    for (spec, tensor) in caches
        .iter()
        .zip(updated.iter().flat_map(|c| [&c.keys, &c.values]))
    {
        results.push((&spec.name, tensor));
    }
    let mut function = b.build(&results)?;
    annotate(&mut function, mesh, &args, &caches)?;
    replicate_results(&mut function, mesh, &[LOGITS])?;
    if donate {
        for c in &caches {
            function.donate(&c.name, &c.name)?;
        }
    }
    Ok(Traced { function, args })
}

/// The prefill program for `batch` prompts right-padded to `prompt_len`
/// tokens, with caches of `max_len` positions. Arguments: the parameters,
/// [`INPUT_IDS`] `i32[batch, prompt_len]` and [`LAST`] `i32[batch]` (each
/// prompt's length minus one). Results: [`LOGITS`] after each prompt's
/// last token, then every layer's keys and values. Pad tokens are written
/// into the caches past each prompt's end; decoding overwrites each such
/// slot before any token can see it.
pub fn prefill(
    model: &CausalLm,
    batch: usize,
    prompt_len: usize,
    max_len: usize,
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<Traced, GenerateError> {
    let b = FunctionBuilder::new("prefill");
    let params = declare_params(&b, &model.param_specs(), DType::F32);
    let ids = b.param(INPUT_IDS, DType::I32, &[batch, prompt_len]);
    let last = b.param(LAST, DType::I32, &[batch]);
    let positions = b.iota(DType::I32, &[batch, prompt_len], 1);
    let caches: Vec<KvCache> = model
        .decoder
        .transformer
        .kv_cache_shapes(batch, max_len)
        .iter()
        .map(|shape| KvCache {
            keys: b.zeros(DType::F32, shape),
            values: b.zeros(DType::F32, shape),
        })
        .collect();
    let (logits, updated) = extend(model, params, &ids, &positions, &caches, mesh, rules)?;
    let pick = last.one_hot(prompt_len, logits.dtype());
    let logits = einsum("bt,btv->bv", &[&pick, &logits]);
    let mut args = param_args(model, mesh, rules)?;
    let ids_roles: LogicalSpec = "(batch, _)".parse().expect("valid roles");
    let last_roles: LogicalSpec = "(batch)".parse().expect("valid roles");
    args.push(arg(
        INPUT_IDS,
        DType::I32,
        &[batch, prompt_len],
        &rules.resolve(&ids_roles, mesh),
        mesh,
    )?);
    args.push(arg(
        LAST,
        DType::I32,
        &[batch],
        &rules.resolve(&last_roles, mesh),
        mesh,
    )?);
    let caches = cache_args(model, batch, max_len, mesh, rules)?;
    finish(&b, &logits, &updated, args, caches, false, mesh)
}

/// The decode program: one new token per row at its position, over caches
/// of `max_len` positions. Arguments: the parameters, [`INPUT_IDS`] and
/// [`POSITIONS`] `i32[batch, 1]`, then every layer's keys and values
/// (donated). Results: [`LOGITS`] after the new tokens, then the updated
/// caches.
pub fn decode(
    model: &CausalLm,
    batch: usize,
    max_len: usize,
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<Traced, GenerateError> {
    let b = FunctionBuilder::new("decode");
    let params = declare_params(&b, &model.param_specs(), DType::F32);
    let ids = b.param(INPUT_IDS, DType::I32, &[batch, 1]);
    let positions = b.param(POSITIONS, DType::I32, &[batch, 1]);
    let cache_specs = cache_args(model, batch, max_len, mesh, rules)?;
    let caches: Vec<KvCache> = cache_specs
        .chunks(2)
        .map(|kv| KvCache {
            keys: b.param(&kv[0].name, DType::F32, &kv[0].shape),
            values: b.param(&kv[1].name, DType::F32, &kv[1].shape),
        })
        .collect();
    let (logits, updated) = extend(model, params, &ids, &positions, &caches, mesh, rules)?;
    let vocab = logits.dims()[2];
    let logits = logits.reshape(&[batch, vocab]);
    let mut args = param_args(model, mesh, rules)?;
    let roles: LogicalSpec = "(batch, _)".parse().expect("valid roles");
    let partition = rules.resolve(&roles, mesh);
    args.push(arg(INPUT_IDS, DType::I32, &[batch, 1], &partition, mesh)?);
    args.push(arg(POSITIONS, DType::I32, &[batch, 1], &partition, mesh)?);
    args.extend(cache_specs.iter().cloned());
    finish(&b, &logits, &updated, args, cache_specs, true, mesh)
}
