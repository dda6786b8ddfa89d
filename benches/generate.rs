//! Generation speed of llama-tiny (random parameters) on the default CPU
//! plugin: prefill time of a 1,024-token prompt, and decode tokens/s for a
//! batch of 1 and of 8 prompts, on one device and tensor parallel over 4
//! virtual devices (`model=4`; on a 2-core machine that measures the
//! partitioning's overhead, not a speed-up). One timed generation each,
//! after an untimed one that compiles the programs.
//!
//! Run with `cargo bench --bench generate` (release) or `cargo test --bench
//! generate -- --bench` (the dev profile of `docs/text.md`'s numbers);
//! without `--bench` (as `cargo test --all-targets` runs it) only the
//! smallest case runs, as a smoke test.

use axle::experiment::resolve_config;
use axle::generate::{Generator, Sampling};
use axle::modules::{CausalLm, ModelConfig, Module, init_params};
use axle::partition::MeshShape;
use axle::runtime::Client;

fn main() {
    let config = resolve_config("llama-tiny", &[] as &[&str], &[] as &[&str]).expect("llama-tiny");
    let ModelConfig::CausalLm(lm) = &config.model else {
        panic!("llama-tiny is a causal LM")
    };
    let model = CausalLm::new(lm).expect("model");
    let params = init_params(&model.param_specs(), 0);
    let client = Client::cpu(4).expect("default CPU plugin (scripts/install-plugins.sh)");
    println!("| mesh | batch | prompt | new tokens | prefill s | decode tokens/s |");
    println!("|---|---|---|---|---|---|");
    let full = std::env::args().any(|a| a == "--bench");
    let meshes: &[&str] = if full {
        &["data=1", "model=4"]
    } else {
        &["data=1"]
    };
    let cases: &[(usize, usize, usize)] = if full {
        &[(1, 1024, 32), (1, 128, 64), (8, 128, 64)]
    } else {
        &[(1, 16, 4)]
    };
    for &mesh in meshes {
        let shape: MeshShape = mesh.parse().expect("mesh");
        let mesh_value = shape.resolve(4).expect("fits 4 devices");
        let mut generator = Generator::new(
            &client,
            model.clone(),
            &mesh_value,
            &config.sharding,
            &params,
        )
        .expect("places the parameters");
        for &(batch, prompt, new) in cases {
            let prompts: Vec<Vec<u32>> = (0..batch)
                .map(|r| {
                    (0..prompt)
                        .map(|t| ((r * 131 + t * 17) % 1024) as u32)
                        .collect()
                })
                .collect();
            generator
                .generate(&prompts, new, &Sampling::greedy(), &[], false)
                .expect("compiles and generates");
            let g = generator
                .generate(&prompts, new, &Sampling::greedy(), &[], false)
                .expect("generates");
            println!(
                "| {mesh} | {batch} | {prompt} | {new} | {:.3} | {:.1} |",
                g.prefill_s, g.decode_tokens_per_s
            );
        }
    }
}
