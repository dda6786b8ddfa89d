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

    // Flip one byte in the middle of each entry's serialized program
    // (after the 8-byte magic, the 8-byte key length and the key): loading
    // it would run a damaged program; the checksum turns it into a miss.
    let mut damaged = Vec::new();
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let key_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
        let program_start = 16 + key_len;
        let i = program_start + (bytes.len() - 4 - program_start) / 2;
        bytes[i] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        damaged.push((path, bytes));
    }
    let (third, third_losses) = train(dir.path(), &cache, "third");
    assert!(!third.contains("compile cache hit"), "{third}");
    for (path, bytes) in &damaged {
        let name = path.display().to_string();
        assert!(
            third
                .lines()
                .any(|l| l.contains("damaged") && l.contains(&name)),
            "a warning names {name}: {third}"
        );
        assert_ne!(&std::fs::read(path).unwrap(), bytes, "{name} rewritten");
    }
    // Recompiled from the same program: the same losses as the first run.
    assert_eq!(first_losses, third_losses);
}

#[test]
fn an_unusable_cache_directory_is_one_warning_and_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let (stderr, losses) = train(dir.path(), &file, "run");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("compile cache off"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("not-a-directory"), "{stderr}");
    assert_eq!(losses.len(), 3);
}
