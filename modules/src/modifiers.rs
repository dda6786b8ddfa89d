//! Config modifiers: cross-cutting changes applied to a whole config tree through the visitor,
//! each a few lines, whatever the model. Each returns how many configs of the type it edits it
//! visited (whether or not it changed them).

use crate::attention::AttentionConfig;
use crate::causal_lm::DecoderConfig;
use crate::config::{ConfigNode, for_each_mut};
use crate::dropout::DropoutConfig;
use crate::feed_forward::{Activation, FeedForwardConfig};
use crate::norm::{NormConfig, RmsNormConfig};
use crate::remat::RematSpec;
use crate::rope::RopeConfig;
use crate::transformer::{StackConfig, TransformerLayerConfig};

/// Gives every attention layer RoPE with base `theta` (replacing any RoPE it had).
pub fn rope_everywhere(cfg: &mut dyn ConfigNode, theta: f64) -> usize {
    for_each_mut(cfg, |attention: &mut AttentionConfig| {
        attention.rope = Some(RopeConfig::with_theta(theta));
    })
}

/// Replaces every RMSNorm by a LayerNorm (with bias) and every LayerNorm by an RMSNorm, keeping
/// eps (the `From` conversions of [`crate::norm`]).
pub fn swap_norms(cfg: &mut dyn ConfigNode) -> usize {
    for_each_mut(cfg, |norm: &mut NormConfig| {
        *norm = match norm.clone() {
            NormConfig::RmsNorm(c) => NormConfig::LayerNorm(c.into()),
            NormConfig::LayerNorm(c) => NormConfig::RmsNorm(c.into()),
        }
    })
}

/// Turns every multi-head attention (no `num_kv_heads`, or as many as heads) into grouped-query
/// attention with `num_kv_heads` key/value heads; attention that is already GQA is left alone.
pub fn mha_to_gqa(cfg: &mut dyn ConfigNode, num_kv_heads: usize) -> usize {
    for_each_mut(cfg, |a: &mut AttentionConfig| {
        if a.num_kv_heads.is_none() || a.num_kv_heads == a.num_heads {
            a.num_kv_heads = Some(num_kv_heads);
        }
    })
}

/// Gives every attention layer an RMSNorm QK-norm with eps 1e-6 (the Qwen3 default), replacing
/// any QK-norm it had; see [`AttentionConfig::qk_norm`]. Adds `2 * head_dim` parameters per
/// layer. Returns the number of attention configs.
pub fn qk_norm(cfg: &mut dyn ConfigNode) -> usize {
    for_each_mut(cfg, |a: &mut AttentionConfig| {
        a.qk_norm = Some(NormConfig::RmsNorm(RmsNormConfig {
            input_dim: None,
            eps: 1e-6,
        }));
    })
}

/// Makes every attention layer local with a window of `window` keys (replacing any window it
/// had); see [`AttentionConfig::sliding_window`]. Returns the number of attention configs.
pub fn sliding_window(cfg: &mut dyn ConfigNode, window: usize) -> usize {
    for_each_mut(cfg, |a: &mut AttentionConfig| {
        a.sliding_window = Some(window)
    })
}

/// Alternates local and global attention in every stack: each pattern entry `l` becomes the two
/// entries `[l with every attention local over window, l]`, so `[l]` becomes `[local, global]`
/// and a pattern of length n one of length 2n (an entry that was already local stays local in
/// its second copy). Parameters are unchanged. With an odd `num_layers`, an unrolled stack ends
/// on a local layer; a scanned stack cannot repeat the doubled pattern whole, and
/// [`crate::Stack::new`] fails with [`crate::Error::Inconsistent`] naming
/// `...transformer.num_layers`. Returns the number of stacks.
pub fn alternate_local_global(cfg: &mut dyn ConfigNode, window: usize) -> usize {
    for_each_mut(cfg, |stack: &mut StackConfig| {
        let doubled = stack.layers.iter().flat_map(|global| {
            let mut local = global.clone();
            sliding_window(&mut local, window);
            [local, global.clone()]
        });
        stack.layers = doubled.collect();
    })
}

/// Turns every gated SiLU feed-forward (SwiGLU) into a non-gated tanh-GELU MLP, scaling
/// `hidden_dim` by 3/2 (rounded down) to keep the weight count: the gated block has
/// `3 * dim * hidden` weights, the MLP `2 * dim * (3 * hidden / 2)`, equal for an even `hidden`
/// (bias counts, where the projections have biases, do change). Other feed-forwards are left
/// alone. Returns the number of feed-forward configs visited.
pub fn swiglu_to_gelu(cfg: &mut dyn ConfigNode) -> usize {
    for_each_mut(cfg, |f: &mut FeedForwardConfig| {
        if f.gated && f.activation == Activation::Silu {
            f.gated = false;
            f.activation = Activation::GeluTanh;
            f.hidden_dim = f.hidden_dim.map(|hidden| hidden * 3 / 2);
        }
    })
}

/// Ties every decoder's LM head to its token embedding (`lm_head = None`), removing
/// `dim * vocab_size` parameters (plus `vocab_size` with a head bias) where the head was untied.
/// Returns the number of decoder configs.
pub fn tie_embeddings(cfg: &mut dyn ConfigNode) -> usize {
    for_each_mut(cfg, |d: &mut DecoderConfig| d.lm_head = None)
}

/// Sets the rate of every dropout (embedding and residual dropout of the models here) to `rate`,
/// which must be in `[0, 1)` to instantiate. Returns the number of dropout configs.
pub fn dropout(cfg: &mut dyn ConfigNode, rate: f64) -> usize {
    for_each_mut(cfg, |d: &mut DropoutConfig| d.rate = rate)
}

/// Sets the rematerialization of every transformer layer to `spec` (AXLearn's
/// `remat_everywhere`); see [`RematSpec`]. Values and gradients are unchanged; memory and
/// compute trade. Returns the number of layer configs.
pub fn remat(cfg: &mut dyn ConfigNode, spec: &RematSpec) -> usize {
    for_each_mut(cfg, |layer: &mut TransformerLayerConfig| {
        layer.remat = spec.clone()
    })
}
