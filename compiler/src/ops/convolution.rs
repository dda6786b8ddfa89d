//! Convolution: `stablehlo.convolution` as JAX's `lax.conv_general_dilated`
//! (window strides, padding, lhs and rhs dilation, feature groups, any
//! dimension layout such as NHWC / HWIO). Shape rule, lowering and VJP
//! side by side; the VJPs are JAX's transpose rules
//! (`_conv_general_dilated_transpose_lhs` / `_rhs`): the input's cotangent
//! is a convolution of the cotangent with the spatially reversed kernel,
//! the kernel's a convolution of the input with the cotangent.

use crate::ir::{ConvConfig, ConvDims, OpKind};
use crate::op_table::check_dtypes;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

impl ConvDims {
    /// Dimension numbers from layout strings, JAX's
    /// `conv_dimension_numbers(lhs_shape, rhs_shape, ("NHWC", "HWIO", "NHWC"))`:
    /// `N` batch and `C` feature of the input and output, `O` output and
    /// `I` input feature of the kernel, any other letters spatial; spatial
    /// dims pair up by letter and are ordered as in the kernel layout.
    ///
    /// # Errors
    /// When a layout lacks its two special letters, repeats a letter, or
    /// the three do not name the same spatial letters.
    pub fn from_layouts(lhs: &str, rhs: &str, out: &str) -> Result<ConvDims, String> {
        let spatial: Vec<char> = rhs.chars().filter(|c| !"OI".contains(*c)).collect();
        let spec = |layout: &str, special: [char; 2]| -> Result<Vec<usize>, String> {
            let chars: Vec<char> = layout.chars().collect();
            let find = |c: char| chars.iter().position(|&x| x == c);
            let mut v = Vec::with_capacity(chars.len());
            for c in special.iter().chain(&spatial) {
                v.push(find(*c).ok_or_else(|| {
                    format!("layout {layout} lacks {c} (layouts {lhs}, {rhs}, {out})")
                })?);
            }
            if v.len() != chars.len() {
                return Err(format!(
                    "layout {layout} does not match kernel {rhs}: {} dims vs {} named",
                    chars.len(),
                    v.len()
                ));
            }
            Ok(v)
        };
        Ok(ConvDims {
            lhs: spec(lhs, ['N', 'C'])?,
            rhs: spec(rhs, ['O', 'I'])?,
            out: spec(out, ['N', 'C'])?,
        })
    }
}

impl ConvConfig {
    /// A convolution with the given dimension numbers and `spatial` spatial
    /// dims: stride 1, no padding, no dilation, one feature group.
    pub fn new(dims: ConvDims, spatial: usize) -> ConvConfig {
        ConvConfig {
            window_strides: vec![1; spatial],
            padding: vec![(0, 0); spatial],
            lhs_dilation: vec![1; spatial],
            rhs_dilation: vec![1; spatial],
            dims,
            feature_group_count: 1,
            batch_group_count: 1,
        }
    }
}

/// `1 + k (d - 1)` (0 stays 0): the extent of `d` elements `k` apart.
fn dilate(d: usize, k: usize) -> i64 {
    if d == 0 { 0 } else { (1 + k * (d - 1)) as i64 }
}

fn is_permutation(v: &[usize], n: usize) -> bool {
    let mut seen = vec![false; n];
    v.len() == n
        && v.iter()
            .all(|&d| d < n && !std::mem::replace(&mut seen[d], true))
}

fn conv_rule(l: &TensorType, r: &TensorType, c: &ConvConfig) -> Result<TensorType, String> {
    check_dtypes("convolution", &[l, r])?;
    if l.dtype != r.dtype {
        return Err(format!("dtype mismatch: lhs {l} vs rhs {r}"));
    }
    let n = l.rank();
    let s = n.saturating_sub(2);
    let d = &c.dims;
    if n < 3
        || r.rank() != n
        || ![&d.lhs, &d.rhs, &d.out]
            .iter()
            .all(|v| is_permutation(v, n))
        || [&c.window_strides, &c.lhs_dilation, &c.rhs_dilation]
            .iter()
            .any(|v| v.len() != s || v.contains(&0))
        || c.padding.len() != s
    {
        return Err(format!(
            "lhs {l} and rhs {r} need equal rank >= 3, dimension numbers permuting their dims \
             ({:?}, {:?}, {:?}) and one positive stride, dilation and padding per spatial dim \
             (strides {:?}, padding {:?}, lhs_dilation {:?}, rhs_dilation {:?})",
            d.lhs, d.rhs, d.out, c.window_strides, c.padding, c.lhs_dilation, c.rhs_dilation
        ));
    }
    let (fg, bg) = (c.feature_group_count, c.batch_group_count);
    let (batch, cin) = (l.dims[d.lhs[0]], l.dims[d.lhs[1]]);
    let (cout, kin) = (r.dims[d.rhs[0]], r.dims[d.rhs[1]]);
    if fg == 0 || bg == 0 || (fg > 1 && bg > 1) {
        return Err(format!(
            "feature_group_count {fg} and batch_group_count {bg} must be >= 1, one of them 1"
        ));
    }
    if cin != kin * fg
        || !cout.is_multiple_of(fg)
        || !batch.is_multiple_of(bg)
        || !cout.is_multiple_of(bg)
    {
        return Err(format!(
            "features do not match: lhs {l} has {cin} input features, rhs {r} {kin} x \
             feature_group_count {fg} (and {cout} output features divisible by it); \
             batch {batch} and output features divisible by batch_group_count {bg}"
        ));
    }
    let mut out = vec![0; n];
    out[d.out[0]] = batch / bg;
    out[d.out[1]] = cout;
    for k in 0..s {
        let padded =
            dilate(l.dims[d.lhs[2 + k]], c.lhs_dilation[k]) + c.padding[k].0 + c.padding[k].1;
        let window = dilate(r.dims[d.rhs[2 + k]], c.rhs_dilation[k]);
        if window < 1 || padded < window {
            return Err(format!(
                "spatial dim {k}: window of {window} (dilated) does not fit {padded} padded input elements (lhs {l}, rhs {r})"
            ));
        }
        out[d.out[2 + k]] = ((padded - window) / c.window_strides[k] as i64 + 1) as usize;
    }
    Ok(TensorType::new(l.dtype, &out))
}

impl Tensor {
    /// `lax.conv_general_dilated(self, kernel, ...)`: a convolution (in the
    /// deep-learning sense: cross-correlation, the kernel not flipped) of
    /// `self` by `kernel` as `config` says. For NHWC images and an HWIO
    /// kernel: `ConvConfig::new(ConvDims::from_layouts("NHWC", "HWIO",
    /// "NHWC")?, 2)`, then set strides, padding, dilations, groups.
    #[track_caller]
    pub fn conv_general_dilated(&self, kernel: &Tensor, config: &ConvConfig) -> Tensor {
        self.b
            .record1("convolution", Location::caller(), &[self, kernel], |t| {
                let out = conv_rule(t[0], t[1], config)?;
                Ok((OpKind::Convolution(Box::new(config.clone())), vec![out]))
            })
    }
}

// ---- lowering ----------------------------------------------------------

/// `[b, 0, 1, f]`: the role of each position of a tensor.
fn layout(spec: &[usize], batch: &str, feature: &str) -> String {
    let mut names = vec![String::new(); spec.len()];
    names[spec[0]] = batch.into();
    names[spec[1]] = feature.into();
    for (k, &p) in spec[2..].iter().enumerate() {
        names[p] = k.to_string();
    }
    format!("[{}]", names.join(", "))
}

/// The attributes of `stablehlo.convolution`.
pub(crate) fn conv_attrs(c: &ConvConfig) -> String {
    let pads: Vec<String> = c
        .padding
        .iter()
        .map(|(lo, hi)| format!("[{lo}, {hi}]"))
        .collect();
    format!(
        "batch_group_count = {} : i64, dimension_numbers = #stablehlo.conv<{}x{}->{}>, \
         feature_group_count = {} : i64, lhs_dilation = {}, padding = dense<[{}]> : tensor<{}x2xi64>, \
         rhs_dilation = {}, window_strides = {}",
        c.batch_group_count,
        layout(&c.dims.lhs, "b", "f"),
        layout(&c.dims.rhs, "o", "i"),
        layout(&c.dims.out, "b", "f"),
        c.feature_group_count,
        crate::emit::i64_array(&c.lhs_dilation),
        pads.join(", "),
        c.padding.len(),
        crate::emit::i64_array(&c.rhs_dilation),
        crate::emit::i64_array(&c.window_strides)
    )
}

// ---- VJP rules ---------------------------------------------------------

fn swap01(v: &[usize]) -> Vec<usize> {
    let mut s = v.to_vec();
    s.swap(0, 1);
    s
}

/// Splits dim `src` of `x` into `(size1, rest)`.
fn reshape_axis_out_of(src: usize, size1: usize, x: &Tensor) -> Tensor {
    let mut shape = x.dims().to_vec();
    let rest = shape[src] / size1;
    shape.splice(src..=src, [size1, rest]);
    x.reshape(&shape)
}

/// Merges dim `src` of `x` into dim `dst` (numbered without `src`), `src`
/// the major part.
fn reshape_axis_into(src: usize, dst: usize, x: &Tensor) -> Tensor {
    let mut perm: Vec<usize> = (0..x.rank()).filter(|&i| i != src).collect();
    perm.insert(dst, src);
    let mut shape: Vec<usize> = perm.iter().map(|&p| x.dims()[p]).collect();
    let minor = shape.remove(dst + 1);
    shape[dst] *= minor;
    x.transpose(&perm).reshape(&shape)
}

/// The spatial sizes of `t` at positions `spec[2..]`.
fn spatial(t: &Tensor, spec: &[usize]) -> Vec<usize> {
    spec[2..].iter().map(|&p| t.dims()[p]).collect()
}

/// Cotangents of `conv_general_dilated(x, w)`; `Err` for grouped batches
/// (`batch_group_count > 1`, made only by this rule).
pub(crate) fn vjp_conv(
    x: &Tensor,
    w: &Tensor,
    c: &ConvConfig,
    g: &Tensor,
) -> Result<[Option<Tensor>; 2], String> {
    if c.batch_group_count > 1 {
        return Err(
            "a convolution with batch_group_count > 1 (the kernel gradient of a grouped convolution) \
             is not differentiable: second derivatives of grouped convolutions are not supported"
                .into(),
        );
    }
    Ok([
        Some(transpose_lhs(x, w, c, g)),
        Some(transpose_rhs(x, w, c, g)),
    ])
}

/// JAX's `_conv_general_dilated_transpose_lhs` (feature groups folded into
/// the kernel's input features).
fn transpose_lhs(x: &Tensor, w: &Tensor, c: &ConvConfig, g: &Tensor) -> Tensor {
    let (d, fg) = (&c.dims, c.feature_group_count);
    let w = if fg > 1 {
        reshape_axis_into(d.rhs[0], d.rhs[1], &reshape_axis_out_of(d.rhs[0], fg, w))
    } else {
        w.clone()
    };
    let (xin, win, gout) = (spatial(x, &d.lhs), spatial(&w, &d.rhs), spatial(g, &d.out));
    let padding: Vec<(i64, i64)> = (0..xin.len())
        .map(|k| {
            let lhs = dilate(xin[k], c.lhs_dilation[k]);
            let rhs = dilate(win[k], c.rhs_dilation[k]);
            let out = dilate(gout[k], c.window_strides[k]);
            let before = rhs - c.padding[k].0 - 1;
            (before, lhs + rhs - 1 - out - before)
        })
        .collect();
    let axes: Vec<i64> = d.rhs[2..].iter().map(|&p| p as i64).collect();
    let config = ConvConfig {
        window_strides: c.lhs_dilation.clone(),
        padding,
        lhs_dilation: c.window_strides.clone(),
        rhs_dilation: c.rhs_dilation.clone(),
        dims: ConvDims {
            lhs: d.out.clone(),
            rhs: swap01(&d.rhs),
            out: d.lhs.clone(),
        },
        feature_group_count: fg,
        batch_group_count: 1,
    };
    g.conv_general_dilated(&w.reverse(&axes), &config)
}

/// JAX's `_conv_general_dilated_transpose_rhs` (feature groups become
/// batch groups).
fn transpose_rhs(x: &Tensor, w: &Tensor, c: &ConvConfig, g: &Tensor) -> Tensor {
    if g.numel() == 0 {
        return w.zeros_like();
    }
    let d = &c.dims;
    let (xin, win, gout) = (spatial(x, &d.lhs), spatial(w, &d.rhs), spatial(g, &d.out));
    let padding: Vec<(i64, i64)> = (0..xin.len())
        .map(|k| {
            let lhs = dilate(xin[k], c.lhs_dilation[k]);
            let rhs = dilate(win[k], c.rhs_dilation[k]);
            let out = dilate(gout[k], c.window_strides[k]);
            let lo = c.padding[k].0;
            (lo, (out - lhs) + (rhs - lo - 1))
        })
        .collect();
    let config = ConvConfig {
        window_strides: c.rhs_dilation.clone(),
        padding,
        lhs_dilation: c.lhs_dilation.clone(),
        rhs_dilation: c.window_strides.clone(),
        dims: ConvDims {
            lhs: swap01(&d.lhs),
            rhs: swap01(&d.out),
            out: swap01(&d.rhs),
        },
        feature_group_count: 1,
        batch_group_count: c.feature_group_count,
    };
    x.conv_general_dilated(g, &config)
}
