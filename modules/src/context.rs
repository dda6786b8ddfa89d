//! The forward context: what a module's forward reads besides its inputs (the parameter tree,
//! training mode, the RNG key) and where it writes side outputs (summaries), all by path.

use std::rc::Rc;

use axle_compiler::{Tensor, dropout};
use axle_partition::{LogicalRules, LogicalSpec, MESH_SYMBOL, Mesh};

use crate::error::{Error, Result};
use crate::param::ParamTree;

/// Context of one traced forward pass, AXLearn's invocation context: parameters are looked up
/// by the path of the module being run (`ctx.scope("q_proj", ...)` descends into a child), RNG
/// keys are threaded through it, and summaries are collected under the current path.
pub struct Ctx {
    params: Rc<ParamTree<Tensor>>,
    prefix: Vec<String>,
    is_training: bool,
    key: Option<Tensor>,
    summaries: ParamTree<Tensor>,
    mesh: Option<Rc<(Mesh, LogicalRules)>>,
}

impl Ctx {
    /// A context over `params` (traced tensors keyed by full parameter path), in training or
    /// evaluation mode, with an optional RNG key (needed only for dropout in training).
    pub fn new(params: ParamTree<Tensor>, is_training: bool, key: Option<Tensor>) -> Ctx {
        Ctx {
            params: Rc::new(params),
            prefix: Vec::new(),
            is_training,
            key,
            summaries: ParamTree::new(),
            mesh: None,
        }
    }

    /// This context tracing for `mesh`, with `rules` mapping logical roles to its axes:
    /// [`Ctx::constrain`] then emits sharding constraints (without a mesh it records nothing,
    /// as for a single device).
    pub fn with_mesh(mut self, mesh: Mesh, rules: LogicalRules) -> Ctx {
        self.mesh = Some(Rc::new((mesh, rules)));
        self
    }

    /// Whether the rules split activations `[batch, seq, ...]` along the sequence on this
    /// mesh (the `seq` role maps to a mesh axis of size > 1): layers then keep
    /// `[batch, seq, ...]` whole instead of flattening it, since Shardy cannot split a
    /// flattened `batch x seq` axis by `seq`.
    pub fn splits_sequence(&self) -> bool {
        self.mesh
            .as_ref()
            .is_some_and(|m| m.1.splits_sequence(&m.0))
    }

    /// `f` (a position-wise block: a feed-forward block, an output head) applied to `x`
    /// `[..., width]` with its leading axes flattened into one, `[n, width]`, and restored on
    /// the result `[n, out]` → `[..., out]`. Kept whole when the rules split the sequence
    /// ([`Ctx::splits_sequence`]) or `x` has rank 2 or less.
    ///
    /// Why: XLA compiles the matmuls of such blocks with less memory in this form. llama-tiny's
    /// step (`axle plan`, docs/benchmarks.md) needs 2.1 MiB less per chip on `tpu-v5e:2x2`
    /// fsdp=4, 0.1–0.4 MiB less on v5e data=2,model=2 and on `gpu-h100:4` fsdp=4 and data=4, and
    /// the same on v5e data=4, than with `[batch, seq, width]` kept in the feed-forward block and
    /// the head. Attention projections keep `[batch, seq, width]` ([`crate::Linear::forward`]).
    pub fn position_wise(
        &mut self,
        x: &Tensor,
        f: impl FnOnce(&mut Ctx, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if x.rank() <= 2 || self.splits_sequence() {
            return f(self, x);
        }
        let width = x.dims()[x.rank() - 1];
        let rows = x.dims()[..x.rank() - 1].iter().product();
        let y = f(self, &x.reshape(&[rows, width]))?;
        let mut dims = x.dims().to_vec();
        dims[x.rank() - 1] = y.dims()[y.rank() - 1];
        Ok(y.reshape(&dims))
    }

    /// `x` constrained to be split as its dimension roles `roles` resolve by the rules on the
    /// mesh (axes the mesh lacks are dropped), when tracing for a mesh; `x` itself otherwise.
    pub fn constrain(&self, x: &Tensor, roles: &LogicalSpec) -> Tensor {
        match self.mesh.as_deref() {
            Some((mesh, rules)) => {
                x.sharding_constraint(&rules.resolve(roles, mesh).sdy_constraint(MESH_SYMBOL))
            }
            None => x.clone(),
        }
    }

    /// Whether this is a training pass (dropout on).
    pub fn is_training(&self) -> bool {
        self.is_training
    }

    /// The full path of `name` under the current module (`decoder/transformer/layers/0/name`).
    pub fn path(&self, name: &str) -> String {
        self.prefix
            .iter()
            .map(String::as_str)
            .chain([name])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Runs `f` inside child `name` (parameter and summary paths gain `name/`).
    pub fn scope<R>(&mut self, name: &str, f: impl FnOnce(&mut Ctx) -> R) -> R {
        self.prefix.push(name.to_string());
        let out = f(self);
        self.prefix.pop();
        out
    }

    /// The parameter `name` of the current module, checked against its declared `shape`.
    pub fn param(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let path = self.path(name);
        let t = self.params.get(&path).ok_or_else(|| Error::MissingParam {
            path: path.clone(),
            expected: shape.to_vec(),
        })?;
        if t.dims() != shape {
            return Err(Error::ParamShape {
                path,
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// Records a side output under the current path (`.../name`). With
    /// gradient accumulation the step combines the micro-batches' values of
    /// a summary as their mean weighted by each micro-batch's loss weight,
    /// except a count, named `num_…` (`num_targets`), which is summed: both
    /// then equal the full batch's value for means and counts over targets.
    pub fn add_summary(&mut self, name: &str, value: Tensor) {
        self.summaries.insert(self.path(name), value);
    }

    /// Adds summaries already keyed by full path (those of a loop body, stacked by the loop).
    pub fn extend_summaries(&mut self, summaries: impl IntoIterator<Item = (String, Tensor)>) {
        self.summaries.extend(summaries);
    }

    /// The summaries recorded so far, keyed by path.
    pub fn summaries(&self) -> &ParamTree<Tensor> {
        &self.summaries
    }

    /// Takes the summaries recorded so far, leaving none.
    pub fn take_summaries(&mut self) -> ParamTree<Tensor> {
        std::mem::take(&mut self.summaries)
    }

    /// The current RNG key, if any (threaded through scanned loops as a carry).
    pub fn key(&self) -> Option<&Tensor> {
        self.key.as_ref()
    }

    /// Replaces the RNG key.
    pub fn set_key(&mut self, key: Option<Tensor>) {
        self.key = key;
    }

    /// Inverted dropout at `rate` in training (the identity in evaluation or at rate 0); advances
    /// the RNG key.
    pub fn dropout(&mut self, x: &Tensor, rate: f64) -> Result<Tensor> {
        if !self.is_training || rate == 0.0 {
            return Ok(x.clone());
        }
        let key = self.key.as_ref().ok_or_else(|| Error::MissingRng {
            path: self.path(""),
        })?;
        let (next, y) = dropout(x, key, rate);
        self.key = Some(next);
        Ok(y)
    }

    /// A context for tracing a rematerialized region ([`axle_compiler::remat`]): the same
    /// parameters (the region captures them), prefix and mesh, the region's own RNG `key`, and no
    /// summaries yet (the caller returns them from the region).
    pub fn for_region(&self, key: Option<Tensor>) -> Ctx {
        Ctx {
            params: self.params.clone(),
            prefix: self.prefix.clone(),
            is_training: self.is_training,
            key,
            summaries: ParamTree::new(),
            mesh: self.mesh.clone(),
        }
    }

    /// A context for the body of a scanned loop: the same mode and prefix, parameters `params`
    /// (the loop's per-iteration slices, keyed by full path) and RNG key `key`.
    pub fn for_loop_body(&self, params: ParamTree<Tensor>, key: Option<Tensor>) -> Ctx {
        Ctx {
            params: Rc::new(params),
            prefix: self.prefix.clone(),
            is_training: self.is_training,
            key,
            summaries: ParamTree::new(),
            mesh: self.mesh.clone(),
        }
    }
}
