//! Every registered model traces (loss and gradients) into a valid compiler function, in both
//! stack layouts; parameter errors name the parameter path.

use axle_compiler::{DType, FunctionBuilder};
use axle_modules::{
    CausalLm, Config, Ctx, Error, LossSignature, Module, ParamTree, declare_batch,
    loss_and_grad_function, registered_model,
};
use axle_partition::{LogicalRules, Mesh};

fn sig(dtype: DType) -> LossSignature {
    LossSignature {
        batch_size: 2,
        seq_len: 8,
        dtype,
        is_training: false,
    }
}

#[test]
fn small_models_trace_loss_and_gradients_unrolled_and_scanned() {
    for name in ["llama-tiny", "gpt2-tiny"] {
        for scan in ["false", "true"] {
            let mut cfg = registered_model(name).unwrap().config;
            cfg.set("decoder.transformer.scan", scan).unwrap();
            cfg.set("decoder.transformer.layers.0.residual_dropout.rate", "0.1")
                .unwrap();
            let model = CausalLm::new(&cfg).unwrap();
            let sig = LossSignature {
                is_training: true,
                ..sig(DType::F32)
            };
            let f = loss_and_grad_function(&model, &sig)
                .unwrap_or_else(|e| panic!("{name} scan={scan}: {e}"));
            assert_eq!(f.result_names().len(), 1 + model.param_specs().len());
            let text = f.to_stablehlo();
            assert!(text.contains("func.func"), "{name}");
            assert_eq!(
                text.contains("stablehlo.while"),
                scan == "true",
                "{name} scan={scan}"
            );
        }
    }
}

#[test]
fn missing_or_misshapen_parameters_are_named() {
    let model = CausalLm::new(&registered_model("llama-tiny").unwrap().config).unwrap();
    let builder = FunctionBuilder::new("f");
    let batch = declare_batch(&builder, 2, 8, false);
    let mut ctx = Ctx::new(ParamTree::new(), false, None);
    let err = model.batch_loss(&mut ctx, &batch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter `decoder/token_embedding/weight` is missing (expected shape [1024, 256])"
    );

    let mut params = axle_modules::declare_params(&builder, &model.param_specs(), DType::F32);
    let bad = "decoder/transformer/layers/2/attention/k_proj/weight";
    params.insert(bad.into(), builder.param("k", DType::F32, &[256, 128]));
    let err = model
        .batch_loss(&mut Ctx::new(params, false, None), &batch)
        .unwrap_err();
    assert!(
        matches!(&err, Error::ParamShape { path, .. } if path == bad),
        "{err}"
    );
}

#[test]
fn dropout_in_training_without_a_key_is_an_error() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    cfg.set("decoder.embedding_dropout.rate", "0.1").unwrap();
    let model = CausalLm::new(&cfg).unwrap();
    let builder = FunctionBuilder::new("f");
    let params = axle_modules::declare_params(&builder, &model.param_specs(), DType::F32);
    let batch = declare_batch(&builder, 2, 8, false);
    let err = model
        .batch_loss(&mut Ctx::new(params, true, None), &batch)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`decoder`: dropout in training needs an RNG key, none was given"
    );
}

#[test]
fn sequences_longer_than_the_learned_positions_are_refused() {
    let model = CausalLm::new(&registered_model("gpt2-tiny").unwrap().config).unwrap();
    let sig = LossSignature {
        seq_len: 200,
        ..sig(DType::F32)
    };
    let err = loss_and_grad_function(&model, &sig).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config `decoder.position_embedding.num_embeddings`: 128 learned positions, but the batch has sequences of 200"
    );
}

#[test]
fn layer_outputs_are_constrained_only_when_tracing_for_a_mesh() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    cfg.set("decoder.transformer.num_layers", "2").unwrap();
    let model = CausalLm::new(&cfg).unwrap();
    let trace = |mesh: Option<Mesh>| {
        let builder = FunctionBuilder::new("f");
        let params = axle_modules::declare_params(&builder, &model.param_specs(), DType::F32);
        let batch = declare_batch(&builder, 4, 8, false);
        let mut ctx = Ctx::new(params, false, None);
        if let Some(mesh) = mesh {
            ctx = ctx.with_mesh(mesh, LogicalRules::default());
        }
        let loss = model.batch_loss(&mut ctx, &batch).unwrap().total;
        builder.build(&[("loss", &loss)]).unwrap().to_stablehlo()
    };
    assert!(!trace(None).contains("sharding_constraint"));
    // `expert` and `seq` are not in this mesh: the batch is split over data and fsdp only.
    let text = trace(Some(Mesh::new(&[("data", 2), ("fsdp", 2)], 4).unwrap()));
    let constraint = r#"sdy.sharding_constraint %"#;
    assert_eq!(
        text.matches(constraint).count(),
        2,
        "one per layer:\n{text}"
    );
    assert_eq!(
        text.matches(r#"<@mesh, [{"data", "fsdp"}, {}, {?}]>"#)
            .count(),
        2
    );

    cfg.set("decoder.transformer.layers.0.output_roles", "(batch, _)")
        .unwrap();
    let err = CausalLm::new(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("decoder.transformer.layers.0.output_roles") && err.contains("3 dimensions"),
        "{err}"
    );
}
