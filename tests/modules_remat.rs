//! Rematerialized transformer layers (`remat` on every layer, the `remat=POLICY` modifier):
//! a 2-layer llama-tiny gives the same loss, gradients and summaries under every policy as
//! without remat, unrolled and inside a scanned stack; and full remat needs at most a third of
//! the temporaries (XLA's compiled memory stats).

mod modules_common;

use axle::backend::{HostTensor, compile};
use axle::compiler::DType;
use axle::modules::modifiers;
use axle::modules::{
    CausalLm, Config, LossSignature, Module, ParamTree, RematSpec, init_params,
    loss_and_grad_function, registered_model,
};
use axle::runtime::CompileOptions;
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
    // Every policy unrolled, and one scanned (remat inside the scan body): 8 compiles.
    // Offload runs its host-memory placements, which the CPU plugin compiles away.
    let cases: [(&str, &[&str]); 2] = [
        (
            "false",
            &[
                "full",
                "dots",
                "names:attention_out,ffn_out",
                "offload:attention_out,ffn_out",
            ],
        ),
        ("true", &["offload:ffn_out"]),
    ];
    for (scan, policies) in cases {
        let mut cfg = registered_model("llama-tiny").unwrap().config;
        cfg.set("decoder.transformer.num_layers", "2").unwrap();
        cfg.set("decoder.transformer.scan", scan).unwrap();
        let want = run(&cfg);
        for &text in policies {
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

/// XLA's temporaries of llama-tiny's loss-and-gradient program (widened to 8 layers, so that
/// activations dominate; batch 8 × seq 128, f32) per policy, from `PJRT_Executable_GetCompiledMemoryStats`: full remat keeps only each
/// layer's input for the backward pass, so it needs at most a third of the temporaries of no
/// remat; keeping the matmul outputs (dots) lands in between. Memory figures only (no times).
#[test]
fn full_remat_needs_a_third_of_the_temporaries() {
    let temp = |text: &str| -> i64 {
        let mut cfg = registered_model("llama-tiny").unwrap().config;
        cfg.set("decoder.transformer.num_layers", "8").unwrap();
        modifiers::remat(&mut cfg, &text.parse().unwrap());
        let model = CausalLm::new(&cfg).unwrap();
        let sig = LossSignature {
            batch_size: 8,
            seq_len: 128,
            dtype: DType::F32,
            is_training: false,
        };
        let f = loss_and_grad_function(&model, &sig).unwrap();
        let exe = client()
            .compile(&f.to_stablehlo(), &CompileOptions::single_device())
            .unwrap();
        exe.memory_stats()
            .unwrap()
            .expect("the CPU plugin reports memory")
            .temp
    };
    let (none, full, dots) = (temp("none"), temp("full"), temp("dots"));
    println!("temporaries: none {none}, full {full}, dots {dots}");
    assert!(3 * full <= none, "full {full} vs none {none}");
    assert!(
        full < dots && dots < none,
        "dots {dots} not between {full} and {none}"
    );
}
