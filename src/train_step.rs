//! The training step as one program: forward, loss, gradients and the
//! learner's update, traced once and annotated for a mesh (Shardy shardings
//! on every argument and result, parameters and optimizer state donated to
//! their new values so they stay on device between steps).

use crate::learner::{LearnerConfig, ParamUpdate, decays, state_param};
use axle_compiler::{DType, Function, FunctionBuilder, Tensor, TraceError, grad};
use axle_modules::{Batch, CausalLm, Ctx, Module, ParamSpec, ParamTree};
use axle_partition::{MESH_SYMBOL, Mesh, PartitionSpec, SpecError, pspec};

/// Name of the input token ids argument, `i32[batch, seq]`.
pub const INPUT_IDS: &str = "input_ids";
/// Name of the next-token labels argument, `i32[batch, seq]`.
pub const TARGET_LABELS: &str = "target_labels";
/// Name of the RNG key argument, `i64[2]` (seed, step) for dropout.
pub const RNG_KEY: &str = "rng_key";
/// Result: the batch's mean loss.
pub const LOSS: &str = "loss";
/// Result: the global gradient norm before clipping.
pub const GRAD_NORM: &str = "grad_norm";
/// Result: the learning rate of the step.
pub const LEARNING_RATE: &str = "learning_rate";

/// A step could not be built for this model, shape and mesh.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The model refused its inputs (shapes, config).
    #[error(transparent)]
    Model(#[from] axle_modules::Error),
    /// Tracing found a shape or dtype error.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A sharding does not fit a tensor on the mesh.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The batch does not split into the requested micro-batches.
    #[error(
        "batch size {batch} is not divisible into {micro_batches} micro-batches (learner.micro_batches)"
    )]
    MicroBatches {
        /// Batch size.
        batch: usize,
        /// Requested micro-batches.
        micro_batches: usize,
    },
    /// The traced function refused an annotation.
    #[error(transparent)]
    Function(#[from] axle_compiler::FunctionError),
}

/// One argument of the step: name, dtype, global shape, and its sharding.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgSpec {
    /// Parameter path, optimizer-state name or input name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Global shape.
    pub shape: Vec<usize>,
    /// How it is split over the mesh (axes the mesh lacks already dropped).
    pub partition: PartitionSpec,
}

/// The training step program and the layout of its arguments.
pub struct TrainStep {
    /// The traced, annotated function.
    pub function: Function,
    /// The mesh it is partitioned over.
    pub mesh: Mesh,
    /// Its arguments in order: model parameters (by path), optimizer state
    /// (by name), then [`INPUT_IDS`], [`TARGET_LABELS`], [`RNG_KEY`].
    pub args: Vec<ArgSpec>,
    /// The model's parameter specs.
    pub param_specs: ParamTree<ParamSpec>,
}

impl TrainStep {
    /// Number of carried arguments (parameters and optimizer state), which
    /// are also the first results, in the same order.
    pub fn num_carried(&self) -> usize {
        self.args.len() - 3
    }
}

/// Traces the training step of `model` on batches of `[batch_size,
/// seq_len]` tokens with `learner`, sharded over `mesh`. Results, in order:
/// the carried arguments' new values, then [`LOSS`], [`GRAD_NORM`],
/// [`LEARNING_RATE`].
pub fn build_train_step(
    model: &CausalLm,
    learner: &LearnerConfig,
    batch_size: usize,
    seq_len: usize,
    mesh: &Mesh,
) -> Result<TrainStep, StepError> {
    let specs = model.param_specs();
    let b = FunctionBuilder::new("train_step");
    let params: ParamTree<_> = specs
        .iter()
        .map(|(path, spec)| (path.clone(), b.param(path, DType::F32, &spec.shape)))
        .collect();
    let state = learner.declare_state(&b, &specs);
    let dims = [batch_size, seq_len];
    let batch = Batch {
        input_ids: b.param(INPUT_IDS, DType::I32, &dims),
        target_labels: b.param(TARGET_LABELS, DType::I32, &dims),
        positions: None,
        segment_ids: None,
    };
    let key = b.param(RNG_KEY, DType::I64, &[2]);
    let (loss, grads) = loss_and_grads(model, &params, &batch, &key, learner, mesh)?;
    let updates: Vec<ParamUpdate<'_>> = params
        .iter()
        .zip(&grads)
        .map(|((path, value), grad)| ParamUpdate {
            path,
            value,
            grad,
            decay: decays(&specs[path]),
        })
        .collect();
    let update = learner.apply(&updates, &state);

    let carried: Vec<(&String, &Tensor)> =
        update.params.iter().chain(update.state.iter()).collect();
    let mut results: Vec<(&str, &Tensor)> = carried.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    results.push((LOSS, &loss));
    results.push((GRAD_NORM, &update.grad_norm));
    results.push((LEARNING_RATE, &update.learning_rate));
    let mut function = b.build(&results)?;

    let mut args = Vec::new();
    for (path, spec) in &specs {
        args.push(arg(path, DType::F32, &spec.shape, &spec.partition, mesh)?);
    }
    for (name, t) in &state {
        let partition = match state_param(name) {
            Some(path) => specs[path].partition.clone(),
            None => PartitionSpec::replicated(t.rank()),
        };
        args.push(arg(name, t.dtype(), t.dims(), &partition, mesh)?);
    }
    let batch_spec = pspec![["data", "expert", "fsdp"], "seq"];
    args.push(arg(INPUT_IDS, DType::I32, &dims, &batch_spec, mesh)?);
    args.push(arg(TARGET_LABELS, DType::I32, &dims, &batch_spec, mesh)?);
    args.push(arg(RNG_KEY, DType::I64, &[2], &pspec![_], mesh)?);

    function.set_num_partitions(mesh.size());
    if mesh.size() > 1 {
        function.add_mesh(&mesh.sdy_mesh_op(MESH_SYMBOL));
    }
    for a in &args {
        if mesh.size() > 1 {
            let sharding = a.partition.sdy_sharding(MESH_SYMBOL);
            function.set_param_sharding(&a.name, &sharding)?;
        }
        if a.name != INPUT_IDS && a.name != TARGET_LABELS && a.name != RNG_KEY {
            if mesh.size() > 1 {
                function.set_result_sharding(&a.name, &a.partition.sdy_sharding(MESH_SYMBOL))?;
            }
            function.donate(&a.name, &a.name)?;
        }
    }
    if mesh.size() > 1 {
        let scalar = PartitionSpec::replicated(0).sdy_sharding(MESH_SYMBOL);
        for name in [LOSS, GRAD_NORM, LEARNING_RATE] {
            function.set_result_sharding(name, &scalar)?;
        }
    }
    Ok(TrainStep {
        function,
        mesh: mesh.clone(),
        args,
        param_specs: specs,
    })
}

/// The mean loss over `micro_batches` equal slices of the batch rows and
/// the mean of their gradients (gradient accumulation, traced unrolled: one
/// forward and backward per micro-batch, summed in the step). Micro-batch
/// `i` draws its dropout from the key `rng_key + [0, i]`. The forward sees
/// the parameters cast to the learner's compute dtype; gradients come back
/// to the f32 parameters through the cast. On a mesh of several devices the
/// layers constrain their outputs' sharding (their `output_partition`).
fn loss_and_grads(
    model: &CausalLm,
    params: &ParamTree<Tensor>,
    batch: &Batch,
    key: &Tensor,
    learner: &LearnerConfig,
    mesh: &Mesh,
) -> Result<(Tensor, Vec<Tensor>), StepError> {
    let [rows, seq] = batch.input_ids.dims() else {
        unreachable!("declared as [batch, seq]");
    };
    let (rows, seq) = (*rows, *seq);
    let k = learner.micro_batches.max(1);
    let compute = learner.compute_dtype.dtype();
    let compute_params: ParamTree<Tensor> = params
        .iter()
        .map(|(path, p)| (path.clone(), p.convert(compute)))
        .collect();
    if rows % k != 0 {
        return Err(StepError::MicroBatches {
            batch: rows,
            micro_batches: k,
        });
    }
    let size = rows / k;
    let wrt: Vec<&Tensor> = params.values().collect();
    let mut total: Option<(Tensor, Vec<Tensor>)> = None;
    for i in 0..k {
        let rows_of = |t: &Tensor| t.slice(&[i * size, 0], &[(i + 1) * size, seq], &[1, 1]);
        let micro = Batch {
            input_ids: rows_of(&batch.input_ids),
            target_labels: rows_of(&batch.target_labels),
            positions: None,
            segment_ids: None,
        };
        let offset = key.builder().constant(&[0i64, i as i64], &[2]);
        let micro_key = (key + &offset).convert(DType::U64);
        let mut ctx = Ctx::new(compute_params.clone(), true, Some(micro_key));
        if mesh.size() > 1 {
            ctx = ctx.with_mesh(mesh.clone());
        }
        let loss = model.batch_loss(&mut ctx, &micro)?.total;
        let grads = grad(&loss, &wrt);
        total = Some(match total {
            None => (loss, grads),
            Some((l, g)) => (
                &l + &loss,
                g.iter().zip(&grads).map(|(a, b)| a + b).collect(),
            ),
        });
    }
    let (loss, grads) = total.expect("at least one micro-batch");
    if k == 1 {
        return Ok((loss, grads));
    }
    let scale = 1.0 / k as f64;
    Ok((&loss * scale, grads.iter().map(|g| g * scale).collect()))
}

fn arg(
    name: &str,
    dtype: DType,
    shape: &[usize],
    partition: &PartitionSpec,
    mesh: &Mesh,
) -> Result<ArgSpec, StepError> {
    let partition = partition.restricted_to(mesh);
    partition.validate(mesh, shape, name)?;
    Ok(ArgSpec {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        partition,
    })
}
