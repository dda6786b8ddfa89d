//! Decoder-only causal language model: token (and optionally learned position) embedding,
//! transformer stack, final norm, LM head (untied, or tied to the token embedding), and the
//! next-token cross-entropy loss.

use std::collections::BTreeMap;

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{join, required};
use crate::context::Ctx;
use crate::dropout::DropoutConfig;
use crate::embedding::{Embedding, EmbeddingConfig};
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::linear::{Linear, LinearConfig};
use crate::loss::{CrossEntropyConfig, LossTerms, cross_entropy};
use crate::model::{BatchShape, InputSpec, Inputs, LossOutput, Model, input};
use crate::module::Module;
use crate::norm::{Norm, NormConfig};
use crate::param::{ParamSpec, ParamTree, nest};
use crate::transformer::{Stack, StackConfig};

/// Name of the input token ids, `i32[batch, seq]`.
pub const INPUT_IDS: &str = "input_ids";
/// Name of the next-token labels, `i32[batch, seq]` (negative = masked).
pub const TARGET_LABELS: &str = "target_labels";
/// Name of the optional segment ids of packed batches, `i32[batch, seq]`.
pub const SEGMENT_IDS: &str = "segment_ids";
/// Name of the optional positions of packed batches, `i32[batch, seq]` (restarting at 0 with
/// each document); `0..seq` on every row when absent.
pub const POSITIONS: &str = "positions";

/// Config of [`Decoder`]. `dim` and `vocab_size` are set here and passed down to every child.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// Vocabulary size.
    pub vocab_size: Option<usize>,
    /// Model dimension.
    pub dim: Option<usize>,
    /// Token embedding (sizes set from `vocab_size` and `dim`).
    pub token_embedding: EmbeddingConfig,
    /// Learned absolute position embedding, if any; its `num_embeddings` is the longest sequence.
    pub position_embedding: Option<EmbeddingConfig>,
    /// Dropout after the embeddings.
    pub embedding_dropout: DropoutConfig,
    /// The transformer stack.
    pub transformer: StackConfig,
    /// Norm after the stack.
    pub output_norm: NormConfig,
    /// Untied LM head `(dim, vocab_size)`; unset ties the head to the token embedding.
    pub lm_head: Option<LinearConfig>,
}

crate::config_node!(
    DecoderConfig,
    token_embedding,
    position_embedding,
    embedding_dropout,
    transformer,
    output_norm,
    lm_head
);

/// The decoder: children `token_embedding`, `position_embedding`, `transformer`, `output_norm`,
/// `lm_head`.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// The config, with dimensions resolved.
    pub cfg: DecoderConfig,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model dimension.
    pub dim: usize,
    /// Token embedding.
    pub token_embedding: Embedding,
    /// Learned position embedding, if any.
    pub position_embedding: Option<Embedding>,
    /// Transformer stack.
    pub transformer: Stack,
    /// Final norm.
    pub output_norm: Norm,
    /// Untied LM head, if any.
    pub lm_head: Option<Linear>,
    /// The dotted config path of this decoder, for errors found while tracing.
    pub config_path: String,
}

impl Decoder {
    /// Builds the decoder; `path` is the config's dotted path, for errors.
    pub fn new(cfg: &DecoderConfig, path: &str) -> Result<Decoder> {
        let vocab_size = required(cfg.vocab_size, path, "vocab_size")?;
        let dim = required(cfg.dim, path, "dim")?;
        cfg.embedding_dropout
            .validate(&join(path, "embedding_dropout"))?;
        let mut token = cfg.token_embedding.clone();
        token.num_embeddings = Some(vocab_size);
        token.dim = Some(dim);
        let position_embedding = match &cfg.position_embedding {
            Some(position) => {
                let mut position = position.clone();
                position.dim = Some(dim);
                Some(Embedding::new(
                    &position,
                    &join(path, "position_embedding"),
                )?)
            }
            None => None,
        };
        let mut transformer = cfg.transformer.clone();
        transformer.input_dim = Some(dim);
        let lm_head = match &cfg.lm_head {
            Some(head) => Some(Linear::new(
                &head.with_dims(dim, vocab_size),
                &join(path, "lm_head"),
            )?),
            None => None,
        };
        Ok(Decoder {
            cfg: cfg.clone(),
            vocab_size,
            dim,
            token_embedding: Embedding::new(&token, &join(path, "token_embedding"))?,
            position_embedding,
            transformer: Stack::new(&transformer, &join(path, "transformer"))?,
            output_norm: Norm::new(
                &cfg.output_norm.with_input_dim(dim),
                &join(path, "output_norm"),
            )?,
            lm_head,
            config_path: path.to_string(),
        })
    }
}

impl Module for Decoder {
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
        if let Some(head) = &self.lm_head {
            nest(&mut specs, "lm_head", head.param_specs());
        }
        specs
    }
}

/// Config of a causal LM: the decoder and its training loss.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CausalLmConfig {
    /// The decoder.
    pub decoder: DecoderConfig,
    /// The next-token loss.
    pub loss: CrossEntropyConfig,
}

crate::config_node!(CausalLmConfig, decoder, loss);

/// A causal language model, the root module of a registered model; parameters under `decoder/`.
#[derive(Clone, Debug)]
pub struct CausalLm {
    /// The config.
    pub cfg: CausalLmConfig,
    /// The decoder.
    pub decoder: Decoder,
}

impl CausalLm {
    /// Builds the model from a root config (paths in errors start at the root, `decoder....`).
    pub fn new(cfg: &CausalLmConfig) -> Result<CausalLm> {
        Ok(CausalLm {
            cfg: cfg.clone(),
            decoder: Decoder::new(&cfg.decoder, "decoder")?,
        })
    }
}

impl Module for CausalLm {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        nest(&mut specs, "decoder", self.decoder.param_specs());
        specs
    }
}

/// The traced inputs of a causal LM step, all integer `[batch, seq]`.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Input token ids.
    pub input_ids: Tensor,
    /// Next-token labels; negative labels are masked out of the loss.
    pub target_labels: Tensor,
    /// Positions for RoPE or learned positions; `0..seq` on every row when unset.
    pub positions: Option<Tensor>,
    /// Segment ids of packed sequences (attention stays within a segment), if packed.
    pub segment_ids: Option<Tensor>,
}

impl Decoder {
    /// Logits `[batch, seq, vocab]` of the next token at every position of `input_ids`.
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        input_ids: &Tensor,
        positions: Option<&Tensor>,
        segment_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let [b, t] = input_ids.dims() else {
            return Err(Error::BadInput {
                path: ctx.path(""),
                name: "input_ids".into(),
                message: format!("expected [batch, seq], got {:?}", input_ids.dims()),
            });
        };
        let default_positions;
        let positions = match positions {
            Some(p) => p,
            None => {
                default_positions = input_ids.builder().iota(input_ids.dtype(), &[*b, *t], 1);
                &default_positions
            }
        };
        let mut x = ctx.scope("token_embedding", |c| {
            self.token_embedding.forward(c, input_ids)
        })?;
        if let Some(table) = &self.position_embedding {
            if *t > table.num_embeddings {
                return Err(Error::Inconsistent {
                    path: join(&self.config_path, "position_embedding.num_embeddings"),
                    message: format!(
                        "{} learned positions, but the sequence has {t}",
                        table.num_embeddings
                    ),
                });
            }
            x = &x + &ctx.scope("position_embedding", |c| table.forward(c, positions))?;
        }
        let x = ctx.dropout(&x, self.cfg.embedding_dropout.rate)?;
        let x = ctx.scope("transformer", |c| {
            self.transformer.forward(c, &x, positions, segment_ids)
        })?;
        let x = ctx.scope("output_norm", |c| self.output_norm.forward(c, &x))?;
        match &self.lm_head {
            Some(head) => ctx.scope("lm_head", |c| {
                c.position_wise(&x, |c, x| head.forward(c, x))
            }),
            None => ctx.scope("token_embedding", |c| {
                c.position_wise(&x, |c, x| self.token_embedding.attend(c, x))
            }),
        }
    }
}

impl Decoder {
    /// Logits `[batch, new, vocab]` of the next token after each of the new tokens `input_ids`
    /// `i32[batch, new]` at `positions` `i32[batch, new]`, attending through `caches` (one per
    /// layer, [`crate::transformer::Stack::kv_cache_shapes`]), in evaluation mode; with the
    /// updated caches. Prefill passes a whole prompt, decoding one token per row: the numbers
    /// of [`Decoder::forward`] on the whole sequence. Errors: [`Error::BadInput`] for ids of the
    /// wrong shape, [`Error::Inconsistent`] when a cache is longer than the learned positions.
    pub fn extend(
        &self,
        ctx: &mut Ctx,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &[KvCache],
    ) -> Result<(Tensor, Vec<KvCache>)> {
        if input_ids.rank() != 2 || positions.dims() != input_ids.dims() {
            return Err(Error::BadInput {
                path: ctx.path(""),
                name: INPUT_IDS.into(),
                message: format!(
                    "expected ids and positions of one shape [batch, new], got {:?} and {:?}",
                    input_ids.dims(),
                    positions.dims()
                ),
            });
        }
        let mut x = ctx.scope("token_embedding", |c| {
            self.token_embedding.forward(c, input_ids)
        })?;
        if let Some(table) = &self.position_embedding {
            let max_len = caches.first().map_or(0, |c| c.keys.dims()[1]);
            if max_len > table.num_embeddings {
                return Err(Error::Inconsistent {
                    path: join(&self.config_path, "position_embedding.num_embeddings"),
                    message: format!(
                        "{} learned positions, but the cache holds {max_len}",
                        table.num_embeddings
                    ),
                });
            }
            x = &x + &ctx.scope("position_embedding", |c| table.forward(c, positions))?;
        }
        let (x, caches) = ctx.scope("transformer", |c| {
            self.transformer.extend(c, &x, positions, caches)
        })?;
        let x = ctx.scope("output_norm", |c| self.output_norm.forward(c, &x))?;
        let logits = match &self.lm_head {
            Some(head) => ctx.scope("lm_head", |c| {
                c.position_wise(&x, |c, x| head.forward(c, x))
            }),
            None => ctx.scope("token_embedding", |c| {
                c.position_wise(&x, |c, x| self.token_embedding.attend(c, x))
            }),
        }?;
        Ok((logits, caches))
    }
}

impl CausalLm {
    /// The loss terms of `batch` (cross-entropy plus z-loss), with the terms and the number of
    /// live targets recorded as summaries under `loss/`.
    pub fn batch_loss(&self, ctx: &mut Ctx, batch: &Batch) -> Result<LossTerms> {
        if batch.target_labels.dims() != batch.input_ids.dims()
            || !batch.target_labels.dtype().is_int()
        {
            return Err(Error::BadInput {
                path: "<root>".into(),
                name: TARGET_LABELS.into(),
                message: format!(
                    "expected integers shaped like input_ids {:?}, got {:?} {:?}",
                    batch.input_ids.dims(),
                    batch.target_labels.dtype(),
                    batch.target_labels.dims()
                ),
            });
        }
        let logits = ctx.scope("decoder", |c| {
            self.decoder.forward(
                c,
                &batch.input_ids,
                batch.positions.as_ref(),
                batch.segment_ids.as_ref(),
            )
        })?;
        let terms = cross_entropy(&logits, &batch.target_labels, self.cfg.loss.z_loss_scale);
        ctx.scope("loss", |c| {
            c.add_summary("cross_entropy", terms.cross_entropy.clone());
            c.add_summary("z_loss", terms.z_loss.clone());
            c.add_summary("num_targets", terms.num_targets.clone());
        });
        Ok(terms)
    }
}

impl Model for CausalLm {
    fn kind(&self) -> &str {
        "causal_lm"
    }

    /// `input_ids` (token ids below the vocabulary) and `target_labels` (negative = masked),
    /// both `i32[batch, seq]` with roles `(batch, seq)`. A batch may also carry
    /// [`SEGMENT_IDS`] and [`POSITIONS`] (packed sequences), which the loss uses when present.
    fn input_specs(&self, shape: &BatchShape) -> Result<Vec<InputSpec>> {
        if let Some(table) = &self.decoder.position_embedding
            && shape.seq_len > table.num_embeddings
        {
            return Err(Error::Inconsistent {
                path: "decoder.position_embedding.num_embeddings".into(),
                message: format!(
                    "{} learned positions, but the batch has sequences of {}",
                    table.num_embeddings, shape.seq_len
                ),
            });
        }
        let dims = [shape.batch_size, shape.seq_len];
        let vocab = self.decoder.vocab_size as i64;
        Ok(vec![
            InputSpec::new(INPUT_IDS, DType::I32, &dims, "(batch, seq)").with_valid(0..vocab),
            InputSpec::new(TARGET_LABELS, DType::I32, &dims, "(batch, seq)")
                .with_valid(i64::from(i32::MIN)..vocab),
        ])
    }

    /// Cross-entropy (plus z-loss) averaged over the live targets; the weight is their number.
    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> Result<LossOutput> {
        let batch = Batch {
            input_ids: input(inputs, INPUT_IDS)?.clone(),
            target_labels: input(inputs, TARGET_LABELS)?.clone(),
            positions: inputs.get(POSITIONS).cloned(),
            segment_ids: inputs.get(SEGMENT_IDS).cloned(),
        };
        let terms = self.batch_loss(ctx, &batch)?;
        Ok(LossOutput {
            loss: terms.total,
            weight: terms.num_targets.convert(DType::F32),
        })
    }

    /// Perplexity: `exp` of the mean cross-entropy (without the z-loss).
    fn eval_metrics(&self, loss: f64, summaries: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
        let cross_entropy = summaries.get("loss/cross_entropy").copied().unwrap_or(loss);
        vec![("perplexity".into(), cross_entropy.exp())]
    }

    /// `6 * params + 12 * layers * dim * seq` FLOPs per token (the PaLM paper's estimate,
    /// appendix B: matmuls plus attention scores), times the tokens of the batch.
    fn train_flops(&self, shape: &BatchShape) -> f64 {
        let layers = self.decoder.transformer.num_layers as f64;
        let per_token = 6.0 * self.num_params() as f64
            + 12.0 * layers * self.decoder.dim as f64 * shape.seq_len as f64;
        per_token * (shape.batch_size * shape.seq_len) as f64
    }
}
