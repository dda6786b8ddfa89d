//! Config modifiers: cross-cutting changes applied to a whole config tree through the visitor,
//! each a few lines, whatever the model. Each returns how many configs it visited.

use crate::attention::AttentionConfig;
use crate::config::{ConfigNode, for_each_mut};
use crate::norm::{LayerNormConfig, NormConfig, RmsNormConfig};
use crate::rope::RopeConfig;

/// Gives every attention layer RoPE with base `theta` (replacing any RoPE it had).
pub fn rope_everywhere(cfg: &mut dyn ConfigNode, theta: f64) -> usize {
    for_each_mut(cfg, |attention: &mut AttentionConfig| {
        attention.rope = Some(RopeConfig { theta });
    })
}

/// Replaces every RMSNorm by a LayerNorm (with bias) and every LayerNorm by an RMSNorm, keeping eps.
pub fn swap_norms(cfg: &mut dyn ConfigNode) -> usize {
    for_each_mut(cfg, |norm: &mut NormConfig| {
        *norm = match norm.clone() {
            NormConfig::RmsNorm(RmsNormConfig { input_dim, eps }) => {
                NormConfig::LayerNorm(LayerNormConfig {
                    input_dim,
                    eps,
                    bias: true,
                })
            }
            NormConfig::LayerNorm(LayerNormConfig { input_dim, eps, .. }) => {
                NormConfig::RmsNorm(RmsNormConfig { input_dim, eps })
            }
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
