//! The learner: turns gradients into a parameter update inside the compiled
//! step, as AXLearn's learner does: skipping, global-norm clipping, a learning-rate
//! schedule ([`Schedule`]: constant, warm-up + cosine or linear decay, WSD,
//! inverse square root, polynomial, segment-wise) and an optimizer
//! ([`OptimizerConfig`]: SGD with heavy-ball or Nesterov momentum, AdamW,
//! Lion, Adafactor), with optimizer state sharded like the parameters.
//!
//! Parameter groups ([`ParamGroup`]) scale the rate and set weight decay by
//! path glob; skip-and-clip ([`LearnerConfig::drop_grad_norm`]) leaves a
//! step with a non-finite or too large gradient norm without effect.
//!
//! Step convention: schedules and bias corrections see the 1-based step
//! `count + 1` (AXLearn's), where `count` ([`STEP`]) is the number of
//! updates applied before; see [`Schedule`].

mod optimizer;
mod schedule;

pub use optimizer::{OptimizerConfig, Slot};
pub use schedule::Schedule;

use axle_compiler::{DType, FunctionBuilder, Tensor};
use axle_modules::{ParamSpec, ParamTree};
use axle_partition::glob_match;
use serde::{Deserialize, Serialize};

/// Whether a hyperparameter stays finite once traced into the step as an f32 constant
/// (`|v| <= f32::MAX`): 1e39 is finite as an f64 and infinite in the step.
pub(crate) fn finite_f32(v: f64) -> bool {
    v.is_finite() && v.abs() <= f64::from(f32::MAX)
}

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
    /// Skip a step whose global gradient norm is not below this, or is not
    /// finite (AXLearn's `skip_and_clip_by_global_norm` with `drop_norm`):
    /// parameters and optimizer state, step counter included, keep their
    /// values bit for bit, and the step reports `skipped`. Default `None`:
    /// no step is skipped.
    #[serde(default)]
    pub drop_grad_norm: Option<f64>,
    /// Settings of parameter groups by path (the first group whose glob
    /// matches a parameter applies to it; default none: every parameter
    /// at the scheduled rate, decayed if it is a matrix).
    #[serde(default)]
    pub param_groups: Vec<ParamGroup>,
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

fn unit_scale() -> f64 {
    1.0
}

/// Learner settings for the parameters whose path matches a glob, as
/// optax's `multi_transform` / masks and AXLearn's per-parameter learner
/// rules set them: e.g. `{"paths":"*embedding*","weight_decay":false}`
/// keeps decay off the embeddings, `{"paths":"*norm*","lr_scale":0.1}`
/// trains norms at a tenth of the rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamGroup {
    /// Glob over parameter paths: `*` matches any run of characters,
    /// `/` included; the whole path must match.
    pub paths: String,
    /// Multiplier of the scheduled learning rate (default 1).
    #[serde(default = "unit_scale")]
    pub lr_scale: f64,
    /// Whether decoupled weight decay applies (default: the learner's rule,
    /// matrices only; see [`decays`]).
    #[serde(default)]
    pub weight_decay: Option<bool>,
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
                eps_root: 0.0,
                weight_decay: 0.1,
                bias_correction: true,
            },
            schedule: Schedule::Constant { lr: 1e-3 },
            max_grad_norm: Some(1.0),
            drop_grad_norm: None,
            param_groups: Vec::new(),
            micro_batches: 1,
            compute_dtype: ComputeDType::F32,
        }
    }
}

impl LearnerConfig {
    /// Checks values that are well typed but cannot train: zero
    /// micro-batches, a negative or non-finite rate or clipping norm, a
    /// warm-up longer than the schedule, decays outside `[0, 1)`. The error
    /// names the `learner.` path.
    pub fn validate(&self) -> Result<(), String> {
        if self.micro_batches == 0 {
            return Err("learner.micro_batches must be at least 1, got 0".into());
        }
        for (name, norm) in [
            ("max_grad_norm", self.max_grad_norm),
            ("drop_grad_norm", self.drop_grad_norm),
        ] {
            if let Some(v) = norm.filter(|v| !(finite_f32(*v) && *v > 0.0)) {
                return Err(format!(
                    "learner.{name} must be finite in f32 and > 0, got {v}"
                ));
            }
        }
        for (i, group) in self.param_groups.iter().enumerate() {
            if !(finite_f32(group.lr_scale) && group.lr_scale >= 0.0) {
                return Err(format!(
                    "learner.param_groups.{i}.lr_scale must be finite in f32 and >= 0, got {}",
                    group.lr_scale
                ));
            }
        }
        self.schedule.validate("learner.schedule")?;
        self.optimizer.validate("learner.optimizer")
    }

    /// The first parameter group whose glob matches `path`.
    pub fn group(&self, path: &str) -> Option<&ParamGroup> {
        self.param_groups
            .iter()
            .find(|g| glob_match(&g.paths, path))
    }

    /// Checks that every parameter group matches at least one of `paths`
    /// (a glob that matches nothing is a typo); the error names it.
    pub fn check_groups<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), String> {
        for (i, group) in self.param_groups.iter().enumerate() {
            if !paths
                .clone()
                .into_iter()
                .any(|p| glob_match(&group.paths, p))
            {
                return Err(format!(
                    "learner.param_groups.{i}.paths `{}` matches no parameter",
                    group.paths
                ));
            }
        }
        Ok(())
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
/// whether weight decay applies to it unless a parameter group says
/// otherwise.
pub struct ParamUpdate<'a> {
    /// The parameter's path.
    pub path: &'a str,
    /// Its current value.
    pub value: &'a Tensor,
    /// Its gradient.
    pub grad: &'a Tensor,
    /// Whether decoupled weight decay applies (by default; a matching
    /// [`ParamGroup`] overrides it).
    pub decay: bool,
}

/// What one learner step produces, all traced.
pub struct Update {
    /// New parameter values, by path.
    pub params: ParamTree<Tensor>,
    /// New optimizer state, by state name (including [`STEP`]).
    pub state: ParamTree<Tensor>,
    /// The scheduled learning rate (before any group's `lr_scale`).
    pub learning_rate: Tensor,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: Tensor,
    /// 1 if the step was skipped (see [`LearnerConfig::drop_grad_norm`]),
    /// else 0 (f32 scalar).
    pub skipped: Tensor,
}

/// One optimizer-state entry: its shape and the parameter it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSpec {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Element type: f32, i32 for [`STEP`].
    pub dtype: DType,
    /// The parameter's path and, for each state dimension, the parameter
    /// dimension it follows (so it is sharded as that dimension is); `None`
    /// for state of no parameter (the step counter), which is replicated.
    pub follows: Option<(String, Vec<usize>)>,
}

impl LearnerConfig {
    /// The optimizer state for parameters `specs`, by name
    /// (`opt/<slot>/<param path>`, and [`STEP`]).
    pub fn state_specs(&self, specs: &ParamTree<ParamSpec>) -> ParamTree<StateSpec> {
        let mut state: ParamTree<StateSpec> = specs
            .iter()
            .flat_map(|(path, spec)| {
                self.optimizer
                    .slots(&spec.shape)
                    .into_iter()
                    .map(move |slot| {
                        let state = StateSpec {
                            shape: slot.shape(&spec.shape),
                            dtype: DType::F32,
                            follows: Some((path.clone(), slot.dims)),
                        };
                        (slot_name(slot.name, path), state)
                    })
            })
            .collect();
        state.insert(
            STEP.to_string(),
            StateSpec {
                shape: Vec::new(),
                dtype: DType::I32,
                follows: None,
            },
        );
        state
    }

    /// Declares the optimizer state as function parameters named as in
    /// [`LearnerConfig::state_specs`].
    pub fn declare_state(
        &self,
        builder: &FunctionBuilder,
        specs: &ParamTree<ParamSpec>,
    ) -> ParamTree<Tensor> {
        self.state_specs(specs)
            .into_iter()
            .map(|(name, spec)| {
                let t = builder.param(&name, spec.dtype, &spec.shape);
                (name, t)
            })
            .collect()
    }

    /// One update: skip, clip, schedule, parameter groups, optimizer. `state` is what
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
                .slots(p.value.dims())
                .iter()
                .map(|slot| {
                    let name = slot_name(slot.name, p.path);
                    let t = &state[&name];
                    (name, t)
                })
                .collect();
            let slot_values: Vec<&Tensor> = slots.iter().map(|(_, t)| *t).collect();
            let group = self.group(p.path);
            let lr = match group.map(|g| g.lr_scale) {
                Some(scale) if scale != 1.0 => &learning_rate * scale,
                _ => learning_rate.clone(),
            };
            let decay = group.and_then(|g| g.weight_decay).unwrap_or(p.decay);
            let (value, updated) =
                self.optimizer
                    .update(p.value, &grad, &slot_values, &count, &lr, decay);
            new_params.insert(p.path.to_string(), value);
            for ((name, _), t) in slots.into_iter().zip(updated) {
                new_state.insert(name, t);
            }
        }
        new_state.insert(STEP.to_string(), step + &step.splat_like(1.0));
        let zero = grad_norm.splat_like(0.0);
        let Some(drop) = self.drop_grad_norm else {
            return Update {
                params: new_params,
                state: new_state,
                learning_rate,
                grad_norm,
                skipped: zero,
            };
        };
        // `norm < drop` is false for NaN and infinite norms too.
        let apply = grad_norm.less(&grad_norm.splat_like(drop));
        let keep_old = |new: ParamTree<Tensor>, old: &dyn Fn(&str) -> Tensor| {
            new.into_iter()
                .map(|(name, t)| {
                    let kept = apply.select(&t, &old(&name));
                    (name, kept)
                })
                .collect()
        };
        let values: ParamTree<&Tensor> = params
            .iter()
            .map(|p| (p.path.to_string(), p.value))
            .collect();
        Update {
            params: keep_old(new_params, &|name| values[name].clone()),
            state: keep_old(new_state, &|name| state[name].clone()),
            learning_rate,
            skipped: apply.select(&zero, &zero.splat_like(1.0)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(learner: LearnerConfig) -> String {
        learner.validate().unwrap_err()
    }

    #[test]
    fn validation_names_the_learner_path_of_each_bad_value() {
        let base = LearnerConfig::default;
        let optimizer = |json: &str| LearnerConfig {
            optimizer: serde_json::from_str(json).unwrap(),
            ..base()
        };
        let schedule = |json: &str| LearnerConfig {
            schedule: serde_json::from_str(json).unwrap(),
            ..base()
        };
        let cases = [
            (
                LearnerConfig {
                    drop_grad_norm: Some(0.0),
                    ..base()
                },
                "learner.drop_grad_norm",
            ),
            (
                LearnerConfig {
                    param_groups: vec![ParamGroup {
                        paths: "*".into(),
                        lr_scale: -1.0,
                        weight_decay: None,
                    }],
                    ..base()
                },
                "learner.param_groups.0.lr_scale",
            ),
            (
                optimizer(r#"{"kind":"sgd","momentum":1.0}"#),
                "learner.optimizer.momentum",
            ),
            (
                optimizer(r#"{"kind":"adam_w","eps_root":-1}"#),
                "learner.optimizer.eps_root",
            ),
            (
                optimizer(r#"{"kind":"lion","beta2":1.5}"#),
                "learner.optimizer.beta2",
            ),
            (
                optimizer(r#"{"kind":"adafactor","clipping_threshold":0}"#),
                "learner.optimizer.clipping_threshold",
            ),
            (
                schedule(r#"{"kind":"inverse_sqrt","warmup_steps":0}"#),
                "learner.schedule.warmup_steps",
            ),
            // Finite as f64, infinite as the step's f32 constants.
            (
                schedule(r#"{"kind":"constant","lr":1e39}"#),
                "learner.schedule.lr",
            ),
            (
                optimizer(r#"{"kind":"adafactor","eps":1e39}"#),
                "learner.optimizer.eps",
            ),
            (
                LearnerConfig {
                    max_grad_norm: Some(1e39),
                    ..base()
                },
                "learner.max_grad_norm",
            ),
            (
                schedule(r#"{"kind":"polynomial","begin_step":5,"end_step":5}"#),
                "learner.schedule: end_step",
            ),
            (
                schedule(r#"{"kind":"wsd","warmup_steps":10,"decay_steps":10,"total_steps":15}"#),
                "learner.schedule: warmup_steps 10 + decay_steps 10",
            ),
            (
                schedule(
                    r#"{"kind":"segment_wise","segments":[{"kind":"constant"},{"kind":"constant","lr":-1}],"segment_steps":[3]}"#,
                ),
                "learner.schedule.segments.1.lr",
            ),
            (
                schedule(
                    r#"{"kind":"segment_wise","segments":[{"kind":"constant"}],"segment_steps":[3]}"#,
                ),
                "learner.schedule: 1 segments need 0 segment_steps",
            ),
        ];
        for (learner, want) in cases {
            let got = error(learner);
            assert!(got.starts_with(want), "{got} (want {want})");
        }
    }

    #[test]
    fn adafactor_factors_the_two_largest_dimensions() {
        let adafactor: OptimizerConfig =
            serde_json::from_str(r#"{"kind":"adafactor","min_dim_size_to_factor":2}"#).unwrap();
        let slots = |shape: &[usize]| -> Vec<(&str, Vec<usize>)> {
            adafactor
                .slots(shape)
                .into_iter()
                .map(|s| (s.name, s.shape(shape)))
                .collect()
        };
        // Largest dimension 0 (c), second largest 2 (r).
        assert_eq!(
            slots(&[5, 2, 3]),
            vec![("v_row", vec![2, 3]), ("v_col", vec![5, 2])]
        );
        // On equal sizes the later dimension counts as larger.
        assert_eq!(slots(&[4, 4]), vec![("v_row", vec![4]), ("v_col", vec![4])]);
        assert_eq!(adafactor.slots(&[4, 4])[0].dims, vec![0]);
        assert_eq!(slots(&[7]), vec![("v", vec![7])]);
        // Second-largest dimension below the threshold: not factored.
        assert_eq!(slots(&[1, 9]), vec![("v", vec![1, 9])]);
    }
}
