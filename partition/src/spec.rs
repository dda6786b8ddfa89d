//! `PartitionSpec`: for each tensor dimension, the mesh axes that split it;
//! its text form, its checks against a tensor on a mesh, and its conversions
//! to Shardy text and to a [`ShardLayout`].

use std::fmt;
use std::str::FromStr;

use crate::error::SpecError;
use crate::layout::ShardLayout;
use crate::mesh::Mesh;

/// How one tensor dimension is split over the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DimSharding {
    /// Split over these mesh axes, major to minor; no axes means the
    /// dimension is whole on every device (replicated). Shardy: `{"a", "b"}`
    /// or `{}`.
    Axes(Vec<String>),
    /// Left to the partitioner's propagation (an open dimension, Shardy
    /// `{?}`, JAX's `P.UNCONSTRAINED`): for sharding constraints on
    /// activations, never for a tensor that must be placed by the runtime.
    Unconstrained,
}

impl DimSharding {
    /// A dimension that is not split.
    pub fn replicated() -> DimSharding {
        DimSharding::Axes(Vec::new())
    }

    /// The axes splitting the dimension (none for replicated or unconstrained).
    pub fn axes(&self) -> &[String] {
        match self {
            DimSharding::Axes(axes) => axes,
            DimSharding::Unconstrained => &[],
        }
    }
}

/// For each dimension of a tensor, how it is split over the mesh (like JAX's
/// `PartitionSpec`; a mesh axis not named anywhere replicates the tensor).
///
/// Text form (parsed by `FromStr`, written by `Display`): the dimensions in
/// parentheses separated by `, `; in each, the axes joined by `+` major first,
/// `_` for a dimension that is not split, `?` for an unconstrained one. For
/// example `(data+fsdp, _, model, ?)`; a scalar is `()`. Whitespace is ignored
/// when parsing.
///
/// ```
/// use axle_partition::{pspec, PartitionSpec};
/// let spec: PartitionSpec = "(data+fsdp, _)".parse().unwrap();
/// assert_eq!(spec, PartitionSpec::new(vec![vec!["data".into(), "fsdp".into()], vec![]]));
/// assert_eq!(spec, pspec![["data", "fsdp"], _]);
/// assert_eq!(spec.sdy_sharding("mesh"), r#"#sdy.sharding<@mesh, [{"data", "fsdp"}, {}]>"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionSpec {
    dims: Vec<DimSharding>,
}

/// Builds a [`PartitionSpec`] compactly: one entry per dimension, each
/// `"axis"`, `["major", "minor"]`, `_` (not split) or `?` (unconstrained).
///
/// ```
/// use axle_partition::{pspec, DimSharding, PartitionSpec};
/// let spec = pspec![["data", "fsdp"], _, "model", ?];
/// assert_eq!(spec.to_string(), "(data+fsdp, _, model, ?)");
/// assert_eq!(spec.dims()[3], DimSharding::Unconstrained);
/// assert_eq!(pspec![], PartitionSpec::replicated(0));
/// ```
#[macro_export]
macro_rules! pspec {
    (@dim ?) => { $crate::DimSharding::Unconstrained };
    (@dim _) => { $crate::DimSharding::replicated() };
    (@dim [$($axis:expr),* $(,)?]) => {
        $crate::DimSharding::Axes(vec![$(::std::string::String::from($axis)),*])
    };
    (@dim $axis:expr) => { $crate::DimSharding::Axes(vec![::std::string::String::from($axis)]) };
    ($($dim:tt),* $(,)?) => {
        $crate::PartitionSpec::from_dims(vec![$($crate::pspec!(@dim $dim)),*])
    };
}

impl PartitionSpec {
    /// A spec from the axes of each dimension (an empty list: not split).
    pub fn new(dims: Vec<Vec<String>>) -> PartitionSpec {
        PartitionSpec {
            dims: dims.into_iter().map(DimSharding::Axes).collect(),
        }
    }

    /// A spec from per-dimension shardings (use this for unconstrained dims).
    pub fn from_dims(dims: Vec<DimSharding>) -> PartitionSpec {
        PartitionSpec { dims }
    }

    /// A rank-`rank` tensor kept whole on every device (norm scales, biases,
    /// scalars).
    pub fn replicated(rank: usize) -> PartitionSpec {
        PartitionSpec {
            dims: vec![DimSharding::replicated(); rank],
        }
    }

    /// A rank-`rank` tensor whose sharding is left entirely to propagation.
    pub fn unconstrained(rank: usize) -> PartitionSpec {
        PartitionSpec {
            dims: vec![DimSharding::Unconstrained; rank],
        }
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The per-dimension shardings.
    pub fn dims(&self) -> &[DimSharding] {
        &self.dims
    }

    /// This spec for `mesh`: axes the mesh lacks or has with size 1 are
    /// dropped, so one config (AXLearn style, weights on `fsdp`/`model`)
    /// serves every mesh. Names that are no mesh axis at all (typos) are
    /// kept, so that [`PartitionSpec::validate`] reports them.
    pub fn restricted_to(&self, mesh: &Mesh) -> PartitionSpec {
        let keep = |axis: &String| match mesh.axis_size(axis) {
            Some(size) => size > 1,
            None => !crate::MESH_AXIS_NAMES.contains(&axis.as_str()),
        };
        let dims = self
            .dims
            .iter()
            .map(|dim| match dim {
                DimSharding::Axes(axes) => {
                    DimSharding::Axes(axes.iter().filter(|a| keep(a)).cloned().collect())
                }
                DimSharding::Unconstrained => DimSharding::Unconstrained,
            })
            .collect();
        PartitionSpec { dims }
    }

    /// Checks the spec against a tensor of `shape` on `mesh`: same rank, every
    /// axis in the mesh, no axis used twice, every split dimension divisible
    /// by the product of its axes' sizes. `path` names the tensor in errors
    /// (e.g. `decoder/layers/3/attention/q_proj/weight`). Unconstrained
    /// dimensions pass.
    pub fn validate(&self, mesh: &Mesh, shape: &[usize], path: &str) -> Result<(), SpecError> {
        self.axis_indices(mesh, shape, path).map(|_| ())
    }

    /// The runtime layout of a tensor of `shape` with this spec on `mesh`,
    /// after [`validate`](Self::validate); every dimension must be decided
    /// (no `?`).
    pub fn shard_layout(
        &self,
        mesh: &Mesh,
        shape: &[usize],
        path: &str,
    ) -> Result<ShardLayout, SpecError> {
        let dim_axes = self.axis_indices(mesh, shape, path)?;
        if let Some(dim) = self
            .dims
            .iter()
            .position(|d| *d == DimSharding::Unconstrained)
        {
            return Err(SpecError::Unconstrained {
                path: path.to_string(),
                dim,
            });
        }
        Ok(ShardLayout {
            mesh_shape: mesh.shape(),
            dim_axes,
        })
    }

    /// The shape each device holds of a tensor of `shape` (unconstrained
    /// dimensions count as not split).
    pub fn shard_shape(
        &self,
        mesh: &Mesh,
        shape: &[usize],
        path: &str,
    ) -> Result<Vec<usize>, SpecError> {
        let dim_axes = self.axis_indices(mesh, shape, path)?;
        let mesh_shape = mesh.shape();
        Ok(shape
            .iter()
            .zip(&dim_axes)
            .map(|(&size, axes)| size / axes.iter().map(|&a| mesh_shape[a]).product::<usize>())
            .collect())
    }

    /// The Shardy attribute for a function argument or result, e.g.
    /// `#sdy.sharding<@mesh, [{"data"}, {}]>` for `mesh_symbol = "mesh"`.
    /// Axis names are written as given: [`validate`](Self::validate) the spec
    /// against its mesh first. No `replicated={...}` part is written: axes
    /// not named are implicitly replicated, and a closed `{}` dimension
    /// already stays unsplit.
    pub fn sdy_sharding(&self, mesh_symbol: &str) -> String {
        format!("#sdy.sharding{}", self.sdy_constraint(mesh_symbol))
    }

    /// The sharding as `sdy.sharding_constraint` takes it, e.g.
    /// `<@mesh, [{"data"}, {?}]>`.
    pub fn sdy_constraint(&self, mesh_symbol: &str) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|dim| match dim {
                DimSharding::Unconstrained => "{?}".to_string(),
                DimSharding::Axes(axes) => {
                    let quoted: Vec<String> = axes.iter().map(|a| format!("\"{a}\"")).collect();
                    format!("{{{}}}", quoted.join(", "))
                }
            })
            .collect();
        format!("<@{mesh_symbol}, [{}]>", dims.join(", "))
    }

    /// Validates (see [`validate`](Self::validate)) and returns, per
    /// dimension, the mesh axis indices splitting it.
    fn axis_indices(
        &self,
        mesh: &Mesh,
        shape: &[usize],
        path: &str,
    ) -> Result<Vec<Vec<usize>>, SpecError> {
        if self.rank() != shape.len() {
            return Err(SpecError::RankMismatch {
                path: path.to_string(),
                spec: self.to_string(),
                spec_rank: self.rank(),
                shape: shape.to_vec(),
            });
        }
        let mut used_by: Vec<Option<usize>> = vec![None; mesh.axes().len()];
        let mut dim_axes = Vec::with_capacity(self.rank());
        for (dim, (sharding, &size)) in self.dims.iter().zip(shape).enumerate() {
            let mut indices = Vec::new();
            for axis in sharding.axes() {
                let index = mesh
                    .axis_index(axis)
                    .ok_or_else(|| SpecError::UnknownAxis {
                        path: path.to_string(),
                        dim,
                        axis: axis.clone(),
                        mesh: mesh.to_string(),
                    })?;
                if let Some(first_dim) = used_by[index] {
                    return Err(SpecError::DuplicateAxis {
                        path: path.to_string(),
                        axis: axis.clone(),
                        first_dim,
                        second_dim: dim,
                    });
                }
                used_by[index] = Some(dim);
                indices.push(index);
            }
            let product: usize = indices.iter().map(|&i| mesh.axes()[i].size).product();
            if !size.is_multiple_of(product) {
                let axes: Vec<String> = indices
                    .iter()
                    .map(|&i| format!("{}={}", mesh.axes()[i].name, mesh.axes()[i].size))
                    .collect();
                return Err(SpecError::NotDivisible {
                    path: path.to_string(),
                    dim,
                    size,
                    axes: axes.join(" x "),
                    product,
                });
            }
            dim_axes.push(indices);
        }
        Ok(dim_axes)
    }
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, dim) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match dim {
                DimSharding::Unconstrained => f.write_str("?")?,
                DimSharding::Axes(axes) if axes.is_empty() => f.write_str("_")?,
                DimSharding::Axes(axes) => f.write_str(&axes.join("+"))?,
            }
        }
        f.write_str(")")
    }
}

/// The trimmed per-dimension entries of a parenthesised spec text such as
/// `(data+fsdp, _)`; none for `()`. Shared by the spec and logical-spec parsers.
pub(crate) fn split_dims(text: &str) -> Result<Vec<&str>, SpecError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| SpecError::Parse {
            text: text.to_string(),
            reason: "must be enclosed in `(` and `)`".to_string(),
        })?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(inner.split(',').map(str::trim).collect())
}

impl FromStr for PartitionSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<PartitionSpec, SpecError> {
        let parse_error = |reason: String| SpecError::Parse {
            text: text.to_string(),
            reason,
        };
        let mut dims = Vec::new();
        for (dim, entry) in split_dims(text)?.into_iter().enumerate() {
            let sharding = match entry {
                "" => {
                    return Err(parse_error(format!(
                        "dim {dim} is empty (use `_` for not split)"
                    )));
                }
                "?" => DimSharding::Unconstrained,
                "_" => DimSharding::replicated(),
                _ => {
                    let mut axes = Vec::new();
                    for axis in entry.split('+').map(str::trim) {
                        let is_name = !axis.is_empty()
                            && axis != "_"
                            && axis.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if !is_name {
                            return Err(parse_error(format!(
                                "dim {dim}: `{axis}` is not an axis name"
                            )));
                        }
                        axes.push(axis.to_string());
                    }
                    DimSharding::Axes(axes)
                }
            };
            dims.push(sharding);
        }
        Ok(PartitionSpec { dims })
    }
}
