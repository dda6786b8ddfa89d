//! The trainer issue's checks on a small llama (1 layer, d 64) so they run
//! in seconds: exact resume, restore onto another mesh, one AdamW step
//! against ndarray, a NaN stop that keeps the last good checkpoint, and bad
//! data files.

use axle::backend::compile;
use axle::checkpoint::{self, Checkpointer};
use axle::compiler::{DType, FunctionBuilder};
use axle::learner::{LearnerConfig, ParamUpdate, STEP};
use axle::run::{RunError, RunOptions, train};
use axle::runtime::Client;
use ndarray::ArrayD;
use std::path::Path;

fn small(steps: u64) -> RunOptions {
    RunOptions {
        overrides: vec![
            "decoder.dim=64".into(),
            "decoder.transformer.num_layers=1".into(),
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128".into(),
        ],
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        batch_size: Some(4),
        seq_len: Some(32),
        steps,
        eval_every: 0,
        ..RunOptions::default()
    }
}

fn params_at(dir: &Path) -> checkpoint::Tensors {
    let latest = Checkpointer::new(dir, 1).latest().unwrap().unwrap();
    checkpoint::load(&latest).unwrap().params
}

#[test]
fn resuming_equals_training_straight_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let straight_dir = dir.path().join("straight");
    let split_dir = dir.path().join("split");
    let straight = train(
        &RunOptions {
            checkpoint_dir: Some(straight_dir.clone()),
            ..small(20)
        },
        |_| {},
    )
    .unwrap();
    let first = train(
        &RunOptions {
            checkpoint_dir: Some(split_dir.clone()),
            checkpoint_every: 10,
            ..small(10)
        },
        |_| {},
    )
    .unwrap();
    let second = train(
        &RunOptions {
            checkpoint_dir: Some(split_dir.clone()),
            resume: true,
            ..small(20)
        },
        |_| {},
    )
    .unwrap();
    let resumed: Vec<_> = first.losses.iter().chain(&second.losses).copied().collect();
    assert_eq!(resumed, straight.losses, "losses differ after resume");
    assert_eq!(second.losses.first().map(|l| l.0), Some(11));
    assert_eq!(params_at(&split_dir), params_at(&straight_dir));
    assert!(straight.losses[19].1 < straight.losses[0].1);
}

#[test]
fn restoring_onto_another_mesh_gives_the_same_next_loss() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let saved = RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        ..small(3)
    };
    train(&saved, |_| {}).unwrap();
    // Each resumed run saves its own step-4 checkpoint: give it a copy.
    let copy = dir.path().join("copy");
    copy_dir(&ckpt, &copy);
    let one_device = train(
        &RunOptions {
            resume: true,
            ..saved.clone()
        }
        .with_steps(4),
        |_| {},
    )
    .unwrap();
    let four_devices = train(
        &RunOptions {
            resume: true,
            mesh: Some("data=2,fsdp=2".into()),
            cpu_devices: Some(4),
            checkpoint_dir: Some(copy),
            ..small(4)
        },
        |_| {},
    )
    .unwrap();
    let (a, b) = (one_device.losses[0], four_devices.losses[0]);
    assert_eq!(a.0, 4);
    assert_eq!(b.0, 4);
    // Same parameters and batch; only the reduction order across the 4
    // partitions differs, so f32 rounding (~1e-7 relative per op over a
    // few thousand ops) bounds the difference well below 1e-5.
    assert!((a.1 - b.1).abs() <= 1e-5 * a.1.abs(), "{a:?} vs {b:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

trait WithSteps {
    fn with_steps(self, steps: u64) -> Self;
}

impl WithSteps for RunOptions {
    fn with_steps(self, steps: u64) -> Self {
        RunOptions { steps, ..self }
    }
}

#[test]
fn one_adamw_step_equals_the_formula_in_ndarray() {
    let learner = LearnerConfig::default();
    let (b1, b2, eps, wd, lr, clip) = (0.9f64, 0.95f64, 1e-8f64, 0.1f64, 1e-3f64, 1.0f64);
    let shape = [3usize, 4];
    let p0 = ArrayD::from_shape_fn(shape.to_vec(), |i| {
        (i[0] as f32 - 1.0) * 0.3 + i[1] as f32 * 0.1
    });
    let g0 = ArrayD::from_shape_fn(shape.to_vec(), |i| ((i[0] * 4 + i[1]) as f32 * 0.37).sin());
    let mu0 = ArrayD::from_shape_fn(shape.to_vec(), |i| (i[1] as f32) * 0.01);
    let nu0 = ArrayD::from_shape_fn(shape.to_vec(), |i| (i[0] as f32 + 1.0) * 0.001);
    let step0 = 4i32;

    let b = FunctionBuilder::new("adamw");
    let p = b.param("p", DType::F32, &shape);
    let g = b.param("g", DType::F32, &shape);
    let mut state = std::collections::BTreeMap::new();
    state.insert("opt/mu/p".to_string(), b.param("mu", DType::F32, &shape));
    state.insert("opt/nu/p".to_string(), b.param("nu", DType::F32, &shape));
    state.insert(STEP.to_string(), b.param("step", DType::I32, &[]));
    let update = learner.apply(
        &[ParamUpdate {
            path: "p",
            value: &p,
            grad: &g,
            decay: true,
        }],
        &state,
    );
    let f = b
        .build(&[
            ("p", &update.params["p"]),
            ("mu", &update.state["opt/mu/p"]),
            ("nu", &update.state["opt/nu/p"]),
            ("norm", &update.grad_norm),
        ])
        .unwrap();
    let program = compile(&Client::cpu(1).unwrap(), &f).unwrap();
    let out = program
        .run(&[
            p0.clone().into(),
            g0.clone().into(),
            mu0.clone().into(),
            nu0.clone().into(),
            ArrayD::from_elem(vec![], step0).into(),
        ])
        .unwrap();
    let got: Vec<ArrayD<f32>> = out.into_iter().map(|t| t.try_into().unwrap()).collect();

    // The reference in f64: clip by global norm, AdamW with bias
    // correction at t = step + 1, decoupled weight decay.
    let to64 = |a: &ArrayD<f32>| a.mapv(f64::from);
    let (p, g, mu, nu) = (to64(&p0), to64(&g0), to64(&mu0), to64(&nu0));
    let norm = g.mapv(|x| x * x).sum().sqrt();
    let g = &g * (clip / norm).min(1.0);
    let mu = &mu * b1 + &g * (1.0 - b1);
    let nu = &nu * b2 + &g.mapv(|x| x * x) * (1.0 - b2);
    let t = f64::from(step0 + 1);
    let mu_hat = &mu / (1.0 - b1.powf(t));
    let nu_hat = &nu / (1.0 - b2.powf(t));
    let p = &p - &((&mu_hat / &nu_hat.mapv(|v| v.sqrt() + eps) + &p * wd) * lr);
    // f32 arithmetic on values of order 1: a few ulps (1e-7 relative) per
    // op, a dozen ops deep, so 1e-6 relative (plus 1e-9 absolute for
    // tiny values) is tight and safe.
    for (name, got, want) in [
        ("p", &got[0], &p),
        ("mu", &got[1], &mu),
        ("nu", &got[2], &nu),
    ] {
        for (x, y) in got.iter().zip(want.iter()) {
            assert!(
                (f64::from(*x) - y).abs() <= 1e-6 * y.abs() + 1e-9,
                "{name}: {x} vs {y}"
            );
        }
    }
    assert!((f64::from(got[3][[]]) - norm).abs() <= 1e-6 * norm);
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        checkpoint_every: 1,
        overrides: [
            small(0).overrides,
            vec![
                "learner.schedule.lr=1e30".into(),
                "learner.max_grad_norm=null".into(),
            ],
        ]
        .concat(),
        ..small(50)
    };
    let err = train(&options, |_| {}).unwrap_err();
    let RunError::NonFinite { step, .. } = err else {
        panic!("expected a non-finite stop, got {err}");
    };
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    let saver = Checkpointer::new(dir.path(), 3);
    let (last, path) = saver
        .list()
        .unwrap()
        .pop()
        .expect("a checkpoint before the NaN");
    assert_eq!(last, step - 1);
    let restored = checkpoint::load(&path).unwrap();
    assert!(
        restored
            .params
            .values()
            .all(|a| a.iter().all(|v| v.is_finite()))
    );
}

#[test]
fn bad_data_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let err = train(
        &RunOptions {
            data: Some(missing),
            ..small(1)
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");

    let bytes = dir.path().join("bytes.txt");
    std::fs::write(&bytes, vec![200u8; 4000]).unwrap();
    let err = train(
        &RunOptions {
            data: Some(bytes.clone()),
            overrides: [small(0).overrides, vec!["decoder.vocab_size=128".into()]].concat(),
            ..small(1)
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("token 200"), "{err}");

    let short = dir.path().join("short.txt");
    std::fs::write(&short, b"too short for a sequence of 32").unwrap();
    let err = train(
        &RunOptions {
            data: Some(short),
            ..small(1)
        },
        |_| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("short.txt") && err.to_string().contains("33"),
        "{err}"
    );
}

/// Byte-level training on real text (this crate's own Rust sources, about
/// 100 KB): the held-out loss must fall well below ln(256) ≈ 5.55, the loss
/// of a uniform guess over bytes.
#[test]
fn byte_level_text_eval_loss_falls_well_below_uniform() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    let mut text = Vec::new();
    for sub in ["src", "src/data", "src/learner", "tests"] {
        let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        for f in files {
            text.extend(std::fs::read(f).unwrap());
        }
    }
    std::fs::write(&corpus, &text).unwrap();
    let summary = train(
        &RunOptions {
            data: Some(corpus),
            overrides: [
                small(0).overrides,
                vec![
                    "decoder.vocab_size=256".into(),
                    "learner.schedule.lr=3e-3".into(),
                ],
            ]
            .concat(),
            batch_size: Some(8),
            seq_len: Some(64),
            eval_every: 80,
            eval_batches: 4,
            ..small(80)
        },
        |_| {},
    )
    .unwrap();
    let (_, eval) = summary.eval_losses[0];
    assert!(
        eval < 3.5,
        "eval loss {eval} after 80 steps on {} bytes",
        text.len()
    );
}

/// Two micro-batches of 4 rows give the mean of their gradients, which is
/// the gradient of the 8-row batch: losses and parameters after 3 steps
/// match the unsplit run. Only summation order differs (f32), so losses
/// agree to 1e-5 relative and parameters to 1e-5 absolute (updates are
/// lr = 1e-3 sized; a rounding difference in a near-zero gradient can move
/// AdamW's normalised update by a fraction of lr).
#[test]
fn gradient_accumulation_matches_the_full_batch() {
    let dir = tempfile::tempdir().unwrap();
    let run = |micro: usize, name: &str| {
        let options = RunOptions {
            batch_size: Some(8),
            checkpoint_dir: Some(dir.path().join(name)),
            overrides: [
                small(0).overrides,
                vec![format!("learner.micro_batches={micro}")],
            ]
            .concat(),
            ..small(3)
        };
        let summary = train(&options, |_| {}).unwrap();
        (summary.losses, params_at(&dir.path().join(name)))
    };
    let (full_losses, full_params) = run(1, "full");
    let (acc_losses, acc_params) = run(2, "accumulated");
    for (a, b) in full_losses.iter().zip(&acc_losses) {
        assert!((a.1 - b.1).abs() <= 1e-5 * a.1, "{a:?} vs {b:?}");
    }
    for (path, full) in &full_params {
        let max = (full - &acc_params[path])
            .mapv(f32::abs)
            .fold(0.0f32, |m, &x| m.max(x));
        assert!(max <= 1e-5, "{path}: max difference {max}");
    }
    let options = RunOptions {
        overrides: [small(0).overrides, vec!["learner.micro_batches=3".into()]].concat(),
        ..small(1)
    };
    let err = train(&options, |_| {}).unwrap_err();
    assert!(err.to_string().contains("micro_batches"), "{err}");
}

/// Mixed precision: bf16 compute with f32 master weights. The first loss
/// (same parameters and batch) agrees with f32 to 2% — bf16 keeps 8
/// significant bits (0.4% per rounding), and the matmuls of a 1-layer model
/// accumulate a few such errors — and training still makes progress.
#[test]
fn bf16_compute_with_f32_master_weights_trains() {
    let run = |dtype: &str| {
        let options = RunOptions {
            overrides: [
                small(0).overrides,
                vec![format!("learner.compute_dtype={dtype}")],
            ]
            .concat(),
            ..small(20)
        };
        train(&options, |_| {}).unwrap().losses
    };
    let (full, mixed) = (run("f32"), run("bf16"));
    assert!(
        (full[0].1 - mixed[0].1).abs() <= 0.02 * full[0].1,
        "{:?} vs {:?}",
        full[0],
        mixed[0]
    );
    assert!(mixed[19].1 < mixed[0].1 - 0.5, "{mixed:?}");
}

/// The warm-up + cosine schedule reaches the step: the rate each step
/// records is the reference value for its count (`step - 1` updates before
/// it), from `tests/golden/learner_reference.json` (case
/// `warmup_cosine_w3_t8_floor`, computed by `tests/learner_reference.py`);
/// f32 vs f64, so 1e-6 of the peak. SGD with Nesterov momentum, given only
/// the fields that differ from its defaults, trains too.
#[test]
fn warmup_cosine_schedule_and_sgd_run_in_the_step() {
    use axle::metrics::Record;
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/learner_reference.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let case = reference["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "warmup_cosine_w3_t8_floor")
        .unwrap();
    let want: Vec<f64> = case["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    let options = RunOptions {
        overrides: [
            small(0).overrides,
            vec![
                format!("learner.schedule={}", case["schedule"]),
                r#"learner.optimizer={"kind":"sgd","nesterov":true}"#.into(),
            ],
        ]
        .concat(),
        ..small(10)
    };
    let mut rates = Vec::new();
    let summary = train(&options, |r| {
        if let Record::Train {
            step,
            learning_rate,
            ..
        } = r
        {
            rates.push((*step, *learning_rate));
        }
    })
    .unwrap();
    assert_eq!(rates.len(), 10);
    for (step, rate) in rates {
        let want = want[step as usize - 1];
        assert!(
            (rate - want).abs() <= 1e-6 * 0.05,
            "step {step}: {rate} vs {want}"
        );
    }
    assert!(
        summary.losses[9].1 < summary.losses[0].1,
        "{:?}",
        summary.losses
    );
}

/// A run whose every gradient norm is above `learner.drop_grad_norm`
/// skips every step: its parameters equal, bit for bit, those of a run at
/// learning rate 0 (the initial ones), and the steps are counted in the
/// metrics and the run's summary; with a high drop norm nothing is skipped.
#[test]
fn steps_above_the_drop_norm_are_skipped_and_counted() {
    use axle::metrics::Record;
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &str| {
        let ckpt = dir.path().join(name);
        let mut flags = Vec::new();
        let summary = train(
            &RunOptions {
                overrides: [small(0).overrides, vec![extra.to_string()]].concat(),
                checkpoint_dir: Some(ckpt.clone()),
                checkpoint_every: 3,
                ..small(3)
            },
            |r| {
                if let Record::Train { skipped, .. } = r {
                    flags.push(*skipped);
                }
            },
        )
        .unwrap();
        (summary.skipped_steps, flags, params_at(&ckpt))
    };
    let (count, flags, skipped) = run("skip", "learner.drop_grad_norm=1e-9");
    assert_eq!((count, flags), (3, vec![true; 3]));
    let (_, _, initial) = run("lr0", r#"learner.schedule={"kind":"constant","lr":0.0}"#);
    assert_eq!(skipped, initial);
    let (count, flags, trained) = run("keep", "learner.drop_grad_norm=1e9");
    assert_eq!((count, flags), (0, vec![false; 3]));
    assert_ne!(trained, initial);
}
