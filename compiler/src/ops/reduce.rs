//! Reductions (sum, max, min, mean, argmax): shape rules, lowerings with
//! their reduction regions, VJP rules.
//!
//! Mixed precision: sums and means of `bf16` / `f16` accumulate in `f32`
//! and round to the operand's dtype once at the end, as JAX's `jnp.sum` and
//! `jnp.mean` do (`_upcast_f16_for_computation`); a mean divides the `f32`
//! sum by the element count in `f32`, so counts above 65504 (`f16`'s largest
//! finite value) stay finite. Max and min are exact in any dtype and reduce
//! in the operand's dtype.

use crate::dtype::DType;
use crate::emit::Emitter;
use crate::ir::{BinaryOp, CmpDir, OpKind, ReduceKind};
use crate::op_table::check_dtypes;
use crate::ops::constant::scalar_bytes;
use crate::ops::elementwise::{binary_mlir, compare_attrs};
use crate::shape::{TensorType, normalize_axes, normalize_axis};
use crate::tensor::Tensor;
use std::panic::Location;

fn reduced(x: &TensorType, axes: &[usize]) -> TensorType {
    let dims: Vec<usize> = (0..x.rank())
        .filter(|d| !axes.contains(d))
        .map(|d| x.dims[d])
        .collect();
    TensorType::new(x.dtype, &dims)
}

fn kept(x: &TensorType, axes: &[usize]) -> Vec<usize> {
    (0..x.rank())
        .map(|d| if axes.contains(&d) { 1 } else { x.dims[d] })
        .collect()
}

impl Tensor {
    fn reduce_at(
        &self,
        kind: ReduceKind,
        axes: &[i64],
        keep_dims: bool,
        loc: &Location<'_>,
    ) -> Tensor {
        let name = OpKind::Reduce { kind, axes: vec![] }.name();
        let mut keep_shape = None;
        let r = self.b.record1(&name, loc, &[self], |t| {
            let x = t[0];
            let axes = normalize_axes(axes, x.rank()).map_err(|m| format!("{m} (operand {x})"))?;
            check_dtypes(&name, t)?;
            keep_shape = Some(kept(x, &axes));
            let out = reduced(x, &axes);
            Ok((OpKind::Reduce { kind, axes }, vec![out]))
        });
        match keep_shape {
            Some(dims) if keep_dims && r.dims() != dims.as_slice() => r.reshape(&dims),
            _ => r,
        }
    }

    /// The sum over `axes` in [`accumulation_dtype`] (not rounded back).
    fn sum_accumulated(&self, axes: &[i64], keep_dims: bool, loc: &Location<'_>) -> Tensor {
        self.rounded_to(accumulation_dtype(self.dtype()), loc)
            .reduce_at(ReduceKind::Sum, axes, keep_dims, loc)
    }

    /// The number of elements each result of a reduction over `axes` sums
    /// (1 when `axes` is invalid: the reduction records that error).
    fn reduced_count(&self, axes: &[i64]) -> usize {
        normalize_axes(axes, self.rank())
            .map(|a| a.iter().map(|&d| self.dims()[d]).product())
            .unwrap_or(1)
    }

    /// Sum over `axes` (negative counts from the end); `keep_dims` leaves
    /// size-1 dims. `bf16` / `f16` accumulate in `f32` and round once.
    #[track_caller]
    pub fn sum(&self, axes: &[i64], keep_dims: bool) -> Tensor {
        let loc = Location::caller();
        self.sum_accumulated(axes, keep_dims, loc)
            .rounded_to(self.dtype(), loc)
    }

    /// Maximum over `axes`; over an empty axis, its identity `-inf` (the
    /// type's minimum for integers), as `lax.reduce_max` gives.
    #[track_caller]
    pub fn reduce_max(&self, axes: &[i64], keep_dims: bool) -> Tensor {
        self.reduce_at(ReduceKind::Max, axes, keep_dims, Location::caller())
    }

    /// Minimum over `axes`; over an empty axis, `+inf` (the type's maximum).
    #[track_caller]
    pub fn reduce_min(&self, axes: &[i64], keep_dims: bool) -> Tensor {
        self.reduce_at(ReduceKind::Min, axes, keep_dims, Location::caller())
    }

    /// Mean over `axes`: the sum (accumulated in `f32` for `bf16` / `f16`)
    /// divided by the element count in that accumulation dtype, rounded to
    /// the operand's dtype once. An empty reduction gives NaN (0 / 0), as
    /// in NumPy and JAX. Integer operands are a trace error (the quotient
    /// would truncate): convert to a float dtype first.
    #[track_caller]
    pub fn mean(&self, axes: &[i64], keep_dims: bool) -> Tensor {
        self.mean_at(axes, keep_dims, Location::caller())
    }

    /// Sum of all elements (a scalar); see [`Tensor::sum`].
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        let loc = Location::caller();
        let axes: Vec<i64> = (0..self.rank() as i64).collect();
        self.sum_accumulated(&axes, false, loc)
            .rounded_to(self.dtype(), loc)
    }

    /// Mean of all elements (a scalar); see [`Tensor::mean`].
    #[track_caller]
    pub fn mean_all(&self) -> Tensor {
        let axes: Vec<i64> = (0..self.rank() as i64).collect();
        self.mean_at(&axes, false, Location::caller())
    }

    fn mean_at(&self, axes: &[i64], keep_dims: bool, loc: &Location<'_>) -> Tensor {
        if !self.dtype().is_float() {
            self.b.fail(
                "mean",
                loc,
                format!(
                    "mean of {} would truncate; convert to a float dtype first \
                     (jnp.mean of integers returns a float)",
                    self.ty()
                ),
            );
            return self.clone();
        }
        let n = self.reduced_count(axes) as f64;
        let s = self.sum_accumulated(axes, keep_dims, loc);
        let count = s.b.scalar(n, s.dtype());
        s.binary_at(BinaryOp::Div, &count, loc)
            .rounded_to(self.dtype(), loc)
    }

    /// `self` converted to `dtype` (no op when it already has it).
    fn rounded_to(&self, dtype: DType, loc: &Location<'_>) -> Tensor {
        if self.dtype() == dtype {
            self.clone()
        } else {
            self.convert_at(dtype, loc)
        }
    }

    /// Index (`i32`) of the largest element along `axis`; the first one on
    /// ties. NaN counts as larger than any number, so a slice holding NaN
    /// gives the index of its first NaN (as `jnp.argmax`). An empty `axis`
    /// is a trace error (there is no index to give).
    #[track_caller]
    pub fn argmax(&self, axis: i64, keep_dims: bool) -> Tensor {
        let loc = Location::caller();
        let mut keep_shape = None;
        let r = self.b.record1("argmax", loc, &[self], |t| {
            let x = t[0];
            let a = normalize_axis(axis, x.rank()).map_err(|m| format!("{m} (operand {x})"))?;
            check_dtypes("argmax", t)?;
            if x.dims[a] == 0 {
                return Err(format!(
                    "axis {a} of {x} is empty: there is no largest element to index"
                ));
            }
            keep_shape = Some(kept(x, &[a]));
            Ok((
                OpKind::Argmax { axis: a },
                vec![reduced(x, &[a]).with_dtype(DType::I32)],
            ))
        });
        match keep_shape {
            Some(dims) if keep_dims => r.reshape(&dims),
            _ => r,
        }
    }
}

/// The dtype sums of `dtype` accumulate in: `f32` for the half-precision
/// floats `bf16` and `f16` (whose 8- and 11-bit significands stop growing
/// a running sum once it is 256 or 2048 times an addend), else `dtype`.
pub fn accumulation_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        d => d,
    }
}

// ---- lowering ----------------------------------------------------------

/// The identity of a reduction for `dtype` as constant bytes. Integer
/// limits are written from the integer type itself, never through f64
/// (which cannot hold `i64::MAX` or `u64::MAX`).
pub(crate) fn init_bytes(kind: ReduceKind, dtype: DType) -> Vec<u8> {
    match kind {
        ReduceKind::Sum => scalar_bytes(0.0, dtype),
        ReduceKind::Max if dtype.is_float() => scalar_bytes(f64::NEG_INFINITY, dtype),
        ReduceKind::Min if dtype.is_float() => scalar_bytes(f64::INFINITY, dtype),
        ReduceKind::Max => int_limits(dtype).0,
        ReduceKind::Min => int_limits(dtype).1,
    }
}

/// The (min, max) of an integer or pred `dtype` as little-endian bytes.
fn int_limits(dtype: DType) -> (Vec<u8>, Vec<u8>) {
    match dtype {
        DType::I32 => (
            i32::MIN.to_le_bytes().to_vec(),
            i32::MAX.to_le_bytes().to_vec(),
        ),
        DType::I64 => (
            i64::MIN.to_le_bytes().to_vec(),
            i64::MAX.to_le_bytes().to_vec(),
        ),
        DType::U32 => (vec![0; 4], u32::MAX.to_le_bytes().to_vec()),
        DType::U64 => (vec![0; 8], u64::MAX.to_le_bytes().to_vec()),
        DType::Pred => (vec![0], vec![1]),
        _ => (vec![0], vec![u8::MAX]),
    }
}

/// Lowers a reduction to `stablehlo.reduce` with a one-op region.
pub(crate) fn lower_reduce(
    e: &mut Emitter,
    ind: usize,
    kind: ReduceKind,
    axes: &[usize],
    x: &str,
    x_ty: &TensorType,
    out: &TensorType,
) -> String {
    let scalar = TensorType::new(x_ty.dtype, &[]);
    let init = e.constant(ind, &init_bytes(kind, x_ty.dtype), true, &scalar);
    let op = match kind {
        ReduceKind::Sum => BinaryOp::Add,
        ReduceKind::Max => BinaryOp::Max,
        ReduceKind::Min => BinaryOp::Min,
    };
    let r = e.fresh();
    e.line(ind, &format!("{r} = \"stablehlo.reduce\"({x}, {init}) ({{"));
    let a = e.fresh();
    let b = e.fresh();
    let s = scalar.mlir();
    e.line(ind, &format!("^bb0({a}: {s}, {b}: {s}):"));
    let sum = e.op(
        ind + 2,
        binary_mlir(op),
        &[&a, &b],
        "",
        &[&scalar, &scalar],
        &scalar,
    );
    e.ret(ind + 2, &[(&sum, &scalar)]);
    e.line(
        ind,
        &format!(
            "}}) {{dimensions = {}}} : ({}, {s}) -> {}",
            crate::emit::i64_array(axes),
            x_ty.mlir(),
            out.mlir()
        ),
    );
    r
}

/// Lowers argmax to a two-operand `stablehlo.reduce` over (value, index).
pub(crate) fn lower_argmax(
    e: &mut Emitter,
    ind: usize,
    axis: usize,
    x: &str,
    x_ty: &TensorType,
    out: &TensorType,
) -> String {
    let idx_ty = x_ty.with_dtype(DType::I32);
    let iota = e.op::<&str>(
        ind,
        "stablehlo.iota",
        &[],
        &format!("iota_dimension = {axis} : i64"),
        &[],
        &idx_ty,
    );
    let vs = TensorType::new(x_ty.dtype, &[]);
    let is = TensorType::new(DType::I32, &[]);
    let init_v = e.constant(ind, &init_bytes(ReduceKind::Max, x_ty.dtype), true, &vs);
    let init_i = e.constant(ind, &scalar_bytes(0.0, DType::I32), true, &is);
    let r = e.fresh();
    e.line(
        ind,
        &format!("{r}:2 = \"stablehlo.reduce\"({x}, {iota}, {init_v}, {init_i}) ({{"),
    );
    let (av, ai, bv, bi) = (e.fresh(), e.fresh(), e.fresh(), e.fresh());
    e.line(
        ind,
        &format!(
            "^bb0({av}: {0}, {ai}: {1}, {bv}: {0}, {bi}: {1}):",
            vs.mlir(),
            is.mlir()
        ),
    );
    let p = TensorType::new(DType::Pred, &[]);
    let i2 = ind + 2;
    let gt = e.op(
        i2,
        "stablehlo.compare",
        &[&av, &bv],
        &compare_attrs(CmpDir::Gt, &vs),
        &[&vs, &vs],
        &p,
    );
    let eq = e.op(
        i2,
        "stablehlo.compare",
        &[&av, &bv],
        &compare_attrs(CmpDir::Eq, &vs),
        &[&vs, &vs],
        &p,
    );
    let lt = e.op(
        i2,
        "stablehlo.compare",
        &[&ai, &bi],
        &compare_attrs(CmpDir::Lt, &is),
        &[&is, &is],
        &p,
    );
    // NaN is the largest value and NaNs tie with each other, so the first
    // NaN wins (as jnp.argmax); the rule stays associative and commutative.
    let ne = compare_attrs(CmpDir::Ne, &vs);
    let a_nan = e.op(i2, "stablehlo.compare", &[&av, &av], &ne, &[&vs, &vs], &p);
    let b_nan = e.op(i2, "stablehlo.compare", &[&bv, &bv], &ne, &[&vs, &vs], &p);
    let b_num = e.op(i2, "stablehlo.not", &[&b_nan], "", &[&p], &p);
    let nan_gt = e.op(i2, "stablehlo.and", &[&a_nan, &b_num], "", &[&p, &p], &p);
    let nan_eq = e.op(i2, "stablehlo.and", &[&a_nan, &b_nan], "", &[&p, &p], &p);
    let gt = e.op(i2, "stablehlo.or", &[&gt, &nan_gt], "", &[&p, &p], &p);
    let eq = e.op(i2, "stablehlo.or", &[&eq, &nan_eq], "", &[&p, &p], &p);
    let tie = e.op(i2, "stablehlo.and", &[&eq, &lt], "", &[&p, &p], &p);
    let take = e.op(i2, "stablehlo.or", &[&gt, &tie], "", &[&p, &p], &p);
    let v = e.op(
        i2,
        "stablehlo.select",
        &[&take, &av, &bv],
        "",
        &[&p, &vs, &vs],
        &vs,
    );
    let i = e.op(
        i2,
        "stablehlo.select",
        &[&take, &ai, &bi],
        "",
        &[&p, &is, &is],
        &is,
    );
    e.ret(i2, &[(&v, &vs), (&i, &is)]);
    e.line(
        ind,
        &format!(
            "}}) {{dimensions = array<i64: {axis}>}} : ({}, {}, {}, {}) -> ({}, {})",
            x_ty.mlir(),
            idx_ty.mlir(),
            vs.mlir(),
            is.mlir(),
            out.with_dtype(x_ty.dtype).mlir(),
            out.mlir()
        ),
    );
    format!("{r}#1")
}

// ---- VJP rule ----------------------------------------------------------

/// Cotangent of a reduction of `x` to `y` over `axes`.
pub(crate) fn vjp_reduce(
    kind: ReduceKind,
    axes: &[usize],
    x: &Tensor,
    y: &Tensor,
    g: &Tensor,
) -> Tensor {
    let keep = kept(&x.ty, axes);
    let gb = g.reshape(&keep).broadcast_to(x.dims());
    match kind {
        ReduceKind::Sum => gb,
        ReduceKind::Max | ReduceKind::Min => {
            let yb = y.reshape(&keep).broadcast_to(x.dims());
            let mask = x.equal(&yb).convert(x.dtype());
            let ax: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            let count = mask.sum(&ax, true);
            gb * mask / count
        }
    }
}
