//! `Function`: a finished, checked function with named parameters and
//! results, carrying sharding and donation attributes for emission.

use crate::emit::{ModuleSpec, emit_module};
use crate::error::FunctionError;
use crate::ir::Graph;
use crate::shape::TensorType;
use std::fmt;

/// A traced function, ready to lower to StableHLO.
///
/// Shardings are opaque Shardy strings made by the partition crate; the
/// compiler only places them.
#[derive(Clone, Debug)]
pub struct Function {
    name: String,
    graph: Graph,
    param_names: Vec<String>,
    result_names: Vec<String>,
    param_shardings: Vec<Option<String>>,
    result_shardings: Vec<Option<String>>,
    aliases: Vec<Option<usize>>,
    meshes: Vec<String>,
    num_partitions: usize,
    num_replicas: usize,
}

/// `#sdy.sharding<@mesh, [...]>` from either that form or `<@mesh, [...]>`.
fn sharding_attr(s: &str) -> String {
    if s.starts_with("#sdy.sharding") {
        s.to_string()
    } else {
        format!("#sdy.sharding{s}")
    }
}

impl Function {
    pub(crate) fn new(
        name: &str,
        graph: Graph,
        param_names: Vec<String>,
        result_names: Vec<String>,
    ) -> Self {
        let (np, nr) = (param_names.len(), result_names.len());
        Function {
            name: name.to_string(),
            graph,
            param_names,
            result_names,
            param_shardings: vec![None; np],
            result_shardings: vec![None; nr],
            aliases: vec![None; np],
            meshes: Vec::new(),
            num_partitions: 1,
            num_replicas: 1,
        }
    }

    /// The function name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The optimized IR.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Parameter names, in argument order.
    pub fn param_names(&self) -> &[String] {
        &self.param_names
    }

    /// Result names, in output order.
    pub fn result_names(&self) -> &[String] {
        &self.result_names
    }

    /// Parameter types, in argument order.
    pub fn param_types(&self) -> Vec<TensorType> {
        self.graph
            .params
            .iter()
            .map(|p| self.graph.ty(*p).clone())
            .collect()
    }

    /// Result types, in output order.
    pub fn result_types(&self) -> Vec<TensorType> {
        self.graph
            .results
            .iter()
            .map(|r| self.graph.ty(*r).clone())
            .collect()
    }

    /// Index of the parameter called `name`.
    pub fn param_index(&self, name: &str) -> Result<usize, FunctionError> {
        self.param_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| FunctionError::UnknownParam {
                function: self.name.clone(),
                name: name.to_string(),
                known: self.param_names.join(", "),
            })
    }

    /// Index of the result called `name`.
    pub fn result_index(&self, name: &str) -> Result<usize, FunctionError> {
        self.result_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| FunctionError::UnknownResult {
                function: self.name.clone(),
                name: name.to_string(),
                known: self.result_names.join(", "),
            })
    }

    /// Sets the Shardy sharding of a parameter (`<@mesh, [{"data"}, {}]>` or
    /// the full `#sdy.sharding<...>` attribute).
    pub fn set_param_sharding(&mut self, name: &str, sharding: &str) -> Result<(), FunctionError> {
        let i = self.param_index(name)?;
        self.param_shardings[i] = Some(sharding_attr(sharding));
        Ok(())
    }

    /// Sets the Shardy sharding of a result.
    pub fn set_result_sharding(&mut self, name: &str, sharding: &str) -> Result<(), FunctionError> {
        let i = self.result_index(name)?;
        self.result_shardings[i] = Some(sharding_attr(sharding));
        Ok(())
    }

    /// Donates the buffer of parameter `param` to result `result`
    /// (`tf.aliasing_output`); both must have the same type.
    pub fn donate(&mut self, param: &str, result: &str) -> Result<(), FunctionError> {
        let p = self.param_index(param)?;
        let r = self.result_index(result)?;
        let (pt, rt) = (
            self.graph.ty(self.graph.params[p]),
            self.graph.ty(self.graph.results[r]),
        );
        if pt != rt {
            return Err(FunctionError::AliasTypeMismatch {
                param: param.to_string(),
                param_ty: pt.to_string(),
                result: result.to_string(),
                result_ty: rt.to_string(),
            });
        }
        self.aliases[p] = Some(r);
        Ok(())
    }

    /// Adds a module-level line such as `sdy.mesh @mesh = <["data"=2]>`.
    pub fn add_mesh(&mut self, line: &str) {
        self.meshes.push(line.to_string());
    }

    /// Sets `mhlo.num_partitions` (SPMD partitions; 1 by default).
    pub fn set_num_partitions(&mut self, n: usize) {
        self.num_partitions = n;
    }

    /// Sets `mhlo.num_replicas` (1 by default).
    pub fn set_num_replicas(&mut self, n: usize) {
        self.num_replicas = n;
    }

    /// `mhlo.num_partitions`.
    pub fn num_partitions(&self) -> usize {
        self.num_partitions
    }

    /// The StableHLO module text (`func.func public @main`).
    pub fn to_stablehlo(&self) -> String {
        let param_attrs = (0..self.param_names.len())
            .map(|i| {
                let mut a = Vec::new();
                if let Some(s) = &self.param_shardings[i] {
                    a.push(format!("sdy.sharding = {s}"));
                }
                if let Some(r) = self.aliases[i] {
                    a.push(format!("tf.aliasing_output = {r} : i32"));
                }
                a
            })
            .collect();
        let result_attrs = self
            .result_shardings
            .iter()
            .map(|s| s.iter().map(|s| format!("sdy.sharding = {s}")).collect())
            .collect();
        emit_module(&ModuleSpec {
            name: &self.name,
            graph: &self.graph,
            param_names: &self.param_names,
            result_names: &self.result_names,
            param_attrs,
            result_attrs,
            meshes: &self.meshes,
            num_partitions: self.num_partitions,
            num_replicas: self.num_replicas,
        })
    }
}

impl fmt::Display for Function {
    /// The IR with parameter and result names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "function {}", self.name)?;
        for (n, p) in self.param_names.iter().zip(&self.graph.params) {
            writeln!(f, "  param %{} = {n}", p.0)?;
        }
        for (n, r) in self.result_names.iter().zip(&self.graph.results) {
            writeln!(f, "  result {n} = %{}", r.0)?;
        }
        write!(f, "{}", self.graph)
    }
}
