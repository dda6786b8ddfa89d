//! Numerically stable composites built from primitives: softmax,
//! log_softmax, logsumexp, one_hot.

use crate::dtype::DType;
use crate::ops::indexing::IndexMode;
use crate::shape::normalize_axis;
use crate::tensor::Tensor;
use std::panic::Location;

impl Tensor {
    /// `log(sum(exp(x)))` over `axes`, computed as `m + log(sum(exp(x - m)))`
    /// with `m` the (gradient-stopped) max, so large inputs do not overflow.
    ///
    /// `-inf` entries contribute nothing and get a zero gradient; a slice
    /// that is all `-inf` (a fully masked row) gives `-inf` with gradient 0
    /// (the gradient is the softmax, which is 0 there; see
    /// [`Tensor::softmax`]), where the plain formula would give NaN. A slice
    /// holding a NaN gives NaN (as `jax.nn.logsumexp`); it is not "masked".
    #[track_caller]
    pub fn logsumexp(&self, axes: &[i64], keep_dims: bool) -> Tensor {
        let (m, s) = self.shifted_exp_sum(axes);
        let live = s.not_equal(&s.zeros_like());
        let neg_inf = s.splat_like(f64::NEG_INFINITY);
        let lse = live.where_safe(&s, 1.0, |t| t.log(), &neg_inf) + &m;
        if keep_dims {
            lse
        } else {
            let keep: Vec<usize> = lse.dims().to_vec();
            let dims: Vec<usize> = keep
                .iter()
                .enumerate()
                .filter(|(d, _)| !self.reduced_axis(axes, *d))
                .map(|(_, &n)| n)
                .collect();
            lse.reshape(&dims)
        }
    }

    /// The max `m` over `axes` (gradient-stopped, 0 where it is infinite)
    /// and `sum(exp(x - m))`, both with the reduced dims kept. `s` is 0 only
    /// for an all `-inf` slice (a masked row); a NaN anywhere makes it NaN,
    /// and the callers test liveness with `s != 0` so NaN stays NaN, as in JAX.
    #[track_caller]
    fn shifted_exp_sum(&self, axes: &[i64]) -> (Tensor, Tensor) {
        let m = self
            .reduce_max(axes, true)
            .stop_gradient()
            .is_finite_or_zero();
        let s = (self - &m).exp().sum(axes, true);
        (m, s)
    }

    fn reduced_axis(&self, axes: &[i64], d: usize) -> bool {
        axes.iter()
            .any(|&a| normalize_axis(a, self.rank()).is_ok_and(|n| n == d))
    }

    /// Replaces infinite maxima (all -inf rows) by 0 so `x - m` stays finite.
    #[track_caller]
    fn is_finite_or_zero(&self) -> Tensor {
        let inf = self.splat_like(f64::INFINITY);
        let finite = self.abs().less(&inf);
        finite.select(self, &self.zeros_like())
    }

    /// `x - logsumexp(x)` along `axis`, computed as `(x - m) - log(sum(exp(x - m)))`.
    /// `-inf` entries give `-inf`; a fully masked (all `-inf`) row gives all
    /// `-inf` (log of the zero probabilities [`Tensor::softmax`] gives it)
    /// with finite gradients: the cotangent passes to `x` unchanged there.
    #[track_caller]
    pub fn log_softmax(&self, axis: i64) -> Tensor {
        let (m, s) = self.shifted_exp_sum(&[axis]);
        let live = s.not_equal(&s.zeros_like());
        let log_s = live.where_safe(&s, 1.0, |t| t.log(), &s.zeros_like());
        &(self - &m) - &log_s
    }

    /// `exp(x) / sum(exp(x))` along `axis`, shifted by the max for stability.
    /// `-inf` entries get probability 0 and gradient 0; a fully masked (all
    /// `-inf`) row gives all zeros with gradient 0, where `0 / 0` would give
    /// NaN (the convention of attention that attends to nothing).
    #[track_caller]
    pub fn softmax(&self, axis: i64) -> Tensor {
        let m = self
            .reduce_max(&[axis], true)
            .stop_gradient()
            .is_finite_or_zero();
        let e = (self - &m).exp();
        let s = e.sum(&[axis], true);
        let live = s.not_equal(&s.zeros_like());
        &e / &live.select(&s, &s.ones_like())
    }

    /// The "double where" select that keeps a NaN or inf of the branch not
    /// taken out of gradients: `self ? f(x) : otherwise`, with `f` applied
    /// to `select(self, x, safe)` so it never sees the values where `self`
    /// is false. `self` is `pred` and broadcasts with `x` and `otherwise`;
    /// `safe` is any value where `f` and its derivative are finite.
    ///
    /// A plain `select(p, f(x), otherwise)` gives the right values but not
    /// the right gradients: the VJP of select sends zero to `f(x)` where `p`
    /// is false, and `0 * f'(x)` is NaN where `f'(x)` is infinite (`log` or
    /// `sqrt` at 0, `1/x` at 0). The JAX FAQ ("gradients contain NaN where
    /// using where") gives the same fix.
    ///
    /// ```
    /// use axle_compiler::{DType, FunctionBuilder, grad};
    /// let b = FunctionBuilder::new("safe_log");
    /// let x = b.param("x", DType::F32, &[3]);
    /// let positive = x.greater(&x.zeros_like());
    /// // log(x) where x > 0, else 0; its gradient is 0 (not NaN) at x <= 0.
    /// let y = positive.where_safe(&x, 1.0, |t| t.log(), &x.zeros_like());
    /// let dx = grad(&y.sum_all(), &[&x]).remove(0);
    /// assert!(b.build(&[("y", &y), ("dx", &dx)]).is_ok());
    /// ```
    #[track_caller]
    pub fn where_safe(
        &self,
        x: &Tensor,
        safe: f64,
        f: impl FnOnce(&Tensor) -> Tensor,
        otherwise: &Tensor,
    ) -> Tensor {
        let inside = self.select(x, &x.splat_like(safe));
        self.select(&f(&inside), otherwise)
    }

    /// One-hot encoding of integer `self` along a new last dim of size
    /// `depth`; out-of-range indices give all-zero rows (the mode
    /// `IndexMode::Fill(0.0)`; see [`Tensor::one_hot_with_mode`]).
    #[track_caller]
    pub fn one_hot(&self, depth: usize, dtype: DType) -> Tensor {
        self.one_hot_at(depth, dtype, IndexMode::Fill(0.0), Location::caller())
    }

    /// [`Tensor::one_hot`] with an explicit out-of-range mode: `Clip` sets
    /// the one at the clamped index (0 or `depth - 1`), `Fill(v)` fills the
    /// whole row of an out-of-range index with `v`. Integer indices have no
    /// gradient, so the mode only changes values.
    #[track_caller]
    pub fn one_hot_with_mode(&self, depth: usize, dtype: DType, mode: IndexMode) -> Tensor {
        self.one_hot_at(depth, dtype, mode, Location::caller())
    }

    fn one_hot_at(
        &self,
        depth: usize,
        dtype: DType,
        mode: IndexMode,
        loc: &Location<'_>,
    ) -> Tensor {
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
        let count = dims.iter().try_fold(1i64, |n, &d| {
            i64::try_from(d).ok().and_then(|d| n.checked_mul(d))
        });
        if count.is_none() {
            self.b.fail(
                "one_hot",
                loc,
                format!(
                    "depth {depth} for indices {} overflows the i64 element count",
                    self.ty
                ),
            );
            return self.clone();
        }
        let idx = match mode {
            IndexMode::Clip => {
                let hi = self.b.scalar(depth.saturating_sub(1) as f64, self.dtype());
                self.clamp(&self.splat_like(0.0), &hi)
            }
            IndexMode::Fill(_) => self.clone(),
        };
        let iota = self.b.iota(self.dtype(), &dims, dims.len() - 1);
        let hot = idx
            .expand_dims(-1)
            .broadcast_to(&dims)
            .equal(&iota)
            .convert(dtype);
        match mode {
            IndexMode::Fill(v) if v != 0.0 => {
                let valid = self.in_range(depth).expand_dims(-1).broadcast_to(&dims);
                valid.select(&hot, &hot.fill_splat(v, loc))
            }
            _ => hot,
        }
    }
}
