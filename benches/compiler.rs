//! Compiler speed: trace + autodiff + passes + StableHLO emission of a
//! 4-layer MLP training step (forward, softmax cross-entropy, gradients of
//! all 8 parameters, SGD update). Goal: under 10 ms.
//! Run: `cargo bench --bench compiler`.

use axle::compiler::{DType, FunctionBuilder, Tensor, value_and_grad};
use criterion::{Criterion, criterion_group, criterion_main};

/// Traces the step and returns the StableHLO text.
fn mlp_step_text() -> String {
    let (batch, width, classes) = (32, 256, 10);
    let b = FunctionBuilder::new("mlp_step");
    let x = b.param("x", DType::F32, &[batch, width]);
    let labels = b.param("labels", DType::I32, &[batch]);
    let mut params: Vec<(String, Tensor)> = Vec::new();
    for l in 0..4 {
        let out = if l == 3 { classes } else { width };
        params.push((
            format!("w{l}"),
            b.param(&format!("w{l}"), DType::F32, &[width, out]),
        ));
        params.push((
            format!("b{l}"),
            b.param(&format!("b{l}"), DType::F32, &[out]),
        ));
    }
    let mut h = x.clone();
    for l in 0..4 {
        h = h.matmul(&params[2 * l].1) + &params[2 * l + 1].1;
        if l < 3 {
            h = h.maximum(&h.zeros_like());
        }
    }
    let logp = h.log_softmax(-1);
    let loss = -logp.take_along_axis(&labels.expand_dims(-1), -1).mean_all();
    let wrt: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let (loss, grads) = value_and_grad(&loss, &wrt);
    let updated: Vec<(String, Tensor)> = params
        .iter()
        .zip(&grads)
        .map(|((n, p), g)| (format!("{n}_new"), p - &(g * 0.01)))
        .collect();
    let mut results: Vec<(&str, &Tensor)> = vec![("loss", &loss)];
    results.extend(updated.iter().map(|(n, t)| (n.as_str(), t)));
    let f = b.build(&results).expect("the step traces");
    f.to_stablehlo()
}

fn bench(c: &mut Criterion) {
    c.bench_function("trace+grad+emit mlp4 step", |b| b.iter(mlp_step_text));
}

criterion_group!(benches, bench);
criterion_main!(benches);
