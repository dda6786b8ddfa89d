//! `ShardLayout`: which block of a global array each device holds, in plain
//! numbers (mesh axis indices, no names), the form the runtime places arrays
//! with.

use crate::error::LayoutError;

/// How an array is split over a mesh, by axis index: the same meaning as the
/// runtime's `axle_runtime::ShardLayout`, which the root crate maps 1:1 from
/// this one (this crate does not depend on the runtime).
///
/// Shard `i` (= partition `i` = device `mesh.devices()[i]`) has the mesh
/// coordinates of row-major index `i` over `mesh_shape`. Along tensor
/// dimension `d`, the axes `dim_axes[d]` (major to minor) split the dimension
/// into `product(mesh_shape[a] for a in dim_axes[d])` equal blocks; the shard
/// holds the block whose index is its coordinates on those axes read as a
/// mixed-radix number (first axis most significant). Mesh axes that split no
/// dimension replicate the array: shards that differ only on them hold the
/// same data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardLayout {
    /// The sizes of the mesh axes, in mesh order.
    pub mesh_shape: Vec<usize>,
    /// For each tensor dimension, the indices of the mesh axes splitting it,
    /// major to minor (empty: the dimension is not split).
    pub dim_axes: Vec<Vec<usize>>,
}

impl ShardLayout {
    /// A layout that keeps a rank-`rank` array whole on every device.
    pub fn replicated(mesh_shape: Vec<usize>, rank: usize) -> ShardLayout {
        ShardLayout {
            mesh_shape,
            dim_axes: vec![Vec::new(); rank],
        }
    }

    /// The number of shards (devices): the product of the mesh sizes.
    pub fn num_shards(&self) -> usize {
        self.mesh_shape.iter().product()
    }

    /// The number of blocks dimension `dim` is split into (1 if not split or
    /// past the rank).
    pub fn parts(&self, dim: usize) -> usize {
        self.dim_axes.get(dim).map_or(1, |axes| {
            axes.iter()
                .map(|&a| self.mesh_shape.get(a).copied().unwrap_or(1))
                .product()
        })
    }

    /// Checks that the layout can split an array of `global_shape`: same rank,
    /// axis indices inside the mesh and each used once, every dimension
    /// divisible by its number of blocks.
    pub fn check(&self, global_shape: &[usize]) -> Result<(), LayoutError> {
        if global_shape.len() != self.dim_axes.len() {
            return Err(LayoutError::Rank {
                layout_rank: self.dim_axes.len(),
                shape: global_shape.to_vec(),
            });
        }
        let mut used_by: Vec<Option<usize>> = vec![None; self.mesh_shape.len()];
        for (dim, axes) in self.dim_axes.iter().enumerate() {
            for &axis in axes {
                let slot = used_by.get_mut(axis).ok_or(LayoutError::AxisIndex {
                    dim,
                    axis,
                    mesh_rank: self.mesh_shape.len(),
                })?;
                if let Some(first_dim) = *slot {
                    return Err(LayoutError::DuplicateAxis {
                        axis,
                        first_dim,
                        second_dim: dim,
                    });
                }
                *slot = Some(dim);
            }
            let parts = self.parts(dim);
            if parts == 0 || !global_shape[dim].is_multiple_of(parts) {
                return Err(LayoutError::NotDivisible {
                    dim,
                    size: global_shape[dim],
                    parts,
                });
            }
        }
        Ok(())
    }

    /// The shape every shard of a `global_shape` array has.
    pub fn shard_shape(&self, global_shape: &[usize]) -> Result<Vec<usize>, LayoutError> {
        self.check(global_shape)?;
        Ok(global_shape
            .iter()
            .enumerate()
            .map(|(dim, &size)| size / self.parts(dim))
            .collect())
    }

    /// The block of a `global_shape` array that shard `shard` holds: one
    /// `(start, len)` per dimension.
    pub fn shard_slices(
        &self,
        shard: usize,
        global_shape: &[usize],
    ) -> Result<Vec<(usize, usize)>, LayoutError> {
        let shard_shape = self.shard_shape(global_shape)?;
        let coords = self.coords(shard)?;
        Ok(self
            .dim_axes
            .iter()
            .zip(shard_shape)
            .map(|(axes, len)| {
                let block = axes
                    .iter()
                    .fold(0, |acc, &a| acc * self.mesh_shape[a] + coords[a]);
                (block * len, len)
            })
            .collect())
    }

    /// The number of copies of each block: the product of the sizes of the
    /// mesh axes that split no dimension.
    pub fn num_replicas(&self) -> usize {
        self.replica_axes()
            .iter()
            .map(|&a| self.mesh_shape[a])
            .product()
    }

    /// Which copy shard `shard` holds, in `0..num_replicas()`: its coordinates
    /// on the axes that split no dimension, read row-major. Shards with the
    /// same replica index together hold each element exactly once (e.g. the
    /// checkpoint writer can save replica 0 only).
    pub fn replica_index(&self, shard: usize) -> Result<usize, LayoutError> {
        let coords = self.coords(shard)?;
        Ok(self
            .replica_axes()
            .iter()
            .fold(0, |acc, &a| acc * self.mesh_shape[a] + coords[a]))
    }

    /// Mesh axes (in mesh order) that split no dimension.
    fn replica_axes(&self) -> Vec<usize> {
        (0..self.mesh_shape.len())
            .filter(|a| !self.dim_axes.iter().any(|axes| axes.contains(a)))
            .collect()
    }

    /// The mesh coordinates of shard `shard`.
    fn coords(&self, shard: usize) -> Result<Vec<usize>, LayoutError> {
        let num_shards = self.num_shards();
        if shard >= num_shards {
            return Err(LayoutError::Shard { shard, num_shards });
        }
        Ok(row_major_coords(shard, &self.mesh_shape))
    }
}

/// The multi-index of flat row-major index `index` over `shape` (last
/// dimension fastest). `index` must be below the product of `shape`.
pub(crate) fn row_major_coords(index: usize, shape: &[usize]) -> Vec<usize> {
    let mut coords = vec![0; shape.len()];
    let mut rest = index;
    for (coord, &size) in coords.iter_mut().zip(shape).rev() {
        *coord = rest % size;
        rest /= size;
    }
    coords
}
