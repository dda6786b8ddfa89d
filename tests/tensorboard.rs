//! TensorBoard event files written by `axle::summary_writer`, read back by
//! TensorBoard itself: `tests/tensorboard_read.py` runs TensorBoard's record
//! reader (which checks every record's CRCs) and its `EventAccumulator`, with
//! the packages pinned in `third_party/tensorboard-requirements.txt`, which
//! `scripts/test.sh` installs.

use axle::summary_writer::{EarlierEvents, SummaryWriter};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the reader on `path`: its JSON report, or its stderr when it fails.
fn tensorboard_read(path: &Path) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard_read.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "{stderr}\ninstall the reader: python3 -m pip install --no-deps --require-hashes \
         -r third_party/tensorboard-requirements.txt"
    );
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("the reader prints JSON"))
    } else {
        Err(stderr)
    }
}

/// Writes a file with the version event and three scalars over two steps.
fn write_sample(dir: &Path) -> PathBuf {
    let mut writer = SummaryWriter::create(dir).unwrap();
    writer.scalar("loss", 1, 6.93).unwrap();
    writer
        .scalars(
            2,
            &[
                ("loss".to_string(), 5.5),
                ("learning_rate".to_string(), 1e-3),
            ],
        )
        .unwrap();
    writer.flush().unwrap();
    writer.path().to_path_buf()
}

#[test]
fn tensorboard_reads_the_scalars_by_tag_and_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/summaries");
    let path = write_sample(&dir);

    assert_eq!(path.parent(), Some(dir.as_path()));
    let name = path.file_name().unwrap().to_str().unwrap();
    let rest = name.strip_prefix("events.out.tfevents.").unwrap();
    let (secs, rest) = rest.split_once('.').unwrap();
    assert!(
        secs.len() >= 10 && secs.bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
    let pid = format!(".{}.axle", std::process::id());
    let host = rest.strip_suffix(&pid).unwrap_or_else(|| panic!("{name}"));
    assert!(!host.is_empty(), "{name}");

    let report = tensorboard_read(&path).unwrap();
    assert_eq!(report["records"], 3, "{report}");
    assert_eq!(report["file_version"], 2.0, "{report}");
    let scalars: Vec<(String, u64, f32)> = report["scalars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tag = s[0].as_str().unwrap().to_string();
            (tag, s[1].as_u64().unwrap(), s[2].as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(
        scalars,
        [
            ("learning_rate".to_string(), 2, 1e-3),
            ("loss".to_string(), 1, 6.93),
            ("loss".to_string(), 2, 5.5),
        ]
    );
}

#[test]
fn tensorboard_refuses_a_corrupted_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_sample(tmp.path());
    let clean = std::fs::read(&path).unwrap();
    let tag_at = clean
        .windows(b"learning_rate".len())
        .position(|w| w == b"learning_rate")
        .unwrap();
    // The last record's data (its tag), then the first record's length.
    for (at, check) in [(tag_at, "event crc32"), (0, "header crc32")] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let err = tensorboard_read(&path).unwrap_err();
        assert!(
            err.contains("DataLossError") && err.contains(check),
            "byte {at} flipped: {err}"
        );
    }
}

#[test]
fn an_unwritable_directory_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory below a regular file cannot be created, even by root.
    let file = tmp.path().join("not_a_dir");
    std::fs::write(&file, b"").unwrap();
    let dir = file.join("summaries");
    let err = SummaryWriter::create(&dir).err().unwrap();
    assert_eq!(err.path, dir);
    assert!(err.to_string().contains(&*dir.to_string_lossy()), "{err}");
}

/// The event files in `dir` (TensorBoard's `tfevents` names), sorted.
fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    files.sort();
    files
}

/// A training run's summaries directory is locked while its writer lives;
/// a fresh run refuses earlier event files, naming one; `--overwrite`
/// removes only axle's own (`*.axle`) and refuses another writer's; a
/// resumed run keeps them.
#[test]
fn a_runs_summaries_directory_is_locked_and_earlier_events_dealt_with() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tb");
    let first = SummaryWriter::for_run(&dir, EarlierEvents::Refuse).unwrap();
    let ours = first.path().to_path_buf();
    let err = SummaryWriter::for_run(&dir, EarlierEvents::Keep)
        .err()
        .unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    // Released once dropped. Other tests of this binary spawn processes,
    // and a child between fork and exec briefly shares this process's open
    // lock file (it closes on exec), so "in use" may last a moment.
    let for_run = |earlier: EarlierEvents| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match SummaryWriter::for_run(&dir, earlier) {
                Err(e) if e.to_string().contains("in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                result => return result,
            }
        }
    };
    let err = for_run(EarlierEvents::Refuse).err().unwrap();
    assert_eq!(err.path, ours);
    assert!(err.to_string().contains("earlier run"), "{err}");
    let kept = for_run(EarlierEvents::Keep).unwrap();
    assert!(ours.exists());
    let resumed = kept.path().to_path_buf();
    drop(kept);
    let foreign = dir.join("events.out.tfevents.1.host.tf");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, b"kept").unwrap();
    let replaced = for_run(EarlierEvents::RemoveOwn).unwrap();
    // The new file may take a removed one's name (same second and process).
    assert_eq!(event_files(&dir), [replaced.path()]);
    assert!(resumed != ours && notes.exists());
    drop(replaced);
    std::fs::write(&foreign, b"").unwrap();
    let err = for_run(EarlierEvents::RemoveOwn).err().unwrap();
    assert_eq!(err.path, foreign);
    assert!(err.to_string().contains("not axle's"), "{err}");
}

/// `axle train --summaries DIR`: every metrics line's numbers reach the
/// event file, tagged `train/...` and `eval/...`, at their steps, equal to
/// the JSON metrics up to the f32 rounding of `simple_value` (relative
/// 1e-7; f32 has a 6e-8 unit roundoff).
#[test]
fn training_writes_its_metrics_and_summaries_to_tensorboard() {
    use axle::metrics::read_records;
    use axle::run::{RunOptions, train};
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions {
        experiment: Some("vit-tiny".into()),
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        steps: 4,
        eval_every: 2,
        metrics: Some(tmp.path().join("metrics.jsonl")),
        summaries: Some(tmp.path().join("tb")),
        ..RunOptions::default()
    };
    train(&options, |_| {}).unwrap();
    let files = event_files(&tmp.path().join("tb"));
    assert_eq!(files.len(), 1, "{files:?}");
    let report = tensorboard_read(&files[0]).unwrap();
    let scalars: Vec<(String, u64, f64)> = report["scalars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tag = s[0].as_str().unwrap().to_string();
            (tag, s[1].as_u64().unwrap(), s[2].as_f64().unwrap())
        })
        .collect();
    let mut checked = 0;
    for record in read_records(&tmp.path().join("metrics.jsonl")).unwrap() {
        let (step, values) = record.scalars();
        for (tag, want) in values {
            let got = scalars
                .iter()
                .find(|(t, s, _)| *t == tag && *s == step)
                .unwrap_or_else(|| panic!("no {tag} at step {step} in {scalars:?}"))
                .2;
            assert!(
                (got - want).abs() <= 1e-7 * want.abs().max(1e-30),
                "{tag}@{step}: {got} vs {want}"
            );
            checked += 1;
        }
    }
    assert_eq!(scalars.len(), checked);
    for tag in ["train/loss", "train/accuracy", "eval/accuracy", "eval/loss"] {
        assert!(scalars.iter().any(|(t, _, _)| t == tag), "{tag} missing");
    }
}

/// A run killed after step 5 whose newest checkpoint is step 4 (step 5's
/// save removed, as a kill before it would leave it), resumed to step 6:
/// the summaries directory then holds the first run's file (steps 1-5) and
/// the resumed run's (a `SessionLog` START at step 5, then steps 5-6).
/// TensorBoard reads one value per tag and step, and they are the metrics
/// file's after the resume (which drops the first run's step 5): the
/// first run's through step 4 (its step-4 evaluation included) and the
/// resumed run's after it (its own step times). Values agree to the f32
/// rounding of `simple_value` (relative 1e-7; f32 has a 6e-8 unit roundoff).
#[test]
fn a_resumed_run_leaves_one_value_per_step_in_tensorboard() {
    use axle::metrics::read_records;
    use axle::run::{RunOptions, train};
    let tmp = tempfile::tempdir().unwrap();
    let options = |steps: u64, resume: bool| RunOptions {
        overrides: [
            "decoder.dim=64",
            "decoder.transformer.num_layers=1",
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128",
            "decoder.vocab_size=256",
        ]
        .map(String::from)
        .to_vec(),
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        batch_size: Some(4),
        seq_len: Some(16),
        steps,
        eval_every: 2,
        eval_batches: 1,
        checkpoint_every: 2,
        checkpoint_dir: Some(tmp.path().join("ckpt")),
        resume,
        metrics: Some(tmp.path().join("metrics.jsonl")),
        summaries: Some(tmp.path().join("tb")),
        ..RunOptions::default()
    };
    train(&options(5, false), |_| {}).unwrap();
    std::fs::remove_dir_all(tmp.path().join("ckpt/step_0000000005")).unwrap();
    train(&options(6, true), |_| {}).unwrap();
    assert_eq!(event_files(&tmp.path().join("tb")).len(), 2);

    let report = tensorboard_read(&tmp.path().join("tb")).unwrap();
    let scalars: Vec<(String, u64, f64)> = report["scalars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tag = s[0].as_str().unwrap().to_string();
            (tag, s[1].as_u64().unwrap(), s[2].as_f64().unwrap())
        })
        .collect();
    let mut keys: Vec<(&str, u64)> = scalars.iter().map(|(t, s, _)| (t.as_str(), *s)).collect();
    keys.dedup();
    assert_eq!(
        keys.len(),
        scalars.len(),
        "a tag and step twice: {scalars:?}"
    );
    let mut checked = 0;
    for record in read_records(&tmp.path().join("metrics.jsonl")).unwrap() {
        let (step, values) = record.scalars();
        for (tag, want) in values {
            let got = scalars
                .iter()
                .find(|(t, s, _)| *t == tag && *s == step)
                .unwrap_or_else(|| panic!("no {tag} at step {step} in {scalars:?}"))
                .2;
            assert!(
                (got - want).abs() <= 1e-7 * want.abs().max(1e-30),
                "{tag}@{step}: {got} vs {want}"
            );
            checked += 1;
        }
    }
    assert_eq!(scalars.len(), checked);
    for (tag, step) in [
        ("train/loss", 5),
        ("train/loss", 6),
        ("eval/loss", 4),
        ("eval/loss", 6),
    ] {
        assert!(keys.contains(&(tag, step)), "{tag}@{step} missing");
    }
}
