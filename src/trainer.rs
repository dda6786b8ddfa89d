//! The trainer's device side: compiles the step for a mesh, keeps
//! parameters and optimizer state on the devices as sharded arrays between
//! steps (donated to the step, replaced by its outputs), feeds batches,
//! evaluates, and moves state to and from host checkpoints.

use crate::checkpoint::{Checkpoint, Meta, Tensors, to_stack_layout};
use crate::data::{HostArray, HostBatch, check_batch};
use crate::learner::LearnerConfig;
use crate::packed_metrics::PackedMetrics;
use crate::train_step::{
    ArgSpec, STEP_SCALARS, StepError, TrainStep, build_eval_step, build_train_step,
};
use axle_compiler::DType;
use axle_modules::{BatchShape, Model, init_params};
use axle_partition::{LogicalRules, Mesh};
use axle_runtime::{
    Arg, Buffer, CacheOutcome, Client, CompileCache, CompileOptions, Executable, ShardLayout,
    ShardedArray,
};
use ndarray::{ArrayD, IxDyn};

/// A failure of the trainer, naming what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The step could not be built.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The plugin refused to compile or run.
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// The mesh does not fit the client.
    #[error(
        "mesh {mesh} needs devices {devices:?}, the client has {available} (the mesh must use devices 0..n in order)"
    )]
    Mesh {
        /// The mesh.
        mesh: String,
        /// The device ids it names.
        devices: Vec<usize>,
        /// Addressable devices of the client.
        available: usize,
    },
    /// A batch that does not fit the model's inputs (missing input, wrong
    /// dtype or shape, an id outside its valid range).
    #[error("batch does not fit the model: {0}")]
    Batch(String),
    /// A checkpoint does not match the model or learner.
    #[error("checkpoint does not fit this run: {0}")]
    Checkpoint(String),
    /// A compiled step returned a metrics vector of another length than its layout.
    #[error("the {step} step returned {got} metric values, its layout has {expected}")]
    Metrics {
        /// `train` or `eval`.
        step: &'static str,
        /// Length of the layout.
        expected: usize,
        /// Length returned.
        got: usize,
    },
}

/// What one step reports.
#[derive(Clone, Debug, PartialEq)]
pub struct StepMetrics {
    /// Mean loss of the batch.
    pub loss: f32,
    /// Weight of that mean (live targets).
    pub weight: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub learning_rate: f32,
    /// Whether the learner skipped the step (parameters and optimizer
    /// state unchanged; `learner.drop_grad_norm`).
    pub skipped: bool,
    /// Whether every new parameter is finite (checked on the device, in
    /// the step).
    pub params_finite: bool,
    /// The model's summaries, by path; a per-layer vector `p` of a scanned
    /// stack gives `p/0`, `p/1`, ...
    pub summaries: Vec<(String, f32)>,
}

/// What evaluating one batch reports.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalMetrics {
    /// Mean loss of the batch.
    pub loss: f32,
    /// Weight of that mean (live targets).
    pub weight: f32,
    /// The model's summaries, by path (as in [`StepMetrics::summaries`]).
    pub summaries: Vec<(String, f32)>,
}

/// A model being trained on the devices of one client.
pub struct Trainer {
    client: Client,
    step: TrainStep,
    train: Executable,
    eval: Executable,
    eval_metrics: PackedMetrics,
    carried: Vec<ShardedArray>,
    /// The runtime layout of each argument of the step, in argument order.
    layouts: Vec<ShardLayout>,
    steps_done: u64,
}

impl Trainer {
    /// Builds and compiles the training and evaluation steps of `model` for
    /// `mesh` on `client`, sharded as `rules` map the model's logical roles
    /// to the mesh's axes, and places parameters initialised from `seed`
    /// (on the host, so the same on any mesh) and zero optimizer state.
    pub fn new(
        client: &Client,
        model: &dyn Model,
        learner: &LearnerConfig,
        shape: &BatchShape,
        mesh: &Mesh,
        rules: &LogicalRules,
        seed: u64,
    ) -> Result<Trainer, TrainError> {
        check_mesh(client, mesh)?;
        let step = build_train_step(model, learner, shape, mesh, rules)?;
        let train = compile_step(
            client,
            &step.function.to_stablehlo(),
            &compile_options(mesh),
        )?;
        Trainer::from_compiled(client, model, step, train, seed)
    }

    /// A trainer around a step already built by [`build_train_step`] and
    /// compiled with [`compile_options`], so that callers (`axle bench`)
    /// can time tracing, emission and compilation apart. The evaluation step
    /// takes the step's mesh and logical rules.
    pub fn from_compiled(
        client: &Client,
        model: &dyn Model,
        step: TrainStep,
        train: Executable,
        seed: u64,
    ) -> Result<Trainer, TrainError> {
        check_mesh(client, &step.mesh)?;
        let (eval_function, eval_metrics) = build_eval_step(model, &step)?;
        let eval = compile_step(
            client,
            &eval_function.to_stablehlo(),
            &compile_options(&step.mesh),
        )?;
        let mut host = init_params(&step.param_specs, seed);
        let mut state: Tensors = Tensors::new();
        for a in &step.args[step.param_specs.len()..step.num_carried()] {
            state.insert(a.name.clone(), ArrayD::zeros(IxDyn(&a.shape)));
        }
        host.append(&mut state);
        let layouts = step
            .args
            .iter()
            .map(|a| layout(&step.mesh, a))
            .collect::<Result<_, _>>()?;
        let mut trainer = Trainer {
            client: client.clone(),
            step,
            train,
            eval,
            eval_metrics,
            carried: Vec::new(),
            layouts,
            steps_done: 0,
        };
        trainer.place(&host)?;
        Ok(trainer)
    }

    /// The step program (its function, mesh and argument layout).
    pub fn train_step(&self) -> &TrainStep {
        &self.step
    }

    /// The compiled training step (for introspection: optimized HLO, memory).
    pub fn executable(&self) -> &Executable {
        &self.train
    }

    /// Steps completed.
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// The carried arrays (parameters, then optimizer state) on the devices.
    pub fn carried(&self) -> impl Iterator<Item = (&ArgSpec, &ShardedArray)> {
        self.step.args.iter().zip(&self.carried)
    }

    /// Runs one training step on `batch` (one array per model input, shaped
    /// as [`Model::input_specs`] says). `rng` seeds the step's randomness
    /// (dropout).
    pub fn step(&mut self, batch: &HostBatch, rng: u64) -> Result<StepMetrics, TrainError> {
        let inputs = self.place_batch(batch, rng)?;
        let carried = std::mem::take(&mut self.carried);
        let mut per_arg: Vec<Vec<Buffer>> = carried.into_iter().map(|a| a.into_shards()).collect();
        let devices = self.step.mesh.size();
        let mut lists: Vec<Vec<Arg<'_>>> = (0..devices).map(|_| Vec::new()).collect();
        for shards in per_arg.iter_mut() {
            for (device, buffer) in std::mem::take(shards).into_iter().enumerate() {
                lists[device].push(Arg::Donated(buffer));
            }
        }
        for input in &inputs {
            for (device, buffer) in input.shards().iter().enumerate() {
                lists[device].push(Arg::Borrowed(buffer));
            }
        }
        let outputs = self.train.execute_donating(lists)?;
        let mut per_output: Vec<Vec<Buffer>> = Vec::new();
        for (device, outs) in outputs.into_iter().enumerate() {
            for (j, buffer) in outs.into_iter().enumerate() {
                if device == 0 {
                    per_output.push(Vec::new());
                }
                per_output[j].push(buffer);
            }
        }
        let values = per_output[self.step.num_carried()][0].to_vec::<f32>()?;
        let mut metrics = unpack("train", &self.step.metrics, &values)?;
        let summaries = metrics.split_off(STEP_SCALARS.len());
        let scalars: Vec<f32> = metrics.into_iter().map(|(_, v)| v).collect();
        per_output.truncate(self.step.num_carried());
        self.carried = per_output
            .into_iter()
            .zip(self.step.args.iter().zip(&self.layouts))
            .map(|(shards, (a, layout))| ShardedArray::from_shards(&a.shape, layout, shards))
            .collect::<Result<_, _>>()?;
        self.steps_done += 1;
        Ok(StepMetrics {
            loss: scalars[0],
            weight: scalars[1],
            grad_norm: scalars[2],
            learning_rate: scalars[3],
            skipped: scalars[4] != 0.0,
            params_finite: scalars[5] != 0.0,
            summaries,
        })
    }

    /// The loss, weight and summaries of the current parameters on
    /// `batch`, without dropout.
    pub fn evaluate(&self, batch: &HostBatch) -> Result<EvalMetrics, TrainError> {
        let inputs = self.place_batch(batch, 0)?;
        let num_params = self.step.param_specs.len();
        let args: Vec<&ShardedArray> = self.carried[..num_params]
            .iter()
            .chain(&inputs[..self.step.inputs.len()])
            .collect();
        let outputs = self.eval.execute_sharded(&args)?;
        let values = outputs[0][0].to_vec::<f32>()?;
        let mut metrics = unpack("eval", &self.eval_metrics, &values)?;
        let summaries = metrics.split_off(2);
        Ok(EvalMetrics {
            loss: metrics[0].1,
            weight: metrics[1].1,
            summaries,
        })
    }

    /// Copies parameters and optimizer state to the host as a checkpoint.
    pub fn checkpoint(&self, meta: Meta) -> Result<Checkpoint, TrainError> {
        let num_params = self.step.param_specs.len();
        let mut params = Tensors::new();
        let mut opt_state = Tensors::new();
        for (i, (a, array)) in self.carried().enumerate() {
            let host = if a.dtype == DType::I32 {
                array.to_array::<i32>()?.mapv(|v| v as f32)
            } else {
                array.to_array::<f32>()?
            };
            let into = if i < num_params {
                &mut params
            } else {
                &mut opt_state
            };
            into.insert(a.name.clone(), host);
        }
        Ok(Checkpoint {
            step: self.steps_done,
            params,
            opt_state,
            meta,
        })
    }

    /// Replaces parameters and optimizer state with a checkpoint's, placing
    /// them for this trainer's mesh (whatever mesh saved them).
    ///
    /// A checkpoint of the same model with its stacks scanned where this
    /// one's are unrolled, or the other way round, is converted
    /// ([`crate::checkpoint::to_stack_layout`]).
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        let mut host = checkpoint.params.clone();
        host.extend(checkpoint.opt_state.clone());
        let expected: Vec<(String, Vec<usize>)> = self.step.args[..self.step.num_carried()]
            .iter()
            .map(|a| (a.name.clone(), a.shape.clone()))
            .collect();
        self.place(&to_stack_layout(host, &expected))?;
        self.steps_done = checkpoint.step;
        Ok(())
    }

    /// Replaces the parameters with a checkpoint's, keeping the optimizer
    /// state: for evaluation, which reads parameters only (a checkpoint
    /// from [`crate::checkpoint::load_params`], whose optimizer state is
    /// empty). Converts stack layouts as [`Trainer::restore`] does. Errors:
    /// [`TrainError::Checkpoint`] naming a missing, extra or misshapen
    /// parameter.
    pub fn restore_params(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        let num_params = self.step.param_specs.len();
        let expected: Vec<(String, Vec<usize>)> = self.step.args[..num_params]
            .iter()
            .map(|a| (a.name.clone(), a.shape.clone()))
            .collect();
        let params = self.placed(
            &to_stack_layout(checkpoint.params.clone(), &expected),
            0..num_params,
        )?;
        self.carried.splice(..num_params, params);
        self.steps_done = checkpoint.step;
        Ok(())
    }

    fn place(&mut self, host: &Tensors) -> Result<(), TrainError> {
        self.carried = self.placed(host, 0..self.step.num_carried())?;
        Ok(())
    }

    /// The carried arguments `args` (indices into the step's arguments)
    /// placed on the devices from `host`, which must hold exactly those
    /// tensors, with the step's shapes.
    fn placed(
        &self,
        host: &Tensors,
        args: std::ops::Range<usize>,
    ) -> Result<Vec<ShardedArray>, TrainError> {
        let wanted = &self.step.args[args.clone()];
        let unexpected: Vec<&str> = host
            .keys()
            .filter(|name| !wanted.iter().any(|a| &a.name == *name))
            .map(String::as_str)
            .collect();
        if !unexpected.is_empty() {
            return Err(TrainError::Checkpoint(format!(
                "it holds tensors this model and learner do not have: {}",
                unexpected.join(", ")
            )));
        }
        let mut placed = Vec::new();
        for (a, layout) in wanted.iter().zip(&self.layouts[args]) {
            let array = host
                .get(&a.name)
                .ok_or_else(|| TrainError::Checkpoint(format!("no tensor named {}", a.name)))?;
            if array.shape() != a.shape.as_slice() {
                return Err(TrainError::Checkpoint(format!(
                    "{} is {:?}, the model expects {:?}",
                    a.name,
                    array.shape(),
                    a.shape
                )));
            }
            placed.push(if a.dtype == DType::I32 {
                ShardedArray::from_array(&self.client, &array.mapv(|v| v as i32), layout)?
            } else {
                ShardedArray::from_array(&self.client, array, layout)?
            });
        }
        Ok(placed)
    }

    /// Places `batch` and the RNG key as the step's arguments after the
    /// carried ones, after checking the batch against the model's inputs.
    fn place_batch(&self, batch: &HostBatch, rng: u64) -> Result<Vec<ShardedArray>, TrainError> {
        check_batch(batch, &self.step.inputs).map_err(TrainError::Batch)?;
        let n = self.step.num_carried();
        let mut placed = Vec::with_capacity(self.step.inputs.len() + 1);
        for (i, spec) in self.step.inputs.iter().enumerate() {
            let layout = &self.layouts[n + i];
            placed.push(match &batch[&spec.name] {
                HostArray::I32(a) => ShardedArray::from_array(&self.client, a, layout)?,
                HostArray::F32(a) => ShardedArray::from_array(&self.client, a, layout)?,
            });
        }
        let key = ArrayD::from_shape_vec(IxDyn(&[2]), vec![rng as i64, self.steps_done as i64])
            .expect("two elements");
        let key_layout = self
            .layouts
            .last()
            .expect("the RNG key is the last argument");
        placed.push(ShardedArray::from_array(&self.client, &key, key_layout)?);
        Ok(placed)
    }
}

/// The `step` step's packed metrics `values` by name ([`PackedMetrics::unpack`]).
fn unpack(
    step: &'static str,
    layout: &PackedMetrics,
    values: &[f32],
) -> Result<Vec<(String, f32)>, TrainError> {
    layout.unpack(values).ok_or(TrainError::Metrics {
        step,
        expected: layout.len(),
        got: values.len(),
    })
}

/// Checks that `mesh` uses the client's devices 0..n in order.
pub(crate) fn check_mesh(client: &Client, mesh: &Mesh) -> Result<(), TrainError> {
    let available = client.addressable_devices()?.len();
    let in_order = mesh.devices().iter().enumerate().all(|(i, &d)| i == d);
    if mesh.size() > available || !in_order {
        return Err(TrainError::Mesh {
            mesh: mesh.to_string(),
            devices: mesh.devices().to_vec(),
            available,
        });
    }
    Ok(())
}

/// Compiles a step on `client` through the persistent compile cache the
/// environment names ([`CompileCache::from_env`]: `AXLE_COMPILE_CACHE`,
/// default `$XDG_CACHE_HOME/axle/compile` or `~/.cache/axle/compile`,
/// `off` for none). A hit, which skips XLA's compile, is logged on stderr:
/// `compile cache hit: <entry file>`; a damaged entry is a warning naming
/// the file, then a compile that rewrites it. A cache directory that cannot
/// be used (a file, a read-only place) is one warning, then no cache.
pub fn compile_step(
    client: &Client,
    mlir_text: &str,
    options: &CompileOptions,
) -> Result<Executable, axle_runtime::Error> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let cache = CompileCache::from_env().filter(|cache| match cache.unusable() {
        None => true,
        Some(why) => {
            WARNED.call_once(|| {
                eprintln!(
                    "warning: compile cache off: {}: {why}",
                    cache.dir().display()
                )
            });
            false
        }
    });
    let Some(cache) = cache else {
        return client.compile(mlir_text, options);
    };
    let (exe, outcome) = cache.compile(client, mlir_text, options)?;
    match outcome {
        CacheOutcome::Hit(path) => eprintln!("compile cache hit: {}", path.display()),
        CacheOutcome::Damaged {
            path,
            reason,
            stored,
        } => eprintln!(
            "warning: compile cache entry {} is damaged ({reason}); recompiled{}",
            path.display(),
            if stored { " and rewrote it" } else { "" }
        ),
        CacheOutcome::Miss(_) => {}
    }
    Ok(exe)
}

/// Compile options for a program partitioned over `mesh`.
pub fn compile_options(mesh: &Mesh) -> CompileOptions {
    if mesh.size() > 1 {
        CompileOptions::shardy(mesh.size())
    } else {
        CompileOptions::single_device()
    }
}

/// The runtime layout of an argument on `mesh`.
pub(crate) fn layout(mesh: &Mesh, a: &ArgSpec) -> Result<ShardLayout, TrainError> {
    let l = a
        .partition
        .shard_layout(mesh, &a.shape, &a.name)
        .map_err(StepError::from)?;
    Ok(ShardLayout {
        mesh_shape: l.mesh_shape,
        dim_axes: l.dim_axes,
    })
}
