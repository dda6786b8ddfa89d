//! A step's scalar results (loss, learning rate, flags, summaries) packed into one f32 vector.
//!
//! Each result of a compiled program is its own device buffer, and XLA's TPU compiler pads
//! every scalar buffer to 512 bytes: a train step returning its dozen scalars separately holds
//! 6 KiB more at its peak than one returning them as one vector, and the host fetches one
//! buffer per step instead of a dozen. A metric that is a constant of the program (the learning
//! rate of a constant schedule, the skip flag of a learner that never skips) is not computed on
//! the device at all: the layout keeps its value.

use axle_compiler::{DType, Tensor};

/// Name of the packed result: `f32[n]`, the device-computed metrics of a [`PackedMetrics`].
pub const METRICS: &str = "metrics";

/// Where each metric is, in order: its name, and either its shape in the packed vector (`[]`
/// for a scalar, `[n]` for a per-layer vector of a scanned stack) or its constant value.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMetrics {
    entries: Vec<(String, Slot)>,
}

/// Where one metric's value is.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    /// In the packed vector, with this shape.
    Device(Vec<usize>),
    /// A constant of the program, known while tracing.
    Host(f32),
}

impl PackedMetrics {
    /// The layout of `metrics` (f32 scalars or vectors, by name) and the traced `f32[n]` vector
    /// holding those that are not splat constants ([`Tensor::splat_constant`]), in order.
    ///
    /// # Panics
    /// If `metrics` is empty, or a metric is not an f32 scalar or vector (the step builders
    /// make them so: `scalar_summaries` converts and checks summaries).
    pub fn pack(metrics: &[(&str, &Tensor)]) -> (PackedMetrics, Tensor) {
        let builder = metrics.first().expect("at least one metric").1.builder();
        let mut entries = Vec::new();
        let mut flat = Vec::new();
        for (name, t) in metrics {
            assert!(
                t.dtype() == DType::F32 && t.rank() <= 1,
                "metric `{name}` is {:?} {:?}, not an f32 scalar or vector",
                t.dtype(),
                t.dims()
            );
            let slot = match t.splat_constant() {
                Some(value) if t.rank() == 0 => Slot::Host(value as f32),
                _ => {
                    flat.push(t.reshape(&[t.numel()]));
                    Slot::Device(t.dims().to_vec())
                }
            };
            entries.push((name.to_string(), slot));
        }
        let packed = match flat.len() {
            0 => builder.zeros(DType::F32, &[0]),
            _ => Tensor::concatenate(&flat.iter().collect::<Vec<_>>(), 0),
        };
        (PackedMetrics { entries }, packed)
    }

    /// Number of f32 elements of the packed vector.
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, slot)| match slot {
                Slot::Device(dims) => dims.iter().product(),
                Slot::Host(_) => 0,
            })
            .sum()
    }

    /// Whether the packed vector is empty (every metric a constant).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The metrics' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// One `(name, value)` per metric element, in order: a scalar under its name, element `i` of
    /// a vector as `name/i`; device values from `values` (the packed vector), constants from the
    /// layout. `None` if `values` is not [`Self::len`] long.
    pub fn unpack(&self, values: &[f32]) -> Option<Vec<(String, f32)>> {
        if values.len() != self.len() {
            return None;
        }
        let mut out = Vec::with_capacity(self.entries.len() + values.len());
        let mut rest = values;
        for (name, slot) in &self.entries {
            match slot {
                Slot::Host(value) => out.push((name.clone(), *value)),
                Slot::Device(dims) if dims.is_empty() => {
                    out.push((name.clone(), rest[0]));
                    rest = &rest[1..];
                }
                Slot::Device(dims) => {
                    let (own, tail) = rest.split_at(dims.iter().product());
                    rest = tail;
                    out.extend(
                        own.iter()
                            .enumerate()
                            .map(|(i, v)| (format!("{name}/{i}"), *v)),
                    );
                }
            }
        }
        Some(out)
    }
}
