//! Errors of this crate, one enum per area: meshes, partition specs, shard
//! layouts and mesh rules. Every message names the thing at fault (the mesh
//! text, the axis, the parameter path, the dimension and the sizes involved).

use thiserror::Error;

/// A mesh that cannot be built: bad text, bad axis names or sizes, or a mesh
/// that does not fit the devices it is asked to cover.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MeshError {
    /// The mesh text is not a comma-separated list of `axis=size`.
    #[error("cannot parse mesh `{text}`: {reason} (expected e.g. `data=2,fsdp=4`)")]
    Parse {
        /// The whole text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A mesh needs at least one axis.
    #[error("a mesh needs at least one axis (e.g. `data=1`)")]
    Empty,
    /// The axis name is not one of the canonical mesh axes.
    #[error("unknown mesh axis `{axis}` (known axes, in order: {known})")]
    UnknownAxis {
        /// The unknown name.
        axis: String,
        /// The canonical axis names, comma-separated.
        known: String,
    },
    /// The same axis appears twice in one mesh.
    #[error("mesh axis `{axis}` appears twice")]
    DuplicateAxis {
        /// The repeated axis.
        axis: String,
    },
    /// The axes are not in canonical order.
    #[error("mesh axis `{axis}` must come before `{before}` (canonical order: {known})")]
    AxisOrder {
        /// The axis that comes too late.
        axis: String,
        /// The axis it must precede.
        before: String,
        /// The canonical axis names, comma-separated.
        known: String,
    },
    /// An axis size is zero or negative other than -1.
    #[error("mesh axis `{axis}` has size {size}; sizes must be >= 1, or -1 to infer one axis")]
    BadSize {
        /// The axis.
        axis: String,
        /// The size given.
        size: i64,
    },
    /// More than one axis asks for its size to be inferred.
    #[error(
        "mesh axes `{first}` and `{second}` both have size -1; at most one size can be inferred"
    )]
    TwoInferred {
        /// The first axis with -1.
        first: String,
        /// The second axis with -1.
        second: String,
    },
    /// The device count is not a multiple of the product of the fixed sizes.
    #[error(
        "cannot infer the -1 axis of mesh `{mesh}`: {devices} devices are not divisible by the \
         product {fixed} of the other axes"
    )]
    NotDivisible {
        /// The mesh text as given.
        mesh: String,
        /// The devices available.
        devices: usize,
        /// The product of the other axes' sizes.
        fixed: usize,
    },
    /// The mesh needs more devices than there are.
    #[error("mesh `{mesh}` needs {size} devices but only {devices} are available")]
    TooLarge {
        /// The mesh text as given.
        mesh: String,
        /// Devices the mesh needs (the product of its sizes).
        size: usize,
        /// Devices available.
        devices: usize,
    },
    /// A mesh over an explicit device list must cover exactly that list.
    #[error("mesh `{mesh}` has {size} positions but the device list has {devices} devices")]
    DeviceCount {
        /// The mesh text as given.
        mesh: String,
        /// The product of the mesh's sizes.
        size: usize,
        /// Length of the device list.
        devices: usize,
    },
    /// A device id appears twice in the device list.
    #[error("device {device} appears twice in the device list of mesh `{mesh}`")]
    DuplicateDevice {
        /// The mesh text as given.
        mesh: String,
        /// The repeated device id.
        device: usize,
    },
}

/// A partition spec that is malformed or does not fit a tensor on a mesh.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// The spec text does not follow the `(data+fsdp, _, ?)` syntax.
    #[error(
        "cannot parse partition spec `{text}`: {reason} (expected e.g. `(data+fsdp, _, model, ?)`)"
    )]
    Parse {
        /// The whole text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec has a different number of dimensions than the tensor.
    #[error(
        "`{path}`: partition spec {spec} has rank {spec_rank} but the tensor has shape {shape:?}"
    )]
    RankMismatch {
        /// Path of the tensor (e.g. `decoder/layers/3/attention/q_proj/weight`).
        path: String,
        /// The spec, as text.
        spec: String,
        /// The spec's rank.
        spec_rank: usize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A dimension names an axis the mesh does not have.
    #[error("`{path}`: dim {dim} is sharded over axis `{axis}`, which mesh `{mesh}` does not have")]
    UnknownAxis {
        /// Path of the tensor.
        path: String,
        /// The dimension.
        dim: usize,
        /// The unknown axis.
        axis: String,
        /// The mesh, as text.
        mesh: String,
    },
    /// One mesh axis shards two dimensions (or one dimension twice).
    #[error(
        "`{path}`: mesh axis `{axis}` is used by dim {first_dim} and again by dim {second_dim}"
    )]
    DuplicateAxis {
        /// Path of the tensor.
        path: String,
        /// The repeated axis.
        axis: String,
        /// The first dimension using it.
        first_dim: usize,
        /// The dimension using it again (may equal `first_dim`).
        second_dim: usize,
    },
    /// A dimension's size is not a multiple of the product of its axes' sizes.
    #[error(
        "`{path}`: dim {dim} of size {size} is not divisible by {product} = product of its mesh \
         axes {axes}"
    )]
    NotDivisible {
        /// Path of the tensor.
        path: String,
        /// The dimension.
        dim: usize,
        /// The dimension's size.
        size: usize,
        /// The axes splitting it with their sizes, e.g. `fsdp=4 x model=2`.
        axes: String,
        /// The product of those sizes.
        product: usize,
    },
    /// A shard layout needs every dimension decided; `?` leaves one open.
    #[error("`{path}`: dim {dim} is unconstrained (`?`), which has no fixed shard layout")]
    Unconstrained {
        /// Path of the tensor.
        path: String,
        /// The open dimension.
        dim: usize,
    },
}

/// A shard layout asked about a shard or an array it cannot describe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    /// The array's rank differs from the layout's.
    #[error("layout has {layout_rank} dims but the array has shape {shape:?}")]
    Rank {
        /// Number of dimensions in the layout.
        layout_rank: usize,
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// A dimension refers to a mesh axis index past the mesh.
    #[error("dim {dim} uses mesh axis index {axis} but the mesh has {mesh_rank} axes")]
    AxisIndex {
        /// The dimension.
        dim: usize,
        /// The out-of-range axis index.
        axis: usize,
        /// Number of mesh axes.
        mesh_rank: usize,
    },
    /// One mesh axis index splits two dimensions (or one dimension twice).
    #[error("mesh axis index {axis} is used by dim {first_dim} and again by dim {second_dim}")]
    DuplicateAxis {
        /// The repeated axis index.
        axis: usize,
        /// The first dimension using it.
        first_dim: usize,
        /// The dimension using it again.
        second_dim: usize,
    },
    /// A dimension is not divisible by the product of its axes' sizes.
    #[error("dim {dim} of size {size} is not divisible into {parts} shards")]
    NotDivisible {
        /// The dimension.
        dim: usize,
        /// Its size.
        size: usize,
        /// The number of shards along it.
        parts: usize,
    },
    /// The shard index is past the number of shards.
    #[error("shard {shard} is out of range: the layout has {num_shards} shards")]
    Shard {
        /// The shard asked for.
        shard: usize,
        /// The number of shards (the mesh size).
        num_shards: usize,
    },
}

/// A mesh could not be chosen from the rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// No rule's pattern matches the selector.
    #[error(
        "no mesh rule matches device selector `{selector}`; pass an explicit mesh \
         (e.g. `--mesh data=-1`) or another selector"
    )]
    NoMatch {
        /// The selector.
        selector: String,
    },
    /// The chosen rule's mesh does not fit the devices.
    #[error("mesh rule `{pattern}` (chosen for selector `{selector}`): {source}")]
    Mesh {
        /// The rule's pattern.
        pattern: String,
        /// The selector it matched.
        selector: String,
        /// Why its mesh does not fit.
        source: MeshError,
    },
    /// An explicitly given mesh does not fit the devices.
    #[error("explicit mesh: {0}")]
    Explicit(MeshError),
    /// A rule's compiler option is malformed.
    #[error("mesh rule `{pattern}`: compiler option `{option}`: {message}")]
    CompilerOption {
        /// The rule's pattern.
        pattern: String,
        /// The option as written (`name=value`).
        option: String,
        /// What is wrong with it.
        message: String,
    },
}
