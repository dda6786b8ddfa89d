//! Pre-norm transformer layer, and a stack of layers that follows a pattern of layer configs
//! repeated over depth (one entry: identical layers; `[local, global]`: alternating), either
//! unrolled or one scanned loop over the repeats of the pattern (a config choice; the parameters
//! of a scanned stack carry a leading axis of the number of repeats).

use axle_compiler::{Tensor, remat};
use axle_partition::{LogicalAxis, LogicalSpec};
use serde::{Deserialize, Serialize};

use crate::attention::{Attention, AttentionConfig};
use crate::config::{join, required};
use crate::context::Ctx;
use crate::dropout::DropoutConfig;
use crate::error::{Error, Result};
use crate::feed_forward::{FeedForward, FeedForwardConfig};
use crate::kv_cache::KvCache;
use crate::module::Module;
use crate::norm::{Norm, NormConfig};
use crate::param::{ParamSpec, ParamTree, nest};
use crate::remat::RematSpec;

/// Config of [`TransformerLayer`]: `x + attn(norm(x))`, then `h + ffn(norm(h))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformerLayerConfig {
    /// Model dimension (set by the parent).
    pub input_dim: Option<usize>,
    /// Norm before attention.
    pub attention_norm: NormConfig,
    /// Self-attention.
    pub attention: AttentionConfig,
    /// Norm before the feed-forward block.
    pub ffn_norm: NormConfig,
    /// Feed-forward block.
    pub feed_forward: FeedForwardConfig,
    /// Dropout on each residual branch.
    pub residual_dropout: DropoutConfig,
    /// Logical roles of the layer output `[batch, seq, dim]`, `(batch, seq, ?)` by default: the
    /// sharding constraint the layer puts on its output when tracing for a mesh, resolved by
    /// the experiment's rules (`batch` over `data, expert, fsdp`, `seq` over `seq` by default).
    /// The width is left to the partitioner (`?`): pinning it replicated (`_`) forces an
    /// all-reduce of every layer output under tensor parallelism, and costs llama-tiny's step
    /// on `tpu-v5e:2x2` `data=2,model=2` 1.7 MiB more temporaries per chip (`axle plan`).
    #[serde(with = "crate::param::roles_text")]
    pub output_roles: LogicalSpec,
    /// What the backward pass recomputes of this layer instead of keeping it from the forward
    /// pass (`none`, `full`, `dots`, `names:A,B`, `offload:A,B`; see [`RematSpec`]). The layer
    /// tags `attention_out` and `ffn_out` ([`crate::remat::LAYER_TAGS`]).
    #[serde(default)]
    pub remat: RematSpec,
}

impl Default for TransformerLayerConfig {
    fn default() -> Self {
        TransformerLayerConfig {
            input_dim: None,
            attention_norm: NormConfig::default(),
            attention: AttentionConfig::default(),
            ffn_norm: NormConfig::default(),
            feed_forward: FeedForwardConfig::default(),
            residual_dropout: DropoutConfig::default(),
            output_roles: LogicalSpec(vec![
                LogicalAxis::Batch,
                LogicalAxis::Seq,
                LogicalAxis::Unconstrained,
            ]),
            remat: RematSpec::None,
        }
    }
}

crate::config_node!(
    TransformerLayerConfig,
    attention_norm,
    attention,
    ffn_norm,
    feed_forward,
    residual_dropout
);

/// A pre-norm transformer layer with children `attention_norm`, `attention`, `ffn_norm`,
/// `feed_forward`.
#[derive(Clone, Debug)]
pub struct TransformerLayer {
    /// The config, with dimensions resolved.
    pub cfg: TransformerLayerConfig,
    /// Norm before attention.
    pub attention_norm: Norm,
    /// Self-attention.
    pub attention: Attention,
    /// Norm before the feed-forward block.
    pub ffn_norm: Norm,
    /// Feed-forward block.
    pub feed_forward: FeedForward,
}

impl TransformerLayer {
    /// Builds the layer; `path` is the config's dotted path, for errors.
    pub fn new(cfg: &TransformerLayerConfig, path: &str) -> Result<TransformerLayer> {
        let dim = required(cfg.input_dim, path, "input_dim")?;
        cfg.residual_dropout
            .validate(&join(path, "residual_dropout"))?;
        if cfg.output_roles.rank() != 3 {
            return Err(Error::Inconsistent {
                path: join(path, "output_roles"),
                message: format!(
                    "the layer output [batch, seq, dim] has 3 dimensions, the roles {} have {}",
                    cfg.output_roles,
                    cfg.output_roles.rank()
                ),
            });
        }
        let mut attention = cfg.attention.clone();
        attention.input_dim = Some(dim);
        let mut feed_forward = cfg.feed_forward.clone();
        feed_forward.input_dim = Some(dim);
        Ok(TransformerLayer {
            cfg: cfg.clone(),
            attention_norm: Norm::new(
                &cfg.attention_norm.with_input_dim(dim),
                &join(path, "attention_norm"),
            )?,
            attention: Attention::new(&attention, &join(path, "attention"))?,
            ffn_norm: Norm::new(&cfg.ffn_norm.with_input_dim(dim), &join(path, "ffn_norm"))?,
            feed_forward: FeedForward::new(&feed_forward, &join(path, "feed_forward"))?,
        })
    }
}

impl Module for TransformerLayer {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        nest(
            &mut specs,
            "attention_norm",
            self.attention_norm.param_specs(),
        );
        nest(&mut specs, "attention", self.attention.param_specs());
        nest(&mut specs, "ffn_norm", self.ffn_norm.param_specs());
        nest(&mut specs, "feed_forward", self.feed_forward.param_specs());
        specs
    }
}

/// Config of [`Stack`]: `num_layers` layers following the pattern `layers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackConfig {
    /// Model dimension (set by the parent).
    pub input_dim: Option<usize>,
    /// Number of layers.
    pub num_layers: Option<usize>,
    /// The layer pattern, repeated over depth: layer `i` is `layers[i % layers.len()]` (one
    /// entry: every layer alike). Must not be empty; when scanned, its length must divide
    /// `num_layers`. Config paths index it: `decoder.transformer.layers.0.attention.num_heads`.
    pub layers: Vec<TransformerLayerConfig>,
    /// Run the layers as one scanned loop over the repeats of the pattern (compile time flat in
    /// depth) instead of unrolled.
    pub scan: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            input_dim: None,
            num_layers: None,
            layers: vec![TransformerLayerConfig::default()],
            scan: false,
        }
    }
}

crate::config_node!(StackConfig, layers);

/// A stack of layers following a pattern. Unrolled, layer `i` has parameters under
/// `layers/{i}/` (with the structure of pattern entry `i % pattern length`). Scanned, the loop
/// runs `num_layers / pattern length` times over the whole pattern, and pattern entry `j` has its
/// parameters stacked under `layer/{j}/` with a leading axis of that size; a one-entry pattern
/// keeps the names it had before patterns existed, `layer/` (no index), so that scanned
/// checkpoints of uniform stacks stay loadable.
#[derive(Clone, Debug)]
pub struct Stack {
    /// The config, with dimensions resolved.
    pub cfg: StackConfig,
    /// Number of layers.
    pub num_layers: usize,
    /// The layer pattern: layer `i` has the structure of `layers[i % layers.len()]`.
    pub layers: Vec<TransformerLayer>,
}

impl Stack {
    /// Builds the stack; `path` is the config's dotted path, for errors. Errors:
    /// [`Error::Missing`] for an unset `input_dim` or `num_layers`, [`Error::Inconsistent`] for
    /// zero layers, an empty pattern (naming `{path}.layers`) or, when scanned, a pattern length
    /// that does not divide `num_layers` (naming `{path}.num_layers`), and the errors of each
    /// pattern entry (naming `{path}.layers.{j}...`).
    pub fn new(cfg: &StackConfig, path: &str) -> Result<Stack> {
        let dim = required(cfg.input_dim, path, "input_dim")?;
        let num_layers = required(cfg.num_layers, path, "num_layers")?;
        if num_layers == 0 {
            return Err(Error::Inconsistent {
                path: join(path, "num_layers"),
                message: "a stack needs at least one layer".into(),
            });
        }
        let pattern = cfg.layers.len();
        if pattern == 0 {
            return Err(Error::Inconsistent {
                path: join(path, "layers"),
                message: "the layer pattern is empty; it needs at least one layer config".into(),
            });
        }
        if cfg.scan && num_layers % pattern != 0 {
            return Err(Error::Inconsistent {
                path: join(path, "num_layers"),
                message: format!(
                    "a scanned stack repeats its pattern of {pattern} layers whole, \
                     which does not divide {num_layers} layers"
                ),
            });
        }
        let layers = cfg
            .layers
            .iter()
            .enumerate()
            .map(|(j, layer)| {
                let mut layer = layer.clone();
                layer.input_dim = Some(dim);
                TransformerLayer::new(&layer, &join(path, &format!("layers.{j}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Stack {
            cfg: cfg.clone(),
            num_layers,
            layers,
        })
    }

    /// The layer at depth `i` (`0 <= i < num_layers`): pattern entry `i % layers.len()`.
    pub fn layer(&self, i: usize) -> &TransformerLayer {
        &self.layers[i % self.layers.len()]
    }

    /// How many times a scanned stack runs its pattern: `num_layers / layers.len()`.
    pub fn repeats(&self) -> usize {
        self.num_layers / self.layers.len()
    }

    /// The parameter path prefix of pattern entry `j` in a scanned stack: `layer/{j}`, or
    /// `layer` for a one-entry pattern.
    pub fn scanned_prefix(&self, j: usize) -> String {
        if self.layers.len() == 1 {
            "layer".to_string()
        } else {
            format!("layer/{j}")
        }
    }
}

impl Module for Stack {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        if self.cfg.scan {
            for (j, layer) in self.layers.iter().enumerate() {
                let stacked = layer
                    .param_specs()
                    .into_iter()
                    .map(|(path, spec)| (path, spec.stacked(self.repeats())))
                    .collect();
                nest(&mut specs, &self.scanned_prefix(j), stacked);
            }
        } else {
            for i in 0..self.num_layers {
                nest(
                    &mut specs,
                    &format!("layers/{i}"),
                    self.layer(i).param_specs(),
                );
            }
        }
        specs
    }
}

impl TransformerLayer {
    /// `h = x + dropout(attention(norm(x)))`, then `h + dropout(ffn(norm(h)))`, on
    /// `x` `[batch, seq, dim]`; records the output's root mean square as summary `output_rms`.
    /// With a [`RematSpec`] other than `none`, the layer is one rematerialized region whose
    /// inputs are `x` and the RNG key, and whose outputs are the layer output, the next key and
    /// the summaries.
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        segment_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let Some(policy) = self.cfg.remat.policy() else {
            return self.forward_body(ctx, x, positions, segment_ids);
        };
        let mut inputs = vec![x];
        inputs.extend(ctx.key());
        let has_key = inputs.len() == 2;
        let mut outcome = Ok(Vec::new());
        let outs = remat(&policy, &inputs, |q| {
            let mut body = ctx.for_region(q.get(1).cloned());
            match self.forward_body(&mut body, &q[0], positions, segment_ids) {
                Ok(y) => {
                    let summaries = body.take_summaries();
                    outcome = Ok(summaries.keys().cloned().collect());
                    let key = body.key().cloned().filter(|_| has_key);
                    std::iter::once(y)
                        .chain(key)
                        .chain(summaries.into_values())
                        .collect()
                }
                Err(e) => {
                    outcome = Err(e);
                    q.to_vec()
                }
            }
        });
        let names: Vec<String> = outcome?;
        let rest = if has_key {
            ctx.set_key(Some(outs[1].clone()));
            &outs[2..]
        } else {
            &outs[1..]
        };
        ctx.extend_summaries(names.into_iter().zip(rest.iter().cloned()));
        Ok(outs[0].clone())
    }

    /// The layer's computation ([`TransformerLayer::forward`] without rematerialization), with
    /// the attention and feed-forward outputs tagged `attention_out` and `ffn_out`.
    fn forward_body(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        segment_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let rate = self.cfg.residual_dropout.rate;
        let h = ctx.scope("attention_norm", |c| self.attention_norm.forward(c, x))?;
        let h = ctx.scope("attention", |c| {
            self.attention.forward(c, &h, positions, segment_ids)
        })?;
        let x = x + &ctx.dropout(&h.checkpoint_name("attention_out"), rate)?;
        let h = ctx.scope("ffn_norm", |c| self.ffn_norm.forward(c, &x))?;
        let h = ctx.scope("feed_forward", |c| self.feed_forward.forward(c, &h))?;
        let x = &x + &ctx.dropout(&h.checkpoint_name("ffn_out"), rate)?;
        let x = ctx.constrain(&x, &self.cfg.output_roles);
        ctx.add_summary("output_rms", x.square().mean_all().sqrt());
        Ok(x)
    }
}

impl Stack {
    /// Runs the layers in order on `x` `[batch, seq, dim]`, giving `[batch, seq, dim]`:
    /// unrolled, or as one scan over the repeats of the pattern, each iteration running every
    /// pattern entry in order on its slice of the stacked parameters (the RNG key is carried;
    /// summaries come out stacked, one per repeat, under each entry's prefix).
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        segment_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        if !self.cfg.scan {
            let mut x = x.clone();
            for i in 0..self.num_layers {
                x = ctx.scope(&format!("layers/{i}"), |c| {
                    self.layer(i).forward(c, &x, positions, segment_ids)
                })?;
            }
            return Ok(x);
        }
        let mut names = Vec::new();
        let mut xs = Vec::new();
        for (j, layer) in self.layers.iter().enumerate() {
            let prefix = self.scanned_prefix(j);
            for (path, spec) in layer.param_specs() {
                let name = format!("{prefix}/{path}");
                xs.push(ctx.param(&name, &spec.stacked(self.repeats()).shape)?);
                names.push(ctx.path(&name));
            }
        }
        let xs: Vec<&Tensor> = xs.iter().collect();
        let mut carry = vec![x];
        carry.extend(ctx.key());
        let mut outcome = Ok(Vec::new());
        let builder = x.builder().clone();
        let (carry, ys) = builder.scan(self.repeats(), &carry, &xs, |c, slices| {
            let params = names.iter().cloned().zip(slices.iter().cloned()).collect();
            let mut body = ctx.for_loop_body(params, c.get(1).cloned());
            let mut pattern = self.layers.iter().enumerate();
            match pattern.try_fold(c[0].clone(), |x, (j, layer)| {
                body.scope(&self.scanned_prefix(j), |b| {
                    layer.forward(b, &x, positions, segment_ids)
                })
            }) {
                Ok(y) => {
                    let summaries = body.take_summaries();
                    outcome = Ok(summaries.keys().cloned().collect());
                    (
                        std::iter::once(y).chain(body.key().cloned()).collect(),
                        summaries.into_values().collect(),
                    )
                }
                Err(e) => {
                    outcome = Err(e);
                    (c.to_vec(), Vec::new())
                }
            }
        });
        let summary_names = outcome?;
        if ctx.key().is_some() {
            ctx.set_key(carry.get(1).cloned());
        }
        ctx.extend_summaries(summary_names.into_iter().zip(ys));
        Ok(carry[0].clone())
    }
}

impl TransformerLayer {
    /// The layer on new tokens `x` `[batch, new, dim]` at `positions` `[batch, new]`, attending
    /// through `cache` ([`Attention::extend`]), in evaluation mode: the numbers of
    /// [`TransformerLayer::forward`] on the whole sequence. Gives the output and the updated
    /// cache.
    pub fn extend(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        cache: &KvCache,
    ) -> Result<(Tensor, KvCache)> {
        let h = ctx.scope("attention_norm", |c| self.attention_norm.forward(c, x))?;
        let (h, cache) = ctx.scope("attention", |c| {
            self.attention.extend(c, &h, positions, cache)
        })?;
        let x = x + &h;
        let h = ctx.scope("ffn_norm", |c| self.ffn_norm.forward(c, &x))?;
        let h = ctx.scope("feed_forward", |c| self.feed_forward.forward(c, &h))?;
        Ok((&x + &h, cache))
    }
}

impl Stack {
    /// The shape of each layer's key and value cache for `batch` rows of up to `max_len`
    /// positions: `[batch, max_len, kv_heads, head_dim]`, one entry per layer.
    pub fn kv_cache_shapes(&self, batch: usize, max_len: usize) -> Vec<Vec<usize>> {
        (0..self.num_layers)
            .map(|i| {
                let a = &self.layer(i).attention;
                vec![batch, max_len, a.num_kv_heads, a.head_dim]
            })
            .collect()
    }

    /// The layers in order on new tokens `x` `[batch, new, dim]` at `positions`, each through
    /// its cache in `caches` (one per layer, in order). Unrolled whatever the config says: a
    /// scanned stack's stacked parameters are sliced per layer. Gives the output and the
    /// updated caches. Errors: [`Error::BadInput`] for a wrong number of caches.
    pub fn extend(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        caches: &[KvCache],
    ) -> Result<(Tensor, Vec<KvCache>)> {
        if caches.len() != self.num_layers {
            return Err(Error::BadInput {
                path: ctx.path(""),
                name: "caches".into(),
                message: format!(
                    "{} key/value caches for {} layers",
                    caches.len(),
                    self.num_layers
                ),
            });
        }
        let mut x = x.clone();
        let mut updated = Vec::with_capacity(caches.len());
        for (i, cache) in caches.iter().enumerate() {
            let layer = self.layer(i);
            let (y, cache) = if self.cfg.scan {
                let mut body = self.unstacked_layer_ctx(ctx, i)?;
                let prefix = self.scanned_prefix(i % self.layers.len());
                body.scope(&prefix, |b| layer.extend(b, &x, positions, cache))?
            } else {
                ctx.scope(&format!("layers/{i}"), |c| {
                    layer.extend(c, &x, positions, cache)
                })?
            };
            x = y;
            updated.push(cache);
        }
        Ok((x, updated))
    }

    /// A context holding layer `i`'s slice of a scanned stack's stacked parameters, under the
    /// same paths as the scan's loop body sees them.
    fn unstacked_layer_ctx(&self, ctx: &Ctx, i: usize) -> Result<Ctx> {
        let (j, repeat) = (i % self.layers.len(), i / self.layers.len());
        let prefix = self.scanned_prefix(j);
        let mut params = crate::param::ParamTree::new();
        for (path, spec) in self.layers[j].param_specs() {
            let name = format!("{prefix}/{path}");
            let stacked = ctx.param(&name, &spec.stacked(self.repeats()).shape)?;
            let rank = stacked.rank();
            let mut lo = vec![0; rank];
            let mut hi = stacked.dims().to_vec();
            (lo[0], hi[0]) = (repeat, repeat + 1);
            let slice = stacked.slice(&lo, &hi, &vec![1; rank]).reshape(&spec.shape);
            params.insert(ctx.path(&name), slice);
        }
        Ok(ctx.for_loop_body(params, None))
    }
}
