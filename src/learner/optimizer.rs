//! Optimizers: per-parameter update rules, traced into the step.

use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

/// An optimizer and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with heavy-ball momentum: `v = momentum * v + g; p -= lr * v`,
    /// then decoupled weight decay `p -= lr * weight_decay * p`.
    Sgd {
        /// Momentum coefficient (0 for plain SGD).
        momentum: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
    /// AdamW (Loshchilov & Hutter), as optax's `adamw`: bias-corrected
    /// moments, `p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)`.
    AdamW {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Added to the root of the second moment.
        eps: f64,
        /// Decoupled weight decay (on the parameters the mask selects).
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// Names of the per-parameter state slots.
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd { .. } => &["momentum"],
            OptimizerConfig::AdamW { .. } => &["mu", "nu"],
        }
    }

    /// The new value of a parameter and of its slots (in [`Self::slots`]
    /// order). `count` is the number of updates applied before this one
    /// (f32 scalar); `decay` says whether weight decay applies.
    pub fn update(
        &self,
        param: &Tensor,
        grad: &Tensor,
        slots: &[&Tensor],
        count: &Tensor,
        lr: &Tensor,
        decay: bool,
    ) -> (Tensor, Vec<Tensor>) {
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
            } => {
                let velocity = &(slots[0] * momentum) + grad;
                let mut step = velocity.clone();
                if decay && weight_decay != 0.0 {
                    step = &step + &(param * weight_decay);
                }
                (param - &(&step * lr), vec![velocity])
            }
            OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let mu = &(slots[0] * beta1) + &(grad * (1.0 - beta1));
                let nu = &(slots[1] * beta2) + &(&grad.square() * (1.0 - beta2));
                let t = count + &count.splat_like(1.0);
                let correction = |beta: f64| &count.splat_like(1.0) - &(&t * beta.ln()).exp();
                let mu_hat = &mu / &correction(beta1);
                let nu_hat = &nu / &correction(beta2);
                let mut step = &mu_hat / &(&nu_hat.sqrt() + eps);
                if decay && weight_decay != 0.0 {
                    step = &step + &(param * weight_decay);
                }
                (param - &(&step * lr), vec![mu, nu])
            }
        }
    }
}
