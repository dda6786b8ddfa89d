//! A step's scalar results (loss, learning rate, flags, summaries) packed into one f32 vector.
//!
//! Each result of a compiled program is its own device buffer, and XLA's TPU compiler pads
//! every scalar buffer to 512 bytes: a train step returning its dozen scalars separately holds
//! 6 KiB more at its peak than one returning them as one vector, and the host fetches one
//! buffer per step instead of a dozen.

use axle_compiler::{DType, Tensor};

/// Name of the packed result: `f32[n]`, the entries of a [`PackedMetrics`] in order.
pub const METRICS: &str = "metrics";

/// Where each metric sits in the packed vector: its name and shape (`[]` for a scalar, `[n]`
/// for a per-layer vector of a scanned stack), in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMetrics {
    entries: Vec<(String, Vec<usize>)>,
}

impl PackedMetrics {
    /// The layout of `metrics` (f32 scalars or vectors, by name) and the traced `f32[n]` vector
    /// holding them in order.
    ///
    /// # Panics
    /// If `metrics` is empty, or a metric is not an f32 scalar or vector (the step builders
    /// make them so: `scalar_summaries` converts and checks summaries).
    pub fn pack(metrics: &[(&str, &Tensor)]) -> (PackedMetrics, Tensor) {
        let flat: Vec<Tensor> = metrics
            .iter()
            .map(|(name, t)| {
                assert!(
                    t.dtype() == DType::F32 && t.rank() <= 1,
                    "metric `{name}` is {:?} {:?}, not an f32 scalar or vector",
                    t.dtype(),
                    t.dims()
                );
                t.reshape(&[t.numel()])
            })
            .collect();
        let refs: Vec<&Tensor> = flat.iter().collect();
        let layout = PackedMetrics {
            entries: metrics
                .iter()
                .map(|(name, t)| (name.to_string(), t.dims().to_vec()))
                .collect(),
        };
        (layout, Tensor::concatenate(&refs, 0))
    }

    /// Number of f32 elements of the packed vector.
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, dims)| dims.iter().product::<usize>())
            .sum()
    }

    /// Whether the layout holds no metric.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The metrics' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// One `(name, value)` per element of `values` (the packed vector): a scalar under its
    /// name, element `i` of a vector as `name/i`. `None` if `values` is not [`Self::len`] long.
    pub fn unpack(&self, values: &[f32]) -> Option<Vec<(String, f32)>> {
        if values.len() != self.len() {
            return None;
        }
        let mut out = Vec::with_capacity(values.len());
        let mut rest = values;
        for (name, dims) in &self.entries {
            let (own, tail) = rest.split_at(dims.iter().product());
            rest = tail;
            if dims.is_empty() {
                out.push((name.clone(), own[0]));
            } else {
                out.extend(
                    own.iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{name}/{i}"), *v)),
                );
            }
        }
        Some(out)
    }
}
