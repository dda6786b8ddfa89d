//! The op table: every primitive the tracer can emit, the StableHLO op it
//! lowers to, the element types it accepts and how it differentiates.
//!
//! The dtype column is the rule the shape rules enforce (they look the op
//! up here), so the table and the tracer cannot disagree; the
//! rules follow the StableHLO specification (<https://openxla.org/stablehlo/spec>),
//! e.g. `add` and `maximum` are defined on booleans (as logical or), `multiply`
//! and `minimum` too (as logical and), `power` and `remainder` on integers,
//! `abs` and `sign` on signed integers only. The tracer records `add`,
//! `mul`, `max` and `min` of `pred` operands as `or` / `and`, the operations
//! the specification defines them to be.
//!
//! Composites built from these primitives are not rows: softmax,
//! log_softmax, logsumexp, one_hot, take, take_along_axis, index_add,
//! argsort and top_k (sort), cumsum, cumprod, cummax and cummin (JAX's
//! associative scan of slice, pad and the combining op).
//!
//! The table as the docs show it (written by [`markdown`]; a unit test
//! keeps the two equal). "gradient" says whether reverse-mode autodiff
//! carries cotangents through the op (`yes`), gives zero (`zero`: piecewise
//! constant or non-float results) or refuses it with a trace error.
//! `convolution` is `yes` for first derivatives; a convolution with
//! `batch_group_count > 1` (the kernel gradient of a grouped convolution,
//! or a user convolution setting it) is not differentiable, so second
//! derivatives through a grouped convolution are a trace error.
//!
#![doc = include_str!("op_table.md")]

use crate::dtype::DType;
use crate::shape::TensorType;

/// A set of element-type classes an op accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DTypes(u8);

impl DTypes {
    /// `pred` (StableHLO `i1`).
    pub const BOOL: DTypes = DTypes(1);
    /// Signed integers (`i32`, `i64`).
    pub const SINT: DTypes = DTypes(2);
    /// Unsigned integers (`u8`, `u32`, `u64`).
    pub const UINT: DTypes = DTypes(4);
    /// Floats (`f16`, `bf16`, `f32`, `f64`).
    pub const FLOAT: DTypes = DTypes(8);
    /// All integers.
    pub const INT: DTypes = DTypes(2 | 4);
    /// Integers and floats (numbers).
    pub const NUM: DTypes = DTypes(2 | 4 | 8);
    /// Signed integers and floats.
    pub const SIGNED: DTypes = DTypes(2 | 8);
    /// `pred` and integers (the bitwise types).
    pub const BITS: DTypes = DTypes(1 | 2 | 4);
    /// Every element type.
    pub const ANY: DTypes = DTypes(1 | 2 | 4 | 8);

    /// True when `d` belongs to the set.
    pub fn contains(self, d: DType) -> bool {
        let class = if d == DType::Pred {
            Self::BOOL
        } else if d.is_float() {
            Self::FLOAT
        } else if d.is_unsigned() {
            Self::UINT
        } else {
            Self::SINT
        };
        self.0 & class.0 != 0
    }

    /// `pred, signed int, unsigned int, float` (the members, in that order).
    pub fn describe(self) -> String {
        if self == Self::ANY {
            return "any".into();
        }
        let names = [
            (Self::BOOL, "pred"),
            (Self::SINT, "signed int"),
            (Self::UINT, "unsigned int"),
            (Self::FLOAT, "float"),
        ];
        let parts: Vec<&str> = names
            .iter()
            .filter(|(c, _)| self.0 & c.0 != 0)
            .map(|(_, n)| *n)
            .collect();
        parts.join(", ")
    }
}

/// How reverse-mode autodiff treats an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grad {
    /// A VJP rule carries cotangents to the float operands.
    Vjp,
    /// Zero cotangent: the result is piecewise constant (floor, round) or
    /// not a float (compare, bit ops), as in JAX.
    Zero,
    /// Differentiating through it is a trace error naming the op.
    Refused,
}

impl Grad {
    fn text(self) -> &'static str {
        match self {
            Grad::Vjp => "yes",
            Grad::Zero => "zero",
            Grad::Refused => "no (error)",
        }
    }
}

/// One row of the op table.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    /// The op's name in the IR printer and in errors (`OpKind::name`).
    pub name: &'static str,
    /// The StableHLO (or CHLO, Shardy) op it lowers to.
    pub stablehlo: &'static str,
    /// Element types of the checked operands.
    pub dtypes: DTypes,
    /// Autodiff behaviour.
    pub grad: Grad,
}

const fn op(name: &'static str, stablehlo: &'static str, dtypes: DTypes, grad: Grad) -> OpInfo {
    OpInfo {
        name,
        stablehlo,
        dtypes,
        grad,
    }
}

use DTypes as T;
use Grad::{Refused, Vjp, Zero};

/// Every primitive the tracer emits, in family order.
pub const OPS: &[OpInfo] = &[
    op("constant", "stablehlo.constant", T::ANY, Zero),
    op("iota", "stablehlo.iota", T::NUM, Zero),
    op("neg", "stablehlo.negate", T::NUM, Vjp),
    op("abs", "stablehlo.abs", T::SIGNED, Vjp),
    op("sign", "stablehlo.sign", T::SIGNED, Zero),
    op("exp", "stablehlo.exponential", T::FLOAT, Vjp),
    op("expm1", "stablehlo.exponential_minus_one", T::FLOAT, Vjp),
    op("log", "stablehlo.log", T::FLOAT, Vjp),
    op("log1p", "stablehlo.log_plus_one", T::FLOAT, Vjp),
    op("tanh", "stablehlo.tanh", T::FLOAT, Vjp),
    op("logistic", "stablehlo.logistic", T::FLOAT, Vjp),
    op("sqrt", "stablehlo.sqrt", T::FLOAT, Vjp),
    op("rsqrt", "stablehlo.rsqrt", T::FLOAT, Vjp),
    op("erf", "chlo.erf", T::FLOAT, Vjp),
    op("sin", "stablehlo.sine", T::FLOAT, Vjp),
    op("cos", "stablehlo.cosine", T::FLOAT, Vjp),
    op("floor", "stablehlo.floor", T::FLOAT, Zero),
    op("ceil", "stablehlo.ceil", T::FLOAT, Zero),
    op(
        "round_nearest_even",
        "stablehlo.round_nearest_even",
        T::FLOAT,
        Zero,
    ),
    op(
        "round_nearest_afz",
        "stablehlo.round_nearest_afz",
        T::FLOAT,
        Zero,
    ),
    op("is_finite", "stablehlo.is_finite", T::FLOAT, Zero),
    op("not", "stablehlo.not", T::BITS, Zero),
    op("popcnt", "stablehlo.popcnt", T::INT, Zero),
    op("add", "stablehlo.add", T::ANY, Vjp),
    op("sub", "stablehlo.subtract", T::NUM, Vjp),
    op("mul", "stablehlo.multiply", T::ANY, Vjp),
    op("div", "stablehlo.divide", T::NUM, Vjp),
    op("rem", "stablehlo.remainder", T::NUM, Vjp),
    op("pow", "stablehlo.power", T::NUM, Vjp),
    op("max", "stablehlo.maximum", T::ANY, Vjp),
    op("min", "stablehlo.minimum", T::ANY, Vjp),
    op("atan2", "stablehlo.atan2", T::FLOAT, Vjp),
    op("and", "stablehlo.and", T::BITS, Zero),
    op("or", "stablehlo.or", T::BITS, Zero),
    op("xor", "stablehlo.xor", T::BITS, Zero),
    op("shift_left", "stablehlo.shift_left", T::INT, Zero),
    op(
        "shift_right_arithmetic",
        "stablehlo.shift_right_arithmetic",
        T::INT,
        Zero,
    ),
    op(
        "shift_right_logical",
        "stablehlo.shift_right_logical",
        T::INT,
        Zero,
    ),
    op("compare", "stablehlo.compare", T::ANY, Zero),
    op("select", "stablehlo.select", T::ANY, Vjp),
    op("clamp", "stablehlo.clamp", T::ANY, Vjp),
    op("convert", "stablehlo.convert", T::ANY, Vjp),
    op("bitcast_convert", "stablehlo.bitcast_convert", T::NUM, Zero),
    op(
        "reduce_precision",
        "stablehlo.reduce_precision",
        T::FLOAT,
        Vjp,
    ),
    op(
        "broadcast_in_dim",
        "stablehlo.broadcast_in_dim",
        T::ANY,
        Vjp,
    ),
    op("reshape", "stablehlo.reshape", T::ANY, Vjp),
    op("transpose", "stablehlo.transpose", T::ANY, Vjp),
    op("reverse", "stablehlo.reverse", T::ANY, Vjp),
    op("slice", "stablehlo.slice", T::ANY, Vjp),
    op("dynamic_slice", "stablehlo.dynamic_slice", T::ANY, Vjp),
    op(
        "dynamic_update_slice",
        "stablehlo.dynamic_update_slice",
        T::ANY,
        Vjp,
    ),
    op("concatenate", "stablehlo.concatenate", T::ANY, Vjp),
    op("pad", "stablehlo.pad", T::ANY, Vjp),
    op("dot_general", "stablehlo.dot_general", T::NUM, Vjp),
    op("convolution", "stablehlo.convolution", T::NUM, Vjp),
    op("reduce_sum", "stablehlo.reduce", T::NUM, Vjp),
    op("reduce_max", "stablehlo.reduce", T::NUM, Vjp),
    op("reduce_min", "stablehlo.reduce", T::NUM, Vjp),
    op("argmax", "stablehlo.reduce", T::NUM, Zero),
    op("reduce_window", "stablehlo.reduce_window", T::NUM, Vjp),
    op(
        "select_and_scatter",
        "stablehlo.select_and_scatter",
        T::NUM,
        Refused,
    ),
    op("gather", "stablehlo.gather", T::ANY, Vjp),
    op("scatter_add", "stablehlo.scatter", T::NUM, Vjp),
    op("sort", "stablehlo.sort", T::ANY, Vjp),
    op(
        "rng_bit_generator",
        "stablehlo.rng_bit_generator",
        T::UINT,
        Zero,
    ),
    op("stop_gradient", "(none: the operand itself)", T::ANY, Zero),
    op(
        "sharding_constraint",
        "sdy.sharding_constraint",
        T::ANY,
        Vjp,
    ),
    op(
        "optimization_barrier",
        "stablehlo.optimization_barrier",
        T::ANY,
        Vjp,
    ),
    op("scan", "stablehlo.while", T::ANY, Vjp),
    op("remat", "(inlined: its body's ops)", T::ANY, Vjp),
    op("checkpoint_name", "(none: the operand itself)", T::ANY, Vjp),
    op("memory_placement", "stablehlo.custom_call", T::ANY, Vjp),
    op("while", "stablehlo.while", T::ANY, Refused),
];

/// The row of the op called `name` (`OpKind::name`; compares are all `compare`).
pub fn lookup(name: &str) -> Option<&'static OpInfo> {
    let name = if name.starts_with("compare_") {
        "compare"
    } else {
        name
    };
    OPS.iter().find(|o| o.name == name)
}

/// Checks that every operand type is one `op` accepts; the error names the
/// op, the accepted types and the operand.
pub(crate) fn check_dtypes(op: &str, operands: &[&TensorType]) -> Result<(), String> {
    let Some(info) = lookup(op) else {
        return Err(format!("`{op}` is missing from the op table"));
    };
    match operands.iter().find(|t| !info.dtypes.contains(t.dtype)) {
        Some(t) => Err(format!(
            "not defined for {t}: `{op}` takes {}",
            info.dtypes.describe()
        )),
        None => Ok(()),
    }
}

/// The op table as a markdown table (the text of `op_table.md`).
pub fn markdown() -> String {
    let mut s = String::from("| op | StableHLO | dtypes | gradient |\n|---|---|---|---|\n");
    for o in OPS {
        s.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            o.name,
            o.stablehlo,
            o.dtypes.describe(),
            o.grad.text()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in the docs is the table the tracer checks against.
    /// Regenerate `op_table.md` with `AXLE_BLESS=1`.
    #[test]
    fn docs_table_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/op_table.md");
        if std::env::var("AXLE_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(path, markdown()).unwrap();
        }
        let docs = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            docs,
            markdown(),
            "the op table changed; review and re-bless with AXLE_BLESS=1"
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, o) in OPS.iter().enumerate() {
            assert!(
                OPS[i + 1..].iter().all(|p| p.name != o.name),
                "{} twice",
                o.name
            );
        }
    }
}
