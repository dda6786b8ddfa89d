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

use std::collections::BTreeMap;

use axle::checkpoint::Meta;
use axle::data::{LanguageModelSource, Loader, Split, Synthetic};
use axle::experiment::resolve_config;
use axle::learner::LearnerConfig;
use axle::partition::{LogicalRules, Mesh};
use axle::runtime::{Client, HloModule, Shape};
use axle::trainer::Trainer;
use axle_modules::{BatchShape, CausalLm, ParamTree, registered_model};
use ndarray::ArrayD;

const STEPS: usize = 3;
/// The default learner's (constant) learning rate.
const LR: f32 = 1e-3;
const METRIC_RTOL: f32 = 1e-5;
const PARAM_ATOL_IN_LR: f32 = 0.5;
const UPDATE_RTOL: f64 = 1e-3;

/// The mesh both layouts use.
const MESH: &str = "fsdp=2,model=2";

struct Run {
    losses: Vec<f32>,
    grad_norms: Vec<f32>,
    params: ParamTree<ArrayD<f32>>,
}

/// The rules of llama-tiny's experiment after `overrides` (`--set` paths).
fn rules(overrides: &[&str]) -> LogicalRules {
    resolve_config("llama-tiny", &[], overrides)
        .unwrap()
        .sharding
}

fn trainer(client: &Client, mesh: &Mesh, rules: &LogicalRules) -> Trainer {
    let reg = registered_model("llama-tiny").unwrap();
    let model = CausalLm::new(&reg.config).unwrap();
    let shape = BatchShape::new(reg.batch_size, reg.seq_len);
    Trainer::new(
        client,
        &model,
        &LearnerConfig::default(),
        &shape,
        mesh,
        rules,
        0,
    )
    .unwrap_or_else(|e| panic!("{mesh}: {e}"))
}

fn params(trainer: &Trainer) -> ParamTree<ArrayD<f32>> {
    let meta = Meta {
        input_position: 0,
        rng_state: 0,
        run: BTreeMap::new(),
    };
    trainer.checkpoint(meta).unwrap().params
}

fn train(trainer: &mut Trainer) -> Run {
    let reg = registered_model("llama-tiny").unwrap();
    let task = LanguageModelSource::new(Box::new(Synthetic::new(1024, 0)), reg.seq_len);
    let mut loader = Loader::new(&task, Split::Train, reg.batch_size, 0);
    let (mut losses, mut grad_norms) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let metrics = trainer.step(&loader.next_batch(), 0).unwrap();
        assert_eq!(metrics.learning_rate, LR, "the tolerances assume this lr");
        losses.push(metrics.loss);
        grad_norms.push(metrics.grad_norm);
    }
    Run {
        losses,
        grad_norms,
        params: params(trainer),
    }
}

fn assert_close(what: &str, metric: &str, got: &[f32], want: &[f32]) {
    for (step, (got, want)) in got.iter().zip(want).enumerate() {
        let rel = (got - want).abs() / want.abs();
        eprintln!("{what}: step {step} {metric} {got} vs {want} (relative {rel:.1e})");
        assert!(
            rel <= METRIC_RTOL,
            "{what}: step {step} {metric} is {got}, on one device {want}"
        );
    }
}

/// `run` equals the single-device run `want` (which started from `initial`)
/// within the module's tolerances.
fn assert_matches(run: &Run, want: &Run, initial: &ParamTree<ArrayD<f32>>, what: &str) {
    assert_close(what, "loss", &run.losses, &want.losses);
    assert_close(what, "grad norm", &run.grad_norms, &want.grad_norms);
    let (mut worst, mut worst_path) = (0.0f32, "");
    let (mut diff_sq, mut update_sq) = (0.0f64, 0.0f64);
    for (path, want) in &want.params {
        let got = &run.params[path];
        let update = want - &initial[path];
        update_sq += update.iter().map(|&u| f64::from(u).powi(2)).sum::<f64>();
        for (g, w) in got.iter().zip(want) {
            let d = (g - w).abs();
            diff_sq += f64::from(d).powi(2);
            if d > worst {
                (worst, worst_path) = (d, path);
            }
        }
    }
    let update_rel = (diff_sq / update_sq).sqrt();
    eprintln!(
        "{what}: largest parameter difference {:.3} lr at {worst_path}; update differs by {update_rel:.1e} (relative L2)",
        worst / LR
    );
    assert!(
        worst <= PARAM_ATOL_IN_LR * LR,
        "{what}: {worst_path} differs by {worst} from the single-device run"
    );
    assert!(
        update_rel <= UPDATE_RTOL,
        "{what}: the update differs by {update_rel} (relative L2)"
    );
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

fn array_shapes(shape: &Shape) -> Vec<Vec<usize>> {
    if shape.tuple_shapes.is_empty() {
        vec![shape.dims()]
    } else {
        shape.tuple_shapes.iter().flat_map(array_shapes).collect()
    }
}

/// No 2-D matmul over the flattened rows of a device's full-length
/// sequences (`rows` of them).
fn assert_no_full_sequence_matmul(hlo: &HloModule, rows: usize) {
    let dots: Vec<Vec<usize>> = hlo
        .find_opcode("dot")
        .filter_map(|i| i.shape.as_ref())
        .flat_map(array_shapes)
        .collect();
    assert!(!dots.is_empty());
    for dims in &dots {
        assert!(
            !(dims.len() == 2 && dims[0] == rows),
            "a matmul over full-length sequences {dims:?} in {dots:?}"
        );
    }
}

#[test]
fn rules_alone_switch_between_mlp_tensor_parallel_and_sequence_parallel() {
    let reference = {
        let client = Client::cpu(1).unwrap();
        let mesh = Mesh::parse("data=1", 1).unwrap();
        let mut trainer = trainer(&client, &mesh, &LogicalRules::default());
        let initial = params(&trainer);
        (train(&mut trainer), initial)
    };
    let client = Client::cpu(4).unwrap();
    let mesh = Mesh::parse(MESH, 4).unwrap();

    // (a) Tensor parallel on the MLP only, FSDP over `fsdp`.
    let mlp_tp = rules(&[
        "sharding.heads=[]",
        "sharding.vocab=[]",
        "sharding.table_embed=[]",
    ]);
    let mut t = trainer(&client, &mesh, &mlp_tp);
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
    let run = train(&mut t);
    assert_matches(&run, &reference.0, &reference.1, "mlp tensor parallel");
    drop(t);

    // The default rules on the same mesh split the attention heads too.
    let t = trainer(&client, &mesh, &LogicalRules::default());
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
    let mut t = trainer(&client, &mesh, &sequence);
    assert_eq!(spec_of(&t, "input_ids"), "(fsdp, model)");
    assert_eq!(
        spec_of(&t, &format!("{layer}/feed_forward/up_proj/weight")),
        "(fsdp, _)"
    );
    let text = t.train_step().function.to_stablehlo();
    assert!(
        text.contains(r#"<@mesh, [{"fsdp"}, {"model"}, {}]>"#),
        "layer outputs split (batch over fsdp, sequence over model)"
    );
    // Each device holds 4 sequences (batch 8 over fsdp=2) of 128 tokens.
    assert_no_full_sequence_matmul(&t.executable().optimized_hlo().unwrap(), 4 * 128);
    let run = train(&mut t);
    assert_matches(
        &run,
        &reference.0,
        &reference.1,
        "sequence parallel over model",
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
