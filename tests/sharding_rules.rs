//! Two layouts of llama-tiny on the same 4 CPU devices (mesh
//! `fsdp=2,model=2`), switched by the experiment's logical rules alone: the
//! model config and the layers are the same in both, only `sharding.*`
//! overrides differ.
//!
//! - Tensor parallel on the MLP only, FSDP over `fsdp`: `sharding.heads=[]`,
//!   `sharding.vocab=[]` and `sharding.table_embed=[]` leave attention, the
//!   LM head and the embedding table unsplit on `model`, while `mlp` stays on
//!   `model` (the default). The trainer's
//!   device buffers show every MLP weight split on both axes and every
//!   attention weight split on `fsdp` only.
//! - Sequence parallel over the axis called `model`: `sharding.seq=["model"]`
//!   with `heads`, `mlp`, `vocab` and `table_embed` unsplit and `batch`,
//!   `embed`, `table_vocab` on `fsdp`.
//!   The layer outputs are constrained to `(fsdp, model, _)` and no matmul
//!   of the optimized program runs over a device's full-length sequences.
//!
//! Each trains 3 steps from the same initial parameters on the same batches
//! as one single-device run and must equal it within the tolerances of
//! tests/sharding.rs (whose module docs give the reasons): losses and
//! gradient norms relative 1e-5, parameters within 0.5 lr per coordinate,
//! the 3-step update within 1e-3 (relative L2).

mod sharding_common;

use std::collections::BTreeMap;

use axle::experiment::resolve_config;
use axle::partition::{LogicalRules, Mesh};
use axle::runtime::Client;
use axle::trainer::Trainer;
use sharding_common::{
    LR, assert_matches, assert_no_full_sequence_matmul, llama_tiny_trainer, params,
    train_llama_tiny,
};

/// The mesh both layouts use.
const MESH: &str = "fsdp=2,model=2";

/// The rules of llama-tiny's experiment after `overrides` (`--set` paths).
fn rules(overrides: &[&str]) -> LogicalRules {
    resolve_config("llama-tiny", &[], overrides)
        .unwrap()
        .sharding
}

/// The shape device 0 holds of each carried parameter (not optimizer state).
fn device_shards(trainer: &Trainer) -> BTreeMap<String, (Vec<usize>, Vec<usize>)> {
    trainer
        .carried()
        .filter(|(arg, _)| !arg.name.starts_with("opt/"))
        .map(|(arg, array)| {
            (
                arg.name.clone(),
                (arg.shape.clone(), array.shards()[0].dims().to_vec()),
            )
        })
        .collect()
}

#[test]
fn rules_alone_switch_between_mlp_tensor_parallel_and_sequence_parallel() {
    let reference = {
        let client = Client::cpu(1).unwrap();
        let mesh = Mesh::parse("data=1", 1).unwrap();
        let mut trainer = llama_tiny_trainer(&client, &mesh, &LogicalRules::default());
        let initial = params(&trainer);
        (train_llama_tiny(&mut trainer), initial)
    };
    let client = Client::cpu(4).unwrap();
    let mesh = Mesh::parse(MESH, 4).unwrap();

    // (a) Tensor parallel on the MLP only, FSDP over `fsdp`.
    let mlp_tp = rules(&[
        "sharding.heads=[]",
        "sharding.vocab=[]",
        "sharding.table_embed=[]",
    ]);
    let mut t = llama_tiny_trainer(&client, &mesh, &mlp_tp);
    let spec_of = |t: &Trainer, name: &str| {
        let args = &t.train_step().args;
        let arg = args.iter().find(|a| a.name == name).unwrap();
        arg.partition.to_string()
    };
    let layer = "decoder/transformer/layers/0";
    assert_eq!(
        spec_of(&t, &format!("{layer}/feed_forward/up_proj/weight")),
        "(fsdp, model)"
    );
    assert_eq!(
        spec_of(&t, &format!("{layer}/attention/q_proj/weight")),
        "(fsdp, _)"
    );
    let (mut mlp, mut attention) = (0, 0);
    for (name, (shape, shard)) in device_shards(&t) {
        if name.contains("/feed_forward/") {
            // Both dimensions halved: one over `fsdp`, one over `model`.
            let halved: Vec<usize> = shape.iter().map(|d| d / 2).collect();
            assert_eq!(shard, halved, "{name}: {shape:?}");
            mlp += 1;
        } else if name.contains("/attention/") {
            // Only the `embed` side is split (over `fsdp`); heads stay whole.
            let split: Vec<usize> = (0..shape.len()).filter(|&d| shard[d] != shape[d]).collect();
            assert_eq!(split.len(), 1, "{name}: shard {shard:?} of {shape:?}");
            assert_eq!(shard[split[0]] * 2, shape[split[0]], "{name}");
            let embed_dim = if name.contains("/o_proj/") { 1 } else { 0 };
            assert_eq!(split[0], embed_dim, "{name}: shard {shard:?} of {shape:?}");
            attention += 1;
        }
    }
    eprintln!(
        "mlp tensor parallel: {mlp} MLP weights split on fsdp x model, {attention} attention weights on fsdp only"
    );
    assert_eq!((mlp, attention), (4 * 3, 4 * 4));
    let run = train_llama_tiny(&mut t);
    assert_matches("mlp tensor parallel", &run, &reference.0, &reference.1, LR);
    drop(t);

    // The default rules on the same mesh split the attention heads too.
    let t = llama_tiny_trainer(&client, &mesh, &LogicalRules::default());
    assert_eq!(
        spec_of(&t, &format!("{layer}/attention/q_proj/weight")),
        "(fsdp, model)"
    );
    drop(t);

    // (b) Sequence parallel over the axis called `model`.
    let sequence = rules(&[
        "sharding.batch=[\"fsdp\"]",
        "sharding.seq=[\"model\"]",
        "sharding.embed=[\"fsdp\"]",
        "sharding.heads=[]",
        "sharding.mlp=[]",
        "sharding.vocab=[]",
        "sharding.table_vocab=[\"fsdp\"]",
        "sharding.table_embed=[]",
    ]);
    let mut t = llama_tiny_trainer(&client, &mesh, &sequence);
    assert_eq!(spec_of(&t, "input_ids"), "(fsdp, model)");
    assert_eq!(
        spec_of(&t, &format!("{layer}/feed_forward/up_proj/weight")),
        "(fsdp, _)"
    );
    let text = t.train_step().function.to_stablehlo();
    assert!(
        text.contains(r#"<@mesh, [{"fsdp"}, {"model"}, {?}]>"#),
        "layer outputs split (batch over fsdp, sequence over model, width left to the partitioner)"
    );
    // Each device holds 4 sequences (batch 8 over fsdp=2) of 128 tokens.
    assert_no_full_sequence_matmul(&t.executable().optimized_hlo().unwrap(), 4 * 128);
    let run = train_llama_tiny(&mut t);
    assert_matches(
        "sequence parallel over model",
        &run,
        &reference.0,
        &reference.1,
        LR,
    );
}

/// The rules are part of the experiment's config: dumped as `sharding.*`
/// lines, changed by `--set`, with bad roles and axes named.
#[test]
fn rules_are_dumped_and_set_as_experiment_config() {
    let none: [&str; 0] = [];
    let dump = resolve_config("llama-tiny", &none, &none).unwrap().dump();
    for line in [
        r#"sharding.batch.0 = "data""#,
        r#"sharding.mlp.0 = "model""#,
        "sharding.layers = []",
    ] {
        assert!(dump.lines().any(|l| l == line), "{line} in\n{dump}");
    }
    let mut want = LogicalRules::default();
    want.set(axle::partition::LogicalAxis::Mlp, &["fsdp", "model"]);
    assert_eq!(rules(&[r#"sharding.mlp=["fsdp","model"]"#]), want);
    let err = resolve_config("llama-tiny", &[], &[r#"sharding.mlp=["modle"]"#]).unwrap_err();
    assert!(
        err.contains("sharding.mlp") && err.contains("unknown mesh axis `modle`"),
        "{err}"
    );
    let err = resolve_config("llama-tiny", &[], &["sharding.hidden=[]"]).unwrap_err();
    assert!(err.contains("sharding.hidden"), "{err}");
}
