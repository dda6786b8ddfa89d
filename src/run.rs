//! A training run from options to metrics and checkpoints: what `axle
//! train` and `axle eval` do, callable from tests and other programs, for
//! registered experiments ([`RunOptions::setup`]) and for any model
//! ([`Setup::new`]).

use crate::checkpoint::{self, CheckpointError, Checkpointer, Meta};
use crate::data::{
    ArrayFile, DataError, LanguageModelSource, Loader, Source, Split, SyntheticTask, TokenFile,
};
use crate::experiment::{Experiment, ExperimentConfig, apply_modifier, experiment};
use crate::learner::LearnerConfig;
use crate::metrics::{MetricsError, MetricsWriter, Record};
use crate::summary_writer::{SummaryError, SummaryWriter};
use crate::trainer::{TrainError, Trainer};
use axle_modules::{BatchShape, INPUT_IDS, InputSpec, Model, TARGET_LABELS};
use axle_partition::{
    LogicalAxis, LogicalRules, Mesh, MeshChoice, MeshRules, MeshShape, choose_mesh, device_selector,
};
use axle_runtime::{Client, CreateOption, Plugin};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The experiment trained when none is named.
pub const DEFAULT_EXPERIMENT: &str = "llama-tiny";

/// Everything that defines a run (the `axle train` options).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Registered experiment name; [`DEFAULT_EXPERIMENT`] for training when
    /// `None`, the checkpoint's for evaluation.
    pub experiment: Option<String>,
    /// Modifiers `NAME[=ARGS]`, applied in order after the mesh rule's.
    pub modifiers: Vec<String>,
    /// Config overrides `path=value`, applied after the modifiers
    /// (see [`ExperimentConfig::apply_overrides`] for paths).
    pub overrides: Vec<String>,
    /// An explicit mesh (`data=2,fsdp=4`); the mesh rules choose otherwise.
    pub mesh: Option<String>,
    /// The plugin: `cpu`, `cuda`, `tpu` or a path to a PJRT plugin.
    pub plugin: String,
    /// Virtual CPU devices (`cpu_device_count`); ignored by other plugins.
    pub cpu_devices: Option<usize>,
    /// Training data file; the experiment's synthetic task when `None`.
    pub data: Option<PathBuf>,
    /// Train until this many steps are done.
    pub steps: u64,
    /// Batch size (`input.batch_size` of the experiment when `None`).
    pub batch_size: Option<usize>,
    /// Sequence length (`input.seq_len` of the experiment when `None`).
    pub seq_len: Option<usize>,
    /// Seed of initialisation, data order, synthetic task and dropout.
    pub seed: u64,
    /// Where checkpoints go; none are written when `None`.
    pub checkpoint_dir: Option<PathBuf>,
    /// Save every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep: usize,
    /// Continue from the newest checkpoint in `checkpoint_dir`, if any.
    pub resume: bool,
    /// Evaluate every this many steps (0: never).
    pub eval_every: u64,
    /// Batches per evaluation.
    pub eval_batches: u64,
    /// Where metrics go (JSON lines); none when `None`.
    pub metrics: Option<PathBuf>,
    /// Directory for TensorBoard event files (`train/...` and `eval/...`
    /// scalars); none when `None`.
    pub summaries: Option<PathBuf>,
    /// Peak FLOP/s of one device, for MFU (from the device table when `None`).
    pub peak_flops: Option<f64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            experiment: None,
            modifiers: Vec::new(),
            overrides: Vec::new(),
            mesh: None,
            plugin: "cpu".into(),
            cpu_devices: None,
            data: None,
            steps: 300,
            batch_size: None,
            seq_len: None,
            seed: 0,
            checkpoint_dir: None,
            checkpoint_every: 100,
            keep: 3,
            resume: false,
            eval_every: 50,
            eval_batches: 4,
            metrics: None,
            summaries: None,
            peak_flops: None,
        }
    }
}

/// A run failed; the message names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The model config or an override is wrong.
    #[error(transparent)]
    Config(#[from] axle_modules::Error),
    /// A modifier is unknown or its argument is wrong.
    #[error("{0}")]
    Modifier(String),
    /// The mesh text or the mesh rules failed.
    #[error("mesh: {0}")]
    Mesh(String),
    /// The plugin or device failed.
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// The trainer failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// There is no checkpoint to evaluate.
    #[error("{0}")]
    NoCheckpoint(String),
    /// The checkpoint was written by a different run than the one asked for.
    #[error("checkpoint {dir} does not match this run:\n{differences}")]
    Mismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The differing config lines, `checkpoint: ...` / `this run: ...`.
        differences: String,
    },
    /// Metrics could not be written.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// TensorBoard summaries could not be written.
    #[error(transparent)]
    Summaries(#[from] SummaryError),
    /// The loss stopped being a number; the last good checkpoint is kept.
    #[error(
        "loss is {loss} at step {step}: stopping; the last good checkpoint ({last_checkpoint}) is kept"
    )]
    NonFiniteLoss {
        /// The step whose loss was not finite.
        step: u64,
        /// The loss.
        loss: f32,
        /// The newest checkpoint on disk.
        last_checkpoint: String,
    },
}

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
}

/// Keys of what a checkpoint records about its run (`meta.json`'s `run`).
mod record {
    /// The experiment name (or the name given to [`super::Setup::new`]).
    pub const EXPERIMENT: &str = "experiment";
    /// The resolved experiment config, as JSON.
    pub const CONFIG: &str = "config";
    /// Modifiers, as a JSON list.
    pub const MODIFIERS: &str = "modifiers";
    /// Overrides, as a JSON list.
    pub const OVERRIDES: &str = "overrides";
    /// The data file, empty for the synthetic task.
    pub const DATA: &str = "data";
    /// The mesh.
    pub const MESH: &str = "mesh";
    /// Batches per evaluation.
    pub const EVAL_BATCHES: &str = "eval_batches";
}

/// A run's resolved pieces: model, learner, batch shape, data, client and
/// mesh.
pub struct Setup {
    /// The experiment's name, or any name for a model built in code.
    pub name: String,
    /// The resolved experiment config (`None` for a model built in code).
    pub config: Option<ExperimentConfig>,
    /// The model.
    pub model: Box<dyn Model>,
    /// The learner.
    pub learner: LearnerConfig,
    /// The batch shape.
    pub shape: BatchShape,
    /// The training and evaluation examples.
    pub source: Box<dyn Source>,
    /// The client of the chosen plugin.
    pub client: Client,
    /// The mesh (explicit or chosen by the mesh rules).
    pub mesh: Mesh,
    /// The logical rules mapping the model's roles to the mesh's axes (the
    /// experiment's `sharding`; the defaults for a model built in code).
    pub rules: LogicalRules,
    /// Modifiers the chosen mesh rule named (already applied).
    pub mesh_modifiers: Vec<String>,
}

impl Setup {
    /// A setup for a model built in code (not a registered experiment):
    /// the stock trainer, checkpoints, metrics and evaluation work on it
    /// through [`train_setup`] and [`evaluate_setup`]. It shards by the
    /// default logical rules; set [`Setup::rules`] for others.
    pub fn new(
        name: &str,
        model: Box<dyn Model>,
        learner: LearnerConfig,
        shape: BatchShape,
        source: Box<dyn Source>,
        client: Client,
        mesh: Mesh,
    ) -> Setup {
        Setup {
            name: name.to_string(),
            config: None,
            model,
            learner,
            shape,
            source,
            client,
            mesh,
            rules: LogicalRules::default(),
            mesh_modifiers: Vec::new(),
        }
    }

    /// A trainer for this model, learner, shape, mesh and rules, with
    /// parameters initialised from `seed`.
    pub fn trainer(&self, seed: u64) -> Result<Trainer, TrainError> {
        Trainer::new(
            &self.client,
            self.model.as_ref(),
            &self.learner,
            &self.shape,
            &self.mesh,
            &self.rules,
            seed,
        )
    }

    /// The model's inputs for this setup's batch shape.
    pub fn inputs(&self) -> Result<Vec<InputSpec>, RunError> {
        Ok(self.model.input_specs(&self.shape)?)
    }
}

/// The examples for `model`'s `inputs`: a data file (token formats for a
/// causal LM's `input_ids`/`target_labels`; `.safetensors` or a directory
/// of `.npy` named arrays otherwise), or `task` when `data` is `None`.
pub fn open_source(
    data: Option<&Path>,
    inputs: &[InputSpec],
    task: &SyntheticTask,
    seed: u64,
) -> Result<Box<dyn Source>, RunError> {
    let Some(path) = data else {
        return Ok(task.source(inputs, seed)?);
    };
    let names: Vec<&str> = inputs.iter().map(|s| s.name.as_str()).collect();
    let named_arrays = path.is_dir() || path.extension().is_some_and(|e| e == "safetensors");
    if names == [INPUT_IDS, TARGET_LABELS] && !named_arrays {
        let ids = &inputs[0];
        let vocab = ids.valid.as_ref().map_or(0, |v| v.end.max(0) as usize);
        let seq = ids.shape[1];
        return Ok(Box::new(LanguageModelSource::new(
            Box::new(TokenFile::open(path, vocab, seq)?),
            seq,
        )));
    }
    Ok(Box::new(ArrayFile::open(path, inputs)?))
}

impl RunOptions {
    /// The experiment's config after the mesh rule's modifiers, this run's
    /// modifiers and overrides, and the batch size / sequence length
    /// options; with the mesh and the mesh rule's modifiers.
    pub fn resolve(
        &self,
        client: &Client,
    ) -> Result<(ExperimentConfig, Mesh, Vec<String>), RunError> {
        let name = self.experiment.as_deref().unwrap_or(DEFAULT_EXPERIMENT);
        self.resolve_experiment(experiment(name)?, client)
    }

    /// As [`RunOptions::resolve`], for an experiment given whole (one not
    /// in the registry, or a registered one with other mesh rules).
    pub fn resolve_experiment(
        &self,
        exp: Experiment,
        client: &Client,
    ) -> Result<(ExperimentConfig, Mesh, Vec<String>), RunError> {
        let choice = self.choose_mesh(client, &exp.mesh_rules)?;
        let mut config = exp.config;
        for m in choice.modifiers.iter().chain(&self.modifiers) {
            apply_modifier(&mut config, m).map_err(RunError::Modifier)?;
        }
        config.apply_overrides(&self.overrides)?;
        if let Some(b) = self.batch_size {
            config.input.batch_size = b;
        }
        if let Some(s) = self.seq_len {
            config.input.seq_len = s;
        }
        Ok((config, choice.mesh, choice.modifiers))
    }

    /// Resolves the experiment, modifiers, overrides, plugin, client, mesh
    /// and data.
    pub fn setup(&self) -> Result<Setup, RunError> {
        let client = self.client()?;
        let (config, mesh, mesh_modifiers) = self.resolve(&client)?;
        self.setup_from(config, client, mesh, mesh_modifiers)
    }

    /// A setup for a model built in code: the client, mesh (explicit, or
    /// the default mesh rules') and data (`self.data`, or `task`) come from
    /// these options, as for a registered experiment.
    pub fn setup_model(
        &self,
        name: &str,
        model: Box<dyn Model>,
        learner: LearnerConfig,
        shape: BatchShape,
        task: &SyntheticTask,
    ) -> Result<Setup, RunError> {
        let client = self.client()?;
        let mesh = self.choose_mesh(&client, &MeshRules::default())?.mesh;
        let inputs = model.input_specs(&shape)?;
        let source = open_source(self.data.as_deref(), &inputs, task, self.seed)?;
        Ok(Setup::new(
            name, model, learner, shape, source, client, mesh,
        ))
    }

    /// The mesh: explicit (`self.mesh`) or the first of `rules` matching
    /// the client's devices.
    fn choose_mesh(&self, client: &Client, rules: &MeshRules) -> Result<MeshChoice, RunError> {
        let devices = client.addressable_devices()?;
        let explicit = self
            .mesh
            .as_deref()
            .map(|m| m.parse::<MeshShape>())
            .transpose()
            .map_err(|e| RunError::Mesh(e.to_string()))?;
        let kind = devices
            .first()
            .map_or("unknown".to_string(), |d| d.kind.clone());
        let selector = device_selector(&client.platform_name()?, &kind, devices.len());
        choose_mesh(explicit.as_ref(), &selector, rules, devices.len())
            .map_err(|e| RunError::Mesh(e.to_string()))
    }

    fn setup_from(
        &self,
        config: ExperimentConfig,
        client: Client,
        mesh: Mesh,
        mesh_modifiers: Vec<String>,
    ) -> Result<Setup, RunError> {
        let model = config.model.build()?;
        let shape = BatchShape {
            batch_size: config.input.batch_size,
            seq_len: config.input.seq_len,
        };
        let inputs = model.input_specs(&shape)?;
        let source = open_source(
            self.data.as_deref(),
            &inputs,
            &config.input.synthetic,
            self.seed,
        )?;
        Ok(Setup {
            name: self
                .experiment
                .clone()
                .unwrap_or_else(|| DEFAULT_EXPERIMENT.into()),
            learner: config.learner.clone(),
            rules: config.sharding.clone(),
            config: Some(config),
            model,
            shape,
            source,
            client,
            mesh,
            mesh_modifiers,
        })
    }

    /// A client of the chosen plugin (with `cpu_device_count` on CPU).
    pub fn client(&self) -> Result<Client, RunError> {
        let plugin = Plugin::load(&self.plugin)?;
        let mut options = Vec::new();
        if let Some(n) = self.cpu_devices
            && self.plugin.contains("cpu")
        {
            options.push(CreateOption::int("cpu_device_count", n as i64));
        }
        Ok(Client::new(plugin, &options)?)
    }

    /// What checkpoints record about this run, so that evaluation and
    /// resumption rebuild it with no other flag.
    fn record(&self, setup: &Setup) -> BTreeMap<String, String> {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        let mut run = BTreeMap::from([
            (record::EXPERIMENT.to_string(), setup.name.clone()),
            (record::MODIFIERS.to_string(), json(&self.modifiers)),
            (record::OVERRIDES.to_string(), json(&self.overrides)),
            (
                record::DATA.to_string(),
                self.data
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
            ),
            (record::MESH.to_string(), setup.mesh.to_string()),
            (
                record::EVAL_BATCHES.to_string(),
                self.eval_batches.to_string(),
            ),
        ]);
        if let Some(config) = &setup.config {
            run.insert(
                record::CONFIG.to_string(),
                serde_json::to_string(config).expect("configs serialize"),
            );
        }
        run
    }
}

/// The lines of two config dumps that differ, for error messages.
fn differences(checkpoint: &ExperimentConfig, run: &ExperimentConfig) -> String {
    let (a, b) = (checkpoint.dump(), run.dump());
    let a_lines: Vec<&str> = a.lines().collect();
    let b_lines: Vec<&str> = b.lines().collect();
    let mut out = Vec::new();
    for line in &a_lines {
        if !b_lines.contains(line) {
            out.push(format!("  checkpoint: {line}"));
        }
    }
    for line in &b_lines {
        if !a_lines.contains(line) {
            out.push(format!("  this run:   {line}"));
        }
    }
    out.join("\n")
}

/// The config a checkpoint recorded, if it recorded one.
fn recorded_config(meta: &Meta, dir: &Path) -> Result<Option<ExperimentConfig>, RunError> {
    meta.run
        .get(record::CONFIG)
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                RunError::Checkpoint(CheckpointError::Corrupt {
                    path: dir.join("meta.json"),
                    message: format!("the recorded config does not parse: {e}"),
                })
            })
        })
        .transpose()
}

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
/// seed): nothing else needs to be given. Given options that define a
/// different model, learner or input are an error naming the checkpoint
/// and what differs. `eval_batches` defaults to the number the run used.
pub fn evaluate(options: &RunOptions, eval_batches: Option<u64>) -> Result<Evaluation, RunError> {
    let dir = options
        .checkpoint_dir
        .as_ref()
        .ok_or_else(|| RunError::NoCheckpoint("no checkpoint directory given".into()))?;
    let latest = Checkpointer::new(dir, 1)
        .latest()?
        .ok_or_else(|| RunError::NoCheckpoint(format!("no checkpoint in {}", dir.display())))?;
    let restored = checkpoint::load(&latest)?;
    let run = &restored.meta.run;
    let recorded = recorded_config(&restored.meta, &latest)?.ok_or_else(|| {
        RunError::NoCheckpoint(format!(
            "{} records no experiment config (written by an older axle, or by `axle bench`)",
            latest.display()
        ))
    })?;
    let client = options.client()?;
    let asked = options.experiment.is_some()
        || !options.modifiers.is_empty()
        || !options.overrides.is_empty()
        || options.batch_size.is_some()
        || options.seq_len.is_some();
    let mut recorded_options = options.clone();
    recorded_options.experiment = run.get(record::EXPERIMENT).cloned();
    if asked {
        let (config, _, _) = options.resolve(&client)?;
        if config != recorded {
            return Err(RunError::Mismatch {
                dir: latest.clone(),
                differences: differences(&recorded, &config),
            });
        }
    }
    if recorded_options.data.is_none() {
        recorded_options.data = run
            .get(record::DATA)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
    }
    if recorded_options.mesh.is_none() {
        recorded_options.mesh = run.get(record::MESH).cloned();
    }
    recorded_options.seed = restored.meta.rng_state;
    let batches = eval_batches
        .or_else(|| run.get(record::EVAL_BATCHES).and_then(|b| b.parse().ok()))
        .unwrap_or(options.eval_batches);
    let mesh = match &recorded_options.mesh {
        Some(m) => Mesh::parse(m, client.addressable_devices()?.len())
            .map_err(|e| RunError::Mesh(e.to_string()))?,
        None => recorded_options.resolve(&client)?.1,
    };
    let setup = recorded_options.setup_from(recorded, client, mesh, Vec::new())?;
    let mut trainer = setup.trainer(recorded_options.seed)?;
    trainer.restore(&restored)?;
    let report = evaluate_trainer(&trainer, &setup, recorded_options.seed, batches)?;
    Ok(Evaluation {
        report,
        checkpoint: latest,
        step: restored.step,
        experiment: setup.name,
    })
}

/// Trains as `options` say: resumes if asked, logs metrics, evaluates and
/// checkpoints periodically, and stops with an error (keeping the last good
/// checkpoint) if the loss stops being finite.
pub fn train(options: &RunOptions, progress: impl FnMut(&Record)) -> Result<RunSummary, RunError> {
    let setup = options.setup()?;
    train_setup(&setup, options, progress)
}

/// Trains `setup` (a registered experiment's or a model built in code)
/// with the loop options of `options` (steps, seed, checkpoints, eval,
/// metrics); its experiment fields are not read.
pub fn train_setup(
    setup: &Setup,
    options: &RunOptions,
    mut progress: impl FnMut(&Record),
) -> Result<RunSummary, RunError> {
    let mut trainer = setup.trainer(options.seed)?;
    let mut loader = Loader::new(
        setup.source.as_ref(),
        Split::Train,
        setup.shape.batch_size,
        options.seed,
    );
    let saver = options
        .checkpoint_dir
        .as_ref()
        .map(|dir| Checkpointer::new(dir, options.keep));
    if let (true, Some(saver)) = (options.resume, &saver)
        && let Some(dir) = saver.latest()?
    {
        let restored = checkpoint::load(&dir)?;
        if let (Some(recorded), Some(config)) =
            (recorded_config(&restored.meta, &dir)?, &setup.config)
            && &recorded != config
        {
            return Err(RunError::Mismatch {
                dir,
                differences: differences(&recorded, config),
            });
        }
        trainer.restore(&restored)?;
        loader.seek(restored.meta.input_position);
    }
    let mut writer = options
        .metrics
        .as_ref()
        .map(|p| MetricsWriter::append(p))
        .transpose()?;
    let mut tensorboard = options
        .summaries
        .as_deref()
        .map(SummaryWriter::create)
        .transpose()?;
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
        let batch = loader.next_batch();
        let start = Instant::now();
        let m = trainer.step(&batch, options.seed)?;
        let seconds = start.elapsed().as_secs_f64();
        let step = trainer.steps_done();
        if !m.loss.is_finite() {
            let last = match &saver {
                Some(s) => s
                    .latest()?
                    .map_or("none".into(), |p| p.display().to_string()),
                None => "no checkpoint directory".into(),
            };
            return Err(RunError::NonFiniteLoss {
                step,
                loss: m.loss,
                last_checkpoint: last,
            });
        }
        summary.losses.push((step, m.loss));
        let record = Record::Train {
            step,
            loss: f64::from(m.loss),
            grad_norm: f64::from(m.grad_norm),
            learning_rate: f64::from(m.learning_rate),
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
            let report = evaluate_trainer(&trainer, setup, options.seed, options.eval_batches)?;
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
        if let Some(saver) = &saver
            && (step % options.checkpoint_every.max(1) == 0 || step == options.steps)
        {
            let meta = Meta {
                input_position: loader.position(),
                rng_state: options.seed,
                run: options.record(setup),
            };
            saver.save(&trainer.checkpoint(meta)?)?;
        }
    }
    if let Some(tb) = &mut tensorboard {
        tb.flush()?;
    }
    summary.steps_done = trainer.steps_done();
    Ok(summary)
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
