//! Helpers of the sharding tests: llama-tiny trainers and runs on the same
//! batches, comparing a sharded run with the single-device run of the same
//! model, batches and initial parameters (tolerances and their reasons in
//! `tests/sharding.rs`: f32 sums in another order per device, then a
//! collective; AdamW turns rounding-level gradient differences on tiny
//! gradients into visible fractions of lr), and reading the optimized HLO.

#![allow(dead_code)]

use axle::checkpoint::Meta;
use axle::data::{LanguageModelSource, Loader, Split, Synthetic};
use axle::learner::LearnerConfig;
use axle::partition::{LogicalRules, Mesh};
use axle::runtime::{Client, HloModule, Shape};
use axle::trainer::Trainer;
use axle_modules::{BatchShape, CausalLm, ParamTree, registered_model};
use ndarray::ArrayD;
use std::collections::BTreeMap;

/// Steps each llama-tiny run takes.
pub const STEPS: usize = 3;
/// Learning rate of the default learner (AdamW, constant).
pub const LR: f32 = 1e-3;

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

/// A llama-tiny trainer (registered batch and sequence, default learner)
/// on `mesh` with `rules`, initialised from seed 0.
pub fn llama_tiny_trainer(client: &Client, mesh: &Mesh, rules: &LogicalRules) -> Trainer {
    let reg = registered_model("llama-tiny").unwrap();
    let model = CausalLm::new(&reg.config).unwrap();
    let shape = BatchShape::new(reg.batch_size, reg.seq_len);
    Trainer::new(
        client,
        &model,
        &LearnerConfig::default(),
        &shape,
        mesh,
        rules,
        0,
    )
    .unwrap_or_else(|e| panic!("{mesh}: {e}"))
}

/// The trainer's parameters, on the host.
pub fn params(trainer: &Trainer) -> ParamTree<ArrayD<f32>> {
    let meta = Meta {
        input_position: 0,
        rng_state: 0,
        run: BTreeMap::new(),
    };
    trainer.checkpoint(meta).unwrap().params
}

/// Trains a llama-tiny trainer `STEPS` steps on the same synthetic batches
/// as every other run.
pub fn train_llama_tiny(trainer: &mut Trainer) -> Run {
    let reg = registered_model("llama-tiny").unwrap();
    let task = LanguageModelSource::new(Box::new(Synthetic::new(1024, 0)), reg.seq_len);
    let mut loader = Loader::new(&task, Split::Train, reg.batch_size, 0);
    let (mut losses, mut grad_norms) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let metrics = trainer.step(&loader.next_batch(), 0).unwrap();
        assert_eq!(metrics.learning_rate, LR, "the tolerances assume this lr");
        losses.push(metrics.loss);
        grad_norms.push(metrics.grad_norm);
    }
    Run {
        losses,
        grad_norms,
        params: params(trainer),
    }
}

/// The array shapes of an HLO shape (a tuple's elements, or itself).
pub fn array_shapes(shape: &Shape) -> Vec<Vec<usize>> {
    if shape.tuple_shapes.is_empty() {
        vec![shape.dims()]
    } else {
        shape.tuple_shapes.iter().flat_map(array_shapes).collect()
    }
}

/// The result shapes of every instruction with this opcode.
pub fn shapes_of(hlo: &HloModule, opcode: &str) -> Vec<Vec<usize>> {
    hlo.find_opcode(opcode)
        .filter_map(|i| i.shape.as_ref())
        .flat_map(array_shapes)
        .collect()
}

/// No 2-D matmul over the flattened rows of a device's full-length
/// sequences (`rows` of them): sequence parallelism split the work.
pub fn assert_no_full_sequence_matmul(hlo: &HloModule, rows: usize) {
    let dots = shapes_of(hlo, "dot");
    assert!(!dots.is_empty());
    for dims in &dots {
        assert!(
            !(dims.len() == 2 && dims[0] == rows),
            "a matmul over full-length sequences {dims:?} in {dots:?}"
        );
    }
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
