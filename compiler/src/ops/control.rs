//! Control flow: `scan` (a loop over stacked inputs, differentiable) and
//! `while_loop` (general, not differentiable). Each body is traced once into
//! a sub-graph, so compile time does not grow with the trip count. Outer
//! values used in a body are captured as extra operands automatically.

use crate::builder::FunctionBuilder;
use crate::dtype::DType;
use crate::emit::{Emitter, emit_graph};
use crate::ir::{CmpDir, Graph, OpKind, Region, ScanBody};
use crate::ops::constant::scalar_bytes;
use crate::ops::elementwise::compare_attrs;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

/// Traces `f` into a fresh child builder with parameters of `tys`; returns
/// the finished graph (results set) and the captured outer tensors, or
/// `None` after recording an error in `parent`.
pub(crate) fn trace_region(
    parent: &FunctionBuilder,
    name: &str,
    tys: &[TensorType],
    loc: &Location<'_>,
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
) -> Option<(Graph, Vec<Tensor>)> {
    let child = FunctionBuilder::child(parent, name);
    let params: Vec<Tensor> = tys
        .iter()
        .enumerate()
        .map(|(i, ty)| child.param(&format!("{name}{i}"), ty.dtype, &ty.dims))
        .collect();
    let results = f(&params);
    let mut ids = Vec::with_capacity(results.len());
    for r in &results {
        match child.import_pub(r) {
            Ok(id) => ids.push(id),
            Err(m) => child.fail(name, loc, m),
        }
    }
    if let Some(e) = child.error() {
        parent.fail_with(e);
        return None;
    }
    child.inner.borrow_mut().closed = true;
    let inner = child.inner.borrow();
    let mut graph = inner.graph.clone();
    graph.results = ids;
    let parent_graph = parent.inner.borrow();
    let captures = inner
        .captures
        .iter()
        .map(|&id| Tensor::new(parent.clone(), id, parent_graph.graph.ty(id).clone()))
        .collect();
    Some((graph, captures))
}

impl FunctionBuilder {
    /// `scan`: for `t` in `0..length`, `(carry, y_t) = body(carry, xs[t])`.
    /// Returns the final carries and the per-step outputs stacked along a new
    /// leading dim of size `length`. Each `xs` tensor has leading dim `length`.
    /// A scan of length 0 returns the carries unchanged (identity gradient)
    /// and empty `[0, ...]` stacked outputs, as `jax.lax.scan` does.
    #[track_caller]
    pub fn scan(
        &self,
        length: usize,
        carry: &[&Tensor],
        xs: &[&Tensor],
        body: impl FnOnce(&[Tensor], &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>),
    ) -> (Vec<Tensor>, Vec<Tensor>) {
        self.scan_impl(length, carry, xs, false, body)
    }

    /// [`FunctionBuilder::scan`], optionally iterating from the last step.
    #[track_caller]
    pub(crate) fn scan_impl(
        &self,
        length: usize,
        carry: &[&Tensor],
        xs: &[&Tensor],
        reverse: bool,
        body: impl FnOnce(&[Tensor], &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>),
    ) -> (Vec<Tensor>, Vec<Tensor>) {
        let loc = Location::caller();
        let fallback = || (carry.iter().map(|c| (*c).clone()).collect(), Vec::new());
        for x in xs {
            if x.dims().first() != Some(&length) {
                self.fail(
                    "scan",
                    loc,
                    format!("stacked input {} must have leading dim {length}", x.ty),
                );
            }
        }
        if self.failed() {
            return fallback();
        }
        let nc = carry.len();
        let mut tys: Vec<TensorType> = carry.iter().map(|c| c.ty.clone()).collect();
        tys.extend(
            xs.iter()
                .map(|x| TensorType::new(x.dtype(), &x.dims()[1..])),
        );
        let mut ny = 0;
        let traced = trace_region(self, "scan_body", &tys, loc, |p| {
            let (c, y) = body(&p[..nc], &p[nc..]);
            ny = y.len();
            c.into_iter().chain(y).collect()
        });
        let Some((graph, captures)) = traced else {
            return fallback();
        };
        if graph.results.len() != nc + ny {
            self.fail(
                "scan",
                loc,
                format!(
                    "body must return {nc} carries, got {}",
                    graph.results.len() - ny
                ),
            );
            return fallback();
        }
        for (i, c) in carry.iter().enumerate() {
            let out = graph.ty(graph.results[i]);
            if *out != c.ty {
                self.fail(
                    "scan",
                    loc,
                    format!("body returns carry {i} as {out}, but it enters as {}", c.ty),
                );
                return fallback();
            }
        }
        let mut out_tys: Vec<TensorType> = carry.iter().map(|c| c.ty.clone()).collect();
        for &y in &graph.results[nc..] {
            let yt = graph.ty(y);
            let mut dims = vec![length];
            dims.extend_from_slice(&yt.dims);
            out_tys.push(TensorType::new(yt.dtype, &dims));
        }
        if length == 0 {
            // No step runs: the carries pass through unchanged (so their
            // gradient is the identity) and the stacked outputs are empty.
            // XLA refuses the loop itself (its per-step slice of a
            // zero-length input does not fit), so none is emitted.
            let ys = out_tys[nc..]
                .iter()
                .map(|t| self.zeros(t.dtype, &t.dims))
                .collect();
            return (carry.iter().map(|c| (*c).clone()).collect(), ys);
        }
        let mut operands: Vec<&Tensor> = carry.to_vec();
        operands.extend_from_slice(xs);
        operands.extend(captures.iter());
        let kind = OpKind::Scan {
            body: ScanBody {
                graph: Region::new(graph),
                num_carry: nc,
                num_xs: xs.len(),
            },
            length,
            reverse,
            save_carries: false,
        };
        let mut r = self.record("scan", loc, &operands, |_| Ok((kind, out_tys)));
        r.truncate(nc + ny);
        let ys = r.split_off(nc);
        (r, ys)
    }

    /// `while cond(state) { state = body(state) }`; returns the final state.
    /// Not differentiable (use [`FunctionBuilder::scan`] for that).
    #[track_caller]
    pub fn while_loop(
        &self,
        init: &[&Tensor],
        cond: impl FnOnce(&[Tensor]) -> Tensor,
        body: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
    ) -> Vec<Tensor> {
        let loc = Location::caller();
        let fallback = || init.iter().map(|c| (*c).clone()).collect();
        let tys: Vec<TensorType> = init.iter().map(|c| c.ty.clone()).collect();
        let Some((cg, ccap)) = trace_region(self, "while_cond", &tys, loc, |p| vec![cond(p)])
        else {
            return fallback();
        };
        let Some((bg, bcap)) = trace_region(self, "while_body", &tys, loc, body) else {
            return fallback();
        };
        let pred = cg.ty(cg.results[0]);
        if *pred != TensorType::new(DType::Pred, &[]) {
            self.fail(
                "while",
                loc,
                format!("condition must return pred[], got {pred}"),
            );
            return fallback();
        }
        let outs: Vec<&TensorType> = bg.results.iter().map(|&r| bg.ty(r)).collect();
        if outs.len() != tys.len() || outs.iter().zip(&tys).any(|(a, b)| *a != b) {
            let o: Vec<String> = outs.iter().map(|t| t.to_string()).collect();
            let i: Vec<String> = tys.iter().map(|t| t.to_string()).collect();
            self.fail(
                "while",
                loc,
                format!(
                    "body returns ({}) but the state is ({})",
                    o.join(", "),
                    i.join(", ")
                ),
            );
            return fallback();
        }
        let mut operands: Vec<&Tensor> = init.to_vec();
        operands.extend(ccap.iter());
        operands.extend(bcap.iter());
        let kind = OpKind::While {
            cond: Region::new(cg),
            body: Region::new(bg),
            num_state: init.len(),
        };
        let mut r = self.record("while", loc, &operands, |_| Ok((kind, tys.clone())));
        r.truncate(init.len());
        r
    }
}

// ---- lowering ----------------------------------------------------------

/// Lowers a scan to `stablehlo.while` over (step, carries, xs, captures,
/// ys buffers, saved-carry buffers).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_scan(
    e: &mut Emitter,
    ind: usize,
    body: &ScanBody,
    length: usize,
    reverse: bool,
    save_carries: bool,
    args: &[String],
    arg_tys: &[&TensorType],
    res_tys: &[&TensorType],
) -> Vec<String> {
    let (nc, nx) = (body.num_carry, body.num_xs);
    let ncap = args.len() - nc - nx;
    let g = &body.graph;
    let ny = g.results.len() - nc;
    let i64s = TensorType::new(DType::I64, &[]);
    let mut state: Vec<String> = vec![e.constant(ind, &scalar_bytes(0.0, DType::I64), true, &i64s)];
    let mut state_tys: Vec<TensorType> = vec![i64s.clone()];
    state.extend_from_slice(args);
    state_tys.extend(arg_tys.iter().map(|t| (*t).clone()));
    let bufs: Vec<TensorType> = res_tys[nc..].iter().map(|t| (*t).clone()).collect();
    for b in &bufs {
        state.push(e.constant(ind, &scalar_bytes(0.0, b.dtype), true, b));
        state_tys.push(b.clone());
    }
    let tys_str: Vec<String> = state_tys.iter().map(|t| t.mlir()).collect();
    let w = e.fresh();
    e.line(
        ind,
        &format!(
            "{w}:{} = \"stablehlo.while\"({}) ({{",
            state.len(),
            state.join(", ")
        ),
    );
    let i2 = ind + 2;
    // condition: step < length
    let a = e.block_args(ind, &state_tys);
    let lim = e.constant(i2, &scalar_bytes(length as f64, DType::I64), true, &i64s);
    let p = TensorType::new(DType::Pred, &[]);
    let c = e.op(
        i2,
        "stablehlo.compare",
        &[&a[0], &lim],
        &compare_attrs(CmpDir::Lt, &i64s),
        &[&i64s, &i64s],
        &p,
    );
    e.ret(i2, &[(&c, &p)]);
    e.line(ind, "}, {");
    // body
    let a = e.block_args(ind, &state_tys);
    let step = &a[0];
    let t = if reverse {
        let last = e.constant(
            i2,
            &scalar_bytes(length as f64 - 1.0, DType::I64),
            true,
            &i64s,
        );
        e.op(
            i2,
            "stablehlo.subtract",
            &[&last, step],
            "",
            &[&i64s, &i64s],
            &i64s,
        )
    } else {
        step.clone()
    };
    let zero = e.constant(i2, &scalar_bytes(0.0, DType::I64), true, &i64s);
    let mut body_args: Vec<String> = a[1..1 + nc].to_vec();
    for k in 0..nx {
        let xt = arg_tys[nc + k];
        let mut sizes = xt.dims.clone();
        sizes[0] = 1;
        let one = TensorType::new(xt.dtype, &sizes);
        let mut idx = vec![t.as_str()];
        idx.extend(std::iter::repeat_n(zero.as_str(), xt.rank() - 1));
        let mut idx_tys = vec![xt];
        idx_tys.extend(std::iter::repeat_n(&i64s, xt.rank()));
        let s = e.op(
            i2,
            "stablehlo.dynamic_slice",
            &[&[a[1 + nc + k].as_str()], idx.as_slice()].concat(),
            &format!("slice_sizes = {}", crate::emit::i64_array(&sizes)),
            &idx_tys,
            &one,
        );
        let slice_ty = TensorType::new(xt.dtype, &xt.dims[1..]);
        body_args.push(e.op(i2, "stablehlo.reshape", &[&s], "", &[&one], &slice_ty));
    }
    body_args.extend_from_slice(&a[1 + nc + nx..1 + nc + nx + ncap]);
    let outs = emit_graph(e, g, i2, &body_args);
    let mut new_state = Vec::with_capacity(state.len());
    let one_i = e.constant(i2, &scalar_bytes(1.0, DType::I64), true, &i64s);
    new_state.push(e.op(
        i2,
        "stablehlo.add",
        &[step, &one_i],
        "",
        &[&i64s, &i64s],
        &i64s,
    ));
    new_state.extend_from_slice(&outs[..nc]);
    new_state.extend_from_slice(&a[1 + nc..1 + nc + nx + ncap]);
    let buf_base = 1 + nc + nx + ncap;
    let mut stacked: Vec<(String, TensorType)> = (0..ny)
        .map(|k| (outs[nc + k].clone(), g.ty(g.results[nc + k]).clone()))
        .collect();
    if save_carries {
        stacked.extend((0..nc).map(|k| (a[1 + k].clone(), arg_tys[k].clone())));
    }
    for (k, (v, vt)) in stacked.iter().enumerate() {
        let buf_ty = &bufs[k];
        let mut d1 = vec![1];
        d1.extend_from_slice(&vt.dims);
        let one = TensorType::new(vt.dtype, &d1);
        let r = e.op(i2, "stablehlo.reshape", &[v], "", &[vt], &one);
        let mut ops = vec![a[buf_base + k].as_str(), r.as_str(), t.as_str()];
        ops.extend(std::iter::repeat_n(zero.as_str(), vt.rank()));
        let mut op_tys = vec![buf_ty, &one];
        op_tys.extend(std::iter::repeat_n(&i64s, vt.rank() + 1));
        new_state.push(e.op(
            i2,
            "stablehlo.dynamic_update_slice",
            &ops,
            "",
            &op_tys,
            buf_ty,
        ));
    }
    let rets: Vec<(&str, &TensorType)> = new_state
        .iter()
        .map(|s| s.as_str())
        .zip(state_tys.iter())
        .collect();
    e.ret(i2, &rets);
    e.line(
        ind,
        &format!("}}) : ({}) -> ({})", tys_str.join(", "), tys_str.join(", ")),
    );
    let mut results: Vec<String> = (1..1 + nc).map(|k| format!("{w}#{k}")).collect();
    results.extend((0..bufs.len()).map(|k| format!("{w}#{}", buf_base + k)));
    results
}

/// Lowers a while loop; captures ride along in the loop state.
pub(crate) fn lower_while(
    e: &mut Emitter,
    ind: usize,
    cond: &Graph,
    body: &Graph,
    num_state: usize,
    args: &[String],
    arg_tys: &[&TensorType],
) -> Vec<String> {
    let ncc = cond.params.len() - num_state;
    let tys: Vec<TensorType> = arg_tys.iter().map(|t| (*t).clone()).collect();
    let tys_str: Vec<String> = tys.iter().map(|t| t.mlir()).collect();
    let w = e.fresh();
    e.line(
        ind,
        &format!(
            "{w}:{} = \"stablehlo.while\"({}) ({{",
            args.len(),
            args.join(", ")
        ),
    );
    let i2 = ind + 2;
    let a = e.block_args(ind, &tys);
    let cargs: Vec<String> = a[..num_state + ncc].to_vec();
    let c = emit_graph(e, cond, i2, &cargs);
    e.ret(i2, &[(&c[0], &TensorType::new(DType::Pred, &[]))]);
    e.line(ind, "}, {");
    let a = e.block_args(ind, &tys);
    let mut bargs: Vec<String> = a[..num_state].to_vec();
    bargs.extend_from_slice(&a[num_state + ncc..]);
    let mut out = emit_graph(e, body, i2, &bargs);
    out.extend_from_slice(&a[num_state..]);
    let rets: Vec<(&str, &TensorType)> = out.iter().map(|s| s.as_str()).zip(tys.iter()).collect();
    e.ret(i2, &rets);
    e.line(
        ind,
        &format!("}}) : ({}) -> ({})", tys_str.join(", "), tys_str.join(", ")),
    );
    (0..num_state).map(|k| format!("{w}#{k}")).collect()
}
