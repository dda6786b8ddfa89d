//! Cumulative reductions along an axis: cumsum, cumprod, cummax, cummin
//! (`jnp.cumsum`, `lax.cummax`, ...).
//!
//! Built the way JAX lowers them on CPU and GPU: `lax.associative_scan`
//! (a parallel prefix: combine neighbouring pairs, scan the half-length
//! result recursively, combine back into the even positions, interleave
//! with interior padding), so a scan of length n is O(log n) deep. There is
//! no new primitive: the VJPs are those of slice, pad, concatenate and the
//! combining op, which is JAX's rule for these ops (JAX differentiates
//! cummax, cummin and cumprod through the associative scan; the cumsum VJP
//! this gives is the reverse cumulative sum of the cotangent).

use crate::ir::BinaryOp;
use crate::shape::normalize_axis;
use crate::tensor::Tensor;
use std::panic::Location;

impl Tensor {
    /// Running sum along `axis` (negative counts from the end); with
    /// `reverse`, from the last element backwards. Same type as `self`;
    /// on `pred` it is a running `or`.
    #[track_caller]
    pub fn cumsum(&self, axis: i64, reverse: bool) -> Tensor {
        self.cumulative(BinaryOp::Add, "cumsum", axis, reverse, Location::caller())
    }

    /// Running product along `axis` (see [`Tensor::cumsum`]).
    #[track_caller]
    pub fn cumprod(&self, axis: i64, reverse: bool) -> Tensor {
        self.cumulative(BinaryOp::Mul, "cumprod", axis, reverse, Location::caller())
    }

    /// Running maximum along `axis` (see [`Tensor::cumsum`]).
    #[track_caller]
    pub fn cummax(&self, axis: i64, reverse: bool) -> Tensor {
        self.cumulative(BinaryOp::Max, "cummax", axis, reverse, Location::caller())
    }

    /// Running minimum along `axis` (see [`Tensor::cumsum`]).
    #[track_caller]
    pub fn cummin(&self, axis: i64, reverse: bool) -> Tensor {
        self.cumulative(BinaryOp::Min, "cummin", axis, reverse, Location::caller())
    }

    fn cumulative(
        &self,
        op: BinaryOp,
        name: &str,
        axis: i64,
        reverse: bool,
        loc: &Location<'_>,
    ) -> Tensor {
        let a = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(m) => {
                self.b.fail(name, loc, format!("{m} (operand {})", self.ty));
                return self.clone();
            }
        };
        if reverse {
            associative_scan(&self.reverse(&[a as i64]), a, op).reverse(&[a as i64])
        } else {
            associative_scan(self, a, op)
        }
    }
}

/// Every `step`-th element of `x` along `axis` from `start` (exclusive `limit`).
fn strided(x: &Tensor, axis: usize, start: usize, limit: usize, step: usize) -> Tensor {
    let mut s = vec![0; x.rank()];
    let mut l = x.dims().to_vec();
    let mut st = vec![1; x.rank()];
    s[axis] = start;
    l[axis] = limit;
    st[axis] = step;
    x.slice(&s, &l, &st)
}

/// Inclusive prefix combination of `x` along `axis` (JAX's
/// `associative_scan`, the recursive odd/even formulation).
fn associative_scan(x: &Tensor, axis: usize, op: BinaryOp) -> Tensor {
    let n = x.dims()[axis];
    if n < 2 {
        return x.clone();
    }
    let reduced = strided(x, axis, 0, n - 1, 2).binary(op, &strided(x, axis, 1, n, 2));
    let odd = associative_scan(&reduced, axis, op);
    let first = x.narrow(axis as i64, 0, 1);
    let even = if n == 2 {
        first
    } else {
        let rest = strided(x, axis, 2, n, 2);
        let prev = if n.is_multiple_of(2) {
            odd.narrow(axis as i64, 0, odd.dims()[axis] - 1)
        } else {
            odd.clone()
        };
        Tensor::concatenate(&[&first, &prev.binary(op, &rest)], axis as i64)
    };
    interleave(&even, &odd, axis)
}

/// `[a0, b0, a1, b1, ...]` along `axis`, where `a` has as many elements
/// as `b` or one more: each is spread out with interior padding and the
/// two are added (`or` for pred), so every position holds one of them
/// (a float `-0.0` comes out as `+0.0`).
fn interleave(a: &Tensor, b: &Tensor, axis: usize) -> Tensor {
    let rank = a.rank() as i64;
    let even_split = a.dims()[axis] == b.dims()[axis];
    let low_a = vec![0; rank as usize];
    let mut high_a = low_a.clone();
    let mut low_b = low_a.clone();
    let mut high_b = low_a.clone();
    let mut interior = vec![0; rank as usize];
    high_a[axis] = i64::from(even_split);
    low_b[axis] = 1;
    high_b[axis] = i64::from(!even_split);
    interior[axis] = 1;
    let zero = a.splat_like(0.0);
    let pa = a.pad_signed(&zero, &low_a, &high_a, &interior);
    let pb = b.pad_signed(&zero, &low_b, &high_b, &interior);
    &pa + &pb
}
