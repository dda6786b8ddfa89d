//! Sharded training of llama-tiny (batch 8, seq 128, AdamW) on virtual CPU
//! devices equals training on one device: data parallel, FSDP, tensor,
//! sequence and a 3-axis mix on 8 devices; FSDP's placement on the device
//! buffers; the collectives XLA inserted for each strategy; the default
//! mesh rules picking the mesh from the device count; bad meshes refused
//! before anything is compiled.
//!
//! Every sharded run is compared with one single-device run (computed once,
//! shared by the tests) on the same batches from the same initial
//! parameters. Tolerances (f32 everywhere; a sharded program adds the same
//! numbers in another order: partial sums per device, then a collective):
//! - losses and gradient norms: relative 1e-5. Measured: losses at most
//!   1.3e-7, gradient norms at most 6.5e-7 (tensor, step 2). Rounding in a
//!   different reduction order is ~1e-7 relative per sum and three steps
//!   compound it little.
//! - parameters after 3 AdamW steps: absolute 0.5 * lr per coordinate, and
//!   the difference of the parameter updates (final - initial, over all
//!   coordinates) within 1e-3 of the single-device update in L2 norm. AdamW
//!   scales each update to about lr whatever the gradient's size
//!   (`m / (sqrt(v) + eps)`), so where a gradient is tiny (e.g. embedding
//!   rows of tokens seen once or twice) a rounding-level gradient
//!   difference becomes a visible fraction of lr.
//!   Measured: at most 0.12 lr, on `decoder/token_embedding/weight`; the
//!   relative update difference is at most 6.6e-5 (mix). A wrong
//!   sharding (a missing or doubled reduction, a shard on the wrong rows)
//!   gives some tensor a wrong gradient, so Adam moves its coordinates by
//!   about lr in other directions: differences of order lr per coordinate,
//!   and even for the smallest tensor (a 256-element norm scale among 3.7M
//!   parameters) about sqrt(256 / 3.7e6) = 8e-3 of the update's L2 norm.

mod sharding_common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axle::learner::LearnerConfig;
use axle::partition::{LogicalAxis, LogicalRules, Mesh, MeshRules, choose_mesh, device_selector};
use axle::runtime::{Client, HloModule};
use axle::train_step::ArgSpec;
use axle::trainer::{TrainError, Trainer};
use axle_modules::{BatchShape, CausalLm, ParamTree, registered_model};
use ndarray::ArrayD;
use sharding_common::{
    LR, Run, STEPS, assert_matches, assert_no_full_sequence_matmul, llama_tiny_trainer, params,
    shapes_of, train_llama_tiny,
};

/// The single-device run and the parameters it started from.
struct Reference {
    run: Run,
    initial: ParamTree<ArrayD<f32>>,
}

/// llama-tiny with its registered batch size and sequence length.
fn llama_tiny() -> (CausalLm, usize, usize) {
    let reg = registered_model("llama-tiny").unwrap();
    let model = CausalLm::new(&reg.config).unwrap();
    (model, reg.batch_size, reg.seq_len)
}

/// The single-device run every sharded run is compared with (computed once).
fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let client = Client::cpu(1).unwrap();
        let mut trainer = llama_tiny_trainer(
            &client,
            &Mesh::new(&[("data", 1)], 1).unwrap(),
            &LogicalRules::default(),
        );
        let initial = params(&trainer);
        Reference {
            run: train_llama_tiny(&mut trainer),
            initial,
        }
    })
}

/// Asserts that `run` equals the single-device run within the module's
/// tolerances.
fn assert_matches_reference(run: &Run, what: &str) {
    let reference = reference();
    assert_matches(what, run, &reference.run, &reference.initial, LR);
}

/// Sequence parallelism (data=2, seq=4) really splits the work: no matmul
/// runs on the flattened rows of a device's 4 sequences at full length
/// (4 x 128 = 512 rows), which is what a `batch x seq` flatten that Shardy
/// cannot split along `seq` would produce.
fn assert_sequence_split(hlo: &HloModule) {
    assert_no_full_sequence_matmul(hlo, 4 * 128);
}

const COLLECTIVES: [&str; 5] = [
    "all-reduce",
    "all-gather",
    "reduce-scatter",
    "all-to-all",
    "collective-permute",
];

/// How many of each collective the optimized program holds.
fn collective_counts(hlo: &HloModule) -> BTreeMap<&'static str, usize> {
    COLLECTIVES
        .iter()
        .map(|&op| (op, hlo.find_opcode(op).count()))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// FSDP over all 8 devices: every matrix (parameter and AdamW moment) is
/// split 8 ways along one dimension on the devices, vectors (norm scales)
/// and the step counter are whole on each. Checked on the buffers the last
/// step returned.
fn assert_fsdp_placement<'a>(
    carried: impl Iterator<Item = (&'a ArgSpec, &'a axle::runtime::ShardedArray)>,
) {
    let (mut matrices, mut moments, mut device_elems, mut total_elems) = (0, 0, 0, 0);
    for (arg, array) in carried {
        let total: usize = arg.shape.iter().product();
        assert_eq!(array.shards().len(), 8, "{}", arg.name);
        for shard in array.shards() {
            let dims = shard.dims();
            let split: Vec<usize> = (0..dims.len())
                .filter(|&d| dims[d] != arg.shape[d])
                .collect();
            if arg.shape.len() >= 2 {
                assert_eq!(
                    split.len(),
                    1,
                    "{}: shard {dims:?} of {:?}",
                    arg.name,
                    arg.shape
                );
                assert_eq!(dims[split[0]] * 8, arg.shape[split[0]], "{}", arg.name);
            } else {
                assert!(
                    split.is_empty(),
                    "{}: shard {dims:?} of {:?}",
                    arg.name,
                    arg.shape
                );
            }
        }
        if arg.shape.len() >= 2 {
            if arg.name.starts_with("opt/") {
                moments += 1;
            } else {
                matrices += 1;
            }
        }
        device_elems += array.shards()[0].dims().iter().product::<usize>();
        total_elems += total;
    }
    eprintln!(
        "fsdp: {matrices} matrices and {moments} moments split 8 ways; device 0 holds {device_elems} of {total_elems} carried elements ({:.3})",
        device_elems as f64 / total_elems as f64
    );
    // llama-tiny: embedding, LM head, 4 layers x (4 attention + 3 MLP).
    assert_eq!(matrices, 30);
    assert_eq!(moments, 2 * matrices, "AdamW's mu and nu of every matrix");
}

/// `dims` sorted: XLA may reduce a gradient in transposed form (the LM
/// head's `[256, 1024]` weight gets its gradient as `[1024, 256]`).
fn sorted(dims: &[usize]) -> Vec<usize> {
    let mut dims = dims.to_vec();
    dims.sort_unstable();
    dims
}

/// FSDP's collectives: every sharded weight is all-gathered to its full
/// shape for the forward and backward passes, and its gradient is summed
/// over the devices either by a reduce-scatter to the device's shard or by
/// an all-reduce of the whole gradient (in any layout). XLA's CPU pipeline
/// has no reduce-scatter creator (that pass is GPU-only), so on this plugin
/// it keeps the partitioner's all-reduce followed by a dynamic-slice.
fn assert_fsdp_collectives(hlo: &HloModule, trainer: &Trainer) {
    let gathered = shapes_of(hlo, "all-gather");
    let reduced: Vec<Vec<usize>> = shapes_of(hlo, "all-reduce")
        .iter()
        .map(|d| sorted(d))
        .collect();
    let scattered: Vec<Vec<usize>> = shapes_of(hlo, "reduce-scatter")
        .iter()
        .map(|d| sorted(d))
        .collect();
    let step = trainer.train_step();
    for arg in &step.args[..step.param_specs.len()] {
        if arg.shape.len() < 2 {
            continue;
        }
        let mut shard = arg.shape.clone();
        let d = arg
            .partition
            .dims()
            .iter()
            .position(|d| !d.axes().is_empty())
            .unwrap();
        shard[d] /= 8;
        assert!(
            gathered.contains(&arg.shape),
            "{}: no all-gather to {:?}",
            arg.name,
            arg.shape
        );
        assert!(
            reduced.contains(&sorted(&arg.shape)) || scattered.contains(&sorted(&shard)),
            "{}: gradient neither all-reduced at {:?} nor reduce-scattered to {shard:?}",
            arg.name,
            arg.shape
        );
    }
}

/// A strategy of the 8-device test: its mesh and the collectives its
/// optimized program must and must not hold.
struct Strategy {
    name: &'static str,
    mesh: &'static str,
    must: &'static [&'static str],
    must_not: &'static [&'static str],
}

const STRATEGIES: [Strategy; 5] = [
    // Replicated parameters: the gradient all-reduce, nothing to gather.
    Strategy {
        name: "data",
        mesh: "data=8",
        must: &["all-reduce"],
        must_not: &["all-gather"],
    },
    // Further checked by `assert_fsdp_collectives`.
    Strategy {
        name: "fsdp",
        mesh: "fsdp=8",
        must: &["all-gather"],
        must_not: &[],
    },
    // Partial sums of the model-split matmuls all-reduced; activations
    // split over `model` gathered where a whole row is needed (norms).
    Strategy {
        name: "tensor",
        mesh: "data=2,model=4",
        must: &["all-reduce", "all-gather"],
        must_not: &[],
    },
    // Activations split along the sequence, gathered for attention.
    Strategy {
        name: "sequence",
        mesh: "data=2,seq=4",
        must: &["all-gather", "all-reduce"],
        must_not: &[],
    },
    Strategy {
        name: "mix",
        mesh: "data=2,fsdp=2,model=2",
        must: &["all-reduce", "all-gather"],
        must_not: &[],
    },
];

#[test]
fn every_strategy_on_8_devices_matches_one_device() {
    let client = Client::cpu(8).unwrap();
    for Strategy {
        name,
        mesh,
        must,
        must_not,
    } in STRATEGIES
    {
        let mesh = Mesh::parse(mesh, 8).unwrap();
        let t0 = std::time::Instant::now();
        let mut trainer = llama_tiny_trainer(&client, &mesh, &LogicalRules::default());
        eprintln!(
            "{name} ({mesh}): built and compiled in {:.1?}",
            t0.elapsed()
        );
        let hlo = trainer.executable().optimized_hlo().unwrap();
        let counts = collective_counts(&hlo);
        eprintln!("{name}: collectives {counts:?}");
        for op in must {
            assert!(counts.contains_key(op), "{name}: no {op} in {counts:?}");
        }
        for op in must_not {
            assert!(
                !counts.contains_key(op),
                "{name}: unexpected {op} in {counts:?}"
            );
        }
        if name == "fsdp" {
            assert_fsdp_collectives(&hlo, &trainer);
        }
        if name == "sequence" {
            assert_sequence_split(&hlo);
        }
        let t0 = std::time::Instant::now();
        let run = train_llama_tiny(&mut trainer);
        eprintln!("{name}: {STEPS} steps in {:.1?}", t0.elapsed());
        assert_matches_reference(&run, name);
        if name == "fsdp" {
            assert_fsdp_placement(trainer.carried());
        }
    }
}

/// Only the device count changes between the two runs; the default mesh
/// rules, given the selector built from the client, pick the mesh.
#[test]
fn default_mesh_rules_pick_the_mesh_from_the_device_count() {
    for (devices, want) in [(4, "data=1,fsdp=4"), (8, "data=2,fsdp=4")] {
        let client = Client::cpu(devices).unwrap();
        let found = client.addressable_devices().unwrap();
        let platform = client.platform_name().unwrap();
        let selector = device_selector(&platform, &found[0].kind, found.len());
        assert_eq!(selector, format!("cpu-{devices}"));
        let choice = choose_mesh(None, &selector, &MeshRules::default(), devices).unwrap();
        assert_eq!(choice.mesh.to_string(), want, "{selector}");
        let run = train_llama_tiny(&mut llama_tiny_trainer(
            &client,
            &choice.mesh,
            &LogicalRules::default(),
        ));
        assert_matches_reference(&run, &format!("{selector} -> {want}"));
    }
}

/// The error of `Trainer::new` with `rules`, which must come from building
/// the step (before anything is compiled), as text.
fn step_error(
    model: &CausalLm,
    batch: usize,
    mesh: &Mesh,
    rules: &LogicalRules,
    client: &Client,
) -> String {
    let (_, _, seq) = llama_tiny();
    let learner = LearnerConfig::default();
    match Trainer::new(
        client,
        model,
        &learner,
        &BatchShape::new(batch, seq),
        mesh,
        rules,
        0,
    ) {
        Err(e @ TrainError::Step(_)) => e.to_string(),
        Err(e) => panic!("expected an error from building the step, got: {e}"),
        Ok(_) => panic!("{mesh}: bad input accepted"),
    }
}

#[test]
fn bad_meshes_are_refused_before_compiling() {
    let client = Client::cpu(8).unwrap();
    let (model, batch, seq) = llama_tiny();

    // A mesh larger than the devices: when it is made, and when a mesh made
    // for more devices meets a smaller client.
    let err = Mesh::new(&[("data", 16)], 8).unwrap_err().to_string();
    assert_eq!(
        err,
        "mesh `data=16` needs 16 devices but only 8 are available"
    );
    let small = Client::cpu(4).unwrap();
    let mesh = Mesh::new(&[("fsdp", 8)], 8).unwrap();
    let err = Trainer::new(
        &small,
        &model,
        &LearnerConfig::default(),
        &BatchShape::new(batch, seq),
        &mesh,
        &LogicalRules::default(),
        0,
    )
    .err()
    .unwrap();
    assert!(matches!(err, TrainError::Mesh { .. }), "{err}");
    assert!(
        err.to_string().contains("mesh fsdp=8") && err.to_string().contains("has 4"),
        "{err}"
    );

    // Indivisible dimensions: a batch of 4 over data=8, a vocabulary of 1020
    // over fsdp=8.
    let rules = LogicalRules::default();
    let mesh = Mesh::new(&[("data", 8)], 8).unwrap();
    let err = step_error(&model, 4, &mesh, &rules, &client);
    assert_eq!(
        err,
        "`input_ids`: dim 0 of size 4 is not divisible by 8 = product of its mesh axes data=8"
    );
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    cfg.decoder.vocab_size = Some(1020);
    let odd_vocab = CausalLm::new(&cfg).unwrap();
    let mesh = Mesh::new(&[("fsdp", 8)], 8).unwrap();
    let err = step_error(&odd_vocab, batch, &mesh, &rules, &client);
    assert_eq!(
        err,
        "`decoder/token_embedding/weight`: dim 0 of size 1020 is not divisible by 8 = product of its mesh axes fsdp=8"
    );

    // Unknown axes: in a mesh, and in the rules mapping a role to mesh axes.
    let err = Mesh::parse("data=2,modle=4", 8).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown mesh axis `modle` (known axes, in order: pipeline, data, expert, fsdp, seq, model)"
    );
    let mut typo = LogicalRules::default();
    typo.set(LogicalAxis::Mlp, &["modle"]);
    let err = step_error(&model, batch, &mesh, &typo, &client);
    assert_eq!(
        err,
        "`decoder/transformer/layers/0/feed_forward/down_proj/weight`: dim 0 is sharded over axis `modle`, which mesh `fsdp=8` does not have"
    );
}
