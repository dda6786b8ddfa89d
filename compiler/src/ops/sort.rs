//! Sorting: `stablehlo.sort` of several same-shape operands ordered by the
//! first (the keys), stable, ascending or descending; `argsort` and
//! `top_k` on top of it. Shape rule, lowering (with its comparator region)
//! and VJP side by side.
//!
//! The tracer appends an `i32` iota along the sorted axis as the last
//! operand, so the last result is the permutation that was applied (JAX's
//! sort JVP does the same): the VJP scatters each cotangent back to the
//! positions its elements came from.

use crate::dtype::DType;
use crate::emit::Emitter;
use crate::ir::{OpKind, ScatterDims};
use crate::shape::{TensorType, normalize_axis};
use crate::tensor::Tensor;
use std::panic::Location;

/// Sorts `operands` (same dims, any dtypes) along `axis` by the values of
/// `operands[0]`, ascending or `descending`, keeping the order of equal keys
/// (stable). Floats sort in IEEE total order: `-NaN < -inf < ... < -0.0 <
/// 0.0 < ... < inf < NaN`. Returns the sorted operands.
///
/// # Panics
/// If `operands` is empty: there is no function to record the error in.
#[track_caller]
pub fn sort(operands: &[&Tensor], axis: i64, descending: bool) -> Vec<Tensor> {
    let mut out = sort_with_permutation(operands, axis, descending, Location::caller());
    out.pop();
    out
}

fn sort_with_permutation(
    operands: &[&Tensor],
    axis: i64,
    descending: bool,
    loc: &Location<'_>,
) -> Vec<Tensor> {
    let first = operands[0];
    let dim = match normalize_axis(axis, first.rank()) {
        Ok(d) => d,
        Err(m) => {
            first
                .b
                .fail("sort", loc, format!("{m} (keys {})", first.ty));
            return vec![first.clone(); operands.len() + 1];
        }
    };
    let iota = first.b.iota(DType::I32, first.dims(), dim);
    let mut all: Vec<&Tensor> = operands.to_vec();
    all.push(&iota);
    first.b.record("sort", loc, &all, |t| {
        if let Some(bad) = t.iter().find(|x| x.dims != t[0].dims) {
            return Err(format!(
                "operands must have the keys' dims: keys {} vs {bad}",
                t[0]
            ));
        }
        Ok((
            OpKind::Sort { dim, descending },
            t.iter().map(|x| (*x).clone()).collect(),
        ))
    })
}

impl Tensor {
    /// This tensor sorted along `axis` (see [`sort`]).
    #[track_caller]
    pub fn sort_along(&self, axis: i64, descending: bool) -> Tensor {
        sort_with_permutation(&[self], axis, descending, Location::caller()).remove(0)
    }

    /// The `i32` indices that sort this tensor along `axis` (stable: equal
    /// values keep their order).
    #[track_caller]
    pub fn argsort(&self, axis: i64, descending: bool) -> Tensor {
        sort_with_permutation(&[self], axis, descending, Location::caller()).remove(1)
    }

    /// The `k` largest values along the last axis, largest first, and their
    /// `i32` indices (`lax.top_k`: equal values in index order). The VJP
    /// scatters the values' cotangent into the top positions.
    #[track_caller]
    pub fn top_k(&self, k: usize) -> (Tensor, Tensor) {
        let loc = Location::caller();
        let last = self.rank().max(1) - 1;
        if self.rank() == 0 || k > self.dims()[last] {
            self.b.fail(
                "top_k",
                loc,
                format!("k = {k} needs an operand of rank >= 1 with at least k elements on its last axis, got {}", self.ty),
            );
            return (self.clone(), self.clone());
        }
        let mut r = sort_with_permutation(&[self], -1, true, loc);
        let idx = r.pop().expect("sort returns the permutation");
        let vals = r.pop().expect("sort returns the keys");
        (vals.narrow(-1, 0, k), idx.narrow(-1, 0, k))
    }
}

// ---- lowering ----------------------------------------------------------

/// Writes `stablehlo.sort` with a comparator on the first operand.
pub(crate) fn lower_sort(
    e: &mut Emitter,
    ind: usize,
    dim: usize,
    descending: bool,
    a: &[String],
    at: &[&TensorType],
) -> Vec<String> {
    let r = e.fresh();
    e.line(
        ind,
        &format!("{r}:{} = \"stablehlo.sort\"({}) ({{", a.len(), a.join(", ")),
    );
    let scalars: Vec<TensorType> = at
        .iter()
        .flat_map(|t| {
            let s = TensorType::new(t.dtype, &[]);
            [s.clone(), s]
        })
        .collect();
    let args = e.block_args(ind, &scalars);
    let key = &scalars[0];
    let compare_type = if key.dtype.is_float() {
        "TOTALORDER"
    } else {
        key.dtype.compare_type()
    };
    let attrs = format!(
        "comparison_direction = #stablehlo<comparison_direction {}>, compare_type = #stablehlo<comparison_type {compare_type}>",
        if descending { "GT" } else { "LT" }
    );
    let pred = TensorType::new(DType::Pred, &[]);
    let c = e.op(
        ind + 2,
        "stablehlo.compare",
        &args[..2],
        &attrs,
        &[key, key],
        &pred,
    );
    e.ret(ind + 2, &[(&c, &pred)]);
    let tys: Vec<String> = at.iter().map(|t| t.mlir()).collect();
    e.line(
        ind,
        &format!(
            "}}) {{dimension = {dim} : i64, is_stable = true}} : ({}) -> ({})",
            tys.join(", "),
            tys.join(", ")
        ),
    );
    (0..a.len()).map(|i| format!("{r}#{i}")).collect()
}

// ---- VJP rule ----------------------------------------------------------

/// Cotangents of the sorted operands: each result cotangent scattered back
/// along `dim` to where its elements came from (`perm`, the last result);
/// none for the permutation's iota.
pub(crate) fn vjp_sort(
    x: &[Tensor],
    y: &[Tensor],
    g: &[Tensor],
    dim: usize,
) -> Vec<Option<Tensor>> {
    let perm = &y[y.len() - 1];
    let rank = perm.rank();
    let coords: Vec<Tensor> = (0..rank)
        .map(|d| {
            let c = if d == dim {
                perm.clone()
            } else {
                perm.b.iota(DType::I32, perm.dims(), d)
            };
            c.expand_dims(-1)
        })
        .collect();
    let refs: Vec<&Tensor> = coords.iter().collect();
    let idx = Tensor::concatenate(&refs, -1);
    let all: Vec<usize> = (0..rank).collect();
    let dims = ScatterDims {
        update_window_dims: vec![],
        inserted_window_dims: all.clone(),
        scatter_dims_to_operand_dims: all,
        index_vector_dim: rank,
        ..ScatterDims::default()
    };
    let mut out: Vec<Option<Tensor>> = x[..x.len() - 1]
        .iter()
        .zip(g)
        .map(|(xk, gk)| {
            xk.dtype()
                .is_float()
                .then(|| xk.zeros_like().scatter_add(&idx, gk, dims.clone()))
        })
        .collect();
    out.push(None);
    out
}
