//! Synthetic tasks, one per model kind, for training and testing without
//! data: each is a pure function of (seed, split, index) and is shaped by
//! the model's inputs, so a changed config (vocabulary, image size,
//! feature count) changes the task with it.

use super::mix::mix;
use super::{DataError, HostArray, HostBatch, LanguageModelSource, Source, Split, Synthetic};
use axle_modules::{FEATURES, IMAGE, INPUT_IDS, InputSpec, LABELS, TARGETS};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// A synthetic task, named in an experiment's input config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyntheticTask {
    /// Token sequences following one of four affine rules ([`Synthetic`]),
    /// for causal LMs: inputs `input_ids`, `target_labels`.
    AffineTokens,
    /// Sequence classification: random tokens from `classes..vocab` with
    /// one marker token `c < classes` at a random position; the label is
    /// `c`. Inputs `input_ids` `[batch, seq]` and `labels` `[batch]`
    /// (whose valid range gives the number of classes).
    MarkerClassification,
    /// Image classification: a sinusoidal grating of period 4 pixels and
    /// random phase, horizontal, vertical, diagonal or anti-diagonal (the
    /// label, 0..4), plus Gaussian noise of standard deviation `noise`.
    /// Inputs `image` `[batch, height, width, channels]` and `labels`.
    OrientedStripes {
        /// Standard deviation of the pixel noise (the grating has amplitude 1).
        noise: f64,
    },
    /// Regression: features `x ~ N(0, I)`, target
    /// `tanh(2 u.x / sqrt(d)) + v.x / sqrt(d)` for fixed Gaussian `u`, `v`
    /// drawn from the seed, plus Gaussian noise of standard deviation
    /// `noise`. Inputs `features` `[batch, d]` and `targets` `[batch]`.
    TeacherRegression {
        /// Standard deviation of the target noise.
        noise: f64,
    },
}

impl SyntheticTask {
    /// The task's name (its `kind`).
    pub fn name(&self) -> &'static str {
        match self {
            SyntheticTask::AffineTokens => "affine_tokens",
            SyntheticTask::MarkerClassification => "marker_classification",
            SyntheticTask::OrientedStripes { .. } => "oriented_stripes",
            SyntheticTask::TeacherRegression { .. } => "teacher_regression",
        }
    }

    /// The task as a source for a model with inputs `inputs`; `seed` picks
    /// the task's hidden parameters. Errors name the input the task needs.
    pub fn source(&self, inputs: &[InputSpec], seed: u64) -> Result<Box<dyn Source>, DataError> {
        let find = |name: &str| {
            inputs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| DataError::Task {
                    task: self.name().into(),
                    message: format!(
                        "needs an input `{name}`; the model has {}",
                        inputs
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
        };
        let upper = |spec: &InputSpec| spec.valid.as_ref().map_or(0, |v| v.end.max(0) as u64);
        Ok(match self {
            SyntheticTask::AffineTokens => {
                let ids = find(INPUT_IDS)?;
                Box::new(LanguageModelSource::new(
                    Box::new(Synthetic::new(upper(ids) as usize, seed)),
                    ids.shape[1],
                ))
            }
            SyntheticTask::MarkerClassification => {
                let ids = find(INPUT_IDS)?;
                let classes = upper(find(LABELS)?);
                let vocab = upper(ids);
                if classes < 2 || vocab <= classes {
                    return Err(DataError::Task {
                        task: self.name().into(),
                        message: format!(
                            "needs at least 2 classes and a vocabulary larger than the classes, got {classes} classes and {vocab} tokens"
                        ),
                    });
                }
                Box::new(Markers {
                    seq: ids.shape[1],
                    vocab,
                    classes,
                    seed,
                })
            }
            SyntheticTask::OrientedStripes { noise } => {
                let image = find(IMAGE)?;
                if image.shape.len() != 4 || upper(find(LABELS)?) < 4 {
                    return Err(DataError::Task {
                        task: self.name().into(),
                        message: format!(
                            "needs `image` [batch, height, width, channels] (got {:?}) and at least 4 classes",
                            image.shape
                        ),
                    });
                }
                Box::new(Stripes {
                    dims: image.shape[1..].to_vec(),
                    noise: *noise,
                    seed,
                })
            }
            SyntheticTask::TeacherRegression { noise } => {
                let features = find(FEATURES)?;
                find(TARGETS)?;
                let d = features.shape[1];
                let weights = |salt: u64| -> Vec<f64> {
                    (0..d)
                        .map(|i| normal(mix(seed ^ salt ^ mix(i as u64))))
                        .collect()
                };
                Box::new(Teacher {
                    u: weights(0x75),
                    v: weights(0x76),
                    noise: *noise,
                    seed,
                })
            }
        })
    }
}

/// A standard normal draw from a 64-bit hash (Box-Muller on its two halves).
fn normal(h: u64) -> f64 {
    let u1 = ((h >> 32) as f64 + 0.5) / 4_294_967_296.0;
    let u2 = ((h & 0xffff_ffff) as f64) / 4_294_967_296.0;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The hash of example `index` of `split` under `seed`.
fn example_hash(seed: u64, split: Split, index: u64) -> u64 {
    let salt = match split {
        Split::Train => 0,
        Split::Eval => 1 << 63,
    };
    mix(seed ^ mix(index ^ salt))
}

fn label(class: u64) -> HostArray {
    HostArray::I32(ArrayD::from_elem(IxDyn(&[]), class as i32))
}

struct Markers {
    seq: usize,
    vocab: u64,
    classes: u64,
    seed: u64,
}

impl Source for Markers {
    fn len(&self, _split: Split) -> Option<u64> {
        None
    }

    fn example(&self, split: Split, index: u64) -> HostBatch {
        let h = example_hash(self.seed, split, index);
        let class = h % self.classes;
        let at = (mix(h ^ 1) % self.seq as u64) as usize;
        let noise = self.vocab - self.classes;
        let tokens: Vec<i32> = (0..self.seq)
            .map(|i| {
                if i == at {
                    class as i32
                } else {
                    (self.classes + mix(h ^ mix(i as u64 + 2)) % noise) as i32
                }
            })
            .collect();
        HostBatch::from([
            (
                INPUT_IDS.to_string(),
                HostArray::I32(ArrayD::from_shape_vec(IxDyn(&[self.seq]), tokens).expect("seq")),
            ),
            (LABELS.to_string(), label(class)),
        ])
    }
}

struct Stripes {
    dims: Vec<usize>,
    noise: f64,
    seed: u64,
}

impl Source for Stripes {
    fn len(&self, _split: Split) -> Option<u64> {
        None
    }

    fn example(&self, split: Split, index: u64) -> HostBatch {
        let h = example_hash(self.seed, split, index);
        let class = h % 4;
        let (dy, dx) = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, -1.0)][class as usize];
        let phase = (mix(h ^ 1) % 1024) as f64 / 1024.0 * std::f64::consts::TAU;
        let image = ArrayD::from_shape_fn(IxDyn(&self.dims), |ix| {
            let (y, x) = (ix[0] as f64, ix[1] as f64);
            let wave = (std::f64::consts::TAU * (dy * y + dx * x) / 4.0 + phase).sin();
            let pixel = (ix[0] * self.dims[1] + ix[1]) * self.dims[2] + ix[2];
            (wave + self.noise * normal(mix(h ^ mix(pixel as u64 + 2)))) as f32
        });
        HostBatch::from([
            (IMAGE.to_string(), HostArray::F32(image)),
            (LABELS.to_string(), label(class)),
        ])
    }
}

struct Teacher {
    u: Vec<f64>,
    v: Vec<f64>,
    noise: f64,
    seed: u64,
}

impl Source for Teacher {
    fn len(&self, _split: Split) -> Option<u64> {
        None
    }

    fn example(&self, split: Split, index: u64) -> HostBatch {
        let h = example_hash(self.seed, split, index);
        let d = self.u.len();
        let x: Vec<f64> = (0..d).map(|i| normal(mix(h ^ mix(i as u64 + 2)))).collect();
        let dot = |w: &[f64]| w.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt();
        let y = (2.0 * dot(&self.u)).tanh() + dot(&self.v) + self.noise * normal(mix(h ^ 1));
        HostBatch::from([
            (
                FEATURES.to_string(),
                HostArray::F32(
                    ArrayD::from_shape_vec(IxDyn(&[d]), x.iter().map(|&v| v as f32).collect())
                        .expect("d"),
                ),
            ),
            (
                TARGETS.to_string(),
                HostArray::F32(ArrayD::from_elem(IxDyn(&[]), y as f32)),
            ),
        ])
    }
}
