//! Multi-head dot-product attention with grouped-query heads (`num_kv_heads`), causal masking,
//! optional segment ids for packed sequences, optional QK-norm, RoPE, sliding-window (local)
//! masking and logit soft-capping, and softmax in at least f32.

use axle_compiler::{DType, Tensor, einsum};
use axle_partition::LogicalAxis;
use serde::{Deserialize, Serialize};

use crate::config::{join, required};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::linear::{Linear, LinearConfig, check_last_dim};
use crate::module::Module;
use crate::norm::{Norm, NormConfig, cast, upcast};
use crate::param::{ParamSpec, ParamTree, nest};
use crate::rope::RopeConfig;

/// Config of [`Attention`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionConfig {
    /// Model dimension of the input and output (set by the parent).
    pub input_dim: Option<usize>,
    /// Number of query heads; must divide `input_dim`.
    pub num_heads: Option<usize>,
    /// Number of key/value heads (grouped-query attention); unset means `num_heads` (MHA).
    /// Must divide `num_heads`.
    pub num_kv_heads: Option<usize>,
    /// Mask out keys after the query position.
    pub causal: bool,
    /// Template of the q, k and v projections (dimensions set by this layer); weight roles
    /// `(embed, heads)` by default.
    pub input_linear: LinearConfig,
    /// Template of the output projection (dimensions set by this layer); weight roles
    /// `(heads, embed)` by default.
    pub output_linear: LinearConfig,
    /// Rotary position embedding of queries and keys, if any.
    pub rope: Option<RopeConfig>,
    /// QK-norm: a norm of each query and key head over `head_dim`, after the projections and
    /// before RoPE, as in Qwen3 and Gemma 3 (Hugging Face `Qwen3Attention`: `q_norm`/`k_norm`
    /// are RMSNorms of width `head_dim`, applied per head before the rotary embedding). Its
    /// `input_dim` is set by this layer. Parameters `q_norm/scale` and `k_norm/scale` (and
    /// `bias` for a LayerNorm with bias), f32 of shape `[head_dim]`, shared by all heads.
    pub qk_norm: Option<NormConfig>,
    /// Local attention over a window of `W` keys, in Mistral's convention: when causal, the
    /// query at index `q` sees the keys `k` with `q - W < k <= q` (itself and the `W - 1`
    /// before it); when not causal, `|q - k| < W`. Must be at least 1. Unset: global attention.
    pub sliding_window: Option<usize>,
    /// Soft cap of the attention logits, as in Gemma 2: `cap * tanh(logits / cap)` on the
    /// scaled logits `q.k / sqrt(head_dim)` (in the softmax dtype), before masking. Must be
    /// positive and finite. Unset: no cap.
    pub logit_soft_cap: Option<f64>,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        AttentionConfig {
            input_dim: None,
            num_heads: None,
            num_kv_heads: None,
            causal: true,
            input_linear: LinearConfig::default()
                .with_roles(LogicalAxis::Embed, LogicalAxis::Heads),
            output_linear: LinearConfig::default()
                .with_roles(LogicalAxis::Heads, LogicalAxis::Embed),
            rope: None,
            qk_norm: None,
            sliding_window: None,
            logit_soft_cap: None,
        }
    }
}

crate::config_node!(AttentionConfig, input_linear, output_linear, rope, qk_norm);

/// Multi-head attention with child projections `q_proj`, `k_proj`, `v_proj` and `o_proj`, and
/// with QK-norm the children `q_norm` and `k_norm`.
#[derive(Clone, Debug)]
pub struct Attention {
    /// The config, with dimensions resolved.
    pub cfg: AttentionConfig,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads.
    pub num_kv_heads: usize,
    /// Width of each head.
    pub head_dim: usize,
    /// Query projection `(dim, num_heads * head_dim)`.
    pub q_proj: Linear,
    /// Key projection `(dim, num_kv_heads * head_dim)`.
    pub k_proj: Linear,
    /// Value projection `(dim, num_kv_heads * head_dim)`.
    pub v_proj: Linear,
    /// Output projection `(num_heads * head_dim, dim)`.
    pub o_proj: Linear,
    /// QK-norm of the queries, over `head_dim`, if configured.
    pub q_norm: Option<Norm>,
    /// QK-norm of the keys, over `head_dim`, if configured.
    pub k_norm: Option<Norm>,
}

impl Attention {
    /// Builds the layer; `path` is the config's dotted path, for errors. Errors:
    /// [`Error::Missing`] for an unset `input_dim` or `num_heads`, [`Error::Inconsistent`] for
    /// heads that do not divide, an odd head dimension with RoPE, a `sliding_window` of 0 or a
    /// `logit_soft_cap` that is not positive and finite, each naming the field's path.
    pub fn new(cfg: &AttentionConfig, path: &str) -> Result<Attention> {
        let dim = required(cfg.input_dim, path, "input_dim")?;
        let num_heads = required(cfg.num_heads, path, "num_heads")?;
        let num_kv_heads = cfg.num_kv_heads.unwrap_or(num_heads);
        if num_heads == 0 || dim % num_heads != 0 {
            return Err(Error::Inconsistent {
                path: join(path, "num_heads"),
                message: format!("{num_heads} heads do not divide the model dimension {dim}"),
            });
        }
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(Error::Inconsistent {
                path: join(path, "num_kv_heads"),
                message: format!("{num_kv_heads} key/value heads do not divide {num_heads} heads"),
            });
        }
        let head_dim = dim / num_heads;
        if cfg.rope.is_some() && head_dim % 2 != 0 {
            return Err(Error::Inconsistent {
                path: join(path, "rope"),
                message: format!("RoPE needs an even head dimension, got {head_dim}"),
            });
        }
        if cfg.sliding_window == Some(0) {
            return Err(Error::Inconsistent {
                path: join(path, "sliding_window"),
                message: "a sliding window must hold at least 1 key, got 0".into(),
            });
        }
        if let Some(cap) = cfg
            .logit_soft_cap
            .filter(|cap| !cap.is_finite() || *cap <= 0.0)
        {
            return Err(Error::Inconsistent {
                path: join(path, "logit_soft_cap"),
                message: format!("the logit soft cap must be positive and finite, got {cap}"),
            });
        }
        let qk_norm = match &cfg.qk_norm {
            Some(norm) => Some(Norm::new(
                &norm.with_input_dim(head_dim),
                &join(path, "qk_norm"),
            )?),
            None => None,
        };
        let input = join(path, "input_linear");
        let output = join(path, "output_linear");
        let kv_dim = num_kv_heads * head_dim;
        Ok(Attention {
            cfg: cfg.clone(),
            num_heads,
            num_kv_heads,
            head_dim,
            q_proj: Linear::new(&cfg.input_linear.with_dims(dim, dim), &input)?,
            k_proj: Linear::new(&cfg.input_linear.with_dims(dim, kv_dim), &input)?,
            v_proj: Linear::new(&cfg.input_linear.with_dims(dim, kv_dim), &input)?,
            o_proj: Linear::new(&cfg.output_linear.with_dims(dim, dim), &output)?,
            q_norm: qk_norm.clone(),
            k_norm: qk_norm,
        })
    }
}

impl Module for Attention {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        nest(&mut specs, "q_proj", self.q_proj.param_specs());
        nest(&mut specs, "k_proj", self.k_proj.param_specs());
        nest(&mut specs, "v_proj", self.v_proj.param_specs());
        nest(&mut specs, "o_proj", self.o_proj.param_specs());
        for (name, norm) in [("q_norm", &self.q_norm), ("k_norm", &self.k_norm)] {
            if let Some(norm) = norm {
                nest(&mut specs, name, norm.param_specs());
            }
        }
        specs
    }
}

/// A large negative logit for masked positions: exp underflows to exactly 0 in f32 and f64,
/// while the sum with real logits stays finite.
const MASKED_LOGIT: f64 = -1e30;

impl Attention {
    /// Self-attention over `x` `[batch, seq, dim]` (any float dtype; softmax in at least f32),
    /// giving `[batch, seq, dim]` in the dtype of `x`. `positions` `[batch, seq]` (integers)
    /// feed RoPE; `segment_ids` `[batch, seq]` (integers), if given, keep packed sequences apart.
    /// Errors: [`Error::BadInput`] for inputs of the wrong shape or dtype, [`Error::MissingParam`]
    /// and [`Error::ParamShape`] for parameters.
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        segment_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dim = self.num_heads * self.head_dim;
        check_last_dim(ctx, "x", x, dim)?;
        let [b, t, _] = x.dims() else {
            return Err(bad_input(
                ctx,
                "x",
                format!("expected [batch, seq, {dim}], got {:?}", x.dims()),
            ));
        };
        let (b, t) = (*b, *t);
        for (name, ids) in [("positions", Some(positions)), ("segment_ids", segment_ids)] {
            if let Some(ids) = ids.filter(|i| i.dims() != [b, t] || !i.dtype().is_int()) {
                return Err(bad_input(
                    ctx,
                    name,
                    format!(
                        "expected integers of shape [{b}, {t}], got {:?} {:?}",
                        ids.dtype(),
                        ids.dims()
                    ),
                ));
            }
        }
        let (q, k, v) = self.project(ctx, x, positions)?;
        let allowed = self.mask(x, segment_ids, b, t);
        self.attend(ctx, &q, &k, &v, &allowed)
    }

    /// The queries `[batch, seq, kv_heads, group, head_dim]` (query head `i` is group member
    /// `i % group` of key/value head `i / group`), keys and values `[batch, seq, kv_heads,
    /// head_dim]` of `x` `[batch, seq, dim]`, with QK-norm and RoPE at `positions` applied.
    pub(crate) fn project(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let (h, kv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = ctx
            .scope("q_proj", |c| self.q_proj.forward(c, x))?
            .reshape(&[b, t, h, hd]);
        let k = ctx
            .scope("k_proj", |c| self.k_proj.forward(c, x))?
            .reshape(&[b, t, kv, hd]);
        let v = ctx
            .scope("v_proj", |c| self.v_proj.forward(c, x))?
            .reshape(&[b, t, kv, hd]);
        let q = normed(ctx, "q_norm", self.q_norm.as_ref(), q)?;
        let k = normed(ctx, "k_norm", self.k_norm.as_ref(), k)?;
        let (q, k) = match &self.cfg.rope {
            Some(rope) => (rope.apply(&q, positions), rope.apply(&k, positions)),
            None => (q, k),
        };
        Ok((q.reshape(&[b, t, kv, h / kv, hd]), k, v))
    }

    /// The attention output `[batch, seq_q, dim]` of queries `q` `[batch, seq_q, kv_heads,
    /// group, head_dim]` over keys and values `[batch, seq_k, kv_heads, head_dim]`, where
    /// `allowed` `pred[batch, seq_q, seq_k]` says which keys each query sees: scaled logits
    /// (soft-capped if configured) in at least f32, masked softmax, then `o_proj`.
    pub(crate) fn attend(
        &self,
        ctx: &mut Ctx,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        allowed: &Tensor,
    ) -> Result<Tensor> {
        let d = q.dims();
        let (b, t, kv, group, hd) = (d[0], d[1], d[2], d[3], d[4]);
        let s = k.dims()[1];
        let logits = einsum("bqkgd,bskd->bkgqs", &[q, k]);
        let (logits, dtype) = upcast(&logits);
        let logits = &logits * (1.0 / (hd as f64).sqrt());
        let logits = match self.cfg.logit_soft_cap {
            Some(cap) => &(&logits * (1.0 / cap)).tanh() * cap,
            None => logits,
        };
        let allowed = allowed.broadcast_in_dim(&[b, kv, group, t, s], &[0, 3, 4]);
        let logits = allowed.select(&logits, &logits.splat_like(MASKED_LOGIT));
        let probs = cast(&logits.softmax(-1), dtype);
        let out = einsum("bkgqs,bskd->bqkgd", &[&probs, v]).reshape(&[b, t, kv * group * hd]);
        ctx.scope("o_proj", |c| self.o_proj.forward(c, &out))
    }

    /// Which keys each query may see, `pred[batch, seq_q, seq_k]`: causal, within the sliding
    /// window, and in the same segment, as configured.
    fn mask(&self, x: &Tensor, segment_ids: Option<&Tensor>, b: usize, t: usize) -> Tensor {
        let builder = x.builder();
        let query = builder.iota(DType::I32, &[t, t], 0);
        let key = builder.iota(DType::I32, &[t, t], 1);
        let mut allowed = if self.cfg.causal {
            query.greater_equal(&key)
        } else {
            query.equal(&query)
        };
        if let Some(window) = self.cfg.sliding_window {
            let offset = &query - &key;
            let distance = if self.cfg.causal {
                offset
            } else {
                offset.abs()
            };
            allowed = allowed.logical_and(&distance.less(&distance.splat_like(window as f64)));
        }
        let mut allowed = allowed.broadcast_in_dim(&[b, t, t], &[1, 2]);
        if let Some(segments) = segment_ids {
            let same = segments
                .broadcast_in_dim(&[b, t, t], &[0, 1])
                .equal(&segments.broadcast_in_dim(&[b, t, t], &[0, 2]));
            allowed = allowed.logical_and(&same);
        }
        allowed
    }
}

/// `x` `[batch, seq, heads, head_dim]` normalized over `head_dim` by `norm` under the child
/// scope `name`, or `x` itself without a norm.
fn normed(ctx: &mut Ctx, name: &str, norm: Option<&Norm>, x: Tensor) -> Result<Tensor> {
    match norm {
        Some(norm) => ctx.scope(name, |c| norm.forward(c, &x)),
        None => Ok(x),
    }
}

fn bad_input(ctx: &Ctx, name: &str, message: String) -> Error {
    Error::BadInput {
        path: ctx.path(""),
        name: name.to_string(),
        message,
    }
}
