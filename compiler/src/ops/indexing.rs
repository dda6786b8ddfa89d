//! Indexing: gather (take, take_along_axis) and scatter-add (its
//! transpose, `index_add`), with StableHLO's batching dims. Shape rules,
//! lowering attributes and VJP rules.

use crate::ir::{GatherDims, OpKind, ScatterDims};
use crate::op_table::check_dtypes;
use crate::shape::{TensorType, normalize_axis};
use crate::tensor::Tensor;
use std::panic::Location;

/// Dims of the indices that are batch dims (all but the index vector dim).
fn batch_dims(idx: &TensorType, ivd: usize) -> Vec<usize> {
    (0..idx.rank())
        .filter(|&d| d != ivd)
        .map(|d| idx.dims[d])
        .collect()
}

fn index_vector_len(idx: &TensorType, ivd: usize) -> usize {
    if ivd == idx.rank() { 1 } else { idx.dims[ivd] }
}

/// Batching dims come in pairs of equal size: operand dim `x_dims[i]` and
/// indices dim `idx_dims[i]` (not the index vector dim).
fn batching_pairs_match(
    x: &TensorType,
    idx: &TensorType,
    x_dims: &[usize],
    idx_dims: &[usize],
    ivd: usize,
) -> Result<(), String> {
    let ok = x_dims.len() == idx_dims.len()
        && x_dims
            .iter()
            .zip(idx_dims)
            .all(|(&a, &b)| a < x.rank() && b < idx.rank() && b != ivd && x.dims[a] == idx.dims[b]);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "batching dims {x_dims:?} of operand {x} do not pair with dims {idx_dims:?} of indices {idx}"
        ))
    }
}

fn gather_rule(x: &TensorType, idx: &TensorType, g: &GatherDims) -> Result<TensorType, String> {
    if !idx.dtype.is_int() {
        return Err(format!("indices must be integers, got {idx}"));
    }
    if g.index_vector_dim > idx.rank()
        || index_vector_len(idx, g.index_vector_dim) != g.start_index_map.len()
    {
        return Err(format!(
            "indices {idx} do not hold {}-component index vectors at dim {}",
            g.start_index_map.len(),
            g.index_vector_dim
        ));
    }
    if g.slice_sizes.len() != x.rank()
        || g.slice_sizes.iter().zip(&x.dims).any(|(s, d)| s > d)
        || g.collapsed_slice_dims
            .iter()
            .chain(&g.operand_batching_dims)
            .any(|&c| c >= x.rank() || g.slice_sizes[c] != 1)
        || g.start_index_map
            .iter()
            .any(|&m| m >= x.rank() || g.operand_batching_dims.contains(&m))
    {
        return Err(format!(
            "slice sizes {:?} / collapsed dims {:?} / index map {:?} / operand batching dims {:?} do not fit operand {x}",
            g.slice_sizes, g.collapsed_slice_dims, g.start_index_map, g.operand_batching_dims
        ));
    }
    batching_pairs_match(
        x,
        idx,
        &g.operand_batching_dims,
        &g.start_indices_batching_dims,
        g.index_vector_dim,
    )?;
    let batch = batch_dims(idx, g.index_vector_dim);
    let window: Vec<usize> = (0..x.rank())
        .filter(|d| !g.collapsed_slice_dims.contains(d) && !g.operand_batching_dims.contains(d))
        .map(|d| g.slice_sizes[d])
        .collect();
    let rank = batch.len() + window.len();
    if g.offset_dims.len() != window.len() || g.offset_dims.iter().any(|&o| o >= rank) {
        return Err(format!(
            "offset dims {:?} do not fit operand {x}",
            g.offset_dims
        ));
    }
    let (mut b, mut w) = (batch.into_iter(), window.into_iter());
    let dims: Vec<usize> = (0..rank)
        .map(|d| {
            if g.offset_dims.contains(&d) {
                w.next().unwrap_or(0)
            } else {
                b.next().unwrap_or(0)
            }
        })
        .collect();
    Ok(TensorType::new(x.dtype, &dims))
}

fn scatter_rule(
    x: &TensorType,
    idx: &TensorType,
    u: &TensorType,
    s: &ScatterDims,
) -> Result<TensorType, String> {
    if !idx.dtype.is_int() {
        return Err(format!("indices must be integers, got {idx}"));
    }
    if u.dtype != x.dtype {
        return Err(format!("updates {u} and operand {x} differ in dtype"));
    }
    check_dtypes("scatter_add", &[x])?;
    let batch = batch_dims(idx, s.index_vector_dim);
    let ubatch: Vec<usize> = (0..u.rank())
        .filter(|d| !s.update_window_dims.contains(d))
        .map(|d| u.dims[d])
        .collect();
    batching_pairs_match(
        x,
        idx,
        &s.input_batching_dims,
        &s.scatter_indices_batching_dims,
        s.index_vector_dim,
    )?;
    let window_ok =
        s.update_window_dims.len() + s.inserted_window_dims.len() + s.input_batching_dims.len()
            == x.rank();
    if ubatch != batch
        || !window_ok
        || index_vector_len(idx, s.index_vector_dim) != s.scatter_dims_to_operand_dims.len()
    {
        return Err(format!(
            "updates {u} do not match indices {idx} and operand {x} (window dims {:?}, inserted dims {:?})",
            s.update_window_dims, s.inserted_window_dims
        ));
    }
    Ok(x.clone())
}

impl Tensor {
    /// General `stablehlo.gather` (see the StableHLO spec for the dims),
    /// batching dims included: with `operand_batching_dims = [0]` and
    /// `start_indices_batching_dims = [0]`, example `b` of the indices reads
    /// from example `b` of the operand.
    #[track_caller]
    pub fn gather(&self, indices: &Tensor, dims: GatherDims) -> Tensor {
        self.b
            .record1("gather", Location::caller(), &[self, indices], |t| {
                let out = gather_rule(t[0], t[1], &dims)?;
                Ok((OpKind::Gather(dims), vec![out]))
            })
    }

    /// Scatter-add: a copy of `self` with `updates` added at `indices`
    /// (repeated indices accumulate); batching dims as for [`Tensor::gather`].
    #[track_caller]
    pub fn scatter_add(&self, indices: &Tensor, updates: &Tensor, dims: ScatterDims) -> Tensor {
        self.b.record1(
            "scatter_add",
            Location::caller(),
            &[self, indices, updates],
            |t| {
                let out = scatter_rule(t[0], t[1], t[2], &dims)?;
                Ok((OpKind::ScatterAdd(dims), vec![out]))
            },
        )
    }

    /// `numpy.take(self, indices, axis)`: rows of `self` along `axis` picked
    /// by integer `indices` of any shape (embedding lookup with axis 0).
    /// The result has dims `self[..axis] ++ indices ++ self[axis+1..]`.
    #[track_caller]
    pub fn take(&self, indices: &Tensor, axis: i64) -> Tensor {
        let loc = Location::caller();
        let Some((dims, idx)) = self.take_dims(indices, axis, "take", loc) else {
            return self.clone();
        };
        let g = GatherDims {
            offset_dims: dims.update_window_dims,
            collapsed_slice_dims: dims.inserted_window_dims,
            start_index_map: dims.scatter_dims_to_operand_dims,
            index_vector_dim: dims.index_vector_dim,
            slice_sizes: (0..self.rank())
                .map(|d| {
                    if d == axis_of(self, axis) {
                        1
                    } else {
                        self.dims()[d]
                    }
                })
                .collect(),
            ..GatherDims::default()
        };
        self.b.record1("take", loc, &[self, &idx], |t| {
            let out = gather_rule(t[0], t[1], &g)?;
            Ok((OpKind::Gather(g), vec![out]))
        })
    }

    /// The transpose of [`Tensor::take`]: adds `updates` (shaped like the
    /// result of `take`) into a copy of `self` at `indices` along `axis`.
    #[track_caller]
    pub fn index_add(&self, axis: i64, indices: &Tensor, updates: &Tensor) -> Tensor {
        let loc = Location::caller();
        let Some((dims, idx)) = self.take_dims(indices, axis, "index_add", loc) else {
            return self.clone();
        };
        self.b
            .record1("index_add", loc, &[self, &idx, updates], |t| {
                let out = scatter_rule(t[0], t[1], t[2], &dims)?;
                Ok((OpKind::ScatterAdd(dims), vec![out]))
            })
    }

    /// Shared dims of take / index_add, with indices given a trailing
    /// index-vector dim of size 1.
    fn take_dims(
        &self,
        indices: &Tensor,
        axis: i64,
        op: &str,
        loc: &Location<'_>,
    ) -> Option<(ScatterDims, Tensor)> {
        let a = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(m) => {
                self.b.fail(
                    op,
                    loc,
                    format!("{m} (operand {}, indices {})", self.ty, indices.ty),
                );
                return None;
            }
        };
        if !indices.dtype().is_int() {
            self.b.fail(
                op,
                loc,
                format!("indices must be integers, got {}", indices.ty),
            );
            return None;
        }
        let ir = indices.rank();
        let window: Vec<usize> = (0..a).chain(a + ir..self.rank() - 1 + ir).collect();
        let mut idims = indices.dims().to_vec();
        idims.push(1);
        Some((
            ScatterDims {
                update_window_dims: window,
                inserted_window_dims: vec![a],
                scatter_dims_to_operand_dims: vec![a],
                index_vector_dim: ir,
                ..ScatterDims::default()
            },
            indices.reshape(&idims),
        ))
    }

    /// `numpy.take_along_axis`: `out[.., i, ..] = self[.., indices[.., i, ..], ..]`
    /// along `axis`; `indices` has `self`'s rank and matches it off `axis`.
    #[track_caller]
    pub fn take_along_axis(&self, indices: &Tensor, axis: i64) -> Tensor {
        let loc = Location::caller();
        let a = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(m) => {
                self.b
                    .fail("take_along_axis", loc, format!("{m} (operand {})", self.ty));
                return self.clone();
            }
        };
        let same_rank = indices.rank() == self.rank();
        if !same_rank
            || !indices.dtype().is_int()
            || (0..self.rank()).any(|d| d != a && indices.dims()[d] != self.dims()[d])
        {
            self.b.fail(
                "take_along_axis",
                loc,
                format!(
                    "indices {} must be integers of the operand's rank matching operand {} off axis {a}",
                    indices.ty, self.ty
                ),
            );
            return self.clone();
        }
        let coords: Vec<Tensor> = (0..self.rank())
            .map(|d| {
                let c = if d == a {
                    indices.clone()
                } else {
                    self.b.iota(indices.dtype(), indices.dims(), d)
                };
                c.expand_dims(-1)
            })
            .collect();
        let refs: Vec<&Tensor> = coords.iter().collect();
        let idx = Tensor::concatenate(&refs, -1);
        let all: Vec<usize> = (0..self.rank()).collect();
        let g = GatherDims {
            offset_dims: vec![],
            collapsed_slice_dims: all.clone(),
            start_index_map: all,
            index_vector_dim: self.rank(),
            slice_sizes: vec![1; self.rank()],
            ..GatherDims::default()
        };
        self.b.record1("take_along_axis", loc, &[self, &idx], |t| {
            let out = gather_rule(t[0], t[1], &g)?;
            Ok((OpKind::Gather(g), vec![out]))
        })
    }
}

fn axis_of(x: &Tensor, axis: i64) -> usize {
    normalize_axis(axis, x.rank()).unwrap_or(0)
}

// ---- lowering ----------------------------------------------------------

fn field(name: &str, v: &[usize]) -> Option<String> {
    (!v.is_empty()).then(|| {
        let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        format!("{name} = [{}]", s.join(", "))
    })
}

/// Attributes of `stablehlo.gather`.
pub(crate) fn gather_attrs(g: &GatherDims) -> String {
    let mut f: Vec<String> = [
        field("offset_dims", &g.offset_dims),
        field("collapsed_slice_dims", &g.collapsed_slice_dims),
        field("operand_batching_dims", &g.operand_batching_dims),
        field(
            "start_indices_batching_dims",
            &g.start_indices_batching_dims,
        ),
        field("start_index_map", &g.start_index_map),
    ]
    .into_iter()
    .flatten()
    .collect();
    f.push(format!("index_vector_dim = {}", g.index_vector_dim));
    format!(
        "dimension_numbers = #stablehlo.gather<{}>, indices_are_sorted = false, slice_sizes = {}",
        f.join(", "),
        crate::emit::i64_array(&g.slice_sizes)
    )
}

/// Attributes of `stablehlo.scatter`.
pub(crate) fn scatter_attrs(s: &ScatterDims) -> String {
    let mut f: Vec<String> = [
        field("update_window_dims", &s.update_window_dims),
        field("inserted_window_dims", &s.inserted_window_dims),
        field("input_batching_dims", &s.input_batching_dims),
        field(
            "scatter_indices_batching_dims",
            &s.scatter_indices_batching_dims,
        ),
        field(
            "scatter_dims_to_operand_dims",
            &s.scatter_dims_to_operand_dims,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    f.push(format!("index_vector_dim = {}", s.index_vector_dim));
    format!(
        "indices_are_sorted = false, scatter_dimension_numbers = #stablehlo.scatter<{}>, unique_indices = false",
        f.join(", ")
    )
}

// ---- VJP rules ---------------------------------------------------------

/// Cotangent of `gather(x, idx)` w.r.t. `x`: scatter-add into zeros.
pub(crate) fn vjp_gather(x: &Tensor, idx: &Tensor, g: &GatherDims, ct: &Tensor) -> Tensor {
    x.zeros_like().scatter_add(
        idx,
        ct,
        ScatterDims {
            update_window_dims: g.offset_dims.clone(),
            inserted_window_dims: g.collapsed_slice_dims.clone(),
            scatter_dims_to_operand_dims: g.start_index_map.clone(),
            index_vector_dim: g.index_vector_dim,
            input_batching_dims: g.operand_batching_dims.clone(),
            scatter_indices_batching_dims: g.start_indices_batching_dims.clone(),
        },
    )
}

/// Cotangents of `scatter_add(x, idx, u)` w.r.t. `x` and `u`.
pub(crate) fn vjp_scatter(
    x: &Tensor,
    idx: &Tensor,
    u: &Tensor,
    s: &ScatterDims,
    ct: &Tensor,
) -> [Option<Tensor>; 3] {
    let mut window = s.update_window_dims.iter().map(|&d| u.dims()[d]);
    let slice_sizes: Vec<usize> = (0..x.rank())
        .map(|d| {
            if s.inserted_window_dims.contains(&d) || s.input_batching_dims.contains(&d) {
                1
            } else {
                window.next().unwrap_or(1)
            }
        })
        .collect();
    let gu = ct.gather(
        idx,
        GatherDims {
            offset_dims: s.update_window_dims.clone(),
            collapsed_slice_dims: s.inserted_window_dims.clone(),
            start_index_map: s.scatter_dims_to_operand_dims.clone(),
            index_vector_dim: s.index_vector_dim,
            slice_sizes,
            operand_batching_dims: s.input_batching_dims.clone(),
            start_indices_batching_dims: s.scatter_indices_batching_dims.clone(),
        },
    );
    [Some(ct.clone()), None, Some(gu)]
}
