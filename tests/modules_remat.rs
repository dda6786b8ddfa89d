//! Rematerialized transformer layers (`remat` on every layer, the `remat=POLICY` modifier):
//! a 2-layer llama-tiny gives the same loss, gradients and summaries under every policy as
//! without remat, unrolled and inside a scanned stack.

mod modules_common;

use axle::backend::{HostTensor, compile};
use axle::compiler::DType;
use axle::modules::modifiers;
use axle::modules::{
    CausalLm, Config, LossSignature, Module, ParamTree, RematSpec, init_params,
    loss_and_grad_function, registered_model,
};
use modules_common::{assert_close, client};
use ndarray::{ArrayD, IxDyn};

const BATCH: usize = 2;
const SEQ: usize = 16;

/// Loss, then every other result (summaries and gradients) by name.
fn run(cfg: &axle::modules::CausalLmConfig) -> ParamTree<ArrayD<f64>> {
    let model = CausalLm::new(cfg).unwrap();
    let vocab = model.decoder.vocab_size;
    let sig = LossSignature {
        batch_size: BATCH,
        seq_len: SEQ,
        dtype: DType::F32,
        is_training: false,
    };
    let program = compile(&client(), &loss_and_grad_function(&model, &sig).unwrap()).unwrap();
    let params = init_params(&model.param_specs(), 3);
    let mut args: Vec<HostTensor> = params.values().map(|v| v.clone().into()).collect();
    let tokens = |k: usize| -> Vec<i32> {
        (0..BATCH * SEQ)
            .map(|i| ((i * k + 13) % vocab) as i32)
            .collect()
    };
    let shape = IxDyn(&[BATCH, SEQ]);
    args.push(
        ArrayD::from_shape_vec(shape.clone(), tokens(7919))
            .unwrap()
            .into(),
    );
    args.push(
        ArrayD::from_shape_vec(shape, tokens(104729))
            .unwrap()
            .into(),
    );
    let out = program.run(&args).unwrap();
    program
        .result_names()
        .iter()
        .zip(out)
        .map(|(n, v)| {
            let a: ArrayD<f32> = v.try_into().unwrap();
            (n.clone(), a.mapv(f64::from))
        })
        .collect()
}

#[test]
fn every_policy_gives_the_loss_and_gradients_of_no_remat() {
    // Every policy unrolled, and one scanned (remat inside the scan body): 6 compiles.
    let cases: [(&str, &[&str]); 2] = [
        ("false", &["full", "dots", "names:attention_out,ffn_out"]),
        ("true", &["offload:ffn_out"]),
    ];
    for (scan, policies) in cases {
        let mut cfg = registered_model("llama-tiny").unwrap().config;
        cfg.set("decoder.transformer.num_layers", "2").unwrap();
        cfg.set("decoder.transformer.scan", scan).unwrap();
        let want = run(&cfg);
        for text in [
            "full",
            "dots",
            "names:attention_out,ffn_out",
            "offload:ffn_out",
        ] {
            let mut c = cfg.clone();
            let spec: RematSpec = text.parse().unwrap();
            assert_eq!(modifiers::remat(&mut c, &spec), 1, "one layer config");
            let got = run(&c);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            // f32: the replay is the forward's ops again, but XLA fuses the recomputation
            // with the backward ops and may order reductions differently, so allow f32
            // rounding accumulated over a few thousand terms (rtol 1e-4, atol 1e-6).
            for (name, w) in &want {
                let what = format!("scan={scan} remat={text} {name}");
                assert_close(&what, &got[name], w, 1e-6, 1e-4);
            }
        }
    }
}
