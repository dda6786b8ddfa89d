//! `axle generate --hf DIR` straight from a Hugging Face model directory: on
//! each family's parity fixture (`tests/fixtures/hf`, built by `make.py`
//! with `transformers`, see `VERSIONS`), the KV-cached greedy continuations
//! of the recorded prompts, run as one batch of different lengths, are
//! token-identical to `transformers`' `generate(do_sample=False)` of each
//! prompt alone (`greedy.json`), through the library and through the CLI.

use axle::generate::{GenerateOptions, ModelSource, Sampling, run};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// The recorded prompts and `transformers`' greedy new tokens of fixture `name`.
fn recorded(name: &str) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let text = std::fs::read_to_string(fixture(name).join("greedy.json")).expect("greedy.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("JSON");
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|id| id.as_u64().expect("an id") as u32)
            .collect()
    };
    cases
        .iter()
        .map(|c| (ids(&c["prompt"]), ids(&c["new_tokens"])))
        .unzip()
}

fn options(name: &str, prompts: Vec<String>, prompt_ids: Vec<Vec<u32>>) -> GenerateOptions {
    GenerateOptions {
        source: ModelSource::Hf(fixture(name)),
        prompts,
        prompt_ids,
        max_new_tokens: 8,
        sampling: Sampling::greedy(),
        tokenizer: None,
        mesh: None,
        plugin: "cpu".into(),
        cpu_devices: Some(1),
    }
}

/// Exact equality: greedy tokens are argmaxes, and each fixture records the
/// smallest gap between the two best logits along its continuations (at
/// least 0.014), far above the ~1e-6 by which axle's logits differ from
/// `transformers'` (tests/hf_parity.rs), so no choice can flip.
#[test]
fn hf_greedy_equals_transformers_for_every_family() {
    for name in ["llama", "llama3", "mistral", "qwen2", "gpt2"] {
        let (prompts, want) = recorded(name);
        let report = run(&options(name, Vec::new(), prompts.clone())).expect("generates");
        assert_eq!(report.prompt_ids, prompts, "{name}");
        assert_eq!(
            report.generation.tokens, want,
            "{name}: greedy continuations"
        );
    }
}

#[test]
fn cli_generates_from_hf_dir_as_json() {
    let (prompts, want) = recorded("llama");
    let mut command = Command::new(env!("CARGO_BIN_EXE_axle"));
    command.args(["generate", "--hf"]).arg(fixture("llama"));
    for p in &prompts {
        let ids: Vec<String> = p.iter().map(u32::to_string).collect();
        command.args(["--prompt-ids", &ids.join(",")]);
    }
    let out = command
        .args(["--max-new-tokens", "8", "--json", "--cpu-devices", "1"])
        .output()
        .expect("runs axle");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let got: Vec<Vec<u32>> = serde_json::from_value(json["continuations"].clone()).expect("ids");
    assert_eq!(got, want);
}

#[test]
fn text_prompts_without_a_tokenizer_are_refused_naming_the_dir() {
    let err = run(&options("llama", vec!["hello".into()], Vec::new()))
        .expect_err("no tokenizer.json in the fixture")
        .to_string();
    let dir = fixture("llama").display().to_string();
    assert!(err.contains(&dir) && err.contains("--prompt-ids"), "{err}");
}
