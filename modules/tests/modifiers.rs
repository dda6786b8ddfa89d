//! Each modifier, applied to every registered model, changes exactly the configs it should:
//! checked on the diff of the config dumps before and after.

use std::collections::BTreeSet;

use axle_modules::modifiers::{mha_to_gqa, rope_everywhere, swap_norms};
use axle_modules::{CausalLm, CausalLmConfig, Config, MODEL_NAMES, registered_model};

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

const ATTENTION: &str = "decoder.transformer.layer.attention";

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
        "decoder.transformer.layer.attention_norm",
        "decoder.transformer.layer.ffn_norm",
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
