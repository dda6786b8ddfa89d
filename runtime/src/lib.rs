//! axle-runtime.
