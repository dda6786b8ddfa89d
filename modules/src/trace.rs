//! Tracing a model's loss into a compiler [`Function`]: parameters become function parameters
//! named by path, the batch becomes the model's named inputs, and the loss, its weight and the
//! summaries become results.

use axle_compiler::{DType, Function, FunctionBuilder, Tensor, grad};

use crate::causal_lm::{Batch, INPUT_IDS, SEGMENT_IDS, TARGET_LABELS};
use crate::context::Ctx;
use crate::error::Result;
use crate::model::{BatchShape, Inputs, LossOutput, Model};
use crate::param::{ParamSpec, ParamTree};

/// Name of the RNG key parameter of training functions, `u64[2]`.
pub const RNG_KEY: &str = "rng_key";
/// Name of the loss result.
pub const LOSS: &str = "loss";
/// Name of the loss-weight result.
pub const LOSS_WEIGHT: &str = "loss_weight";

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

/// Declares the model's inputs for a batch of `shape`, in [`Model::input_specs`] order.
pub fn declare_inputs(
    builder: &FunctionBuilder,
    model: &dyn Model,
    shape: &BatchShape,
) -> Result<Inputs> {
    Ok(model
        .input_specs(shape)?
        .iter()
        .map(|s| (s.name.clone(), builder.param(&s.name, s.dtype, &s.shape)))
        .collect())
}

/// Declares the causal-LM batch `input_ids` and `target_labels` (and `segment_ids` if
/// `packed`), all `i32[batch_size, seq_len]`.
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
    /// Sequence length (for models that read sequences).
    pub seq_len: usize,
    /// Element type of the parameters (and so of the computation).
    pub dtype: DType,
    /// Training mode: dropout on, and an `rng_key` input.
    pub is_training: bool,
}

impl LossSignature {
    /// The batch shape of this signature.
    pub fn batch_shape(&self) -> BatchShape {
        BatchShape {
            batch_size: self.batch_size,
            seq_len: self.seq_len,
        }
    }
}

/// What [`trace_loss`] returns: the declared parameters (by path), the loss and its weight,
/// and the summaries (by path).
pub struct TracedLoss {
    /// The function parameters standing for the model parameters, by path.
    pub params: ParamTree<Tensor>,
    /// The loss and its weight.
    pub output: LossOutput,
    /// Summaries recorded by the layers and the loss, by path.
    pub summaries: ParamTree<Tensor>,
}

/// Traces the model's loss on `builder`. The function's parameters are the model's
/// parameters in path order, then its inputs in [`Model::input_specs`] order, then `rng_key`
/// (if training).
pub fn trace_loss(
    model: &dyn Model,
    builder: &FunctionBuilder,
    sig: &LossSignature,
) -> Result<TracedLoss> {
    let params = declare_params(builder, &model.param_specs(), sig.dtype);
    let inputs = declare_inputs(builder, model, &sig.batch_shape())?;
    let key = sig
        .is_training
        .then(|| builder.param(RNG_KEY, DType::U64, &[2]));
    let mut ctx = Ctx::new(params.clone(), sig.is_training, key);
    let output = model.loss(&mut ctx, &inputs)?;
    Ok(TracedLoss {
        params,
        output,
        summaries: ctx.take_summaries(),
    })
}

/// The model's loss as a function with results `loss`, `loss_weight` and then every summary,
/// named by path.
pub fn loss_function(model: &dyn Model, sig: &LossSignature) -> Result<Function> {
    let builder = FunctionBuilder::new("loss");
    let traced = trace_loss(model, &builder, sig)?;
    let mut results = vec![
        (LOSS, &traced.output.loss),
        (LOSS_WEIGHT, &traced.output.weight),
    ];
    results.extend(traced.summaries.iter().map(|(path, t)| (path.as_str(), t)));
    Ok(builder.build(&results)?)
}

/// Prefix of gradient result names: the gradient of parameter `p` is result `grad/p`.
pub const GRAD_PREFIX: &str = "grad/";

/// The model's loss and its gradient with respect to every parameter, as a function with
/// results `loss` and then `grad/<path>` for each parameter in path order.
pub fn loss_and_grad_function(model: &dyn Model, sig: &LossSignature) -> Result<Function> {
    let builder = FunctionBuilder::new("loss_and_grad");
    let traced = trace_loss(model, &builder, sig)?;
    let wrt: Vec<&Tensor> = traced.params.values().collect();
    let grads = grad(&traced.output.loss, &wrt);
    let names: Vec<String> = traced
        .params
        .keys()
        .map(|p| format!("{GRAD_PREFIX}{p}"))
        .collect();
    let mut results = vec![(LOSS, &traced.output.loss)];
    results.extend(names.iter().map(String::as_str).zip(&grads));
    Ok(builder.build(&results)?)
}
