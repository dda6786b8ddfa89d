//! Optimizers: per-parameter update rules, traced into the step.
//!
//! Every rule produces an update `u` and applies `p -= lr * u`, with
//! decoupled weight decay (`u += weight_decay * p`, Loshchilov & Hutter)
//! on the parameters the learner's decay mask selects. `t = count + 1` is
//! the 1-based step (see the schedule module's convention). Fields left out
//! of a config take the documented defaults, so `{"kind":"sgd"}` is a
//! complete optimizer.

use super::finite_f32;
use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

/// An optimizer and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with momentum, as optax's `sgd` (`trace`): `v = momentum * v + g`;
    /// `u = v`, or with Nesterov momentum `u = g + momentum * v` (the new
    /// `v`; Sutskever et al. 2013 in optax's form).
    Sgd {
        /// Momentum coefficient (default 0.9; 0 for plain SGD).
        #[serde(default = "default_beta1")]
        momentum: f64,
        /// Nesterov momentum (default false: heavy ball).
        #[serde(default)]
        nesterov: bool,
        /// Decoupled weight decay (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
    /// AdamW (Loshchilov & Hutter), as optax's `adamw`:
    /// `m = beta1 * m + (1 - beta1) * g`, `v = beta2 * v + (1 - beta2) * g^2`,
    /// with bias correction `m_hat = m / (1 - beta1^t)`,
    /// `v_hat = v / (1 - beta2^t)` (without it `m_hat = m`, `v_hat = v`),
    /// `u = m_hat / (sqrt(v_hat + eps_root) + eps)`.
    AdamW {
        /// First-moment decay (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay (default 0.95).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Added to the root of the second moment (default 1e-8).
        #[serde(default = "default_eps")]
        eps: f64,
        /// Added to the second moment inside the root (optax's `eps_root`,
        /// default 0).
        #[serde(default)]
        eps_root: f64,
        /// Decoupled weight decay (default 0.1).
        #[serde(default = "default_weight_decay")]
        weight_decay: f64,
        /// Divide the moments by `1 - beta^t` (default true).
        #[serde(default = "yes")]
        bias_correction: bool,
    },
    /// Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms",
    /// 2023), as optax's `lion`: `u = sign(beta1 * m + (1 - beta1) * g)`,
    /// then `m = beta2 * m + (1 - beta2) * g`.
    Lion {
        /// Interpolation of the update direction (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the momentum (default 0.99).
        #[serde(default = "default_lion_beta2")]
        beta2: f64,
        /// Decoupled weight decay (default 1e-3, optax's).
        #[serde(default = "default_lion_weight_decay")]
        weight_decay: f64,
    },
    /// Adafactor (Shazeer & Stern 2018), as optax's `adafactor` without
    /// momentum: with `beta2_t = 1 - t^(-decay_rate)` and
    /// `s = g^2 + eps`, a parameter whose second-largest dimension is at
    /// least `min_dim_size_to_factor` keeps factored second moments over
    /// its two largest dimensions `r` (second largest) and `c` (largest):
    /// `v_row = beta2_t * v_row + (1 - beta2_t) * mean_c(s)`,
    /// `v_col = beta2_t * v_col + (1 - beta2_t) * mean_r(s)`,
    /// `u = g * (v_row / mean_r(v_row))^-1/2 * v_col^-1/2`; any other keeps
    /// `v = beta2_t * v + (1 - beta2_t) * s`, `u = g * v^-1/2`. Then
    /// `u /= max(1, rms(u) / clipping_threshold)` and, with
    /// `multiply_by_parameter_scale`, `u *= max(rms(p), min_scale)`.
    /// Weight decay is decoupled and scaled by the rate like every rule
    /// here (`p -= lr * (u + weight_decay * p)`); optax's
    /// `weight_decay_rate` is added after the rate, unscaled.
    Adafactor {
        /// Exponent of the second-moment decay (default 0.8).
        #[serde(default = "default_decay_rate")]
        decay_rate: f64,
        /// Added to the squared gradient (default 1e-30).
        #[serde(default = "default_adafactor_eps")]
        eps: f64,
        /// Smallest second-largest dimension that is factored (default 128).
        #[serde(default = "default_min_dim_size_to_factor")]
        min_dim_size_to_factor: usize,
        /// Largest RMS of an update (default 1; `null`: no clipping).
        #[serde(default = "default_clipping_threshold")]
        clipping_threshold: Option<f64>,
        /// Scale updates by the parameter's RMS (default true).
        #[serde(default = "yes")]
        multiply_by_parameter_scale: bool,
        /// Floor of that scale (default 1e-3).
        #[serde(default = "default_min_scale")]
        min_scale: f64,
        /// Decoupled weight decay (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.95
}
fn default_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.1
}
fn yes() -> bool {
    true
}
fn default_lion_beta2() -> f64 {
    0.99
}
fn default_lion_weight_decay() -> f64 {
    1e-3
}
fn default_decay_rate() -> f64 {
    0.8
}
fn default_adafactor_eps() -> f64 {
    1e-30
}
fn default_min_dim_size_to_factor() -> usize {
    128
}
fn default_clipping_threshold() -> Option<f64> {
    Some(1.0)
}
fn default_min_scale() -> f64 {
    1e-3
}

/// One state slot of a parameter: its name and, for each of its
/// dimensions, the parameter dimension it follows (so it is sharded as
/// that dimension is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The slot's name (`mu`, `v_row`, ...).
    pub name: &'static str,
    /// Parameter dimension of each slot dimension, in order.
    pub dims: Vec<usize>,
}

impl Slot {
    fn like(name: &'static str, rank: usize) -> Slot {
        Slot {
            name,
            dims: (0..rank).collect(),
        }
    }

    /// The slot's shape for a parameter of shape `param`.
    pub fn shape(&self, param: &[usize]) -> Vec<usize> {
        self.dims.iter().map(|&d| param[d]).collect()
    }
}

impl OptimizerConfig {
    /// The state slots of a parameter of shape `shape`.
    pub fn slots(&self, shape: &[usize]) -> Vec<Slot> {
        let rank = shape.len();
        match self {
            OptimizerConfig::Sgd { .. } => vec![Slot::like("momentum", rank)],
            OptimizerConfig::AdamW { .. } => vec![Slot::like("mu", rank), Slot::like("nu", rank)],
            OptimizerConfig::Lion { .. } => vec![Slot::like("mu", rank)],
            OptimizerConfig::Adafactor {
                min_dim_size_to_factor,
                ..
            } => match factored_dims(shape, *min_dim_size_to_factor) {
                Some((r, c)) => {
                    let without = |d: usize| (0..rank).filter(|&i| i != d).collect();
                    vec![
                        Slot {
                            name: "v_row",
                            dims: without(c),
                        },
                        Slot {
                            name: "v_col",
                            dims: without(r),
                        },
                    ]
                }
                None => vec![Slot::like("v", rank)],
            },
        }
    }

    /// Checks values that cannot train; errors name the field under `path`
    /// (`learner.optimizer`).
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let decay = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{path}.{name} must be in [0, 1), got {v}"))
            }
        };
        let non_negative = |name: &str, v: f64| {
            if finite_f32(v) && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{path}.{name} must be finite in f32 and >= 0, got {v}"
                ))
            }
        };
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                decay("momentum", momentum)?;
                non_negative("weight_decay", weight_decay)
            }
            OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                eps_root,
                weight_decay,
                ..
            } => {
                decay("beta1", beta1)?;
                decay("beta2", beta2)?;
                non_negative("eps", eps)?;
                non_negative("eps_root", eps_root)?;
                if eps == 0.0 && eps_root == 0.0 {
                    return Err(format!(
                        "{path}: eps or eps_root must be > 0 (a coordinate with a zero gradient would divide 0 by 0)"
                    ));
                }
                non_negative("weight_decay", weight_decay)
            }
            OptimizerConfig::Lion {
                beta1,
                beta2,
                weight_decay,
            } => {
                decay("beta1", beta1)?;
                decay("beta2", beta2)?;
                non_negative("weight_decay", weight_decay)
            }
            OptimizerConfig::Adafactor {
                decay_rate,
                eps,
                clipping_threshold,
                min_scale,
                weight_decay,
                ..
            } => {
                if !(finite_f32(decay_rate) && decay_rate > 0.0) {
                    return Err(format!(
                        "{path}.decay_rate must be finite in f32 and > 0, got {decay_rate}"
                    ));
                }
                if let Some(c) = clipping_threshold.filter(|c| !(finite_f32(*c) && *c > 0.0)) {
                    return Err(format!(
                        "{path}.clipping_threshold must be finite in f32 and > 0, got {c}"
                    ));
                }
                if !(finite_f32(eps) && eps > 0.0) {
                    return Err(format!(
                        "{path}.eps must be finite in f32 and > 0 (a zero gradient would divide by 0), got {eps}"
                    ));
                }
                non_negative("min_scale", min_scale)?;
                non_negative("weight_decay", weight_decay)
            }
        }
    }

    /// The new value of a parameter and of its slots (in [`Self::slots`]
    /// order). `count` is the number of updates applied before this one
    /// (f32 scalar); `lr` the (scaled) learning rate; `decay` says whether
    /// weight decay applies.
    pub fn update(
        &self,
        param: &Tensor,
        grad: &Tensor,
        slots: &[&Tensor],
        count: &Tensor,
        lr: &Tensor,
        decay: bool,
    ) -> (Tensor, Vec<Tensor>) {
        let t = count + 1.0;
        let (update, new_slots, weight_decay) = match *self {
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                let velocity = &(slots[0] * momentum) + grad;
                let update = if nesterov {
                    grad + &(&velocity * momentum)
                } else {
                    velocity.clone()
                };
                (update, vec![velocity], weight_decay)
            }
            OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                eps_root,
                weight_decay,
                bias_correction,
            } => {
                let mu = &(slots[0] * beta1) + &(grad * (1.0 - beta1));
                let nu = &(slots[1] * beta2) + &(&grad.square() * (1.0 - beta2));
                let (mu_hat, nu_hat) = if bias_correction {
                    // 1 - beta^t, as exp(t ln beta) on the traced step.
                    let correction = |beta: f64| &t.splat_like(1.0) - &(&t * beta.ln()).exp();
                    (&mu / &correction(beta1), &nu / &correction(beta2))
                } else {
                    (mu.clone(), nu.clone())
                };
                let update = &mu_hat / &(&(&nu_hat + eps_root).sqrt() + eps);
                (update, vec![mu, nu], weight_decay)
            }
            OptimizerConfig::Lion {
                beta1,
                beta2,
                weight_decay,
            } => {
                let direction = &(slots[0] * beta1) + &(grad * (1.0 - beta1));
                let mu = &(slots[0] * beta2) + &(grad * (1.0 - beta2));
                (direction.sign(), vec![mu], weight_decay)
            }
            OptimizerConfig::Adafactor {
                decay_rate,
                eps,
                min_dim_size_to_factor,
                clipping_threshold,
                multiply_by_parameter_scale,
                min_scale,
                weight_decay,
            } => {
                // beta2_t = 1 - t^(-decay_rate)
                let beta2 = &t.splat_like(1.0) - &t.powf(-decay_rate);
                let keep = |old: &Tensor, new: Tensor| {
                    &(old * &beta2) + &(&new * &(&beta2.splat_like(1.0) - &beta2))
                };
                let sq = &grad.square() + eps;
                let (mut update, new_slots) =
                    match factored_dims(param.dims(), min_dim_size_to_factor) {
                        Some((r, c)) => {
                            let v_row = keep(slots[0], sq.mean(&[c as i64], false));
                            let v_col = keep(slots[1], sq.mean(&[r as i64], false));
                            // `r` in v_row, which lacks dimension `c`.
                            let r_in_row = if r > c { r - 1 } else { r };
                            let row_mean = v_row.mean(&[r_in_row as i64], true);
                            let row_factor = (&v_row / &row_mean).rsqrt().expand_dims(c as i64);
                            let col_factor = v_col.rsqrt().expand_dims(r as i64);
                            (&(grad * &row_factor) * &col_factor, vec![v_row, v_col])
                        }
                        None => {
                            let v = keep(slots[0], sq);
                            (grad * &v.rsqrt(), vec![v])
                        }
                    };
                if let Some(threshold) = clipping_threshold {
                    let rms = update.square().mean_all().sqrt();
                    let divisor = (&rms * (1.0 / threshold)).maximum(&rms.splat_like(1.0));
                    update = &update / &divisor;
                }
                if multiply_by_parameter_scale {
                    let rms = param.square().mean_all().sqrt();
                    update = &update * &rms.maximum(&rms.splat_like(min_scale));
                }
                (update, new_slots, weight_decay)
            }
        };
        let update = if decay && weight_decay != 0.0 {
            &update + &(param * weight_decay)
        } else {
            update
        };
        (param - &(&update * lr), new_slots)
    }
}

/// optax's `_factored_dims`: the parameter dimensions `(r, c)` Adafactor
/// factors over, the second-largest and the largest (on equal sizes the
/// later dimension counts as larger), or `None` for a parameter of rank
/// below 2 or whose second-largest dimension is below `min_size`.
fn factored_dims(shape: &[usize], min_size: usize) -> Option<(usize, usize)> {
    if shape.len() < 2 {
        return None;
    }
    let mut sorted: Vec<(usize, usize)> = shape.iter().copied().zip(0..).collect();
    sorted.sort();
    let (second, r) = sorted[sorted.len() - 2];
    let (_, c) = sorted[sorted.len() - 1];
    (second >= min_size).then_some((r, c))
}
