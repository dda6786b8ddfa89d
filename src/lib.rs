//! axle: train sharded deep learning models in Rust on XLA.
//!
//! The root crate re-exports the workspace crates and holds what turns a
//! model into a training run: the learner, the train and eval steps, the
//! trainer, the input pipeline, checkpoints, metrics and TensorBoard
//! summaries, the registry of experiments, benchmarks and the `axle`
//! command. The map of the code is `docs/design.md`.

pub use axle_compiler as compiler;
pub use axle_modules as modules;
pub use axle_partition as partition;
pub use axle_runtime as runtime;

pub mod bench;
pub mod checkpoint;
pub mod compiler_options;
pub mod data;
pub mod experiment;
pub mod generate;
pub mod hf;
pub mod learner;
pub mod metrics;
pub mod packed_metrics;
pub mod plan;
pub mod plot;
pub mod run;
pub mod summary_writer;
pub mod text;
pub mod train_step;
pub mod trainer;

pub mod backend;
