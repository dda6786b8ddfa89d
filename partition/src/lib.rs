//! axle-partition: how a training step is split over devices.
//!
//! XLA's SPMD partitioner (Shardy) does the splitting; this crate decides
//! what to ask for and checks it before anything is compiled. It knows no
//! PJRT and no layers: its outputs are plain data and strings.
//!
//! - [`Mesh`]: named device axes (`pipeline, data, expert, fsdp, seq, model`,
//!   AXLearn's order) over a device list; [`MeshShape`] is the same before
//!   the device count is known (`data=-1,fsdp=4`, the CLI's `--mesh`).
//! - [`PartitionSpec`]: per tensor dimension, the mesh axes splitting it;
//!   checked against a tensor's shape with its parameter path in every error,
//!   and converted to Shardy text ([`Mesh::sdy_mesh_op`],
//!   [`PartitionSpec::sdy_sharding`], [`PartitionSpec::sdy_constraint`]) and
//!   to the runtime's [`ShardLayout`].
//! - [`LogicalSpec`] and [`LogicalRules`]: what layers write instead of mesh
//!   axes (`(embed, mlp)`, `(batch, seq, _)`), resolved per mesh, AXLearn
//!   style, so a layer never names a parallelism strategy.
//! - [`MeshRules`]: device selector pattern -> mesh and config modifiers,
//!   first match wins ([`device_selector`], [`choose_mesh`]).
//!
//! # Example
//!
//! ```
//! use axle_partition::{
//!     choose_mesh, device_selector, LogicalRules, LogicalSpec, MeshRules, MESH_SYMBOL,
//! };
//!
//! // 8 CPU devices: the default rules pick data=2 x fsdp=4.
//! let selector = device_selector("cpu", "cpu", 8);
//! let choice = choose_mesh(None, &selector, &MeshRules::default(), 8).unwrap();
//! let mesh = choice.mesh;
//! assert_eq!(mesh.to_string(), "data=2,fsdp=4");
//! assert_eq!(mesh.sdy_mesh_op(MESH_SYMBOL), r#"sdy.mesh @mesh = <["data"=2, "fsdp"=4]>"#);
//!
//! // A feed-forward input weight (d_model, hidden) is (embed, mlp) to its layer.
//! let logical: LogicalSpec = "(embed, mlp)".parse().unwrap();
//! let spec = LogicalRules::default().resolve(&logical, &mesh);
//! assert_eq!(spec.to_string(), "(fsdp, _)"); // no `model` axis on this mesh
//! let path = "decoder/layers/0/feed_forward/linear1/weight";
//! spec.validate(&mesh, &[256, 704], path).unwrap();
//! assert_eq!(spec.sdy_sharding(MESH_SYMBOL), r#"#sdy.sharding<@mesh, [{"fsdp"}, {}]>"#);
//!
//! // Device 5 sits at (data 1, fsdp 1): it holds rows 64..128, all columns.
//! let layout = spec.shard_layout(&mesh, &[256, 704], path).unwrap();
//! assert_eq!(layout.shard_slices(5, &[256, 704]).unwrap(), vec![(64, 64), (0, 704)]);
//!
//! // A dimension the mesh cannot split evenly is an error naming everything.
//! let err = spec.validate(&mesh, &[250, 704], path).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "`decoder/layers/0/feed_forward/linear1/weight`: dim 0 of size 250 is not divisible \
//!      by 4 = product of its mesh axes fsdp=4"
//! );
//! ```

mod error;
mod glob;
mod layout;
mod logical;
mod mesh;
mod mesh_shape;
mod rules;
mod selector;
mod spec;

pub use error::{LayoutError, MeshError, RuleError, SpecError};
pub use glob::glob_match;
pub use layout::ShardLayout;
pub use logical::{LogicalAxis, LogicalRules, LogicalSpec};
pub use mesh::{Mesh, MeshAxis};
pub use mesh_shape::{AxisSize, MESH_AXIS_NAMES, MeshShape};
pub use rules::{CompilerOption, MeshChoice, MeshRule, MeshRules, MeshSource, choose_mesh};
pub use selector::{device_selector, normalize_device_kind};
pub use spec::{DimSharding, PartitionSpec};

/// The symbol axle's programs give their one Shardy mesh (`@mesh`).
pub const MESH_SYMBOL: &str = "mesh";
