//! The primitives, one file per family: tracing methods with their shape
//! rules, StableHLO lowerings and VJP rules side by side.

pub mod annotate;
pub mod composite;
pub mod constant;
pub mod contraction;
pub mod control;
pub mod convolution;
pub mod cumulative;
pub mod elementwise;
pub mod indexing;
pub mod placement;
pub mod random;
pub mod reduce;
pub mod remat;
pub mod shape_ops;
pub mod sort;
pub mod window;
