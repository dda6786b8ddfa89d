//! Value-preserving annotations: stop_gradient, sharding constraints,
//! optimization barriers.

use crate::ir::OpKind;
use crate::tensor::Tensor;
use std::panic::Location;

impl Tensor {
    /// The same value, treated as a constant by autodiff.
    #[track_caller]
    pub fn stop_gradient(&self) -> Tensor {
        self.b
            .record1("stop_gradient", Location::caller(), &[self], |t| {
                Ok((OpKind::StopGradient, vec![t[0].clone()]))
            })
    }

    /// Constrains the sharding of this value inside the function body.
    /// `sharding` is the opaque Shardy text produced by the partition crate,
    /// e.g. `<@mesh, [{"data"}, {?}]>`.
    #[track_caller]
    pub fn sharding_constraint(&self, sharding: &str) -> Tensor {
        let sharding = sharding.to_string();
        self.b
            .record1("sharding_constraint", Location::caller(), &[self], |t| {
                if !(sharding.starts_with('<') && sharding.ends_with('>')) {
                    return Err(format!(
                        "sharding for {} must look like `<@mesh, [...]>`, got `{sharding}`",
                        t[0]
                    ));
                }
                Ok((OpKind::ShardingConstraint { sharding }, vec![t[0].clone()]))
            })
    }
}

/// `stablehlo.optimization_barrier`: XLA may not move computation across it.
///
/// # Panics
/// If `xs` is empty: there is no function to record the error in.
#[track_caller]
pub fn optimization_barrier(xs: &[&Tensor]) -> Vec<Tensor> {
    xs[0]
        .b
        .record("optimization_barrier", Location::caller(), xs, |t| {
            Ok((
                OpKind::OptimizationBarrier,
                t.iter().map(|x| (*x).clone()).collect(),
            ))
        })
}
