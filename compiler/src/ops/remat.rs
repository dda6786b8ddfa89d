//! Rematerialization (JAX's `jax.checkpoint` / `remat`): a traced region
//! whose intermediate values the backward pass recomputes from the region's
//! inputs instead of keeping them alive from the forward pass, except those
//! a [`RematPolicy`] saves.
//!
//! The forward pass is the region's ops, inlined when lowered; the op also
//! returns the values the policy saves (its extra results, unused outside
//! autodiff). The VJP replays the region in the backward pass behind a
//! `stablehlo.optimization_barrier` over the region's inputs, the saved
//! values and the incoming cotangents, as JAX's `remat` lowering does
//! (`prevent_cse=True`): XLA cannot merge the replay with the forward ops
//! (CSE) nor hoist it before the cotangents exist, so the forward
//! intermediates die after the forward pass. Saved values are taken from
//! the forward pass instead of being recomputed; the backward pass then
//! runs each op's VJP over the replayed and saved values.
//!
//! Under [`RematPolicy::Offload`] the saved values wait in host memory, as
//! JAX's `save_and_offload_only_these_names` does (`Offloadable(src="device",
//! dst="pinned_host")` in `jax/_src/ad_checkpoint.py`): each is placed in
//! `pinned_host` memory and brought back to `device` memory before the
//! barrier ([`Tensor::to_memory_kind`]), the two `device_put`s JAX's
//! partial evaluation inserts. XLA's host offloader keeps the value in host
//! memory between them where the target has it (TPU: `S(5)` buffers and
//! asynchronous copies in the optimized HLO); elsewhere (the default CPU
//! plugin) the annotations compile to nothing and the numbers are those of
//! `Names`.

use crate::autodiff::{accumulate, is_differentiable, vjp_rule};
use crate::builder::FunctionBuilder;
use crate::emit::{Emitter, emit_graph};
use crate::ir::{Graph, MemoryKind, OpId, OpKind, Region, ValueId};
use crate::ops::annotate::optimization_barrier;
use crate::ops::control::trace_region;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::panic::Location;

/// Which values of a rematerialized region the forward pass keeps for the
/// backward pass; everything else is recomputed. The names are JAX's
/// `jax.checkpoint_policies`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RematPolicy {
    /// Save nothing: recompute the whole region
    /// (`nothing_saveable`, JAX's default for `jax.checkpoint`).
    Full,
    /// Save the outputs of `dot_general` ops (`dots_saveable`): the
    /// matmuls are not recomputed, the elementwise ops between them are.
    Dots,
    /// Save only the values tagged with one of these names by
    /// [`Tensor::checkpoint_name`] (`save_only_these_names`).
    Names(Vec<String>),
    /// Save the values tagged with these names in host memory
    /// (`save_and_offload_only_these_names`): moved to `pinned_host` after
    /// the forward pass, back to the device for the backward pass. On a
    /// target without host memory (CPU) this saves them on the device,
    /// like [`RematPolicy::Names`].
    Offload(Vec<String>),
}

impl RematPolicy {
    /// True when the policy keeps the results of an op of `kind`.
    fn saves(&self, kind: &OpKind) -> bool {
        match (self, kind) {
            (RematPolicy::Dots, OpKind::DotGeneral { .. }) => true,
            (
                RematPolicy::Names(names) | RematPolicy::Offload(names),
                OpKind::CheckpointName { name },
            ) => names.contains(name),
            _ => false,
        }
    }
}

impl Tensor {
    /// The same value, tagged `name` for [`RematPolicy::Names`] and
    /// [`RematPolicy::Offload`] (JAX's `checkpoint_name`). Emits nothing.
    #[track_caller]
    pub fn checkpoint_name(&self, name: &str) -> Tensor {
        let name = name.to_string();
        self.b
            .record1("checkpoint_name", Location::caller(), &[self], |t| {
                Ok((OpKind::CheckpointName { name }, vec![t[0].clone()]))
            })
    }
}

/// Traces `f(inputs)` as a rematerialized region under `policy` and returns
/// its outputs. Values equal those of `f` called directly; gradients too
/// (to rounding), but the backward pass recomputes what the policy does not
/// save. Outer values used inside `f` become inputs of the region.
/// Works inside [`FunctionBuilder::scan`] bodies and nests.
///
/// # Panics
/// If `inputs` is empty: there is no function to record into.
#[track_caller]
pub fn remat(
    policy: &RematPolicy,
    inputs: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
) -> Vec<Tensor> {
    let loc = Location::caller();
    let b = inputs
        .iter()
        .map(|t| &t.b)
        .max_by_key(|b| b.inner.borrow().depth)
        .expect("remat needs at least one input")
        .clone();
    let tys: Vec<TensorType> = inputs.iter().map(|t| t.ty.clone()).collect();
    let Some((mut graph, captures)) = trace_region(&b, "remat_body", &tys, loc, f) else {
        return inputs.iter().map(|t| (*t).clone()).collect();
    };
    let num_outputs = graph.results.len();
    let saved: Vec<ValueId> = graph
        .ops
        .iter()
        .filter(|op| policy.saves(&op.kind))
        .flat_map(|op| op.results.iter().copied())
        .collect();
    graph.results.extend(saved);
    let out_tys: Vec<TensorType> = graph.results.iter().map(|r| graph.ty(*r).clone()).collect();
    let mut operands: Vec<&Tensor> = inputs.to_vec();
    operands.extend(captures.iter());
    let kind = OpKind::Remat {
        body: Region::new(graph),
        num_outputs,
        offload: matches!(policy, RematPolicy::Offload(_)),
    };
    let mut r = b.record("remat", loc, &operands, |_| Ok((kind, out_tys)));
    r.truncate(num_outputs);
    r
}

/// Lowers a remat region: its ops, inlined.
pub(crate) fn lower_remat(
    e: &mut Emitter,
    ind: usize,
    body: &Graph,
    args: &[String],
) -> Vec<String> {
    emit_graph(e, body, ind, args)
}

/// VJP of a remat region: replays the region behind an optimization
/// barrier (saved values come from the forward results `y[num_outputs..]`,
/// through host memory when `offload`), then backpropagates through the
/// replayed ops.
pub(crate) fn vjp_remat(
    b: &FunctionBuilder,
    body: &Graph,
    num_outputs: usize,
    offload: bool,
    x: &[Tensor],
    y: &[Tensor],
    g: &[Tensor],
) -> Result<Vec<Option<Tensor>>, String> {
    let saved_ids = &body.results[num_outputs..];
    let saved: Vec<Tensor> = if offload {
        y[num_outputs..]
            .iter()
            .map(|s| {
                s.to_memory_kind(MemoryKind::PinnedHost)
                    .to_memory_kind(MemoryKind::Device)
            })
            .collect()
    } else {
        y[num_outputs..].to_vec()
    };
    let mut fenced: Vec<&Tensor> = x.iter().collect();
    fenced.extend(&saved);
    fenced.extend(&g[..num_outputs]);
    let fenced = optimization_barrier(&fenced);
    let (nx, ns) = (x.len(), saved_ids.len());
    let mut map: Vec<Option<Tensor>> = vec![None; body.values.len()];
    for (p, t) in body.params.iter().zip(&fenced[..nx]) {
        map[p.index()] = Some(t.clone());
    }
    for (v, t) in saved_ids.iter().zip(&fenced[nx..nx + ns]) {
        map[v.index()] = Some(t.clone());
    }
    // A saved tag holds the value of its operand: the op computing that
    // operand need not be replayed either.
    for op in &body.ops {
        if let OpKind::CheckpointName { .. } = op.kind
            && saved_ids.contains(&op.results[0])
            && map[op.operands[0].index()].is_none()
        {
            map[op.operands[0].index()] = map[op.results[0].index()].clone();
        }
    }
    // Replay every op whose results are not saved; remember the replayed
    // op's id (a nested scan's VJP extends that op).
    let loc = Location::caller();
    let mut op_ids: Vec<OpId> = Vec::with_capacity(body.ops.len());
    for op in &body.ops {
        if op.results.iter().all(|r| map[r.index()].is_some()) {
            op_ids.push(OpId(u32::MAX));
            continue;
        }
        let ins: Vec<Tensor> = op
            .operands
            .iter()
            .map(|v| map[v.index()].clone().expect("operands precede their uses"))
            .collect();
        let refs: Vec<&Tensor> = ins.iter().collect();
        let tys: Vec<TensorType> = op.results.iter().map(|r| body.ty(*r).clone()).collect();
        let outs = b.record(&op.kind.name(), loc, &refs, |_| Ok((op.kind.clone(), tys)));
        op_ids.push(OpId(b.inner.borrow().graph.ops.len() as u32 - 1));
        for (r, t) in op.results.iter().zip(outs) {
            map[r.index()].get_or_insert(t);
        }
    }
    if b.failed() {
        return Ok(vec![None; x.len()]);
    }
    let value = |v: &ValueId| map[v.index()].clone().expect("replayed");
    let mut needs = vec![false; body.values.len()];
    for p in &body.params {
        needs[p.index()] = body.ty(*p).dtype.is_float();
    }
    for op in &body.ops {
        if is_differentiable(&op.kind) && op.operands.iter().any(|v| needs[v.index()]) {
            for r in &op.results {
                needs[r.index()] = body.ty(*r).dtype.is_float();
            }
        }
    }
    let mut cts: HashMap<ValueId, Tensor> = HashMap::new();
    for (r, c) in body.results[..num_outputs].iter().zip(&fenced[nx + ns..]) {
        if needs[r.index()] {
            accumulate(&mut cts, *r, c.clone());
        }
    }
    for (op, id) in body.ops.iter().zip(&op_ids).rev() {
        let useful = op.results.iter().any(|r| cts.contains_key(r))
            && op.operands.iter().any(|v| needs[v.index()]);
        if !useful {
            continue;
        }
        let ins: Vec<Tensor> = op.operands.iter().map(value).collect();
        let outs: Vec<Tensor> = op.results.iter().map(value).collect();
        let gs: Vec<Tensor> = op
            .results
            .iter()
            .zip(&outs)
            .map(|(r, o)| cts.get(r).cloned().unwrap_or_else(|| o.zeros_like()))
            .collect();
        let in_cts = vjp_rule(b, *id, &op.kind, &ins, &outs, &gs)?;
        for (v, ct) in op.operands.iter().zip(in_cts) {
            if let Some(ct) = ct
                && needs[v.index()]
            {
                accumulate(&mut cts, *v, ct);
            }
        }
    }
    Ok(body.params.iter().map(|p| cts.remove(p)).collect())
}
