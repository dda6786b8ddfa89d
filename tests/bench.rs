//! `axle bench` on a tiny model: the code path runs on the CPU plugin and
//! reports consistent fields. Timings are never asserted (the machine is
//! shared); only their internal consistency is.

use axle::bench::{BenchError, BenchOptions, render_table, run_bench};
use axle::run::RunOptions;
use ndarray::Array3;
use ndarray_npy::ReadNpyExt;

/// A one-layer llama with d_model 64 (4 heads of 16), SwiGLU hidden 128,
/// vocab 1024, on batches of 2 x 16 tokens.
fn tiny(meshes: &[&str]) -> BenchOptions {
    BenchOptions {
        run: RunOptions {
            overrides: vec![
                "decoder.dim=64".into(),
                "decoder.transformer.num_layers=1".into(),
                "decoder.transformer.layers.0.feed_forward.hidden_dim=128".into(),
            ],
            cpu_devices: Some(2),
            batch_size: Some(2),
            seq_len: Some(16),
            peak_flops: Some(1e12),
            ..RunOptions::default()
        },
        meshes: meshes.iter().map(|m| m.to_string()).collect(),
        remat: vec![],
        steps: 3,
        warmup: 1,
        matmul_size: 64,
        export_dir: None,
    }
}

#[test]
fn bench_reports_consistent_fields_and_exports_the_computation() {
    let dir = tempfile::tempdir().unwrap();
    let options = BenchOptions {
        export_dir: Some(dir.path().to_path_buf()),
        ..tiny(&["data=1", "data=2"])
    };
    let report = run_bench(&options).unwrap();

    // Parameters counted by hand: embedding, q/k/v/o, gate/up/down, two
    // layer norms, the output norm and the untied LM head.
    let (vocab, d, hidden, seq, batch) = (1024u64, 64u64, 128u64, 16u64, 2u64);
    let params = vocab * d + 4 * d * d + 3 * d * hidden + 2 * d + d + d * vocab;
    assert_eq!(report.params, params);
    // PaLM's count: 6 N per token plus 12 L d s for attention, one layer.
    let flops = (6 * params + 12 * d * seq) as f64 * (batch * seq) as f64;
    assert_eq!(report.flops_per_step, flops);

    let matmul = report.matmul.as_ref().unwrap();
    assert_eq!(matmul.size, 64);
    assert_eq!(matmul.flops, 2.0 * 64f64.powi(3) / matmul.seconds.median);

    assert_eq!(report.meshes.len(), 2);
    for (m, (mesh, devices)) in report.meshes.iter().zip([("data=1", 1), ("data=2", 2)]) {
        assert_eq!((m.mesh.as_str(), m.devices), (mesh, devices));
        assert!(
            m.trace_s > 0.0 && m.emit_s > 0.0 && m.compile_s > 0.0,
            "{m:?}"
        );
        assert!(m.stablehlo_bytes > 1000, "{m:?}");
        let s = &m.step_s;
        assert!(0.0 < s.min && s.min <= s.p10 && s.p10 <= s.median, "{s:?}");
        assert!(s.median <= s.p90 && s.p90 <= s.max, "{s:?}");
        assert_eq!(m.tokens_per_s, (batch * seq) as f64 / s.median);
        assert_eq!(m.achieved_flops, flops / s.median);
        assert_eq!(m.mfu, Some(m.achieved_flops / (1e12 * devices as f64)));
        let matmul_flops = m.matmul_flops.unwrap();
        assert!(matmul_flops > 0.0);
        assert_eq!(m.vs_matmul, Some(m.achieved_flops / matmul_flops));
        if let Some(mem) = &m.memory {
            assert!(mem.arguments as u64 >= 4 * 3 * params, "{mem:?}");
            assert_eq!(mem.peak, mem.arguments + mem.outputs - mem.alias + mem.temp);
        }
        // Warm-up plus timed steps, starting near ln(1024) = 6.93 (the
        // range of tests/train.rs) and finite throughout.
        assert_eq!(m.losses.len(), 4);
        assert!((6.5..8.0).contains(&m.losses[0]), "{:?}", m.losses);
        assert!(m.losses.iter().all(|l| l.is_finite()));
    }
    // Same parameters and batches on both meshes: the same losses, up to
    // f32 reassociation of the data-parallel reduction (relative 1e-5).
    for (a, b) in report.meshes[0].losses.iter().zip(&report.meshes[1].losses) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }

    let table = render_table(&report);
    assert!(
        table.contains("data=2") && table.contains("f32 matmul 64x64"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["meshes"][1]["mesh"], "data=2");

    let batches =
        Array3::<i32>::read_npy(std::fs::File::open(dir.path().join("batches.npy")).unwrap())
            .unwrap();
    assert_eq!(batches.shape(), &[4, 2, 17]);
    assert!(batches.iter().all(|&t| (0..1024).contains(&t)));
    let checkpoint = axle::checkpoint::Checkpointer::new(dir.path(), 1)
        .latest()
        .unwrap()
        .unwrap();
    let restored = axle::checkpoint::load(&checkpoint).unwrap();
    let total: usize = restored.params.values().map(|a| a.len()).sum();
    assert_eq!(total as u64, params);
    for mesh in ["data=1", "data=2"] {
        let text = std::fs::read_to_string(dir.path().join(format!("shardings/{mesh}.json")));
        let json: serde_json::Value = serde_json::from_str(&text.unwrap()).unwrap();
        assert_eq!(json["mesh"], mesh);
        assert!(json["args"]["input_ids"].is_array(), "{json}");
    }
}

#[test]
fn bad_bench_options_are_clear_errors() {
    let err = run_bench(&tiny(&["data=1", "tensor=2"])).unwrap_err();
    assert!(
        matches!(&err, BenchError::Mesh { mesh, .. } if mesh == "tensor=2"),
        "{err}"
    );
    let err = run_bench(&BenchOptions {
        steps: 0,
        ..tiny(&["data=1"])
    })
    .unwrap_err();
    assert!(matches!(err, BenchError::Empty), "{err}");
}

#[test]
fn the_bench_command_writes_a_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_axle"))
        .args([
            "bench",
            "--set",
            "decoder.dim=64",
            "--set",
            "decoder.transformer.num_layers=1",
            "--batch-size",
            "2",
            "--seq-len",
            "16",
            "--cpu-devices",
            "1",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--matmul",
            "64",
            "--modifier",
            "qk_norm",
            "--remat",
            "none",
            "--remat",
            "names:attention_out,ffn_out",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("data=1 remat=names:attention_out,ffn_out")
            && stdout.contains("compile s")
            && stdout.contains("temp MiB")
            && stdout.contains("modifiers: qk_norm;"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["model"], "llama-tiny");
    assert_eq!(report["meshes"][0]["losses"].as_array().unwrap().len(), 3);
    assert_eq!(report["meshes"][0]["remat"], "none");
    assert_eq!(report["meshes"][1]["remat"], "names:attention_out,ffn_out");
    assert_eq!(report["modifiers"], serde_json::json!(["qk_norm"]));
}

/// `--remat none --remat full` on a two-layer tiny llama: one row per
/// policy, whose memory figures are exactly what the runtime reports for
/// the same step compiled here through the public API
/// (`PJRT_Executable_GetCompiledMemoryStats`); the arguments (parameters,
/// AdamW state, batch) do not depend on the policy, full remat needs no
/// more temporaries than none, and the losses agree (f32, the same ops
/// reordered by fusion: 1e-5 relative).
#[test]
fn bench_compares_remat_policies_with_the_runtimes_memory_stats() {
    let mut options = tiny(&["data=1"]);
    options.run.overrides[1] = "decoder.transformer.num_layers=2".into();
    options.run.seq_len = Some(64);
    options.remat = vec!["none".into(), "full".into()];
    options.steps = 1;
    options.warmup = 1;
    options.matmul_size = 0;
    let report = run_bench(&options).unwrap();
    assert_eq!(report.meshes.len(), 2);
    let memory = |i: usize| report.meshes[i].memory.clone().expect("CPU reports memory");
    for (i, policy) in ["none", "full"].iter().enumerate() {
        assert_eq!(report.meshes[i].remat.as_deref(), Some(*policy));
        let run = axle::run::RunOptions {
            mesh: Some("data=1".into()),
            modifiers: vec![format!("remat={policy}")],
            ..options.run.clone()
        };
        let setup = run.setup().unwrap();
        let step = axle::train_step::build_train_step(
            setup.model.as_ref(),
            &setup.learner,
            &setup.shape,
            &setup.mesh,
            &setup.rules,
        )
        .unwrap();
        let exe = setup
            .client
            .compile(
                &step.function.to_stablehlo(),
                &axle::trainer::compile_options(&setup.mesh),
            )
            .unwrap();
        let stats = exe.memory_stats().unwrap().unwrap();
        let m = memory(i);
        assert_eq!(
            (m.arguments, m.outputs, m.alias, m.temp),
            (stats.arguments, stats.outputs, stats.alias, stats.temp),
            "remat={policy}"
        );
        assert_eq!(m.peak, m.arguments + m.outputs - m.alias + m.temp);
    }
    let (none, full) = (memory(0), memory(1));
    assert_eq!(none.arguments, full.arguments);
    assert!(full.temp <= none.temp, "full {full:?} vs none {none:?}");
    for (a, b) in report.meshes[0].losses.iter().zip(&report.meshes[1].losses) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }
    let table = render_table(&report);
    assert!(table.contains("data=1 remat=full"), "{table}");
}
