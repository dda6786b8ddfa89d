//! Learning-rate schedules, traced as functions of the step.
//!
//! **Step convention (AXLearn's, 1-based):** every schedule is a function
//! of `step = count + 1`, where `count` is the number of updates applied
//! before this one ([`super::STEP`]). The first update sees `step = 1`, the
//! update after `count` earlier ones sees `count + 1`. AXLearn's
//! `scale_by_schedule` evaluates its schedule at the incremented count the
//! same way; optax's `scale_by_schedule` evaluates at `count` (0-based), so
//! an optax schedule `f` corresponds to `step ↦ f(step - 1)` here. Every
//! formula below is written in `step`, and every warm-up reaches its peak
//! at `step = warmup_steps` (the `warmup_steps`-th update), where the next
//! phase starts from that same value.
//!
//! Fields left out of a config take the documented defaults, so
//! `{"kind":"warmup_cosine","total_steps":5000}` is a complete schedule.

use super::finite_f32;
use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

/// The learning rate as a function of the (1-based) step; see the module
/// docs for the convention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// `lr` at every step.
    Constant {
        /// The rate (default 1e-3).
        #[serde(default = "default_lr")]
        lr: f64,
    },
    /// Linear warm-up, then cosine decay (AXLearn's
    /// `cosine_with_linear_warmup`, begin value 0; optax's
    /// `warmup_cosine_decay_schedule` formula evaluated at `step` instead of
    /// `count`, so each update gets the rate optax gives the next one):
    /// `peak_lr * step / W` for `step < W`, then
    /// `final_lr + (peak_lr - final_lr) * (1 + cos(pi * min(step - W, T - W) / (T - W))) / 2`,
    /// which is `final_lr` from `step = T` on (`W = warmup_steps`,
    /// `T = total_steps`).
    WarmupCosine {
        /// The rate at the end of warm-up (default 1e-3).
        #[serde(default = "default_lr")]
        peak_lr: f64,
        /// Steps of linear warm-up `W` (default 100).
        #[serde(default = "default_warmup")]
        warmup_steps: u64,
        /// The step `T` at which the decay reaches `final_lr` (default 1000).
        #[serde(default = "default_total")]
        total_steps: u64,
        /// The floor of the decay (default 0).
        #[serde(default)]
        final_lr: f64,
    },
    /// Linear warm-up, then linear decay (AXLearn's
    /// `linear_schedule_with_warmup`): `peak_lr * step / W` for `step < W`,
    /// then `peak_lr + (final_lr - peak_lr) * min(step - W, T - W) / (T - W)`.
    WarmupLinear {
        /// The rate at the end of warm-up (default 1e-3).
        #[serde(default = "default_lr")]
        peak_lr: f64,
        /// Steps of linear warm-up `W` (default 100).
        #[serde(default = "default_warmup")]
        warmup_steps: u64,
        /// The step `T` at which the decay reaches `final_lr` (default 1000).
        #[serde(default = "default_total")]
        total_steps: u64,
        /// The rate from step `T` on (default 0).
        #[serde(default)]
        final_lr: f64,
    },
    /// Warm-up, stable, decay (WSD; Hu et al., "MiniCPM", 2024):
    /// `peak_lr * step / W` for `step < W`, `peak_lr` up to step `T - D`,
    /// then linear decay
    /// `peak_lr + (final_lr - peak_lr) * min(step - (T - D), D) / D` that
    /// reaches `final_lr` at step `T` (`D = decay_steps`).
    Wsd {
        /// The rate of the stable phase (default 1e-3).
        #[serde(default = "default_lr")]
        peak_lr: f64,
        /// Steps of linear warm-up `W` (default 100).
        #[serde(default = "default_warmup")]
        warmup_steps: u64,
        /// Steps of the final decay `D` (default 100; 0: no decay).
        #[serde(default = "default_warmup")]
        decay_steps: u64,
        /// The step `T` at which the decay reaches `final_lr` (default 1000).
        #[serde(default = "default_total")]
        total_steps: u64,
        /// The rate from step `T` on (default 0).
        #[serde(default)]
        final_lr: f64,
    },
    /// Linear warm-up, then inverse square root decay ("Attention Is All
    /// You Need", eq. 3; AXLearn's `schedule.adafactor` with the scale that
    /// peaks at `peak_lr`): `peak_lr * min(step / W, sqrt(W / step))`.
    InverseSqrt {
        /// The rate at step `W` (default 1e-3).
        #[serde(default = "default_lr")]
        peak_lr: f64,
        /// Steps of linear warm-up `W`, at least 1 (default 100).
        #[serde(default = "default_warmup")]
        warmup_steps: u64,
    },
    /// AXLearn's `polynomial`:
    /// `begin_lr + (end_lr - begin_lr) * clip((step - b) / (e - b), 0, 1) ^ power`
    /// (`b = begin_step`, `e = end_step`).
    Polynomial {
        /// The rate up to `begin_step` (default 1e-3).
        #[serde(default = "default_lr")]
        begin_lr: f64,
        /// The rate from `end_step` on (default 0).
        #[serde(default)]
        end_lr: f64,
        /// Where the change starts (default 0).
        #[serde(default)]
        begin_step: u64,
        /// Where it ends, after `begin_step` (default 1000).
        #[serde(default = "default_total")]
        end_step: u64,
        /// The exponent, positive (default 1: linear).
        #[serde(default = "default_power")]
        power: f64,
    },
    /// Schedules one after another (AXLearn's `schedule.segment_wise`):
    /// segment `i` covers `segment_steps[i]` steps (the last one all the
    /// rest) and sees the step counted from its own start, so its first
    /// step is its step 1: with `S` the steps before segment `i`, the rate
    /// at step `S + k` is `segments[i]` at step `k`.
    SegmentWise {
        /// The schedules, in order.
        segments: Vec<Schedule>,
        /// Lengths of all segments but the last (one fewer than
        /// `segments`), each at least 1.
        segment_steps: Vec<u64>,
    },
}

fn default_lr() -> f64 {
    1e-3
}

fn default_warmup() -> u64 {
    100
}

fn default_total() -> u64 {
    1000
}

fn default_power() -> f64 {
    1.0
}

impl Schedule {
    /// The rate for the update after `count` earlier ones (`count` is an
    /// f32 scalar), traced: the schedule at step `count + 1`.
    pub fn learning_rate(&self, count: &Tensor) -> Tensor {
        self.at_step(&(count + 1.0))
    }

    /// The rate at the 1-based `step` (f32 scalar).
    fn at_step(&self, step: &Tensor) -> Tensor {
        let warm_then = |peak: f64, warmup: u64, after: Tensor| {
            let ramp = step * (peak / warmup.max(1) as f64);
            step.less(&step.splat_like(warmup as f64))
                .select(&ramp, &after)
        };
        // clip((step - begin) / len, 0, 1)
        let fraction = |begin: u64, len: u64| {
            (&(step - begin as f64) * (1.0 / len.max(1) as f64)).clip(0.0, 1.0)
        };
        match self {
            Schedule::Constant { lr } => step.splat_like(*lr),
            &Schedule::WarmupCosine {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                let progress = fraction(warmup_steps, total_steps.saturating_sub(warmup_steps));
                let cosine = &(&(&progress * std::f64::consts::PI).cos() + 1.0) * 0.5;
                let decayed = &(&cosine * (peak_lr - final_lr)) + final_lr;
                warm_then(peak_lr, warmup_steps, decayed)
            }
            &Schedule::WarmupLinear {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                let progress = fraction(warmup_steps, total_steps.saturating_sub(warmup_steps));
                let decayed = &(&progress * (final_lr - peak_lr)) + peak_lr;
                warm_then(peak_lr, warmup_steps, decayed)
            }
            &Schedule::Wsd {
                peak_lr,
                warmup_steps,
                decay_steps,
                total_steps,
                final_lr,
            } => {
                let progress = fraction(total_steps.saturating_sub(decay_steps), decay_steps);
                let progress = if decay_steps == 0 {
                    progress.splat_like(0.0)
                } else {
                    progress
                };
                let decayed = &(&progress * (final_lr - peak_lr)) + peak_lr;
                warm_then(peak_lr, warmup_steps, decayed)
            }
            &Schedule::InverseSqrt {
                peak_lr,
                warmup_steps,
            } => {
                let w = warmup_steps as f64;
                let ramp = step * (1.0 / w);
                let decay = (step * (1.0 / w)).rsqrt();
                &ramp.minimum(&decay) * peak_lr
            }
            &Schedule::Polynomial {
                begin_lr,
                end_lr,
                begin_step,
                end_step,
                power,
            } => {
                let progress = fraction(begin_step, end_step.saturating_sub(begin_step));
                &(&progress.powf(power) * (end_lr - begin_lr)) + begin_lr
            }
            Schedule::SegmentWise {
                segments,
                segment_steps,
            } => {
                // From the last segment back: segment i applies while
                // step <= its end, else the later segments' value.
                let ends: Vec<u64> = segment_steps
                    .iter()
                    .scan(0u64, |end, n| {
                        *end += n;
                        Some(*end)
                    })
                    .collect();
                let starts: Vec<u64> = std::iter::once(0).chain(ends.iter().copied()).collect();
                let mut rate = segments[segments.len() - 1]
                    .at_step(&(step - starts[segments.len() - 1] as f64));
                for i in (0..segments.len() - 1).rev() {
                    let here = segments[i].at_step(&(step - starts[i] as f64));
                    rate = step
                        .less_equal(&step.splat_like(ends[i] as f64))
                        .select(&here, &rate);
                }
                rate
            }
        }
    }

    /// Checks values that cannot train; errors name the field under `path`
    /// (`learner.schedule`).
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let rate = |name: &str, v: f64| {
            if finite_f32(v) && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{path}.{name} must be a rate finite in f32 and >= 0, got {v}"
                ))
            }
        };
        let warmup_within = |warmup: u64, total: u64| {
            if warmup > total {
                Err(format!(
                    "{path}: warmup_steps {warmup} exceed total_steps {total}"
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Schedule::Constant { lr } => rate("lr", *lr),
            Schedule::WarmupCosine {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            }
            | Schedule::WarmupLinear {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                warmup_within(*warmup_steps, *total_steps)?;
                rate("peak_lr", *peak_lr)?;
                rate("final_lr", *final_lr)
            }
            Schedule::Wsd {
                peak_lr,
                warmup_steps,
                decay_steps,
                total_steps,
                final_lr,
            } => {
                if warmup_steps + decay_steps > *total_steps {
                    return Err(format!(
                        "{path}: warmup_steps {warmup_steps} + decay_steps {decay_steps} exceed total_steps {total_steps}"
                    ));
                }
                rate("peak_lr", *peak_lr)?;
                rate("final_lr", *final_lr)
            }
            Schedule::InverseSqrt {
                peak_lr,
                warmup_steps,
            } => {
                if *warmup_steps == 0 {
                    return Err(format!("{path}.warmup_steps must be at least 1, got 0"));
                }
                rate("peak_lr", *peak_lr)
            }
            Schedule::Polynomial {
                begin_lr,
                end_lr,
                begin_step,
                end_step,
                power,
            } => {
                if end_step <= begin_step {
                    return Err(format!(
                        "{path}: end_step {end_step} must exceed begin_step {begin_step}"
                    ));
                }
                if !(finite_f32(*power) && *power > 0.0) {
                    return Err(format!(
                        "{path}.power must be finite in f32 and > 0, got {power}"
                    ));
                }
                rate("begin_lr", *begin_lr)?;
                rate("end_lr", *end_lr)
            }
            Schedule::SegmentWise {
                segments,
                segment_steps,
            } => {
                if segments.is_empty() {
                    return Err(format!("{path}.segments: needs at least one segment"));
                }
                if segment_steps.len() + 1 != segments.len() {
                    return Err(format!(
                        "{path}: {} segments need {} segment_steps, got {}",
                        segments.len(),
                        segments.len().saturating_sub(1),
                        segment_steps.len()
                    ));
                }
                if let Some(i) = segment_steps.iter().position(|&n| n == 0) {
                    return Err(format!(
                        "{path}.segment_steps.{i} must be at least 1, got 0"
                    ));
                }
                segments
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, s)| s.validate(&format!("{path}.segments.{i}")))
            }
        }
    }
}
