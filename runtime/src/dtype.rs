//! Element types the runtime moves between host and device.

use half::{bf16, f16};

use crate::ffi;

/// An element type of a device buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// Boolean, one byte per element (0 or 1).
    Pred,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 8-bit integer.
    U8,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
}

impl DType {
    /// Every supported type, for tests and tables.
    pub const ALL: [DType; 9] = [
        DType::Pred,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U32,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element on the host.
    pub fn size(self) -> usize {
        match self {
            DType::Pred | DType::U8 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The StableHLO / MLIR spelling (`f32`, `i1`, `ui32`, ...).
    pub fn mlir_name(self) -> &'static str {
        match self {
            DType::Pred => "i1",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "ui8",
            DType::U32 => "ui32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    pub(crate) fn to_pjrt(self) -> ffi::PJRT_Buffer_Type {
        match self {
            DType::Pred => ffi::PJRT_Buffer_Type_PRED,
            DType::I32 => ffi::PJRT_Buffer_Type_S32,
            DType::I64 => ffi::PJRT_Buffer_Type_S64,
            DType::U8 => ffi::PJRT_Buffer_Type_U8,
            DType::U32 => ffi::PJRT_Buffer_Type_U32,
            DType::F16 => ffi::PJRT_Buffer_Type_F16,
            DType::BF16 => ffi::PJRT_Buffer_Type_BF16,
            DType::F32 => ffi::PJRT_Buffer_Type_F32,
            DType::F64 => ffi::PJRT_Buffer_Type_F64,
        }
    }

    pub(crate) fn from_pjrt(t: ffi::PJRT_Buffer_Type) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.to_pjrt() == t)
    }

    /// From XLA's `PrimitiveType` enum (xla_data.proto), as found in HLO shapes.
    pub(crate) fn from_xla_primitive(t: i32) -> Option<DType> {
        Some(match t {
            1 => DType::Pred,
            4 => DType::I32,
            5 => DType::I64,
            6 => DType::U8,
            8 => DType::U32,
            10 => DType::F16,
            11 => DType::F32,
            12 => DType::F64,
            16 => DType::BF16,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mlir_name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that can be an element of a device buffer.
///
/// Implemented for `f32`, `f64`, [`bf16`], [`struct@f16`], `i32`, `i64`, `u32`, `u8`
/// and `bool` (pred). Sealed: the byte views below rely on each type's layout.
pub trait Element: Copy + Default + std::fmt::Debug + PartialEq + sealed::Sealed + 'static {
    /// The matching device type.
    const DTYPE: DType;

    /// The elements as raw host bytes, without copying.
    fn as_bytes(values: &[Self]) -> &[u8];

    /// `n` elements read from bytes that `fill` writes, with one copy at most.
    fn read_with<E>(
        n: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Vec<Self>, E>;
}

macro_rules! pod_element {
    ($($t:ty => $d:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn as_bytes(values: &[Self]) -> &[u8] {
                bytemuck::cast_slice(values)
            }
            fn read_with<E>(
                n: usize,
                fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
            ) -> Result<Vec<Self>, E> {
                let mut out = vec![<$t>::default(); n];
                fill(bytemuck::cast_slice_mut(&mut out))?;
                Ok(out)
            }
        }
    )*};
}

pod_element!(f32 => F32, f64 => F64, bf16 => BF16, f16 => F16, i32 => I32, i64 => I64,
    u32 => U32, u8 => U8);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Pred;
    fn as_bytes(values: &[Self]) -> &[u8] {
        // SAFETY: bool is one byte holding 0 or 1, a valid u8.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), values.len()) }
    }
    fn read_with<E>(
        n: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Vec<Self>, E> {
        let mut bytes = vec![0u8; n];
        fill(&mut bytes)?;
        Ok(bytes.into_iter().map(|b| b != 0).collect())
    }
}
