//! A run's failure modes on a small llama (1 layer, d 64): a step whose new
//! state is not finite stops the run before that state is saved; a
//! checkpoint directory is locked by the run using it; bad output paths and
//! stale temporary directories are dealt with before compiling; SIGTERM
//! saves a checkpoint at the next step boundary and exits 0; the watchdog
//! ends a hung run; background checkpoints equal foreground ones.

use axle::checkpoint::{self, CheckpointError, Checkpointer};
use axle::metrics::{Record, read_records};
use axle::run::{RunError, RunOptions, train, train_setup};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OVERRIDES: [&str; 4] = [
    "decoder.dim=64",
    "decoder.transformer.num_layers=1",
    "decoder.transformer.layers.0.feed_forward.hidden_dim=128",
    "decoder.vocab_size=256",
];

fn small(steps: u64) -> RunOptions {
    RunOptions {
        overrides: OVERRIDES.iter().map(|s| s.to_string()).collect(),
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        batch_size: Some(4),
        seq_len: Some(16),
        seed: Some(7),
        steps,
        eval_every: 0,
        ..RunOptions::default()
    }
}

#[test]
fn an_infinite_learning_rate_stops_before_non_finite_parameters_are_saved() {
    let dir = tempfile::tempdir().unwrap();
    let base = small(20);
    let options = RunOptions {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        checkpoint_every: 1,
        // Each value is finite in f32 (validation refuses 1e39), their
        // product 1e40 is not: the first update makes the parameters
        // infinite while the loss, measured before it, is still finite.
        overrides: [
            base.overrides.clone(),
            vec![
                "learner.schedule.lr=1e38".into(),
                r#"learner.param_groups=[{"paths":"*","lr_scale":100}]"#.into(),
            ],
        ]
        .concat(),
        ..base
    };
    let err = train(&options, |_| {}).unwrap_err();
    let RunError::NonFinite { step, what, .. } = &err else {
        panic!("expected a non-finite stop, got {err}");
    };
    assert!(what.contains("parameters"), "{err}");
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    let saved = Checkpointer::new(dir.path(), 3).list().unwrap();
    for (saved_step, path) in &saved {
        assert!(saved_step < step, "step {saved_step} saved, stop at {step}");
        let restored = checkpoint::load(path).unwrap();
        for (name, array) in restored.params.iter().chain(&restored.opt_state) {
            assert!(
                array.iter().all(|v| v.is_finite()),
                "{name} in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_checkpoint_directory_is_locked_by_the_run_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let held = Checkpointer::new(&ckpt, 1).lock().unwrap();
    // A second lock holder (its own open file, as another process's) is
    // refused, naming the directory.
    let err = Checkpointer::new(&ckpt, 1).lock().unwrap_err();
    assert!(matches!(err, CheckpointError::Locked { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&ckpt.display().to_string()), "{message}");
    assert!(message.contains("another run"), "{message}");
    let err = train(
        &RunOptions {
            checkpoint_dir: Some(ckpt.clone()),
            ..small(2)
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("another run"), "{err}");
    drop(held);
    // Released once dropped. Other tests of this binary spawn processes,
    // and a child between fork and exec briefly shares this process's open
    // lock file (it closes on exec), so allow it a few seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = Checkpointer::new(&ckpt, 1).lock() {
        assert!(Instant::now() < deadline, "{e}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_output_paths_are_refused_and_stale_saves_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let err = train(
        &RunOptions {
            checkpoint_dir: Some(file.clone()),
            ..small(2)
        },
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Checkpoint(CheckpointError::NotADirectory { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("a-file"), "{err}");
    for options in [
        RunOptions {
            metrics: Some(file.join("metrics.jsonl")),
            ..small(2)
        },
        RunOptions {
            summaries: Some(file.join("tb")),
            ..small(2)
        },
    ] {
        let err = train(&options, |_| {}).unwrap_err();
        assert!(err.to_string().contains("a-file"), "{err}");
    }
    // A save that a dead process left unfinished is removed when a run
    // takes the directory.
    let ckpt = dir.path().join("ckpt");
    let stale = ckpt.join(".tmp-step_0000000004-4000000000");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("params.safetensors"), "half").unwrap();
    let _lock = Checkpointer::new(&ckpt, 1).lock().unwrap();
    assert!(!stale.exists());
    // A checkpoint's own step directory (it holds meta.json), or a path
    // inside one, is not a run's checkpoint directory.
    let step = ckpt.join("step_0000000002");
    std::fs::create_dir_all(&step).unwrap();
    std::fs::write(step.join("meta.json"), "{}").unwrap();
    for inside in [step.clone(), step.join("nested")] {
        let err = Checkpointer::new(&inside, 1).lock().unwrap_err();
        assert!(
            matches!(err, CheckpointError::InsideCheckpoint { .. })
                && err.to_string().contains(&*ckpt.to_string_lossy()),
            "{err}"
        );
    }
}

fn axle(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_axle"));
    command.arg("train").args([
        "--mesh",
        "data=1",
        "--cpu-devices",
        "1",
        "--batch-size",
        "4",
        "--seq-len",
        "16",
        "--seed",
        "7",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "1000000000",
    ]);
    for o in OVERRIDES {
        command.args(["--set", o]);
    }
    command
        .arg("--checkpoint-dir")
        .arg(dir.join("ckpt"))
        .arg("--metrics")
        .arg(dir.join("metrics.jsonl"))
        .args(extra);
    command
}

fn train_steps(dir: &Path) -> Vec<u64> {
    read_records(&dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .iter()
        .filter(|r| matches!(r, Record::Train { .. }))
        .map(Record::step)
        .collect()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads the child's stderr on a thread (so it never blocks on a full
/// pipe), passing lines to `lines`; the thread returns all of it.
fn drain_stderr(
    child: &mut Child,
    lines: std::sync::mpsc::Sender<String>,
) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    })
}

#[test]
fn sigterm_saves_a_checkpoint_at_the_next_step_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = axle(dir.path(), &["--steps", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, _rx) = std::sync::mpsc::channel();
    let stderr = drain_stderr(&mut child, tx);
    let start = Instant::now();
    while train_steps(dir.path()).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no steps in 300 s"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second run on the same directory is refused while this one holds it.
    let second = axle(dir.path(), &["--steps", "100000", "--resume"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("another run holds its lock"), "{message}");
    assert!(message.contains("ckpt"), "{message}");

    signal(&child, "TERM");
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    let last = *train_steps(dir.path()).last().unwrap();
    let saver = Checkpointer::new(dir.path().join("ckpt"), 1);
    let saved: Vec<u64> = saver.list().unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(saved, [last], "{stderr}");
    assert!(
        stderr.contains(&format!(
            "saved checkpoint {}",
            saver.latest().unwrap().unwrap().display()
        )),
        "{stderr}"
    );

    let steps = (last + 2).to_string();
    let resumed = axle(dir.path(), &["--steps", &steps, "--resume"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{message}");
    let all: Vec<u64> = train_steps(dir.path());
    assert_eq!(all, (1..=last + 2).collect::<Vec<_>>());
    assert_eq!(saver.list().unwrap().last().unwrap().0, last + 2);
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = axle(dir.path(), &["--steps", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = drain_stderr(&mut child, tx);
    // The handlers are in place once this line is printed; compiling the
    // step takes far longer than the two signals.
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(first.starts_with("training"), "{first}");
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "INT");
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(train_steps(dir.path()).is_empty(), "{stderr}");
}

/// A model whose parameters and optimizer state cannot fit in host memory
/// (llama2-70b: 69e9 parameters, 828 GB as f32 with AdamW's two moments) is
/// refused with the sizes, before anything is compiled or allocated.
#[test]
fn a_model_too_large_for_host_memory_is_refused_before_compiling() {
    let options = RunOptions {
        experiment: Some("llama2-70b".into()),
        steps: 1,
        eval_every: 0,
        ..RunOptions::default()
    };
    let err = train(&options, |_| {}).unwrap_err();
    assert!(matches!(err, RunError::HostMemory { .. }), "{err}");
    assert!(err.to_string().contains("GiB of host memory"), "{err}");
}

/// Config sizes whose arrays overflow XLA's `i64` element count (a
/// vocabulary of 2^64 - 1, a width of 2^62 whose square is 2^124) are
/// refused before anything is built, naming the array, instead of an
/// arithmetic-overflow panic.
#[test]
fn sizes_beyond_xla_are_refused_naming_the_array() {
    for (set, array) in [
        (
            "decoder.vocab_size=18446744073709551615",
            "parameter decoder/",
        ),
        ("decoder.dim=4611686018427387904", "parameter decoder/"),
    ] {
        let mut options = small(1);
        options.overrides.push(set.into());
        let err = train(&options, |_| {}).unwrap_err();
        assert!(matches!(err, RunError::InvalidOption(_)), "{set}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(array) && text.contains("more elements than XLA can address"),
            "{set}: {text}"
        );
    }
}

/// A train step that compiles but needs more memory per device than the
/// limit is refused after compiling and before placing anything: no
/// checkpoint and no metrics are written, and the error names the
/// experiment, mesh, need and limit. The need is the larger of XLA's peak
/// and arguments + outputs − aliased + temporaries (`axle plan`'s figure;
/// the CPU plugin's peak leaves out the temporaries, so a limit at the
/// peak is refused when the sum is larger); the arguments it counts are exactly the parameters
/// and AdamW's two moments as f32 (12 bytes per parameter, counted from the
/// model's specs), AdamW's i32 step count, the batch's i32 input ids and
/// targets (2 x 4 x 16) and the two-i64 RNG key. With the limit at exactly
/// the need, the same setup trains.
#[test]
fn a_step_too_large_for_device_memory_is_refused_before_placing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint_dir: Some(dir.path().join("ckpt")),
        checkpoint_every: 1,
        metrics: Some(dir.path().join("metrics.jsonl")),
        ..small(2)
    };
    let mut setup = options.setup().unwrap();
    setup.device_memory_limit = Some(1 << 10);
    let err = train_setup(&setup, &options, |_| {}).unwrap_err();
    let RunError::DeviceMemory(shortfall) = &err else {
        panic!("{err}");
    };
    let (needed, stats, limit) = (&shortfall.needed, &shortfall.stats, &shortfall.limit);
    assert_eq!(*limit, 1 << 10);
    let params: u64 = setup
        .model
        .param_specs()
        .values()
        .map(|s| s.num_elements())
        .sum();
    assert_eq!(
        stats.arguments as u64,
        12 * params + 4 + 2 * 4 * 16 * 4 + 2 * 8,
        "{stats:?}, {params} parameters"
    );
    // Closed form from the reported fields, exact (integers).
    let sum = stats.arguments + stats.outputs - stats.alias + stats.temp;
    assert_eq!(*needed, stats.peak.max(sum) as u64, "{stats:?}");
    assert!(stats.temp > 0, "{stats:?}");
    let message = err.to_string();
    for part in [
        "llama-tiny on mesh data=1",
        "compiled train step needs",
        "per device",
        "1024 bytes (1.0 KiB)",
        "axle plan",
        "remat",
        "fsdp",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(
        Checkpointer::new(dir.path().join("ckpt"), 1)
            .list()
            .unwrap()
            .is_empty()
    );
    assert!(train_steps(dir.path()).is_empty());

    // The CPU plugin's peak leaves out the temporaries: a limit at the
    // peak is short of the sum, and refused.
    assert!(stats.peak < sum, "{stats:?}");
    setup.device_memory_limit = Some(stats.peak as u64);
    let err = train_setup(&setup, &options, |_| {}).unwrap_err();
    assert!(matches!(err, RunError::DeviceMemory(_)), "{err}");
    setup.device_memory_limit = Some(*needed);
    let options = RunOptions {
        overwrite: true,
        ..options
    };
    train_setup(&setup, &options, |_| {}).unwrap();
    assert_eq!(train_steps(dir.path()), [1, 2]);
}

/// `AXLE_DEVICE_MEMORY_LIMIT` overrides the detected limit of `axle train`
/// (a process of its own, so the variable reaches no other test); a value
/// that is not a number of bytes is refused, naming the variable (checked
/// before the plugin is loaded); an empty value is unset. Sizes below 1 KiB print
/// in bytes alone, never "0.0 MiB".
#[test]
fn the_device_memory_limit_variable_is_read_and_checked() {
    assert_eq!(axle::run::show_bytes(1000), "1000 bytes");
    assert_eq!(axle::run::show_bytes(1536), "1536 bytes (1.5 KiB)");
    assert_eq!(axle::run::show_bytes(3 << 20), "3145728 bytes (3.0 MiB)");
    let dir = tempfile::tempdir().unwrap();
    let output = axle(dir.path(), &["--steps", "1"])
        .env("AXLE_DEVICE_MEMORY_LIMIT", "1000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("more than the 1000 bytes of AXLE_DEVICE_MEMORY_LIMIT"),
        "{stderr}"
    );
    let output = axle(dir.path(), &["--steps", "1"])
        .env("AXLE_DEVICE_MEMORY_LIMIT", "16GB")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("AXLE_DEVICE_MEMORY_LIMIT=16GB: expected a positive number of bytes"),
        "{stderr}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let output = axle(fresh.path(), &["--steps", "1"])
        .env("AXLE_DEVICE_MEMORY_LIMIT", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

/// A step that runs past `--step-timeout` (here every step: 1 ms is far
/// below the ~50 ms of one step of this model) ends the process with status
/// 124 and a line naming the activity and the step, instead of waiting.
#[test]
fn the_watchdog_ends_a_run_whose_step_exceeds_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let output = axle(dir.path(), &["--steps", "5", "--step-timeout", "0.001"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(axle::run::TIMEOUT_EXIT_CODE),
        "{stderr}"
    );
    assert!(
        stderr.contains("watchdog: train step of step 1 has run for"),
        "{stderr}"
    );
}

/// Checkpoints written in the background hold exactly what the foreground
/// writes: every tensor of every kept step bitwise equal, and the same steps
/// kept.
#[test]
fn background_checkpoints_equal_foreground_ones() {
    let run = |async_checkpoints: bool| {
        let dir = tempfile::tempdir().unwrap();
        let options = RunOptions {
            checkpoint_dir: Some(dir.path().join("ckpt")),
            checkpoint_every: 1,
            keep: 2,
            async_checkpoints,
            ..small(4)
        };
        train(&options, |_| {}).unwrap();
        let saver = Checkpointer::new(dir.path().join("ckpt"), 2);
        let kept = saver.list().unwrap();
        let loaded: Vec<_> = kept
            .iter()
            .map(|(step, path)| {
                let c = checkpoint::load(path).unwrap();
                (*step, c.params, c.opt_state)
            })
            .collect();
        (dir, loaded)
    };
    let (_a, background) = run(true);
    let (_b, foreground) = run(false);
    assert_eq!(
        background.iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(background, foreground);
}

/// `axle checkpoints` on a missing directory says it does not exist, on one
/// with no checkpoint says so, exiting 1 either way, rather than reporting
/// nothing as "all good"; a step timeout too large for a duration is a
/// usage error, not a panic;
/// `--sync-checkpoints` without a checkpoint directory is refused.
#[test]
fn cli_refusals_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["checkpoints", "--checkpoint-dir"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing does not exist"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["checkpoints", "--checkpoint-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no checkpoint in"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["train", "--steps", "1", "--sync-checkpoints"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("need a checkpoint directory"), "{stderr}");
    let output = axle(dir.path(), &["--steps", "1", "--step-timeout", "1e300"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("fits a duration"), "{stderr}");
}
