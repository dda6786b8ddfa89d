//! Resuming continues the run its checkpoint recorded and refuses what
//! would mix two runs: a different data file, a fresh run into a used
//! checkpoint directory or metrics file, a checkpoint with tensors the
//! model does not have. A one-layer, 64-wide llama-tiny keeps each run to
//! seconds.

use axle::checkpoint::{self, Checkpointer};
use axle::metrics::read_records;
use axle::run::{RunError, RunOptions, train};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

fn small(dir: &Path, steps: u64) -> RunOptions {
    RunOptions {
        modifiers: vec!["qk_norm".into()],
        overrides: vec![
            "decoder.dim=64".into(),
            "decoder.transformer.num_layers=1".into(),
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128".into(),
            "decoder.vocab_size=256".into(),
        ],
        mesh: Some("data=1".into()),
        xla_options: vec!["xla_cpu_enable_fast_math=false".into()],
        cpu_devices: Some(1),
        batch_size: Some(4),
        seq_len: Some(16),
        seed: Some(7),
        steps,
        eval_every: 0,
        checkpoint_every: 2,
        checkpoint_dir: Some(dir.join("ckpt")),
        metrics: Some(dir.join("metrics.jsonl")),
        ..RunOptions::default()
    }
}

/// Only the directory and `--resume`: the recorded experiment, modifiers,
/// overrides, data and seed.
fn bare_resume(dir: &Path, steps: u64) -> RunOptions {
    RunOptions {
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        resume: true,
        steps,
        eval_every: 0,
        checkpoint_every: 2,
        checkpoint_dir: Some(dir.join("ckpt")),
        metrics: Some(dir.join("metrics.jsonl")),
        ..RunOptions::default()
    }
}

fn text_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("text.txt");
    let text: String = (0..4000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bare_resume_continues_the_recorded_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let straight_dir = tmp.path().join("straight");
    let split_dir = tmp.path().join("split");
    let data = text_file(tmp.path());
    let with_data = |o: RunOptions| RunOptions {
        data: Some(data.clone()),
        ..o
    };
    let straight = train(&with_data(small(&straight_dir, 6)), |_| {}).unwrap();
    train(&with_data(small(&split_dir, 4)), |_| {}).unwrap();
    // The newest checkpoint (step 4) is lost: the run resumes at step 2,
    // and the metrics of steps 3 and 4 written after it are dropped.
    let ckpt = Checkpointer::new(split_dir.join("ckpt"), 1);
    std::fs::remove_dir_all(ckpt.latest().unwrap().unwrap()).unwrap();
    let resumed = train(&bare_resume(&split_dir, 6), |_| {}).unwrap();
    assert_eq!(resumed.losses, straight.losses[2..], "bitwise");
    let steps: Vec<u64> = read_records(&split_dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| r.step())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
    let meta = checkpoint::load_meta(&ckpt.latest().unwrap().unwrap()).unwrap();
    assert_eq!(meta.run["modifiers"], r#"["qk_norm"]"#);
    // Written by the resumed run, which applies only its own XLA options (none): the first
    // run's belong to its hardware.
    assert_eq!(meta.run["xla_options"], "[]");
    let first = checkpoint::load_meta(&split_dir.join("ckpt/step_0000000002")).unwrap();
    assert_eq!(
        first.run["xla_options"],
        r#"["xla_cpu_enable_fast_math=false"]"#
    );
    assert!(meta.run["data"].ends_with("text.txt"), "{:?}", meta.run);
}

#[test]
fn resuming_on_other_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = text_file(tmp.path());
    train(&small(tmp.path(), 2), |_| {}).unwrap();
    let other = RunOptions {
        data: Some(data),
        ..bare_resume(tmp.path(), 4)
    };
    let err = train(&other, |_| {}).unwrap_err();
    assert!(matches!(err, RunError::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("checkpoint: data = the synthetic task") && text.contains("text.txt"),
        "{text}"
    );
}

/// A data file changed in place since the checkpoint is refused on
/// resume, naming it (its CRC-32 differs from the recorded one); a missing
/// one is named as missing; the same bytes moved elsewhere (`--data
/// NEWPATH`) resume.
#[test]
fn resuming_on_a_changed_data_file_is_refused_a_moved_one_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = text_file(tmp.path());
    let with_data = RunOptions {
        data: Some(data.clone()),
        ..small(tmp.path(), 2)
    };
    train(&with_data, |_| {}).unwrap();
    let original = std::fs::read(&data).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 1;
    std::fs::write(&data, &changed).unwrap();
    let err = train(&bare_resume(tmp.path(), 4), |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("data file {} changed", data.display())),
        "{err}"
    );
    let moved = tmp.path().join("moved.txt");
    std::fs::write(&moved, &original).unwrap();
    std::fs::remove_file(&data).unwrap();
    let err = train(&bare_resume(tmp.path(), 4), |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("data file {} is missing", data.display())) && err.contains("--data"),
        "{err}"
    );
    let resume = RunOptions {
        data: Some(moved),
        ..bare_resume(tmp.path(), 4)
    };
    assert_eq!(train(&resume, |_| {}).unwrap().steps_done, 4);
}

/// A seed given with `--resume` must be the checkpoint's (it orders the
/// data and draws the dropout): another is refused naming both, by
/// evaluation too, as another batch size is; the same seed continues the
/// run as a bare resume does, bitwise.
#[test]
fn resuming_with_another_seed_is_refused_the_same_seed_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = train(&small(&tmp.path().join("straight"), 4), |_| {}).unwrap();
    train(&small(tmp.path(), 2), |_| {}).unwrap();
    let other = RunOptions {
        seed: Some(8),
        ..bare_resume(tmp.path(), 4)
    };
    let err = train(&other, |_| {}).unwrap_err();
    assert!(matches!(err, RunError::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("checkpoint: seed = 7") && text.contains("this run:   seed = 8"),
        "{text}"
    );
    let err = axle::run::evaluate(&other, None).unwrap_err();
    assert!(err.to_string().contains("seed = 8"), "{err}");
    // The batch size too is the recorded one's or refused, naming both.
    let wider = RunOptions {
        batch_size: Some(8),
        ..bare_resume(tmp.path(), 4)
    };
    let err = train(&wider, |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("checkpoint: input.batch_size = 4")
            && text.contains("this run:   input.batch_size = 8"),
        "{text}"
    );
    let same = RunOptions {
        seed: Some(7),
        ..bare_resume(tmp.path(), 4)
    };
    let resumed = train(&same, |_| {}).unwrap();
    assert_eq!(resumed.losses, straight.losses[2..], "bitwise");
}

/// Evaluation reads parameters only: with the newest checkpoint's
/// optimizer state file deleted it gives the loss the training run's own
/// evaluation of the same parameters gave, exactly (the same compiled
/// program on the same f32 parameters and batches). Resuming from that
/// checkpoint is refused, naming it; `axle checkpoints` lists it as
/// parameters only; a damaged parameter file is still refused by
/// evaluation.
#[test]
fn evaluation_needs_no_optimizer_state_and_resuming_does() {
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions {
        eval_every: 2,
        eval_batches: 2,
        ..small(tmp.path(), 2)
    };
    let trained = train(&options, |_| {}).unwrap();
    let latest = Checkpointer::new(tmp.path().join("ckpt"), 1)
        .latest()
        .unwrap()
        .unwrap();
    std::fs::remove_file(latest.join("opt_state.safetensors")).unwrap();
    let eval = axle::run::evaluate(&bare_resume(tmp.path(), 2), None).unwrap();
    assert_eq!(eval.step, 2);
    assert_eq!(vec![(2, eval.report.loss)], trained.eval_losses);

    let err = train(&bare_resume(tmp.path(), 4), |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("holds no optimizer state") && text.contains(&*latest.to_string_lossy()),
        "{text}"
    );

    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["checkpoints", "--checkpoint-dir"])
        .arg(tmp.path().join("ckpt"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{stdout}");
    assert!(stdout.contains("step 2  ok, parameters only"), "{stdout}");

    let params = latest.join("params.safetensors");
    let mut bytes = std::fs::read(&params).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&params, bytes).unwrap();
    let err = axle::run::evaluate(&bare_resume(tmp.path(), 2), None).unwrap_err();
    assert!(err.to_string().contains("CRC-32"), "{err}");
}

#[test]
fn a_fresh_run_into_a_used_directory_or_metrics_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    train(&small(tmp.path(), 2), |_| {}).unwrap();
    let err = train(&small(tmp.path(), 2), |_| {}).unwrap_err();
    assert!(matches!(err, RunError::CheckpointDirInUse { .. }), "{err}");
    assert!(err.to_string().contains("--resume"), "{err}");
    let elsewhere = RunOptions {
        checkpoint_dir: Some(tmp.path().join("other")),
        ..small(tmp.path(), 2)
    };
    let err = train(&elsewhere, |_| {}).unwrap_err();
    assert!(err.to_string().contains("metrics.jsonl"), "{err}");
    assert!(err.to_string().contains("earlier run"), "{err}");
}

/// `--resume --metrics FILE` with the metrics file of another run (seed 8,
/// so its step-2 loss differs from the one the checkpoint recorded) is
/// refused, naming the file, which is left byte for byte as it was rather
/// than cut after step 2.
#[test]
fn resuming_with_another_runs_metrics_file_is_refused_uncut() {
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
    train(&small(&ours, 2), |_| {}).unwrap();
    let other = RunOptions {
        seed: Some(8),
        checkpoint_dir: None,
        ..small(&theirs, 4)
    };
    train(&other, |_| {}).unwrap();
    let their_metrics = theirs.join("metrics.jsonl");
    let before = std::fs::read(&their_metrics).unwrap();
    let resume = RunOptions {
        metrics: Some(their_metrics.clone()),
        ..bare_resume(&ours, 4)
    };
    let err = train(&resume, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains(&their_metrics.display().to_string())
            && err.contains("belongs to another run"),
        "{err}"
    );
    assert_eq!(std::fs::read(&their_metrics).unwrap(), before);
}

/// `overwrite` replaces the earlier run: its later checkpoints are gone
/// (not kept by pruning as "newer"), and the metrics file holds only the
/// new run's steps.
#[test]
fn overwrite_replaces_an_earlier_run() {
    let tmp = tempfile::tempdir().unwrap();
    let summaries = tmp.path().join("tb");
    let with_summaries = |o: RunOptions| RunOptions {
        summaries: Some(summaries.clone()),
        ..o
    };
    train(&with_summaries(small(tmp.path(), 4)), |_| {}).unwrap();
    let events = || {
        let mut names: Vec<String> = std::fs::read_dir(&summaries)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("events.out.tfevents."))
            .collect();
        names.sort();
        names
    };
    let before = (
        read_records(&tmp.path().join("metrics.jsonl")).unwrap(),
        events(),
    );
    // An overwrite whose step does not compile replaces nothing of the earlier run.
    let failing = RunOptions {
        overwrite: true,
        xla_options: vec!["xla_cpu_no_such_option_in_axle=true".into()],
        ..with_summaries(small(tmp.path(), 2))
    };
    let err = train(&failing, |_| {}).unwrap_err().to_string();
    assert!(err.contains("xla_cpu_no_such_option_in_axle"), "{err}");
    let after = (
        read_records(&tmp.path().join("metrics.jsonl")).unwrap(),
        events(),
    );
    assert_eq!(before, after);
    assert_eq!(
        Checkpointer::new(tmp.path().join("ckpt"), 1)
            .list()
            .unwrap()
            .len(),
        2
    );
    let again = RunOptions {
        overwrite: true,
        ..small(tmp.path(), 2)
    };
    train(&again, |_| {}).unwrap();
    let steps: Vec<u64> = Checkpointer::new(tmp.path().join("ckpt"), 1)
        .list()
        .unwrap()
        .iter()
        .map(|(step, _)| *step)
        .collect();
    assert_eq!(steps, [2]);
    let records = read_records(&tmp.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        records.iter().map(|r| r.step()).max(),
        Some(2),
        "{records:?}"
    );
    let both = RunOptions {
        resume: true,
        ..again
    };
    let err = train(&both, |_| {}).unwrap_err();
    assert!(err.to_string().contains("contradict"), "{err}");
}

#[test]
fn a_checkpoint_with_tensors_the_model_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    train(&small(tmp.path(), 2), |_| {}).unwrap();
    let setup = small(tmp.path(), 2).setup().unwrap();
    let mut trainer = setup.trainer(0).unwrap();
    let ckpt = Checkpointer::new(tmp.path().join("ckpt"), 1);
    let mut restored = checkpoint::load(&ckpt.latest().unwrap().unwrap()).unwrap();
    let extra = "decoder/transformer/layers/1/attention/q_proj/weight";
    restored
        .params
        .insert(extra.into(), ArrayD::zeros(IxDyn(&[64, 64])));
    let err = trainer.restore(&restored).unwrap_err().to_string();
    assert!(err.contains(extra), "{err}");
}

#[test]
fn loop_options_that_cannot_work_are_refused_not_coerced() {
    let tmp = tempfile::tempdir().unwrap();
    for (options, want) in [
        (
            RunOptions {
                keep: 0,
                ..small(tmp.path(), 2)
            },
            "keep",
        ),
        (
            RunOptions {
                checkpoint_every: 0,
                ..small(tmp.path(), 2)
            },
            "checkpoint_every",
        ),
        (
            RunOptions {
                eval_batches: 0,
                ..small(tmp.path(), 2)
            },
            "eval_batches",
        ),
        (
            RunOptions {
                resume: true,
                checkpoint_dir: None,
                ..small(tmp.path(), 2)
            },
            "resume needs a checkpoint directory",
        ),
    ] {
        let err = train(&options, |_| {}).unwrap_err();
        assert!(matches!(err, RunError::InvalidOption(_)), "{err}");
        assert!(err.to_string().contains(want), "{err}");
    }
}

/// A checkpoint moves between an unrolled and a scanned stack: restored
/// into a scanned trainer and saved again, then restored into an unrolled
/// one and saved again, every tensor is bitwise what the unrolled run
/// wrote; and a run resumed with the stack scanned is accepted (the layout
/// is not a model change) and continues the unrolled run's losses to 1e-5
/// relative (the same arithmetic, fused differently by XLA inside a loop).
#[test]
fn checkpoints_move_between_unrolled_and_scanned_stacks() {
    let tmp = tempfile::tempdir().unwrap();
    let two_layers = |dir: &Path, scan: bool, steps: u64| {
        let mut options = small(dir, steps);
        options
            .overrides
            .push("decoder.transformer.num_layers=2".into());
        options
            .overrides
            .push(format!("decoder.transformer.scan={scan}"));
        options
    };
    train(&two_layers(tmp.path(), false, 2), |_| {}).unwrap();
    let saved = checkpoint::load(&tmp.path().join("ckpt/step_0000000002")).unwrap();
    assert!(saved.params.keys().any(|k| k.contains("/layers/1/")));
    let round_trip = |scan: bool, from: &checkpoint::Checkpoint| {
        let setup = two_layers(tmp.path(), scan, 2).setup().unwrap();
        let mut trainer = setup.trainer(0).unwrap();
        trainer.restore(from).unwrap();
        trainer.checkpoint(from.meta.clone()).unwrap()
    };
    let scanned = round_trip(true, &saved);
    assert!(scanned.params.keys().any(|k| k.contains("/layer/")));
    assert!(!scanned.params.keys().any(|k| k.contains("/layers/")));
    let back = round_trip(false, &scanned);
    assert_eq!(back.params, saved.params);
    assert_eq!(back.opt_state, saved.opt_state);

    let other = tempfile::tempdir().unwrap();
    copy_dir(&tmp.path().join("ckpt"), &other.path().join("ckpt"));
    let resume = |dir: &Path, scan: bool| {
        let options = RunOptions {
            resume: true,
            ..two_layers(dir, scan, 4)
        };
        train(&options, |_| {}).unwrap().losses
    };
    let unrolled = resume(tmp.path(), false);
    let scanned = resume(other.path(), true);
    assert_eq!(unrolled.len(), 2);
    for (a, b) in unrolled.iter().zip(&scanned) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() <= 1e-5 * a.1.abs(), "{a:?} vs {b:?}");
    }
}

/// A run that no longer fits resumes with what the memory check suggests:
/// `--modifier remat=full` and `learner.micro_batches=2` change the traced
/// program, not what the parameters mean, so the checkpoint is accepted
/// and the losses continue those of the original program to 1e-5 relative
/// (the same arithmetic; recomputation and the accumulation loop are fused
/// and summed in another order by XLA). A model change is still refused.
#[test]
fn a_run_resumes_with_another_remat_policy_and_micro_batch_count() {
    let tmp = tempfile::tempdir().unwrap();
    train(&small(tmp.path(), 2), |_| {}).unwrap();
    let other = tempfile::tempdir().unwrap();
    copy_dir(&tmp.path().join("ckpt"), &other.path().join("ckpt"));
    let plain = train(
        &RunOptions {
            resume: true,
            ..small(tmp.path(), 4)
        },
        |_| {},
    )
    .unwrap()
    .losses;
    let mut changed = RunOptions {
        resume: true,
        ..small(other.path(), 4)
    };
    changed.modifiers.push("remat=full".into());
    changed.overrides.push("learner.micro_batches=2".into());
    let rematted = train(&changed, |_| {}).unwrap().losses;
    assert_eq!(plain.len(), 2);
    for (a, b) in plain.iter().zip(&rematted) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() <= 1e-5 * a.1.abs(), "{a:?} vs {b:?}");
    }
    let mut wider = RunOptions {
        resume: true,
        ..small(other.path(), 6)
    };
    wider.overrides.push("decoder.dim=32".into());
    let err = train(&wider, |_| {}).unwrap_err();
    assert!(matches!(err, RunError::Mismatch { .. }), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `--resume` into a directory without a checkpoint: with no experiment it
/// is refused (there is no recorded run to continue), with one it starts
/// that experiment at step 0.
#[test]
fn resuming_where_there_is_no_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let err = train(&bare_resume(tmp.path(), 2), |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("holds no checkpoint to resume"),
        "{err}"
    );
    let started = RunOptions {
        resume: true,
        experiment: Some("llama-tiny".into()),
        ..small(tmp.path(), 2)
    };
    let summary = train(&started, |_| {}).unwrap();
    assert_eq!(summary.steps_done, 2);
    // Only the metrics file is left: the refusal does not suggest --resume.
    std::fs::remove_dir_all(tmp.path().join("ckpt")).unwrap();
    let err = train(&started, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("metrics.jsonl")
            && err.contains("no checkpoint to continue them from")
            && !err.contains("resume that run"),
        "{err}"
    );
}
