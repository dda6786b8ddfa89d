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
        xla_options: Vec::new(),
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
    // Tokens decoded: 3 + 2 (the rows' tokens after the prefill's), not
    // rows x calls = 6. Tolerance: the rate times the time gives the count
    // back up to f64 rounding (a few ulps of 5).
    let g = &report.generation;
    let decoded = g.decode_tokens_per_s * g.decode_s;
    assert!((decoded - 5.0).abs() < 1e-9, "{decoded}");
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

/// A copy of fixture `name` in a temporary directory.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixture(name)).expect("fixture") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, tmp.path().join(path.file_name().expect("a name"))).expect("copies");
    }
    tmp
}

/// Writes a word-level `tokenizer.json` with the given vocabulary (split on
/// whitespace, no decoder) into `dir`: ids chosen by hand, so what a text
/// prompt encodes to is known without running the code under test.
fn write_word_tokenizer(dir: &std::path::Path, vocab: Value) {
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    std::fs::write(dir.join("tokenizer.json"), json.to_string()).expect("writes");
}

/// `import-hf` records the directory's `tokenizer.json` and its default
/// end-of-sequence ids: a text prompt from the checkpoint encodes with the
/// hand-made vocabulary (`hello` = 5, `world` = 17), and the checkpoint keeps
/// the ids read at import (`config.json`'s 2, what `--hf DIR` used then)
/// after `DIR/generation_config.json` is edited to say 7, which `--hf DIR`
/// now reads.
#[test]
fn import_records_the_tokenizer_and_eos_ids_that_generate_uses() {
    let dir = fixture_copy("mistral");
    write_word_tokenizer(
        dir.path(),
        serde_json::json!({"<unk>": 0, "<|endoftext|>": 3, "hello": 5, "world": 17}),
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let ckpt = tmp.path().join("ckpt");
    axle::hf::import_to_checkpoint(dir.path(), &ckpt).expect("imports");
    // Without data, the recorded tokenizer does not make evaluation a text run.
    let eval = axle::run::RunOptions {
        checkpoint_dir: Some(ckpt.clone()),
        cpu_devices: Some(1),
        ..axle::run::RunOptions::default()
    };
    axle::run::evaluate(&eval, Some(1)).expect("evaluates on the synthetic task");
    let hf = |o: &mut GenerateOptions| o.source = ModelSource::Hf(dir.path().to_path_buf());
    let mut o = options("mistral", vec!["hello world".into()], Vec::new());
    o.max_new_tokens = 2;
    hf(&mut o);
    let before = run(&o).expect("generates from the directory");
    assert_eq!(before.prompt_ids, [vec![5, 17]]);
    assert_eq!(before.eos_ids, [2]);
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"eos_token_id": 7}"#,
    )
    .expect("writes");
    o.source = ModelSource::Checkpoint(ckpt);
    let from_checkpoint = run(&o).expect("generates from the checkpoint");
    assert_eq!(from_checkpoint.prompt_ids, [vec![5, 17]]);
    assert_eq!(from_checkpoint.eos_ids, [2], "recorded at import");
    hf(&mut o);
    assert_eq!(run(&o).expect("generates").eos_ids, [7]);
}

/// With no tokenizer recorded and a vocabulary of 160 (not bytes), a text
/// prompt is refused naming the checkpoint and the way out, and the
/// continuation of id prompts prints as the ids.
#[test]
fn a_checkpoint_without_a_tokenizer_refuses_text_and_prints_ids() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ckpt = tmp.path().join("ckpt");
    let saved = axle::hf::import_to_checkpoint(&fixture("mistral"), &ckpt).expect("imports");
    let mut o = options("mistral", vec!["hello".into()], Vec::new());
    o.source = ModelSource::Checkpoint(ckpt.clone());
    let err = run(&o).expect_err("no tokenizer").to_string();
    assert!(
        err.contains(&saved.display().to_string())
            && err.contains("give --tokenizer FILE (or --prompt-ids)"),
        "{err}"
    );
    let (prompts, _) = recorded("mistral");
    o.prompts.clear();
    o.prompt_ids = prompts;
    o.max_new_tokens = 3;
    let report = run(&o).expect("generates");
    for (text, ids) in report.texts.iter().zip(&report.generation.tokens) {
        let shown: Vec<String> = ids.iter().map(u32::to_string).collect();
        assert_eq!(text, &format!("[{}]", shown.join(", ")));
    }
}

/// End-of-sequence ids at or above the vocabulary (160) are refused naming
/// where they came from: the flag, or the tokenizer's `<|endoftext|>` when
/// the config sets none (qwen2's `null`). The ids are read only when
/// needed: a `generation_config.json` that is not JSON does not stop
/// `--ignore-eos`, and is named otherwise; `[]` falls back like `null`; a
/// list or a directory is refused naming the file.
#[test]
fn eos_ids_are_checked_against_the_vocabulary_and_read_only_when_needed() {
    let (prompts, _) = recorded("qwen2");
    let dir = fixture_copy("qwen2");
    write_word_tokenizer(
        dir.path(),
        serde_json::json!({"<unk>": 0, "<|endoftext|>": 200}),
    );
    let mut o = options("qwen2", Vec::new(), prompts);
    o.max_new_tokens = 2;
    o.source = ModelSource::Hf(dir.path().to_path_buf());
    let err = run(&o).expect_err("200 >= 160").to_string();
    assert!(
        err.contains("200") && err.contains("<|endoftext|>") && err.contains("0..160"),
        "{err}"
    );
    o.eos_ids = Some(vec![160]);
    let err = run(&o).expect_err("160 >= 160").to_string();
    assert!(err.contains("--eos-id") && err.contains("0..160"), "{err}");

    let generation_config = dir.path().join("generation_config.json");
    std::fs::write(&generation_config, "not json").expect("writes");
    o.eos_ids = Some(Vec::new());
    run(&o).expect("--ignore-eos does not read generation_config.json");
    o.eos_ids = None;
    let err = run(&o).expect_err("not JSON").to_string();
    assert!(err.contains("generation_config.json"), "{err}");
    std::fs::write(&generation_config, "[1, 2]").expect("writes");
    let err = axle::hf::eos_token_ids(dir.path())
        .expect_err("a list")
        .to_string();
    assert!(
        err.contains("generation_config.json") && err.contains("object"),
        "{err}"
    );
    std::fs::write(&generation_config, r#"{"eos_token_id": []}"#).expect("writes");
    let mistral = fixture_with_eos(serde_json::json!(61), Some(serde_json::json!([])));
    assert_eq!(
        axle::hf::eos_token_ids(mistral.path()).expect("reads"),
        Some(vec![61])
    );
    std::fs::remove_file(&generation_config).expect("removes");
    std::fs::create_dir(&generation_config).expect("makes a directory");
    let err = axle::hf::eos_token_ids(dir.path())
        .expect_err("a directory")
        .to_string();
    assert!(
        err.contains("generation_config.json") && err.contains("directory"),
        "{err}"
    );
}

/// The CLI's errors name the flag or path at fault.
#[test]
fn cli_errors_name_the_flag_or_path() {
    let axle = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_axle"))
            .args(args)
            .output()
            .expect("runs axle");
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let config = fixture("llama").join("config.json");
    let config = config.to_str().expect("a UTF-8 path");
    let err = axle(&["generate", "--hf", config, "--prompt-ids", "1"]);
    assert!(
        err.contains("is a file, expected a model directory"),
        "{err}"
    );
    let err = axle(&["generate", "--hf", config]);
    assert!(
        err.contains("--prompt, --prompts FILE or --prompt-ids"),
        "{err}"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let empty = tmp.path().join("prompts.txt");
    std::fs::write(&empty, "\n  \n").expect("writes");
    let empty = empty.to_str().expect("a UTF-8 path");
    let err = axle(&["generate", "--hf", config, "--prompts", empty]);
    assert!(err.contains(empty) && err.contains("no prompt"), "{err}");
    let ckpt = tmp.path().join("ckpt");
    let step = axle::hf::import_to_checkpoint(&fixture("gpt2"), &ckpt).expect("imports");
    let step = step.to_str().expect("a UTF-8 path");
    let err = axle(&["generate", "--checkpoint-dir", step, "--prompt-ids", "1"]);
    assert!(
        err.contains(&format!("pass the run's directory {}", ckpt.display())),
        "{err}"
    );
    let err = axle(&["train", "--init-from", "hf:", "--steps", "1"]);
    assert!(err.contains("--init-from"), "{err}");
}

/// The over-length warning names the longest prompt by its number (from 1,
/// as the output's headers) and its length: mistral's second recorded
/// prompt has 10 tokens, and `max_position_embeddings` is set to 12 here.
#[test]
fn the_over_length_warning_names_the_prompt_and_its_length() {
    let dir = fixture_copy("mistral");
    let path = dir.path().join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("reads")).expect("JSON");
    config["max_position_embeddings"] = Value::from(12);
    std::fs::write(&path, config.to_string()).expect("writes");
    let (prompts, _) = recorded("mistral");
    assert_eq!(prompts[1].len(), 10);
    let mut o = options("mistral", Vec::new(), prompts);
    o.source = ModelSource::Hf(dir.path().to_path_buf());
    o.max_new_tokens = 3;
    o.eos_ids = Some(Vec::new());
    let report = run(&o).expect("generates");
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].starts_with("prompt 2 (10 tokens) + 3 new tokens = 13 positions"),
        "{}",
        report.warnings[0]
    );
}
