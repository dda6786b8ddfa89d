//! End-to-end training of llama-tiny on the CPU plugin.

use axle::data::{Loader, Split, Synthetic};
use axle::learner::LearnerConfig;
use axle::partition::Mesh;
use axle::runtime::Client;
use axle::trainer::Trainer;
use axle_modules::{CausalLm, registered_model};

#[test]
fn llama_tiny_loss_falls_on_the_synthetic_task() {
    let reg = registered_model("llama-tiny").unwrap();
    let model = CausalLm::new(&reg.config).unwrap();
    let client = Client::cpu(1).unwrap();
    let mesh = Mesh::new(&[("data", 1)], 1).unwrap();
    let t0 = std::time::Instant::now();
    let mut trainer = Trainer::new(
        &client,
        &model,
        &LearnerConfig::default(),
        reg.batch_size,
        reg.seq_len,
        &mesh,
        0,
    )
    .unwrap();
    eprintln!("build+compile {:?}", t0.elapsed());
    let task = Synthetic::new(1024, 0);
    let mut loader = Loader::new(&task, Split::Train, reg.batch_size, reg.seq_len, 0);
    for i in 0..20 {
        let t = std::time::Instant::now();
        let m = trainer.step(&loader.next_batch(), 0).unwrap();
        eprintln!("step {i} {m:?} {:?}", t.elapsed());
    }
}
