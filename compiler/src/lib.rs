//! axle-compiler: trace Rust code into StableHLO, with reverse-mode autodiff.
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
pub mod ops;
mod passes;
pub mod shape;
pub mod tensor;

pub use autodiff::{grad, value_and_grad, vjp};
pub use builder::FunctionBuilder;
pub use dtype::{DType, Element};
pub use error::{FunctionError, TraceError};
pub use function::Function;
pub use ir::{CmpDir, DotDims, GatherDims, ScatterDims};
pub use ops::annotate::optimization_barrier;
pub use ops::contraction::einsum;
pub use ops::random::{dropout, random_bits, random_normal, random_uniform};
pub use shape::TensorType;
pub use tensor::Tensor;
