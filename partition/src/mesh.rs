//! `Mesh`: named device axes with concrete sizes over a concrete device list.

use std::fmt;

use crate::error::MeshError;
use crate::layout::row_major_coords;
use crate::mesh_shape::MeshShape;

/// One axis of a [`Mesh`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeshAxis {
    /// The axis name, one of [`MESH_AXIS_NAMES`](crate::MESH_AXIS_NAMES).
    pub name: String,
    /// The number of devices along the axis (at least 1).
    pub size: usize,
}

/// A logical device mesh: named axes with sizes (major to minor, in the
/// canonical order of [`MESH_AXIS_NAMES`](crate::MESH_AXIS_NAMES)) laid over a
/// device list in row-major order.
///
/// Position `i` of the mesh is the row-major multi-index `i` over
/// [`shape`](Self::shape); it is partition `i` of a program compiled for this
/// mesh (`num_partitions = size`) and runs on device
/// [`devices()[i]`](Self::devices), which is the compile options' device
/// assignment. The Shardy mesh therefore never needs `device_ids`.
///
/// `Display` writes `data=2,model=4` (sizes resolved, device list omitted);
/// that text parses back as a [`MeshShape`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mesh {
    axes: Vec<MeshAxis>,
    devices: Vec<usize>,
}

impl Mesh {
    /// Builds a mesh over devices `0..size` of `num_devices`; one size may be
    /// -1, inferred from `num_devices`.
    ///
    /// ```
    /// let mesh = axle_partition::Mesh::new(&[("data", 2), ("model", -1)], 8).unwrap();
    /// assert_eq!(mesh.shape(), vec![2, 4]);
    /// assert_eq!(mesh.to_string(), "data=2,model=4");
    /// ```
    pub fn new(axes: &[(&str, i64)], num_devices: usize) -> Result<Mesh, MeshError> {
        MeshShape::new(axes)?.resolve(num_devices)
    }

    /// Builds a mesh over an explicit device list (`devices[i]` sits at
    /// row-major position `i`); one size may be -1, inferred from the list's
    /// length, and the mesh must cover the list exactly.
    pub fn with_devices(axes: &[(&str, i64)], devices: &[usize]) -> Result<Mesh, MeshError> {
        MeshShape::new(axes)?.resolve_on(devices)
    }

    /// Parses `data=2,fsdp=-1` (the CLI's `--mesh`) and resolves it on
    /// `num_devices` devices, as [`Mesh::new`] does.
    pub fn parse(text: &str, num_devices: usize) -> Result<Mesh, MeshError> {
        text.parse::<MeshShape>()?.resolve(num_devices)
    }

    /// Assembles a mesh from checked parts (see [`MeshShape`]).
    pub(crate) fn from_parts(axes: Vec<MeshAxis>, devices: Vec<usize>) -> Mesh {
        Mesh { axes, devices }
    }

    /// The axes, major to minor.
    pub fn axes(&self) -> &[MeshAxis] {
        &self.axes
    }

    /// The axis names, major to minor.
    pub fn axis_names(&self) -> Vec<&str> {
        self.axes.iter().map(|axis| axis.name.as_str()).collect()
    }

    /// The axis sizes, major to minor.
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(|axis| axis.size).collect()
    }

    /// The position of axis `name` in the mesh, if it has one.
    pub fn axis_index(&self, name: &str) -> Option<usize> {
        self.axes.iter().position(|axis| axis.name == name)
    }

    /// The size of axis `name`, if the mesh has it.
    pub fn axis_size(&self, name: &str) -> Option<usize> {
        self.axes
            .iter()
            .find(|axis| axis.name == name)
            .map(|axis| axis.size)
    }

    /// The number of devices in the mesh (the product of the axis sizes).
    pub fn size(&self) -> usize {
        self.devices.len()
    }

    /// The device id at each row-major mesh position: the device that runs
    /// partition `i` (the compile options' device assignment).
    pub fn devices(&self) -> &[usize] {
        &self.devices
    }

    /// The mesh coordinates (one per axis) of row-major position `position`,
    /// or `None` past the end of the mesh.
    pub fn coords(&self, position: usize) -> Option<Vec<usize>> {
        (position < self.size()).then(|| row_major_coords(position, &self.shape()))
    }

    /// The Shardy mesh attribute, e.g. `<["data"=2, "model"=2]>`.
    pub fn sdy_mesh_attr(&self) -> String {
        let axes: Vec<String> = self
            .axes
            .iter()
            .map(|axis| format!("\"{}\"={}", axis.name, axis.size))
            .collect();
        format!("<[{}]>", axes.join(", "))
    }

    /// The module-level Shardy mesh declaration, e.g.
    /// `sdy.mesh @mesh = <["data"=2, "model"=2]>` for `symbol = "mesh"`.
    pub fn sdy_mesh_op(&self, symbol: &str) -> String {
        format!("sdy.mesh @{symbol} = {}", self.sdy_mesh_attr())
    }
}

impl fmt::Display for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, axis) in self.axes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", axis.name, axis.size)?;
        }
        Ok(())
    }
}
