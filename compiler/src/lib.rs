//! axle-compiler.
