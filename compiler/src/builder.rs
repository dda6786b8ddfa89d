//! `FunctionBuilder`: the function under construction that tensors record into.
//!
//! Every [`Tensor`] holds a shared handle to its builder so that operators
//! (`&a + &b`) can record ops. Ops never panic: the first error is stored with
//! the op name and the caller's location, later ops become cheap no-ops, and
//! [`FunctionBuilder::build`] returns that error.

use crate::dtype::DType;
use crate::error::TraceError;
use crate::function::Function;
use crate::ir::{Graph, OpKind, ValueId};
use crate::passes;
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::Location;
use std::rc::Rc;

/// Shared state of a function under construction.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) graph: Graph,
    pub(crate) param_names: Vec<String>,
    pub(crate) error: Option<TraceError>,
    pub(crate) parent: Option<Rc<RefCell<Inner>>>,
    pub(crate) depth: usize,
    /// Outer value ids captured as trailing parameters (loop bodies only).
    pub(crate) captures: Vec<ValueId>,
    /// True once a loop body has been turned into its op: its values may not
    /// be used any more.
    pub(crate) closed: bool,
    capture_map: HashMap<ValueId, ValueId>,
}

/// A function under construction. Cheap to clone (shared handle).
#[derive(Clone, Debug)]
pub struct FunctionBuilder {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

/// The outcome of a shape rule: the op kind with its result types, or the
/// error message (naming the operand types) for the caller.
pub(crate) type Rule = Result<(OpKind, Vec<TensorType>), String>;

impl FunctionBuilder {
    /// Starts a new function called `name`.
    pub fn new(name: &str) -> Self {
        Self::with_parent(name, None)
    }

    /// Starts a loop-body builder whose ops may use values of `parent`.
    pub(crate) fn child(parent: &FunctionBuilder, name: &str) -> Self {
        Self::with_parent(name, Some(parent.inner.clone()))
    }

    fn with_parent(name: &str, parent: Option<Rc<RefCell<Inner>>>) -> Self {
        let depth = parent.as_ref().map_or(0, |p| p.borrow().depth + 1);
        FunctionBuilder {
            inner: Rc::new(RefCell::new(Inner {
                name: name.to_string(),
                graph: Graph::default(),
                param_names: Vec::new(),
                error: None,
                parent,
                depth,
                captures: Vec::new(),
                closed: false,
                capture_map: HashMap::new(),
            })),
        }
    }

    /// Declares a named parameter.
    #[track_caller]
    pub fn param(&self, name: &str, dtype: DType, dims: &[usize]) -> Tensor {
        let ty = TensorType::new(dtype, dims);
        let loc = Location::caller();
        let mut inner = self.inner.borrow_mut();
        if inner.param_names.iter().any(|n| n == name) && inner.error.is_none() {
            inner.error = Some(TraceError::new(
                "param",
                loc,
                format!("parameter `{name}` declared twice"),
            ));
        }
        let id = inner.graph.add_param(ty.clone());
        inner.param_names.push(name.to_string());
        drop(inner);
        Tensor::new(self.clone(), id, ty)
    }

    /// The first error recorded so far, if any.
    pub fn error(&self) -> Option<TraceError> {
        self.inner.borrow().error.clone()
    }

    /// The function name.
    pub fn name(&self) -> String {
        self.inner.borrow().name.clone()
    }

    /// Finishes the function with named results, runs the cleanup passes
    /// (constant folding, CSE, DCE) and returns it, or the first trace error
    /// (also when two results share a name).
    #[track_caller]
    pub fn build(&self, results: &[(&str, &Tensor)]) -> Result<Function, TraceError> {
        let loc = Location::caller();
        for (i, (name, t)) in results.iter().enumerate() {
            if results[..i].iter().any(|(n, _)| n == name) {
                self.fail("build", loc, format!("result name `{name}` is used twice"));
            }
            if !self.same(&t.b) {
                self.fail(
                    "build",
                    loc,
                    format!("result `{name}` belongs to another function"),
                );
            }
        }
        if let Some(e) = self.error() {
            return Err(e);
        }
        let mut inner = self.inner.borrow_mut();
        inner.graph.results = results.iter().map(|(_, t)| t.id).collect();
        let graph = passes::run_all(&inner.graph);
        Ok(Function::new(
            &inner.name,
            graph,
            inner.param_names.clone(),
            results.iter().map(|(n, _)| n.to_string()).collect(),
        ))
    }

    /// The IR recorded so far (for debugging and tests).
    pub fn graph(&self) -> Graph {
        self.inner.borrow().graph.clone()
    }

    pub(crate) fn same(&self, other: &FunctionBuilder) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn failed(&self) -> bool {
        self.inner.borrow().error.is_some()
    }

    /// Records `message` as the error unless one is recorded already.
    pub(crate) fn fail(&self, op: &str, loc: &Location<'_>, message: String) {
        let mut inner = self.inner.borrow_mut();
        if inner.error.is_none() {
            inner.error = Some(TraceError::new(op, loc, message));
        }
    }

    /// Records an error that happened in a nested builder.
    pub(crate) fn fail_with(&self, err: TraceError) {
        let mut inner = self.inner.borrow_mut();
        if inner.error.is_none() {
            inner.error = Some(err);
        }
    }

    /// The id of `t` inside this builder, capturing it from an enclosing
    /// builder when needed.
    fn import(&self, t: &Tensor) -> Result<ValueId, String> {
        if self.same(&t.b) {
            return Ok(t.id);
        }
        let parent = self.inner.borrow().parent.clone().ok_or_else(|| {
            format!(
                "operand {} belongs to function `{}`, not to `{}` or a function enclosing it",
                t.ty,
                t.b.name(),
                self.name()
            )
        })?;
        let parent = FunctionBuilder { inner: parent };
        let outer = parent.import(t)?;
        let mut inner = self.inner.borrow_mut();
        if let Some(&id) = inner.capture_map.get(&outer) {
            return Ok(id);
        }
        let id = inner.graph.add_param(t.ty.clone());
        inner.captures.push(outer);
        inner.capture_map.insert(outer, id);
        Ok(id)
    }

    /// [`FunctionBuilder::import`] for the control-flow tracer.
    pub(crate) fn import_pub(&self, t: &Tensor) -> Result<ValueId, String> {
        self.import(t)
    }

    /// A handle inside this (loop-body) builder to a tensor of an enclosing builder.
    pub(crate) fn capture(&self, t: &Tensor) -> Tensor {
        match self.import(t) {
            Ok(id) => Tensor::new(self.clone(), id, t.ty.clone()),
            Err(_) => t.clone(),
        }
    }

    /// Records one op built from `operands` in the innermost builder among
    /// them (or `self` when there are none). `rule` checks the operand types
    /// and returns the op kind and result types. On error, or when the
    /// builder failed before, returns placeholders of `fallback` types.
    pub(crate) fn record(
        &self,
        op: &str,
        loc: &Location<'_>,
        operands: &[&Tensor],
        rule: impl FnOnce(&[&TensorType]) -> Rule,
    ) -> Vec<Tensor> {
        let target = operands
            .iter()
            .map(|t| &t.b)
            .max_by_key(|b| b.inner.borrow().depth)
            .unwrap_or(self)
            .clone();
        let tys: Vec<&TensorType> = operands.iter().map(|t| &t.ty).collect();
        if target.inner.borrow().closed {
            let open = target.open_ancestor();
            open.fail(
                op,
                loc,
                format!(
                    "operand of `{}` was traced inside a scan or while body and cannot be used outside it",
                    target.name()
                ),
            );
            return open.placeholders(rule(&tys), operands);
        }
        if target.failed() || operands.iter().any(|t| t.is_placeholder()) {
            return target.placeholders(rule(&tys), operands);
        }
        let mut ids = Vec::with_capacity(operands.len());
        for t in operands {
            match target.import(t) {
                Ok(id) => ids.push(id),
                Err(msg) => {
                    target.fail(op, loc, msg);
                    return target.placeholders(rule(&tys), operands);
                }
            }
        }
        match rule(&tys) {
            Ok((kind, result_tys)) => {
                let results = target
                    .inner
                    .borrow_mut()
                    .graph
                    .add_op(kind, ids, result_tys.clone());
                results
                    .into_iter()
                    .zip(result_tys)
                    .map(|(id, ty)| Tensor::new(target.clone(), id, ty))
                    .collect()
            }
            Err(msg) => {
                target.fail(op, loc, msg);
                target.placeholders(Err(String::new()), operands)
            }
        }
    }

    /// Like [`FunctionBuilder::record`] for single-result ops.
    pub(crate) fn record1(
        &self,
        op: &str,
        loc: &Location<'_>,
        operands: &[&Tensor],
        rule: impl FnOnce(&[&TensorType]) -> Rule,
    ) -> Tensor {
        self.record(op, loc, operands, rule).remove(0)
    }

    /// The nearest enclosing builder that is still being traced.
    fn open_ancestor(&self) -> FunctionBuilder {
        let mut b = self.clone();
        loop {
            let parent = {
                let inner = b.inner.borrow();
                if !inner.closed {
                    return b.clone();
                }
                inner.parent.clone()
            };
            match parent {
                Some(p) => b = FunctionBuilder { inner: p },
                None => return b,
            }
        }
    }

    /// Stand-ins for the results of an op that is not recorded: of the
    /// rule's result types when it succeeded, else of the first operand's
    /// type (several, so that callers taking a fixed number of results of a
    /// multi-result op keep going until `build` reports the error).
    fn placeholders(&self, rule: Rule, operands: &[&Tensor]) -> Vec<Tensor> {
        let tys = match rule {
            Ok((_, tys)) => tys,
            Err(_) => vec![
                operands
                    .first()
                    .map_or(TensorType::new(DType::F32, &[]), |t| t.ty.clone());
                8
            ],
        };
        tys.into_iter()
            .map(|ty| Tensor::placeholder(self.clone(), ty))
            .collect()
    }
}
