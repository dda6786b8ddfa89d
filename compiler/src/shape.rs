//! Tensor types (dtype + static dims) and shape helpers shared by the shape rules.

use crate::dtype::DType;
use std::fmt::{self, Write};

/// The static type of a tensor value: element type and dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Dimension sizes, outermost first; empty for a scalar.
    pub dims: Vec<usize>,
}

impl TensorType {
    /// A tensor type from a dtype and dims.
    pub fn new(dtype: DType, dims: &[usize]) -> Self {
        TensorType {
            dtype,
            dims: dims.to_vec(),
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The same dims with another element type.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        TensorType {
            dtype,
            dims: self.dims.clone(),
        }
    }

    /// The MLIR tensor type, e.g. `tensor<4x8xf32>` or `tensor<f32>`.
    pub fn mlir(&self) -> String {
        let mut s = String::with_capacity(16 + 4 * self.dims.len());
        s.push_str("tensor<");
        for d in &self.dims {
            let _ = write!(s, "{d}x");
        }
        s.push_str(self.dtype.mlir());
        s.push('>');
        s
    }
}

impl fmt::Display for TensorType {
    /// Prints `f32[4,8]`, the form used in IR dumps and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Resolves a possibly negative axis (`-1` = last) against `rank`.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!(
            "axis {axis} out of range for rank {rank} (valid: {}..{})",
            -r,
            r - 1
        ));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// Resolves a list of axes, rejecting duplicates; the result is sorted.
pub(crate) fn normalize_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(a, rank)?;
        if out.contains(&n) {
            return Err(format!("axis {a} given twice"));
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The numpy broadcast of two dim lists, or an error naming both.
pub(crate) fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}
