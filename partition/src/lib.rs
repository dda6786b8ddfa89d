//! axle-partition.
