//! Experiments: resolved configs against reviewed golden dumps, modifiers
//! from the command line and from mesh rules, evaluation and resumption
//! rebuilding the run from what its checkpoint recorded, loss-weighted
//! micro-batches, and a model written outside the crates.

use axle::data::{HostArray, HostBatch};
use axle::experiment::{EXPERIMENT_NAMES, Experiment, experiment, resolve_config};
use axle::learner::LearnerConfig;
use axle::partition::{LogicalRules, Mesh, MeshRule, MeshRules};
use axle::run::{RunError, RunOptions, evaluate, train};
use axle::runtime::Client;
use axle::train_step::build_train_step;
use axle::trainer::Trainer;
use axle_modules::{BatchShape, CausalLm, Config, registered_model};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

/// A one-layer, 64-wide llama-tiny on one device, so each run takes seconds.
fn small(steps: u64) -> RunOptions {
    RunOptions {
        overrides: vec![
            "decoder.dim=64".into(),
            "decoder.transformer.num_layers=1".into(),
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128".into(),
        ],
        cpu_devices: Some(1),
        batch_size: Some(4),
        seq_len: Some(32),
        steps,
        eval_every: steps,
        eval_batches: 2,
        ..RunOptions::default()
    }
}

#[test]
fn config_dumps_equal_the_reviewed_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/experiments");
    let bless = std::env::var("AXLE_BLESS").is_ok_and(|v| v == "1");
    let none: [&str; 0] = [];
    for name in EXPERIMENT_NAMES {
        let dump = resolve_config(name, &none, &none).unwrap().dump();
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&path, &dump).unwrap();
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (AXLE_BLESS=1 regenerates)", path.display()));
        assert_eq!(dump, golden, "{name}: differs from {}", path.display());
    }
    // The model part of each dump is the model golden file of the modules
    // crate, path for path (the `model.` prefix and the kind tag aside).
    for name in EXPERIMENT_NAMES {
        let dump = resolve_config(name, &none, &none).unwrap().dump();
        let model: String = dump
            .lines()
            .filter_map(|l| l.strip_prefix("model."))
            .filter(|l| !l.starts_with("kind = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let golden =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("modules/tests/golden/{name}.txt"));
        let golden: String = std::fs::read_to_string(golden)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("kind = "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(model, golden, "{name}");
    }
}

#[test]
fn the_config_command_prints_the_golden_dump() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["config", "--experiment", "llama-tiny"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/experiments/llama-tiny.txt");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(golden).unwrap()
    );
}

#[test]
fn the_config_command_prints_the_resolved_config() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_axle"))
        .args([
            "config",
            "--experiment",
            "llama-tiny",
            "--modifier",
            "qk_norm",
        ])
        .args([
            "--set",
            "learner.schedule.lr=3e-3",
            "--set",
            "input.batch_size=16",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("learner.schedule.lr = 0.003\n"), "{text}");
    assert!(text.contains("input.batch_size = 16\n"), "{text}");
    assert!(
        text.contains("model.decoder.transformer.layers.0.attention.qk_norm.kind = \"rms_norm\"\n"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_axle"))
        .args([
            "config",
            "--experiment",
            "llama-tiny",
            "--modifier",
            "sliding_window",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("modifier `sliding_window` needs an argument: sliding_window=W"),
        "{err}"
    );
}

#[test]
fn bad_experiment_and_modifier_names_list_the_known_ones() {
    let none: [&str; 0] = [];
    let err = resolve_config("llama-huge", &none, &none).unwrap_err();
    assert!(
        err.contains("llama-huge") && err.contains("llama-tiny"),
        "{err}"
    );
    let err = resolve_config("llama-tiny", &["qknorm"], &none).unwrap_err();
    assert!(
        err.contains("unknown modifier `qknorm`") && err.contains("qk_norm"),
        "{err}"
    );
    let err = resolve_config("llama-tiny", &["dropout=1.5"], &none).unwrap_err();
    assert!(err.contains("[0, 1)"), "{err}");
    let err = resolve_config("llama-tiny", &["mha_to_gqa=0"], &none).unwrap_err();
    assert!(err.contains("positive integer"), "{err}");
}

#[test]
fn a_mesh_rule_applies_the_modifiers_it_names() {
    let client = Client::cpu(2).unwrap();
    let mut exp: Experiment = experiment("llama-tiny").unwrap();
    exp.mesh_rules = MeshRules::new(vec![
        MeshRule::new("cpu-2", "data=2", &["dropout=0.1", "qk_norm"]).unwrap(),
    ]);
    let options = RunOptions {
        modifiers: vec!["dropout=0.2".into()],
        ..RunOptions::default()
    };
    let (config, choice) = options.resolve_experiment(exp, &client).unwrap();
    assert_eq!(choice.mesh.to_string(), "data=2");
    assert_eq!(choice.modifiers, ["dropout=0.1", "qk_norm"]);
    let dump = config.dump();
    // The rule's modifiers come first, the command line's after them.
    assert!(
        dump.contains("model.decoder.transformer.layers.0.residual_dropout.rate = 0.2\n"),
        "{dump}"
    );
    assert!(
        dump.contains("attention.qk_norm.kind = \"rms_norm\""),
        "{dump}"
    );
}

#[test]
fn eval_of_a_modified_run_needs_only_the_checkpoint_and_reproduces_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let options = RunOptions {
        modifiers: vec!["qk_norm".into(), "swiglu_to_gelu".into()],
        checkpoint_dir: Some(ckpt.clone()),
        ..small(6)
    };
    let summary = train(&options, |_| {}).unwrap();
    let (_, last_eval) = *summary.eval_losses.last().unwrap();

    let bare = RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        ..RunOptions::default()
    };
    let eval = evaluate(&bare, None).unwrap();
    assert_eq!(
        eval.report.loss, last_eval,
        "bitwise: same program, params and batches"
    );
    assert_eq!(eval.step, 6);
    assert!(eval.report.metrics["perplexity"] > 1.0);

    // Options add to the recorded run: repeating it is accepted, changing
    // its config is refused, naming the directory and the differing line.
    let repeat = RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        ..small(6)
    };
    assert_eq!(evaluate(&repeat, None).unwrap().report.loss, last_eval);
    let other = RunOptions {
        overrides: vec!["decoder.transformer.layers.0.feed_forward.hidden_dim=96".into()],
        checkpoint_dir: Some(ckpt.clone()),
        ..RunOptions::default()
    };
    let err = evaluate(&other, None).unwrap_err();
    assert!(matches!(err, RunError::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&ckpt.display().to_string()), "{text}");
    assert!(
        text.contains(
            "this run:   model.decoder.transformer.layers.0.feed_forward.hidden_dim = 96"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "only the changed field: {text}");

    // So is resuming with a changed learner.
    let resume = RunOptions {
        resume: true,
        overrides: vec!["learner.schedule.lr=3e-3".into()],
        checkpoint_dir: Some(ckpt.clone()),
        steps: 8,
        ..RunOptions::default()
    };
    let err = train(&resume, |_| {}).unwrap_err();
    assert!(matches!(err, RunError::Mismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("learner.schedule.lr = 0.003"),
        "{err}"
    );
}

/// Micro-batches are weighted by their live targets, so a batch whose rows
/// have very different numbers of masked labels gives the same loss and
/// gradient split in two as whole. Tolerance: relative 1e-6 (f32 sums in
/// another order: a few ulps); the unweighted mean of the two rows' losses, what
/// averaging per micro-batch gives, is checked to be far outside it.
#[test]
fn micro_batches_weighted_by_live_targets_equal_the_full_batch() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    cfg.set("decoder.dim", "64").unwrap();
    cfg.set("decoder.transformer.num_layers", "1").unwrap();
    let model = CausalLm::new(&cfg).unwrap();
    let client = Client::cpu(1).unwrap();
    let mesh = Mesh::new(&[("data", 1)], 1).unwrap();
    let shape = BatchShape::new(2, 8);
    let ids = ArrayD::from_shape_fn(IxDyn(&[2, 8]), |ix| (ix[0] * 37 + ix[1] * 11) as i32 % 1024);
    // Row 0 keeps 1 target, row 1 keeps 8.
    let labels = ArrayD::from_shape_fn(IxDyn(&[2, 8]), |ix| {
        if ix[0] == 0 && ix[1] > 0 {
            -1
        } else {
            (ix[0] * 5 + ix[1] * 3) as i32
        }
    });
    let batch = HostBatch::from([
        ("input_ids".to_string(), HostArray::I32(ids)),
        ("target_labels".to_string(), HostArray::I32(labels)),
    ]);
    let rules = LogicalRules::default();
    let step = |micro_batches| {
        let learner = LearnerConfig {
            micro_batches,
            ..LearnerConfig::default()
        };
        let mut trainer =
            Trainer::new(&client, &model, &learner, &shape, &mesh, &rules, 0).unwrap();
        trainer.step(&batch, 0).unwrap()
    };
    let (whole, split) = (step(1), step(2));
    let row = |r: usize| {
        let rows = batch
            .iter()
            .map(|(k, v)| match v {
                HostArray::I32(a) => (
                    k.clone(),
                    HostArray::I32(a.slice(ndarray::s![r..r + 1, ..]).to_owned().into_dyn()),
                ),
                HostArray::F32(_) => unreachable!("integer inputs"),
            })
            .collect::<HostBatch>();
        let shape = BatchShape::new(1, 8);
        let mut trainer = Trainer::new(
            &client,
            &model,
            &LearnerConfig::default(),
            &shape,
            &mesh,
            &rules,
            0,
        )
        .unwrap();
        trainer.step(&rows, 0).unwrap().loss
    };
    let unweighted = (row(0) + row(1)) / 2.0;
    assert!(
        (unweighted - whole.loss).abs() > 1e-3 * whole.loss,
        "{unweighted} vs {}",
        whole.loss
    );
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
    assert!(
        close(whole.loss, split.loss),
        "{} vs {}",
        whole.loss,
        split.loss
    );
    assert!(
        close(whole.grad_norm, split.grad_norm),
        "{} vs {}",
        whole.grad_norm,
        split.grad_norm
    );
    assert_eq!((whole.weight, split.weight), (9.0, 9.0));
    // Summaries combine as the full batch's: a count (`num_targets`) is
    // summed, a mean over targets (`cross_entropy`) weighted by them.
    let summary = |m: &axle::trainer::StepMetrics, name: &str| {
        m.summaries
            .iter()
            .find(|(path, _)| path.ends_with(name))
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no summary {name}: {:?}", m.summaries))
    };
    assert_eq!(summary(&split, "/num_targets"), 9.0);
    assert_eq!(summary(&whole, "/num_targets"), 9.0);
    assert!(close(
        summary(&whole, "/cross_entropy"),
        summary(&split, "/cross_entropy")
    ));
}

#[test]
fn custom_model_example_trains_with_the_stock_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "custom_model", "--"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let numbers: Vec<f64> = stdout
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|s| s.parse().ok())
        .collect();
    let (first, eval) = (numbers[0], numbers[1]);
    assert!(eval < first / 10.0, "{stdout}");
    assert!(dir.path().join("ckpt").read_dir().unwrap().count() > 0);
    assert!(dir.path().join("metrics.jsonl").exists());
}

/// Every registered experiment lowers on the default CPU client (4
/// devices, so the mesh rules pick `data=1,fsdp=4`) with no flag: its
/// batch splits over the mesh and every parameter's sharding is valid.
#[test]
fn every_experiment_lowers_with_no_flags() {
    for name in EXPERIMENT_NAMES {
        let setup = RunOptions {
            experiment: Some(name.into()),
            ..RunOptions::default()
        }
        .setup()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(setup.mesh.to_string(), "data=1,fsdp=4", "{name}");
        let step = build_train_step(
            setup.model.as_ref(),
            &setup.learner,
            &setup.shape,
            &setup.mesh,
            &setup.rules,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            step.function.to_stablehlo().contains("sdy.mesh @mesh"),
            "{name}"
        );
    }
}
