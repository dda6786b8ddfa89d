//! Constants from host data, scalar splats, iota; their lowering.

use crate::builder::FunctionBuilder;
use crate::dtype::{DType, Element};
use crate::ir::OpKind;
use crate::op_table::check_dtypes;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

/// Little-endian bytes of `v` converted to `dtype` (round to nearest for
/// floats, truncation toward zero for integers, `v != 0` for pred).
pub(crate) fn scalar_bytes(v: f64, dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => (v as f32).to_le_bytes().to_vec(),
        DType::F64 => v.to_le_bytes().to_vec(),
        DType::BF16 => half::bf16::from_f64(v).to_le_bytes().to_vec(),
        DType::F16 => half::f16::from_f64(v).to_le_bytes().to_vec(),
        DType::I32 => (v as i32).to_le_bytes().to_vec(),
        DType::I64 => (v as i64).to_le_bytes().to_vec(),
        DType::U32 => (v as u32).to_le_bytes().to_vec(),
        DType::U64 => (v as u64).to_le_bytes().to_vec(),
        DType::U8 => vec![v as u8],
        DType::Pred => vec![(v != 0.0) as u8],
    }
}

/// Reads element `i` of little-endian constant bytes as f64 (for folding).
pub(crate) fn element_as_f64(bytes: &[u8], dtype: DType) -> f64 {
    let n = dtype.size_bytes();
    let b = &bytes[..n];
    match dtype {
        DType::F32 => f32::from_le_bytes(b.try_into().unwrap()) as f64,
        DType::F64 => f64::from_le_bytes(b.try_into().unwrap()),
        DType::BF16 => half::bf16::from_le_bytes(b.try_into().unwrap()).to_f64(),
        DType::F16 => half::f16::from_le_bytes(b.try_into().unwrap()).to_f64(),
        DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f64,
        DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f64,
        DType::U32 => u32::from_le_bytes(b.try_into().unwrap()) as f64,
        DType::U64 => u64::from_le_bytes(b.try_into().unwrap()) as f64,
        DType::U8 | DType::Pred => b[0] as f64,
    }
}

/// Reads element 0 of little-endian integer (or pred) constant bytes
/// exactly, as i128 (for printing; going through f64 would round 64-bit
/// values such as `i64::MAX` to 2^63, which is out of range).
///
/// Panics on a float dtype (a bug in the caller: floats use [`element_as_f64`]).
pub(crate) fn int_element(bytes: &[u8], dtype: DType) -> i128 {
    let b = &bytes[..dtype.size_bytes()];
    match dtype {
        DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as i128,
        DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as i128,
        DType::U32 => u32::from_le_bytes(b.try_into().unwrap()) as i128,
        DType::U64 => u64::from_le_bytes(b.try_into().unwrap()) as i128,
        DType::U8 | DType::Pred => b[0] as i128,
        DType::F32 | DType::F64 | DType::BF16 | DType::F16 => {
            unreachable!("int_element of a float dtype {dtype}")
        }
    }
}

impl FunctionBuilder {
    /// A constant tensor from host data in row-major order.
    #[track_caller]
    pub fn constant<T: Element>(&self, data: &[T], dims: &[usize]) -> Tensor {
        let ty = TensorType::new(T::DTYPE, dims);
        let n = ty.numel();
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes_vec()).collect();
        self.record1("constant", Location::caller(), &[], move |_| {
            if data.len() != n {
                return Err(format!(
                    "{} elements given for a constant of type {ty} ({n} elements)",
                    data.len()
                ));
            }
            Ok((
                OpKind::Constant {
                    bytes,
                    splat: false,
                },
                vec![ty],
            ))
        })
    }

    /// A tensor of type `dtype[dims]` filled with `value`.
    #[track_caller]
    pub fn full(&self, value: f64, dtype: DType, dims: &[usize]) -> Tensor {
        let ty = TensorType::new(dtype, dims);
        self.record1("constant", Location::caller(), &[], move |_| {
            Ok((
                OpKind::Constant {
                    bytes: scalar_bytes(value, dtype),
                    splat: true,
                },
                vec![ty],
            ))
        })
    }

    /// A rank-0 constant.
    #[track_caller]
    pub fn scalar(&self, value: f64, dtype: DType) -> Tensor {
        self.full(value, dtype, &[])
    }

    /// Zeros of the given type.
    #[track_caller]
    pub fn zeros(&self, dtype: DType, dims: &[usize]) -> Tensor {
        self.full(0.0, dtype, dims)
    }

    /// `0, 1, 2, ...` counting along `dim` of a `dtype[dims]` tensor.
    #[track_caller]
    pub fn iota(&self, dtype: DType, dims: &[usize], dim: usize) -> Tensor {
        let ty = TensorType::new(dtype, dims);
        self.record1("iota", Location::caller(), &[], move |_| {
            if dim >= ty.rank() {
                return Err(format!("iota dim {dim} out of range for {ty}"));
            }
            check_dtypes("iota", &[&ty])?;
            Ok((OpKind::Iota { dim }, vec![ty]))
        })
    }
}

impl Tensor {
    /// A rank-0 constant of this tensor's dtype (for `x * 2.0` and friends).
    #[track_caller]
    pub fn splat_like(&self, value: f64) -> Tensor {
        self.b.scalar(value, self.dtype())
    }

    /// Zeros of this tensor's type.
    #[track_caller]
    pub fn zeros_like(&self) -> Tensor {
        self.b.full(0.0, self.dtype(), self.dims())
    }

    /// Ones of this tensor's type.
    #[track_caller]
    pub fn ones_like(&self) -> Tensor {
        self.b.full(1.0, self.dtype(), self.dims())
    }

    /// This tensor's value when it is a splat constant (every element one value known while
    /// tracing, as [`Tensor::splat_like`] makes them), else `None`: what a caller may keep on
    /// the host instead of returning it from the program.
    pub fn splat_constant(&self) -> Option<f64> {
        crate::passes::fold::splat_value(&self.b.inner.borrow().graph, self.id())
    }
}

/// Formats one float element as an MLIR literal: decimal that round-trips,
/// or the bit pattern in hex for inf and NaN.
fn float_literal(bytes: &[u8], dtype: DType) -> String {
    let v = element_as_f64(bytes, dtype);
    if !v.is_finite() {
        let mut hex = String::from("0x");
        for b in bytes.iter().rev() {
            hex.push_str(&format!("{b:02X}"));
        }
        return hex;
    }
    let s = match dtype {
        DType::F32 => format!("{:e}", v as f32),
        _ => format!("{v:e}"),
    };
    match s.find('e') {
        Some(i) if !s[..i].contains('.') => format!("{}.0{}", &s[..i], &s[i..]),
        _ => s,
    }
}

/// The `dense<...>` attribute of a constant of type `ty`.
pub(crate) fn dense_attr(bytes: &[u8], splat: bool, ty: &TensorType) -> String {
    let dtype = ty.dtype;
    if splat {
        let lit = if dtype.is_float() && dtype != DType::BF16 && dtype != DType::F16 {
            float_literal(bytes, dtype)
        } else if dtype == DType::Pred {
            if bytes[0] != 0 { "true" } else { "false" }.to_string()
        } else if dtype.is_float() {
            let mut hex = String::from("0x");
            for b in bytes.iter().rev() {
                hex.push_str(&format!("{b:02X}"));
            }
            hex
        } else {
            format!("{}", int_element(bytes, dtype))
        };
        return format!("dense<{lit}>");
    }
    let mut hex = String::from("dense<\"0x");
    for b in bytes {
        hex.push_str(&format!("{b:02X}"));
    }
    hex.push_str("\">");
    hex
}
