//! The learner: turns gradients into a parameter update inside the compiled
//! step, as AXLearn's learner does: global-norm clipping, a learning-rate
//! schedule and an optimizer (SGD with momentum or AdamW with decoupled
//! weight decay), with optimizer state shaped (and so sharded) like the
//! parameters.

mod optimizer;
mod schedule;

pub use optimizer::OptimizerConfig;
pub use schedule::Schedule;

use axle_compiler::{DType, FunctionBuilder, Tensor};
use axle_modules::{ParamSpec, ParamTree};
use serde::{Deserialize, Serialize};

/// Name of the optimizer's step counter (i32 scalar: updates applied so far).
pub const STEP: &str = "opt/step";

/// How gradients become updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnerConfig {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The learning rate as a function of the step.
    pub schedule: Schedule,
    /// Rescale gradients whose global L2 norm exceeds this (no clipping if `None`).
    pub max_grad_norm: Option<f64>,
    /// Gradient accumulation: split each batch into this many equal
    /// micro-batches, average their gradients, apply one update.
    #[serde(default = "one")]
    pub micro_batches: usize,
    /// Element type of the forward and backward computation. With `bf16`,
    /// parameters stay f32 (the master weights the update applies to) and
    /// are cast to bf16 for the step; norms, softmax and the loss still run
    /// in f32 (the layers upcast there).
    #[serde(default)]
    pub compute_dtype: ComputeDType,
}

/// The element type a step computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeDType {
    /// Full precision.
    #[default]
    F32,
    /// bfloat16 compute with f32 master weights (mixed precision).
    Bf16,
}

impl ComputeDType {
    /// The compiler's dtype.
    pub fn dtype(self) -> DType {
        match self {
            ComputeDType::F32 => DType::F32,
            ComputeDType::Bf16 => DType::BF16,
        }
    }
}

fn one() -> usize {
    1
}

impl Default for LearnerConfig {
    /// The learner of the reference model (docs/design.md): AdamW lr 1e-3, betas
    /// 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices, global-norm clip 1.0.
    fn default() -> Self {
        LearnerConfig {
            optimizer: OptimizerConfig::AdamW {
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
                weight_decay: 0.1,
            },
            schedule: Schedule::Constant { lr: 1e-3 },
            max_grad_norm: Some(1.0),
            micro_batches: 1,
            compute_dtype: ComputeDType::F32,
        }
    }
}

impl LearnerConfig {
    /// Checks values that are well typed but cannot train: zero
    /// micro-batches, a negative or non-finite learning rate, a warm-up
    /// longer than the schedule. The error names the `learner.` path.
    pub fn validate(&self) -> Result<(), String> {
        if self.micro_batches == 0 {
            return Err("learner.micro_batches must be at least 1, got 0".into());
        }
        let rates: Vec<(&str, f64)> = match self.schedule {
            Schedule::Constant { lr } => vec![("lr", lr)],
            Schedule::WarmupCosine {
                peak_lr,
                final_lr,
                warmup_steps,
                total_steps,
            } => {
                if warmup_steps > total_steps {
                    return Err(format!(
                        "learner.schedule: warmup_steps {warmup_steps} exceed total_steps {total_steps}"
                    ));
                }
                vec![("peak_lr", peak_lr), ("final_lr", final_lr)]
            }
        };
        match rates.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            Some((name, v)) => Err(format!(
                "learner.schedule.{name} must be a finite rate >= 0, got {v}"
            )),
            None => Ok(()),
        }
    }

    /// This learner with a constant learning rate `lr`.
    pub fn with_lr(self, lr: f64) -> LearnerConfig {
        LearnerConfig {
            schedule: Schedule::Constant { lr },
            ..self
        }
    }
}

/// One parameter as the learner sees it: its traced value, gradient and
/// whether weight decay applies to it.
pub struct ParamUpdate<'a> {
    /// The parameter's path.
    pub path: &'a str,
    /// Its current value.
    pub value: &'a Tensor,
    /// Its gradient.
    pub grad: &'a Tensor,
    /// Whether decoupled weight decay applies.
    pub decay: bool,
}

/// What one learner step produces, all traced.
pub struct Update {
    /// New parameter values, by path.
    pub params: ParamTree<Tensor>,
    /// New optimizer state, by state name (including [`STEP`]).
    pub state: ParamTree<Tensor>,
    /// The learning rate used.
    pub learning_rate: Tensor,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: Tensor,
}

impl LearnerConfig {
    /// Names and shapes of the optimizer state for parameters `specs`,
    /// sorted by name; every entry is f32 except [`STEP`] (i32 scalar).
    /// State of a parameter has its shape, so it shards like it.
    pub fn state_shapes(&self, specs: &ParamTree<ParamSpec>) -> ParamTree<Vec<usize>> {
        let mut shapes: ParamTree<Vec<usize>> = self
            .optimizer
            .slots()
            .iter()
            .flat_map(|slot| {
                specs
                    .iter()
                    .map(move |(path, spec)| (slot_name(slot, path), spec.shape.clone()))
            })
            .collect();
        shapes.insert(STEP.to_string(), Vec::new());
        shapes
    }

    /// Declares the optimizer state as function parameters named as in
    /// [`LearnerConfig::state_shapes`].
    pub fn declare_state(
        &self,
        builder: &FunctionBuilder,
        specs: &ParamTree<ParamSpec>,
    ) -> ParamTree<Tensor> {
        self.state_shapes(specs)
            .into_iter()
            .map(|(name, shape)| {
                let dtype = if name == STEP { DType::I32 } else { DType::F32 };
                let t = builder.param(&name, dtype, &shape);
                (name, t)
            })
            .collect()
    }

    /// One update: clip, schedule, optimizer. `state` is what
    /// [`LearnerConfig::declare_state`] declared (or the previous update's).
    pub fn apply(&self, params: &[ParamUpdate<'_>], state: &ParamTree<Tensor>) -> Update {
        let step = &state[STEP];
        let grad_norm = params
            .iter()
            .map(|p| p.grad.square().sum_all())
            .reduce(|a, b| &a + &b)
            .map(|s| s.sqrt())
            .unwrap_or_else(|| step.builder().scalar(0.0, DType::F32));
        let scale = match self.max_grad_norm {
            Some(max) => {
                let tiny = grad_norm.splat_like(f64::from(f32::MIN_POSITIVE));
                let clipped = &grad_norm.splat_like(max) / &grad_norm.maximum(&tiny);
                clipped.minimum(&grad_norm.splat_like(1.0))
            }
            None => grad_norm.splat_like(1.0),
        };
        let count = step.convert(DType::F32);
        let learning_rate = self.schedule.learning_rate(&count);
        let mut new_params = ParamTree::new();
        let mut new_state = ParamTree::new();
        for p in params {
            let grad = p.grad * &scale;
            let slots: Vec<(String, &Tensor)> = self
                .optimizer
                .slots()
                .iter()
                .map(|slot| {
                    let name = slot_name(slot, p.path);
                    let t = &state[&name];
                    (name, t)
                })
                .collect();
            let slot_values: Vec<&Tensor> = slots.iter().map(|(_, t)| *t).collect();
            let (value, updated) = self.optimizer.update(
                p.value,
                &grad,
                &slot_values,
                &count,
                &learning_rate,
                p.decay,
            );
            new_params.insert(p.path.to_string(), value);
            for ((name, _), t) in slots.into_iter().zip(updated) {
                new_state.insert(name, t);
            }
        }
        new_state.insert(STEP.to_string(), step + &step.splat_like(1.0));
        Update {
            params: new_params,
            state: new_state,
            learning_rate,
            grad_norm,
        }
    }
}

/// Whether AXLearn-style decoupled weight decay applies to a parameter:
/// matrices only (at least two dimensions besides stacking axes such as the
/// layer axis of a scanned stack), never norms' scales or biases.
pub fn decays(spec: &ParamSpec) -> bool {
    spec.shape.len() - spec.fan_axes.batch.len() >= 2
}

fn slot_name(slot: &str, path: &str) -> String {
    format!("opt/{slot}/{path}")
}

/// The parameter path an optimizer-state entry belongs to (`opt/mu/<path>`
/// → `<path>`), `None` for state of no parameter (the step counter), so
/// that state is sharded like its parameter.
pub fn state_param(name: &str) -> Option<&str> {
    if name == STEP {
        return None;
    }
    name.strip_prefix("opt/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path)
}
