//! The training step as one program: forward, loss, gradients and the
//! learner's update, traced once for any [`Model`] and annotated for a mesh
//! (Shardy shardings on every argument and result, parameters and optimizer
//! state donated to their new values so they stay on device between steps).
//! Parameters, inputs and layer outputs name logical roles; the
//! experiment's [`LogicalRules`] turn them into mesh axes. The evaluation
//! step shares its argument layout and rules.

use crate::learner::{LearnerConfig, ParamUpdate, decays};
use crate::packed_metrics::{METRICS, PackedMetrics};
use axle_compiler::{DType, Function, FunctionBuilder, Tensor, TraceError, grad};
use axle_modules::{
    BatchShape, Ctx, InputSpec, Inputs, LOSS, LOSS_WEIGHT, Model, ParamSpec, ParamTree, RNG_KEY,
    declare_inputs, declare_params,
};
use axle_partition::{DimSharding, LogicalRules, MESH_SYMBOL, Mesh, PartitionSpec, SpecError};

/// Metric: the global gradient norm before clipping.
pub const GRAD_NORM: &str = "grad_norm";
/// Metric: the learning rate of the step.
pub const LEARNING_RATE: &str = "learning_rate";
/// Metric: 1 if the learner skipped the step (`learner.drop_grad_norm`), else 0.
pub const SKIPPED: &str = "skipped";
/// Metric: 1 if every new parameter is finite, else 0. (The optimizer
/// state is checked on the host when a checkpoint is written: checking it
/// in every step cost 6% of an FSDP step, see docs/benchmarks.md.)
pub const PARAMS_FINITE: &str = "params_finite";

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
    /// The model's loss is not a scalar, or an input has no batch dimension.
    #[error("model `{kind}`: {message}")]
    Interface {
        /// The model's kind.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// The traced function refused an annotation.
    #[error(transparent)]
    Function(#[from] axle_compiler::FunctionError),
    /// The learner's values cannot train (see [`LearnerConfig::validate`]).
    #[error("{0}")]
    Learner(String),
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
    /// The rules that mapped the roles of parameters, inputs and
    /// activations to the mesh's axes.
    pub rules: LogicalRules,
    /// Its arguments in order: model parameters (by path), optimizer state
    /// (by name), the model's inputs (in [`Model::input_specs`] order), then
    /// [`RNG_KEY`].
    pub args: Vec<ArgSpec>,
    /// The model's parameter specs.
    pub param_specs: ParamTree<ParamSpec>,
    /// The model's inputs for the step's batch shape.
    pub inputs: Vec<InputSpec>,
    /// The batch shape the step was built for.
    pub shape: BatchShape,
    /// The layout of its last result, [`METRICS`]: [`STEP_SCALARS`], then the model's
    /// summaries by path.
    pub metrics: PackedMetrics,
}

impl TrainStep {
    /// Number of carried arguments (parameters and optimizer state), which
    /// are also the first results, in the same order.
    pub fn num_carried(&self) -> usize {
        self.args.len() - self.inputs.len() - 1
    }

    /// The argument specs of the model's inputs.
    pub fn input_args(&self) -> &[ArgSpec] {
        let n = self.num_carried();
        &self.args[n..n + self.inputs.len()]
    }
}

/// The training step's own metrics, first in its packed [`METRICS`] result, in order.
pub const STEP_SCALARS: [&str; 6] = [
    LOSS,
    LOSS_WEIGHT,
    GRAD_NORM,
    LEARNING_RATE,
    SKIPPED,
    PARAMS_FINITE,
];

/// Traces the training step of `model` on batches of `shape` with
/// `learner`, sharded over `mesh` as `rules` map the logical roles of
/// parameters, inputs and layer outputs to its axes. Results, in order:
/// the carried arguments' new values, then [`METRICS`]: [`STEP_SCALARS`] and
/// the summaries packed into one f32 vector ([`TrainStep::metrics`]). A role resolved to a mesh axis that does not divide its
/// dimension (or that the mesh lacks) is an error naming the parameter or
/// input, the dimension and the axis.
pub fn build_train_step(
    model: &dyn Model,
    learner: &LearnerConfig,
    shape: &BatchShape,
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<TrainStep, StepError> {
    learner.validate().map_err(StepError::Learner)?;
    let specs = model.param_specs();
    learner
        .check_groups(specs.keys().map(String::as_str))
        .map_err(StepError::Learner)?;
    let inputs = model.input_specs(shape)?;
    if let Some(empty) = inputs.iter().find(|i| i.shape.contains(&0)) {
        return Err(StepError::Interface {
            kind: model.kind().to_string(),
            message: format!(
                "input `{}` has shape {:?}: the batch size and sequence length (input.batch_size, input.seq_len) must be positive",
                empty.name, empty.shape
            ),
        });
    }
    let b = FunctionBuilder::new("train_step");
    let params = declare_params(&b, &specs, DType::F32);
    let state = learner.declare_state(&b, &specs);
    let batch = declare_inputs(&b, model, shape)?;
    let key = b.param(RNG_KEY, DType::I64, &[2]);
    let traced = loss_and_grads(model, &params, &batch, &key, learner, mesh, rules)?;
    let updates: Vec<ParamUpdate<'_>> = params
        .iter()
        .zip(&traced.grads)
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
    let params_finite = all_finite(update.params.values(), &traced.loss);
    let mut results: Vec<(&str, &Tensor)> = carried.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let scalars = [
        &traced.loss,
        &traced.weight,
        &update.grad_norm,
        &update.learning_rate,
        &update.skipped,
        &params_finite,
    ];
    let mut metrics: Vec<(&str, &Tensor)> = STEP_SCALARS.into_iter().zip(scalars).collect();
    metrics.extend(traced.summaries.iter().map(|(p, t)| (p.as_str(), t)));
    let (metrics, packed) = PackedMetrics::pack(&metrics);
    results.push((METRICS, &packed));
    let mut function = b.build(&results)?;

    let partitions: ParamTree<PartitionSpec> = specs
        .iter()
        .map(|(path, spec)| (path.clone(), rules.resolve(&spec.roles, mesh)))
        .collect();
    let mut args = Vec::new();
    for (path, spec) in &specs {
        args.push(arg(path, DType::F32, &spec.shape, &partitions[path], mesh)?);
    }
    // Optimizer state is split as the parameter dimensions it follows are
    // (Adafactor's row statistic of an `(fsdp, model)` weight over `fsdp`).
    for (name, spec) in learner.state_specs(&specs) {
        let partition = match &spec.follows {
            Some((path, dims)) => {
                let param: &[DimSharding] = partitions[path].dims();
                PartitionSpec::from_dims(dims.iter().map(|&d| param[d].clone()).collect())
            }
            None => PartitionSpec::replicated(spec.shape.len()),
        };
        args.push(arg(&name, spec.dtype, &spec.shape, &partition, mesh)?);
    }
    for input in &inputs {
        let partition = rules.resolve(&input.roles, mesh);
        args.push(arg(
            &input.name,
            input.dtype,
            &input.shape,
            &partition,
            mesh,
        )?);
    }
    args.push(arg(
        RNG_KEY,
        DType::I64,
        &[2],
        &PartitionSpec::replicated(1),
        mesh,
    )?);
    let num_carried = specs.len() + state.len();
    annotate(&mut function, mesh, &args, &args[..num_carried])?;
    for a in &args[..num_carried] {
        function.donate(&a.name, &a.name)?;
    }
    replicate_results(&mut function, mesh, &[METRICS])?;
    Ok(TrainStep {
        function,
        mesh: mesh.clone(),
        rules: rules.clone(),
        args,
        param_specs: specs,
        inputs,
        shape: *shape,
        metrics,
    })
}

/// 1 (f32 scalar) if every element of the floating-point `tensors` is
/// finite, else 0: one compare and one reduction per tensor. `like` is any
/// f32 scalar of the same function (the value when there is no tensor).
fn all_finite<'a>(tensors: impl Iterator<Item = &'a Tensor>, like: &Tensor) -> Tensor {
    let one = like.splat_like(1.0);
    tensors
        .filter(|t| t.dtype() == DType::F32)
        .map(|t| {
            // NaN compares false, so this is 0 for NaN and for ±inf.
            let finite = t.abs().less_equal(&t.splat_like(f64::from(f32::MAX)));
            let axes: Vec<i64> = (0..t.rank() as i64).collect();
            // A convert, not a select between broadcast constants: XLA merges
            // a broadcast zero with other zero buffers of the same shape (the
            // embedding's scatter-add start) and keeps it live (1 MiB more
            // peak on gpu-h100:4 data=4 than JAX, benches/jax_reference).
            finite.convert(DType::F32).reduce_min(&axes, false)
        })
        .reduce(|a, b| a.minimum(&b))
        .unwrap_or(one)
}

/// Traces the evaluation step of the model `step` was built for: the loss,
/// its weight and the summaries of the parameters on a batch, without
/// dropout, with the same argument shardings and logical rules as `step`
/// (parameters, then inputs). One result, [`METRICS`]: [`LOSS`], [`LOSS_WEIGHT`], then the
/// summaries by path, packed as the returned layout says.
pub fn build_eval_step(
    model: &dyn Model,
    step: &TrainStep,
) -> Result<(Function, PackedMetrics), StepError> {
    let b = FunctionBuilder::new("eval_step");
    let params = declare_params(&b, &step.param_specs, DType::F32);
    let inputs = declare_inputs(&b, model, &step.shape)?;
    let mut ctx = Ctx::new(params, false, None);
    if step.mesh.size() > 1 {
        ctx = ctx.with_mesh(step.mesh.clone(), step.rules.clone());
    }
    let out = model.loss(&mut ctx, &inputs)?;
    let summaries = scalar_summaries(model, ctx.take_summaries())?;
    let mut metrics = vec![(LOSS, &out.loss), (LOSS_WEIGHT, &out.weight)];
    metrics.extend(summaries.iter().map(|(p, t)| (p.as_str(), t)));
    let (layout, packed) = PackedMetrics::pack(&metrics);
    let mut function = b.build(&[(METRICS, &packed)])?;
    let num_params = step.param_specs.len();
    let args: Vec<ArgSpec> = step.args[..num_params]
        .iter()
        .chain(step.input_args())
        .cloned()
        .collect();
    annotate(&mut function, &step.mesh, &args, &[])?;
    replicate_results(&mut function, &step.mesh, &[METRICS])?;
    Ok((function, layout))
}

/// Sets the mesh, the number of partitions, the shardings of `args` and of
/// the results named like `carried` (on a mesh of several devices).
pub(crate) fn annotate(
    function: &mut Function,
    mesh: &Mesh,
    args: &[ArgSpec],
    carried: &[ArgSpec],
) -> Result<(), StepError> {
    function.set_num_partitions(mesh.size());
    if mesh.size() == 1 {
        return Ok(());
    }
    function.add_mesh(&mesh.sdy_mesh_op(MESH_SYMBOL));
    for a in args {
        function.set_param_sharding(&a.name, &a.partition.sdy_sharding(MESH_SYMBOL))?;
    }
    for a in carried {
        function.set_result_sharding(&a.name, &a.partition.sdy_sharding(MESH_SYMBOL))?;
    }
    Ok(())
}

/// Marks the results `names` replicated (on a mesh of several devices).
pub(crate) fn replicate_results(
    function: &mut Function,
    mesh: &Mesh,
    names: &[&str],
) -> Result<(), StepError> {
    if mesh.size() == 1 {
        return Ok(());
    }
    let types = function.result_types();
    for name in names {
        let rank = types[function.result_index(name)?].dims.len();
        let sharding = PartitionSpec::replicated(rank).sdy_sharding(MESH_SYMBOL);
        function.set_result_sharding(name, &sharding)?;
    }
    Ok(())
}

/// The loss, weight, gradients and summaries of a batch, combined over
/// micro-batches.
struct Traced {
    loss: Tensor,
    weight: Tensor,
    grads: Vec<Tensor>,
    summaries: ParamTree<Tensor>,
}

/// The summaries as f32 (scalars, or per-layer vectors from a scanned
/// stack); anything of higher rank is an error naming it.
fn scalar_summaries(
    model: &dyn Model,
    summaries: ParamTree<Tensor>,
) -> Result<ParamTree<Tensor>, StepError> {
    summaries
        .into_iter()
        .map(|(path, t)| {
            if t.rank() > 1 {
                return Err(StepError::Interface {
                    kind: model.kind().to_string(),
                    message: format!(
                        "summary `{path}` is {:?}; summaries must be scalars (or per-layer vectors)",
                        t.dims()
                    ),
                });
            }
            Ok((path, t.convert(DType::F32)))
        })
        .collect()
}

/// The loss over `micro_batches` slices of the batch rows, combined as the
/// full batch would be: each micro-batch's mean loss (and summary) weighted
/// by its loss weight, over the total weight; the gradient is that of the
/// combined loss. With several micro-batches, gradient accumulation runs in
/// a `scan` (one traced forward and backward whatever their number, so
/// compile time and memory stay flat in it): micro-batch `i` takes rows
/// `i`, `i + k`, `i + 2k`, … (spread over the data-parallel devices as the
/// batch is) and draws its dropout from the key `rng_key + [0, i]`. The
/// forward sees the parameters cast to the learner's compute dtype;
/// gradients come back to the f32 parameters through the cast and are
/// summed in f32. On a mesh of several devices the layers constrain their
/// outputs' sharding as `rules` resolve their roles.
fn loss_and_grads(
    model: &dyn Model,
    params: &ParamTree<Tensor>,
    batch: &Inputs,
    key: &Tensor,
    learner: &LearnerConfig,
    mesh: &Mesh,
    rules: &LogicalRules,
) -> Result<Traced, StepError> {
    let rows = batch_rows(model, batch)?;
    let k = learner.micro_batches;
    if rows % k != 0 {
        return Err(StepError::MicroBatches {
            batch: rows,
            micro_batches: k,
        });
    }
    let micro = MicroStep {
        model,
        paths: params.keys().cloned().collect(),
        compute: learner.compute_dtype.dtype(),
        mesh,
        rules,
    };
    let wrt: Vec<&Tensor> = params.values().collect();
    if k == 1 {
        let (loss, weight, summaries) = micro.loss(&wrt, batch, key.convert(DType::U64))?;
        let grads = grad(&loss, &wrt);
        return Ok(Traced {
            loss,
            weight,
            grads,
            summaries,
        });
    }
    let b = key.builder();
    let size = rows / k;
    let names: Vec<&String> = batch.keys().collect();
    let mut xs: Vec<Tensor> = batch
        .values()
        .map(|t| {
            let mut split = vec![size, k];
            split.extend_from_slice(&t.dims()[1..]);
            let mut perm: Vec<usize> = (0..split.len()).collect();
            perm.swap(0, 1);
            t.reshape(&split).transpose(&perm)
        })
        .collect();
    let offsets: Vec<i64> = (0..k as i64).flat_map(|i| [0, i]).collect();
    xs.push(&key.broadcast_in_dim(&[k, 2], &[1]) + &b.constant(&offsets, &[k, 2]));
    let zeros: Vec<Tensor> = wrt.iter().map(|p| p.zeros_like()).collect();
    let mut carry: Vec<&Tensor> = zeros.iter().collect();
    carry.extend(wrt.iter().copied());
    let n = wrt.len();
    let mut failure = None;
    let mut summary_paths = Vec::new();
    let (acc, ys) = b.scan(k, &carry, &xs.iter().collect::<Vec<_>>(), |carry, x| {
        let (acc, ps) = carry.split_at(n);
        let ps: Vec<&Tensor> = ps.iter().collect();
        let inputs: Inputs = names
            .iter()
            .zip(x)
            .map(|(name, t)| ((*name).clone(), t.clone()))
            .collect();
        let key = x[names.len()].convert(DType::U64);
        match micro.loss(&ps, &inputs, key) {
            Err(e) => {
                failure = Some(e);
                (carry.to_vec(), Vec::new())
            }
            Ok((loss, weight, summaries)) => {
                let weight = weight.stop_gradient();
                let grads = grad(&(&loss * &weight), &ps);
                let mut next: Vec<Tensor> = acc.iter().zip(&grads).map(|(a, g)| a + g).collect();
                next.extend(ps.iter().map(|p| (*p).clone()));
                let mut ys = vec![loss, weight];
                for (path, value) in summaries {
                    summary_paths.push(path);
                    ys.push(value);
                }
                (next, ys)
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    // A batch with no live target has weight 0 and loss 0, not 0/0.
    let weight = ys[1].sum_all();
    let total = weight.maximum(&weight.splat_like(f64::from(f32::MIN_POSITIVE)));
    let weighted = |stacked: &Tensor| {
        let w = ys[1].broadcast_in_dim(stacked.dims(), &[0]);
        &(stacked * &w).sum(&[0], false) / &total.broadcast_to(&stacked.dims()[1..])
    };
    let summaries = summary_paths
        .into_iter()
        .zip(&ys[2..])
        .map(|(path, stacked)| {
            let value = if is_count(&path) {
                stacked.sum(&[0], false)
            } else {
                weighted(stacked)
            };
            (path, value)
        })
        .collect();
    Ok(Traced {
        loss: weighted(&ys[0]),
        weight,
        grads: acc[..n]
            .iter()
            .map(|g| g / &total.broadcast_to(g.dims()))
            .collect(),
        summaries,
    })
}

/// Whether the summary at `path` is a count (its name starts with `num_`,
/// `Context::add_summary`): summed over micro-batches, not averaged.
fn is_count(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("num_"))
}

/// What one micro-batch's loss needs besides its inputs: the model, the
/// parameter paths (in the order the parameters are given), the compute
/// dtype and the mesh with its rules.
struct MicroStep<'a> {
    model: &'a dyn Model,
    paths: Vec<String>,
    compute: DType,
    mesh: &'a Mesh,
    rules: &'a LogicalRules,
}

impl MicroStep<'_> {
    /// The loss (f32 scalar), its weight (f32 scalar) and the summaries of
    /// `inputs` under the f32 parameters `params`, seen in the compute
    /// dtype, with dropout drawn from `key`.
    fn loss(
        &self,
        params: &[&Tensor],
        inputs: &Inputs,
        key: Tensor,
    ) -> Result<(Tensor, Tensor, ParamTree<Tensor>), StepError> {
        let compute_params = self
            .paths
            .iter()
            .zip(params)
            .map(|(path, p)| (path.clone(), p.convert(self.compute)))
            .collect();
        let mut ctx = Ctx::new(compute_params, true, Some(key));
        if self.mesh.size() > 1 {
            ctx = ctx.with_mesh(self.mesh.clone(), self.rules.clone());
        }
        let out = self.model.loss(&mut ctx, inputs)?;
        if out.loss.rank() != 0 || out.weight.rank() != 0 {
            return Err(StepError::Interface {
                kind: self.model.kind().to_string(),
                message: format!(
                    "loss and weight must be scalars, got {:?} and {:?}",
                    out.loss.dims(),
                    out.weight.dims()
                ),
            });
        }
        let summaries = scalar_summaries(self.model, ctx.take_summaries())?;
        Ok((
            out.loss.convert(DType::F32),
            out.weight.convert(DType::F32),
            summaries,
        ))
    }
}

/// The batch size of `batch` (the leading dimension every input shares).
fn batch_rows(model: &dyn Model, batch: &Inputs) -> Result<usize, StepError> {
    let mut rows = None;
    for (name, t) in batch {
        let Some(&first) = t.dims().first() else {
            return Err(StepError::Interface {
                kind: model.kind().to_string(),
                message: format!("input `{name}` is a scalar; inputs need a batch dimension"),
            });
        };
        if rows.is_some_and(|r| r != first) {
            return Err(StepError::Interface {
                kind: model.kind().to_string(),
                message: format!("input `{name}` has {first} rows, other inputs {rows:?}"),
            });
        }
        rows = Some(first);
    }
    rows.ok_or_else(|| StepError::Interface {
        kind: model.kind().to_string(),
        message: "the model declares no inputs".into(),
    })
}

/// The argument `name` split as `partition` (resolved for `mesh`), checked
/// against its shape; errors name the argument, dimension and mesh axis.
pub(crate) fn arg(
    name: &str,
    dtype: DType,
    shape: &[usize],
    partition: &PartitionSpec,
    mesh: &Mesh,
) -> Result<ArgSpec, StepError> {
    partition.validate(mesh, shape, name)?;
    Ok(ArgSpec {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        partition: partition.clone(),
    })
}
