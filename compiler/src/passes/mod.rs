//! Cleanup passes run before emission: constant folding of trivial
//! identities plus CSE in one forward rebuild, then dead-code elimination.

mod cse;
mod dce;
mod fold;

use crate::ir::Graph;

/// Folding + CSE, then DCE; loop bodies are simplified recursively.
pub(crate) fn run_all(g: &Graph) -> Graph {
    dce::dce(&cse::simplify(g))
}
