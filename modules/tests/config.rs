//! The config system: path get/set, required fields, parents filling in children, the visitor,
//! and bad input (each error names the path at fault).

use axle_modules::{
    AttentionConfig, CausalLm, CausalLmConfig, Config, Error, LinearConfig, Module, NormConfig,
    find_all, for_each_mut, modifiers, registered_model,
};

fn llama_tiny() -> CausalLmConfig {
    registered_model("llama-tiny").unwrap().config
}

#[test]
fn set_and_get_by_path() {
    let mut cfg = llama_tiny();
    cfg.apply_overrides(&[
        "decoder.transformer.layers.0.attention.num_heads=8",
        "decoder.transformer.layers.0.feed_forward.activation=gelu",
        "decoder.output_norm.eps = 1e-5",
        "decoder.transformer.layers.0.attention.input_linear.weight_roles=(embed, _)",
    ])
    .unwrap();
    assert_eq!(
        cfg.get("decoder.transformer.layers.0.attention.num_heads")
            .unwrap(),
        8
    );
    assert_eq!(
        cfg.decoder.transformer.layers[0].attention.num_heads,
        Some(8)
    );
    assert_eq!(
        cfg.get("decoder.transformer.layers.0.feed_forward.activation")
            .unwrap(),
        "gelu"
    );
    assert_eq!(cfg.get("decoder.output_norm.eps").unwrap(), 1e-5);
    let specs = CausalLm::new(&cfg).unwrap().param_specs();
    let q = &specs["decoder/transformer/layers/0/attention/q_proj/weight"];
    assert_eq!(q.roles.to_string(), "(embed, _)");
    // A whole sub-config can be replaced by JSON, and a null unsets an optional child.
    cfg.set("decoder.lm_head", "null").unwrap();
    assert_eq!(cfg.decoder.lm_head, None);
    cfg.set(
        "decoder.output_norm",
        r#"{"kind":"layer_norm","input_dim":null,"eps":1e-5,"bias":false}"#,
    )
    .unwrap();
    assert!(matches!(cfg.decoder.output_norm, NormConfig::LayerNorm(_)));
}

#[test]
fn required_field_unset_names_its_full_path() {
    let mut cfg = llama_tiny();
    cfg.set("decoder.transformer.layers.0.attention.num_heads", "null")
        .unwrap();
    let err = CausalLm::new(&cfg).unwrap_err();
    assert!(
        matches!(&err, Error::Missing { path } if path == "decoder.transformer.layers.0.attention.num_heads"),
        "{err}"
    );
    let err = CausalLm::new(&CausalLmConfig::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config `decoder.vocab_size`: required field is not set"
    );
}

#[test]
fn parents_fill_in_children_dimensions() {
    let mut cfg = llama_tiny();
    cfg.set("decoder.dim", "512").unwrap();
    let model = CausalLm::new(&cfg).unwrap();
    let attention = &model.decoder.transformer.layers[0].attention;
    assert_eq!(attention.cfg.input_dim, Some(512));
    assert_eq!(
        (attention.q_proj.input_dim, attention.q_proj.output_dim),
        (512, 512)
    );
    assert_eq!(attention.head_dim, 128);
    let ffn = &model.decoder.transformer.layers[0].feed_forward;
    assert_eq!(
        (ffn.down_proj.input_dim, ffn.down_proj.output_dim),
        (704, 512)
    );
    assert_eq!(model.decoder.output_norm.dim, 512);
    // The user's config is not modified by instantiation.
    assert_eq!(cfg.decoder.transformer.layers[0].attention.input_dim, None);
}

#[test]
fn unknown_path_names_the_path_and_the_valid_keys() {
    let mut cfg = llama_tiny();
    let err = cfg
        .set("decoder.transformer.layers.0.atention.num_heads", "8")
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::UnknownPath { .. }), "{text}");
    assert!(
        text.contains("decoder.transformer.layers.0.atention.num_heads"),
        "{text}"
    );
    assert!(text.contains("`decoder.transformer.layers.0`"), "{text}");
    assert!(
        text.contains("attention, attention_norm, feed_forward"),
        "{text}"
    );
    let err = cfg.get("decoder.dim.x").unwrap_err().to_string();
    assert!(
        err.contains("decoder.dim.x") && err.contains("leaf value 256"),
        "{err}"
    );
    assert!(
        cfg.apply_overrides(&["decoder.dim"])
            .unwrap_err()
            .to_string()
            .contains("path=value")
    );
}

#[test]
fn wrong_value_type_names_path_value_and_expected_type() {
    let mut cfg = llama_tiny();
    let before = cfg.clone();
    let err = cfg
        .set("decoder.transformer.layers.0.attention.num_heads", "eight")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config `decoder.transformer.layers.0.attention.num_heads`: cannot set `eight`: \
         invalid type: string \"eight\", expected usize"
    );
    let err = cfg
        .set("decoder.transformer.scan", "1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("decoder.transformer.scan") && err.contains("expected a boolean"),
        "{err}"
    );
    let err = cfg
        .set(
            "decoder.transformer.layers.0.feed_forward.activation",
            "relu",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown variant `relu`") && err.contains("gelu"),
        "{err}"
    );
    let err = cfg
        .set("decoder.lm_head.weight_roles", "(embed, vocab")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("decoder.lm_head.weight_roles") && err.contains("bad logical roles"),
        "{err}"
    );
    assert_eq!(cfg, before, "a failed set leaves the config unchanged");
}

#[test]
fn heads_must_divide_dim_and_kv_heads_must_divide_heads() {
    let mut cfg = llama_tiny();
    cfg.set("decoder.transformer.layers.0.attention.num_heads", "3")
        .unwrap();
    assert_eq!(
        CausalLm::new(&cfg).unwrap_err().to_string(),
        "config `decoder.transformer.layers.0.attention.num_heads`: 3 heads do not divide the model dimension 256"
    );
    let mut cfg = llama_tiny();
    cfg.set("decoder.transformer.layers.0.attention.num_kv_heads", "3")
        .unwrap();
    assert_eq!(
        CausalLm::new(&cfg).unwrap_err().to_string(),
        "config `decoder.transformer.layers.0.attention.num_kv_heads`: 3 key/value heads do not divide 4 heads"
    );
    let mut cfg = llama_tiny();
    cfg.set("decoder.transformer.layers.0.residual_dropout.rate", "1.5")
        .unwrap();
    let err = CausalLm::new(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("decoder.transformer.layers.0.residual_dropout.rate"),
        "{err}"
    );
    let mut cfg = llama_tiny();
    cfg.set("decoder.lm_head.weight_roles", "(embed)").unwrap();
    let err = CausalLm::new(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("decoder.lm_head.weight_roles") && err.contains("2 dimensions"),
        "{err}"
    );
}

#[test]
fn visitor_finds_and_replaces_configs_by_type() {
    let mut cfg = llama_tiny();
    // Norms: the two in the layer and the final one; linears: attention in/out, ffn in/out, head.
    assert_eq!(find_all::<NormConfig>(&cfg).len(), 3);
    assert_eq!(find_all::<LinearConfig>(&cfg).len(), 5);
    let visited = for_each_mut(&mut cfg, |l: &mut LinearConfig| l.bias = true);
    assert_eq!(visited, 5);
    let with_bias = CausalLm::new(&cfg).unwrap().num_params();
    // Biases: per layer q,k,v,o (4 x 256) + up, gate (2 x 704) + down (256); head 1024.
    assert_eq!(with_bias, 3_737_856 + 4 * (4 * 256 + 2 * 704 + 256) + 1024);
    // Replacing a whole config: every attention by a fresh one with 2 heads.
    for_each_mut(&mut cfg, |a: &mut AttentionConfig| {
        *a = AttentionConfig {
            num_heads: Some(2),
            ..AttentionConfig::default()
        }
    });
    assert_eq!(cfg.decoder.transformer.layers[0].attention.rope, None);
    assert_eq!(
        CausalLm::new(&cfg).unwrap().decoder.transformer.layers[0]
            .attention
            .head_dim,
        128
    );
}

#[test]
fn config_round_trips_through_json() {
    for name in axle_modules::MODEL_NAMES {
        let cfg = registered_model(name).unwrap().config;
        let json = serde_json::to_string(&cfg).unwrap();
        let back: CausalLmConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg, "{name}");
    }
}

#[test]
fn list_entries_are_addressed_by_index() {
    let mut cfg = llama_tiny();
    // A whole pattern can be set as JSON; its entries are then addressed by index.
    let layer = serde_json::to_string(&cfg.decoder.transformer.layers[0]).unwrap();
    cfg.set("decoder.transformer.layers", &format!("[{layer},{layer}]"))
        .unwrap();
    cfg.set("decoder.transformer.layers.1.attention.num_heads", "8")
        .unwrap();
    assert_eq!(
        cfg.get("decoder.transformer.layers.1.attention.num_heads")
            .unwrap(),
        8
    );
    assert_eq!(
        cfg.decoder.transformer.layers[0].attention.num_heads,
        Some(4)
    );
    assert!(
        cfg.dump()
            .contains("\ndecoder.transformer.layers.1.attention.num_heads = 8\n")
    );
    let err = cfg
        .set("decoder.transformer.layers.2.attention.num_heads", "8")
        .unwrap_err();
    assert!(matches!(err, Error::IndexOutOfRange { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "config `decoder.transformer.layers.2.attention.num_heads`: index 2 is out of range; \
         `decoder.transformer.layers` has 2 entries"
    );
    let err = cfg
        .get("decoder.transformer.layers.first")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`decoder.transformer.layers`") && err.contains("the list indices 0 to 1"),
        "{err}"
    );
    // The visitor sees every pattern entry, in order.
    let heads: Vec<_> = find_all::<AttentionConfig>(&cfg)
        .iter()
        .map(|a| a.num_heads)
        .collect();
    assert_eq!(heads, [Some(4), Some(8)]);
    // Errors inside an entry name its index.
    cfg.set("decoder.transformer.layers.1.attention.num_heads", "3")
        .unwrap();
    assert_eq!(
        CausalLm::new(&cfg).unwrap_err().to_string(),
        "config `decoder.transformer.layers.1.attention.num_heads`: \
         3 heads do not divide the model dimension 256"
    );
}

#[test]
fn layer_pattern_must_be_non_empty_and_divide_a_scanned_stack() {
    let mut cfg = llama_tiny();
    cfg.set("decoder.transformer.layers", "[]").unwrap();
    assert_eq!(
        CausalLm::new(&cfg).unwrap_err().to_string(),
        "config `decoder.transformer.layers`: the layer pattern is empty; \
         it needs at least one layer config"
    );
    let mut cfg = llama_tiny();
    modifiers::alternate_local_global(&mut cfg, 16);
    cfg.set("decoder.transformer.num_layers", "3").unwrap();
    // Unrolled, layers 0 and 2 are local and layer 1 global.
    let model = CausalLm::new(&cfg).unwrap();
    let windows: Vec<_> = (0..3)
        .map(|i| {
            model
                .decoder
                .transformer
                .layer(i)
                .attention
                .cfg
                .sliding_window
        })
        .collect();
    assert_eq!(windows, [Some(16), None, Some(16)]);
    cfg.set("decoder.transformer.scan", "true").unwrap();
    assert_eq!(
        CausalLm::new(&cfg).unwrap_err().to_string(),
        "config `decoder.transformer.num_layers`: a scanned stack repeats its pattern of 2 \
         layers whole, which does not divide 3 layers"
    );
}

#[test]
fn attention_variants_are_validated_and_qk_norm_declares_per_head_scales() {
    for (field, value, message) in [
        (
            "sliding_window",
            "0",
            "a sliding window must hold at least 1 key, got 0",
        ),
        (
            "logit_soft_cap",
            "0.0",
            "the logit soft cap must be positive and finite, got 0",
        ),
        (
            "logit_soft_cap",
            "-30.0",
            "the logit soft cap must be positive and finite, got -30",
        ),
    ] {
        let mut cfg = llama_tiny();
        let path = format!("decoder.transformer.layers.0.attention.{field}");
        cfg.set(&path, value).unwrap();
        assert_eq!(
            CausalLm::new(&cfg).unwrap_err().to_string(),
            format!("config `{path}`: {message}")
        );
    }
    let mut cfg = llama_tiny();
    cfg.apply_overrides(&[
        "decoder.transformer.layers.0.attention.sliding_window=1",
        "decoder.transformer.layers.0.attention.logit_soft_cap=50.0",
        r#"decoder.transformer.layers.0.attention.qk_norm={"kind":"rms_norm","input_dim":null,"eps":1e-6}"#,
    ])
    .unwrap();
    let specs = CausalLm::new(&cfg).unwrap().param_specs();
    for norm in ["q_norm", "k_norm"] {
        let scale = &specs[&format!("decoder/transformer/layers/3/attention/{norm}/scale")];
        assert_eq!(scale.shape, vec![64], "per head: head_dim = 256 / 4");
    }
}

/// A zero size anywhere (a dimension, a vocabulary, a hidden width, a depth) is an error naming
/// its path when the model is built, never a division by zero later.
#[test]
fn zero_sizes_are_refused_naming_their_path() {
    for path in [
        "decoder.dim",
        "decoder.vocab_size",
        "decoder.transformer.num_layers",
        "decoder.transformer.layers.0.feed_forward.hidden_dim",
        "decoder.transformer.layers.0.attention.num_heads",
    ] {
        let mut cfg = axle_modules::registered_model("llama-tiny").unwrap().config;
        cfg.set(path, "0").unwrap();
        let err = axle_modules::CausalLm::new(&cfg).unwrap_err().to_string();
        assert!(err.contains(path), "{path}: {err}");
    }
}
