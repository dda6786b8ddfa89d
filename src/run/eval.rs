//! Evaluation: of a trainer's parameters, and of a checkpoint with the run
//! it recorded.

use super::record::{self, differences, recorded_config, same_model};
use super::{RunError, RunOptions, Setup};
use crate::checkpoint::{self, Checkpointer};
use crate::data::{Loader, Split};
use crate::trainer::Trainer;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Mean metrics of an evaluation: the loss and every summary weighted by
/// the batches' loss weights, then the model's derived metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// Mean loss over the evaluated targets.
    pub loss: f32,
    /// Summaries and derived metrics (accuracy, perplexity, ...).
    pub metrics: BTreeMap<String, f64>,
}

/// Evaluates `trainer`'s parameters on the first `batches` held-out
/// batches of `setup.source` (in the order `seed` gives).
pub fn evaluate_trainer(
    trainer: &Trainer,
    setup: &Setup,
    seed: u64,
    batches: u64,
) -> Result<EvalReport, RunError> {
    let eval = Loader::new(
        setup.source.as_ref(),
        Split::Eval,
        setup.shape.batch_size,
        seed,
    );
    let (mut loss, mut weight) = (0.0f64, 0.0f64);
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for p in 0..batches.max(1) {
        let m = trainer.evaluate(&eval.batch_at(p))?;
        let w = f64::from(m.weight);
        loss += f64::from(m.loss) * w;
        weight += w;
        for (name, v) in m.summaries {
            *sums.entry(name).or_default() += f64::from(v) * w;
        }
    }
    let weight = weight.max(f64::MIN_POSITIVE);
    let loss = loss / weight;
    let mut metrics: BTreeMap<String, f64> =
        sums.into_iter().map(|(k, v)| (k, v / weight)).collect();
    let derived = setup.model.eval_metrics(loss, &metrics);
    metrics.extend(derived);
    Ok(EvalReport {
        loss: loss as f32,
        metrics,
    })
}

/// The result of `axle eval`.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Loss and metrics.
    pub report: EvalReport,
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
    /// Its step.
    pub step: u64,
    /// The experiment it belongs to.
    pub experiment: String,
}

/// Evaluates the newest checkpoint in `options.checkpoint_dir`, rebuilding
/// the run it recorded (experiment, modifiers, overrides, data, mesh,
/// seed): nothing else needs to be given. Options add to the recorded run;
/// options that change its config or data are an error naming the
/// checkpoint and what differs. `eval_batches` defaults to the number the
/// run used. Only the checkpoint's metadata and parameters are read
/// ([`checkpoint::load_params`]): a checkpoint without optimizer state
/// evaluates.
pub fn evaluate(options: &RunOptions, eval_batches: Option<u64>) -> Result<Evaluation, RunError> {
    let dir = options
        .checkpoint_dir
        .as_ref()
        .ok_or_else(|| RunError::NoCheckpoint("no checkpoint directory given".into()))?;
    let latest = Checkpointer::new(dir, 1)
        .latest()?
        .ok_or_else(|| RunError::NoCheckpoint(format!("no checkpoint in {}", dir.display())))?;
    let restored = checkpoint::load_params(&latest)?;
    let recorded = recorded_config(&restored.meta, &latest)?.ok_or_else(|| {
        RunError::NoCheckpoint(format!(
            "{} records no experiment config: it was written for a model built in code \
             (`Setup::new`, `RunOptions::setup_model`; evaluate it with `run::evaluate_trainer`) \
             or by `axle bench`",
            latest.display()
        ))
    })?;
    let completed = options.completed_from(&restored.meta, &latest)?;
    let setup = completed.setup()?;
    let config = setup
        .config
        .as_ref()
        .expect("an experiment's setup has its config");
    if !same_model(&recorded, config) {
        return Err(RunError::Mismatch {
            dir: latest.clone(),
            differences: differences(&recorded, config),
        });
    }
    if let Some(text) = &setup.text {
        record::check_tokenizer(&restored.meta, text.tokenizer())?;
    }
    let batches = eval_batches
        .or_else(|| {
            let run = &restored.meta.run;
            run.get(record::EVAL_BATCHES).and_then(|b| b.parse().ok())
        })
        .unwrap_or(options.eval_batches);
    let mut trainer = setup.trainer(completed.seed())?;
    trainer.restore_params(&restored)?;
    let report = evaluate_trainer(&trainer, &setup, completed.seed(), batches)?;
    Ok(Evaluation {
        report,
        checkpoint: latest,
        step: restored.step,
        experiment: setup.name,
    })
}
