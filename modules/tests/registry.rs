//! Registered models: exact parameter counts from specs (published figures or closed forms),
//! golden config dumps, and stable parameter paths.

use axle_modules::{
    CONFIG_NAMES, CausalLm, Config, MODEL_NAMES, Module, modifiers, registered_config,
    registered_model,
};

fn count(name: &str) -> u64 {
    CausalLm::new(&registered_model(name).unwrap().config)
        .unwrap()
        .num_params()
}

#[test]
fn parameter_counts_match_published_figures() {
    assert_eq!(count("llama-tiny"), 3_737_856);
    assert_eq!(count("llama2-7b"), 6_738_415_616);
    assert_eq!(count("llama2-70b"), 68_976_648_192);
}

#[test]
fn parameter_counts_match_closed_forms() {
    // gpt2-tiny: tied 1024x256 token table, 128x256 positions, 4 layers of
    // (2 LayerNorms with bias, attention 4 (256x256 + 256), MLP 256x1024 + 1024 + 1024x256 + 256),
    // final LayerNorm.
    let (d, f) = (256u64, 1024u64);
    let layer = 2 * 2 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d);
    assert_eq!(count("gpt2-tiny"), 1024 * d + 128 * d + 4 * layer + 2 * d);
    // llama-small: untied 8192x640 tables, 8 layers of (2 RMSNorms, 4 640x640, 3 640x1728), final norm.
    let (d, f) = (640u64, 1728u64);
    let small = 2 * 8192 * d + 8 * (2 * d + 4 * d * d + 3 * d * f) + d;
    assert_eq!(count("llama-small"), small);
    assert!(
        (45_000_000..55_000_000).contains(&small),
        "about 50M: {small}"
    );
}

#[test]
fn scanned_and_unrolled_stacks_declare_the_same_parameters() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    let unrolled = CausalLm::new(&cfg).unwrap().param_specs();
    let q = &unrolled["decoder/transformer/layers/3/attention/q_proj/weight"];
    assert_eq!(q.shape, vec![256, 256]);
    assert_eq!(q.roles.to_string(), "(embed, heads)");
    assert_eq!(
        unrolled["decoder/transformer/layers/0/attention/o_proj/weight"]
            .roles
            .to_string(),
        "(heads, embed)"
    );
    cfg.set("decoder.transformer.scan", "true").unwrap();
    let scanned = CausalLm::new(&cfg).unwrap().param_specs();
    let q = &scanned["decoder/transformer/layer/attention/q_proj/weight"];
    assert_eq!(q.shape, vec![4, 256, 256]);
    assert_eq!(q.roles.to_string(), "(layers, embed, heads)");
    assert_eq!(q.fan_in(), 256);
    let total =
        |t: &axle_modules::ParamTree<axle_modules::ParamSpec>| axle_modules::count_params(t);
    assert_eq!(total(&scanned), total(&unrolled));
    // token embedding, final norm, LM head, and one stacked layer of 2 norms + 4 + 3 projections.
    assert_eq!(scanned.len(), 3 + 9);
    assert_eq!(unrolled.len(), 3 + 4 * 9);
}

/// A two-entry pattern whose entries differ (QK-norm on the second only): unrolled, layer `i`
/// has the structure of entry `i % 2`; scanned, entry `j` is stacked under `layer/{j}/` over
/// the two repeats, with the same parameter count.
#[test]
fn scanned_pattern_stacks_each_entry_over_the_repeats() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    modifiers::alternate_local_global(&mut cfg, 32);
    cfg.set(
        "decoder.transformer.layers.1.attention.qk_norm",
        r#"{"kind":"rms_norm","input_dim":null,"eps":1e-6}"#,
    )
    .unwrap();
    let unrolled = CausalLm::new(&cfg).unwrap().param_specs();
    for i in 0..4 {
        let q_norm = format!("decoder/transformer/layers/{i}/attention/q_norm/scale");
        assert_eq!(unrolled.contains_key(&q_norm), i % 2 == 1, "{q_norm}");
    }
    cfg.set("decoder.transformer.scan", "true").unwrap();
    let scanned = CausalLm::new(&cfg).unwrap().param_specs();
    for (path, spec) in &unrolled {
        let Some(rest) = path.strip_prefix("decoder/transformer/layers/") else {
            assert_eq!(&scanned[path], spec, "{path}");
            continue;
        };
        let (i, rel) = rest.split_once('/').unwrap();
        let j = i.parse::<usize>().unwrap() % 2;
        let stacked = &scanned[&format!("decoder/transformer/layer/{j}/{rel}")];
        assert_eq!(stacked, &spec.stacked(2), "{path}");
    }
    let q = &scanned["decoder/transformer/layer/0/attention/q_proj/weight"];
    assert_eq!(q.shape, vec![2, 256, 256]);
    assert_eq!(q.roles.to_string(), "(layers, embed, heads)");
    assert_eq!(
        scanned["decoder/transformer/layer/1/attention/k_norm/scale"].shape,
        vec![2, 64]
    );
    assert_eq!(
        axle_modules::count_params(&scanned),
        axle_modules::count_params(&unrolled)
    );
    // 3 outside the stack; entry 0 has 9 parameters, entry 1 two more (q_norm, k_norm).
    assert_eq!(scanned.len(), 3 + 9 + 11);
}

#[test]
fn golden_config_dumps() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var("AXLE_BLESS").is_ok_and(|v| v == "1");
    for name in MODEL_NAMES {
        let dump = registered_model(name).unwrap().config.dump();
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&path, &dump).unwrap();
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate with AXLE_BLESS=1)", path.display()));
        assert_eq!(
            dump,
            golden,
            "{name}: dump differs from {} (AXLE_BLESS=1 regenerates)",
            path.display()
        );
    }
}

/// The registered configs of the other kinds (classifiers, regressor) are dumped whole, with
/// their `kind` tag: the dump is what `--set` paths address.
#[test]
fn golden_config_dumps_of_other_kinds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var("AXLE_BLESS").is_ok_and(|v| v == "1");
    for name in CONFIG_NAMES.iter().filter(|n| !MODEL_NAMES.contains(n)) {
        let dump = registered_config(name).unwrap().config.dump();
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&path, &dump).unwrap();
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate with AXLE_BLESS=1)", path.display()));
        assert_eq!(
            dump,
            golden,
            "{name}: dump differs from {} (AXLE_BLESS=1 regenerates)",
            path.display()
        );
    }
}

#[test]
fn unknown_model_lists_registered_names() {
    let err = registered_model("llama-huge").unwrap_err().to_string();
    assert!(
        err.contains("llama-huge") && err.contains("llama-tiny, gpt2-tiny"),
        "{err}"
    );
}
