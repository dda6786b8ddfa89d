//! The trainer's device side: compiles the step for a mesh, keeps
//! parameters and optimizer state on the devices as sharded arrays between
//! steps (donated to the step, replaced by its outputs), feeds batches,
//! evaluates, and moves state to and from host checkpoints.

use crate::checkpoint::{Checkpoint, Meta, Tensors};
use crate::learner::LearnerConfig;
use crate::train_step::{ArgSpec, RNG_KEY, StepError, TrainStep, build_train_step};
use axle_compiler::DType;
use axle_modules::{CausalLm, LossSignature, init_params, trace_loss};
use axle_partition::{MESH_SYMBOL, Mesh};
use axle_runtime::{Arg, Buffer, Client, CompileOptions, Executable, ShardLayout, ShardedArray};
use ndarray::{Array2, ArrayD, IxDyn, s};

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
    /// A batch of the wrong shape.
    #[error("batch is {got:?}, the step was built for [{batch}, {seq} + 1]")]
    BatchShape {
        /// Shape given.
        got: Vec<usize>,
        /// Batch size of the step.
        batch: usize,
        /// Sequence length of the step.
        seq: usize,
    },
    /// A token id outside the vocabulary.
    #[error("batch holds token id {token}, outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        token: i32,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// A checkpoint does not match the model or learner.
    #[error("checkpoint does not fit this run: {0}")]
    Checkpoint(String),
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub learning_rate: f32,
}

/// A model being trained on the devices of one client.
pub struct Trainer {
    client: Client,
    step: TrainStep,
    train: Executable,
    eval: Executable,
    carried: Vec<ShardedArray>,
    /// The runtime layout of each argument of the step, in argument order.
    layouts: Vec<ShardLayout>,
    batch: usize,
    seq: usize,
    vocab: usize,
    steps_done: u64,
}

impl Trainer {
    /// Builds and compiles the training and evaluation steps of `model` for
    /// `mesh` on `client`, and places parameters initialised from `seed`
    /// (on the host, so the same on any mesh) and zero optimizer state.
    pub fn new(
        client: &Client,
        model: &CausalLm,
        learner: &LearnerConfig,
        batch: usize,
        seq: usize,
        mesh: &Mesh,
        seed: u64,
    ) -> Result<Trainer, TrainError> {
        check_mesh(client, mesh)?;
        let step = build_train_step(model, learner, batch, seq, mesh)?;
        let train = client.compile(&step.function.to_stablehlo(), &compile_options(mesh))?;
        Trainer::from_compiled(client, model, step, train, batch, seq, seed)
    }

    /// A trainer around a step already built by [`build_train_step`] and
    /// compiled with [`compile_options`], so that callers (`axle bench`)
    /// can time tracing, emission and compilation apart.
    pub fn from_compiled(
        client: &Client,
        model: &CausalLm,
        step: TrainStep,
        train: Executable,
        batch: usize,
        seq: usize,
        seed: u64,
    ) -> Result<Trainer, TrainError> {
        check_mesh(client, &step.mesh)?;
        let options = compile_options(&step.mesh);
        let eval = compile_eval(client, model, &step, batch, seq, &options)?;
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
            carried: Vec::new(),
            layouts,
            batch,
            seq,
            vocab: model.cfg.decoder.vocab_size.unwrap_or(0),
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

    /// Runs one training step on `tokens` (`[batch, seq + 1]`: inputs are
    /// the first `seq` columns, targets the last `seq`). `rng` seeds the
    /// step's randomness (dropout).
    pub fn step(&mut self, tokens: &Array2<i32>, rng: u64) -> Result<StepMetrics, TrainError> {
        let inputs = self.place_batch(tokens, rng)?;
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
        let scalars: Vec<f32> = per_output[self.step.num_carried()..]
            .iter()
            .map(|shards| shards[0].to_vec::<f32>().map(|v| v[0]))
            .collect::<Result<_, _>>()?;
        per_output.truncate(self.step.num_carried());
        self.carried = per_output
            .into_iter()
            .zip(self.step.args.iter().zip(&self.layouts))
            .map(|(shards, (a, layout))| ShardedArray::from_shards(&a.shape, layout, shards))
            .collect::<Result<_, _>>()?;
        self.steps_done += 1;
        Ok(StepMetrics {
            loss: scalars[0],
            grad_norm: scalars[1],
            learning_rate: scalars[2],
        })
    }

    /// Mean loss of the current parameters on `tokens`, without dropout.
    pub fn eval_loss(&self, tokens: &Array2<i32>) -> Result<f32, TrainError> {
        let inputs = self.place_batch(tokens, 0)?;
        let num_params = self.step.param_specs.len();
        let args: Vec<&ShardedArray> = self.carried[..num_params]
            .iter()
            .chain(&inputs[..2])
            .collect();
        let outputs = self.eval.execute_sharded(&args)?;
        Ok(outputs[0][0].to_vec::<f32>()?[0])
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
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        let mut host = checkpoint.params.clone();
        host.extend(checkpoint.opt_state.clone());
        self.place(&host)?;
        self.steps_done = checkpoint.step;
        Ok(())
    }

    fn place(&mut self, host: &Tensors) -> Result<(), TrainError> {
        let mut carried = Vec::new();
        for a in &self.step.args[..self.step.num_carried()] {
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
            let layout = &self.layouts[carried.len()];
            let placed = if a.dtype == DType::I32 {
                ShardedArray::from_array(&self.client, &array.mapv(|v| v as i32), layout)?
            } else {
                ShardedArray::from_array(&self.client, array, layout)?
            };
            carried.push(placed);
        }
        self.carried = carried;
        Ok(())
    }

    /// Places a token batch as the step's last three arguments.
    fn place_batch(&self, tokens: &Array2<i32>, rng: u64) -> Result<Vec<ShardedArray>, TrainError> {
        if tokens.dim() != (self.batch, self.seq + 1) {
            return Err(TrainError::BatchShape {
                got: tokens.shape().to_vec(),
                batch: self.batch,
                seq: self.seq,
            });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t < 0 || t as usize >= self.vocab) {
            return Err(TrainError::TokenOutOfRange {
                token,
                vocab: self.vocab,
            });
        }
        let n = self.step.num_carried();
        let inputs = tokens.slice(s![.., ..self.seq]).to_owned().into_dyn();
        let targets = tokens.slice(s![.., 1..]).to_owned().into_dyn();
        let key = ArrayD::from_shape_vec(IxDyn(&[2]), vec![rng as i64, self.steps_done as i64])
            .expect("two elements");
        debug_assert_eq!(self.step.args[n + 2].name, RNG_KEY);
        Ok(vec![
            ShardedArray::from_array(&self.client, &inputs, &self.layouts[n])?,
            ShardedArray::from_array(&self.client, &targets, &self.layouts[n + 1])?,
            ShardedArray::from_array(&self.client, &key, &self.layouts[n + 2])?,
        ])
    }
}

/// Checks that `mesh` uses the client's devices 0..n in order.
fn check_mesh(client: &Client, mesh: &Mesh) -> Result<(), TrainError> {
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

/// Compile options for a program partitioned over `mesh`.
pub fn compile_options(mesh: &Mesh) -> CompileOptions {
    if mesh.size() > 1 {
        CompileOptions::shardy(mesh.size())
    } else {
        CompileOptions::single_device()
    }
}

/// The runtime layout of an argument on `mesh`.
fn layout(mesh: &Mesh, a: &ArgSpec) -> Result<ShardLayout, TrainError> {
    let l = a
        .partition
        .shard_layout(mesh, &a.shape, &a.name)
        .map_err(StepError::from)?;
    Ok(ShardLayout {
        mesh_shape: l.mesh_shape,
        dim_axes: l.dim_axes,
    })
}

/// The evaluation step: the loss of the parameters on a batch, with the
/// same shardings as the training step's arguments.
fn compile_eval(
    client: &Client,
    model: &CausalLm,
    step: &TrainStep,
    batch: usize,
    seq: usize,
    options: &CompileOptions,
) -> Result<Executable, TrainError> {
    let b = axle_compiler::FunctionBuilder::new("eval_step");
    let sig = LossSignature {
        batch_size: batch,
        seq_len: seq,
        dtype: DType::F32,
        is_training: false,
    };
    let loss = trace_loss(model, &b, &sig)
        .map_err(StepError::from)?
        .output
        .loss;
    let mut function = b.build(&[("loss", &loss)]).map_err(StepError::from)?;
    let mesh = &step.mesh;
    function.set_num_partitions(mesh.size());
    if mesh.size() > 1 {
        function.add_mesh(&mesh.sdy_mesh_op(MESH_SYMBOL));
        let num_params = step.param_specs.len();
        let n = step.num_carried();
        for a in step.args[..num_params].iter().chain(&step.args[n..n + 2]) {
            let sharding = a.partition.sdy_sharding(MESH_SYMBOL);
            function
                .set_param_sharding(&a.name, &sharding)
                .map_err(StepError::from)?;
        }
    }
    Ok(client.compile(&function.to_stablehlo(), options)?)
}
