//! Element types of tensors and their StableHLO spellings.

use std::fmt;

/// The element type of a tensor.
///
/// `U64` exists for the random-number state of `stablehlo.rng_bit_generator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// bfloat16.
    BF16,
    /// 16-bit IEEE float.
    F16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean (`i1` in StableHLO).
    Pred,
}

impl DType {
    /// True for the floating-point types, the only differentiable ones.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }

    /// True for signed and unsigned integers (not `Pred`).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I32 | DType::I64 | DType::U32 | DType::U64 | DType::U8
        )
    }

    /// True for unsigned integers.
    pub fn is_unsigned(self) -> bool {
        matches!(self, DType::U32 | DType::U64 | DType::U8)
    }

    /// Size of one element in bytes (`Pred` is stored as one byte).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::U8 | DType::Pred => 1,
        }
    }

    /// The MLIR element type (`f32`, `i1`, `ui32`, ...).
    pub fn mlir(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U32 => "ui32",
            DType::U64 => "ui64",
            DType::U8 => "ui8",
            DType::Pred => "i1",
        }
    }

    /// The StableHLO `compare_type` used when comparing values of this type.
    pub(crate) fn compare_type(self) -> &'static str {
        if self.is_float() {
            "FLOAT"
        } else if self.is_unsigned() || self == DType::Pred {
            "UNSIGNED"
        } else {
            "SIGNED"
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DType::Pred => "pred",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::U8 => "u8",
            other => other.mlir(),
        };
        f.write_str(s)
    }
}

/// Host element types that can become constants in a traced function.
pub trait Element: Copy {
    /// The tensor element type this host type maps to.
    const DTYPE: DType;
    /// Little-endian bytes of the value, as stored in a constant.
    fn to_le_bytes_vec(self) -> Vec<u8>;
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn to_le_bytes_vec(self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
        }
    };
}

element!(f32, DType::F32);
element!(f64, DType::F64);
element!(i32, DType::I32);
element!(i64, DType::I64);
element!(u32, DType::U32);
element!(u64, DType::U64);
element!(u8, DType::U8);

impl Element for bool {
    const DTYPE: DType = DType::Pred;
    fn to_le_bytes_vec(self) -> Vec<u8> {
        vec![self as u8]
    }
}
