//! What the encoder classifiers ([`crate::EncoderClassifier`], [`crate::Vit`]) share: the
//! trunk after their input embedding (learned positions, a bidirectional transformer stack, a
//! final norm, pooling and a linear head), the `labels` input, and the classification loss with
//! its summaries.

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::AttentionConfig;
use crate::config::{find_all, for_each_mut, join, required};
use crate::context::Ctx;
use crate::embedding::{Embedding, EmbeddingConfig};
use crate::error::{Error, Result};
use crate::linear::{Linear, LinearConfig};
use crate::loss::cross_entropy;
use crate::model::{InputSpec, LossOutput};
use crate::module::Module;
use crate::norm::{Norm, NormConfig, cast};
use crate::param::{ParamSpec, ParamTree, nest};
use crate::transformer::{Stack, StackConfig};

/// Name of the class labels input of classifiers, `i32[batch]`, values in `0..num_classes`.
pub const LABELS: &str = "labels";

/// How a classifier reduces its encoder output `[batch, seq, dim]` to one vector per example.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over all tokens (or patches); "global average pooling" in ViT's terms. There is
    /// no padding mask: every position of the input counts.
    #[default]
    Mean,
    /// The first token's vector (BERT's `[CLS]` position: the data must put the class token
    /// first).
    FirstToken,
}

impl Pooling {
    /// `x` `[batch, seq, dim]` pooled to `[batch, dim]`, in the dtype of `x`.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Pooling::Mean => x.mean(&[1], false),
            Pooling::FirstToken => {
                let (b, d) = (x.dims()[0], x.dims()[2]);
                x.narrow(1, 0, 1).reshape(&[b, d])
            }
        }
    }
}

/// The trunk of an encoder classifier after its input embedding: learned positions (if any),
/// the bidirectional stack, the final norm, pooling and the head. Its children sit at the
/// model's root (`position_embedding`, `transformer`, `output_norm`, `head`): it adds no level
/// to parameter or config paths.
#[derive(Clone, Debug)]
pub struct EncoderTrunk {
    /// Learned position embedding `(positions, dim)`, if any.
    pub position_embedding: Option<Embedding>,
    /// The bidirectional transformer stack.
    pub transformer: Stack,
    /// Final norm.
    pub output_norm: Norm,
    /// Reduction of the positions to one vector per example.
    pub pooling: Pooling,
    /// Head `(dim, num_classes)`.
    pub head: Linear,
}

impl EncoderTrunk {
    /// Builds the trunk for model dimension `dim` and `num_classes` classes from the model's
    /// root-level configs; `position` already has its table size. Errors name the root-level
    /// field (`transformer`, `head.input_dim`, ...).
    pub(crate) fn new(
        position: Option<EmbeddingConfig>,
        transformer: &StackConfig,
        output_norm: &NormConfig,
        pooling: Pooling,
        head: &LinearConfig,
        dim: usize,
        num_classes: usize,
    ) -> Result<EncoderTrunk> {
        check_bidirectional(transformer, "transformer")?;
        let position_embedding = match position {
            Some(mut position) => {
                position.dim = Some(dim);
                Some(Embedding::new(&position, "position_embedding")?)
            }
            None => None,
        };
        let mut stack = transformer.clone();
        stack.input_dim = Some(dim);
        Ok(EncoderTrunk {
            position_embedding,
            transformer: Stack::new(&stack, "transformer")?,
            output_norm: Norm::new(&output_norm.with_input_dim(dim), "output_norm")?,
            pooling,
            head: Linear::new(&head.with_dims(dim, num_classes), "head")?,
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.head.output_dim
    }

    /// Errors naming `position_embedding.num_embeddings` when a sequence of `len` positions
    /// does not fit the learned positions.
    pub fn check_positions(&self, len: usize) -> Result<()> {
        match &self.position_embedding {
            Some(table) if len > table.num_embeddings => Err(Error::Inconsistent {
                path: "position_embedding.num_embeddings".into(),
                message: format!(
                    "{} learned positions, but the sequence has {len}",
                    table.num_embeddings
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Class logits `[batch, num_classes]` of embedded inputs `x` `[batch, seq, dim]`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor> {
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let positions = x.builder().iota(DType::I32, &[b, t], 1);
        let mut x = x.clone();
        if let Some(table) = &self.position_embedding {
            self.check_positions(t)?;
            x = &x + &ctx.scope("position_embedding", |c| table.forward(c, &positions))?;
        }
        let x = ctx.scope("transformer", |c| {
            self.transformer.forward(c, &x, &positions, None)
        })?;
        let x = ctx.scope("output_norm", |c| self.output_norm.forward(c, &x))?;
        let pooled = self.pooling.apply(&x);
        ctx.scope("head", |c| self.head.forward(c, &pooled))
    }
}

impl Module for EncoderTrunk {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        if let Some(position) = &self.position_embedding {
            nest(&mut specs, "position_embedding", position.param_specs());
        }
        nest(&mut specs, "transformer", self.transformer.param_specs());
        nest(&mut specs, "output_norm", self.output_norm.param_specs());
        nest(&mut specs, "head", self.head.param_specs());
        specs
    }
}

/// `num_classes`, or an error naming `path.num_classes` when it is unset or zero.
pub(crate) fn check_num_classes(num_classes: Option<usize>, path: &str) -> Result<usize> {
    let num_classes = required(num_classes, path, "num_classes")?;
    if num_classes == 0 {
        return Err(Error::Inconsistent {
            path: join(path, "num_classes"),
            message: "a classifier needs at least one class".into(),
        });
    }
    Ok(num_classes)
}

/// The default stack config with every attention in it bidirectional (`causal = false`).
pub(crate) fn bidirectional_stack() -> StackConfig {
    let mut stack = StackConfig::default();
    for_each_mut::<AttentionConfig>(&mut stack, |a| a.causal = false);
    stack
}

/// Errors naming `path` when any attention under the stack config is causal: an encoder
/// attends in both directions.
pub(crate) fn check_bidirectional(stack: &StackConfig, path: &str) -> Result<()> {
    if find_all::<AttentionConfig>(stack).iter().any(|a| a.causal) {
        return Err(Error::Inconsistent {
            path: path.to_string(),
            message: "an encoder attends in both directions: set `causal = false` on every \
                      attention of the stack"
                .into(),
        });
    }
    Ok(())
}

/// The `labels` input: `i32[batch]`, role `(batch)`, values in `0..num_classes`.
pub(crate) fn labels_spec(batch_size: usize, num_classes: usize) -> InputSpec {
    InputSpec::new(LABELS, DType::I32, &[batch_size], "(batch)").with_valid(0..num_classes as i64)
}

/// Softmax cross-entropy of `logits` `[batch, classes]` against integer `labels` `[batch]`
/// (computed in at least f32, see [`cross_entropy`]); the weight is the number of labelled
/// examples (f32). Records `accuracy` (the fraction of examples whose first argmax is the
/// label, f32) at the current scope and the loss terms under `loss/`.
pub(crate) fn classification_loss(
    ctx: &mut Ctx,
    logits: &Tensor,
    labels: &Tensor,
) -> Result<LossOutput> {
    let batch = logits.dims()[0];
    if labels.dims() != [batch] || !labels.dtype().is_int() {
        return Err(Error::BadInput {
            path: "<root>".into(),
            name: LABELS.into(),
            message: format!(
                "expected integers of shape [{batch}], got {:?} {:?}",
                labels.dtype(),
                labels.dims()
            ),
        });
    }
    let terms = cross_entropy(logits, labels, 0.0);
    let hits = logits.argmax(-1, false).equal(&cast(labels, DType::I32));
    ctx.add_summary("accuracy", hits.convert(DType::F32).mean_all());
    ctx.scope("loss", |c| {
        c.add_summary("cross_entropy", terms.cross_entropy.clone());
        c.add_summary("num_targets", terms.num_targets.clone());
    });
    Ok(LossOutput {
        loss: terms.cross_entropy,
        weight: terms.num_targets.convert(DType::F32),
    })
}

/// `(6 * params + 12 * layers * dim * seq) * batch * seq`: the PaLM estimate (appendix B) of
/// training FLOPs for an encoder reading `seq` positions per example.
pub(crate) fn encoder_flops(
    params: u64,
    layers: usize,
    dim: usize,
    batch: usize,
    seq: usize,
) -> f64 {
    let per_token = 6.0 * params as f64 + 12.0 * (layers * dim * seq) as f64;
    per_token * (batch * seq) as f64
}
