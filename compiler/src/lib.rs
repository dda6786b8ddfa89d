//! axle-compiler: trace Rust code into StableHLO, with reverse-mode autodiff.
//!
//! - IR ([`ir`]): a typed SSA [`ir::Graph`] with value and op arenas, one
//!   [`ir::OpKind`] per primitive; `Display` prints one op per line.
//! - Primitives ([`ops`]): one file per family holding the tracing methods
//!   with their shape rules, the StableHLO lowering and the VJP rule.
//! - The op table ([`op_table`]): every primitive with its StableHLO op,
//!   the element types it accepts (the StableHLO specification's rules,
//!   enforced from the table: `pred + pred` is `or`, integers take `pow`)
//!   and whether it is differentiable.
//! - Autodiff ([`autodiff`]): [`grad`], [`vjp`], [`value_and_grad`] append
//!   the backward ops to the same builder; [`FunctionBuilder::scan`] is
//!   differentiable (the backward pass is a reverse scan that recomputes
//!   each step), `while_loop` is not.
//! - Randomness: explicit `u64[2]` keys ([`FunctionBuilder::rng_key`],
//!   [`random_uniform`], [`random_normal`], [`dropout`]) return the next key.
//! - Sharding: the compiler only carries opaque Shardy strings
//!   ([`Tensor::sharding_constraint`], [`Function::set_param_sharding`],
//!   [`Function::add_mesh`]) and donation ([`Function::donate`]).
//!
//! Build a function with a [`FunctionBuilder`]: declare named parameters,
//! compute with [`Tensor`] ops (operators, methods, [`einsum`], [`FunctionBuilder::scan`]),
//! take gradients with [`grad`] / [`vjp`] / [`value_and_grad`], then
//! [`FunctionBuilder::build`] the [`Function`] and lower it with
//! [`Function::to_stablehlo`]. Ops never panic: the first shape, dtype or
//! axis error is recorded with the op name and the caller's location and
//! returned by `build`.
//!
//! ```
//! use axle_compiler::{DType, FunctionBuilder, grad};
//! let b = FunctionBuilder::new("step");
//! let x = b.param("x", DType::F32, &[4, 8]);
//! let w = b.param("w", DType::F32, &[8, 3]);
//! let loss = x.matmul(&w).tanh().square().mean_all();
//! let gw = grad(&loss, &[&w]).remove(0);
//! let f = b.build(&[("loss", &loss), ("grad_w", &gw)]).unwrap();
//! assert!(f.to_stablehlo().contains("stablehlo.dot_general"));
//! ```

pub mod autodiff;
pub mod builder;
pub mod dtype;
pub mod emit;
pub mod error;
pub mod function;
pub mod ir;
pub mod op_table;
pub mod ops;
mod passes;
pub mod shape;
pub mod tensor;

pub use autodiff::{grad, value_and_grad, vjp};
pub use builder::FunctionBuilder;
pub use dtype::{DType, Element};
pub use error::{FunctionError, TraceError};
pub use function::Function;
pub use ir::{
    CmpDir, ConvConfig, ConvDims, DotDims, GatherDims, Precision, ReduceKind, ScatterDims,
};
pub use ops::annotate::optimization_barrier;
pub use ops::contraction::{DotConfig, einsum};
pub use ops::random::{dropout, random_bits, random_normal, random_uniform};
pub use ops::sort::sort;
pub use shape::TensorType;
pub use tensor::Tensor;
