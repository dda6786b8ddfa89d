//! Trace + emit time of training steps (loss and gradients of every parameter, lowered to
//! StableHLO text) for llama-tiny and llama2-7b, unrolled and scanned, at depths 4, 16 and 64.
//! Goal: flat in depth for the scanned stack, well under a second for llama2-7b.
//!
//! Run: `cargo bench --bench modules`.

use axle::compiler::DType;
use axle::modules::{CausalLm, Config, LossSignature, loss_and_grad_function, registered_model};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn trace_and_emit(c: &mut Criterion) {
    let mut group = c.benchmark_group("trace_emit_train_step");
    group.sample_size(10);
    for name in ["llama-tiny", "llama2-7b"] {
        for depth in [4, 16, 64] {
            for scan in [false, true] {
                let registered = registered_model(name).unwrap();
                let mut cfg = registered.config;
                cfg.set("decoder.transformer.num_layers", &depth.to_string())
                    .unwrap();
                cfg.set("decoder.transformer.scan", &scan.to_string())
                    .unwrap();
                let model = CausalLm::new(&cfg).unwrap();
                let sig = LossSignature {
                    batch_size: registered.batch_size,
                    seq_len: registered.seq_len,
                    dtype: DType::F32,
                    is_training: false,
                };
                let label = format!("{name}/{}", if scan { "scanned" } else { "unrolled" });
                group.bench_with_input(BenchmarkId::new(label, depth), &model, |b, model| {
                    b.iter(|| {
                        loss_and_grad_function(model, &sig)
                            .unwrap()
                            .to_stablehlo()
                            .len()
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, trace_and_emit);
criterion_main!(benches);
