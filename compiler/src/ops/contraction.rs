//! Contractions: `dot_general` (batched matmul), `matmul` and an `einsum`
//! helper for common specs. Shape rule and VJP rule side by side.

use crate::dtype::DType;
use crate::ir::{DotDims, OpKind, Precision};
use crate::op_table::check_dtypes;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

/// Options of `stablehlo.dot_general` beyond its dimension numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DotConfig {
    /// The result element type (JAX's `preferred_element_type`): the
    /// products are accumulated in it, e.g. bf16 x bf16 -> f32 or
    /// f32 x f32 -> f64. Must be a float for float operands and an integer
    /// for integer ones; `None` keeps the operands' type.
    pub result_dtype: Option<DType>,
    /// `precision_config` for (lhs, rhs); `None` leaves it to the backend.
    pub precision: Option<[Precision; 2]>,
}

fn dot_rule(
    l: &TensorType,
    r: &TensorType,
    d: &DotDims,
    result_dtype: Option<DType>,
) -> Result<TensorType, String> {
    check_dtypes("dot_general", &[l, r])?;
    if l.dtype != r.dtype {
        return Err(format!("dtype mismatch: lhs {l} vs rhs {r}"));
    }
    let out_dtype = result_dtype.unwrap_or(l.dtype);
    if out_dtype.is_float() != l.dtype.is_float() || out_dtype == DType::Pred {
        return Err(format!(
            "result type {out_dtype} does not match operands {l}, {r}: \
             float operands need a float result, integer operands an integer one"
        ));
    }
    if d.lhs_batch.len() != d.rhs_batch.len() || d.lhs_contract.len() != d.rhs_contract.len() {
        return Err(format!(
            "unpaired dims: batch {:?} x {:?}, contracting {:?} x {:?} (lhs {l}, rhs {r})",
            d.lhs_batch, d.rhs_batch, d.lhs_contract, d.rhs_contract
        ));
    }
    for (side, t, dims) in [
        ("lhs", l, [&d.lhs_batch, &d.lhs_contract]),
        ("rhs", r, [&d.rhs_batch, &d.rhs_contract]),
    ] {
        let mut seen = vec![false; t.rank()];
        for &x in dims.iter().flat_map(|v| v.iter()) {
            if x >= t.rank() {
                return Err(format!("{side} dim {x} out of range for {side} {t}"));
            }
            if std::mem::replace(&mut seen[x], true) {
                return Err(format!("{side} dim {x} used twice for {side} {t}"));
            }
        }
    }
    for (what, ld, rd) in [
        ("batch", &d.lhs_batch, &d.rhs_batch),
        ("contracting", &d.lhs_contract, &d.rhs_contract),
    ] {
        for (&a, &b) in ld.iter().zip(rd.iter()) {
            if l.dims[a] != r.dims[b] {
                return Err(format!(
                    "{what} dims mismatch: lhs {l} dim {a} ({}) vs rhs {r} dim {b} ({})",
                    l.dims[a], r.dims[b]
                ));
            }
        }
    }
    let mut dims: Vec<usize> = d.lhs_batch.iter().map(|&a| l.dims[a]).collect();
    dims.extend(free_dims(l.rank(), &d.lhs_batch, &d.lhs_contract).map(|a| l.dims[a]));
    dims.extend(free_dims(r.rank(), &d.rhs_batch, &d.rhs_contract).map(|a| r.dims[a]));
    Ok(TensorType::new(out_dtype, &dims))
}

/// The dims of a rank-`rank` operand that are neither batch nor contracted, ascending.
fn free_dims<'a>(
    rank: usize,
    batch: &'a [usize],
    contract: &'a [usize],
) -> impl Iterator<Item = usize> + 'a {
    (0..rank).filter(move |d| !batch.contains(d) && !contract.contains(d))
}

impl Tensor {
    /// `stablehlo.dot_general`: result dims are batch, then lhs free, then rhs free.
    #[track_caller]
    pub fn dot_general(&self, rhs: &Tensor, dims: DotDims) -> Tensor {
        self.dot_general_at(rhs, dims, Location::caller())
    }

    /// `stablehlo.dot_general` with a result element type and a
    /// `precision_config` (see [`DotConfig`]).
    #[track_caller]
    pub fn dot_general_with(&self, rhs: &Tensor, dims: DotDims, config: DotConfig) -> Tensor {
        self.dot_general_config_at(rhs, dims, config, Location::caller())
    }

    fn dot_general_at(&self, rhs: &Tensor, dims: DotDims, loc: &Location<'_>) -> Tensor {
        self.dot_general_config_at(rhs, dims, DotConfig::default(), loc)
    }

    fn dot_general_config_at(
        &self,
        rhs: &Tensor,
        dims: DotDims,
        config: DotConfig,
        loc: &Location<'_>,
    ) -> Tensor {
        self.b.record1("dot_general", loc, &[self, rhs], |t| {
            let out = dot_rule(t[0], t[1], &dims, config.result_dtype)?;
            Ok((
                OpKind::DotGeneral {
                    dims,
                    precision: config.precision,
                },
                vec![out],
            ))
        })
    }

    /// Matrix product over the last dim of `self`: `[.., m, k] x [k, n]`, or
    /// a batched `[b.., m, k] x [b.., k, n]` with equal leading dims.
    #[track_caller]
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        let loc = Location::caller();
        let (lr, rr) = (self.rank(), rhs.rank());
        let dims = if lr >= 1 && rr == 2 {
            DotDims {
                lhs_contract: vec![lr - 1],
                rhs_contract: vec![0],
                ..DotDims::default()
            }
        } else if lr == rr && lr >= 3 {
            DotDims {
                lhs_batch: (0..lr - 2).collect(),
                rhs_batch: (0..lr - 2).collect(),
                lhs_contract: vec![lr - 1],
                rhs_contract: vec![rr - 2],
            }
        } else {
            self.b.fail(
                "dot_general",
                loc,
                format!(
                    "matmul needs [..,m,k] x [k,n] or equal-rank batched operands, got lhs {} rhs {}",
                    self.ty, rhs.ty
                ),
            );
            return self.clone();
        };
        self.dot_general_at(rhs, dims, loc)
    }
}

/// Einstein summation over one or two operands, e.g. `"btd,df->btf"`,
/// `"bqhd,bkhd->bhqk"`, `"ij->ji"`. Letters absent from the output are
/// summed; each letter may appear at most once per operand.
///
/// # Panics
/// If `xs` is empty: there is no function to record the error in.
#[track_caller]
pub fn einsum(spec: &str, xs: &[&Tensor]) -> Tensor {
    let loc = Location::caller();
    let b = &xs[0].b;
    match einsum_plan(spec, xs) {
        Ok(plan) => plan.run(xs, loc),
        Err(m) => {
            let shapes: Vec<String> = xs.iter().map(|x| x.ty.to_string()).collect();
            b.fail(
                "einsum",
                loc,
                format!("{m} (spec \"{spec}\", operands {})", shapes.join(", ")),
            );
            xs[0].clone()
        }
    }
}

struct EinsumPlan {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

fn einsum_plan(spec: &str, xs: &[&Tensor]) -> Result<EinsumPlan, String> {
    let (lhs, out) = spec
        .split_once("->")
        .ok_or_else(|| "missing `->`".to_string())?;
    let inputs: Vec<Vec<char>> = lhs.split(',').map(|s| s.trim().chars().collect()).collect();
    let output: Vec<char> = out.trim().chars().collect();
    if inputs.len() != xs.len() || !(1..=2).contains(&xs.len()) {
        return Err(format!(
            "{} operand specs for {} operands (1 or 2 supported)",
            inputs.len(),
            xs.len()
        ));
    }
    for (i, (s, x)) in inputs.iter().zip(xs).enumerate() {
        if s.len() != x.rank() {
            return Err(format!(
                "operand {i} spec has {} letters for rank {}",
                s.len(),
                x.rank()
            ));
        }
        for (j, c) in s.iter().enumerate() {
            if s[..j].contains(c) {
                return Err(format!("letter `{c}` repeated in operand {i}"));
            }
        }
    }
    for c in &output {
        if !inputs.iter().any(|s| s.contains(c)) {
            return Err(format!("output letter `{c}` not in any operand"));
        }
    }
    Ok(EinsumPlan { inputs, output })
}

impl EinsumPlan {
    fn run(&self, xs: &[&Tensor], loc: &Location<'_>) -> Tensor {
        let keep_for = |i: usize| -> Vec<char> {
            self.inputs[i]
                .iter()
                .copied()
                .filter(|c| {
                    self.output.contains(c)
                        || self
                            .inputs
                            .iter()
                            .enumerate()
                            .any(|(j, s)| j != i && s.contains(c))
                })
                .collect()
        };
        let mut ops = Vec::new();
        let mut specs = Vec::new();
        for (i, x) in xs.iter().enumerate() {
            let keep = keep_for(i);
            let axes: Vec<i64> = (0..x.rank())
                .filter(|&d| !keep.contains(&self.inputs[i][d]))
                .map(|d| d as i64)
                .collect();
            ops.push(if axes.is_empty() {
                (*x).clone()
            } else {
                x.sum(&axes, false)
            });
            specs.push(keep);
        }
        let (result, letters) = if ops.len() == 1 {
            (ops.remove(0), specs.remove(0))
        } else {
            let (l, r) = (&specs[0], &specs[1]);
            let mut d = DotDims::default();
            for (i, c) in l.iter().enumerate() {
                if let Some(j) = r.iter().position(|x| x == c) {
                    if self.output.contains(c) {
                        d.lhs_batch.push(i);
                        d.rhs_batch.push(j);
                    } else {
                        d.lhs_contract.push(i);
                        d.rhs_contract.push(j);
                    }
                }
            }
            let mut letters: Vec<char> = d.lhs_batch.iter().map(|&i| l[i]).collect();
            letters.extend(free_dims(l.len(), &d.lhs_batch, &d.lhs_contract).map(|i| l[i]));
            letters.extend(free_dims(r.len(), &d.rhs_batch, &d.rhs_contract).map(|i| r[i]));
            (ops[0].dot_general_at(&ops[1], d, loc), letters)
        };
        let perm: Vec<usize> = self
            .output
            .iter()
            .map(|c| letters.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == letters.len() {
            result
        } else {
            result.transpose(&perm)
        }
    }
}

// ---- VJP rule ----------------------------------------------------------

/// Cotangents of `dot_general(x, y)` (JAX's transpose rule). When the
/// result type differs from the operands' (bf16 x bf16 -> f32), the
/// backward products run in the wider of the two types and each cotangent
/// is rounded once to its operand's type.
pub(crate) fn vjp_dot(x: &Tensor, y: &Tensor, d: &DotDims, g: &Tensor) -> [Option<Tensor>; 2] {
    if g.dtype() != x.dtype() {
        let wide = if g.dtype().size_bytes() >= x.dtype().size_bytes() {
            g.dtype()
        } else {
            x.dtype()
        };
        let [gx, gy] = vjp_dot(&x.convert(wide), &y.convert(wide), d, &g.convert(wide));
        return [
            gx.map(|t| t.convert(x.dtype())),
            gy.map(|t| t.convert(y.dtype())),
        ];
    }
    let nb = d.lhs_batch.len();
    let x_free: Vec<usize> = free_dims(x.rank(), &d.lhs_batch, &d.lhs_contract).collect();
    let y_free: Vec<usize> = free_dims(y.rank(), &d.rhs_batch, &d.rhs_contract).collect();
    let g_batch: Vec<usize> = (0..nb).collect();
    let g_xfree: Vec<usize> = (nb..nb + x_free.len()).collect();
    let g_yfree: Vec<usize> = (nb + x_free.len()..g.rank()).collect();
    let gx = one_side(
        g,
        y,
        &g_batch,
        &d.rhs_batch,
        &g_yfree,
        &y_free,
        &d.lhs_batch,
        &x_free,
        &d.lhs_contract,
        &d.rhs_contract,
    );
    let gy = one_side(
        g,
        x,
        &g_batch,
        &d.lhs_batch,
        &g_xfree,
        &x_free,
        &d.rhs_batch,
        &y_free,
        &d.rhs_contract,
        &d.lhs_contract,
    );
    [Some(gx), Some(gy)]
}

/// The cotangent of one operand ("self") of a dot: contract `g` with the
/// other operand over the other's free dims, then permute into self's layout.
#[allow(clippy::too_many_arguments)]
fn one_side(
    g: &Tensor,
    other: &Tensor,
    g_batch: &[usize],
    other_batch: &[usize],
    g_other_free: &[usize],
    other_free: &[usize],
    self_batch: &[usize],
    self_free: &[usize],
    self_contract: &[usize],
    other_contract: &[usize],
) -> Tensor {
    let r = g.dot_general(
        other,
        DotDims {
            lhs_batch: g_batch.to_vec(),
            rhs_batch: other_batch.to_vec(),
            lhs_contract: g_other_free.to_vec(),
            rhs_contract: other_free.to_vec(),
        },
    );
    // Result dims: batch, self free, then the other's contracted dims in
    // ascending order, each paired with one of self's contracted dims.
    let mut order: Vec<usize> = (0..other_contract.len()).collect();
    order.sort_by_key(|&i| other_contract[i]);
    let mut src: Vec<usize> = self_batch.to_vec();
    src.extend_from_slice(self_free);
    src.extend(order.iter().map(|&i| self_contract[i]));
    let perm: Vec<usize> = (0..src.len())
        .map(|d| src.iter().position(|&s| s == d).unwrap_or(0))
        .collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        r
    } else {
        r.transpose(&perm)
    }
}
