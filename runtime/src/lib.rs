//! axle-runtime: the only part of axle that talks to XLA.
//!
//! It loads a PJRT C API plugin (the XLA CPU plugin here; CUDA and TPU
//! plugins where present) through axle's own bindings, creates clients,
//! moves arrays between host and devices, compiles StableHLO for one device
//! or SPMD-partitioned over many, and runs it.
//!
//! - [`Plugin`]: load by platform name (`cpu`, `cuda`, `tpu`), environment
//!   variable or path; see [`discovery`] for where plugins are looked for.
//!   Each plugin is initialised once per process and shared by its clients.
//! - [`Client`]: devices, buffers ([`Client::buffer_from_slice`],
//!   [`Client::buffer_from_array`]) and compilation ([`Client::compile`]).
//! - [`CompileOptions`]: replicas, partitions, Shardy/GSPMD, device assignment.
//! - [`Executable`]: run with one argument list per device
//!   ([`Executable::execute`]), donation ([`Executable::execute_donating`]),
//!   introspection ([`Executable::optimized_hlo`], [`Executable::memory_stats`]),
//!   serialization ([`Executable::serialize`], [`Client::deserialize`]).
//! - [`GpuClientOptions`]: the CUDA plugin's allocator, memory fraction,
//!   preallocation and visible devices; loading the CUDA plugin preloads
//!   the NVIDIA libraries it needs, as JAX's plugin shim does.
//! - [`CompileCache`]: a persistent cache of serialized executables, so a
//!   second run of the same program skips XLA's compile.
//! - [`Topology`]: a TPU slice or GPU machine described by the plugin, no
//!   hardware needed; [`Topology::compile`] compiles for it without a client
//!   (ahead of time) into an [`UnloadedExecutable`] with memory sizes, cost
//!   analysis and the optimized HLO.
//! - [`ShardedArray`] and [`ShardLayout`]: one host array split over devices.
//!
//! ```
//! use axle_runtime::{Client, CompileOptions};
//! use ndarray::{ArrayD, IxDyn};
//!
//! let client = Client::cpu(1)?; // default CPU plugin, 1 device
//! let program = r#"
//! func.func public @main(%a: tensor<2x2xf32>, %b: tensor<2x2xf32>) -> tensor<2x2xf32> {
//!   %0 = stablehlo.add %a, %b : tensor<2x2xf32>
//!   return %0 : tensor<2x2xf32>
//! }"#;
//! let exe = client.compile(program, &CompileOptions::single_device())?;
//! let a = client.buffer_from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], 0)?;
//! let b = client.buffer_from_array(&ArrayD::from_elem(IxDyn(&[2, 2]), 10.0f32), 0)?;
//! let out = exe.execute_one(&[&a, &b])?;
//! assert_eq!(out[0].to_vec::<f32>()?, vec![11.0, 12.0, 13.0, 14.0]);
//! let sum: ArrayD<f32> = out[0].to_array()?;
//! assert_eq!(sum.shape(), &[2, 2]);
//! # Ok::<(), axle_runtime::Error>(())
//! ```
//!
//! For N-way SPMD with Shardy annotations, create `Client::cpu(N)`, compile
//! with `CompileOptions::shardy(N)`, and pass one argument list per device:
//! `exe.execute(&[&[&x0], &[&x1], ...])` returns `outputs[device][output]`.
//!
//! Plugin quirk handled here: xla-cpu-pjrt 0.0.1 deadlocks in multi-device
//! collectives when XNNPACK is on, so every compile on that plugin sets the
//! env option override `xla_cpu_use_xnnpack=false`.

#![warn(missing_docs)]

mod buffer;
mod client;
mod compile_cache;
mod compile_options;
mod cuda_preload;
pub mod discovery;
mod dtype;
mod error;
mod executable;
mod ffi;
mod gpu_options;
mod hlo;
mod introspection;
pub mod offline;
mod plugin;
mod sharded;
mod topology;

pub use buffer::Buffer;
pub use client::{Client, CreateOption, Device, OptionValue};
pub use compile_cache::{CACHE_ENV, CacheOutcome, CompileCache};
pub use compile_options::{CompileOptions, OverrideValue};
pub use dtype::{DType, Element};
pub use error::{Error, ErrorCode, Result};
pub use executable::{Arg, Executable};
pub use gpu_options::{GpuAllocator, GpuClientOptions};
pub use hlo::{
    HOST_MEMORY_SPACE, HloComputation, HloInstruction, HloModule, Layout, ProgramShape, Shape,
};
pub use introspection::MemoryStats;
pub use plugin::{NamedValue, Plugin};
pub use sharded::{ShardLayout, ShardedArray};
pub use topology::{Topology, TopologyDevice, UnloadedExecutable};
