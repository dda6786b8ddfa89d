//! A training run from options to metrics and checkpoints: what `axle
//! train` and `axle eval` do, callable from tests and other programs.

use crate::checkpoint::{self, CheckpointError, Checkpointer, Meta};
use crate::data::{DataError, Loader, Source, Split, Synthetic, TokenFile};
use crate::learner::LearnerConfig;
use crate::metrics::{MetricsError, MetricsWriter, Record, train_flops_per_token};
use crate::trainer::{TrainError, Trainer};
use axle_modules::{CausalLm, CausalLmConfig, Module, config_path, count_params, registered_model};
use axle_partition::{MeshRules, MeshShape, choose_mesh, device_selector};
use axle_runtime::{Client, CreateOption, Plugin};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Everything that defines a run (the `axle train` options).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Registered model name (`llama-tiny`, ...).
    pub model: String,
    /// Config overrides `path=value`: model config paths
    /// (`decoder.transformer.num_layers=2`), or `learner.` paths for the
    /// learner (`learner.schedule.lr=3e-3`).
    pub overrides: Vec<String>,
    /// An explicit mesh (`data=2,fsdp=4`); the mesh rules choose otherwise.
    pub mesh: Option<String>,
    /// The plugin: `cpu`, `cuda`, `tpu` or a path to a PJRT plugin.
    pub plugin: String,
    /// Virtual CPU devices (`cpu_device_count`); ignored by other plugins.
    pub cpu_devices: Option<usize>,
    /// Training data file; the synthetic task when `None`.
    pub data: Option<PathBuf>,
    /// Train until this many steps are done.
    pub steps: u64,
    /// Batch size (the model's registered one when `None`).
    pub batch_size: Option<usize>,
    /// Sequence length (the model's registered one when `None`).
    pub seq_len: Option<usize>,
    /// Seed of initialisation, data order and dropout.
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
    /// Peak FLOP/s of one device, for MFU (from the device table when `None`).
    pub peak_flops: Option<f64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            model: "llama-tiny".into(),
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
    /// An override is not of the form `path=value`.
    #[error("override `{0}` is not of the form path=value")]
    Override(String),
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
    /// Metrics could not be written.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
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
    /// The mesh the run used.
    pub mesh: String,
}

/// A run's resolved pieces: model, learner, shapes, client and mesh.
pub struct Setup {
    /// The model config after overrides.
    pub config: CausalLmConfig,
    /// The model.
    pub model: CausalLm,
    /// The learner after overrides.
    pub learner: LearnerConfig,
    /// Batch size.
    pub batch_size: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// The client of the chosen plugin.
    pub client: Client,
    /// The mesh (explicit or chosen by the mesh rules).
    pub mesh: axle_partition::Mesh,
}

impl Setup {
    /// A trainer for this model, learner, shape and mesh, with parameters
    /// initialised from `seed`.
    pub fn trainer(&self, seed: u64) -> Result<Trainer, TrainError> {
        Trainer::new(
            &self.client,
            &self.model,
            &self.learner,
            self.batch_size,
            self.seq_len,
            &self.mesh,
            seed,
        )
    }
}

impl RunOptions {
    /// Resolves the model, overrides, plugin, client and mesh.
    pub fn setup(&self) -> Result<Setup, RunError> {
        let registered = registered_model(&self.model)?;
        let mut config = registered.config;
        let mut learner = LearnerConfig::default();
        for o in &self.overrides {
            let (path, value) = o
                .split_once('=')
                .ok_or_else(|| RunError::Override(o.clone()))?;
            match path.strip_prefix("learner.") {
                Some(rest) => config_path::set(&mut learner, rest, value)?,
                None => config_path::set(&mut config, path, value)?,
            }
        }
        let model = CausalLm::new(&config)?;
        let client = self.client()?;
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
        let choice = choose_mesh(
            explicit.as_ref(),
            &selector,
            &MeshRules::default(),
            devices.len(),
        )
        .map_err(|e| RunError::Mesh(e.to_string()))?;
        Ok(Setup {
            config,
            model,
            learner,
            batch_size: self.batch_size.unwrap_or(registered.batch_size),
            seq_len: self.seq_len.unwrap_or(registered.seq_len),
            client,
            mesh: choice.mesh,
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

    fn source(&self, vocab: usize, seq: usize) -> Result<Box<dyn Source>, RunError> {
        Ok(match &self.data {
            Some(path) => Box::new(TokenFile::open(path, vocab, seq)?),
            None => Box::new(Synthetic::new(vocab, self.seed)),
        })
    }
}

/// Mean loss of `trainer`'s parameters over the first
/// `options.eval_batches` held-out batches of `source`.
fn mean_eval_loss(
    trainer: &Trainer,
    source: &dyn Source,
    setup: &Setup,
    options: &RunOptions,
) -> Result<f32, RunError> {
    let eval = Loader::new(
        source,
        Split::Eval,
        setup.batch_size,
        setup.seq_len,
        options.seed,
    );
    let batches = options.eval_batches.max(1);
    let mut total = 0.0;
    for p in 0..batches {
        total += trainer.eval_loss(&eval.batch_at(p))?;
    }
    Ok(total / batches as f32)
}

/// Evaluates the newest checkpoint in `options.checkpoint_dir` on
/// `options.eval_batches` held-out batches; returns the mean loss and the
/// checkpoint's directory.
pub fn evaluate(options: &RunOptions) -> Result<(f32, PathBuf), RunError> {
    let setup = options.setup()?;
    let dir = options
        .checkpoint_dir
        .as_ref()
        .ok_or_else(|| RunError::NoCheckpoint("no checkpoint directory given".into()))?;
    let latest = Checkpointer::new(dir, 1)
        .latest()?
        .ok_or_else(|| RunError::NoCheckpoint(format!("no checkpoint in {}", dir.display())))?;
    let mut trainer = setup.trainer(options.seed)?;
    trainer.restore(&checkpoint::load(&latest)?)?;
    let vocab = setup.config.decoder.vocab_size.unwrap_or(0);
    let source = options.source(vocab, setup.seq_len)?;
    let loss = mean_eval_loss(&trainer, source.as_ref(), &setup, options)?;
    Ok((loss, latest))
}

/// Trains as `options` say: resumes if asked, logs metrics, evaluates and
/// checkpoints periodically, and stops with an error (keeping the last good
/// checkpoint) if the loss stops being finite.
pub fn train(
    options: &RunOptions,
    mut progress: impl FnMut(&Record),
) -> Result<RunSummary, RunError> {
    let setup = options.setup()?;
    let vocab = setup.config.decoder.vocab_size.unwrap_or(0);
    let source = options.source(vocab, setup.seq_len)?;
    let mut trainer = setup.trainer(options.seed)?;
    let mut loader = Loader::new(
        source.as_ref(),
        Split::Train,
        setup.batch_size,
        setup.seq_len,
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
        trainer.restore(&restored)?;
        loader.seek(restored.meta.input_position);
    }
    let mut writer = options
        .metrics
        .as_ref()
        .map(|p| MetricsWriter::append(p))
        .transpose()?;
    let specs = setup.model.param_specs();
    let flops_per_step = train_flops_per_token(
        count_params(&specs),
        setup.config.decoder.transformer.num_layers.unwrap_or(0) as u64,
        setup.config.decoder.dim.unwrap_or(0) as u64,
        setup.seq_len as u64,
    ) * (setup.batch_size * setup.seq_len) as f64;
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
        mesh: setup.mesh.to_string(),
    };
    let mut emit = |record: Record, writer: &mut Option<MetricsWriter>| -> Result<(), RunError> {
        if let Some(w) = writer {
            w.write(&record)?;
        }
        progress(&record);
        Ok(())
    };
    while trainer.steps_done() < options.steps {
        let tokens = loader.next_batch();
        let start = Instant::now();
        let m = trainer.step(&tokens, options.seed)?;
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
            tokens_per_s: (setup.batch_size * setup.seq_len) as f64 / seconds,
            mfu: peak.map(|p| flops_per_step / seconds / p),
        };
        emit(record, &mut writer)?;
        if options.eval_every > 0 && (step % options.eval_every == 0 || step == options.steps) {
            let loss = mean_eval_loss(&trainer, source.as_ref(), &setup, options)?;
            summary.eval_losses.push((step, loss));
            emit(
                Record::Eval {
                    step,
                    loss: f64::from(loss),
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
                run: BTreeMap::from([
                    ("model".to_string(), options.model.clone()),
                    ("overrides".to_string(), options.overrides.join(" ")),
                ]),
            };
            saver.save(&trainer.checkpoint(meta)?)?;
        }
    }
    summary.steps_done = trainer.steps_done();
    Ok(summary)
}
