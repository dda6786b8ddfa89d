//! Parameter specs: what a module declares about each of its parameters (shape, dtype,
//! initializer, fan axes, the logical role of each dimension), before anything is allocated.

use std::collections::BTreeMap;

use axle_compiler::DType;
use axle_partition::{LogicalAxis, LogicalSpec};
use serde::{Deserialize, Serialize};

/// Serde form of a [`LogicalSpec`] in configs: its text form, such as `"(embed, mlp)"`, so that
/// dumps read naturally and `--set ...weight_roles="(embed, _)"` works. Use with
/// `#[serde(with = "crate::param::roles_text")]`.
pub mod roles_text {
    use axle_partition::LogicalSpec;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the spec's text form.
    pub fn serialize<S: Serializer>(spec: &LogicalSpec, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(spec)
    }

    /// Parses the spec's text form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LogicalSpec, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| D::Error::custom(format!("bad logical roles `{text}`: {e}")))
    }
}

/// How a parameter's initial values are drawn (on the host, see [`crate::init_params`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Initializer {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element equal to `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// Normal with mean 0 and standard deviation `std`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Normal truncated at two standard deviations, rescaled so that its standard deviation is `std`.
    TruncatedNormal {
        /// Standard deviation after truncation.
        std: f64,
    },
    /// Normal (or truncated normal) with standard deviation `scale / sqrt(fan_in)`, where fan_in
    /// is the product of the parameter's [`FanAxes::fan_in`] dimensions.
    FanIn {
        /// Multiplier of `1 / sqrt(fan_in)`.
        scale: f64,
        /// Truncate at two standard deviations.
        truncated: bool,
    },
}

/// Which dimensions of a parameter are its fan-in, fan-out and batch (e.g. stacked layers) axes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FanAxes {
    /// Input dimensions (contracted with the layer input).
    pub fan_in: Vec<usize>,
    /// Output dimensions.
    pub fan_out: Vec<usize>,
    /// Dimensions that index independent copies, such as the layer axis of a scanned stack.
    pub batch: Vec<usize>,
}

impl FanAxes {
    /// The axes shifted by one for a new leading batch axis (the layer axis of a scanned stack).
    pub fn with_leading_batch(&self) -> FanAxes {
        let shift = |v: &[usize]| v.iter().map(|a| a + 1).collect::<Vec<_>>();
        let mut batch = vec![0];
        batch.extend(shift(&self.batch));
        FanAxes {
            fan_in: shift(&self.fan_in),
            fan_out: shift(&self.fan_out),
            batch,
        }
    }
}

/// Everything known about a parameter before it exists.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type of the stored parameter.
    pub dtype: DType,
    /// How initial values are drawn.
    pub init: Initializer,
    /// Fan-in / fan-out / batch dimensions, for fan-scaled initializers.
    pub fan_axes: FanAxes,
    /// The logical role of each dimension (same rank as `shape`): a feed-forward input
    /// weight `(in, out)` is `(embed, mlp)`. The experiment's logical rules turn roles into
    /// mesh axes (axes absent from the mesh in use are dropped), so a layer names no
    /// parallelism strategy and one config serves every mesh.
    pub roles: LogicalSpec,
}

impl ParamSpec {
    /// Number of elements, computed without allocating. Saturates at
    /// `u64::MAX` rather than overflowing; [`ParamSpec::checked_num_elements`]
    /// says whether it fits.
    pub fn num_elements(&self) -> u64 {
        self.shape
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }

    /// Number of elements, or `None` when the product of the dimensions
    /// overflows `i64` (XLA's dimension and element-count type, so the
    /// largest array a program can hold).
    pub fn checked_num_elements(&self) -> Option<u64> {
        checked_elements(&self.shape)
    }
}

/// The product of `shape`'s dimensions, or `None` when it overflows `i64`
/// (XLA's dimension and element-count type).
pub fn checked_elements(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1i64, |n, &d| n.checked_mul(i64::try_from(d).ok()?))
        .map(|n| n as u64)
}

impl ParamSpec {
    /// The product of the fan-in dimensions (1 if there are none).
    pub fn fan_in(&self) -> usize {
        self.fan_axes
            .fan_in
            .iter()
            .map(|&a| self.shape[a])
            .product()
    }

    /// This spec with a new leading dimension of size `n` and role `layers` (split over no
    /// mesh axis by the default rules), as a scanned stack of `n` layers holds it.
    pub fn stacked(&self, n: usize) -> ParamSpec {
        let mut shape = vec![n];
        shape.extend(&self.shape);
        ParamSpec {
            shape,
            dtype: self.dtype,
            init: self.init.clone(),
            fan_axes: self.fan_axes.with_leading_batch(),
            roles: self.roles.with_leading(LogicalAxis::Layers),
        }
    }
}

/// Parameters (or their specs, values, gradients) keyed by `/`-separated path, such as
/// `decoder/transformer/layers/3/attention/q_proj/weight`; sorted by path.
pub type ParamTree<T> = BTreeMap<String, T>;

/// Adds every entry of `child` to `tree` under `prefix/`.
pub fn nest<T>(tree: &mut ParamTree<T>, prefix: &str, child: ParamTree<T>) {
    for (path, value) in child {
        tree.insert(format!("{prefix}/{path}"), value);
    }
}

/// Total number of parameter elements in a spec tree, computed without allocating.
pub fn count_params(specs: &ParamTree<ParamSpec>) -> u64 {
    specs.values().map(ParamSpec::num_elements).sum()
}
