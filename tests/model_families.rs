//! The non-LM model families train through the stock step and trainer:
//! the BERT-style classifier and the ViT reach at least 90% held-out
//! accuracy on their synthetic tasks (chance is 25%), the MLP regressor's
//! held-out MSE falls at least 100x, and each trains on `data=2,fsdp=2`
//! as on one device (tolerances of `tests/sharding.rs`).

mod sharding_common;

use axle::data::{Loader, Split};
use axle::run::{RunOptions, train};
use sharding_common::{Run, assert_matches, params};
use std::collections::BTreeMap;

fn options(experiment: &str, steps: u64) -> RunOptions {
    RunOptions {
        experiment: Some(experiment.into()),
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        steps,
        eval_every: steps,
        eval_batches: 8,
        ..RunOptions::default()
    }
}

#[test]
fn bert_tiny_classifies_markers() {
    let summary = train(&options("bert-tiny", 60), |_| {}).unwrap();
    let accuracy = summary.eval_metrics["accuracy"];
    assert!(accuracy >= 0.9, "held-out accuracy {accuracy}");
}

#[test]
fn vit_tiny_classifies_stripe_orientations() {
    let summary = train(&options("vit-tiny", 60), |_| {}).unwrap();
    let accuracy = summary.eval_metrics["accuracy"];
    assert!(accuracy >= 0.9, "held-out accuracy {accuracy}");
}

#[test]
fn mlp_regressor_mse_falls_a_hundredfold() {
    let summary = train(&options("mlp-regressor", 300), |_| {}).unwrap();
    let first = summary.losses[0].1;
    let (_, eval) = summary.eval_losses[0];
    assert!(
        eval <= first / 100.0,
        "first loss {first}, held-out MSE {eval}"
    );
}

/// Three steps of `experiment` on `devices` CPU devices with `mesh`, and
/// the parameters it started from.
fn run(
    experiment: &str,
    devices: usize,
    mesh: &str,
) -> (Run, BTreeMap<String, ndarray::ArrayD<f32>>, f32) {
    let setup = RunOptions {
        mesh: Some(mesh.into()),
        cpu_devices: Some(devices),
        ..options(experiment, 3)
    }
    .setup()
    .unwrap();
    let mut trainer = setup.trainer(0).unwrap();
    let initial = params(&trainer);
    let mut loader = Loader::new(
        setup.source.as_ref(),
        Split::Train,
        setup.shape.batch_size,
        0,
    );
    let mut run = Run {
        losses: Vec::new(),
        grad_norms: Vec::new(),
        params: BTreeMap::new(),
    };
    let mut lr = 0.0;
    for _ in 0..3 {
        let m = trainer.step(&loader.next_batch(), 0).unwrap();
        run.losses.push(m.loss);
        run.grad_norms.push(m.grad_norm);
        lr = m.learning_rate;
    }
    run.params = params(&trainer);
    (run, initial, lr)
}

#[test]
fn each_family_on_data_and_fsdp_equals_one_device() {
    for experiment in ["bert-tiny", "vit-tiny", "mlp-regressor"] {
        let (reference, initial, lr) = run(experiment, 1, "data=1");
        let (sharded, _, _) = run(experiment, 4, "data=2,fsdp=2");
        assert_matches(experiment, &sharded, &reference, &initial, lr);
    }
}
