//! Helpers shared by the integration tests.

use axle_partition::ShardLayout;

/// Checks by brute force that every replica group of `layout` covers each
/// element of a `shape` array exactly once, and that every shard's block has
/// the layout's shard shape. Returns a description of the first failure.
pub fn check_coverage(layout: &ShardLayout, shape: &[usize]) -> Result<(), String> {
    let shard_shape = layout.shard_shape(shape).map_err(|e| e.to_string())?;
    let mut blocks = Vec::new();
    for shard in 0..layout.num_shards() {
        let slices = layout
            .shard_slices(shard, shape)
            .map_err(|e| e.to_string())?;
        let lens: Vec<usize> = slices.iter().map(|&(_, len)| len).collect();
        if lens != shard_shape {
            return Err(format!(
                "shard {shard} has block {slices:?}, expected shape {shard_shape:?}"
            ));
        }
        blocks.push((
            layout.replica_index(shard).map_err(|e| e.to_string())?,
            slices,
        ));
    }
    check_blocks(shape, layout.num_replicas(), &blocks)
}

/// Checks by enumerating every element of a `shape` array that the blocks
/// `(replica, per-dim (start, len))` of each of `replicas` groups hold it
/// exactly once.
pub fn check_blocks(
    shape: &[usize],
    replicas: usize,
    blocks: &[(usize, Vec<(usize, usize)>)],
) -> Result<(), String> {
    let total: usize = shape.iter().product();
    let mut counts = vec![vec![0u32; total]; replicas];
    for (replica, slices) in blocks {
        for (flat, count) in counts[*replica].iter_mut().enumerate() {
            let index = unflatten(flat, shape);
            if index
                .iter()
                .zip(slices)
                .all(|(&i, &(start, len))| start <= i && i < start + len)
            {
                *count += 1;
            }
        }
    }
    for (replica, counts) in counts.iter().enumerate() {
        if let Some(flat) = counts.iter().position(|&c| c != 1) {
            return Err(format!(
                "replica {replica}: element {:?} held {} times",
                unflatten(flat, shape),
                counts[flat]
            ));
        }
    }
    Ok(())
}

/// Row-major multi-index of `flat` over `shape`.
fn unflatten(flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    let mut rest = flat;
    for d in (0..shape.len()).rev() {
        index[d] = rest % shape[d];
        rest /= shape[d];
    }
    index
}
