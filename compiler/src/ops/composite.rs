//! Numerically stable composites built from primitives: softmax,
//! log_softmax, logsumexp, one_hot.

use crate::dtype::DType;
use crate::shape::normalize_axis;
use crate::tensor::Tensor;
use std::panic::Location;

impl Tensor {
    /// `log(sum(exp(x)))` over `axes`, computed as `m + log(sum(exp(x - m)))`
    /// with `m` the (gradient-stopped) max, so large inputs do not overflow.
    #[track_caller]
    pub fn logsumexp(&self, axes: &[i64], keep_dims: bool) -> Tensor {
        let m = self.reduce_max(axes, true).stop_gradient();
        let m = m.is_finite_or_zero();
        let s = (self - &m).exp().sum(axes, true).log() + &m;
        if keep_dims {
            s
        } else {
            let keep: Vec<usize> = s.dims().to_vec();
            let dims: Vec<usize> = keep
                .iter()
                .enumerate()
                .filter(|(d, _)| !self.reduced_axis(axes, *d))
                .map(|(_, &n)| n)
                .collect();
            s.reshape(&dims)
        }
    }

    fn reduced_axis(&self, axes: &[i64], d: usize) -> bool {
        axes.iter()
            .any(|&a| normalize_axis(a, self.rank()).is_ok_and(|n| n == d))
    }

    /// Replaces infinite maxima (all -inf rows) by 0 so `x - m` stays finite.
    fn is_finite_or_zero(&self) -> Tensor {
        let inf = self.splat_like(f64::INFINITY);
        let finite = self.abs().less(&inf);
        finite.select(self, &self.zeros_like())
    }

    /// `x - logsumexp(x)` along `axis`.
    #[track_caller]
    pub fn log_softmax(&self, axis: i64) -> Tensor {
        self - &self.logsumexp(&[axis], true)
    }

    /// `exp(x) / sum(exp(x))` along `axis`, shifted by the max for stability.
    #[track_caller]
    pub fn softmax(&self, axis: i64) -> Tensor {
        let m = self.reduce_max(&[axis], true).stop_gradient();
        let e = (self - &m.is_finite_or_zero()).exp();
        &e / &e.sum(&[axis], true)
    }

    /// One-hot encoding of integer `self` along a new last dim of size
    /// `depth`; out-of-range indices give all-zero rows.
    #[track_caller]
    pub fn one_hot(&self, depth: usize, dtype: DType) -> Tensor {
        let loc = Location::caller();
        if !self.dtype().is_int() {
            self.b.fail(
                "one_hot",
                loc,
                format!("indices must be integers, got {}", self.ty),
            );
            return self.clone();
        }
        let mut dims = self.dims().to_vec();
        dims.push(depth);
        let iota = self.b.iota(self.dtype(), &dims, dims.len() - 1);
        let idx = self.expand_dims(-1).broadcast_to(&dims);
        idx.equal(&iota).convert(dtype)
    }
}
