//! Hugging Face models as axle checkpoints: an imported model's step-0 checkpoint is accepted
//! by `axle eval` and `axle train --resume`; `--init-from hf:DIR` starts a fresh run from the
//! same weights; and exporting the imported checkpoint gives back the model's tensors bit for
//! bit and the same config (the check that `transformers` loads an export and computes the
//! fixture's logits is `make.py check`, run by hand: docs/huggingface.md). An export into a
//! directory holding weight files, `--init-from` a model other than the run's, and a
//! checkpoint whose `hf:DIR` is gone are refused naming what is at fault.

use axle::checkpoint::{self, Checkpointer};
use axle::hf::{
    WeightDtype, eos_token_ids, export_checkpoint, import_to_checkpoint, read_config, read_tensors,
};
use axle::run::{RunOptions, evaluate, train};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// One step on one CPU device, no evaluation, checkpoints in `dir`.
fn one_step(dir: &Path) -> RunOptions {
    RunOptions {
        cpu_devices: Some(1),
        steps: 1,
        eval_every: 0,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    }
}

#[test]
fn export_of_an_import_gives_back_the_same_tensors_and_config() {
    for name in ["llama", "llama3", "mistral", "qwen2", "gpt2"] {
        let tmp = tempfile::tempdir().unwrap();
        let (ckpt, out) = (tmp.path().join("ckpt"), tmp.path().join("out"));
        import_to_checkpoint(&fixture(name), &ckpt).unwrap();
        // A stale generation_config.json is replaced, as config.json is.
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(
            out.join("generation_config.json"),
            r#"{"eos_token_id": 99}"#,
        )
        .unwrap();
        let family = export_checkpoint(&ckpt, &out, WeightDtype::F32, None).unwrap();
        let original = read_config(&fixture(name)).unwrap();
        assert_eq!(family, original.family, "{name}");
        // The fixtures' config.json say eos_token_id 2 (gpt2: 0, qwen2: null).
        let eos = match name {
            "gpt2" => Some(vec![0]),
            "qwen2" => None,
            _ => Some(vec![2]),
        };
        assert_eq!(eos_token_ids(&out).unwrap(), eos, "{name}: eos");
        let generation: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("generation_config.json")).unwrap(),
        )
        .unwrap();
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(name).join("config.json")).unwrap(),
        )
        .unwrap();
        let bos = config.get("bos_token_id").filter(|b| !b.is_null());
        assert_eq!(generation.get("bos_token_id"), bos, "{name}: bos");
        assert!(
            export_checkpoint(&ckpt, &ckpt.join("hf"), WeightDtype::F32, None)
                .expect_err("inside the checkpoint directory")
                .to_string()
                .contains("inside the checkpoint directory"),
            "{name}"
        );
        assert_eq!(read_config(&out).unwrap(), original, "{name}: config");
        // Transposes, splits and joins move f32 values without arithmetic: exact equality.
        assert_eq!(
            read_tensors(&out).unwrap(),
            read_tensors(&fixture(name)).unwrap(),
            "{name}: tensors"
        );
    }
}

/// An export into a directory holding weight files is refused naming one (a stale shard
/// would be loaded beside the new weights); other files stay and do not stop it.
#[test]
fn export_refuses_a_directory_holding_weight_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, out) = (tmp.path().join("ckpt"), tmp.path().join("out"));
    import_to_checkpoint(&fixture("gpt2"), &ckpt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tokenizer.json"), "{}").unwrap();
    export_checkpoint(&ckpt, &out, WeightDtype::F32, None)
        .expect("a tokenizer.json does not stop an export");
    assert_eq!(
        std::fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        "{}"
    );
    let stale = out.join("model-00001-of-00002.safetensors");
    std::fs::write(&stale, b"old").unwrap();
    std::fs::remove_file(out.join("model.safetensors")).unwrap();
    let message = export_checkpoint(&ckpt, &out, WeightDtype::F32, None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&stale.display().to_string()) && message.contains("already holds"),
        "{message}"
    );
}

#[test]
fn an_imported_checkpoint_evaluates_resumes_and_equals_init_from() {
    let tmp = tempfile::tempdir().unwrap();
    let (imported, fresh) = (tmp.path().join("imported"), tmp.path().join("fresh"));
    let hf = read_tensors(&fixture("mistral")).unwrap();
    let saved = import_to_checkpoint(&fixture("mistral"), &imported).unwrap();
    assert_eq!(saved.parent(), Some(imported.as_path()));

    let eval = evaluate(
        &RunOptions {
            checkpoint_dir: Some(imported.clone()),
            cpu_devices: Some(1),
            ..RunOptions::default()
        },
        Some(1),
    )
    .unwrap();
    assert_eq!(eval.step, 0);
    assert!(eval.experiment.starts_with("hf:"), "{}", eval.experiment);
    // 160 tokens: a model knowing nothing of the synthetic task is near ln(160) = 5.08; these
    // random weights (std 0.1) are more confident, and so worse, but not absurd.
    assert!(
        eval.report.loss.is_finite() && eval.report.loss > 3.0,
        "{:?}",
        eval.report
    );

    let resumed = train(
        &RunOptions {
            resume: true,
            ..one_step(&imported)
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(resumed.steps_done, 1);
    let init = train(
        &RunOptions {
            experiment: Some(format!("hf:{}", fixture("mistral").display())),
            init_from: Some(fixture("mistral")),
            ..one_step(&fresh)
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(init.steps_done, 1);

    let after_resume =
        checkpoint::load(&Checkpointer::new(&imported, 1).latest().unwrap().unwrap()).unwrap();
    let after_init =
        checkpoint::load(&Checkpointer::new(&fresh, 1).latest().unwrap().unwrap()).unwrap();
    // The same weights, zero optimizer state, seed and batch: the same step, bit for bit.
    assert_eq!(after_resume.params, after_init.params);
    // Both record the fixture's end-of-sequence ids (config.json: eos_token_id 2), read at
    // import and at the start of the --init-from run, and carried through the resume.
    for meta in [&after_resume.meta, &after_init.meta] {
        assert_eq!(
            meta.run.get("eos_token_ids").map(String::as_str),
            Some("[2]")
        );
    }
    // AdamW's first step moves each weight by at most lr (1e-3: |m / sqrt(v)| = 1 after bias
    // correction) plus the decay lr * 0.1 * |w| (|w| < 1 here), so the run started from the
    // Hugging Face weights and not from a random draw (which differs by ~0.1).
    let names = [
        (
            "decoder/token_embedding/weight",
            "model.embed_tokens.weight",
            false,
        ),
        (
            "decoder/transformer/layers/1/attention/k_proj/weight",
            "model.layers.1.self_attn.k_proj.weight",
            true,
        ),
    ];
    for (axle_name, hf_name, transposed) in names {
        let hf_value = if transposed {
            hf[hf_name].t().to_owned()
        } else {
            hf[hf_name].clone()
        };
        let moved = (&after_init.params[axle_name] - &hf_value)
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(moved > 0.0 && moved <= 1.1e-3, "{axle_name} moved {moved}");
    }
}

/// `--init-from hf:DIR` with `--set` making another model is refused before anything is
/// compiled, naming the directory and the parameter that differs.
#[test]
fn init_from_a_model_other_than_the_runs_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("mistral");
    let err = train(
        &RunOptions {
            experiment: Some(format!("hf:{}", dir.display())),
            overrides: vec!["decoder.transformer.num_layers=1".into()],
            init_from: Some(dir.clone()),
            ..one_step(tmp.path())
        },
        |_| {},
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("--init-from hf:{}", dir.display()))
            && message.contains("decoder/transformer/layers/1/"),
        "{message}"
    );
}

/// A checkpoint of `hf:DIR` whose DIR was moved says that DIR must stay in place.
#[test]
fn an_imported_checkpoint_whose_model_is_gone_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ckpt) = (tmp.path().join("model"), tmp.path().join("ckpt"));
    std::fs::create_dir(&model).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("gpt2").join(file), model.join(file)).unwrap();
    }
    import_to_checkpoint(&model, &ckpt).unwrap();
    std::fs::remove_dir_all(&model).unwrap();
    let options = RunOptions {
        checkpoint_dir: Some(ckpt),
        cpu_devices: Some(1),
        ..RunOptions::default()
    };
    let message = evaluate(&options, Some(1)).unwrap_err().to_string();
    assert!(
        message.contains(&model.display().to_string()) && message.contains("stay in place"),
        "{message}"
    );
}

/// `hf:PATH` naming a file (the model's config.json, say) is refused as a file, for
/// `--init-from` and `--experiment` alike, not reported as a directory that is gone.
#[test]
fn an_hf_path_that_is_a_file_is_named_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let file = fixture("llama").join("config.json");
    let options = RunOptions {
        experiment: Some(format!("hf:{}", file.display())),
        init_from: Some(file.clone()),
        ..one_step(&tmp.path().join("ckpt"))
    };
    let message = train(&options, |_| {}).unwrap_err().to_string();
    assert!(
        message.contains(&file.display().to_string()) && message.contains("is a file"),
        "{message}"
    );
}

/// `x` rounded to the nearest bfloat16, ties to even, as its 16 bits: the upper half of
/// the f32 bits, plus one when the dropped lower half is above half a unit, or exactly half
/// with an odd upper half (finite `x`; the fixtures hold no NaN or infinity).
fn bf16_bits(x: f32) -> u16 {
    let (upper, lower) = (x.to_bits() >> 16, x.to_bits() & 0xFFFF);
    let up = lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1);
    (upper + u32::from(up)) as u16
}

/// `export-hf --dtype bf16` of an import writes every tensor as bf16 whose bits are exactly
/// the fixture's f32 values rounded to nearest even by hand (no tolerance: rounding is
/// exact), records `dtype` bfloat16, and reads back as the same model config.
#[test]
fn bf16_export_rounds_each_value_to_nearest_even() {
    for name in ["llama", "gpt2"] {
        let tmp = tempfile::tempdir().unwrap();
        let (ckpt, out) = (tmp.path().join("ckpt"), tmp.path().join("out"));
        import_to_checkpoint(&fixture(name), &ckpt).unwrap();
        export_checkpoint(&ckpt, &out, WeightDtype::Bf16, None).unwrap();
        assert_eq!(
            read_config(&out).unwrap(),
            read_config(&fixture(name)).unwrap()
        );
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["dtype"], "bfloat16", "{name}");
        let want = read_tensors(&fixture(name)).unwrap();
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.len(), want.len(), "{name}: tensor count");
        let mut rounded_up = 0;
        for (tensor, values) in &want {
            let view = file.tensor(tensor).unwrap();
            assert_eq!(view.dtype(), safetensors::Dtype::BF16, "{tensor}");
            assert_eq!(view.shape(), values.shape(), "{tensor}");
            for (got, &x) in view.data().chunks_exact(2).zip(values.iter()) {
                let got = u16::from_le_bytes([got[0], got[1]]);
                assert_eq!(got, bf16_bits(x), "{name} {tensor}: {x}");
                rounded_up += usize::from(u32::from(got) != x.to_bits() >> 16);
            }
        }
        assert!(rounded_up > 0, "{name}: some values round up, not truncate");
    }
}

/// `export-hf --max-shard-size` writes shards and an index as `save_pretrained` does: the
/// shards hold at most the size (in tensor bytes) unless one tensor alone is larger, the index
/// names every tensor's shard and the total bytes, and the export reads back (through the
/// index, which the reader checks against the shards) as the fixture's tensors, bit for bit.
#[test]
fn sharded_export_writes_an_index_and_reads_back_exactly() {
    let max = 60_000;
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, out) = (tmp.path().join("ckpt"), tmp.path().join("out"));
    import_to_checkpoint(&fixture("llama"), &ckpt).unwrap();
    export_checkpoint(&ckpt, &out, WeightDtype::F32, Some(max)).unwrap();
    let want = read_tensors(&fixture("llama")).unwrap();
    assert_eq!(read_tensors(&out).unwrap(), want);
    assert!(!out.join("model.safetensors").exists());
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let bytes = |a: &ndarray::ArrayD<f32>| (a.len() * 4) as u64;
    let total: u64 = want.values().map(bytes).sum();
    assert_eq!(index["metadata"]["total_size"], total);
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), want.len());
    let mut per_shard = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for (name, file) in map {
        per_shard
            .entry(file.as_str().unwrap().to_string())
            .or_default()
            .push(bytes(&want[name]));
    }
    // The fixture's f32 tensors total about 230 kB: four shards or more of at most 60 kB.
    let n = per_shard.len();
    assert!(n >= 4, "{n} shards");
    for (i, (file, sizes)) in per_shard.iter().enumerate() {
        assert_eq!(file, &format!("model-{:05}-of-{n:05}.safetensors", i + 1));
        assert!(
            sizes.iter().sum::<u64>() <= max || sizes.len() == 1,
            "{file}: {sizes:?}"
        );
    }
}

/// `--max-shard-size` as `transformers`' `convert_file_size_to_int` reads it (closed form:
/// units without regard to case; a decimal unit ending in a lowercase `b` is bits, an
/// eighth); too large a size gets its own error.
#[test]
fn shard_sizes_parse_as_transformers_reads_them() {
    let cases = [
        ("100", 100),
        ("5GB", 5_000_000_000),
        ("5gb", 625_000_000),
        ("60KB", 60_000),
        ("60kB", 60_000),
        ("1kb", 125),
        ("500MB", 500_000_000),
        ("1KiB", 1024),
        ("2gib", 2 << 30),
        ("3mib", 3 << 20),
    ];
    for (text, bytes) in cases {
        assert_eq!(axle::hf::parse_size(text), Ok(bytes), "{text}");
    }
    let overflow = axle::hf::parse_size("20000000000GB").unwrap_err();
    assert!(overflow.contains("overflows"), "{overflow}");
    for bad in ["0", "5TB", "GB", "-1MB"] {
        let err = axle::hf::parse_size(bad).unwrap_err();
        assert!(err.contains("expected a positive number"), "{bad}: {err}");
    }
}

/// `export-hf --max-shard-size` smaller than a tensor writes that tensor alone and warns on
/// stderr, as `transformers` does (gpt2's embedding is 160 x 48 f32 = 30720 bytes > 4000).
#[test]
fn a_tensor_larger_than_the_shard_size_is_written_alone_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, out) = (tmp.path().join("ckpt"), tmp.path().join("out"));
    import_to_checkpoint(&fixture("gpt2"), &ckpt).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_axle"))
        .arg("export-hf")
        .arg("--checkpoint-dir")
        .arg(&ckpt)
        .arg("--out")
        .arg(&out)
        .args(["--max-shard-size", "4KB"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: tensor") && stderr.contains("shard of its own"),
        "{stderr}"
    );
    assert_eq!(
        read_tensors(&out).unwrap(),
        read_tensors(&fixture("gpt2")).unwrap()
    );
}

/// A run trained with a scanned stack exports as the unrolled model it equals: one step from
/// the imported mistral fixture, resumed with `decoder.transformer.scan=true`, exports the
/// same tensor names and shapes as the same step unrolled, with values within 1e-5 relative
/// (the same arithmetic, which XLA fuses differently inside the layer loop).
#[test]
fn a_scanned_run_exports_as_its_unrolled_model() {
    let tmp = tempfile::tempdir().unwrap();
    let export = |scan: bool| {
        let ckpt = tmp.path().join(format!("ckpt-{scan}"));
        import_to_checkpoint(&fixture("mistral"), &ckpt).unwrap();
        let options = RunOptions {
            resume: true,
            overrides: vec![format!("decoder.transformer.scan={scan}")],
            ..one_step(&ckpt)
        };
        train(&options, |_| {}).unwrap();
        let out = tmp.path().join(format!("out-{scan}"));
        export_checkpoint(&ckpt, &out, WeightDtype::F32, None).unwrap();
        assert_eq!(
            read_config(&out).unwrap(),
            read_config(&fixture("mistral")).unwrap()
        );
        read_tensors(&out).unwrap()
    };
    let (unrolled, scanned) = (export(false), export(true));
    assert_eq!(
        unrolled.keys().collect::<Vec<_>>(),
        scanned.keys().collect::<Vec<_>>()
    );
    for (name, a) in &unrolled {
        let b = &scanned[name];
        assert_eq!(a.shape(), b.shape(), "{name}");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1e-3),
                "{name}: {x} vs {y}"
            );
        }
    }
}
