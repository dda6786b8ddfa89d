//! A model defined outside axle's crates, trained by the stock trainer with
//! checkpoints, metrics and periodic evaluation: a two-layer tanh MLP
//! regressing the synthetic teacher task. Run with
//! `cargo run --example custom_model [DIR]` (checkpoints and metrics go to
//! DIR, default `.axle/custom_model`).

use axle::compiler::DType;
use axle::data::SyntheticTask;
use axle::learner::LearnerConfig;
use axle::modules::param::nest;
use axle::modules::{BatchShape, Ctx, InputSpec, Inputs, Linear, LinearConfig, LossOutput};
use axle::modules::{Model, Module, ParamSpec, ParamTree, Result, input};
use axle::run::{RunOptions, train_setup};

/// `y = w2 . tanh(W1 x + b1) + b2`: features `f32[batch, 16]`, targets `f32[batch]`.
struct TanhMlp {
    hidden: Linear,
    out: Linear,
}

impl Module for TanhMlp {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        nest(&mut specs, "hidden", self.hidden.param_specs());
        nest(&mut specs, "out", self.out.param_specs());
        specs
    }
}

impl Model for TanhMlp {
    fn kind(&self) -> &str {
        "regressor"
    }
    fn input_specs(&self, shape: &BatchShape) -> Result<Vec<InputSpec>> {
        let b = shape.batch_size;
        let x = InputSpec::new("features", DType::F32, &[b, 16], "(batch, _)");
        Ok(vec![
            x,
            InputSpec::new("targets", DType::F32, &[b], "(batch)"),
        ])
    }
    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> Result<LossOutput> {
        let x = input(inputs, "features")?;
        let h = ctx.scope("hidden", |c| self.hidden.forward(c, x))?.tanh();
        let y = ctx.scope("out", |c| self.out.forward(c, &h))?;
        let batch = y.dims()[0];
        let error = &y.reshape(&[batch]) - input(inputs, "targets")?;
        let mse = error.square().mean_all();
        ctx.add_summary("mse", mse.clone());
        let weight = mse.splat_like(batch as f64);
        Ok(LossOutput { loss: mse, weight })
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1);
    let dir = std::path::PathBuf::from(dir.as_deref().unwrap_or(".axle/custom_model"));
    let linear = LinearConfig::default().with_bias();
    let hidden = Linear::new(&linear.with_dims(16, 64), "hidden")?;
    let out = Linear::new(&linear.with_dims(64, 1), "out")?;
    let options = RunOptions {
        steps: 200,
        eval_every: 100,
        checkpoint_dir: Some(dir.join("ckpt")),
        metrics: Some(dir.join("metrics.jsonl")),
        ..RunOptions::default()
    };
    let learner = LearnerConfig::default().with_lr(3e-3);
    let task = SyntheticTask::TeacherRegression { noise: 0.0 };
    let model = Box::new(TanhMlp { hidden, out });
    let setup = options.setup_model("tanh-mlp", model, learner, BatchShape::new(32, 0), &task)?;
    let summary = train_setup(&setup, &options, |_| {})?;
    let (step, eval) = summary.eval_losses.last().ok_or("no evaluation")?;
    let first = summary.losses[0].1;
    println!("first loss {first:.4}, eval mse {eval:.4} at step {step}");
    Ok(())
}
