//! The reference model trains end to end on the CPU plugin.

use axle::run::{RunOptions, train};

/// llama-tiny (docs/design.md) on the synthetic task for 30 steps: the loss
/// starts near ln(1024) ≈ 6.93 (a little above it: the untied LM head's
/// fan-in init gives unit-variance logits) and the mean of the last five
/// steps is more than one nat below the mean of the first five. The full
/// 300-step run (`axle train`, the README's command) goes below 1.0.
#[test]
fn llama_tiny_loss_falls_on_the_synthetic_task() {
    let options = RunOptions {
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        steps: 30,
        eval_every: 30,
        ..RunOptions::default()
    };
    let summary = train(&options, |_| {}).unwrap();
    let losses: Vec<f32> = summary.losses.iter().map(|l| l.1).collect();
    assert!((6.5..8.0).contains(&losses[0]), "first loss {}", losses[0]);
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
    let (first, last) = (mean(&losses[..5]), mean(&losses[25..]));
    assert!(last < first - 1.0, "losses {losses:?}");
    let (step, eval) = summary.eval_losses[0];
    assert_eq!(step, 30);
    assert!(eval < first, "eval loss {eval} after 30 steps");
}
