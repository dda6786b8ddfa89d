//! Reverse-mode autodiff as a graph transformation (like `tf.gradients`):
//! walks the recorded ops backwards from the outputs and appends the
//! backward ops to the same builder, using one VJP rule per primitive.

use crate::builder::FunctionBuilder;
use crate::ir::{Graph, OpId, OpKind, ScanBody, Value, ValueDef, ValueId};
use crate::ops::{
    contraction, convolution, elementwise, indexing, reduce, remat, shape_ops, sort, window,
};
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::panic::Location;

/// Gradient of the scalar `loss` with respect to each of `wrt` (zeros for
/// inputs the loss does not depend on). The backward ops are appended to the
/// builder of `loss`; `wrt` must be floating-point values of that builder.
#[track_caller]
pub fn grad(loss: &Tensor, wrt: &[&Tensor]) -> Vec<Tensor> {
    let loc = Location::caller();
    if loss.rank() != 0 {
        loss.b.fail(
            "grad",
            loc,
            format!(
                "loss must be a scalar, got {}; use vjp with a cotangent for non-scalar outputs",
                loss.ty
            ),
        );
        return wrt.iter().map(|w| (*w).clone()).collect();
    }
    let one = loss.ones_like();
    vjp_at(&[loss], &[&one], wrt, loc)
}

/// The loss itself and its gradient with respect to each of `wrt`.
#[track_caller]
pub fn value_and_grad(loss: &Tensor, wrt: &[&Tensor]) -> (Tensor, Vec<Tensor>) {
    (loss.clone(), grad(loss, wrt))
}

/// Vector-Jacobian product: the sum over outputs of `cotangent_i · d output_i / d wrt_j`,
/// for each `wrt_j`. Cotangents have the outputs' types.
#[track_caller]
pub fn vjp(outputs: &[&Tensor], cotangents: &[&Tensor], wrt: &[&Tensor]) -> Vec<Tensor> {
    vjp_at(outputs, cotangents, wrt, Location::caller())
}

fn vjp_at(
    outputs: &[&Tensor],
    cts: &[&Tensor],
    wrt: &[&Tensor],
    loc: &Location<'_>,
) -> Vec<Tensor> {
    let fallback = || wrt.iter().map(|w| (*w).clone()).collect();
    let Some(first) = outputs.first() else {
        return wrt.iter().map(|w| w.zeros_like()).collect();
    };
    let b = first.b.clone();
    let check = || -> Result<(), String> {
        if outputs.len() != cts.len() {
            return Err(format!(
                "{} outputs but {} cotangents",
                outputs.len(),
                cts.len()
            ));
        }
        for (o, c) in outputs.iter().zip(cts) {
            if o.ty != c.ty {
                return Err(format!("cotangent {} does not match output {}", c.ty, o.ty));
            }
        }
        for t in outputs.iter().chain(cts).chain(wrt) {
            if !b.same(&t.b) {
                return Err(format!("{} belongs to another function", t.ty));
            }
        }
        for w in wrt {
            if !w.dtype().is_float() {
                return Err(format!(
                    "input {} is not differentiable: integer and pred values have no gradient",
                    w.ty
                ));
            }
        }
        Ok(())
    };
    if let Err(m) = check() {
        b.fail("grad", loc, m);
        return fallback();
    }
    if b.failed() || outputs.iter().chain(wrt).any(|t| t.is_placeholder()) {
        return fallback();
    }
    let seeds: Vec<(ValueId, Tensor)> = outputs
        .iter()
        .zip(cts)
        .map(|(o, c)| (o.id, (*c).clone()))
        .collect();
    let ids: Vec<ValueId> = wrt.iter().map(|w| w.id).collect();
    match backprop(&b, &seeds, &ids) {
        Ok(mut g) => wrt
            .iter()
            .zip(g.iter_mut())
            .map(|(w, g)| g.take().unwrap_or_else(|| w.zeros_like()))
            .collect(),
        Err(m) => {
            b.fail("grad", loc, m);
            fallback()
        }
    }
}

pub(crate) fn is_differentiable(kind: &OpKind) -> bool {
    !matches!(
        kind,
        OpKind::Constant { .. }
            | OpKind::Iota { .. }
            | OpKind::Compare(_)
            | OpKind::Argmax { .. }
            | OpKind::RngBitGenerator
            | OpKind::StopGradient
            | OpKind::BitcastConvert
    )
}

/// Accumulates cotangents from `seeds` back to `wrt`; `None` = zero.
fn backprop(
    b: &FunctionBuilder,
    seeds: &[(ValueId, Tensor)],
    wrt: &[ValueId],
) -> Result<Vec<Option<Tensor>>, String> {
    let (n_ops, needs) = {
        let inner = b.inner.borrow();
        let g = &inner.graph;
        let mut needs = vec![false; g.values.len()];
        for w in wrt {
            needs[w.index()] = true;
        }
        for op in &g.ops {
            if is_differentiable(&op.kind) && op.operands.iter().any(|v| needs[v.index()]) {
                for r in &op.results {
                    needs[r.index()] = g.ty(*r).dtype.is_float();
                }
            }
        }
        (g.ops.len(), needs)
    };
    let mut cts: HashMap<ValueId, Tensor> = HashMap::new();
    for (v, c) in seeds {
        accumulate(&mut cts, *v, c.clone());
    }
    for i in (0..n_ops).rev() {
        let op = {
            let inner = b.inner.borrow();
            let op = &inner.graph.ops[i];
            let useful = op.results.iter().any(|r| cts.contains_key(r))
                && op.operands.iter().any(|v| needs[v.index()]);
            if !useful {
                continue;
            }
            op.clone()
        };
        let tensor = |v: ValueId| {
            let ty = b.inner.borrow().graph.ty(v).clone();
            Tensor::new(b.clone(), v, ty)
        };
        let ins: Vec<Tensor> = op.operands.iter().map(|&v| tensor(v)).collect();
        let outs: Vec<Tensor> = op.results.iter().map(|&v| tensor(v)).collect();
        let gs: Vec<Tensor> = op
            .results
            .iter()
            .zip(&outs)
            .map(|(r, o)| cts.get(r).cloned().unwrap_or_else(|| o.zeros_like()))
            .collect();
        let in_cts = vjp_rule(b, OpId(i as u32), &op.kind, &ins, &outs, &gs)?;
        for ((v, ct), x) in op.operands.iter().zip(in_cts).zip(&ins) {
            if let Some(ct) = ct
                && needs[v.index()]
                && x.dtype().is_float()
            {
                accumulate(&mut cts, *v, ct);
            }
        }
    }
    Ok(wrt.iter().map(|w| cts.get(w).cloned()).collect())
}

pub(crate) fn accumulate(cts: &mut HashMap<ValueId, Tensor>, v: ValueId, ct: Tensor) {
    match cts.remove(&v) {
        Some(prev) => {
            cts.insert(v, &prev + &ct);
        }
        None => {
            cts.insert(v, ct);
        }
    }
}

/// The VJP table: cotangents of an op's operands from those of its results.
pub(crate) fn vjp_rule(
    b: &FunctionBuilder,
    op: OpId,
    kind: &OpKind,
    x: &[Tensor],
    y: &[Tensor],
    g: &[Tensor],
) -> Result<Vec<Option<Tensor>>, String> {
    let g0 = &g[0];
    Ok(match kind {
        OpKind::Constant { .. }
        | OpKind::Iota { .. }
        | OpKind::Compare(_)
        | OpKind::Argmax { .. }
        | OpKind::RngBitGenerator
        | OpKind::StopGradient => vec![None; x.len()],
        OpKind::Unary(u) => vec![elementwise::vjp_unary(*u, &x[0], &y[0], g0)],
        OpKind::Binary(o) => elementwise::vjp_binary(*o, &x[0], &x[1], &y[0], g0).to_vec(),
        OpKind::Select => elementwise::vjp_select(&x[0], g0).to_vec(),
        OpKind::Clamp => elementwise::vjp_clamp(&x[0], &x[1], &x[2], g0).to_vec(),
        OpKind::Convert => vec![x[0].dtype().is_float().then(|| g0.convert(x[0].dtype()))],
        OpKind::BitcastConvert => vec![None],
        OpKind::ReducePrecision {
            exponent_bits,
            mantissa_bits,
        } => vec![Some(g0.reduce_precision(*exponent_bits, *mantissa_bits))],
        OpKind::BroadcastInDim { dims } => vec![Some(shape_ops::vjp_broadcast(&x[0], dims, g0))],
        OpKind::Reshape => vec![Some(g0.reshape(x[0].dims()))],
        OpKind::Transpose { perm } => vec![Some(shape_ops::vjp_transpose(perm, g0))],
        OpKind::Reverse { dims } => {
            let axes: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
            vec![Some(g0.reverse(&axes))]
        }
        OpKind::Slice { start, stride, .. } => {
            vec![Some(shape_ops::vjp_slice(&x[0], start, stride, g0))]
        }
        OpKind::DynamicSlice { .. } => {
            let starts: Vec<&Tensor> = x[1..].iter().collect();
            let mut r = vec![Some(x[0].zeros_like().dynamic_update_slice(g0, &starts))];
            r.resize(x.len(), None);
            r
        }
        OpKind::DynamicUpdateSlice => {
            let starts: Vec<&Tensor> = x[2..].iter().collect();
            let mut r = vec![
                Some(g0.dynamic_update_slice(&x[1].zeros_like(), &starts)),
                Some(g0.dynamic_slice(&starts, x[1].dims())),
            ];
            r.resize(x.len(), None);
            r
        }
        OpKind::Concatenate { dim } => shape_ops::vjp_concatenate(x, *dim, g0),
        OpKind::Pad {
            low,
            high,
            interior,
        } => shape_ops::vjp_pad(&x[0], low, high, interior, g0).to_vec(),
        OpKind::DotGeneral { dims, .. } => contraction::vjp_dot(&x[0], &x[1], dims, g0).to_vec(),
        OpKind::Convolution(c) => convolution::vjp_conv(&x[0], &x[1], c, g0)?.to_vec(),
        OpKind::Reduce { kind, axes } => {
            vec![Some(reduce::vjp_reduce(*kind, axes, &x[0], &y[0], g0))]
        }
        OpKind::ReduceWindow { kind, window: w } => {
            vec![Some(window::vjp_reduce_window(*kind, w, &x[0], g0))]
        }
        OpKind::SelectAndScatter { .. } => {
            return Err(
                "select_and_scatter (the max/min pooling gradient) is not differentiable: \
                 second derivatives of max and min pooling are not supported"
                    .into(),
            );
        }
        OpKind::Gather(dims) => vec![Some(indexing::vjp_gather(&x[0], &x[1], dims, g0)), None],
        OpKind::ScatterAdd(dims) => indexing::vjp_scatter(&x[0], &x[1], &x[2], dims, g0).to_vec(),
        OpKind::Sort { dim, .. } => sort::vjp_sort(x, y, g, *dim),
        OpKind::ShardingConstraint { sharding } => vec![Some(g0.sharding_constraint(sharding))],
        OpKind::OptimizationBarrier => g.iter().map(|c| Some(c.clone())).collect(),
        OpKind::CheckpointName { .. } => vec![Some(g0.clone())],
        OpKind::Remat {
            body,
            num_outputs,
            offload,
        } => remat::vjp_remat(b, body, *num_outputs, *offload, x, y, g)?,
        OpKind::MemoryPlacement { .. } => vec![Some(g0.clone())],
        OpKind::Scan {
            body,
            length,
            reverse,
            ..
        } => vjp_scan(b, op, body, *length, *reverse, x, g),
        OpKind::While { .. } => {
            return Err(
                "while_loop is not differentiable; use scan for loops that need gradients".into(),
            );
        }
    })
}

/// Replays the ops of `g` in builder `b` with `args` as its parameters.
pub(crate) fn inline(b: &FunctionBuilder, g: &Graph, args: &[Tensor]) -> Vec<Tensor> {
    let mut map: Vec<Option<Tensor>> = vec![None; g.values.len()];
    for (p, a) in g.params.iter().zip(args) {
        map[p.index()] = Some(a.clone());
    }
    let loc = Location::caller();
    for op in &g.ops {
        let ins: Vec<Tensor> = op
            .operands
            .iter()
            .map(|v| map[v.index()].clone().expect("operands precede their uses"))
            .collect();
        let refs: Vec<&Tensor> = ins.iter().collect();
        let tys: Vec<TensorType> = op.results.iter().map(|r| g.ty(*r).clone()).collect();
        let outs = b.record(&op.kind.name(), loc, &refs, |_| Ok((op.kind.clone(), tys)));
        for (r, t) in op.results.iter().zip(outs) {
            map[r.index()] = Some(t);
        }
    }
    g.results
        .iter()
        .map(|r| map[r.index()].clone().expect("results are defined"))
        .collect()
}

/// Turns on `save_carries` for a forward scan op and returns the stacked
/// per-step input carries (new results of that op).
fn saved_carries(b: &FunctionBuilder, op: OpId, body: &ScanBody, length: usize) -> Vec<Tensor> {
    let mut inner = b.inner.borrow_mut();
    let g = &mut inner.graph;
    let nc = body.num_carry;
    let n_base = nc + body.graph.results.len() - nc;
    if let OpKind::Scan {
        save_carries: true, ..
    } = &g.ops[op.index()].kind
    {
        let ids = g.ops[op.index()].results[n_base..].to_vec();
        return ids
            .into_iter()
            .map(|id| Tensor::new(b.clone(), id, g.ty(id).clone()))
            .collect();
    }
    let mut out = Vec::with_capacity(nc);
    for k in 0..nc {
        let cty = body.graph.ty(body.graph.params[k]);
        let mut dims = vec![length];
        dims.extend_from_slice(&cty.dims);
        let ty = TensorType::new(cty.dtype, &dims);
        let id = ValueId(g.values.len() as u32);
        g.values.push(Value {
            ty: ty.clone(),
            def: ValueDef::Op(op, n_base + k),
        });
        g.ops[op.index()].results.push(id);
        out.push(Tensor::new(b.clone(), id, ty));
    }
    if let OpKind::Scan { save_carries, .. } = &mut g.ops[op.index()].kind {
        *save_carries = true;
    }
    out
}

/// VJP of scan: a reverse scan over the saved per-step carries that
/// recomputes each step's forward body and applies its VJP.
fn vjp_scan(
    b: &FunctionBuilder,
    op: OpId,
    body: &ScanBody,
    length: usize,
    reverse: bool,
    x: &[Tensor],
    g: &[Tensor],
) -> Vec<Option<Tensor>> {
    let (nc, nx) = (body.num_carry, body.num_xs);
    let caps: Vec<Tensor> = x[nc + nx..].to_vec();
    let ny = body.graph.results.len() - nc;
    let saved = saved_carries(b, op, body, length);
    let graph = body.graph.clone();
    let mut carry: Vec<Tensor> = g[..nc].to_vec();
    carry.extend(caps.iter().map(|c| c.zeros_like()));
    let mut xs: Vec<Tensor> = saved;
    xs.extend_from_slice(&x[nc..nc + nx]);
    xs.extend_from_slice(&g[nc..nc + ny]);
    let carry_refs: Vec<&Tensor> = carry.iter().collect();
    let xs_refs: Vec<&Tensor> = xs.iter().collect();
    let (fin, stacked) = b.scan_impl(length, &carry_refs, &xs_refs, !reverse, |c, s| {
        let child = c
            .first()
            .or(s.first())
            .map(|t| t.b.clone())
            .expect("scan has operands");
        let local_caps: Vec<Tensor> = caps.iter().map(|t| child.capture(t)).collect();
        let mut args: Vec<Tensor> = s[..nc].to_vec();
        args.extend_from_slice(&s[nc..nc + nx]);
        args.extend(local_caps.iter().cloned());
        let outs = inline(&child, &graph, &args);
        let out_refs: Vec<&Tensor> = outs.iter().collect();
        let mut ct_refs: Vec<&Tensor> = c[..nc].iter().collect();
        ct_refs.extend(s[nc + nx..].iter());
        let float_args: Vec<&Tensor> = args.iter().filter(|a| a.dtype().is_float()).collect();
        let float_outs: Vec<usize> = (0..outs.len())
            .filter(|&i| outs[i].dtype().is_float())
            .collect();
        let fo: Vec<&Tensor> = float_outs.iter().map(|&i| out_refs[i]).collect();
        let fc: Vec<&Tensor> = float_outs.iter().map(|&i| ct_refs[i]).collect();
        let grads = vjp(&fo, &fc, &float_args);
        let mut it = grads.into_iter();
        let d: Vec<Tensor> = args
            .iter()
            .map(|a| {
                if a.dtype().is_float() {
                    it.next().unwrap_or_else(|| a.zeros_like())
                } else {
                    a.zeros_like()
                }
            })
            .collect();
        let mut new_c: Vec<Tensor> = d[..nc].to_vec();
        for (k, acc) in c[nc..].iter().enumerate() {
            // Integer and pred captures (masks, ids) have no cotangent to accumulate.
            new_c.push(if acc.dtype().is_float() {
                acc + &d[nc + nx + k]
            } else {
                acc.clone()
            });
        }
        (new_c, d[nc..nc + nx].to_vec())
    });
    let mut r: Vec<Option<Tensor>> = fin[..nc].iter().cloned().map(Some).collect();
    r.extend(stacked.into_iter().map(Some));
    r.extend(fin[nc..].iter().cloned().map(Some));
    r
}
