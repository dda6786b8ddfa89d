//! Encoder-only text classifier, BERT-style (Devlin et al. 2019, "BERT: Pre-training of Deep
//! Bidirectional Transformers for Language Understanding"): token and learned position
//! embeddings, a bidirectional (non-causal) transformer stack, a final norm, pooling over the
//! tokens and a linear head to class logits, trained with softmax cross-entropy.
//!
//! Differences from the paper: the layers are pre-norm with a final norm (as in GPT-2 and ViT)
//! rather than BERT's post-norm, there is no token-type embedding, and the pooled vector goes
//! straight to the head (no tanh "pooler" layer). What it shares with the vision classifier is
//! in [`crate::encoder`].

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::causal_lm::INPUT_IDS;
use crate::config::required;
use crate::context::Ctx;
use crate::embedding::{Embedding, EmbeddingConfig};
use crate::encoder::{
    EncoderTrunk, LABELS, Pooling, bidirectional_stack, check_num_classes, classification_loss,
    encoder_flops, labels_spec,
};
use crate::error::{Error, Result};
use crate::linear::LinearConfig;
use crate::model::{BatchShape, InputSpec, Inputs, LossOutput, Model, input};
use crate::module::Module;
use crate::norm::NormConfig;
use crate::param::{ParamSpec, ParamTree, nest};
use crate::transformer::StackConfig;

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
    /// Positions, stack, norm, pooling and head.
    pub trunk: EncoderTrunk,
}

impl EncoderClassifier {
    /// Builds the model from a root config (error paths start at the root: `num_classes`,
    /// `transformer.num_layers`, ...). Errors on a missing required field, zero classes, a
    /// causal attention in the stack, or any child's own error.
    pub fn new(cfg: &EncoderClassifierConfig) -> Result<EncoderClassifier> {
        let vocab_size = required(cfg.vocab_size, "", "vocab_size")?;
        let dim = required(cfg.dim, "", "dim")?;
        let num_classes = check_num_classes(cfg.num_classes, "")?;
        let mut token = cfg.token_embedding.clone();
        token.num_embeddings = Some(vocab_size);
        token.dim = Some(dim);
        Ok(EncoderClassifier {
            cfg: cfg.clone(),
            vocab_size,
            dim,
            token_embedding: Embedding::new(&token, "token_embedding")?,
            trunk: EncoderTrunk::new(
                cfg.position_embedding.clone(),
                &cfg.transformer,
                &cfg.output_norm,
                cfg.pooling,
                &cfg.head,
                dim,
                num_classes,
            )?,
        })
    }

    /// Class logits `[batch, num_classes]` of `input_ids` `i32[batch, seq]`. Errors when the ids
    /// are not an integer matrix or the sequence is longer than the learned positions.
    pub fn forward(&self, ctx: &mut Ctx, input_ids: &Tensor) -> Result<Tensor> {
        if input_ids.rank() != 2 {
            return Err(Error::BadInput {
                path: "<root>".into(),
                name: INPUT_IDS.into(),
                message: format!("expected [batch, seq], got {:?}", input_ids.dims()),
            });
        }
        let x = ctx.scope("token_embedding", |c| {
            self.token_embedding.forward(c, input_ids)
        })?;
        self.trunk.forward(ctx, &x)
    }
}

impl Module for EncoderClassifier {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = self.trunk.param_specs();
        nest(
            &mut specs,
            "token_embedding",
            self.token_embedding.param_specs(),
        );
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
        self.trunk.check_positions(shape.seq_len)?;
        Ok(vec![
            InputSpec::new(
                INPUT_IDS,
                DType::I32,
                &[shape.batch_size, shape.seq_len],
                "(batch, seq)",
            )
            .with_valid(0..self.vocab_size as i64),
            labels_spec(shape.batch_size, self.trunk.num_classes()),
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
            self.trunk.transformer.num_layers,
            self.dim,
            shape.batch_size,
            shape.seq_len,
        )
    }
}
