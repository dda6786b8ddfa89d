//! `axle plan` compiles llama-tiny's training step ahead of time for TPU
//! (libtpu) and GPU (the CUDA plugin) targets this machine does not have;
//! the memory, FLOPs and collectives are checked against closed forms.
//!
//! One transformer layer (`--set decoder.transformer.num_layers=1`) keeps
//! each libtpu compile to a few seconds (four layers took 14–21 s).
//! Needs `./scripts/install-plugins.sh tpu` and `cuda` (`scripts/test.sh`).

use axle_partition::MeshRules;
use serde_json::Value;
use std::process::Command;

/// llama-tiny with one layer: vocab 1024, d_model 256, SwiGLU hidden 704.
const VOCAB: u64 = 1024;
const D: u64 = 256;
const HIDDEN: u64 = 704;
/// Batch 8 × seq 128.
const BATCH: u64 = 8;
const SEQ: u64 = 128;
const HEADS: u64 = 4;
const HEAD_DIM: u64 = 64;

/// Parameters of a one-layer llama-tiny by its formula: embedding, one
/// layer (q, k, v, o projections; gate, up, down; two RMSNorm scales), the
/// final norm and the untied LM head.
fn params() -> u64 {
    VOCAB * D + (4 * D * D + 3 * D * HIDDEN + 2 * D) + D + D * VOCAB
}

/// Training FLOPs of one step for the whole batch: 6 per parameter per
/// token for the matmuls (forward 2, backward 4; the embedding lookup does
/// none), plus the attention scores and weighted sums (2·seq²·head_dim per
/// head twice, forward, ×3 with backward).
fn train_flops() -> f64 {
    let tokens = (BATCH * SEQ) as f64;
    let matmul_params = (params() - VOCAB * D) as f64;
    let attention = (BATCH * HEADS * 2 * 2 * SEQ * SEQ * HEAD_DIM) as f64;
    6.0 * matmul_params * tokens + 3.0 * attention
}

fn plan(target: &str, mesh: &str) -> Value {
    plan_with(target, mesh, &[])
}

/// Runs `axle plan` for llama-tiny with one layer on `mesh` and `extra`
/// options; returns its JSON report after checking it says "fits".
fn plan_with(target: &str, mesh: &str, extra: &[&str]) -> Value {
    plan_args(target, &[&["--mesh", mesh], extra].concat())
}

/// Runs `axle plan` for llama-tiny with one layer and `extra` options
/// (the mesh rules choose the mesh unless they give `--mesh`); returns its
/// JSON report after checking it says "fits".
fn plan_args(target: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("plan.json");
    let out = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["plan", "--experiment", "llama-tiny", "--target", target])
        .args(["--set", "decoder.transformer.num_layers=1"])
        .args(extra)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "axle plan {target} {extra:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("fits"), "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn collectives(report: &Value, kind: &str) -> u64 {
    report["compiled"]["collectives"][kind]
        .as_u64()
        .unwrap_or(0)
}

fn bytes(report: &Value, field: &str) -> f64 {
    report["compiled"][field].as_f64().unwrap()
}

/// Parameters and AdamW's two moments, f32, as bytes.
fn state_bytes() -> f64 {
    (3 * 4 * params()) as f64
}

/// The state under FSDP over 4 devices: the matrices are split four ways
/// (every dimension here divides by 4), the three RMSNorm scales stay whole
/// (the sharding rules give vectors no mesh axis).
fn fsdp_state_bytes() -> f64 {
    let vectors = 3 * D;
    (3 * 4) as f64 * ((params() - vectors) as f64 / 4.0 + vectors as f64)
}

/// A quarter of the i32 batch (ids and labels), bytes.
fn batch_quarter() -> f64 {
    (2 * 4 * BATCH * SEQ / 4) as f64
}

/// The step's scalar arguments (the step count, the loss scale and such):
/// at most this many bytes.
const SCALARS: f64 = 64.0;

#[test]
fn llama_tiny_on_tpu_v5e_2x2_data_parallel() {
    let r = plan("tpu-v5e:2x2", "data=4");
    assert_eq!(r["compiled"]["device_kind"], "TPU v5 lite");
    // Every device holds all of the state plus its quarter of the i32 batch
    // (ids and labels); 2% for TPU tile padding (the (8,128) tiles pad the
    // norm vectors and the batch quarter; measured +0.3%).
    let args = state_bytes() + batch_quarter();
    let got = bytes(&r, "arguments");
    assert!(
        (got - args).abs() < 0.02 * args,
        "arguments {got} vs {args}"
    );
    // Gradients are summed over the data axis.
    assert!(collectives(&r, "all-reduce") >= 1, "{r}");
    // A quarter of the batch per device. The closed form counts matmuls and
    // attention only; norms, softmax, the loss and AdamW add a little
    // (measured +2.7%): within [1.0, 1.3] of it.
    let flops = bytes(&r, "flops");
    let want = train_flops() / 4.0;
    assert!(
        (want..=1.3 * want).contains(&flops),
        "flops {flops} vs {want}"
    );
    let limit = r["memory_limit"].as_f64().unwrap();
    assert!(bytes(&r, "peak") < limit);
}

#[test]
fn llama_tiny_on_tpu_v5e_2x2_fsdp() {
    let r = plan("tpu-v5e:2x2", "fsdp=4");
    // 5% for TPU tile padding: a quarter of the 704-wide SwiGLU matrices is
    // 64x704, padded to 64x768 in (8,128) tiles; measured +3.9%.
    let args = fsdp_state_bytes() + batch_quarter();
    let got = bytes(&r, "arguments");
    assert!(
        (args..1.05 * args).contains(&got),
        "arguments {got} vs {args}"
    );
    // Weights are gathered for use.
    assert!(collectives(&r, "all-gather") >= 1, "{r}");
}

#[test]
fn llama_tiny_on_tpu_v5e_2x2_data_and_model() {
    let r = plan("tpu-v5e:2x2", "data=2,model=2");
    // Gradients of the weights are summed over the data axis.
    assert!(collectives(&r, "all-reduce") >= 1, "{r}");
    let flops = bytes(&r, "flops");
    let want = train_flops() / 4.0;
    // Measured 8% under the closed form: XLA turns some model-parallel
    // matmuls into loops over collective-permuted blocks (the
    // collective-permutes in its HLO), which its cost analysis likely counts
    // per loop, not per iteration. Bounds [0.85, 1.3].
    assert!(
        (0.85 * want..=1.3 * want).contains(&flops),
        "flops {flops} vs {want}"
    );
}

#[test]
fn llama_tiny_on_four_h100s_fsdp() {
    let r = plan("gpu-h100:4", "fsdp=4");
    assert_eq!(r["compiled"]["device_kind"], "NVIDIA H100 80GB HBM3");
    let args = fsdp_state_bytes() + batch_quarter();
    let got = bytes(&r, "arguments");
    // GPU buffers are not padded: exact, but for the step's few scalars
    // (measured: 20 bytes).
    assert!(
        (args..=args + SCALARS).contains(&got),
        "arguments {got} vs {args}"
    );
    assert!(collectives(&r, "all-gather") >= 1, "{r}");
    // The CUDA plugin gives no cost analysis without a GPU.
    assert!(r["compiled"]["flops"].is_null());
    // XLA's H100 SXM spec: 84,942,979,072 bytes.
    assert_eq!(r["memory_limit"].as_u64(), Some(84_942_979_072));
}

#[test]
fn two_hosts_of_eight_h100s_each_address_their_own_devices() {
    let r = plan_with("gpu-h100:2x8", "fsdp=16", &["--batch-size", "16"]);
    assert_eq!(r["hosts"], 2);
    let hosts = &r["compiled"]["host_devices"];
    let ids = |h: &str| -> Vec<u64> {
        hosts[h]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids("0"), (0..8).collect::<Vec<_>>());
    assert_eq!(ids("1"), (8..16).collect::<Vec<_>>());
    assert!(collectives(&r, "all-gather") >= 1, "{r}");
}

#[test]
fn an_unknown_target_is_refused_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["plan", "--target", "tpu-v9:2x2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown target `tpu-v9:2x2`"), "{stderr}");
}

/// `axle plan ARGS` for llama-tiny, expected to fail before compiling:
/// returns stderr.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["plan", "--experiment", "llama-tiny"])
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    // Refused before any compile: no compile child ran.
    assert!(!stderr.contains("compil"), "{args:?}: {stderr}");
    stderr
}

#[test]
fn bad_meshes_counts_and_options_are_refused_before_compiling() {
    let e = refused(&["--target", "tpu-v5e:2x2", "--mesh", "fsdp=2"]);
    assert!(
        e.contains("mesh fsdp=2 has 2 devices but target tpu-v5e:2x2 has 4"),
        "{e}"
    );
    let e = refused(&["--target", "gpu-h100:0"]);
    assert!(
        e.contains("gpu-h100:0") && e.contains("at least one GPU"),
        "{e}"
    );
    let e = refused(&["--target", "gpu-h100:100000"]);
    assert!(e.contains("65536"), "{e}");
    let e = refused(&[
        "--target",
        "tpu-v5e:2x2",
        "--mesh",
        "fsdp=4",
        "--json",
        "/nonexistent-dir/plan.json",
    ]);
    assert!(e.contains("plan JSON /nonexistent-dir/plan.json"), "{e}");
    let e = refused(&["--target", "tpu-v5e:2x2", "--search", "--mesh", "fsdp=4"]);
    assert!(e.contains("--search") && e.contains("--mesh"), "{e}");
    let e = refused(&["--target", "tpu-v5e:2x2", "--search", "--json", "x.json"]);
    assert!(e.contains("--search") && e.contains("--json"), "{e}");
}

#[test]
fn a_failed_plan_leaves_an_existing_json_file_as_it_was_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("old.json");
    std::fs::write(&existing, "previous plan").unwrap();
    let new = dir.path().join("new.json");
    for json in [&existing, &new] {
        let json = json.to_str().unwrap();
        let e = refused(&[
            "--target",
            "tpu-v5e:2x2",
            "--mesh",
            "fsdp=2",
            "--json",
            json,
        ]);
        assert!(e.contains("mesh fsdp=2"), "{e}");
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "previous plan");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn input_errors_are_refused_before_compiling_naming_the_flag() {
    // Batch 3 splits over no mesh of 4 devices (every candidate shards the
    // batch 2 or 4 ways): one error, exit 1, no compile.
    let e = refused(&["--target", "tpu-v5e:2x2", "--search", "--batch-size", "3"]);
    assert!(e.contains("size 3 is not divisible"), "{e}");
    // A sequence whose attention scores (8 x 10^11 x 10^11) are beyond
    // i64 bytes is refused after tracing, naming the op and the fields.
    let e = refused(&[
        "--target",
        "tpu-v5e:2x2",
        "--mesh",
        "fsdp=4",
        "--seq-len",
        "99999999999",
    ]);
    assert!(
        e.contains("too large") && e.contains("input.seq_len=99999999999"),
        "{e}"
    );
    for kind in [("vit-tiny", "vit"), ("mlp-regressor", "mlp_regressor")] {
        let out = Command::new(env!("CARGO_BIN_EXE_axle"))
            .args(["plan", "--experiment", kind.0, "--target", "tpu-v5e:2x2"])
            .args(["--mesh", "data=4", "--seq-len", "64"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{e}");
        assert!(
            e.contains("--seq-len 64") && e.contains(&format!("`{}`", kind.1)),
            "{e}"
        );
    }
    let e = refused(&[
        "--target",
        "tpu-v5e:2x2",
        "--mesh",
        "fsdp=4",
        "--modifier",
        "remat=names:nonexistent",
    ]);
    assert!(
        e.contains("`nonexistent`") && e.contains("attention_out"),
        "{e}"
    );
    // gpu-h100:3: the default rule `data=-1,fsdp=8` cannot take 3 devices.
    let e = refused(&["--target", "gpu-h100:3"]);
    assert!(
        e.contains("cannot infer") && e.contains("hint: ") && e.contains("--mesh"),
        "{e}"
    );
    let e = refused(&[
        "--target",
        "tpu-v5e:2x2",
        "--mesh",
        "fsdp=4",
        "--batch-size",
        "6",
    ]);
    assert!(e.contains("hint: ") && e.contains("--batch-size"), "{e}");
}

/// `--experiment hf:DIR` plans the Hugging Face model of DIR's config.json
/// (the llama fixture: hidden 48, 2 layers, 4 heads and 2 key/value heads
/// of 12, MLP 96, untied head). On data=4 every chip holds the parameters
/// and AdamW's two moments, f32: at least 12 bytes per parameter.
#[test]
fn a_hugging_face_config_is_planned() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hf/llama");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/config.json")).unwrap())
            .unwrap();
    let vocab = config["vocab_size"].as_u64().unwrap();
    let (d, kv, mlp) = (48, 24, 96);
    let layer = d * d * 2 + d * kv * 2 + 3 * d * mlp + 2 * d;
    let params = 2 * vocab * d + 2 * layer + d;
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("plan.json");
    let status = Command::new(env!("CARGO_BIN_EXE_axle"))
        .args(["plan", "--experiment", &format!("hf:{dir}")])
        .args(["--target", "tpu-v5e:2x2", "--mesh", "data=4", "--json"])
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let arguments = bytes(&r, "arguments");
    // Lower bound exact (params + 2 moments); the rest is the batch and
    // a few scalars (step count): under 1 MiB here.
    let state = 12.0 * params as f64;
    assert!(
        arguments >= state && arguments < state + 1024.0 * 1024.0,
        "{arguments} vs {state}"
    );
}

/// The default mesh rules plan one TPU and one GPU target (the other
/// families: `scripts/plan-all-targets.sh`, docs/benchmarks.md): with no
/// `--mesh`, each compiles on the mesh of the rule its devices match, with
/// that rule's XLA options, and the report names both.
#[test]
fn default_rules_plan_a_tpu_and_a_gpu_with_their_mesh_and_xla_options() {
    for (target, selector) in [("tpu-v5e:2x2", "tpu-v5e-4"), ("gpu-h100:4", "cuda-h100-4")] {
        let rule = MeshRules::default().find(selector).unwrap().clone();
        let r = plan_args(target, &[]);
        assert_eq!(r["mesh"], "fsdp=4", "{target}");
        assert_eq!(r["mesh_rule"], rule.pattern.as_str(), "{target}");
        assert_eq!(r["compiler_options_rule"], rule.pattern.as_str());
        let options: Vec<String> = rule
            .compiler_options
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(!options.is_empty(), "{target}");
        assert_eq!(
            r["compiler_options"],
            serde_json::json!(options),
            "{target}"
        );
        assert!(collectives(&r, "all-gather") >= 1, "{r}");
    }
}

/// `--xla-option` replaces the rule's option of its name in place and adds a new one after the
/// rule's; the report names both sources. A malformed option is a usage error.
#[test]
fn xla_options_from_the_command_line_go_over_the_rules() {
    let rule = MeshRules::default().find("tpu-v5e-4").unwrap().clone();
    let replaced = "xla_tpu_enable_latency_hiding_scheduler";
    assert!(rule.compiler_options.iter().any(|o| o.name == replaced));
    let r = plan_with(
        "tpu-v5e:2x2",
        "fsdp=4",
        &[
            "--xla-option",
            &format!("{replaced}=false"),
            "--xla-option",
            "xla_tpu_enable_all_gather_offload_tracing=true",
        ],
    );
    let mut want: Vec<String> = rule
        .compiler_options
        .iter()
        .map(|o| match o.name == replaced {
            true => format!("{replaced}=false"),
            false => o.to_string(),
        })
        .collect();
    want.push("xla_tpu_enable_all_gather_offload_tracing=true".into());
    assert_eq!(r["compiler_options"], serde_json::json!(want));
    assert_eq!(
        r["compiler_options_rule"],
        format!("{} + --xla-option", rule.pattern)
    );
    // A usage error (exit status 2) naming the option and what is wrong with it.
    for (bad, why) in [
        ("xla_tpu_x", "expected NAME=VALUE"),
        ("XLA_TPU=1", "the name must be `xla_`"),
        ("xla_tpu_x=", "non-empty"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_axle"))
            .args(["plan", "--target", "tpu-v5e:2x2", "--xla-option", bad])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{e}");
        assert!(e.contains(&format!("'{bad}'")) && e.contains(why), "{e}");
    }
}

/// The compile child passes a rule's options to the compiler, and libtpu
/// refuses one it does not know by name (an error, not an abort): what
/// `axle plan` turns into an error naming the rule and the option.
#[test]
fn libtpu_refuses_an_unknown_option_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("step.mlir");
    let report = dir.path().join("report.json");
    let axle = env!("CARGO_BIN_EXE_axle");
    let lowered = Command::new(axle)
        .args(["lower", "--set", "decoder.transformer.num_layers=1"])
        .args(["--mesh", "fsdp=4", "--cpu-devices", "4", "-o"])
        .arg(&program)
        .output()
        .unwrap();
    assert!(lowered.status.success(), "{lowered:?}");
    let out = Command::new("unshare")
        .args(["--net", "--", axle, "plan", "--target", "tpu-v5e:2x2"])
        .env("TPU_SKIP_MDS_QUERY", "1")
        .env("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        .arg("--compile-child")
        .arg(&program)
        .arg("--child-report")
        .arg(&report)
        .args([
            "--compile-child-option",
            "xla_tpu_no_such_option_in_axle=true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let outcome: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let message = outcome["Refused"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("No such compile option: 'xla_tpu_no_such_option_in_axle'"),
        "{outcome}"
    );
}

/// Forward FLOPs of the one layer for the whole batch: its matmuls (2 per
/// parameter per token) and attention's scores and weighted sums.
fn layer_forward_flops() -> f64 {
    let tokens = (BATCH * SEQ) as f64;
    let matmul_params = (4 * D * D + 3 * D * HIDDEN) as f64;
    let attention = (BATCH * HEADS * 2 * 2 * SEQ * SEQ * HEAD_DIM) as f64;
    2.0 * matmul_params * tokens + attention
}

/// What `axle plan --search` ranks remat policies by: the compiler's FLOPs
/// count the recomputation. Full remat replays the layer's forward pass in
/// the backward pass, so it adds one layer forward per device; `dots`
/// saves the matmul outputs and replays only the cheap ops between them.
#[test]
fn remat_adds_its_recomputation_to_the_compilers_flops() {
    let flops = |policy: &str| {
        let r = plan_with(
            "tpu-v5e:2x2",
            "fsdp=4",
            &["--modifier", &format!("remat={policy}")],
        );
        bytes(&r, "flops")
    };
    let (none, dots, full) = (flops("none"), flops("dots"), flops("full"));
    let replay = layer_forward_flops() / 4.0;
    // The closed form counts matmuls and attention; the norms, RoPE,
    // softmax and SwiGLU's elementwise ops replay too (measured: +1.8%):
    // within [1.0, 1.1] of it.
    let added = full - none;
    assert!(
        (replay..=1.1 * replay).contains(&added),
        "full remat adds {added} FLOPs, one layer forward per device is {replay}"
    );
    // `dots` replays only the elementwise ops (measured: 2% of the layer's
    // forward): more than nothing, well under a tenth.
    assert!(
        dots > none && dots - none < 0.1 * replay,
        "none {none}, dots {dots}"
    );
}

/// `remat=offload:attention_out,ffn_out` on TPU v5e: XLA's host offloader
/// keeps the offloaded activations in host memory, so the optimized HLO
/// holds buffers (and the copies that move them) in memory space 5
/// (`S(5)`); `names:` with the same names keeps everything on the device.
#[test]
fn offloaded_activations_live_in_tpu_host_memory() {
    let count = |policy: &str| {
        let report = plan_with(
            "tpu-v5e:2x2",
            "fsdp=4",
            &["--modifier", &format!("remat={policy}")],
        );
        report["compiled"]["host_memory_instructions"]
            .as_u64()
            .unwrap()
    };
    assert!(count("offload:attention_out,ffn_out") > 0);
    assert_eq!(count("names:attention_out,ffn_out"), 0);
}
