//! Elementwise primitives: unary math, binary arithmetic with numpy
//! broadcasting, compare, select, clamp, convert, bitcast_convert,
//! reduce_precision. Shape rules, lowerings and VJP rules side by side; the
//! element types each op accepts come from [`crate::op_table`].

use crate::dtype::DType;
use crate::ir::{BinaryOp, CmpDir, OpKind, UnaryOp};
use crate::op_table::check_dtypes;
use crate::shape::{TensorType, broadcast_dims};
use crate::tensor::Tensor;
use std::panic::Location;

// ---- shape rules and tracing -------------------------------------------

/// The op a binary op of `pred` operands is: StableHLO defines add and
/// maximum on booleans as logical or, multiply and minimum as logical and.
fn on_pred(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Add | BinaryOp::Max => BinaryOp::Or,
        BinaryOp::Mul | BinaryOp::Min => BinaryOp::And,
        other => other,
    }
}

/// Broadcasts all operands to their common numpy shape (dtypes must agree).
fn broadcast_all(op: &str, xs: &[&Tensor], loc: &Location<'_>) -> Option<Vec<Tensor>> {
    let mut dims = xs[0].dims().to_vec();
    for x in &xs[1..] {
        match broadcast_dims(&dims, x.dims()) {
            Some(d) => dims = d,
            None => {
                let shapes: Vec<String> = xs.iter().map(|t| t.ty.to_string()).collect();
                xs[0].b.fail(
                    op,
                    loc,
                    format!("shapes do not broadcast: {}", shapes.join(" vs ")),
                );
                return None;
            }
        }
    }
    Some(
        xs.iter()
            .map(|x| {
                if x.dims() == dims.as_slice() {
                    (*x).clone()
                } else {
                    x.broadcast_to_at(&dims, loc)
                }
            })
            .collect(),
    )
}

impl Tensor {
    /// Records a unary elementwise op.
    #[track_caller]
    pub(crate) fn unary(&self, op: UnaryOp) -> Tensor {
        let name = OpKind::Unary(op).name();
        self.b.record1(&name, Location::caller(), &[self], |t| {
            check_dtypes(&name, t)?;
            let out = match op {
                UnaryOp::IsFinite => t[0].with_dtype(DType::Pred),
                _ => t[0].clone(),
            };
            Ok((OpKind::Unary(op), vec![out]))
        })
    }

    /// Records a binary elementwise op with numpy broadcasting.
    #[track_caller]
    pub(crate) fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Tensor {
        self.binary_at(op, rhs, Location::caller())
    }

    /// [`Tensor::binary`] recorded at the caller's location `loc`.
    pub(crate) fn binary_at(&self, op: BinaryOp, rhs: &Tensor, loc: &Location<'_>) -> Tensor {
        let name = OpKind::Binary(op).name();
        if self.dtype() != rhs.dtype() {
            self.b.fail(
                &name,
                loc,
                format!("dtype mismatch: lhs {} vs rhs {}", self.ty, rhs.ty),
            );
        }
        let Some(xs) = broadcast_all(&name, &[self, rhs], loc) else {
            return self.clone();
        };
        self.b.record1(&name, loc, &[&xs[0], &xs[1]], |t| {
            check_dtypes(&name, t)?;
            let op = if t[0].dtype == DType::Pred {
                on_pred(op)
            } else {
                op
            };
            Ok((OpKind::Binary(op), vec![t[0].clone()]))
        })
    }

    /// `e^x`.
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm.
    #[track_caller]
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }
    /// `log(1 + x)`, accurate near 0.
    #[track_caller]
    pub fn log1p(&self) -> Tensor {
        self.unary(UnaryOp::Log1p)
    }
    /// Hyperbolic tangent.
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }
    /// The logistic sigmoid `1 / (1 + e^-x)`.
    #[track_caller]
    pub fn logistic(&self) -> Tensor {
        self.unary(UnaryOp::Logistic)
    }
    /// Square root.
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }
    /// `1 / sqrt(x)`.
    #[track_caller]
    pub fn rsqrt(&self) -> Tensor {
        self.unary(UnaryOp::Rsqrt)
    }
    /// The Gauss error function.
    #[track_caller]
    pub fn erf(&self) -> Tensor {
        self.unary(UnaryOp::Erf)
    }
    /// Sine.
    #[track_caller]
    pub fn sin(&self) -> Tensor {
        self.unary(UnaryOp::Sin)
    }
    /// Cosine.
    #[track_caller]
    pub fn cos(&self) -> Tensor {
        self.unary(UnaryOp::Cos)
    }
    /// Absolute value.
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }
    /// Sign: -1, 0 or 1.
    #[track_caller]
    pub fn sign(&self) -> Tensor {
        self.unary(UnaryOp::Sign)
    }
    /// Round toward negative infinity.
    #[track_caller]
    pub fn floor(&self) -> Tensor {
        self.unary(UnaryOp::Floor)
    }
    /// `e^x - 1`, accurate near 0.
    #[track_caller]
    pub fn expm1(&self) -> Tensor {
        self.unary(UnaryOp::Expm1)
    }
    /// Round toward positive infinity.
    #[track_caller]
    pub fn ceil(&self) -> Tensor {
        self.unary(UnaryOp::Ceil)
    }
    /// Round to the nearest integer, ties to even (`jnp.round`, IEEE
    /// `roundTiesToEven`): 0.5 -> 0, 1.5 -> 2, -2.5 -> -2.
    #[track_caller]
    pub fn round_nearest_even(&self) -> Tensor {
        self.unary(UnaryOp::RoundNearestEven)
    }
    /// Round to the nearest integer, ties away from zero (C's `round`,
    /// Rust's `f64::round`): 0.5 -> 1, -2.5 -> -3.
    #[track_caller]
    pub fn round_nearest_afz(&self) -> Tensor {
        self.unary(UnaryOp::RoundNearestAfz)
    }
    /// `pred`: true where the float is neither infinite nor NaN.
    #[track_caller]
    pub fn is_finite(&self) -> Tensor {
        self.unary(UnaryOp::IsFinite)
    }
    /// Number of set bits of each integer (same integer type).
    #[track_caller]
    pub fn popcnt(&self) -> Tensor {
        self.unary(UnaryOp::PopCnt)
    }
    /// Logical not of a pred (bitwise not of an integer).
    #[track_caller]
    pub fn logical_not(&self) -> Tensor {
        self.unary(UnaryOp::Not)
    }
    /// `x * x`.
    #[track_caller]
    pub fn square(&self) -> Tensor {
        self.binary(BinaryOp::Mul, self)
    }
    /// `x ^ y`, broadcasting.
    #[track_caller]
    pub fn pow(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::Pow, y)
    }
    /// `x ^ y` for a scalar exponent.
    #[track_caller]
    pub fn powf(&self, y: f64) -> Tensor {
        self.binary(BinaryOp::Pow, &self.splat_like(y))
    }
    /// Elementwise maximum, broadcasting.
    #[track_caller]
    pub fn maximum(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::Max, y)
    }
    /// Elementwise minimum, broadcasting.
    #[track_caller]
    pub fn minimum(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::Min, y)
    }
    /// Logical (bitwise) and, broadcasting.
    #[track_caller]
    pub fn logical_and(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::And, y)
    }
    /// Logical (bitwise) or, broadcasting.
    #[track_caller]
    pub fn logical_or(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::Or, y)
    }
    /// Logical (bitwise) exclusive or, broadcasting.
    #[track_caller]
    pub fn logical_xor(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::Xor, y)
    }
    /// Remainder of truncated division, with the sign of `self` (C's
    /// `fmod` for floats, Rust's `%`), broadcasting.
    #[track_caller]
    pub fn rem(&self, y: &Tensor) -> Tensor {
        self.binary(BinaryOp::Rem, y)
    }
    /// `atan2(self, x)`: the angle in `[-pi, pi]` of the point `(x, self)`, broadcasting.
    #[track_caller]
    pub fn atan2(&self, x: &Tensor) -> Tensor {
        self.binary(BinaryOp::Atan2, x)
    }
    /// Integer shift left by `bits` (0 for shifts of the bit width or more).
    #[track_caller]
    pub fn shift_left(&self, bits: &Tensor) -> Tensor {
        self.binary(BinaryOp::ShiftLeft, bits)
    }
    /// Integer shift right by `bits`, shifting in the sign bit.
    #[track_caller]
    pub fn shift_right_arithmetic(&self, bits: &Tensor) -> Tensor {
        self.binary(BinaryOp::ShiftRightArithmetic, bits)
    }
    /// Integer shift right by `bits`, shifting in zeros.
    #[track_caller]
    pub fn shift_right_logical(&self, bits: &Tensor) -> Tensor {
        self.binary(BinaryOp::ShiftRightLogical, bits)
    }

    /// Elementwise comparison giving `pred`, broadcasting.
    #[track_caller]
    pub fn compare(&self, dir: CmpDir, y: &Tensor) -> Tensor {
        let name = OpKind::Compare(dir).name();
        let loc = Location::caller();
        if self.dtype() != y.dtype() {
            self.b.fail(
                &name,
                loc,
                format!("dtype mismatch: lhs {} vs rhs {}", self.ty, y.ty),
            );
        }
        let Some(xs) = broadcast_all(&name, &[self, y], loc) else {
            return self.clone();
        };
        self.b.record1(&name, loc, &[&xs[0], &xs[1]], |t| {
            Ok((OpKind::Compare(dir), vec![t[0].with_dtype(DType::Pred)]))
        })
    }
    /// `x == y`.
    #[track_caller]
    pub fn equal(&self, y: &Tensor) -> Tensor {
        self.compare(CmpDir::Eq, y)
    }
    /// `x != y`.
    #[track_caller]
    pub fn not_equal(&self, y: &Tensor) -> Tensor {
        self.compare(CmpDir::Ne, y)
    }
    /// `x < y`.
    #[track_caller]
    pub fn less(&self, y: &Tensor) -> Tensor {
        self.compare(CmpDir::Lt, y)
    }
    /// `x <= y`.
    #[track_caller]
    pub fn less_equal(&self, y: &Tensor) -> Tensor {
        self.compare(CmpDir::Le, y)
    }
    /// `x > y`.
    #[track_caller]
    pub fn greater(&self, y: &Tensor) -> Tensor {
        self.compare(CmpDir::Gt, y)
    }
    /// `x >= y`.
    #[track_caller]
    pub fn greater_equal(&self, y: &Tensor) -> Tensor {
        self.compare(CmpDir::Ge, y)
    }

    /// `self ? on_true : on_false` elementwise; `self` is `pred`; all three broadcast.
    #[track_caller]
    pub fn select(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        let loc = Location::caller();
        let Some(xs) = broadcast_all("select", &[self, on_true, on_false], loc) else {
            return on_true.clone();
        };
        self.b
            .record1("select", loc, &[&xs[0], &xs[1], &xs[2]], |t| {
                if t[0].dtype != DType::Pred {
                    return Err(format!("predicate must be pred, got {}", t[0]));
                }
                if t[1].dtype != t[2].dtype {
                    return Err(format!(
                        "branch dtypes differ: on_true {} vs on_false {}",
                        t[1], t[2]
                    ));
                }
                Ok((OpKind::Select, vec![t[1].clone()]))
            })
    }

    /// `min(max(x, lo), hi)` with tensor bounds broadcast to `x`'s shape.
    #[track_caller]
    pub fn clamp(&self, lo: &Tensor, hi: &Tensor) -> Tensor {
        let loc = Location::caller();
        let Some(xs) = broadcast_all("clamp", &[lo, self, hi], loc) else {
            return self.clone();
        };
        self.b
            .record1("clamp", loc, &[&xs[0], &xs[1], &xs[2]], |t| {
                if t[0].dtype != t[1].dtype || t[2].dtype != t[1].dtype {
                    return Err(format!(
                        "dtype mismatch: lo {} x {} hi {}",
                        t[0], t[1], t[2]
                    ));
                }
                Ok((OpKind::Clamp, vec![t[1].clone()]))
            })
    }

    /// `clamp` with scalar bounds.
    #[track_caller]
    pub fn clip(&self, lo: f64, hi: f64) -> Tensor {
        self.clamp(&self.splat_like(lo), &self.splat_like(hi))
    }

    /// Converts the element type (float→int truncates toward zero).
    #[track_caller]
    pub fn convert(&self, dtype: DType) -> Tensor {
        self.convert_at(dtype, Location::caller())
    }

    /// [`Tensor::convert`] recorded at the caller's location `loc`.
    pub(crate) fn convert_at(&self, dtype: DType, loc: &Location<'_>) -> Tensor {
        self.b.record1("convert", loc, &[self], |t| {
            Ok((OpKind::Convert, vec![t[0].with_dtype(dtype)]))
        })
    }

    /// The same bits read as `dtype`, which must have the element size of
    /// `self` (`lax.bitcast_convert_type` between equal widths), e.g. f32
    /// to u32 to inspect a float's sign, exponent and mantissa. `pred` on
    /// either side is a trace error (XLA refuses it).
    #[track_caller]
    pub fn bitcast_convert(&self, dtype: DType) -> Tensor {
        self.b
            .record1("bitcast_convert", Location::caller(), &[self], |t| {
                check_dtypes("bitcast_convert", t)?;
                if t[0].dtype.size_bytes() != dtype.size_bytes() || dtype == DType::Pred {
                    return Err(format!(
                        "{} ({} bytes per element) cannot be read as {dtype} ({} bytes); \
                         only types of equal width (not pred) are supported",
                        t[0],
                        t[0].dtype.size_bytes(),
                        dtype.size_bytes()
                    ));
                }
                Ok((OpKind::BitcastConvert, vec![t[0].with_dtype(dtype)]))
            })
    }

    /// Rounds each float to the nearest value of a format with
    /// `exponent_bits` and `mantissa_bits` (overflow to inf, underflow to
    /// 0, NaN kept), keeping the element type: `reduce_precision(x, 8, 7)`
    /// of an f32 is its bf16 rounding.
    #[track_caller]
    pub fn reduce_precision(&self, exponent_bits: u32, mantissa_bits: u32) -> Tensor {
        let name = "reduce_precision";
        self.b.record1(name, Location::caller(), &[self], |t| {
            check_dtypes(name, t)?;
            if exponent_bits < 1 {
                return Err(format!(
                    "exponent_bits must be at least 1, got {exponent_bits} (operand {})",
                    t[0]
                ));
            }
            Ok((
                OpKind::ReducePrecision {
                    exponent_bits,
                    mantissa_bits,
                },
                vec![t[0].clone()],
            ))
        })
    }
}

// ---- lowering ----------------------------------------------------------

/// The StableHLO op name of a unary primitive.
pub(crate) fn unary_mlir(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "stablehlo.negate",
        UnaryOp::Abs => "stablehlo.abs",
        UnaryOp::Sign => "stablehlo.sign",
        UnaryOp::Exp => "stablehlo.exponential",
        UnaryOp::Log => "stablehlo.log",
        UnaryOp::Log1p => "stablehlo.log_plus_one",
        UnaryOp::Tanh => "stablehlo.tanh",
        UnaryOp::Logistic => "stablehlo.logistic",
        UnaryOp::Sqrt => "stablehlo.sqrt",
        UnaryOp::Rsqrt => "stablehlo.rsqrt",
        UnaryOp::Erf => "chlo.erf",
        UnaryOp::Sin => "stablehlo.sine",
        UnaryOp::Cos => "stablehlo.cosine",
        UnaryOp::Floor => "stablehlo.floor",
        UnaryOp::Not => "stablehlo.not",
        UnaryOp::Expm1 => "stablehlo.exponential_minus_one",
        UnaryOp::Ceil => "stablehlo.ceil",
        UnaryOp::RoundNearestEven => "stablehlo.round_nearest_even",
        UnaryOp::RoundNearestAfz => "stablehlo.round_nearest_afz",
        UnaryOp::IsFinite => "stablehlo.is_finite",
        UnaryOp::PopCnt => "stablehlo.popcnt",
    }
}

/// The StableHLO op name of a binary primitive.
pub(crate) fn binary_mlir(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "stablehlo.add",
        BinaryOp::Sub => "stablehlo.subtract",
        BinaryOp::Mul => "stablehlo.multiply",
        BinaryOp::Div => "stablehlo.divide",
        BinaryOp::Pow => "stablehlo.power",
        BinaryOp::Max => "stablehlo.maximum",
        BinaryOp::Min => "stablehlo.minimum",
        BinaryOp::And => "stablehlo.and",
        BinaryOp::Or => "stablehlo.or",
        BinaryOp::ShiftRightLogical => "stablehlo.shift_right_logical",
        BinaryOp::Xor => "stablehlo.xor",
        BinaryOp::Rem => "stablehlo.remainder",
        BinaryOp::Atan2 => "stablehlo.atan2",
        BinaryOp::ShiftLeft => "stablehlo.shift_left",
        BinaryOp::ShiftRightArithmetic => "stablehlo.shift_right_arithmetic",
    }
}

/// The attributes of `stablehlo.compare`.
pub(crate) fn compare_attrs(dir: CmpDir, operand: &TensorType) -> String {
    let d = match dir {
        CmpDir::Eq => "EQ",
        CmpDir::Ne => "NE",
        CmpDir::Lt => "LT",
        CmpDir::Le => "LE",
        CmpDir::Gt => "GT",
        CmpDir::Ge => "GE",
    };
    format!(
        "comparison_direction = #stablehlo<comparison_direction {d}>, compare_type = #stablehlo<comparison_type {}>",
        operand.dtype.compare_type()
    )
}

// ---- VJP rules ---------------------------------------------------------

/// Cotangents of a unary op's operand; `None` = zero.
pub(crate) fn vjp_unary(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Option<Tensor> {
    Some(match op {
        UnaryOp::Neg => -g,
        UnaryOp::Abs => g * &x.sign(),
        UnaryOp::Sign
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::RoundNearestEven
        | UnaryOp::RoundNearestAfz
        | UnaryOp::IsFinite
        | UnaryOp::PopCnt
        | UnaryOp::Not => return None,
        UnaryOp::Exp => g * y,
        UnaryOp::Expm1 => g * &(y + 1.0),
        UnaryOp::Log => g / x,
        UnaryOp::Log1p => g / &(x + 1.0),
        UnaryOp::Tanh => g * &(1.0 - &y.square()),
        UnaryOp::Logistic => g * &(y * &(1.0 - y)),
        UnaryOp::Sqrt => g * 0.5 / y,
        UnaryOp::Rsqrt => g * -0.5 * y / x,
        UnaryOp::Erf => g * (2.0 / std::f64::consts::PI.sqrt()) * &(-&x.square()).exp(),
        UnaryOp::Sin => g * &x.cos(),
        UnaryOp::Cos => -(g * &x.sin()),
    })
}

/// Cotangents of a binary op's operands; `None` = zero.
pub(crate) fn vjp_binary(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    g: &Tensor,
) -> [Option<Tensor>; 2] {
    match op {
        BinaryOp::Add => [Some(g.clone()), Some(g.clone())],
        BinaryOp::Sub => [Some(g.clone()), Some(-g)],
        BinaryOp::Mul => [Some(g * b), Some(g * a)],
        BinaryOp::Div => [Some(g / b), Some(-(g * y / b))],
        BinaryOp::Pow => {
            // JAX's rules (`lax._pow_jvp_lhs` / `_pow_jvp_rhs`):
            // d/da = b * a^(b == 0 ? 1 : b - 1), so d/da a^0 at a = 0 is 0,
            // not 0 * inf; d/db = log(a == 0 ? 1 : a) * a^b, so 0^b has
            // d/db = 0 while a negative base gives NaN (log of a negative).
            let zero = b.zeros_like();
            let one = b.ones_like();
            let da = b * &a.pow(&b.equal(&zero).select(&one, &(b - 1.0)));
            [Some(g * &da), Some(g * y * &a.replace_zero_by_one().log())]
        }
        BinaryOp::Max | BinaryOp::Min => {
            // JAX's rule (`lax._balanced_eq`): a tie sends half of the
            // cotangent to each operand, so max(x, 0) + min(x, 0) = x has
            // slope 1 at 0 and the stable softplus slope 0.5.
            let wins = if op == BinaryOp::Max {
                a.greater(b)
            } else {
                a.less(b)
            };
            let tie = a.equal(b);
            let zero = g.zeros_like();
            let half = g * 0.5;
            let split = tie.select(&half, &zero);
            [
                Some(wins.select(g, &split)),
                Some(wins.logical_or(&tie).select(&split, g)),
            ]
        }
        BinaryOp::Rem => {
            // a - trunc(a / b) * b, with trunc(a / b) piecewise constant (JAX's rule).
            let q = a / b;
            let trunc = &q.sign() * &q.abs().floor();
            [Some(g.clone()), Some(-(g * &trunc))]
        }
        BinaryOp::Atan2 => {
            // d atan2(a, b) = (b da - a db) / (a^2 + b^2).
            let r2 = &a.square() + &b.square();
            [Some(g * b / &r2), Some(-(g * a / &r2))]
        }
        BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::ShiftLeft
        | BinaryOp::ShiftRightArithmetic
        | BinaryOp::ShiftRightLogical => [None, None],
    }
}

impl Tensor {
    /// `x` with zeros replaced by 1 (JAX's `lax._replace_zero`).
    fn replace_zero_by_one(&self) -> Tensor {
        self.equal(&self.zeros_like())
            .select(&self.ones_like(), self)
    }
}

/// Cotangents of `select(p, a, b)`.
pub(crate) fn vjp_select(p: &Tensor, g: &Tensor) -> [Option<Tensor>; 3] {
    let zero = g.zeros_like();
    [None, Some(p.select(g, &zero)), Some(p.select(&zero, g))]
}

/// Cotangents of `clamp(lo, x, hi)`, JAX's rule (`lax.clamp_p`'s JVP): `x`
/// gets `g` only strictly inside (`lo < x < hi`), `lo` where `lo > x` and
/// `lo < hi`, `hi` where `hi < x`; at `x == lo` or `x == hi` nobody does.
pub(crate) fn vjp_clamp(lo: &Tensor, x: &Tensor, hi: &Tensor, g: &Tensor) -> [Option<Tensor>; 3] {
    let zero = g.zeros_like();
    let to_lo = lo.greater(x).logical_and(&lo.less(hi));
    let inside = x.greater(lo).logical_and(&x.less(hi));
    let to_hi = hi.less(x);
    [
        Some(to_lo.select(g, &zero)),
        Some(inside.select(g, &zero)),
        Some(to_hi.select(g, &zero)),
    ]
}
