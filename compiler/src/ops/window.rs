//! Windowed reductions (pooling): `stablehlo.reduce_window` with sum, max
//! or min over strided, padded windows. Shape rule, lowerings and VJPs
//! side by side:
//!
//! - sum: JAX's transpose rule: pad the cotangent with `stride - 1`
//!   interior zeros and the transposed edge padding, then sum it over the
//!   same windows with stride 1;
//! - max and min: `stablehlo.select_and_scatter` (XLA's pooling gradient,
//!   JAX's `_select_and_scatter_add`): each window's cotangent goes to the
//!   element the window selected, the first one on ties. That op is only
//!   made by this VJP, and differentiating it again is refused.

use crate::dtype::DType;
use crate::emit::{Emitter, i64_array};
use crate::ir::{BinaryOp, CmpDir, OpKind, ReduceKind, Window};
use crate::op_table::check_dtypes;
use crate::ops::constant::scalar_bytes;
use crate::ops::elementwise::{binary_mlir, compare_attrs};
use crate::ops::reduce::init_bytes;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

/// Result dims of windows `w` over `x`: `(d + lo + hi - window) / stride + 1`.
fn window_rule(x: &TensorType, w: &Window) -> Result<Vec<usize>, String> {
    let r = x.rank();
    if r == 0 || w.dims.len() != r || w.strides.len() != r || w.padding.len() != r {
        return Err(format!(
            "window {:?}, strides {:?}, padding {:?} must each have one entry per dim of {x} (rank >= 1)",
            w.dims, w.strides, w.padding
        ));
    }
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let padded = x.dims[i] as i64 + w.padding[i].0 + w.padding[i].1;
        let (win, stride) = (w.dims[i] as i64, w.strides[i] as i64);
        if win < 1 || stride < 1 || padded < win {
            return Err(format!(
                "dim {i}: window {win} with stride {stride} does not fit {padded} padded elements of {x}"
            ));
        }
        out.push(((padded - win) / stride + 1) as usize);
    }
    Ok(out)
}

impl Tensor {
    /// `stablehlo.reduce_window`: reduces (sum, max or min) every window of
    /// `window` elements, moved by `strides`, over `self` padded with
    /// `padding` (low, high) per dim with the reduction's identity (0, -inf,
    /// +inf). Max pooling of NHWC images with 2x2 windows is
    /// `x.reduce_window(ReduceKind::Max, &[1, 2, 2, 1], &[1, 2, 2, 1], &[(0, 0); 4])`.
    #[track_caller]
    pub fn reduce_window(
        &self,
        kind: ReduceKind,
        window: &[usize],
        strides: &[usize],
        padding: &[(i64, i64)],
    ) -> Tensor {
        let w = Window {
            dims: window.to_vec(),
            strides: strides.to_vec(),
            padding: padding.to_vec(),
        };
        self.b
            .record1("reduce_window", Location::caller(), &[self], |t| {
                check_dtypes("reduce_window", t)?;
                let dims = window_rule(t[0], &w)?;
                Ok((
                    OpKind::ReduceWindow { kind, window: w },
                    vec![TensorType::new(t[0].dtype, &dims)],
                ))
            })
    }

    /// Max and min pooling's cotangent: `source` (of the pooled shape)
    /// added at the element each window of `self` selects.
    fn select_and_scatter(&self, kind: ReduceKind, w: &Window, source: &Tensor) -> Tensor {
        self.b.record1(
            "select_and_scatter",
            Location::caller(),
            &[self, source],
            |t| {
                let dims = window_rule(t[0], w)?;
                if t[1].dims != dims || t[1].dtype != t[0].dtype {
                    return Err(format!(
                        "source {} must be {}{dims:?} for windows over {}",
                        t[1], t[0].dtype, t[0]
                    ));
                }
                Ok((
                    OpKind::SelectAndScatter {
                        kind,
                        window: w.clone(),
                    },
                    vec![t[0].clone()],
                ))
            },
        )
    }
}

// ---- lowering ----------------------------------------------------------

fn window_attrs(w: &Window) -> String {
    let pads: Vec<String> = w
        .padding
        .iter()
        .map(|(lo, hi)| format!("[{lo}, {hi}]"))
        .collect();
    format!(
        "padding = dense<[{}]> : tensor<{}x2xi64>, window_dimensions = {}, window_strides = {}",
        pads.join(", "),
        w.padding.len(),
        i64_array(&w.dims),
        i64_array(&w.strides)
    )
}

fn combine_op(kind: ReduceKind) -> BinaryOp {
    match kind {
        ReduceKind::Sum => BinaryOp::Add,
        ReduceKind::Max => BinaryOp::Max,
        ReduceKind::Min => BinaryOp::Min,
    }
}

/// Writes a two-argument region returning `op(a, b)` (or a compare).
fn region(e: &mut Emitter, ind: usize, scalar: &TensorType, body: &str, attrs: &str) {
    let args = e.block_args(ind, &[scalar.clone(), scalar.clone()]);
    let out = if body == "stablehlo.compare" {
        TensorType::new(DType::Pred, &[])
    } else {
        scalar.clone()
    };
    let r = e.op(ind + 2, body, &args, attrs, &[scalar, scalar], &out);
    e.ret(ind + 2, &[(&r, &out)]);
}

/// Writes `stablehlo.reduce_window` with the reduction's identity as init.
pub(crate) fn lower_reduce_window(
    e: &mut Emitter,
    ind: usize,
    kind: ReduceKind,
    w: &Window,
    x: &str,
    x_ty: &TensorType,
    out: &TensorType,
) -> String {
    let scalar = TensorType::new(x_ty.dtype, &[]);
    let init = e.constant(ind, &init_bytes(kind, x_ty.dtype), true, &scalar);
    let r = e.fresh();
    e.line(
        ind,
        &format!("{r} = \"stablehlo.reduce_window\"({x}, {init}) ({{"),
    );
    region(e, ind, &scalar, binary_mlir(combine_op(kind)), "");
    e.line(
        ind,
        &format!(
            "}}) {{{}}} : ({}, {}) -> {}",
            window_attrs(w),
            x_ty.mlir(),
            scalar.mlir(),
            out.mlir()
        ),
    );
    r
}

/// Writes `stablehlo.select_and_scatter` selecting the first max (GE) or
/// min (LE) of each window and adding the source there, from zeros.
pub(crate) fn lower_select_and_scatter(
    e: &mut Emitter,
    ind: usize,
    kind: ReduceKind,
    w: &Window,
    a: &[String],
    at: &[&TensorType],
) -> String {
    let scalar = TensorType::new(at[0].dtype, &[]);
    let init = e.constant(ind, &scalar_bytes(0.0, scalar.dtype), true, &scalar);
    let r = e.fresh();
    e.line(
        ind,
        &format!(
            "{r} = \"stablehlo.select_and_scatter\"({}, {}, {init}) ({{",
            a[0], a[1]
        ),
    );
    let dir = if kind == ReduceKind::Min {
        CmpDir::Le
    } else {
        CmpDir::Ge
    };
    region(
        e,
        ind,
        &scalar,
        "stablehlo.compare",
        &compare_attrs(dir, &scalar),
    );
    e.line(ind, "}, {");
    region(e, ind, &scalar, "stablehlo.add", "");
    e.line(
        ind,
        &format!(
            "}}) {{{}}} : ({}, {}, {}) -> {}",
            window_attrs(w),
            at[0].mlir(),
            at[1].mlir(),
            scalar.mlir(),
            at[0].mlir()
        ),
    );
    r
}

// ---- VJP rule ----------------------------------------------------------

/// Cotangent of `reduce_window(x)` w.r.t. `x`.
pub(crate) fn vjp_reduce_window(kind: ReduceKind, w: &Window, x: &Tensor, g: &Tensor) -> Tensor {
    if kind != ReduceKind::Sum {
        return x.select_and_scatter(kind, w, g);
    }
    // JAX's `_conv_general_vjp_lhs_padding` without dilation.
    let rank = x.rank();
    let mut low = Vec::with_capacity(rank);
    let mut high = Vec::with_capacity(rank);
    for i in 0..rank {
        let (win, stride) = (w.dims[i] as i64, w.strides[i] as i64);
        let dilated_out = (g.dims()[i] as i64 - 1) * stride + 1;
        let before = win - w.padding[i].0 - 1;
        low.push(before);
        high.push(x.dims()[i] as i64 + win - 1 - dilated_out - before);
    }
    let interior: Vec<usize> = w.strides.iter().map(|s| s - 1).collect();
    let padded = g.pad_signed(&g.splat_like(0.0), &low, &high, &interior);
    padded.reduce_window(
        ReduceKind::Sum,
        &w.dims,
        &vec![1; rank],
        &vec![(0, 0); rank],
    )
}
