//! Generation with a key/value cache on the CPU plugin: greedy decoding of
//! a batch of prompts of different lengths equals a step-by-step
//! recomputation of the whole sequence without a cache (the training
//! forward), token for token and in its logits; tensor-parallel decoding
//! on a 2-device `model` mesh gives the same; sampling with a seed is
//! reproducible; top-k = 1 is greedy; top-k/top-p at temperature 0 and
//! positions beyond the model's are refused; several continuations print
//! under a header each.

use axle::backend::{HostTensor, compile};
use axle::compiler::{DType, FunctionBuilder};
use axle::experiment::resolve_config;
use axle::generate::{
    Generation, Generator, MAX_POSITIONS, Sampling, argmax, continuations_text, is_byte_level,
};
use axle::modules::{CausalLm, Ctx, ModelConfig, Module, declare_params, init_params};
use axle::partition::{LogicalRules, Mesh, MeshShape};
use axle::runtime::Client;
use ndarray::{ArrayD, IxDyn};

/// A two-layer, 64-wide llama-tiny (RoPE, untied head, vocabulary 256),
/// and its experiment's sharding rules.
fn model(extra: &[&str]) -> (CausalLm, LogicalRules) {
    let mut overrides = vec![
        "decoder.dim=64",
        "decoder.transformer.num_layers=2",
        "decoder.transformer.layers.0.feed_forward.hidden_dim=128",
        "decoder.vocab_size=256",
    ];
    overrides.extend_from_slice(extra);
    let config = resolve_config("llama-tiny", &[] as &[&str], &overrides).expect("config");
    let ModelConfig::CausalLm(lm) = &config.model else {
        panic!("llama-tiny is a causal LM")
    };
    (CausalLm::new(lm).expect("model"), config.sharding.clone())
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![3, 141, 59, 26, 5],
        vec![200, 7, 7, 7, 18, 28, 182, 84, 59, 0, 45],
        vec![11, 22, 33, 44, 55, 66, 77, 88],
    ]
}

const NEW_TOKENS: usize = 6;

fn generate(
    model: &CausalLm,
    rules: &LogicalRules,
    devices: usize,
    mesh: &str,
    sampling: &Sampling,
) -> Generation {
    let client =
        Client::cpu(devices).expect("the CPU PJRT plugin loads (scripts/test.sh installs it)");
    let mesh: Mesh = mesh
        .parse::<MeshShape>()
        .expect("mesh")
        .resolve(devices)
        .expect("fits");
    let params = init_params(&model.param_specs(), 3);
    let mut generator =
        Generator::new(&client, model.clone(), &mesh, rules, &params).expect("places");
    generator
        .generate(&prompts(), NEW_TOKENS, sampling, &[], true)
        .expect("generates")
}

/// Greedy decoding by recomputing the whole sequence at every step with the
/// training forward (`Decoder::forward`, no cache): each row right-padded
/// to one length, which causal attention never lets the real tokens see.
/// Returns the tokens and the logits each was chosen from.
fn recompute_greedy(model: &CausalLm) -> (Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>) {
    let prompts = prompts();
    let rows = prompts.len();
    let len = prompts.iter().map(Vec::len).max().expect("prompts") + NEW_TOKENS;
    let specs = model.param_specs();
    let b = FunctionBuilder::new("forward");
    let params = declare_params(&b, &specs, DType::F32);
    let ids = b.param("ids", DType::I32, &[rows, len]);
    let mut ctx = Ctx::new(params, false, None);
    let logits = ctx
        .scope("decoder", |c| model.decoder.forward(c, &ids, None, None))
        .expect("traces");
    let f = b.build(&[("logits", &logits)]).expect("builds");
    let program = compile(&Client::cpu(1).expect("plugin"), &f).expect("compiles");
    let values = init_params(&specs, 3);
    let vocab = model.decoder.vocab_size;
    let mut sequences = prompts.clone();
    let mut all_logits = Vec::new();
    for _ in 0..NEW_TOKENS {
        let mut padded = ArrayD::<i32>::zeros(IxDyn(&[rows, len]));
        for (r, s) in sequences.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                padded[[r, t]] = id as i32;
            }
        }
        let mut args: Vec<HostTensor> = values.values().map(|v| v.clone().into()).collect();
        args.push(padded.into());
        let out: ArrayD<f32> = program
            .run(&args)
            .expect("runs")
            .remove(0)
            .try_into()
            .expect("f32");
        let mut step = Vec::new();
        for (r, s) in sequences.iter_mut().enumerate() {
            let row: Vec<f32> = (0..vocab).map(|v| out[[r, s.len() - 1, v]]).collect();
            s.push(argmax(&row));
            step.push(row);
        }
        all_logits.push(step);
    }
    let tokens = sequences
        .iter()
        .zip(&prompts)
        .map(|(s, p)| s[p.len()..].to_vec())
        .collect();
    (tokens, all_logits)
}

/// The largest difference between two `[step][row][vocab]` logits.
fn max_difference(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// f32 logits of magnitude about 1-4 through two layers, summed in other
/// orders (attention over the cache's slots instead of the sequence, with
/// masked slots adding exact zeros): rounding differences of some 1e-6;
/// 1e-4 leaves margin while a wrong position, mask or cache slot moves
/// logits by 1e-2 or more.
const LOGIT_TOLERANCE: f32 = 1e-4;

#[test]
fn greedy_with_a_cache_equals_recomputing_without_one() {
    let (model, rules) = model(&[]);
    let cached = generate(&model, &rules, 1, "data=1", &Sampling::greedy());
    let (tokens, logits) = recompute_greedy(&model);
    assert_eq!(cached.tokens, tokens, "greedy continuations");
    let diff = max_difference(&cached.logits, &logits);
    eprintln!(
        "greedy: max logit difference {diff:e}, {:.0} decode tokens/s",
        cached.decode_tokens_per_s
    );
    assert!(diff < LOGIT_TOLERANCE, "max logit difference {diff}");

    // Tensor-parallel: heads and MLP split over a 2-device `model` axis.
    let parallel = generate(&model, &rules, 2, "model=2", &Sampling::greedy());
    assert_eq!(
        parallel.tokens, tokens,
        "tensor-parallel greedy continuations"
    );
    let diff = max_difference(&parallel.logits, &logits);
    assert!(
        diff < LOGIT_TOLERANCE,
        "tensor-parallel max logit difference {diff}"
    );

    // A scanned stack decodes through slices of its stacked parameters.
    let (scanned, rules) = self::model(&["decoder.transformer.scan=true"]);
    let from_scan = generate(&scanned, &rules, 1, "data=1", &Sampling::greedy());
    let (tokens, _) = recompute_greedy(&scanned);
    assert_eq!(
        from_scan.tokens, tokens,
        "scanned-stack greedy continuations"
    );
}

#[test]
fn seeded_sampling_is_reproducible_and_top_k_1_is_greedy() {
    let (model, rules) = model(&[]);
    let sampling = |seed, top_k, top_p| Sampling {
        temperature: 1.0,
        top_k,
        top_p,
        seed,
    };
    let a = generate(&model, &rules, 1, "data=1", &sampling(1, None, Some(0.9)));
    let b = generate(&model, &rules, 1, "data=1", &sampling(1, None, Some(0.9)));
    assert_eq!(a.tokens, b.tokens, "the same seed draws the same tokens");
    let c = generate(&model, &rules, 1, "data=1", &sampling(2, None, Some(0.9)));
    assert_ne!(
        a.tokens, c.tokens,
        "another seed draws other tokens (18 draws at temperature 1)"
    );
    let greedy = generate(&model, &rules, 1, "data=1", &Sampling::greedy());
    let top1 = generate(&model, &rules, 1, "data=1", &sampling(9, Some(1), None));
    assert_eq!(top1.tokens, greedy.tokens, "top-k = 1 is greedy");
}

#[test]
fn top_k_or_top_p_without_a_temperature_is_refused() {
    for (top_k, top_p) in [(Some(5), None), (None, Some(0.9))] {
        let sampling = Sampling {
            top_k,
            top_p,
            ..Sampling::greedy()
        };
        let message = sampling.validate().expect_err("greedy ignores them");
        assert!(message.contains("--temperature"), "{message}");
    }
}

/// Prompt plus new tokens beyond the positions a model has are refused before anything is
/// compiled: a RoPE model's cap (`MAX_POSITIONS`), and a GPT-2's position embedding rows
/// (`n_positions` of the fixture's config.json).
#[test]
fn generating_beyond_the_positions_is_refused() {
    let client = Client::cpu(1).expect("the CPU PJRT plugin loads");
    let mesh: Mesh = "data=1"
        .parse::<MeshShape>()
        .expect("mesh")
        .resolve(1)
        .expect("fits");
    let (rope, rules) = model(&[]);
    let params = init_params(&rope.param_specs(), 3);
    let mut generator = Generator::new(&client, rope, &mesh, &rules, &params).expect("places");
    assert_eq!(generator.max_positions(), MAX_POSITIONS);
    let err = generator
        .generate(&prompts(), 100_000, &Sampling::greedy(), &[], false)
        .expect_err("beyond the cap");
    let expected =
        format!("longest prompt (11 tokens) + 100000 new tokens > {MAX_POSITIONS} positions");
    assert!(err.to_string().contains(&expected), "{err}");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/gpt2");
    let hf = axle::hf::read_config(&dir).expect("config");
    let n_positions = hf
        .config
        .decoder
        .position_embedding
        .as_ref()
        .and_then(|p| p.num_embeddings);
    let params = axle::hf::import_params(&dir, &hf).expect("imports");
    let gpt2 = CausalLm::new(&hf.config).expect("model");
    let mut generator = Generator::new(&client, gpt2, &mesh, &rules, &params).expect("places");
    assert_eq!(Some(generator.max_positions()), n_positions);
    let limit = generator.max_positions();
    let err = generator
        .generate(
            &[vec![1, 2, 3, 4, 5]],
            limit - 4,
            &Sampling::greedy(),
            &[],
            false,
        )
        .expect_err("beyond the position embedding");
    let expected = format!(
        "longest prompt (5 tokens) + {} new tokens > {limit} positions",
        limit - 4
    );
    assert!(err.to_string().contains(&expected), "{err}");
}

#[test]
fn several_continuations_print_under_a_header_each() {
    let prompts = ["Hello".to_string(), "Bye".to_string()];
    let texts = [" world\nagain".to_string(), " now".to_string()];
    assert_eq!(
        continuations_text(&prompts, &texts),
        "=== prompt 1: Hello ===\n world\nagain\n=== prompt 2: Bye ===\n now\n"
    );
    assert_eq!(
        continuations_text(&prompts[..1], &texts[..1]),
        " world\nagain\n"
    );
}

/// Which runs without a recorded tokenizer take text as bytes: by the rule
/// of `axle train` (a data file other than `.npy`/`.bin` without
/// `--tokenizer` is read as bytes) or a byte vocabulary, never an imported
/// Hugging Face model.
#[test]
fn byte_level_runs_are_told_from_the_record() {
    let record = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let cases = [
        (record(&[("data", "/d/corpus.txt")]), 1024, true),
        (record(&[("data", "/d/tokens.bin")]), 1024, false),
        (record(&[("data", "/d/rows.npy")]), 1024, false),
        (record(&[("data", "")]), 1024, false),
        (record(&[("data", "")]), 256, true),
        (record(&[]), 259, true),
        (record(&[("experiment", "hf:/m"), ("data", "")]), 256, false),
    ];
    for (run, vocab, bytes) in cases {
        assert_eq!(is_byte_level(&run, vocab), bytes, "{run:?}, vocab {vocab}");
    }
}
