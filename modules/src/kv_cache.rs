//! The key/value cache of autoregressive decoding: per attention layer, the keys (after
//! QK-norm and RoPE) and values of every position decoded so far, so that each new token
//! attends to them without recomputing them. Slot `s` of a row holds the token at position
//! `s`; rows may be at different positions (prompts of different lengths).

use axle_compiler::{DType, Tensor, einsum};

use crate::attention::Attention;
use crate::context::Ctx;
use crate::error::{Error, Result};

/// The cache of one attention layer: `keys` and `values`, each
/// `[batch, max_len, kv_heads, head_dim]` in the activation dtype.
#[derive(Clone, Debug)]
pub struct KvCache {
    /// Keys by position, after QK-norm and RoPE.
    pub keys: Tensor,
    /// Values by position.
    pub values: Tensor,
}

impl KvCache {
    /// `keys` and `values` `[batch, new, kv_heads, head_dim]` written at `positions`
    /// `i32[batch, new]` (each below `max_len`; distinct within a row); other slots keep their
    /// contents. A select, not an arithmetic blend, so the written values are exact.
    pub fn write(&self, keys: &Tensor, values: &Tensor, positions: &Tensor) -> KvCache {
        let dims = self.keys.dims().to_vec();
        let max_len = dims[1];
        let one_hot = positions.one_hot(max_len, keys.dtype());
        let counts = one_hot.sum(&[1], false);
        let written = counts
            .greater(&counts.zeros_like())
            .broadcast_in_dim(&dims, &[0, 1]);
        let scatter = |new: &Tensor, old: &Tensor| {
            let placed = einsum("bts,btkd->bskd", &[&one_hot, new]);
            written.select(&placed, old)
        };
        KvCache {
            keys: scatter(keys, &self.keys),
            values: scatter(values, &self.values),
        }
    }
}

impl Attention {
    /// Causal self-attention of new tokens `x` `[batch, new, dim]` at `positions`
    /// `i32[batch, new]` over `cache` (the layer's keys and values of earlier positions):
    /// their keys and values are written into the cache at their positions, then each token
    /// attends to the slots at or before its position (and within the sliding window, if
    /// configured). Gives the output `[batch, new, dim]` and the updated cache. The same
    /// numbers as [`Attention::forward`] on the whole sequence, without recomputing the
    /// earlier keys and values. Errors: [`Error::Inconsistent`] for a bidirectional layer
    /// (decoding needs causal attention), [`Error::BadInput`] for mismatched shapes.
    pub fn extend(
        &self,
        ctx: &mut Ctx,
        x: &Tensor,
        positions: &Tensor,
        cache: &KvCache,
    ) -> Result<(Tensor, KvCache)> {
        if !self.cfg.causal {
            return Err(Error::Inconsistent {
                path: ctx.path("causal"),
                message: "decoding with a key/value cache needs causal attention".into(),
            });
        }
        let expected = |b: usize, len: usize| vec![b, len, self.num_kv_heads, self.head_dim];
        let (b, t) = (x.dims()[0], x.dims().get(1).copied().unwrap_or(0));
        let max_len = cache.keys.dims().get(1).copied().unwrap_or(0);
        if x.rank() != 3
            || positions.dims() != [b, t]
            || cache.keys.dims() != expected(b, max_len)
            || cache.values.dims() != expected(b, max_len)
        {
            return Err(Error::BadInput {
                path: ctx.path(""),
                name: "cache".into(),
                message: format!(
                    "x {:?}, positions {:?} and a cache of keys {:?} and values {:?} do not fit \
                     (expected caches [batch, max_len, {}, {}])",
                    x.dims(),
                    positions.dims(),
                    cache.keys.dims(),
                    cache.values.dims(),
                    self.num_kv_heads,
                    self.head_dim
                ),
            });
        }
        let (q, k, v) = self.project(ctx, x, positions)?;
        let cache = cache.write(&k, &v, positions);
        let query = positions
            .convert(DType::I32)
            .broadcast_in_dim(&[b, t, max_len], &[0, 1]);
        let slot = x.builder().iota(DType::I32, &[b, t, max_len], 2);
        let mut allowed = query.greater_equal(&slot);
        if let Some(window) = self.cfg.sliding_window {
            let distance = &query - &slot;
            allowed = allowed.logical_and(&distance.less(&distance.splat_like(window as f64)));
        }
        let out = self.attend(ctx, &q, &cache.keys, &cache.values, &allowed)?;
        Ok((out, cache))
    }
}
