//! In-graph randomness: `stablehlo.rng_bit_generator` (THREE_FRY) with an
//! explicit `u64[2]` key that every draw consumes and returns, plus uniform,
//! normal and dropout helpers built on it.

use crate::builder::FunctionBuilder;
use crate::dtype::DType;
use crate::ir::OpKind;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

impl FunctionBuilder {
    /// A constant THREE_FRY key (`u64[2]`) from a seed.
    #[track_caller]
    pub fn rng_key(&self, seed: u64) -> Tensor {
        self.constant(&[seed, 0x9E37_79B9_7F4A_7C15], &[2])
    }
}

/// Random bits of `dtype` (`U32` or `U64`) and shape `dims`; returns the
/// next key and the bits.
#[track_caller]
pub fn random_bits(key: &Tensor, dtype: DType, dims: &[usize]) -> (Tensor, Tensor) {
    let mut r = key
        .b
        .record("rng_bit_generator", Location::caller(), &[key], |t| {
            if t[0].dtype != DType::U64 || t[0].dims != [2] {
                return Err(format!("key must be u64[2], got {}", t[0]));
            }
            if !matches!(dtype, DType::U32 | DType::U64) {
                return Err(format!("bits must be u32 or u64, got {dtype}"));
            }
            Ok((
                OpKind::RngBitGenerator,
                vec![t[0].clone(), TensorType::new(dtype, dims)],
            ))
        });
    let bits = r.remove(1);
    (r.remove(0), bits)
}

/// Uniform floats in `[0, 1)` of `dtype` and shape `dims`; returns the next
/// key and the values. Uses 24 random bits (53 for f64), so every value is exact.
#[track_caller]
pub fn random_uniform(key: &Tensor, dtype: DType, dims: &[usize]) -> (Tensor, Tensor) {
    let loc = Location::caller();
    if !dtype.is_float() {
        key.b.fail(
            "random_uniform",
            loc,
            format!("dtype must be a float type, got {dtype}"),
        );
        return (key.clone(), key.clone());
    }
    let (bits_ty, shift, scale, work) = if dtype == DType::F64 {
        (DType::U64, 11.0, 2f64.powi(-53), DType::F64)
    } else {
        (DType::U32, 8.0, 2f64.powi(-24), DType::F32)
    };
    let (key, bits) = random_bits(key, bits_ty, dims);
    let u = bits
        .shift_right_logical(&bits.splat_like(shift))
        .convert(work)
        * scale;
    (key, u.convert(dtype))
}

/// Standard normal floats (Box–Muller) of `dtype` and shape `dims`.
#[track_caller]
pub fn random_normal(key: &Tensor, dtype: DType, dims: &[usize]) -> (Tensor, Tensor) {
    let work = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let (key, u1) = random_uniform(key, work, dims);
    let (key, u2) = random_uniform(&key, work, dims);
    let r = ((1.0 - &u1).log() * -2.0).sqrt();
    let z = r * (u2 * (2.0 * std::f64::consts::PI)).cos();
    (key, z.convert(dtype))
}

/// Inverted dropout: zeroes each element with probability `rate` and scales
/// the rest by `1 / (1 - rate)`.
#[track_caller]
pub fn dropout(x: &Tensor, key: &Tensor, rate: f64) -> (Tensor, Tensor) {
    let (key, u) = random_uniform(key, x.dtype(), x.dims());
    let keep = u.greater_equal(&u.splat_like(rate));
    let y = keep.select(&(x / (1.0 - rate)), &x.zeros_like());
    (key, y)
}
