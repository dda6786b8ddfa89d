//! Next-token cross-entropy with label masking (labels < 0 are ignored) and optional z-loss.

use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

use crate::norm::upcast;

/// Config of the cross-entropy loss.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CrossEntropyConfig {
    /// Weight of the z-loss `mean(logsumexp(logits)^2)` over live targets (0 = off), which keeps
    /// the softmax normalizer near 1.
    pub z_loss_scale: f64,
}

crate::config_node!(CrossEntropyConfig);

/// The terms of the loss, each a scalar in the logits' dtype (at least f32).
#[derive(Clone, Debug)]
pub struct LossTerms {
    /// `cross_entropy + z_loss_scale * z_loss`.
    pub total: Tensor,
    /// Mean negative log-likelihood of the live targets.
    pub cross_entropy: Tensor,
    /// Mean squared log-normalizer of the live targets.
    pub z_loss: Tensor,
    /// Number of live (non-negative) targets.
    pub num_targets: Tensor,
}

/// Cross-entropy of `logits` `[..., vocab]` against integer `labels` `[...]`, averaged over the
/// labels that are `>= 0` (the others are masked out), computed in at least f32.
///
/// Out-of-range labels: a negative label is masked (no loss, no gradient). A label `>= vocab`
/// counts as live but picks no logit (its one-hot row is all zero, `IndexMode::Fill(0.0)`), so
/// its loss is `logsumexp(logits)` and its gradient pushes every logit down; nothing fails at
/// run time. The trainer refuses such labels on the host before the step (the model's
/// `input_specs` give the valid range), so only hand-built batches can carry them.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, z_loss_scale: f64) -> LossTerms {
    let (logits, _) = upcast(logits);
    let dtype = logits.dtype();
    let vocab = *logits.dims().last().expect("logits have a vocab axis");
    let log_z = logits.logsumexp(&[-1], false);
    let label_logit = (&logits * &labels.one_hot(vocab, dtype)).sum(&[-1], false);
    let live = labels.greater_equal(&labels.zeros_like()).convert(dtype);
    let num_targets = live.sum_all();
    let denominator = num_targets.maximum(&num_targets.splat_like(1.0));
    let cross_entropy = &(&(&log_z - &label_logit) * &live).sum_all() / &denominator;
    let z_loss = &(&log_z.square() * &live).sum_all() / &denominator;
    LossTerms {
        total: &cross_entropy + &(&z_loss * z_loss_scale),
        cross_entropy,
        z_loss,
        num_targets,
    }
}
