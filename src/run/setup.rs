//! Resolving a run: the experiment, its modifiers and overrides, the
//! client, the mesh and the data; or a model built in code.

use super::{DEFAULT_EXPERIMENT, RunError, RunOptions};
use crate::data::{ArrayFile, DataError, LanguageModelSource, Source, SyntheticTask, TokenFile};
use crate::experiment::{Experiment, ExperimentConfig, apply_modifier, experiment};
use crate::learner::LearnerConfig;
use crate::text::{PackedInputs, TextInput};
use crate::train_step::build_train_step;
use crate::trainer::{TrainError, Trainer, check_mesh, compile_options, compile_step};
use axle_modules::param::checked_elements;
use axle_modules::{BatchShape, INPUT_IDS, InputSpec, Model, TARGET_LABELS};
use axle_partition::{
    LogicalRules, Mesh, MeshChoice, MeshRules, MeshShape, choose_mesh, device_selector,
};
use axle_runtime::{Client, CreateOption, Plugin};
use std::path::Path;

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
    /// The training stream of a text run (`RunOptions::tokenizer`); `source`
    /// then holds its held-out rows.
    pub text: Option<TextInput>,
    /// Bytes of memory one device may use, replacing the detected limit
    /// (see [`super::device_memory_limit`]; `None`: detect it).
    pub device_memory_limit: Option<u64>,
    /// The CRC-32 of the data file's bytes (8 hex digits, as the tokenizer's),
    /// recorded by checkpoints so that a resume refuses a file changed in
    /// place; `None` for the synthetic task, a directory of files or a
    /// model built in code.
    pub data_crc32: Option<String>,
}

impl Setup {
    /// A setup for a model built in code (not a registered experiment):
    /// the stock trainer, checkpoints, metrics and evaluation work on it
    /// through [`super::train_setup`] and [`super::evaluate_trainer`]. It shards by the
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
            text: None,
            device_memory_limit: None,
            data_crc32: None,
        }
    }

    /// A trainer for this model, learner, shape, mesh and rules, with
    /// parameters initialised from `seed`. Refuses, before compiling, a
    /// model whose initialisation would not fit in the host's memory
    /// ([`RunError::HostMemory`]), and, once the train step is compiled but
    /// before anything is placed on the devices, a step that needs more
    /// memory per device than a device has ([`RunError::DeviceMemory`]).
    pub fn trainer(&self, seed: u64) -> Result<Trainer, RunError> {
        let limit =
            super::device_memory_limit(&self.client, self.mesh.size(), self.device_memory_limit)?;
        self.check_sizes()?;
        let needed = self.host_init_bytes();
        if let Some(available) = available_host_memory()
            && needed > available
        {
            return Err(RunError::HostMemory { needed, available });
        }
        check_mesh(&self.client, &self.mesh)?;
        let step = build_train_step(
            self.model.as_ref(),
            &self.learner,
            &self.shape,
            &self.mesh,
            &self.rules,
        )
        .map_err(TrainError::from)?;
        let train = compile_step(
            &self.client,
            &step.function.to_stablehlo(),
            &compile_options(&self.mesh),
        )?;
        super::check_device_memory(
            &train,
            "train step",
            &self.name,
            &self.mesh.to_string(),
            limit,
        )?;
        Ok(Trainer::from_compiled(
            &self.client,
            self.model.as_ref(),
            step,
            train,
            seed,
        )?)
    }

    /// Bytes of host memory the trainer's initialisation holds at once:
    /// every parameter and optimizer-state value as f32 (they are drawn or
    /// zeroed on the host, then placed on the devices).
    /// Saturates at `u64::MAX` for sizes that overflow (refused by
    /// [`Setup::check_sizes`]).
    pub fn host_init_bytes(&self) -> u64 {
        let specs = self.model.param_specs();
        let params = specs
            .values()
            .fold(0u64, |n, s| n.saturating_add(s.num_elements()));
        let state = self
            .learner
            .state_specs(&specs)
            .values()
            .fold(0u64, |n, s| {
                let elements = s
                    .shape
                    .iter()
                    .fold(1u64, |e, &d| e.saturating_mul(d as u64));
                n.saturating_add(elements)
            });
        params.saturating_add(state).saturating_mul(4)
    }

    /// Refuses, before anything is built or compiled, sizes the config
    /// makes too large for XLA: a parameter, optimizer-state value or input
    /// whose element count overflows `i64` (XLA's element-count type), or
    /// a parameter count that overflows. Errors: [`RunError::InvalidOption`]
    /// naming the array and its shape, and the config fields that set it
    /// (`decoder.vocab_size`, `decoder.dim`, `input.batch_size`, ...).
    pub fn check_sizes(&self) -> Result<(), RunError> {
        let too_large = |what: String, shape: &[usize]| {
            RunError::InvalidOption(format!(
                "{what} of shape {shape:?} has more elements than XLA can address (2^63 - 1): \
                 lower the config sizes that set it (--set decoder.vocab_size=..., \
                 decoder.dim=..., input.batch_size=...)"
            ))
        };
        let specs = self.model.param_specs();
        let mut total: u64 = 0;
        for (name, spec) in &specs {
            let n = spec
                .checked_num_elements()
                .ok_or_else(|| too_large(format!("parameter {name}"), &spec.shape))?;
            total = total
                .checked_add(n)
                .filter(|&t| t <= i64::MAX as u64)
                .ok_or_else(|| too_large(format!("the parameters (at {name})"), &spec.shape))?;
        }
        for (name, spec) in self.learner.state_specs(&specs) {
            checked_elements(&spec.shape)
                .ok_or_else(|| too_large(format!("optimizer state {name}"), &spec.shape))?;
        }
        for input in self.inputs()? {
            checked_elements(&input.shape)
                .ok_or_else(|| too_large(format!("input {}", input.name), &input.shape))?;
        }
        Ok(())
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
    if !named_arrays {
        return Err(RunError::Data(DataError::Arrays {
            path: path.to_path_buf(),
            message: format!(
                "the model's inputs ({}) are read from a .safetensors file or a directory of <input>.npy files",
                names.join(", ")
            ),
        }));
    }
    Ok(Box::new(ArrayFile::open(path, inputs)?))
}

impl RunOptions {
    /// The experiment's config (`hf:DIR` names the Hugging Face model in
    /// `DIR`, see [`crate::hf::experiment`]) after the mesh rule's modifiers, this run's
    /// modifiers and overrides, and the batch size / sequence length
    /// options; with the mesh rules' choice (mesh, modifiers, compiler
    /// options).
    pub fn resolve(&self, client: &Client) -> Result<(ExperimentConfig, MeshChoice), RunError> {
        self.resolve_experiment(self.experiment()?, client)
    }

    /// The experiment these options name: registered, or `hf:DIR` for the
    /// Hugging Face model in `DIR` ([`crate::hf::experiment`]).
    fn experiment(&self) -> Result<Experiment, RunError> {
        let name = self.experiment.as_deref().unwrap_or(DEFAULT_EXPERIMENT);
        Ok(match name.strip_prefix(crate::hf::HF_PREFIX) {
            Some(dir) => crate::hf::experiment(Path::new(dir))?,
            None => experiment(name)?,
        })
    }

    /// As [`RunOptions::resolve`], for an experiment given whole (one not
    /// in the registry, or a registered one with other mesh rules).
    pub fn resolve_experiment(
        &self,
        exp: Experiment,
        client: &Client,
    ) -> Result<(ExperimentConfig, MeshChoice), RunError> {
        let choice = self.choose_mesh(client, &exp.mesh_rules)?;
        self.apply_config(exp.config, choice)
    }

    /// The mesh rule's modifiers, this run's modifiers and overrides, and
    /// the batch size / sequence length options, applied to `config`.
    fn apply_config(
        &self,
        mut config: ExperimentConfig,
        choice: MeshChoice,
    ) -> Result<(ExperimentConfig, MeshChoice), RunError> {
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
        Ok((config, choice))
    }

    /// Resolves the experiment, modifiers, overrides, plugin, client, mesh
    /// and data. Checks [`super::DEVICE_MEMORY_LIMIT_ENV`] first, so that a
    /// bad value fails before the plugin is loaded.
    pub fn setup(&self) -> Result<Setup, RunError> {
        super::device_memory_limit_from_env()?;
        let client = self.client()?;
        let (config, choice) = self.resolve(&client)?;
        self.setup_from(config, client, choice)
    }

    /// A setup for a model built in code: the client (with the compiler
    /// options of the default mesh rule for its devices), mesh (explicit,
    /// or the default mesh rules') and data (`self.data`, or `task`) come
    /// from these options, as for a registered experiment.
    pub fn setup_model(
        &self,
        name: &str,
        model: Box<dyn Model>,
        learner: LearnerConfig,
        shape: BatchShape,
        task: &SyntheticTask,
    ) -> Result<Setup, RunError> {
        let (client, mesh) = self.client_and_mesh()?;
        let inputs = model.input_specs(&shape)?;
        let source = open_source(self.data.as_deref(), &inputs, task, self.seed())?;
        Ok(Setup::new(
            name, model, learner, shape, source, client, mesh,
        ))
    }

    /// The client (with the compiler options of the default mesh rule for its devices and
    /// `self.xla_options`) and the mesh: explicit (`self.mesh`), or the default mesh rules'.
    pub fn client_and_mesh(&self) -> Result<(Client, Mesh), RunError> {
        let client = self.client()?;
        let choice = self.choose_mesh(&client, &MeshRules::default())?;
        let client = crate::compiler_options::apply_to_client(client, &choice);
        Ok((client, choice.mesh))
    }

    /// The mesh: explicit (`self.mesh`) or the first of `rules` matching
    /// the client's devices.
    fn choose_mesh(&self, client: &Client, rules: &MeshRules) -> Result<MeshChoice, RunError> {
        let devices = client.addressable_devices()?;
        let kind = devices
            .first()
            .map_or("unknown".to_string(), |d| d.kind.clone());
        self.choose_mesh_for(&client.platform_name()?, &kind, devices.len(), rules)
    }

    /// The mesh for `num_devices` devices of `platform` and `device_kind`:
    /// explicit (`self.mesh`) or the first of `rules` matching them.
    fn choose_mesh_for(
        &self,
        platform: &str,
        device_kind: &str,
        num_devices: usize,
        rules: &MeshRules,
    ) -> Result<MeshChoice, RunError> {
        let explicit = self
            .mesh
            .as_deref()
            .map(|m| m.parse::<MeshShape>())
            .transpose()
            .map_err(|e| RunError::Mesh(e.to_string()))?;
        let selector = device_selector(platform, device_kind, num_devices);
        let mut choice = choose_mesh(explicit.as_ref(), &selector, rules, num_devices)
            .map_err(|e| RunError::Mesh(e.to_string()))?;
        crate::compiler_options::add_options(&mut choice, &self.xla_options)
            .map_err(RunError::InvalidOption)?;
        Ok(choice)
    }

    /// As [`RunOptions::resolve`] (also for `hf:DIR`), for devices described instead of present
    /// (planning for a TPU slice or GPU machine ahead of time): the mesh
    /// rules see `num_devices` devices of `platform` (`tpu`, `cuda`) and
    /// `device_kind` (`TPU v5 lite`, `NVIDIA H100 80GB HBM3`).
    pub fn resolve_for_devices(
        &self,
        platform: &str,
        device_kind: &str,
        num_devices: usize,
    ) -> Result<(ExperimentConfig, MeshChoice), RunError> {
        let exp = self.experiment()?;
        let choice = self.choose_mesh_for(platform, device_kind, num_devices, &exp.mesh_rules)?;
        self.apply_config(exp.config, choice)
    }

    fn setup_from(
        &self,
        config: ExperimentConfig,
        client: Client,
        choice: MeshChoice,
    ) -> Result<Setup, RunError> {
        let client = crate::compiler_options::apply_to_client(client, &choice);
        let (mesh, mesh_modifiers) = (choice.mesh, choice.modifiers);
        let model = config.model.build()?;
        let shape = BatchShape {
            batch_size: config.input.batch_size,
            seq_len: config.input.seq_len,
        };
        let inputs = model.input_specs(&shape)?;
        let (model, source, text) = match &self.tokenizer {
            Some(tokenizer) => self.text_input(model, &inputs, &shape, tokenizer)?,
            None => {
                let source = open_source(
                    self.data.as_deref(),
                    &inputs,
                    &config.input.synthetic,
                    self.seed(),
                )?;
                (model, source, None)
            }
        };
        Ok(Setup {
            name: self.experiment.as_deref().map_or_else(
                || DEFAULT_EXPERIMENT.into(),
                crate::hf::absolute_experiment_name,
            ),
            learner: config.learner.clone(),
            rules: config.sharding.clone(),
            config: Some(config),
            model,
            shape,
            source,
            client,
            mesh,
            mesh_modifiers,
            text,
            device_memory_limit: None,
            data_crc32: self
                .data
                .as_deref()
                .filter(|p| p.is_file())
                .map(super::record::file_crc32)
                .transpose()?,
        })
    }

    /// The pieces of a text run: `model` reading packed rows, the held-out
    /// rows (as many as the evaluations read) and the training stream, from
    /// `self.data` tokenized by `tokenizer`.
    fn text_input(
        &self,
        model: Box<dyn Model>,
        inputs: &[InputSpec],
        shape: &BatchShape,
        tokenizer: &Path,
    ) -> Result<TextSetup, RunError> {
        let data = self.data.as_deref().ok_or_else(|| {
            RunError::InvalidOption("--tokenizer needs --data: the text to train on".into())
        })?;
        let vocab = inputs
            .iter()
            .find(|i| i.name == INPUT_IDS)
            .and_then(|i| i.valid.clone())
            .map(|v| v.end.max(0) as usize)
            .ok_or_else(|| {
                RunError::InvalidOption(format!(
                    "--tokenizer: a {} model reads no token ids",
                    model.kind()
                ))
            })?;
        let text = TextInput::open(data, tokenizer, vocab, shape.batch_size, shape.seq_len)?;
        let rows = self.eval_batches as usize * shape.batch_size;
        let held_out = text.held_out(rows)?;
        let model = Box::new(PackedInputs::new(model, held_out.bytes_per_target()));
        Ok((model, Box::new(held_out), Some(text)))
    }

    /// A client of the chosen plugin (with `cpu_device_count` on CPU).
    pub fn client(&self) -> Result<Client, RunError> {
        if self.cpu_devices == Some(0) {
            return Err(RunError::Mesh(
                "--cpu-devices must be at least 1, got 0".into(),
            ));
        }
        let plugin = Plugin::load(&self.plugin)?;
        let mut options = Vec::new();
        if let Some(n) = self.cpu_devices
            && self.plugin.contains("cpu")
        {
            options.push(CreateOption::int("cpu_device_count", n as i64));
        }
        Ok(Client::new(plugin, &options)?)
    }
}

/// A model, its evaluation source and, for a text run, its text input.
type TextSetup = (Box<dyn Model>, Box<dyn Source>, Option<TextInput>);

/// The host memory available to new allocations (`MemAvailable` of
/// `/proc/meminfo`, Linux), in bytes; `None` where it cannot be read.
pub(super) fn available_host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
