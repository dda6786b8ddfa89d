//! axle-modules.
