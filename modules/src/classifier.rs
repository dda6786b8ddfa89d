//! Encoder-only text classifier, BERT-style (Devlin et al. 2019, "BERT: Pre-training of Deep
//! Bidirectional Transformers for Language Understanding"): token and learned position
//! embeddings, a bidirectional (non-causal) transformer stack, a final norm, pooling over the
//! tokens and a linear head to class logits, trained with softmax cross-entropy.
//!
//! Differences from the paper: the layers are pre-norm with a final norm (as in GPT-2 and ViT)
//! rather than BERT's post-norm, there is no token-type embedding, and the pooled vector goes
//! straight to the head (no tanh "pooler" layer). The pieces shared with the vision classifier
//! ([`Pooling`], the classification loss and its summaries) live here.

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::AttentionConfig;
use crate::causal_lm::INPUT_IDS;
use crate::config::{find_all, for_each_mut, join, required};
use crate::context::Ctx;
use crate::embedding::{Embedding, EmbeddingConfig};
use crate::error::{Error, Result};
use crate::linear::{Linear, LinearConfig};
use crate::loss::cross_entropy;
use crate::model::{BatchShape, InputSpec, Inputs, LossOutput, Model, input};
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

/// Config of [`EncoderClassifier`]. `vocab_size`, `dim` and `num_classes` are set here and
/// passed down to every child.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderClassifierConfig {
    /// Vocabulary size: token ids are in `0..vocab_size`.
    pub vocab_size: Option<usize>,
    /// Model dimension.
    pub dim: Option<usize>,
    /// Number of classes, at least 1: labels are in `0..num_classes`.
    pub num_classes: Option<usize>,
    /// Token embedding (sizes set from `vocab_size` and `dim`).
    pub token_embedding: EmbeddingConfig,
    /// Learned absolute position embedding, if any (`dim` set here); its `num_embeddings` is
    /// the longest sequence.
    pub position_embedding: Option<EmbeddingConfig>,
    /// The transformer stack (`input_dim` set here); every attention in it must have
    /// `causal = false`.
    pub transformer: StackConfig,
    /// Norm after the stack (`input_dim` set here).
    pub output_norm: NormConfig,
    /// Reduction of the tokens to one vector per example.
    pub pooling: Pooling,
    /// Classification head `(dim, num_classes)` (dimensions set here).
    pub head: LinearConfig,
}

impl Default for EncoderClassifierConfig {
    /// Required fields unset, no position embedding, a default stack made bidirectional,
    /// RMSNorm, mean pooling, a default head.
    fn default() -> Self {
        EncoderClassifierConfig {
            vocab_size: None,
            dim: None,
            num_classes: None,
            token_embedding: EmbeddingConfig::default(),
            position_embedding: None,
            transformer: bidirectional_stack(),
            output_norm: NormConfig::default(),
            pooling: Pooling::default(),
            head: LinearConfig::default(),
        }
    }
}

crate::config_node!(
    EncoderClassifierConfig,
    token_embedding,
    position_embedding,
    transformer,
    output_norm,
    head
);

/// A BERT-style text classifier, the root module of a model: children `token_embedding`,
/// `position_embedding` (if configured), `transformer`, `output_norm`, `head`.
#[derive(Clone, Debug)]
pub struct EncoderClassifier {
    /// The config.
    pub cfg: EncoderClassifierConfig,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model dimension.
    pub dim: usize,
    /// Token embedding `(vocab_size, dim)`.
    pub token_embedding: Embedding,
    /// Learned position embedding `(positions, dim)`, if any.
    pub position_embedding: Option<Embedding>,
    /// The bidirectional transformer stack.
    pub transformer: Stack,
    /// Final norm.
    pub output_norm: Norm,
    /// Head `(dim, num_classes)`.
    pub head: Linear,
}

impl EncoderClassifier {
    /// Builds the model from a root config (error paths start at the root: `num_classes`,
    /// `transformer.num_layers`, ...). Errors on a missing required field, zero classes, a
    /// causal attention in the stack, or any child's own error.
    pub fn new(cfg: &EncoderClassifierConfig) -> Result<EncoderClassifier> {
        let vocab_size = required(cfg.vocab_size, "", "vocab_size")?;
        let dim = required(cfg.dim, "", "dim")?;
        let num_classes = check_num_classes(cfg.num_classes, "")?;
        check_bidirectional(&cfg.transformer, "transformer")?;
        let mut token = cfg.token_embedding.clone();
        token.num_embeddings = Some(vocab_size);
        token.dim = Some(dim);
        let position_embedding = match &cfg.position_embedding {
            Some(position) => {
                let mut position = position.clone();
                position.dim = Some(dim);
                Some(Embedding::new(&position, "position_embedding")?)
            }
            None => None,
        };
        Ok(EncoderClassifier {
            cfg: cfg.clone(),
            vocab_size,
            dim,
            token_embedding: Embedding::new(&token, "token_embedding")?,
            position_embedding,
            transformer: encoder_stack(&cfg.transformer, dim, "transformer")?,
            output_norm: Norm::new(&cfg.output_norm.with_input_dim(dim), "output_norm")?,
            head: Linear::new(&cfg.head.with_dims(dim, num_classes), "head")?,
        })
    }

    /// Class logits `[batch, num_classes]` of `input_ids` `i32[batch, seq]`. Errors when the ids
    /// are not an integer matrix or the sequence is longer than the learned positions.
    pub fn forward(&self, ctx: &mut Ctx, input_ids: &Tensor) -> Result<Tensor> {
        let [b, t] = input_ids.dims() else {
            return Err(Error::BadInput {
                path: "<root>".into(),
                name: INPUT_IDS.into(),
                message: format!("expected [batch, seq], got {:?}", input_ids.dims()),
            });
        };
        let (b, t) = (*b, *t);
        let positions = input_ids.builder().iota(DType::I32, &[b, t], 1);
        let mut x = ctx.scope("token_embedding", |c| {
            self.token_embedding.forward(c, input_ids)
        })?;
        if let Some(table) = &self.position_embedding {
            check_positions(table, t)?;
            x = &x + &ctx.scope("position_embedding", |c| table.forward(c, &positions))?;
        }
        let x = ctx.scope("transformer", |c| {
            self.transformer.forward(c, &x, &positions, None)
        })?;
        let x = ctx.scope("output_norm", |c| self.output_norm.forward(c, &x))?;
        let pooled = self.cfg.pooling.apply(&x);
        ctx.scope("head", |c| self.head.forward(c, &pooled))
    }
}

impl Module for EncoderClassifier {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        nest(
            &mut specs,
            "token_embedding",
            self.token_embedding.param_specs(),
        );
        if let Some(position) = &self.position_embedding {
            nest(&mut specs, "position_embedding", position.param_specs());
        }
        nest(&mut specs, "transformer", self.transformer.param_specs());
        nest(&mut specs, "output_norm", self.output_norm.param_specs());
        nest(&mut specs, "head", self.head.param_specs());
        specs
    }
}

impl Model for EncoderClassifier {
    fn kind(&self) -> &str {
        "classifier"
    }

    /// `input_ids` `i32[batch, seq]`, roles `(batch, seq)`, values in `0..vocab_size`; `labels`
    /// `i32[batch]`, role `(batch)`, values in `0..num_classes`. Errors when `seq_len` exceeds
    /// the learned positions.
    fn input_specs(&self, shape: &BatchShape) -> Result<Vec<InputSpec>> {
        if let Some(table) = &self.position_embedding {
            check_positions(table, shape.seq_len)?;
        }
        Ok(vec![
            InputSpec::new(
                INPUT_IDS,
                DType::I32,
                &[shape.batch_size, shape.seq_len],
                "(batch, seq)",
            )
            .with_valid(0..self.vocab_size as i64),
            labels_spec(shape.batch_size, self.head.output_dim),
        ])
    }

    /// Softmax cross-entropy of the pooled logits, averaged over the examples; the weight is
    /// the number of examples. Summaries: `accuracy`, `loss/cross_entropy`, `loss/num_targets`.
    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> Result<LossOutput> {
        let input_ids = input(inputs, INPUT_IDS)?;
        let labels = input(inputs, LABELS)?;
        let logits = self.forward(ctx, input_ids)?;
        classification_loss(ctx, &logits, labels)
    }

    /// `6 * params + 12 * layers * dim * seq` FLOPs per token (the PaLM paper's estimate,
    /// appendix B, as for the causal LM), times the tokens of the batch.
    fn train_flops(&self, shape: &BatchShape) -> f64 {
        encoder_flops(
            self.num_params(),
            self.transformer.num_layers,
            self.dim,
            shape.batch_size,
            shape.seq_len,
        )
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

/// The stack of `cfg` built with model dimension `dim`.
pub(crate) fn encoder_stack(cfg: &StackConfig, dim: usize, path: &str) -> Result<Stack> {
    let mut cfg = cfg.clone();
    cfg.input_dim = Some(dim);
    Stack::new(&cfg, path)
}

/// Errors naming `position_embedding.num_embeddings` when a sequence of `len` does not fit.
fn check_positions(table: &Embedding, len: usize) -> Result<()> {
    if len > table.num_embeddings {
        return Err(Error::Inconsistent {
            path: "position_embedding.num_embeddings".into(),
            message: format!(
                "{} learned positions, but the sequence has {len}",
                table.num_embeddings
            ),
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
