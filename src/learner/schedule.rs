//! Learning-rate schedules, traced as functions of the step count.

use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

/// The learning rate as a function of the number of updates already applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The same rate at every step.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// Linear warm-up from `peak_lr / warmup_steps` to `peak_lr` over
    /// `warmup_steps` updates, then cosine decay to `final_lr` at
    /// `total_steps`, constant after.
    WarmupCosine {
        /// The rate at the end of warm-up.
        peak_lr: f64,
        /// Updates of linear warm-up.
        warmup_steps: u64,
        /// The update at which the decay reaches `final_lr`.
        total_steps: u64,
        /// The floor of the decay.
        final_lr: f64,
    },
}

impl Schedule {
    /// The rate for the update after `count` earlier ones (`count` is an
    /// f32 scalar), traced.
    pub fn learning_rate(&self, count: &Tensor) -> Tensor {
        match *self {
            Schedule::Constant { lr } => count.splat_like(lr),
            Schedule::WarmupCosine {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                let warmup = warmup_steps.max(1) as f64;
                let decay_len = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let ramp = &(count + 1.0) * (peak_lr / warmup);
                let progress = (&(count - warmup_steps as f64) * (1.0 / decay_len)).clip(0.0, 1.0);
                let cosine = &(&(&progress * std::f64::consts::PI).cos() + 1.0) * 0.5;
                let decayed = &(&cosine * (peak_lr - final_lr)) + final_lr;
                count
                    .less(&count.splat_like(warmup_steps as f64))
                    .select(&ramp, &decayed)
            }
        }
    }

    /// The same rate computed on the host, for logs and tests.
    pub fn host_learning_rate(&self, count: u64) -> f64 {
        match *self {
            Schedule::Constant { lr } => lr,
            Schedule::WarmupCosine {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                if count < warmup_steps {
                    return (count + 1) as f64 * peak_lr / warmup_steps.max(1) as f64;
                }
                let decay_len = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = ((count - warmup_steps) as f64 / decay_len).min(1.0);
                final_lr
                    + (peak_lr - final_lr) * 0.5 * (1.0 + (progress * std::f64::consts::PI).cos())
            }
        }
    }
}
