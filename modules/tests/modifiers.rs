//! Each modifier, applied to every registered model, changes exactly the configs it should:
//! checked on the diff of the config dumps before and after, on the change in parameter count
//! against a closed form, and by tracing the modified small models.

use std::collections::BTreeSet;

use axle_compiler::DType;
use axle_modules::modifiers::{
    alternate_local_global, dropout, mha_to_gqa, qk_norm, rope_everywhere, sliding_window,
    swap_norms, swiglu_to_gelu, tie_embeddings,
};
use axle_modules::{
    CausalLm, CausalLmConfig, Config, LossSignature, MODEL_NAMES, Module, loss_and_grad_function,
    registered_model,
};

/// Lines of `before` that are not in `after`, and lines of `after` not in `before`.
fn diff(before: &CausalLmConfig, after: &CausalLmConfig) -> (Vec<String>, Vec<String>) {
    let a: BTreeSet<String> = before.dump().lines().map(String::from).collect();
    let b: BTreeSet<String> = after.dump().lines().map(String::from).collect();
    (
        a.difference(&b).cloned().collect(),
        b.difference(&a).cloned().collect(),
    )
}

fn apply(name: &str, modify: impl Fn(&mut CausalLmConfig)) -> (Vec<String>, Vec<String>) {
    let before = registered_model(name).unwrap().config;
    let mut after = before.clone();
    modify(&mut after);
    CausalLm::new(&after).unwrap_or_else(|e| panic!("{name} after the modifier: {e}"));
    diff(&before, &after)
}

const LAYER: &str = "decoder.transformer.layers.0";
const ATTENTION: &str = "decoder.transformer.layers.0.attention";
const FEED_FORWARD: &str = "decoder.transformer.layers.0.feed_forward";

fn count(cfg: &CausalLmConfig) -> i64 {
    CausalLm::new(cfg).unwrap().num_params() as i64
}

/// The shapes of the registered models, copied by hand from their definitions: vocabulary,
/// dim, layers, heads, feed-forward hidden width, and whether the LM head is untied.
fn shape(name: &str) -> (i64, i64, i64, i64, i64, bool) {
    match name {
        "llama-tiny" => (1024, 256, 4, 4, 704, true),
        "gpt2-tiny" => (1024, 256, 4, 4, 1024, false),
        "llama-small" => (8192, 640, 8, 10, 1728, true),
        "llama2-7b" => (32000, 4096, 32, 32, 11008, true),
        "llama2-70b" => (32000, 8192, 80, 64, 28672, true),
        _ => panic!("no shape for {name}"),
    }
}

/// The diff and the change in parameter count of `modify` on the registered model `name`.
fn apply_counted(
    name: &str,
    modify: impl Fn(&mut CausalLmConfig),
) -> (Vec<String>, Vec<String>, i64) {
    let before = registered_model(name).unwrap().config;
    let mut after = before.clone();
    modify(&mut after);
    let (removed, added) = diff(&before, &after);
    (removed, added, count(&after) - count(&before))
}

#[test]
fn rope_everywhere_touches_only_attention_rope() {
    for name in MODEL_NAMES {
        let (removed, added) = apply(name, |c| assert_eq!(rope_everywhere(c, 500000.0), 1));
        let had_rope = !name.starts_with("gpt2");
        let old = if had_rope {
            format!("{ATTENTION}.rope.theta = 10000.0")
        } else {
            format!("{ATTENTION}.rope = null")
        };
        assert_eq!(removed, vec![old], "{name}");
        assert_eq!(
            added,
            vec![format!("{ATTENTION}.rope.theta = 500000.0")],
            "{name}"
        );
    }
}

#[test]
fn swap_norms_swaps_every_norm_and_nothing_else() {
    let norms = [
        "decoder.output_norm",
        "decoder.transformer.layers.0.attention_norm",
        "decoder.transformer.layers.0.ffn_norm",
    ];
    for name in MODEL_NAMES {
        let (removed, added) = apply(name, |c| assert_eq!(swap_norms(c), 3));
        let is_layer_norm = name.starts_with("gpt2");
        for line in removed.iter().chain(&added) {
            assert!(
                norms.iter().any(|n| line.starts_with(&format!("{n}."))),
                "{name}: {line}"
            );
        }
        for norm in norms {
            let (from, to) = if is_layer_norm {
                ("layer_norm", "rms_norm")
            } else {
                ("rms_norm", "layer_norm")
            };
            assert!(
                removed.contains(&format!("{norm}.kind = \"{from}\"")),
                "{name}: {removed:?}"
            );
            assert!(
                added.contains(&format!("{norm}.kind = \"{to}\"")),
                "{name}: {added:?}"
            );
            // LayerNorm has a bias flag, RMSNorm none; eps is kept.
            let bias = format!("{norm}.bias = true");
            assert_eq!(added.contains(&bias), !is_layer_norm, "{name}: {added:?}");
            assert_eq!(
                removed.contains(&bias),
                is_layer_norm,
                "{name}: {removed:?}"
            );
        }
        assert_eq!(removed.len() + added.len(), 3 * 3, "{name}");
        // Swapping twice restores the model's config.
        let mut twice = registered_model(name).unwrap().config;
        swap_norms(&mut twice);
        swap_norms(&mut twice);
        assert_eq!(twice, registered_model(name).unwrap().config, "{name}");
    }
}

#[test]
fn mha_to_gqa_sets_kv_heads_of_multi_head_attention_only() {
    for name in MODEL_NAMES {
        let (removed, added) = apply(name, |c| assert_eq!(mha_to_gqa(c, 2), 1));
        if name == "llama2-70b" {
            assert!(
                removed.is_empty() && added.is_empty(),
                "already GQA: {removed:?} {added:?}"
            );
        } else {
            assert_eq!(
                removed,
                vec![format!("{ATTENTION}.num_kv_heads = null")],
                "{name}"
            );
            assert_eq!(
                added,
                vec![format!("{ATTENTION}.num_kv_heads = 2")],
                "{name}"
            );
        }
    }
}

#[test]
fn qk_norm_adds_an_rms_norm_of_head_dim_per_query_and_key() {
    for name in MODEL_NAMES {
        let (removed, added, delta) = apply_counted(name, |c| assert_eq!(qk_norm(c), 1));
        assert_eq!(
            removed,
            vec![format!("{ATTENTION}.qk_norm = null")],
            "{name}"
        );
        assert_eq!(
            added,
            vec![
                format!("{ATTENTION}.qk_norm.eps = 1e-6"),
                format!("{ATTENTION}.qk_norm.input_dim = null"),
                format!("{ATTENTION}.qk_norm.kind = \"rms_norm\""),
            ],
            "{name}"
        );
        // One scale of head_dim = dim / heads for queries and one for keys, per layer.
        let (_, dim, layers, heads, _, _) = shape(name);
        assert_eq!(delta, layers * 2 * (dim / heads), "{name}");
    }
}

#[test]
fn sliding_window_sets_every_window_and_no_parameters() {
    for name in MODEL_NAMES {
        let (removed, added, delta) = apply_counted(name, |c| assert_eq!(sliding_window(c, 64), 1));
        assert_eq!(
            removed,
            vec![format!("{ATTENTION}.sliding_window = null")],
            "{name}"
        );
        assert_eq!(
            added,
            vec![format!("{ATTENTION}.sliding_window = 64")],
            "{name}"
        );
        assert_eq!(delta, 0, "{name}");
    }
}

#[test]
fn alternate_local_global_doubles_the_pattern_with_a_local_first_entry() {
    for name in MODEL_NAMES {
        let before = registered_model(name).unwrap().config;
        let (removed, added, delta) =
            apply_counted(name, |c| assert_eq!(alternate_local_global(c, 64), 1));
        assert_eq!(
            removed,
            vec![format!("{ATTENTION}.sliding_window = null")],
            "{name}"
        );
        // Entry 1 is the old entry 0 (global), entry 0 the same made local.
        let mut want: BTreeSet<String> = before
            .dump()
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{LAYER}.")))
            .map(|rest| format!("decoder.transformer.layers.1.{rest}"))
            .collect();
        want.insert(format!("{ATTENTION}.sliding_window = 64"));
        assert_eq!(added, want.into_iter().collect::<Vec<_>>(), "{name}");
        // Every registered model has an even depth, so the scanned stack repeats the pattern
        // whole; the parameters are the same in both layouts.
        assert_eq!(delta, 0, "{name}");
        let mut scanned = before.clone();
        alternate_local_global(&mut scanned, 64);
        scanned.set("decoder.transformer.scan", "true").unwrap();
        assert_eq!(count(&scanned), count(&before), "{name}");
    }
}

#[test]
fn swiglu_to_gelu_keeps_the_weight_count_of_gated_silu_blocks() {
    for name in MODEL_NAMES {
        let (removed, added, delta) = apply_counted(name, |c| assert_eq!(swiglu_to_gelu(c), 1));
        let (_, dim, layers, _, hidden, _) = shape(name);
        if name == "gpt2-tiny" {
            assert!(
                removed.is_empty() && added.is_empty() && delta == 0,
                "already a GELU MLP: {removed:?} {added:?} {delta}"
            );
            continue;
        }
        assert_eq!(
            removed,
            vec![
                format!("{FEED_FORWARD}.activation = \"silu\""),
                format!("{FEED_FORWARD}.gated = true"),
                format!("{FEED_FORWARD}.hidden_dim = {hidden}"),
            ],
            "{name}"
        );
        let wide = hidden * 3 / 2;
        assert_eq!(
            added,
            vec![
                format!("{FEED_FORWARD}.activation = \"gelu_tanh\""),
                format!("{FEED_FORWARD}.gated = false"),
                format!("{FEED_FORWARD}.hidden_dim = {wide}"),
            ],
            "{name}"
        );
        // up + down of width 3h/2 against up + gate + down of width h (no biases): equal, as
        // every hidden width here is even.
        assert_eq!(
            delta,
            layers * (2 * dim * wide - 3 * dim * hidden),
            "{name}"
        );
        assert_eq!(delta, 0, "{name}");
    }
}

#[test]
fn tie_embeddings_removes_untied_heads() {
    for name in MODEL_NAMES {
        let before = registered_model(name).unwrap().config;
        let (removed, added, delta) = apply_counted(name, |c| assert_eq!(tie_embeddings(c), 1));
        let (vocab, dim, _, _, _, untied) = shape(name);
        if !untied {
            assert!(
                removed.is_empty() && added.is_empty() && delta == 0,
                "{name}"
            );
            continue;
        }
        let head: Vec<String> = before
            .dump()
            .lines()
            .filter(|l| l.starts_with("decoder.lm_head."))
            .map(String::from)
            .collect();
        assert_eq!(removed, head, "{name}");
        assert_eq!(added, vec!["decoder.lm_head = null".to_string()], "{name}");
        assert_eq!(delta, -vocab * dim, "{name}");
    }
}

#[test]
fn dropout_sets_every_rate() {
    for name in MODEL_NAMES {
        let (removed, added, delta) = apply_counted(name, |c| assert_eq!(dropout(c, 0.1), 2));
        assert_eq!(
            removed,
            vec![
                "decoder.embedding_dropout.rate = 0.0".to_string(),
                format!("{LAYER}.residual_dropout.rate = 0.0"),
            ],
            "{name}"
        );
        assert_eq!(
            added,
            vec![
                "decoder.embedding_dropout.rate = 0.1".to_string(),
                format!("{LAYER}.residual_dropout.rate = 0.1"),
            ],
            "{name}"
        );
        assert_eq!(delta, 0, "{name}");
    }
}

/// A config modifier as a plain function.
type Modifier = fn(&mut CausalLmConfig);

/// Every new modifier, and all of them together, on the small models: the result traces its
/// training loss and gradients, unrolled and scanned.
#[test]
fn modified_small_models_trace_unrolled_and_scanned() {
    let modifiers: [(&str, Modifier); 7] = [
        ("qk_norm", |c| {
            qk_norm(c);
        }),
        ("sliding_window", |c| {
            sliding_window(c, 3);
        }),
        ("alternate_local_global", |c| {
            alternate_local_global(c, 3);
        }),
        ("swiglu_to_gelu", |c| {
            swiglu_to_gelu(c);
        }),
        ("tie_embeddings", |c| {
            tie_embeddings(c);
        }),
        ("dropout", |c| {
            dropout(c, 0.1);
        }),
        ("all", |c| {
            qk_norm(c);
            alternate_local_global(c, 3);
            swiglu_to_gelu(c);
            tie_embeddings(c);
            dropout(c, 0.1);
            c.set(
                "decoder.transformer.layers.1.attention.logit_soft_cap",
                "30.0",
            )
            .unwrap();
        }),
    ];
    let sig = LossSignature {
        batch_size: 2,
        seq_len: 8,
        dtype: DType::F32,
        is_training: true,
    };
    for name in ["llama-tiny", "gpt2-tiny"] {
        for (modifier, modify) in modifiers {
            for scan in ["false", "true"] {
                let mut cfg = registered_model(name).unwrap().config;
                modify(&mut cfg);
                cfg.set("decoder.transformer.scan", scan).unwrap();
                let model = CausalLm::new(&cfg).unwrap();
                let f = loss_and_grad_function(&model, &sig)
                    .unwrap_or_else(|e| panic!("{name} {modifier} scan={scan}: {e}"));
                assert_eq!(f.result_names().len(), 1 + model.param_specs().len());
                assert_eq!(
                    f.to_stablehlo().contains("stablehlo.while"),
                    scan == "true",
                    "{name} {modifier} scan={scan}"
                );
            }
        }
    }
}
