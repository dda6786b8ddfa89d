//! The classifier, ViT and regressor families without a device: parameter counts against
//! closed forms, their inputs, config errors naming the path at fault, the tagged
//! [`ModelConfig`] (serde, paths, visitors) and the registry.

use axle_compiler::DType;
use axle_modules::{
    AttentionConfig, BatchShape, CONFIG_NAMES, Config, FeedForwardConfig, LinearConfig,
    MODEL_NAMES, Model, ModelConfig, NormConfig, find_all, for_each_mut, registered_config,
    registered_model,
};

fn config(name: &str) -> ModelConfig {
    registered_config(name).unwrap().config
}

fn build(cfg: &ModelConfig) -> Box<dyn Model> {
    cfg.build().unwrap()
}

fn build_error(cfg: &ModelConfig) -> String {
    match cfg.build() {
        Ok(_) => panic!("the config builds"),
        Err(e) => e.to_string(),
    }
}

/// Parameters of one pre-norm encoder layer of width `d` and MLP width `f`: two LayerNorms
/// with bias, four biased `d x d` attention projections, a biased `d -> f -> d` MLP.
fn encoder_layer(d: u64, f: u64) -> u64 {
    2 * 2 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d)
}

#[test]
fn parameter_counts_match_closed_forms() {
    let (d, f, layers, classes) = (64u64, 256u64, 2u64, 4u64);
    let stack_norm_head = layers * encoder_layer(d, f) + 2 * d + (d * classes + classes);
    // bert-tiny: 64-token table, 32 learned positions.
    let bert = 64 * d + 32 * d + stack_norm_head;
    assert_eq!(build(&config("bert-tiny")).num_params(), bert);
    assert_eq!(bert, 106_500);
    // vit-tiny: a biased projection of 4x4x1 patches, one position per patch (16).
    let vit = (16 * d + d) + 16 * d + stack_norm_head;
    assert_eq!(build(&config("vit-tiny")).num_params(), vit);
    assert_eq!(vit, 102_468);
    // mlp-regressor: 16 -> 64 -> 64 -> 1, all biased.
    let mlp = (16 * 64 + 64) + (64 * 64 + 64) + (64 + 1);
    assert_eq!(build(&config("mlp-regressor")).num_params(), mlp);
    // Dropping the positions, and 3-channel images, change the counts as the forms say.
    let mut cfg = config("bert-tiny");
    cfg.set("position_embedding", "null").unwrap();
    assert_eq!(build(&cfg).num_params(), bert - 32 * d);
    let mut cfg = config("vit-tiny");
    cfg.set("channels", "3").unwrap();
    assert_eq!(build(&cfg).num_params(), vit + 2 * 16 * d);
}

#[test]
fn inputs_have_the_pipeline_names_shapes_and_ranges() {
    let shape = BatchShape {
        batch_size: 8,
        seq_len: 16,
    };
    let summary = |name: &str| {
        let model = build(&config(name));
        let specs = model.input_specs(&shape).unwrap();
        let specs: Vec<_> = specs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.dtype,
                    s.shape.clone(),
                    s.roles.to_string(),
                    s.valid.clone(),
                )
            })
            .collect();
        (model.kind().to_string(), specs)
    };
    let (kind, specs) = summary("bert-tiny");
    assert_eq!(kind, "classifier");
    assert_eq!(
        specs,
        [
            (
                "input_ids".into(),
                DType::I32,
                vec![8, 16],
                "(batch, seq)".into(),
                Some(0..64)
            ),
            (
                "labels".into(),
                DType::I32,
                vec![8],
                "(batch)".into(),
                Some(0..4)
            ),
        ]
    );
    let (kind, specs) = summary("vit-tiny");
    assert_eq!(kind, "classifier");
    assert_eq!(
        specs[0],
        (
            "image".into(),
            DType::F32,
            vec![8, 16, 16, 1],
            "(batch, _, _, _)".into(),
            None
        )
    );
    assert_eq!(specs[1].0, "labels");
    let (kind, specs) = summary("mlp-regressor");
    assert_eq!(kind, "regressor");
    assert_eq!(
        specs,
        [
            (
                "features".into(),
                DType::F32,
                vec![8, 16],
                "(batch, _)".into(),
                None
            ),
            (
                "targets".into(),
                DType::F32,
                vec![8],
                "(batch)".into(),
                None
            ),
        ]
    );
    // A sequence longer than bert-tiny's 32 learned positions is refused, naming the field.
    let long = BatchShape {
        batch_size: 8,
        seq_len: 33,
    };
    let err = build(&config("bert-tiny"))
        .input_specs(&long)
        .unwrap_err()
        .to_string();
    assert!(err.contains("position_embedding.num_embeddings"), "{err}");
}

#[test]
fn bad_configs_name_the_field_at_fault() {
    let cases: [(&str, &str, &str, &str); 8] = [
        ("vit-tiny", "patch_size", "5", "config `patch_size`"),
        ("vit-tiny", "patch_size", "0", "config `patch_size`"),
        ("vit-tiny", "num_classes", "0", "config `num_classes`"),
        ("vit-tiny", "channels", "0", "config `channels`"),
        ("bert-tiny", "num_classes", "0", "config `num_classes`"),
        ("bert-tiny", "dim", "null", "config `dim`: required"),
        (
            "mlp-regressor",
            "hidden_dims",
            "[64, 0]",
            "config `hidden_dims`",
        ),
        ("mlp-regressor", "input_dim", "null", "config `input_dim`"),
    ];
    for (name, path, value, want) in cases {
        let mut cfg = config(name);
        cfg.set(path, value).unwrap();
        let err = build_error(&cfg);
        assert!(err.contains(want), "{name} {path}={value}: {err}");
    }
    // Children's errors carry their path from the root.
    let mut cfg = config("bert-tiny");
    cfg.set("transformer.num_layers", "0").unwrap();
    assert!(build_error(&cfg).contains("config `transformer.num_layers`"));
    // An encoder refuses causal attention anywhere in its stack.
    for name in ["bert-tiny", "vit-tiny"] {
        let mut cfg = config(name);
        for_each_mut::<AttentionConfig>(&mut cfg, |a| a.causal = true);
        let err = build_error(&cfg);
        assert!(
            err.contains("config `transformer`") && err.contains("causal = false"),
            "{name}: {err}"
        );
    }
}

#[test]
fn model_config_is_tagged_and_reaches_every_child() {
    for name in CONFIG_NAMES {
        let cfg = config(name);
        let json = serde_json::to_value(&cfg).unwrap();
        let back: ModelConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, cfg, "{name}: serde round trip");
        let kind = json["kind"].as_str().unwrap().to_string();
        let want = match name {
            "bert-tiny" => "encoder_classifier",
            "vit-tiny" => "vit",
            "mlp-regressor" => "mlp_regressor",
            _ => "causal_lm",
        };
        assert_eq!(kind, want, "{name}");
        assert_eq!(cfg.get("kind").unwrap(), want);
        let model = build(&cfg);
        // The visitor reaches every linear config: without biases anywhere, the only biases
        // left are LayerNorm ones.
        let mut no_bias = cfg.clone();
        let linears = for_each_mut::<LinearConfig>(&mut no_bias, |l| l.bias = false);
        assert!(linears > 0, "{name}");
        for path in build(&no_bias).param_specs().keys() {
            assert!(
                !path.ends_with("/bias") || path.contains("norm/"),
                "{name}: {path} kept a bias"
            );
        }
        // ... and every norm: turning them all into RMSNorms leaves no norm biases.
        let mut rms = cfg.clone();
        for_each_mut::<NormConfig>(&mut rms, |n| {
            *n = NormConfig::RmsNorm(Default::default());
        });
        let norm_biases = build(&rms)
            .param_specs()
            .keys()
            .filter(|p| p.contains("norm/bias"))
            .count();
        assert_eq!(norm_biases, 0, "{name}");
        assert!(model.num_params() > 0);
    }
    // The encoders' attentions are all found, and all bidirectional.
    for name in ["bert-tiny", "vit-tiny"] {
        let attentions = find_all::<AttentionConfig>(&config(name));
        assert!(!attentions.is_empty() && attentions.iter().all(|a| !a.causal));
    }
}

#[test]
fn registry_serves_every_kind() {
    for name in CONFIG_NAMES {
        let registered = registered_config(name).unwrap();
        assert_eq!(registered.name, name);
        assert!(registered.batch_size > 0 && registered.seq_len > 0);
    }
    let bert = registered_config("bert-tiny").unwrap();
    assert_eq!((bert.batch_size, bert.seq_len), (32, 32));
    let vit = registered_config("vit-tiny").unwrap();
    assert_eq!((vit.batch_size, vit.seq_len), (32, 16));
    let mlp = registered_config("mlp-regressor").unwrap();
    assert_eq!((mlp.batch_size, mlp.seq_len), (64, 1));
    // The causal LMs come out the same through both functions.
    for name in MODEL_NAMES {
        let lm = registered_model(name).unwrap();
        let any = registered_config(name).unwrap();
        assert_eq!(any.config, ModelConfig::CausalLm(lm.config), "{name}");
        assert_eq!(
            (any.batch_size, any.seq_len),
            (lm.batch_size, lm.seq_len),
            "{name}"
        );
    }
    let err = registered_model("bert-tiny").unwrap_err().to_string();
    assert!(
        err.contains("not a causal LM") && err.contains("registered_config"),
        "{err}"
    );
    let err = registered_config("resnet-50").unwrap_err().to_string();
    assert!(
        err.contains("resnet-50") && err.contains("bert-tiny, vit-tiny, mlp-regressor"),
        "{err}"
    );
}

/// The default configs are bidirectional encoders: once the required fields are set (heads
/// and MLP width through the visitor, wherever the stack keeps its layers) they build.
#[test]
fn default_configs_build_once_required_fields_are_set() {
    let defaults = [
        (
            ModelConfig::EncoderClassifier(Default::default()),
            &[("vocab_size", "16"), ("dim", "8"), ("num_classes", "3")][..],
        ),
        (
            ModelConfig::Vit(Default::default()),
            &[
                ("image_size", "8"),
                ("patch_size", "2"),
                ("channels", "3"),
                ("dim", "8"),
                ("num_classes", "3"),
            ][..],
        ),
        (
            ModelConfig::MlpRegressor(Default::default()),
            &[("input_dim", "5")][..],
        ),
    ];
    for (mut cfg, fields) in defaults {
        let first = build_error(&cfg);
        assert!(first.contains("required field is not set"), "{first}");
        for (path, value) in fields {
            cfg.set(path, value).unwrap();
        }
        if !matches!(cfg, ModelConfig::MlpRegressor(_)) {
            cfg.set("transformer.num_layers", "1").unwrap();
            for_each_mut::<AttentionConfig>(&mut cfg, |a| a.num_heads = Some(2));
            for_each_mut::<FeedForwardConfig>(&mut cfg, |f| f.hidden_dim = Some(16));
        }
        let model = build(&cfg);
        assert!(model.num_params() > 0);
    }
}
