//! One logical array split over the devices of a mesh: a buffer per device,
//! and assembly to and from a single host array.

use ndarray::{ArrayD, IxDyn, SliceInfoElem};

use crate::buffer::Buffer;
use crate::client::Client;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};

/// How each dimension of an array is split over the axes of a device mesh.
///
/// Plain data (the partition crate converts its specs into this; the runtime
/// knows nothing of Shardy). Shard `i` belongs to device `i`, the row-major
/// multi-index of `i` over `mesh_shape`: for a `[2, 2]` mesh, device 1 is mesh
/// position `[0, 1]`. Mesh axes used by no dimension mean replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    /// Size of each mesh axis.
    pub mesh_shape: Vec<usize>,
    /// For each array dimension, the mesh axes splitting it, major to minor.
    pub dim_axes: Vec<Vec<usize>>,
}

impl ShardLayout {
    /// A layout that keeps a full copy of a rank-`rank` array on every device.
    pub fn replicated(mesh_shape: Vec<usize>, rank: usize) -> Self {
        ShardLayout {
            mesh_shape,
            dim_axes: vec![Vec::new(); rank],
        }
    }

    /// Number of devices of the mesh.
    pub fn device_count(&self) -> usize {
        self.mesh_shape.iter().product()
    }

    /// Checks the layout against a global shape: axes exist and are used at
    /// most once, and every dimension divides evenly.
    pub fn validate(&self, global_shape: &[usize]) -> Result<()> {
        let bad = |msg: String| Err(Error::ShardLayout(msg));
        if self.dim_axes.len() != global_shape.len() {
            return bad(format!(
                "dim_axes names {} dimensions, the array {:?} has {}",
                self.dim_axes.len(),
                global_shape,
                global_shape.len()
            ));
        }
        if let Some(axis) = self.mesh_shape.iter().position(|&s| s == 0) {
            return bad(format!("mesh axis {axis} has size 0"));
        }
        let mut used = vec![false; self.mesh_shape.len()];
        for (dim, axes) in self.dim_axes.iter().enumerate() {
            for &axis in axes {
                if axis >= self.mesh_shape.len() {
                    return bad(format!(
                        "dimension {dim} is split over mesh axis {axis}, the mesh {:?} has {} axes",
                        self.mesh_shape,
                        self.mesh_shape.len()
                    ));
                }
                if used[axis] {
                    return bad(format!(
                        "mesh axis {axis} splits more than one dimension (again at {dim})"
                    ));
                }
                used[axis] = true;
            }
            let parts = self.parts(dim);
            if !global_shape[dim].is_multiple_of(parts) {
                return bad(format!(
                    "dimension {dim} of size {} is not divisible by {parts} (mesh axes {axes:?} of mesh {:?})",
                    global_shape[dim], self.mesh_shape
                ));
            }
        }
        Ok(())
    }

    /// Number of pieces dimension `dim` is cut into.
    fn parts(&self, dim: usize) -> usize {
        self.dim_axes[dim]
            .iter()
            .map(|&a| self.mesh_shape[a])
            .product()
    }

    /// Shape of every shard of an array of `global_shape`.
    pub fn shard_shape(&self, global_shape: &[usize]) -> Result<Vec<usize>> {
        self.validate(global_shape)?;
        Ok(global_shape
            .iter()
            .enumerate()
            .map(|(d, &n)| n / self.parts(d))
            .collect())
    }

    /// Start index, per dimension, of device `device`'s shard.
    pub fn shard_offsets(&self, global_shape: &[usize], device: usize) -> Result<Vec<usize>> {
        let shard = self.shard_shape(global_shape)?;
        if device >= self.device_count() {
            return Err(Error::ShardLayout(format!(
                "device {device} outside the mesh {:?} of {} devices",
                self.mesh_shape,
                self.device_count()
            )));
        }
        let mut position = vec![0; self.mesh_shape.len()];
        let mut rest = device;
        for axis in (0..self.mesh_shape.len()).rev() {
            position[axis] = rest % self.mesh_shape[axis];
            rest /= self.mesh_shape[axis];
        }
        Ok(self
            .dim_axes
            .iter()
            .zip(&shard)
            .map(|(axes, &len)| {
                axes.iter()
                    .fold(0, |idx, &a| idx * self.mesh_shape[a] + position[a])
                    * len
            })
            .collect())
    }
}

/// A global array held as one buffer per device (shard `i` on addressable device `i`).
#[derive(Debug)]
pub struct ShardedArray {
    global_shape: Vec<usize>,
    layout: ShardLayout,
    shards: Vec<Buffer>,
}

impl ShardedArray {
    /// Splits `array` by `layout` and places shard `i` on addressable device `i`.
    pub fn from_array<T: Element>(
        client: &Client,
        array: &ArrayD<T>,
        layout: &ShardLayout,
    ) -> Result<ShardedArray> {
        let global = array.shape().to_vec();
        let shard_shape = layout.shard_shape(&global)?;
        let shards = (0..layout.device_count())
            .map(|device| {
                let offsets = layout.shard_offsets(&global, device)?;
                let piece = array
                    .slice(block(&offsets, &shard_shape).as_slice())
                    .to_owned();
                client.buffer_from_array(&piece, device)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardedArray {
            global_shape: global,
            layout: layout.clone(),
            shards,
        })
    }

    /// Wraps per-device buffers (e.g. one output of an execution, in
    /// partition order), checking their count, shapes and dtypes.
    pub fn from_shards(
        global_shape: &[usize],
        layout: &ShardLayout,
        shards: Vec<Buffer>,
    ) -> Result<ShardedArray> {
        let shard_shape = layout.shard_shape(global_shape)?;
        if shards.len() != layout.device_count() {
            return Err(Error::ShardLayout(format!(
                "mesh {:?} has {} devices, got {} shards",
                layout.mesh_shape,
                layout.device_count(),
                shards.len()
            )));
        }
        let dtype = shards.first().map(Buffer::dtype);
        for (i, shard) in shards.iter().enumerate() {
            if shard.dims() != shard_shape.as_slice() || Some(shard.dtype()) != dtype {
                return Err(Error::ShardLayout(format!(
                    "shard {i} is {}{:?}, expected {}{:?} for global shape {global_shape:?}",
                    shard.dtype(),
                    shard.dims(),
                    dtype.map_or("?".to_string(), |d| d.to_string()),
                    shard_shape
                )));
            }
        }
        Ok(ShardedArray {
            global_shape: global_shape.to_vec(),
            layout: layout.clone(),
            shards,
        })
    }

    /// The global shape.
    pub fn global_shape(&self) -> &[usize] {
        &self.global_shape
    }

    /// The element type (`None` only for a mesh of zero devices, which validation refuses).
    pub fn dtype(&self) -> Option<DType> {
        self.shards.first().map(Buffer::dtype)
    }

    /// The layout.
    pub fn layout(&self) -> &ShardLayout {
        &self.layout
    }

    /// The per-device buffers, in device order.
    pub fn shards(&self) -> &[Buffer] {
        &self.shards
    }

    /// Gives up the per-device buffers (e.g. to donate them).
    pub fn into_shards(self) -> Vec<Buffer> {
        self.shards
    }

    /// Assembles the global array on the host.
    pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>> {
        let shard_shape = self.layout.shard_shape(&self.global_shape)?;
        let mut out = ArrayD::<T>::default(IxDyn(&self.global_shape));
        for (device, shard) in self.shards.iter().enumerate() {
            let offsets = self.layout.shard_offsets(&self.global_shape, device)?;
            out.slice_mut(block(&offsets, &shard_shape).as_slice())
                .assign(&shard.to_array::<T>()?);
        }
        Ok(out)
    }
}

fn block(offsets: &[usize], shape: &[usize]) -> Vec<SliceInfoElem> {
    offsets
        .iter()
        .zip(shape)
        .map(|(&start, &len)| SliceInfoElem::Slice {
            start: start as isize,
            end: Some((start + len) as isize),
            step: 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(mesh: &[usize], dims: &[&[usize]]) -> ShardLayout {
        ShardLayout {
            mesh_shape: mesh.to_vec(),
            dim_axes: dims.iter().map(|d| d.to_vec()).collect(),
        }
    }

    #[test]
    fn offsets_follow_row_major_mesh_positions() {
        // 2x2 mesh (data, model); dim 0 over data, dim 1 over model.
        let l = layout(&[2, 2], &[&[0], &[1]]);
        let offsets: Vec<Vec<usize>> = (0..4)
            .map(|d| l.shard_offsets(&[8, 6], d).unwrap())
            .collect();
        assert_eq!(
            offsets,
            vec![vec![0, 0], vec![0, 3], vec![4, 0], vec![4, 3]]
        );
    }

    #[test]
    fn two_axes_on_one_dimension_are_major_to_minor() {
        // dim 0 split over (model, data): index = model_pos * 2 + data_pos.
        let l = layout(&[2, 2], &[&[1, 0]]);
        let offsets: Vec<usize> = (0..4)
            .map(|d| l.shard_offsets(&[8], d).unwrap()[0])
            .collect();
        assert_eq!(offsets, vec![0, 4, 2, 6]);
    }

    #[test]
    fn unused_axes_replicate() {
        let l = layout(&[2, 2], &[&[0], &[]]);
        assert_eq!(l.shard_shape(&[4, 3]).unwrap(), vec![2, 3]);
        assert_eq!(l.shard_offsets(&[4, 3], 1).unwrap(), vec![0, 0]);
        assert_eq!(l.shard_offsets(&[4, 3], 2).unwrap(), vec![2, 0]);
    }

    #[test]
    fn bad_layouts_are_named() {
        let msg = |l: ShardLayout, shape: &[usize]| l.validate(shape).unwrap_err().to_string();
        assert!(msg(layout(&[2, 2], &[&[0]]), &[3]).contains("not divisible by 2"));
        assert!(msg(layout(&[2], &[&[1]]), &[4]).contains("mesh axis 1"));
        assert!(msg(layout(&[2, 2], &[&[0], &[0]]), &[4, 4]).contains("more than one dimension"));
        assert!(msg(layout(&[2], &[&[0]]), &[4, 4]).contains("names 1 dimensions"));
    }
}
