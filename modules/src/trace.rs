//! Tracing a model's loss into a compiler [`Function`]: parameters become function parameters
//! named by path, the batch becomes integer inputs, and the loss and summaries become results.

use axle_compiler::{DType, Function, FunctionBuilder, Tensor, grad};

use crate::causal_lm::{Batch, CausalLm};
use crate::context::Ctx;
use crate::error::Result;
use crate::module::Module;
use crate::param::{ParamSpec, ParamTree};

/// Name of the input token ids parameter, `i32[batch, seq]`.
pub const INPUT_IDS: &str = "input_ids";
/// Name of the target labels parameter, `i32[batch, seq]` (negative = masked).
pub const TARGET_LABELS: &str = "target_labels";
/// Name of the segment ids parameter of packed batches, `i32[batch, seq]`.
pub const SEGMENT_IDS: &str = "segment_ids";
/// Name of the RNG key parameter of training functions, `u64[2]`.
pub const RNG_KEY: &str = "rng_key";
/// Name of the loss result.
pub const LOSS: &str = "loss";

/// Declares every parameter in `specs` as a function parameter named by its path, in path
/// order, of element type `dtype` (f32 for training, f64 for finite-difference checks).
pub fn declare_params(
    builder: &FunctionBuilder,
    specs: &ParamTree<ParamSpec>,
    dtype: DType,
) -> ParamTree<Tensor> {
    specs
        .iter()
        .map(|(path, spec)| (path.clone(), builder.param(path, dtype, &spec.shape)))
        .collect()
}

/// Declares the batch inputs `input_ids` and `target_labels` (and `segment_ids` if `packed`),
/// all `i32[batch_size, seq_len]`.
pub fn declare_batch(
    builder: &FunctionBuilder,
    batch_size: usize,
    seq_len: usize,
    packed: bool,
) -> Batch {
    let dims = [batch_size, seq_len];
    Batch {
        input_ids: builder.param(INPUT_IDS, DType::I32, &dims),
        target_labels: builder.param(TARGET_LABELS, DType::I32, &dims),
        positions: None,
        segment_ids: packed.then(|| builder.param(SEGMENT_IDS, DType::I32, &dims)),
    }
}

/// How a loss function is traced.
#[derive(Clone, Copy, Debug)]
pub struct LossSignature {
    /// Batch size.
    pub batch_size: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Element type of the parameters (and so of the computation).
    pub dtype: DType,
    /// Training mode: dropout on, and an `rng_key` input.
    pub is_training: bool,
    /// Packed batches: a `segment_ids` input.
    pub packed: bool,
}

/// Traces the model's loss on `builder`: returns the parameters (by path), the loss, and the
/// summaries (by path). The function's parameters are the model's parameters in path order,
/// then `input_ids`, `target_labels`, `segment_ids` (if packed), `rng_key` (if training).
pub fn trace_loss(
    model: &CausalLm,
    builder: &FunctionBuilder,
    sig: &LossSignature,
) -> Result<(ParamTree<Tensor>, Tensor, ParamTree<Tensor>)> {
    let params = declare_params(builder, &model.param_specs(), sig.dtype);
    let batch = declare_batch(builder, sig.batch_size, sig.seq_len, sig.packed);
    let key = sig
        .is_training
        .then(|| builder.param(RNG_KEY, DType::U64, &[2]));
    let mut ctx = Ctx::new(params.clone(), sig.is_training, key);
    let loss = model.loss(&mut ctx, &batch)?;
    Ok((params, loss, ctx.take_summaries()))
}

/// The model's loss as a function with results `loss` and then every summary, named by path.
pub fn loss_function(model: &CausalLm, sig: &LossSignature) -> Result<Function> {
    let builder = FunctionBuilder::new("loss");
    let (_, loss, summaries) = trace_loss(model, &builder, sig)?;
    let mut results = vec![(LOSS, &loss)];
    results.extend(summaries.iter().map(|(path, t)| (path.as_str(), t)));
    Ok(builder.build(&results)?)
}

/// Prefix of gradient result names: the gradient of parameter `p` is result `grad/p`.
pub const GRAD_PREFIX: &str = "grad/";

/// The model's loss and its gradient with respect to every parameter, as a function with
/// results `loss` and then `grad/<path>` for each parameter in path order.
pub fn loss_and_grad_function(model: &CausalLm, sig: &LossSignature) -> Result<Function> {
    let builder = FunctionBuilder::new("loss_and_grad");
    let (params, loss, _) = trace_loss(model, &builder, sig)?;
    let wrt: Vec<&Tensor> = params.values().collect();
    let grads = grad(&loss, &wrt);
    let names: Vec<String> = params.keys().map(|p| format!("{GRAD_PREFIX}{p}")).collect();
    let mut results = vec![(LOSS, &loss)];
    results.extend(names.iter().map(String::as_str).zip(&grads));
    Ok(builder.build(&results)?)
}
