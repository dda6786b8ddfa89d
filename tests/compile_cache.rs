//! The persistent compile cache: a second `axle train` of the same step
//! loads the serialized executables instead of compiling, and trains to the
//! same numbers.

use std::path::Path;
use std::process::Command;

/// Runs a 3-step llama-tiny (one layer, small batch) training with the
/// cache in `cache`; returns stderr and the losses of the metrics file.
fn train(dir: &Path, cache: &Path, run: &str) -> (String, Vec<f64>) {
    let metrics = dir.join(format!("{run}.jsonl"));
    let out = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args([
            "train",
            "--mesh",
            "data=2",
            "--cpu-devices",
            "2",
            "--steps",
            "3",
        ])
        .args(["--batch-size", "4", "--seq-len", "16", "--eval-every", "0"])
        .args(["--set", "decoder.transformer.num_layers=1"])
        .arg("--metrics")
        .arg(&metrics)
        .env("AXLE_COMPILE_CACHE", cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let losses = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| r["loss"].as_f64())
        .collect();
    (stderr, losses)
}

#[test]
fn the_second_run_of_a_step_loads_it_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (first, first_losses) = train(dir.path(), &cache, "first");
    assert!(!first.contains("compile cache hit"), "{first}");
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(entries, 2, "the train and eval steps are stored");
    let (second, second_losses) = train(dir.path(), &cache, "second");
    assert_eq!(
        second.matches("compile cache hit").count(),
        2,
        "train and eval steps both loaded: {second}"
    );
    assert_eq!(first_losses.len(), 3);
    // The same executable on the same data and seed: identical losses.
    assert_eq!(first_losses, second_losses);
}
