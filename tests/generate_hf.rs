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
        eos_ids: None,
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

/// `tokens` cut after the first id in `eos` (kept), as `transformers` keeps it.
fn cut_at_eos(tokens: &[u32], eos: &[u32]) -> Vec<u32> {
    match tokens.iter().position(|t| eos.contains(t)) {
        Some(i) => tokens[..=i].to_vec(),
        None => tokens.to_vec(),
    }
}

/// Exact, as above: the rows are `transformers`' greedy tokens cut by hand
/// at the first id chosen as end-of-sequence (121: the 4th token of the
/// first prompt's continuation; 105: the 3rd of the second's, repeated
/// after), so the rows stop at different lengths and the batch ends with
/// the longer row.
#[test]
fn each_row_stops_at_its_first_eos_and_the_batch_when_all_stopped() {
    let (prompts, want) = recorded("llama");
    let eos = [121, 105];
    let mut o = options("llama", Vec::new(), prompts);
    o.eos_ids = Some(eos.to_vec());
    let report = run(&o).expect("generates");
    let expected: Vec<Vec<u32>> = want.iter().map(|t| cut_at_eos(t, &eos)).collect();
    assert_eq!(expected, [vec![94, 5, 94, 121], vec![17, 48, 105]]);
    assert_eq!(report.generation.tokens, expected);
    assert_eq!(report.eos_ids, eos);
    // Four tokens for the longest row: one from the prefill, three decoded.
    assert_eq!(report.generation.decode_calls, 3);
}

/// The fixture copied with `eos_token_id` set in `config.json` (and
/// `generation_config.json` when given): the default end-of-sequence ids.
fn fixture_with_eos(config_eos: Value, generation_eos: Option<Value>) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixture("mistral")).expect("fixture") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, tmp.path().join(path.file_name().expect("a name"))).expect("copies");
    }
    let path = tmp.path().join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("reads")).expect("JSON");
    config["eos_token_id"] = config_eos;
    std::fs::write(&path, config.to_string()).expect("writes");
    if let Some(eos) = generation_eos {
        let g = serde_json::json!({ "eos_token_id": eos });
        std::fs::write(tmp.path().join("generation_config.json"), g.to_string()).expect("writes");
    }
    tmp
}

/// Exact: the mistral fixture's recorded greedy tokens
/// (`[144, 144, 61, 64, 7, ...]`, `[39, 0, 39, 134, ...]`) cut by hand.
#[test]
fn default_eos_is_generation_config_then_config() {
    let (prompts, want) = recorded("mistral");
    let cases = [
        (serde_json::json!(61), None, vec![61]),
        (serde_json::json!([7, 134]), None, vec![7, 134]),
        (serde_json::json!(61), Some(serde_json::json!([0])), vec![0]),
        (serde_json::json!(61), Some(Value::Null), vec![61]),
    ];
    for (config_eos, generation_eos, eos) in cases {
        let dir = fixture_with_eos(config_eos, generation_eos);
        let ids = axle::hf::eos_token_ids(dir.path()).expect("reads");
        assert_eq!(ids.as_deref(), Some(eos.as_slice()));
        let mut o = options("mistral", Vec::new(), prompts.clone());
        o.source = ModelSource::Hf(dir.path().to_path_buf());
        let report = run(&o).expect("generates");
        let expected: Vec<Vec<u32>> = want.iter().map(|t| cut_at_eos(t, &eos)).collect();
        assert_eq!(report.generation.tokens, expected, "eos {eos:?}");
    }
}

#[test]
fn a_bad_eos_token_id_is_refused_naming_file_and_field() {
    let dir = fixture_with_eos(serde_json::json!("</s>"), None);
    let err = axle::hf::eos_token_ids(dir.path())
        .expect_err("a string is no id")
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("eos_token_id") && err.contains("</s>"),
        "{err}"
    );
    assert_eq!(
        axle::hf::eos_token_ids(&fixture("qwen2")).expect("reads"),
        None,
        "qwen2's config has eos_token_id null"
    );
}
