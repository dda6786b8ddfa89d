//! Indexing: gather (take, take_along_axis) and scatter-add (its
//! transpose, `index_add`), with StableHLO's batching dims. Shape rules,
//! lowering attributes and VJP rules.
//!
//! Out-of-range indices follow an explicit [`IndexMode`], as JAX's `mode=`
//! does. XLA's gather clamps every start index so that the slice fits
//! ([`IndexMode::Clip`], the default of every op here), while its scatter
//! drops updates that fall outside; the VJP of a gather therefore scatters
//! at the same clamped indices, so the gradient of a clipped lookup goes to
//! the row that was read. [`IndexMode::Fill`] reads a fill value and drops
//! the gradient of out-of-range lookups. The checked mode is
//! [`Tensor::take_checked`]: a clipped lookup plus the number of
//! out-of-range indices as an `i32[]` result the caller returns (or turns
//! into a loss of NaN) and checks on the host.
//!
//! Scatter-adds of `bf16` / `f16` accumulate in `f32` and round once (so
//! an embedding's gradient summed over a large batch keeps f32 accuracy).

use crate::dtype::DType;
use crate::ir::{GatherDims, OpKind, ScatterDims};
use crate::op_table::check_dtypes;
use crate::ops::reduce::accumulation_dtype;
use crate::shape::{TensorType, normalize_axis};
use crate::tensor::Tensor;
use std::panic::Location;

/// What an indexing op does with an index outside `[0, size)` of the
/// indexed dim (negative indices are out of range: there is no wrap-around).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IndexMode {
    /// Clamp the index into range (XLA's gather and dynamic-slice semantics,
    /// JAX's `mode="clip"`): the lookup reads the first or last row, and
    /// its gradient goes to that row.
    Clip,
    /// Out-of-range lookups read this value (JAX's `mode="fill"`, whose
    /// default fill for floats is NaN) and pass no gradient. NaN on an
    /// integer or pred result is a trace error (op `fill`).
    Fill(f64),
}

impl Tensor {
    /// The rank-0 fill value of [`IndexMode::Fill`] in this tensor's dtype.
    /// NaN has no integer or pred form (it would silently become 0), so it
    /// is a trace error there, named after the `fill` of the caller's op.
    pub(crate) fn fill_splat(&self, value: f64, loc: &Location<'_>) -> Tensor {
        if value.is_nan() && !self.dtype().is_float() {
            self.b.fail(
                "fill",
                loc,
                format!(
                    "IndexMode::Fill(NaN) for a {} result: NaN has no {} value",
                    self.ty(),
                    self.dtype()
                ),
            );
        }
        self.splat_like(value)
    }
}

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
    /// from example `b` of the operand. Start indices are clamped so that
    /// every slice fits ([`IndexMode::Clip`]); see [`Tensor::gather_with_mode`].
    #[track_caller]
    pub fn gather(&self, indices: &Tensor, dims: GatherDims) -> Tensor {
        self.gather_at(indices, dims, Location::caller())
    }

    /// [`Tensor::gather`] with an explicit out-of-range mode. `Fill(v)`
    /// fills the whole slice of every index vector that would put any part
    /// of its slice outside the operand (JAX's `FILL_OR_DROP`), and passes
    /// no gradient for it.
    #[track_caller]
    pub fn gather_with_mode(&self, indices: &Tensor, dims: GatherDims, mode: IndexMode) -> Tensor {
        let loc = Location::caller();
        let r = self.gather_at(indices, dims.clone(), loc);
        let IndexMode::Fill(value) = mode else {
            return r;
        };
        if self.b.failed() {
            return r;
        }
        let batch: Vec<usize> = (0..r.rank())
            .filter(|d| !dims.offset_dims.contains(d))
            .collect();
        let valid =
            slices_in_bounds(self, indices, &dims).broadcast_in_dim_at(r.dims(), &batch, loc);
        valid.select(&r, &r.fill_splat(value, loc))
    }

    fn gather_at(&self, indices: &Tensor, dims: GatherDims, loc: &Location<'_>) -> Tensor {
        self.b.record1("gather", loc, &[self, indices], |t| {
            let out = gather_rule(t[0], t[1], &dims)?;
            Ok((OpKind::Gather(dims), vec![out]))
        })
    }

    /// Scatter-add: a copy of `self` with `updates` added at `indices`
    /// (repeated indices accumulate; updates whose window falls outside
    /// `self` are dropped, as XLA does); batching dims as for
    /// [`Tensor::gather`]. `bf16` / `f16` accumulate in `f32` and round once.
    #[track_caller]
    pub fn scatter_add(&self, indices: &Tensor, updates: &Tensor, dims: ScatterDims) -> Tensor {
        self.scatter_add_at("scatter_add", indices, updates, dims, Location::caller())
    }

    fn scatter_add_at(
        &self,
        op: &str,
        indices: &Tensor,
        updates: &Tensor,
        dims: ScatterDims,
        loc: &Location<'_>,
    ) -> Tensor {
        let acc = accumulation_dtype(self.dtype());
        let widen = |t: &Tensor| {
            if t.dtype() == acc {
                t.clone()
            } else {
                t.convert_at(acc, loc)
            }
        };
        let (x, u) = if updates.dtype() == self.dtype() {
            (widen(self), widen(updates))
        } else {
            (self.clone(), updates.clone())
        };
        let r = self.b.record1(op, loc, &[&x, indices, &u], |t| {
            let out = scatter_rule(t[0], t[1], t[2], &dims)?;
            Ok((OpKind::ScatterAdd(dims), vec![out]))
        });
        if r.dtype() == self.dtype() {
            r
        } else {
            r.convert_at(self.dtype(), loc)
        }
    }

    /// `numpy.take(self, indices, axis)`: rows of `self` along `axis` picked
    /// by integer `indices` of any shape (embedding lookup with axis 0).
    /// The result has dims `self[..axis] ++ indices ++ self[axis+1..]`.
    /// Out-of-range indices are clipped ([`IndexMode::Clip`]); see
    /// [`Tensor::take_with_mode`] and [`Tensor::take_checked`].
    #[track_caller]
    pub fn take(&self, indices: &Tensor, axis: i64) -> Tensor {
        self.take_at(indices, axis, Location::caller())
    }

    /// [`Tensor::take`] with an explicit out-of-range mode.
    #[track_caller]
    pub fn take_with_mode(&self, indices: &Tensor, axis: i64, mode: IndexMode) -> Tensor {
        let loc = Location::caller();
        let r = self.take_at(indices, axis, loc);
        let IndexMode::Fill(value) = mode else {
            return r;
        };
        let Ok(a) = normalize_axis(axis, self.rank()) else {
            return r;
        };
        let valid = indices.in_range(self.dims()[a]);
        let bdims: Vec<usize> = (a..a + indices.rank()).collect();
        let valid = valid.broadcast_in_dim_at(r.dims(), &bdims, loc);
        valid.select(&r, &r.fill_splat(value, loc))
    }

    /// The checked mode of [`Tensor::take`]: the clipped lookup and the
    /// number of out-of-range indices (`i32[]`), which the caller returns as
    /// a result and checks after the run (a nonzero count names this op's
    /// input as invalid). The gradient is that of the clipped lookup.
    #[track_caller]
    pub fn take_checked(&self, indices: &Tensor, axis: i64) -> (Tensor, Tensor) {
        let loc = Location::caller();
        let r = self.take_at(indices, axis, loc);
        let size = normalize_axis(axis, self.rank()).map_or(0, |a| self.dims()[a]);
        (r, indices.count_out_of_range(size))
    }

    /// `pred` of `self`'s shape: true where the integer `self` is in `[0, size)`.
    #[track_caller]
    pub fn in_range(&self, size: usize) -> Tensor {
        let lo = self.zeros_like();
        let hi = self.b.full(size as f64, self.dtype(), self.dims());
        self.greater_equal(&lo).logical_and(&self.less(&hi))
    }

    /// The number (`i32[]`) of elements of the integer `self` outside `[0, size)`.
    #[track_caller]
    pub fn count_out_of_range(&self, size: usize) -> Tensor {
        self.in_range(size)
            .logical_not()
            .convert(DType::I32)
            .sum_all()
    }

    fn take_at(&self, indices: &Tensor, axis: i64, loc: &Location<'_>) -> Tensor {
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
    /// Out-of-range indices are dropped (XLA's scatter semantics); `bf16` /
    /// `f16` accumulate in `f32`.
    #[track_caller]
    pub fn index_add(&self, axis: i64, indices: &Tensor, updates: &Tensor) -> Tensor {
        let loc = Location::caller();
        let Some((dims, idx)) = self.take_dims(indices, axis, "index_add", loc) else {
            return self.clone();
        };
        self.scatter_add_at("index_add", &idx, updates, dims, loc)
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
    /// Out-of-range indices are clipped ([`IndexMode::Clip`]).
    #[track_caller]
    pub fn take_along_axis(&self, indices: &Tensor, axis: i64) -> Tensor {
        self.take_along_axis_at(indices, axis, Location::caller())
    }

    /// [`Tensor::take_along_axis`] with an explicit out-of-range mode.
    #[track_caller]
    pub fn take_along_axis_with_mode(
        &self,
        indices: &Tensor,
        axis: i64,
        mode: IndexMode,
    ) -> Tensor {
        let loc = Location::caller();
        let r = self.take_along_axis_at(indices, axis, loc);
        match (mode, normalize_axis(axis, self.rank())) {
            (IndexMode::Fill(value), Ok(a)) if r.dims() == indices.dims() => indices
                .in_range(self.dims()[a])
                .select(&r, &r.fill_splat(value, loc)),
            _ => r,
        }
    }

    /// The checked mode of [`Tensor::take_along_axis`]: the clipped lookup
    /// and the number (`i32[]`) of out-of-range indices, as in
    /// [`Tensor::take_checked`].
    #[track_caller]
    pub fn take_along_axis_checked(&self, indices: &Tensor, axis: i64) -> (Tensor, Tensor) {
        let loc = Location::caller();
        let r = self.take_along_axis_at(indices, axis, loc);
        let size = normalize_axis(axis, self.rank()).map_or(0, |a| self.dims()[a]);
        (r, indices.count_out_of_range(size))
    }

    fn take_along_axis_at(&self, indices: &Tensor, axis: i64, loc: &Location<'_>) -> Tensor {
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

/// The start indices of a gather clamped as XLA's gather clamps them:
/// component k, addressing operand dim `d = start_index_map[k]`, into
/// `[0, x.dims[d] - slice_sizes[d]]`.
fn clamped_starts(x: &Tensor, idx: &Tensor, g: &GatherDims) -> Tensor {
    let b = idx.builder();
    let bounds: Vec<Tensor> = g
        .start_index_map
        .iter()
        .map(|&d| {
            let hi = x.dims()[d].saturating_sub(g.slice_sizes[d]) as f64;
            b.full(hi, idx.dtype(), &[1])
        })
        .collect();
    let hi = if g.index_vector_dim == idx.rank() {
        bounds[0].reshape(&[])
    } else {
        let refs: Vec<&Tensor> = bounds.iter().collect();
        Tensor::concatenate(&refs, 0).broadcast_in_dim(idx.dims(), &[g.index_vector_dim])
    };
    idx.clamp(&idx.splat_like(0.0), &hi)
}

/// `pred` over the batch dims of a gather (the indices' dims without the
/// index vector dim): true where every start index component `k` lies in
/// `[0, x.dims[d] - slice_sizes[d]]` for `d = start_index_map[k]`, so the
/// whole slice is inside the operand.
fn slices_in_bounds(x: &Tensor, idx: &Tensor, g: &GatherDims) -> Tensor {
    let ivd = g.index_vector_dim;
    let fits = |k: usize, component: &Tensor| {
        let d = g.start_index_map[k];
        component.in_range((x.dims()[d] + 1).saturating_sub(g.slice_sizes[d]))
    };
    if ivd == idx.rank() {
        return fits(0, idx);
    }
    let batch: Vec<usize> = (0..idx.rank())
        .filter(|&d| d != ivd)
        .map(|d| idx.dims()[d])
        .collect();
    let mut all = idx.builder().full(1.0, DType::Pred, &batch);
    for k in 0..g.start_index_map.len() {
        let component = idx.narrow(ivd as i64, k, 1).reshape(&batch);
        all = all.logical_and(&fits(k, &component));
    }
    all
}

/// Cotangent of `gather(x, idx)` w.r.t. `x`: scatter-add into zeros at the
/// start indices clamped as the forward gather clamped them, so a clipped
/// lookup's gradient reaches the row it read.
pub(crate) fn vjp_gather(x: &Tensor, idx: &Tensor, g: &GatherDims, ct: &Tensor) -> Tensor {
    x.zeros_like().scatter_add(
        &clamped_starts(x, idx, g),
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
