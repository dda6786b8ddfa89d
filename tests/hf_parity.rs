//! Parity with `transformers`: each family's fixture (a small random-initialised model that
//! `tests/fixtures/hf/make.py` built and saved with `transformers`, see `VERSIONS`) is imported,
//! and axle's logits on the recorded token ids must match the logits `transformers` computed,
//! and axle's greedy continuations of the recorded prompts must be token-identical to
//! `generate(do_sample=False)`'s.

use axle::hf::{greedy, import_params, logits, read_config};
use axle::runtime::Client;
use ndarray::{Array2, ArrayD};
use std::path::PathBuf;

/// Largest allowed `|axle - transformers|` over all logits. Both sides compute the same f32
/// math (logits of size ~1-10) with different summation orders and kernels; the rounding of
/// sums over at most 96 terms through 2 layers stays below ~1e-5 (measured on these fixtures:
/// at most 1.7e-6, printed by each test), while any convention error (RoPE layout or scaling, window offset, a
/// missing bias, a transposed weight) moves logits by more than 1e-2.
const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// The recorded `input_ids` `[2, 16]` and `transformers`' `logits` `[2, 16, vocab]`.
fn reference(name: &str) -> (Array2<i32>, ArrayD<f32>) {
    let bytes = std::fs::read(fixture(name).join("logits.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids = file.tensor("input_ids").unwrap();
    let ids: Vec<i32> = ids
        .data()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let logits = file.tensor("logits").unwrap();
    let shape = logits.shape().to_vec();
    let values: Vec<f32> = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (
        Array2::from_shape_vec((shape[0], shape[1]), ids).unwrap(),
        ArrayD::from_shape_vec(shape, values).unwrap(),
    )
}

fn check(name: &str) {
    let dir = fixture(name);
    let model = read_config(&dir).unwrap();
    let params = import_params(&dir, &model).unwrap();
    let client = Client::cpu(1).expect("the CPU PJRT plugin loads (scripts/test.sh installs it)");
    let (ids, want) = reference(name);
    let got = logits(&client, &model.config, &params, &ids).unwrap();
    assert_eq!(got.shape(), want.shape(), "{name}: logits shape");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= TOLERANCE,
        "{name}: max |axle - transformers| logits = {worst:e} > {TOLERANCE:e}"
    );
    eprintln!("{name}: max |axle - transformers| logits = {worst:e}");
    let text = std::fs::read_to_string(dir.join("greedy.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for case in cases {
        let ints = |key: &str| -> Vec<i32> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i32)
                .collect()
        };
        let (prompt, want) = (ints("prompt"), ints("new_tokens"));
        let got = greedy(&client, &model.config, &params, &prompt, want.len()).unwrap();
        assert_eq!(got, want, "{name}: greedy continuation of {prompt:?}");
    }
}

#[test]
fn llama_sharded_matches_transformers() {
    check("llama");
}

#[test]
fn llama3_rope_scaling_and_tied_head_match_transformers() {
    check("llama3");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    check("mistral");
}

#[test]
fn qwen2_qkv_bias_matches_transformers() {
    check("qwen2");
}

#[test]
fn gpt2_matches_transformers() {
    check("gpt2");
}
