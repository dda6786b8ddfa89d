//! The model interface: what the step, the trainer, the input pipeline and the command line
//! know about a trainable model, whatever its kind (causal LM, classifier, regressor, a model
//! written outside these crates).
//!
//! A model declares its parameters ([`Module::param_specs`]), the named inputs it needs for a
//! batch shape ([`InputSpec`]: name, dtype, shape, the logical role of every dimension so the
//! loader, the mesh and the shardings follow from it), and traces its loss: a scalar mean, the
//! weight of that mean (the number of live targets, so micro-batches and eval batches combine
//! into the mean over all targets), and named summaries recorded on the [`Ctx`].

use std::collections::BTreeMap;
use std::ops::Range;

use axle_compiler::{DType, Tensor};
use axle_partition::LogicalSpec;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::module::Module;

/// The traced inputs of one batch, by name.
pub type Inputs = BTreeMap<String, Tensor>;

/// The shape of a batch the step is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Examples per batch (global, over all devices).
    pub batch_size: usize,
    /// Tokens per example, for models that read sequences; models of fixed-size inputs
    /// (images, feature vectors) ignore it.
    pub seq_len: usize,
}

impl BatchShape {
    /// A batch of `batch_size` examples of `seq_len` tokens (0 for models
    /// that read no sequence).
    pub fn new(batch_size: usize, seq_len: usize) -> BatchShape {
        BatchShape {
            batch_size,
            seq_len,
        }
    }
}

/// One named input of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Name (`input_ids`, `target_labels`, `image`, ...), also the name of the step argument and
    /// of the data field that feeds it.
    pub name: String,
    /// Element type: `I32` for ids and labels, `F32` for real values.
    pub dtype: DType,
    /// Global shape; dimension 0 is the batch.
    pub shape: Vec<usize>,
    /// The logical role of each dimension (`(batch, seq)`, `(batch, _, _)`), which the logical
    /// rules turn into mesh axes.
    pub roles: LogicalSpec,
    /// For integer inputs, the values the model accepts (token ids below the vocabulary;
    /// negative labels mean "masked"); checked on the host before a batch is placed.
    pub valid: Option<Range<i64>>,
}

impl InputSpec {
    /// An input of `dtype` and `shape` with dimension roles `roles` (text such as
    /// `(batch, seq)`); panics on malformed role text, which is a programming error.
    pub fn new(name: &str, dtype: DType, shape: &[usize], roles: &str) -> InputSpec {
        let roles: LogicalSpec = roles
            .parse()
            .unwrap_or_else(|e| panic!("input `{name}`: bad roles `{roles}`: {e}"));
        assert_eq!(
            roles.0.len(),
            shape.len(),
            "input `{name}`: {} roles for a rank-{} shape",
            roles.0.len(),
            shape.len()
        );
        InputSpec {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            roles,
            valid: None,
        }
    }

    /// This input restricted to integer values in `valid`.
    pub fn with_valid(mut self, valid: Range<i64>) -> InputSpec {
        self.valid = Some(valid);
        self
    }
}

/// What a model's loss returns.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// The mean loss of the batch, a scalar in the computation dtype but at least f32 (f32 for
    /// f32 or bf16 parameters, f64 for f64 ones, so finite-difference checks keep f64 precision).
    pub loss: Tensor,
    /// The weight of that mean, an f32 scalar: how many targets it averages (live tokens,
    /// examples). Batches combine as `sum(loss * weight) / sum(weight)`.
    pub weight: Tensor,
}

/// A trainable model: parameter specs (from [`Module`]), named inputs and a traced loss.
pub trait Model: Module {
    /// A short name of the model's kind (`causal_lm`, `classifier`, `regressor`), recorded in
    /// metrics and checkpoints.
    fn kind(&self) -> &str;

    /// The inputs of a batch of `shape`, in the order the step takes them. Errors when the
    /// shape does not fit the model (e.g. a sequence longer than learned positions).
    fn input_specs(&self, shape: &BatchShape) -> Result<Vec<InputSpec>>;

    /// Traces the loss of a batch whose inputs are shaped as [`Model::input_specs`] says.
    /// Scalar summaries recorded on `ctx` (by path) come out of the step as metrics.
    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> Result<LossOutput>;

    /// Metrics derived on the host from an evaluation's mean loss and mean summaries (e.g.
    /// perplexity `exp(loss)` for a language model); none by default.
    fn eval_metrics(&self, loss: f64, summaries: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
        let _ = (loss, summaries);
        Vec::new()
    }

    /// Training FLOPs of one step on a batch of `shape` (forward and backward), for MFU.
    /// The default is the dense estimate `6 * params * batch_size` (one pass per example).
    fn train_flops(&self, shape: &BatchShape) -> f64 {
        6.0 * self.num_params() as f64 * shape.batch_size as f64
    }
}

/// The input `name` of `inputs`, or an error naming it and the inputs that exist.
pub fn input<'a>(inputs: &'a Inputs, name: &str) -> Result<&'a Tensor> {
    inputs.get(name).ok_or_else(|| Error::BadInput {
        path: "<root>".into(),
        name: name.to_string(),
        message: format!(
            "missing; the batch has {}",
            inputs.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    })
}
