//! The training loop: steps, metrics, TensorBoard summaries, periodic
//! evaluation and checkpoints, resumption.

use super::eval::evaluate_trainer;
use super::record::{self, differences, recorded_config, same_model};
use super::watchdog::Watchdog;
use super::{RunError, RunOptions, Setup};
use crate::checkpoint::{self, BackgroundSaver, Checkpoint, CheckpointError, Checkpointer, Meta};
use crate::data::{Loader, Split};
use crate::metrics::{MetricsWriter, Record};
use crate::summary_writer::{EarlierEvents, SummaryWriter};
use crate::text::PackedTextState;
use axle_modules::InputSpec;
use axle_partition::LogicalAxis;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What a run reports at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// Steps completed (including those of a resumed checkpoint).
    pub steps_done: u64,
    /// Training loss of each step this run executed, as (step, loss).
    pub losses: Vec<(u64, f32)>,
    /// Evaluation losses, as (step, loss).
    pub eval_losses: Vec<(u64, f32)>,
    /// The last evaluation's metrics (summaries and derived metrics).
    pub eval_metrics: BTreeMap<String, f64>,
    /// The mesh the run used.
    pub mesh: String,
    /// Steps of this run the learner skipped (`learner.drop_grad_norm`).
    pub skipped_steps: u64,
    /// Whether [`RunOptions::stop`] ended the run before `steps`.
    pub interrupted: bool,
}

/// Trains as `options` say: resumes if asked, logs metrics, evaluates and
/// checkpoints periodically, and stops with an error (keeping the last good
/// checkpoint) if the loss, the gradient norm or the updated state stops
/// being finite.
///
/// Resuming continues the run the newest checkpoint recorded: with no
/// experiment, modifier or override given, the recorded ones; its data and
/// seed. Options that define a different config, data, tokenizer or seed
/// are refused, naming both values. A
/// resume into a directory without a checkpoint starts the experiment
/// given at step 0, and is refused when none is given.
pub fn train(options: &RunOptions, progress: impl FnMut(&Record)) -> Result<RunSummary, RunError> {
    let latest = match (&options.checkpoint_dir, options.resume) {
        (Some(dir), true) => Checkpointer::new(dir, 1).latest()?,
        _ => None,
    };
    let options = match (latest, &options.checkpoint_dir) {
        (Some(dir), _) => {
            let meta = checkpoint::load_meta(&dir).map_err(resume_hint(&dir))?;
            options.completed_from(&meta, &dir)?
        }
        (None, Some(dir)) if options.resume && options.experiment.is_none() => {
            // A run still busy there (before its first save) is the better answer.
            drop(Checkpointer::new(dir, 1).lock()?);
            return Err(RunError::NoCheckpoint(format!(
                "--resume: {} holds no checkpoint to resume, and no --experiment says what to start there",
                dir.display()
            )));
        }
        (None, Some(dir)) if options.resume => {
            eprintln!(
                "--resume: {} holds no checkpoint yet; starting at step 0",
                dir.display()
            );
            options.clone()
        }
        (None, _) => options.clone(),
    };
    let setup = options.setup()?;
    train_setup(&setup, &options, progress)
}

/// Trains `setup` (a registered experiment's or a model built in code)
/// with the loop options of `options` (steps, seed, checkpoints, eval,
/// metrics); its experiment fields are not read.
///
/// It holds the lock of the checkpoint directory while it runs (a second
/// run on it fails with [`crate::checkpoint::CheckpointError::Locked`]),
/// checks the checkpoint directory, metrics file and summaries directory
/// before compiling the step, logs each checkpoint it saves on stderr, and
/// stops early, saving a checkpoint, when [`RunOptions::stop`] is set.
pub fn train_setup(
    setup: &Setup,
    options: &RunOptions,
    mut progress: impl FnMut(&Record),
) -> Result<RunSummary, RunError> {
    // Everything that can fail on the outputs (the checkpoint directory,
    // the checkpoint to resume, the metrics file, the summaries directory)
    // is checked before the step is compiled.
    options.check_loop()?;
    let saver = options
        .checkpoint_dir
        .as_ref()
        .map(|dir| Checkpointer::new(dir, options.keep));
    let _lock = saver.as_ref().map(Checkpointer::lock).transpose()?;
    let earlier = match (options.resume, &saver) {
        (false, Some(saver)) => saver.list()?,
        _ => Vec::new(),
    };
    if let (false, Some((_, newest))) = (options.overwrite, earlier.last()) {
        return Err(RunError::CheckpointDirInUse {
            newest: newest.clone(),
        });
    }
    let (mut restored, mut seed) = (None, options.seed());
    if let (true, Some(saver)) = (options.resume, &saver)
        && let Some(dir) = saver.latest()?
    {
        let checkpoint = checkpoint::load(&dir).map_err(resume_hint(&dir))?;
        if let (Some(recorded), Some(config)) =
            (recorded_config(&checkpoint.meta, &dir)?, &setup.config)
            && !same_model(&recorded, config)
        {
            return Err(RunError::Mismatch {
                dir,
                differences: differences(&recorded, config),
            });
        }
        if let Some(text) = &setup.text {
            record::check_tokenizer(&checkpoint.meta, text.tokenizer())?;
        }
        seed = options.resumed_seed(&checkpoint.meta, &dir)?;
        restored = Some(checkpoint);
    }
    let init = match (&restored, &options.init_from) {
        (None, Some(dir)) => Some(init_checkpoint(setup, dir)?),
        _ => None,
    };
    // The end-of-sequence ids of a model from Hugging Face, read when the
    // run starts (as `import-hf` does) and carried by every checkpoint.
    let eos_record = match (&restored, &options.init_from) {
        (Some(c), _) => c.meta.run.get(record::EOS_TOKEN_IDS).cloned(),
        (None, Some(dir)) => {
            let tokenizer = setup.text.as_ref().map(|t| t.tokenizer());
            let (ids, _) = crate::hf::default_eos_ids(dir, tokenizer)?;
            Some(serde_json::to_string(&ids).expect("ids serialize"))
        }
        (None, None) => None,
    };
    // Compiled before any output of an earlier run is replaced (`--overwrite` empties its metrics
    // file and removes its event files and checkpoints): a step that does not compile loses none.
    let mut trainer = setup.trainer(seed)?;
    let mut writer = options
        .metrics
        .as_deref()
        .map(|p| match &restored {
            Some(c) => MetricsWriter::resume_at(p, c.step, record::recorded_loss(&c.meta)),
            None if options.overwrite => MetricsWriter::replace(p),
            None if options.resume => MetricsWriter::create_without_checkpoint(p),
            None => MetricsWriter::create(p),
        })
        .transpose()?;
    let mut tensorboard = options
        .summaries
        .as_deref()
        .map(|dir| {
            let earlier = if restored.is_some() || options.resume {
                EarlierEvents::Keep
            } else if options.overwrite {
                EarlierEvents::RemoveOwn
            } else {
                EarlierEvents::Refuse
            };
            SummaryWriter::for_run(dir, earlier)
        })
        .transpose()?;
    if let (Some(tb), Some(checkpoint)) = (&mut tensorboard, &restored) {
        // Tells TensorBoard to drop what an earlier run wrote after this checkpoint.
        tb.session_start(checkpoint.step + 1)?;
    }
    if let (Some(saver), false) = (&saver, earlier.is_empty()) {
        saver.discard_all()?;
        eprintln!(
            "--overwrite: removed the {} checkpoint(s) of an earlier run from {}",
            earlier.len(),
            saver.dir().display()
        );
    }
    let mut background = saver.clone().map(BackgroundSaver::new);
    let watchdog = options.step_timeout.map(Watchdog::start);
    let watch = |kind: &'static str, step: u64| {
        if let Some(w) = &watchdog {
            w.begin(kind, step);
        }
    };
    let done = || {
        if let Some(w) = &watchdog {
            w.end();
        }
    };
    let mut loader = Loader::new(
        setup.source.as_ref(),
        Split::Train,
        setup.shape.batch_size,
        seed,
    );
    let mut text = setup
        .text
        .as_ref()
        .map(|t| t.train_stream(seed))
        .transpose()?;
    if let Some(checkpoint) = &restored {
        trainer.restore(checkpoint)?;
        loader.seek(checkpoint.meta.input_position);
        if let Some(stream) = &mut text {
            stream.restore(&text_state(checkpoint)?);
        }
    }
    if let Some(init) = &init {
        trainer.restore(init)?;
    }
    drop(init);
    drop(restored);
    let flops_per_step = setup.model.train_flops(&setup.shape);
    let tokens_per_step = tokens_per_batch(&setup.inputs()?) as f64;
    let kind = setup
        .client
        .addressable_devices()?
        .first()
        .map_or(String::new(), |d| d.kind.clone());
    let peak = options
        .peak_flops
        .or_else(|| crate::metrics::peak_flops(&kind, "f32"))
        .map(|p| p * setup.mesh.size() as f64);
    let mut summary = RunSummary {
        steps_done: trainer.steps_done(),
        losses: Vec::new(),
        eval_losses: Vec::new(),
        eval_metrics: BTreeMap::new(),
        mesh: setup.mesh.to_string(),
        skipped_steps: 0,
        interrupted: false,
    };
    let mut emit = |record: Record, writer: &mut Option<MetricsWriter>| -> Result<(), RunError> {
        if let Some(w) = writer {
            w.write(&record)?;
        }
        if let Some(tb) = &mut tensorboard {
            let (step, scalars) = record.scalars();
            tb.scalars(step, &scalars)?;
            if matches!(record, Record::Eval { .. }) {
                tb.flush()?;
            }
        }
        progress(&record);
        Ok(())
    };
    while trainer.steps_done() < options.steps {
        let batch = match &mut text {
            Some(stream) => stream.next_batch()?,
            None => loader.next_batch(),
        };
        let start = Instant::now();
        watch("train step", trainer.steps_done() + 1);
        let m = trainer.step(&batch, seed)?;
        done();
        let seconds = start.elapsed().as_secs_f64();
        let step = trainer.steps_done();
        // A skipped step changed nothing, so a non-finite loss or gradient
        // norm there is survivable; anywhere else, or new parameters or
        // optimizer state that are not finite, stop the run before that
        // state is saved.
        let what = if !m.skipped && !m.loss.is_finite() {
            Some(format!("loss is {}", m.loss))
        } else if !m.skipped && !m.grad_norm.is_finite() {
            Some(format!("gradient norm is {}", m.grad_norm))
        } else if !m.params_finite {
            Some("updated parameters are not finite".to_string())
        } else {
            None
        };
        if let Some(what) = what {
            return Err(RunError::NonFinite {
                step,
                what,
                last_checkpoint: last_good(background.as_mut())?,
            });
        }
        summary.losses.push((step, m.loss));
        summary.skipped_steps += u64::from(m.skipped);
        let record = Record::Train {
            step,
            loss: f64::from(m.loss),
            grad_norm: f64::from(m.grad_norm),
            learning_rate: f64::from(m.learning_rate),
            skipped: m.skipped,
            step_time_s: seconds,
            tokens_per_s: tokens_per_step / seconds,
            mfu: peak.map(|p| flops_per_step / seconds / p),
            summaries: m
                .summaries
                .iter()
                .map(|(k, v)| (k.clone(), f64::from(*v)))
                .collect(),
        };
        emit(record, &mut writer)?;
        if options.eval_every > 0 && (step % options.eval_every == 0 || step == options.steps) {
            watch("eval", step);
            let report = evaluate_trainer(&trainer, setup, seed, options.eval_batches)?;
            done();
            summary.eval_losses.push((step, report.loss));
            summary.eval_metrics = report.metrics.clone();
            emit(
                Record::Eval {
                    step,
                    loss: f64::from(report.loss),
                    metrics: report.metrics,
                },
                &mut writer,
            )?;
        }
        let stopping = options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst));
        if let Some(background) = &mut background
            && (stopping || step % options.checkpoint_every == 0 || step == options.steps)
        {
            let mut run = options.record(setup);
            if let Some(eos) = &eos_record {
                run.insert(record::EOS_TOKEN_IDS.to_string(), eos.clone());
            }
            if m.loss.is_finite() {
                run.insert(record::LOSS.to_string(), f64::from(m.loss).to_string());
            }
            if let Some(stream) = &text {
                let state = serde_json::to_string(&stream.state()).expect("states serialize");
                run.insert(record::TEXT_STATE.to_string(), state);
            }
            let meta = Meta {
                input_position: text
                    .as_ref()
                    .map_or(loader.position(), |s| s.state().position),
                rng_state: seed,
                run,
            };
            watch("checkpoint copy", step);
            let checkpoint = trainer.checkpoint(meta)?;
            done();
            if let Some(name) = checkpoint.first_non_finite() {
                return Err(RunError::NonFinite {
                    step,
                    what: format!("{name} is not finite (not saved)"),
                    last_checkpoint: last_good(Some(background))?,
                });
            }
            background.save(checkpoint)?;
            if !options.async_checkpoints {
                background.wait()?;
            }
        }
        if stopping && step < options.steps {
            summary.interrupted = true;
            break;
        }
    }
    if let Some(background) = &mut background {
        background.wait()?;
    }
    if let Some(tb) = &mut tensorboard {
        tb.flush()?;
    }
    summary.steps_done = trainer.steps_done();
    Ok(summary)
}

/// Adds to a damaged checkpoint's error how to resume from the one before.
fn resume_hint(dir: &Path) -> impl Fn(CheckpointError) -> CheckpointError + '_ {
    move |e| match e {
        CheckpointError::Corrupt { path, message } => CheckpointError::Corrupt {
            path,
            message: format!(
                "{message}; to resume from the checkpoint before it, move {} away",
                dir.display()
            ),
        },
        other => other,
    }
}

/// The newest checkpoint on disk once the save in flight has finished,
/// for error messages.
fn last_good(background: Option<&mut BackgroundSaver>) -> Result<String, RunError> {
    Ok(match background {
        Some(b) => {
            b.wait()?;
            b.checkpointer()
                .latest()?
                .map_or("none".into(), |p| p.display().to_string())
        }
        None => "no checkpoint directory".into(),
    })
}

/// The text stream's state a checkpoint recorded.
fn text_state(checkpoint: &Checkpoint) -> Result<PackedTextState, RunError> {
    let text = checkpoint.meta.run.get(record::TEXT_STATE).ok_or_else(|| {
        RunError::InvalidOption(format!(
            "the checkpoint at step {} records no text input state to resume from",
            checkpoint.step
        ))
    })?;
    serde_json::from_str(text).map_err(|e| {
        RunError::InvalidOption(format!(
            "the checkpoint at step {} records a text input state that does not parse: {e}",
            checkpoint.step
        ))
    })
}

/// Tokens of one batch: the product of the batch and sequence dimensions
/// of the first input (examples, for models without a sequence).
fn tokens_per_batch(inputs: &[InputSpec]) -> usize {
    inputs.first().map_or(0, |spec| {
        spec.shape
            .iter()
            .zip(&spec.roles.0)
            .filter(|(_, role)| matches!(role, LogicalAxis::Batch | LogicalAxis::Seq))
            .map(|(d, _)| d)
            .product()
    })
}

impl RunOptions {
    /// Refuses loop options that cannot work rather than coercing them:
    /// zero checkpoints kept, a zero checkpoint interval, zero evaluation
    /// batches, `resume` or synchronous checkpoints without a checkpoint
    /// directory, `resume` with `overwrite`.
    fn check_loop(&self) -> Result<(), RunError> {
        let problem = if self.keep == 0 {
            Some("keep must be at least 1 checkpoint")
        } else if self.checkpoint_every == 0 {
            Some("checkpoint_every must be at least 1 step")
        } else if self.eval_batches == 0 {
            Some("eval_batches must be at least 1")
        } else if self.resume && self.checkpoint_dir.is_none() {
            Some("resume needs a checkpoint directory to resume from")
        } else if !self.async_checkpoints && self.checkpoint_dir.is_none() {
            Some("synchronous checkpoints (--sync-checkpoints) need a checkpoint directory")
        } else if self.resume && self.overwrite {
            Some("resume and overwrite contradict each other: choose one")
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(RunError::InvalidOption(p.into())))
    }
}

/// The step-0 checkpoint of `--init-from hf:DIR`: the Hugging Face model
/// in `dir` imported and laid out as the run's model expects (scanned or
/// unrolled stacks), checked before anything is compiled. Errors: those of
/// the import, and [`RunError::InvalidOption`] naming the directory and the
/// first parameter that differs when `--experiment` or `--set` made the
/// run's model another than its `config.json` describes.
fn init_checkpoint(setup: &Setup, dir: &Path) -> Result<Checkpoint, RunError> {
    let model = crate::hf::read_config(dir)?;
    let expected: Vec<(String, Vec<usize>)> = setup
        .model
        .param_specs()
        .into_iter()
        .map(|(name, spec)| (name, spec.shape))
        .collect();
    let params = checkpoint::to_stack_layout(crate::hf::import_params(dir, &model)?, &expected);
    let shape = |t: Option<&ndarray::ArrayD<f32>>| {
        t.map_or("absent".to_string(), |t| format!("{:?}", t.shape()))
    };
    let differs = expected
        .iter()
        .find(|(name, shape)| params.get(name).map(|t| t.shape()) != Some(shape.as_slice()))
        .map(|(name, ours)| {
            format!(
                "{name} is {ours:?} in the run's model, {} from {}",
                shape(params.get(name)),
                dir.display()
            )
        })
        .or_else(|| {
            params
                .keys()
                .find(|name| !expected.iter().any(|(n, _)| n == *name))
                .map(|name| format!("{name} is in {} only", dir.display()))
        });
    if let Some(difference) = differs {
        return Err(RunError::InvalidOption(format!(
            "--init-from hf:{}: the run's model (from --experiment and --set) is not the one \
             {}/config.json describes: {difference}",
            dir.display(),
            dir.display()
        )));
    }
    Ok(crate::hf::initial_checkpoint(
        setup.model.as_ref(),
        &setup.learner,
        params,
        BTreeMap::new(),
    ))
}
