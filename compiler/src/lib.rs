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
//! - Rematerialization ([`remat`] with a [`RematPolicy`]: save nothing,
//!   dot outputs, or values tagged by [`Tensor::checkpoint_name`], on the
//!   device or offloaded to host memory with [`Tensor::to_memory_kind`]):
//!   the backward pass recomputes the rest behind an optimization barrier.
//! - Randomness: explicit `u64[2]` keys ([`FunctionBuilder::rng_key`],
//!   [`random_uniform`], [`random_normal`], [`dropout`]) return the next key.
//! - Sharding: the compiler only carries opaque Shardy strings
//!   ([`Tensor::sharding_constraint`], [`Function::set_param_sharding`],
//!   [`Function::add_mesh`]) and donation ([`Function::donate`]).
//!
//! Numerics at the edges:
//! - Mixed precision: sums, means (and so softmax, logsumexp, norms) and
//!   scatter-adds of `bf16` / `f16` accumulate in `f32` and round once; a
//!   mean divides in `f32` ([`ops::reduce::accumulation_dtype`]). The VJP of
//!   a broadcast is such a sum, so a `bf16` bias gets an `f32`-accurate
//!   gradient.
//! - VJPs at ties and edges follow JAX: `maximum` / `minimum` split a tie
//!   half and half; `abs` has slope 0 at 0 (its sign); `pow` gives
//!   d/dx x^0 = 0 and a finite d/dy at x = 0; `sqrt` has slope inf at 0 (as
//!   in JAX: guard it with [`Tensor::where_safe`], the "double where" that
//!   keeps a NaN of the branch not taken out of gradients). Softmax,
//!   log-softmax and logsumexp stay finite with `-inf` entries and fully
//!   masked rows.
//! - Indices: [`IndexMode`] `Clip` (the default) or `Fill(v)` per lookup
//!   ([`Tensor::gather_with_mode`], [`Tensor::take_with_mode`],
//!   [`Tensor::take_along_axis_with_mode`], [`Tensor::one_hot_with_mode`],
//!   [`Tensor::dynamic_slice_with_mode`]) and the checked
//!   [`Tensor::take_checked`], [`Tensor::take_along_axis_checked`],
//!   [`Tensor::dynamic_slice_checked`] (the lookup plus an `i32[]` count of
//!   bad indices to return and check); every VJP agrees with its forward.
//! - A [`FunctionBuilder::scan`] of length 0 returns its carries unchanged.
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
    CmpDir, ConvConfig, ConvDims, DotDims, GatherDims, MemoryKind, Precision, ReduceKind,
    ScatterDims,
};
pub use ops::annotate::optimization_barrier;
pub use ops::contraction::{DotConfig, einsum};
pub use ops::indexing::IndexMode;
pub use ops::random::{dropout, random_bits, random_normal, random_uniform};
pub use ops::remat::{RematPolicy, remat};
pub use ops::sort::sort;
pub use shape::TensorType;
pub use tensor::Tensor;
