//! The [`Module`] trait: an instantiated config that declares its parameters.
//!
//! A module is built from its config by `new(cfg, path)`, where `path` is the dotted config path
//! (used in error messages); the parent fills in its children's dimensions before building them.
//! A module holds no parameter values: its forward takes them from a [`crate::Ctx`] by path.

use crate::param::{ParamSpec, ParamTree, count_params};

/// A module of a model: declares the specs of its parameters and its children's, keyed by path
/// relative to itself (`attention/q_proj/weight`).
pub trait Module {
    /// Specs of every parameter of this module and its descendants.
    fn param_specs(&self) -> ParamTree<ParamSpec>;

    /// Number of parameter elements, from the specs (nothing is allocated).
    fn num_params(&self) -> u64 {
        count_params(&self.param_specs())
    }
}
