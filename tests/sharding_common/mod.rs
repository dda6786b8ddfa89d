//! Comparing a sharded training run with the single-device run of the same
//! model, batches and initial parameters; the tolerances and their reasons
//! are those of `tests/sharding.rs` (f32 sums in another order per device,
//! then a collective; AdamW turns rounding-level gradient differences on
//! tiny gradients into visible fractions of lr).

use axle_modules::ParamTree;
use ndarray::ArrayD;

/// Loss and gradient-norm tolerance, relative.
pub const METRIC_RTOL: f32 = 1e-5;
/// Per-coordinate parameter tolerance, in units of the learning rate.
pub const PARAM_ATOL_IN_LR: f32 = 0.5;
/// Tolerance on the L2 norm of the update difference, relative to the
/// norm of the single-device update.
pub const UPDATE_RTOL: f64 = 1e-3;

/// One training run: metrics of each step and the parameters after them.
pub struct Run {
    /// Loss of each step.
    pub losses: Vec<f32>,
    /// Gradient norm of each step.
    pub grad_norms: Vec<f32>,
    /// Parameters after the last step.
    pub params: ParamTree<ArrayD<f32>>,
}

fn assert_close(what: &str, metric: &str, got: &[f32], want: &[f32]) {
    for (step, (got, want)) in got.iter().zip(want).enumerate() {
        let rel = (got - want).abs() / want.abs();
        eprintln!("{what}: step {step} {metric} {got} vs {want} (relative {rel:.1e})");
        assert!(
            rel <= METRIC_RTOL,
            "{what}: step {step} {metric} is {got}, on one device {want}"
        );
    }
}

/// Asserts that `run` equals `reference` (the single-device run that
/// started from `initial` with learning rate `lr`) within the tolerances.
pub fn assert_matches(
    what: &str,
    run: &Run,
    reference: &Run,
    initial: &ParamTree<ArrayD<f32>>,
    lr: f32,
) {
    assert_close(what, "loss", &run.losses, &reference.losses);
    assert_close(what, "grad norm", &run.grad_norms, &reference.grad_norms);
    let (mut worst, mut worst_path) = (0.0f32, "");
    let (mut diff_sq, mut update_sq) = (0.0f64, 0.0f64);
    for (path, want) in &reference.params {
        let got = &run.params[path];
        assert_eq!(got.shape(), want.shape(), "{what}: {path}");
        let update = want - &initial[path];
        update_sq += update.iter().map(|&u| f64::from(u).powi(2)).sum::<f64>();
        for (g, w) in got.iter().zip(want) {
            let d = (g - w).abs();
            diff_sq += f64::from(d).powi(2);
            if d > worst {
                (worst, worst_path) = (d, path);
            }
        }
    }
    let update_rel = (diff_sq / update_sq).sqrt();
    eprintln!(
        "{what}: largest parameter difference {:.3} lr at {worst_path}; update differs by {update_rel:.1e} (relative L2)",
        worst / lr
    );
    assert!(
        worst <= PARAM_ATOL_IN_LR * lr,
        "{what}: {worst_path} differs by {worst} from the single-device run"
    );
    assert!(
        update_rel <= UPDATE_RTOL,
        "{what}: the update differs from the single-device one by {update_rel} (relative L2)"
    );
}
