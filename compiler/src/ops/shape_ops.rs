//! Shape primitives: broadcast_in_dim, reshape, transpose, reverse, slice,
//! dynamic_slice, dynamic_update_slice, concatenate, pad. Shape rules and
//! VJP rules side by side; lowering attributes are in `attrs`.

use crate::ir::OpKind;
use crate::shape::{TensorType, normalize_axes, normalize_axis};
use crate::tensor::Tensor;
use std::panic::Location;

fn list<T: ToString>(v: &[T]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", s.join(", "))
}

impl Tensor {
    /// `broadcast_in_dim`: operand dim i becomes result dim `bdims[i]` of a
    /// tensor of shape `dims` (operand dims must be 1 or equal).
    #[track_caller]
    pub fn broadcast_in_dim(&self, dims: &[usize], bdims: &[usize]) -> Tensor {
        self.broadcast_in_dim_at(dims, bdims, Location::caller())
    }

    pub(crate) fn broadcast_in_dim_at(
        &self,
        dims: &[usize],
        bdims: &[usize],
        loc: &Location<'_>,
    ) -> Tensor {
        self.b.record1("broadcast_in_dim", loc, &[self], |t| {
            let x = t[0];
            let out = TensorType::new(x.dtype, dims);
            if bdims.len() != x.rank() {
                return Err(format!(
                    "{} broadcast dims given for operand {x} of rank {}",
                    bdims.len(),
                    x.rank()
                ));
            }
            for (i, &d) in bdims.iter().enumerate() {
                if d >= dims.len() {
                    return Err(format!("broadcast dim {d} out of range for result {out}"));
                }
                if i > 0 && bdims[i - 1] >= d {
                    return Err(format!("broadcast dims {} not increasing", list(bdims)));
                }
                if x.dims[i] != 1 && x.dims[i] != dims[d] {
                    return Err(format!(
                        "operand {x} dim {i} ({}) cannot broadcast to result {out} dim {d} ({})",
                        x.dims[i], dims[d]
                    ));
                }
            }
            Ok((
                OpKind::BroadcastInDim {
                    dims: bdims.to_vec(),
                },
                vec![out],
            ))
        })
    }

    /// Numpy-style broadcast to `dims` (trailing dims aligned).
    #[track_caller]
    pub fn broadcast_to(&self, dims: &[usize]) -> Tensor {
        self.broadcast_to_at(dims, Location::caller())
    }

    pub(crate) fn broadcast_to_at(&self, dims: &[usize], loc: &Location<'_>) -> Tensor {
        if self.rank() > dims.len() {
            self.b.fail(
                "broadcast_to",
                loc,
                format!("cannot broadcast {} to rank {}", self.ty, dims.len()),
            );
            return self.clone();
        }
        let off = dims.len() - self.rank();
        let bdims: Vec<usize> = (off..dims.len()).collect();
        self.broadcast_in_dim_at(dims, &bdims, loc)
    }

    /// Same elements, new dims (element count must match).
    #[track_caller]
    pub fn reshape(&self, dims: &[usize]) -> Tensor {
        self.b.record1("reshape", Location::caller(), &[self], |t| {
            let out = TensorType::new(t[0].dtype, dims);
            if out.numel() != t[0].numel() {
                return Err(format!(
                    "cannot reshape {} ({} elements) to {out} ({} elements)",
                    t[0],
                    t[0].numel(),
                    out.numel()
                ));
            }
            Ok((OpKind::Reshape, vec![out]))
        })
    }

    /// Inserts a size-1 dim at `axis` (negative counts from the end of the result).
    #[track_caller]
    pub fn expand_dims(&self, axis: i64) -> Tensor {
        let loc = Location::caller();
        match normalize_axis(axis, self.rank() + 1) {
            Ok(a) => {
                let mut dims = self.dims().to_vec();
                dims.insert(a, 1);
                self.reshape_at(&dims, loc)
            }
            Err(m) => {
                self.b
                    .fail("expand_dims", loc, format!("{m} (operand {})", self.ty));
                self.clone()
            }
        }
    }

    fn reshape_at(&self, dims: &[usize], loc: &Location<'_>) -> Tensor {
        self.b.record1("reshape", loc, &[self], |t| {
            Ok((OpKind::Reshape, vec![TensorType::new(t[0].dtype, dims)]))
        })
    }

    /// Permutes dims: result dim i is operand dim `perm[i]`.
    #[track_caller]
    pub fn transpose(&self, perm: &[usize]) -> Tensor {
        self.b
            .record1("transpose", Location::caller(), &[self], |t| {
                let x = t[0];
                let mut seen = vec![false; x.rank()];
                if perm.len() != x.rank()
                    || perm
                        .iter()
                        .any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(format!(
                        "{} is not a permutation of the dims of {x}",
                        list(perm)
                    ));
                }
                let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
                Ok((
                    OpKind::Transpose {
                        perm: perm.to_vec(),
                    },
                    vec![TensorType::new(x.dtype, &dims)],
                ))
            })
    }

    /// Swaps the last two dims.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        let r = self.rank();
        if r < 2 {
            self.b.fail(
                "transpose",
                Location::caller(),
                format!("t() needs rank >= 2, got {}", self.ty),
            );
            return self.clone();
        }
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.transpose(&perm)
    }

    /// Static strided slice `[start, limit)` with `stride` per dim.
    #[track_caller]
    pub fn slice(&self, start: &[usize], limit: &[usize], stride: &[usize]) -> Tensor {
        self.b.record1("slice", Location::caller(), &[self], |t| {
            let x = t[0];
            if start.len() != x.rank() || limit.len() != x.rank() || stride.len() != x.rank() {
                return Err(format!(
                    "start {} limit {} stride {} must each have {} entries for {x}",
                    list(start),
                    list(limit),
                    list(stride),
                    x.rank()
                ));
            }
            let mut dims = Vec::with_capacity(x.rank());
            for i in 0..x.rank() {
                if start[i] > limit[i] || limit[i] > x.dims[i] || stride[i] == 0 {
                    return Err(format!(
                        "dim {i}: [{}:{}:{}] is not a valid slice of {x}",
                        start[i], limit[i], stride[i]
                    ));
                }
                dims.push((limit[i] - start[i]).div_ceil(stride[i]));
            }
            Ok((
                OpKind::Slice {
                    start: start.to_vec(),
                    limit: limit.to_vec(),
                    stride: stride.to_vec(),
                },
                vec![TensorType::new(x.dtype, &dims)],
            ))
        })
    }

    /// Reverses the order of the elements along `axes` (`jnp.flip`,
    /// `stablehlo.reverse`); negative axes count from the end.
    #[track_caller]
    pub fn reverse(&self, axes: &[i64]) -> Tensor {
        self.b.record1("reverse", Location::caller(), &[self], |t| {
            let dims =
                normalize_axes(axes, t[0].rank()).map_err(|m| format!("{m} (operand {})", t[0]))?;
            Ok((OpKind::Reverse { dims }, vec![t[0].clone()]))
        })
    }

    /// `x[..., start:start+len, ...]` along one axis.
    #[track_caller]
    pub fn narrow(&self, axis: i64, start: usize, len: usize) -> Tensor {
        let loc = Location::caller();
        let a = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(m) => {
                self.b
                    .fail("slice", loc, format!("{m} (operand {})", self.ty));
                return self.clone();
            }
        };
        let mut s = vec![0; self.rank()];
        let mut l = self.dims().to_vec();
        s[a] = start;
        l[a] = start.saturating_add(len);
        self.b.record1("slice", loc, &[self], |t| {
            let x = t[0];
            // Checked: start + len may overflow usize.
            if start.checked_add(len).is_none_or(|end| end > x.dims[a]) {
                return Err(format!(
                    "[{start}:{start}+{len}] out of range for dim {a} of {x}"
                ));
            }
            let mut dims = x.dims.clone();
            dims[a] = len;
            Ok((
                OpKind::Slice {
                    start: s,
                    limit: l,
                    stride: vec![1; x.rank()],
                },
                vec![TensorType::new(x.dtype, &dims)],
            ))
        })
    }

    /// Slice of size `sizes` at runtime start indices (one scalar integer
    /// per dim; XLA clamps them so the slice stays in bounds: the mode
    /// `IndexMode::Clip`; see [`Tensor::dynamic_slice_with_mode`]).
    #[track_caller]
    pub fn dynamic_slice(&self, starts: &[&Tensor], sizes: &[usize]) -> Tensor {
        self.dynamic_slice_at(starts, sizes, Location::caller())
    }

    fn dynamic_slice_at(&self, starts: &[&Tensor], sizes: &[usize], loc: &Location<'_>) -> Tensor {
        let mut ops = vec![self];
        ops.extend_from_slice(starts);
        self.b.record1("dynamic_slice", loc, &ops, |t| {
            let x = t[0];
            check_starts(x, &t[1..])?;
            if sizes.len() != x.rank() || sizes.iter().zip(&x.dims).any(|(s, d)| s > d) {
                return Err(format!("slice sizes {} do not fit {x}", list(sizes)));
            }
            Ok((
                OpKind::DynamicSlice {
                    sizes: sizes.to_vec(),
                },
                vec![TensorType::new(x.dtype, sizes)],
            ))
        })
    }

    /// [`Tensor::dynamic_slice`] with an explicit out-of-range mode. `Clip`
    /// is `dynamic_slice` (starts clamped so the slice fits; its VJP,
    /// a `dynamic_update_slice`, clamps the same way). `Fill(v)` reads `v`
    /// wherever `start + i` falls outside the operand and passes no
    /// gradient there: it pads each dim by its slice size with `v` and
    /// slices the padded operand at `start + size`.
    #[track_caller]
    pub fn dynamic_slice_with_mode(
        &self,
        starts: &[&Tensor],
        sizes: &[usize],
        mode: crate::ops::indexing::IndexMode,
    ) -> Tensor {
        let loc = Location::caller();
        let crate::ops::indexing::IndexMode::Fill(value) = mode else {
            return self.dynamic_slice_at(starts, sizes, loc);
        };
        if sizes.len() != self.rank() || starts.len() != self.rank() {
            return self.dynamic_slice_at(starts, sizes, loc);
        }
        let fill = self.fill_splat(value, loc);
        let padded = self.pad(&fill, sizes, sizes, &vec![0; self.rank()]);
        // Starts move by `size` into the padded operand. Clamped first to
        // [-size, dim] in their own dtype (XLA clamps the shifted start to
        // that range anyway) and added in i64, so `u32::MAX + size` cannot
        // wrap around into the operand.
        let shifted: Vec<Tensor> = starts
            .iter()
            .zip(sizes)
            .zip(self.dims())
            .map(|((s, &n), &d)| {
                let lo = s.splat_like(-(n as f64));
                let hi = s.splat_like(d as f64);
                let s = s.clamp(&lo, &hi).convert(crate::dtype::DType::I64);
                &s + &s.splat_like(n as f64)
            })
            .collect();
        let refs: Vec<&Tensor> = shifted.iter().collect();
        padded.dynamic_slice_at(&refs, sizes, loc)
    }

    /// The checked mode of [`Tensor::dynamic_slice`]: the clipped slice and
    /// the number (`i32[]`) of dims whose window `[start, start + size)`
    /// leaves the operand, for the caller to return and check on the host.
    #[track_caller]
    pub fn dynamic_slice_checked(&self, starts: &[&Tensor], sizes: &[usize]) -> (Tensor, Tensor) {
        let loc = Location::caller();
        let r = self.dynamic_slice_at(starts, sizes, loc);
        let mut bad = self.b.scalar(0.0, crate::dtype::DType::I32);
        for ((s, &n), &d) in starts.iter().zip(sizes).zip(self.dims()) {
            let outside = s.in_range(d.saturating_sub(n) + 1).logical_not();
            bad = bad + outside.convert(crate::dtype::DType::I32);
        }
        (r, bad)
    }

    /// Writes `update` into a copy of `self` at runtime start indices.
    #[track_caller]
    pub fn dynamic_update_slice(&self, update: &Tensor, starts: &[&Tensor]) -> Tensor {
        let mut ops = vec![self, update];
        ops.extend_from_slice(starts);
        self.b
            .record1("dynamic_update_slice", Location::caller(), &ops, |t| {
                let (x, u) = (t[0], t[1]);
                check_starts(x, &t[2..])?;
                if u.dtype != x.dtype
                    || u.rank() != x.rank()
                    || u.dims.iter().zip(&x.dims).any(|(a, b)| a > b)
                {
                    return Err(format!("update {u} does not fit operand {x}"));
                }
                Ok((OpKind::DynamicUpdateSlice, vec![x.clone()]))
            })
    }

    /// Pads with the scalar `value`: `low`/`high` before/after each dim and
    /// `interior` between elements.
    #[track_caller]
    pub fn pad(&self, value: &Tensor, low: &[usize], high: &[usize], interior: &[usize]) -> Tensor {
        // Saturating: a size above i64::MAX stays huge (and is refused by
        // the checked size rule) instead of wrapping negative.
        let signed = |v: &[usize]| -> Vec<i64> {
            v.iter()
                .map(|&x| i64::try_from(x).unwrap_or(i64::MAX))
                .collect()
        };
        self.pad_at(
            value,
            &signed(low),
            &signed(high),
            interior,
            Location::caller(),
        )
    }

    /// `stablehlo.pad` (`lax.pad`) in full: `low`/`high` elements of
    /// `value` before/after each dim, negative to remove elements from that
    /// edge, and `interior` copies between neighbouring elements. Result dim
    /// `i` is `low[i] + high[i] + d + (d - 1) * interior[i]` for an operand
    /// dim of size `d >= 1` (`low[i] + high[i]` for `d = 0`); a negative
    /// result size is an error.
    #[track_caller]
    pub fn pad_signed(
        &self,
        value: &Tensor,
        low: &[i64],
        high: &[i64],
        interior: &[usize],
    ) -> Tensor {
        self.pad_at(value, low, high, interior, Location::caller())
    }

    fn pad_at(
        &self,
        value: &Tensor,
        low: &[i64],
        high: &[i64],
        interior: &[usize],
        loc: &Location<'_>,
    ) -> Tensor {
        self.b.record1("pad", loc, &[self, value], |t| {
            let (x, v) = (t[0], t[1]);
            if v.rank() != 0 || v.dtype != x.dtype {
                return Err(format!(
                    "padding value must be a {} scalar, got {v}",
                    x.dtype
                ));
            }
            if low.len() != x.rank() || high.len() != x.rank() || interior.len() != x.rank() {
                return Err(format!(
                    "low {} high {} interior {} must each have {} entries for {x}",
                    list(low),
                    list(high),
                    list(interior),
                    x.rank()
                ));
            }
            let mut dims = Vec::with_capacity(x.rank());
            for i in 0..x.rank() {
                let d = x.dims[i] as i64;
                let size = i64::try_from(interior[i])
                    .ok()
                    .and_then(|n| (d - 1).max(0).checked_mul(n))
                    .and_then(|n| n.checked_add(d))
                    .and_then(|n| n.checked_add(low[i]))
                    .and_then(|n| n.checked_add(high[i]));
                let Some(size) = size else {
                    return Err(format!(
                        "dim {i} size overflows i64 (low {} high {} interior {} for {x})",
                        list(low),
                        list(high),
                        list(interior)
                    ));
                };
                if size < 0 {
                    return Err(format!(
                        "dim {i} would have size {size} < 0 (low {} high {} interior {} for {x})",
                        list(low),
                        list(high),
                        list(interior)
                    ));
                }
                dims.push(size as usize);
            }
            Ok((
                OpKind::Pad {
                    low: low.to_vec(),
                    high: high.to_vec(),
                    interior: interior.to_vec(),
                },
                vec![TensorType::new(x.dtype, &dims)],
            ))
        })
    }

    /// Joins tensors along `axis` (negative counts from the end).
    ///
    /// # Panics
    /// If `xs` is empty: there is no function to record the error in.
    #[track_caller]
    pub fn concatenate(xs: &[&Tensor], axis: i64) -> Tensor {
        let loc = Location::caller();
        let first = xs[0];
        first.b.record1("concatenate", loc, xs, |t| {
            let a = normalize_axis(axis, t[0].rank())?;
            let mut dims = t[0].dims.clone();
            for x in &t[1..] {
                let same_other = x.rank() == t[0].rank()
                    && (0..x.rank()).all(|i| i == a || x.dims[i] == t[0].dims[i]);
                if x.dtype != t[0].dtype || !same_other {
                    return Err(format!("operands {} and {x} differ outside axis {a}", t[0]));
                }
                dims[a] += x.dims[a];
            }
            Ok((
                OpKind::Concatenate { dim: a },
                vec![TensorType::new(t[0].dtype, &dims)],
            ))
        })
    }
}

fn check_starts(x: &TensorType, starts: &[&TensorType]) -> Result<(), String> {
    if starts.len() != x.rank() {
        return Err(format!(
            "{} start indices given for operand {x} of rank {}",
            starts.len(),
            x.rank()
        ));
    }
    for s in starts {
        if s.rank() != 0 || !s.dtype.is_int() || s.dtype != starts[0].dtype {
            return Err(format!(
                "start indices must be integer scalars of one dtype, got {s}"
            ));
        }
    }
    Ok(())
}

// ---- VJP rules ---------------------------------------------------------

/// Cotangent of `broadcast_in_dim(x)`: sum over the broadcast dims.
pub(crate) fn vjp_broadcast(x: &Tensor, bdims: &[usize], g: &Tensor) -> Tensor {
    let axes: Vec<i64> = (0..g.rank())
        .filter(|d| match bdims.iter().position(|b| b == d) {
            None => true,
            Some(i) => x.dims()[i] == 1 && g.dims()[*d] != 1,
        })
        .map(|d| d as i64)
        .collect();
    g.sum(&axes, false).reshape(x.dims())
}

/// Cotangent of a transpose: the inverse permutation.
pub(crate) fn vjp_transpose(perm: &[usize], g: &Tensor) -> Tensor {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    g.transpose(&inv)
}

/// Cotangent of a static slice: zero-padding back to the operand shape.
pub(crate) fn vjp_slice(x: &Tensor, start: &[usize], stride: &[usize], g: &Tensor) -> Tensor {
    if g.numel() == 0 {
        return x.zeros_like();
    }
    let high: Vec<usize> = (0..x.rank())
        .map(|i| x.dims()[i] - (start[i] + (g.dims()[i] - 1) * stride[i] + 1))
        .collect();
    let interior: Vec<usize> = stride.iter().map(|s| s - 1).collect();
    g.pad(&g.splat_like(0.0), start, &high, &interior)
}

/// Cotangents of `pad(x, value)` (JAX's transpose of pad): un-pad `g` by
/// padding it with the negated edge padding, keep every `interior + 1`-th
/// element; the padding value gets the sum of everything else.
pub(crate) fn vjp_pad(
    x: &Tensor,
    low: &[i64],
    high: &[i64],
    interior: &[usize],
    g: &Tensor,
) -> [Option<Tensor>; 2] {
    let all: Vec<i64> = (0..g.rank() as i64).collect();
    let gx = if x.numel() == 0 {
        x.zeros_like()
    } else {
        let neg = |v: &[i64]| -> Vec<i64> { v.iter().map(|&p| -p).collect() };
        let zero = vec![0; x.rank()];
        let unpadded = g.pad_signed(&g.splat_like(0.0), &neg(low), &neg(high), &zero);
        let stride: Vec<usize> = interior.iter().map(|i| i + 1).collect();
        let limit = unpadded.dims().to_vec();
        unpadded.slice(&zero, &limit, &stride)
    };
    let gv = g.sum(&all, false) - gx.sum(&all, false);
    [Some(gx), Some(gv)]
}

/// Cotangents of a concatenation: the matching slices.
pub(crate) fn vjp_concatenate(xs: &[Tensor], dim: usize, g: &Tensor) -> Vec<Option<Tensor>> {
    let mut off = 0;
    xs.iter()
        .map(|x| {
            let len = x.dims()[dim];
            let s = g.narrow(dim as i64, off, len);
            off += len;
            Some(s)
        })
        .collect()
}
