//! `axle plan`: compile an experiment's training step ahead of time for a
//! TPU slice or GPU machine this host does not have, and say whether it fits.
//!
//! The step is built exactly as `axle lower` and `axle train` build it (the
//! experiment's config, modifiers, overrides and a mesh, explicit or chosen
//! by the mesh rules for the target's devices), then compiled by libtpu or
//! the CUDA plugin for the target's topology in a child process without a
//! network ([`child`]). The report gives per device what XLA allocated
//! (arguments, outputs, temporaries, peak) against the device's memory,
//! FLOPs and bytes accessed where the compiler reports them, the
//! collectives in the optimized HLO and the compile time, then a verdict:
//! fits, or short by so many GiB. As AXLearn's `aot_compilation.py` does
//! for JAX. [`search::search`] plans several meshes and micro-batch counts
//! and ranks those that fit.

pub mod child;
pub mod cli;
pub mod collectives;
mod render;
pub mod search;
pub mod target;

pub use child::{ChildOutcome, Compiled};
pub use render::render_report;
pub use target::{Platform, Target, target, target_names};

use crate::run::{RunError, RunOptions};
use crate::train_step::{StepError, build_train_step};
use axle_compiler::DType;
use axle_compiler::ir::{Graph, OpKind};
use axle_compiler::shape::TensorType;
use axle_modules::BatchShape;
use axle_partition::{CompilerOption, MeshSource};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Bytes per GiB.
pub const GIB: f64 = (1u64 << 30) as f64;

/// Why planning failed; each names the target or the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The target name is not one axle knows.
    #[error("unknown target `{name}`; known: {known}")]
    UnknownTarget {
        /// The name given.
        name: String,
        /// The names axle knows.
        known: String,
    },
    /// A GPU target's device count is zero or beyond [`target::MAX_DEVICES`].
    #[error("target `{target}`: {message}")]
    DeviceCount {
        /// The target name given.
        target: String,
        /// What is wrong with the count.
        message: String,
    },
    /// The mesh does not use exactly the target's devices.
    #[error(
        "mesh {mesh} has {size} devices but target {target} has {devices}; a plan's mesh must use all of the target's devices"
    )]
    MeshSize {
        /// The mesh.
        mesh: String,
        /// Devices the mesh uses.
        size: usize,
        /// The target.
        target: String,
        /// Devices the target has.
        devices: usize,
    },
    /// `--search` was combined with an option it cannot honour.
    #[error("axle plan --search {0}")]
    SearchOption(String),
    /// The plan JSON file cannot be written.
    #[error("cannot write the plan JSON {}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// The experiment, mesh or config could not be resolved.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The training step could not be built.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The plugin failed in the child before or after compiling.
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// The compiler crashed: the child died of a signal.
    #[error("the compiler crashed compiling for {target} (signal {signal}):\n{stderr}")]
    CompilerCrashed {
        /// The target.
        target: String,
        /// The signal that killed the child (11: segmentation fault).
        signal: i32,
        /// The end of the child's stderr.
        stderr: String,
    },
    /// The compiler refused the program (other than running out of memory).
    #[error("compiling for {target} failed: {message}")]
    Compile {
        /// The target.
        target: String,
        /// The compiler's message.
        message: String,
    },
    /// The child failed in another way.
    #[error("the compile child for {target} failed: {message}")]
    Child {
        /// The target.
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The compile failed or crashed with a message naming one of a mesh
    /// rule's compiler options: names the rule and the option.
    #[error(
        "compiling for {target} with the compiler options of mesh rule `{rule}` failed; suspect option: {option}\n{source}"
    )]
    CompilerOption {
        /// The target.
        target: String,
        /// The rule's pattern.
        rule: String,
        /// The options the compiler named (`name=value`).
        option: String,
        /// The compiler's error.
        source: Box<PlanError>,
    },
    /// `--seq-len` was given for a model whose inputs have no sequence.
    #[error(
        "--seq-len {seq_len}: model kind `{kind}` has no sequence dimension (its inputs do not depend on it); drop --seq-len"
    )]
    SeqLenUnused {
        /// The sequence length given.
        seq_len: usize,
        /// The model's kind (`vit`, `mlp_regressor`).
        kind: String,
    },
    /// A tensor of the step is larger than XLA can address.
    #[error(
        "{what} {shape} is too large: its size in bytes is beyond i64 ({max}), XLA's limit; lower input.batch_size={batch_size} or input.seq_len={seq_len}"
    )]
    TooLarge {
        /// The input or op whose result is too large.
        what: String,
        /// Its dtype and dims.
        shape: String,
        /// The largest byte size allowed.
        max: i64,
        /// The batch size planned.
        batch_size: usize,
        /// The sequence length planned.
        seq_len: usize,
    },
    /// An input error with the flag that fixes it.
    #[error("{source}\nhint: {hint}")]
    Hint {
        /// The error.
        source: Box<PlanError>,
        /// What to change on the command line.
        hint: String,
    },
    /// The child could not be started without a network.
    #[error("cannot isolate the compile: {0}")]
    Isolation(String),
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The experiment, modifiers, overrides, mesh, batch size and sequence
    /// length (the plugin and data fields are not used).
    pub run: RunOptions,
    /// The target name ([`target_names`]).
    pub target: String,
    /// The `axle` executable that compiles in a child (`--compile-child`).
    pub axle_exe: PathBuf,
}

/// The verdict on memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Verdict {
    /// The peak fits in the device's memory, with this many bytes to spare.
    Fits {
        /// Bytes left.
        headroom: i64,
    },
    /// The program needs this many more bytes than a device has.
    ShortBy {
        /// Missing bytes (`None` where the compiler refused for lack of
        /// memory without giving sizes).
        bytes: Option<i64>,
        /// The compiler's message, where it refused the program.
        compiler_message: Option<String>,
    },
    /// The device's memory size is not known: no verdict.
    UnknownLimit,
}

/// The result of `axle plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    /// The experiment.
    pub experiment: String,
    /// The modifiers asked for (`--modifier`), in order.
    pub modifiers: Vec<String>,
    /// The config overrides asked for (`--set`), in order.
    pub overrides: Vec<String>,
    /// The global batch size planned for.
    pub batch_size: usize,
    /// The sequence length planned for.
    pub seq_len: usize,
    /// The target.
    pub target: String,
    /// The mesh (`data=2,model=2`).
    pub mesh: String,
    /// Modifiers the mesh rule applied.
    pub mesh_modifiers: Vec<String>,
    /// The pattern of the mesh rule that chose the mesh (`None` for an
    /// explicit `--mesh`).
    pub mesh_rule: Option<String>,
    /// The pattern of the mesh rule whose compiler options were applied
    /// (the first matching the target's devices, also with `--mesh`).
    pub compiler_options_rule: Option<String>,
    /// The XLA options the compile was given, `name=value`.
    pub compiler_options: Vec<String>,
    /// Hosts the target's devices are on.
    pub hosts: usize,
    /// Device memory the compiler may use, bytes.
    pub memory_limit: Option<u64>,
    /// What the compiler reported, when it compiled.
    pub compiled: Option<Compiled>,
    /// Fits or short by.
    pub verdict: Verdict,
    /// What the plan may not mean as asked (a mesh axis that shards
    /// nothing).
    pub warnings: Vec<String>,
}

/// Builds the experiment's train step for `options.target` and compiles it
/// there in a child process without a network.
pub fn plan(options: &PlanOptions) -> Result<PlanReport, PlanError> {
    let target = target(&options.target)?;
    let program = lower_for(&options.run, &target)?;
    compile_lowered(options, &target, program)
}

/// Compiles a step [`lower_for`] built for `target` in a child process
/// without a network and gives the report.
fn compile_lowered(
    options: &PlanOptions,
    target: &Target,
    program: Lowered,
) -> Result<PlanReport, PlanError> {
    let outcome = child::compile_in_child(
        &options.axle_exe,
        target,
        &program.text,
        &program.compiler_options,
    )
    .map_err(|e| blame_options(e, target, &program))?;
    let memory_limit = target.config_memory_bytes();
    let (compiled, verdict, memory_limit) = match outcome {
        ChildOutcome::Compiled(c) => {
            let limit = c.memory_limit.or(memory_limit);
            let verdict = memory_verdict(&c, limit);
            (Some(c), verdict, limit)
        }
        ChildOutcome::Refused {
            message,
            memory_limit: limit,
        } => {
            if !is_out_of_memory(&message) {
                let error = PlanError::Compile {
                    target: target.name.clone(),
                    message,
                };
                return Err(blame_options(error, target, &program));
            }
            let verdict = Verdict::ShortBy {
                bytes: stated_shortfall(&message),
                compiler_message: Some(message),
            };
            (None, verdict, limit.or(memory_limit))
        }
    };
    Ok(PlanReport {
        experiment: program.experiment,
        modifiers: options.run.modifiers.clone(),
        overrides: options.run.overrides.clone(),
        batch_size: program.batch_size,
        seq_len: program.seq_len,
        target: target.name.clone(),
        mesh: program.mesh,
        mesh_modifiers: program.mesh_modifiers,
        mesh_rule: program.mesh_rule,
        compiler_options_rule: program.compiler_options_rule,
        compiler_options: program
            .compiler_options
            .iter()
            .map(ToString::to_string)
            .collect(),
        hosts: target.hosts,
        memory_limit,
        compiled,
        verdict,
        warnings: program.warnings,
    })
}

/// Fits or short by, comparing [`Compiled::planned_peak`] with `limit`.
pub fn memory_verdict(compiled: &Compiled, limit: Option<u64>) -> Verdict {
    let peak = compiled.planned_peak();
    match limit.map(|l| l as i64) {
        Some(l) if peak > l => Verdict::ShortBy {
            bytes: Some(peak - l),
            compiler_message: None,
        },
        Some(l) => Verdict::Fits { headroom: l - peak },
        None => Verdict::UnknownLimit,
    }
}

/// A compile error or crash whose message names one of a mesh rule's
/// compiler options as [`PlanError::CompilerOption`] naming the rule and
/// the option; other errors as they are (a crash naming no option stays a
/// [`PlanError::CompilerCrashed`] with the end of the compiler's stderr:
/// huge shapes crash libtpu whatever the options).
fn blame_options(error: PlanError, target: &Target, program: &Lowered) -> PlanError {
    let failed = matches!(
        error,
        PlanError::CompilerCrashed { .. } | PlanError::Compile { .. } | PlanError::Child { .. }
    );
    let Some(rule) = program.compiler_options_rule.as_ref() else {
        return error;
    };
    if !failed {
        return error;
    }
    let text = error.to_string();
    let named: Vec<String> = program
        .compiler_options
        .iter()
        .filter(|o| text.contains(&o.name))
        .map(ToString::to_string)
        .collect();
    if named.is_empty() {
        return error;
    }
    PlanError::CompilerOption {
        target: target.name.clone(),
        rule: rule.clone(),
        option: named.join(" "),
        source: Box::new(error),
    }
}

/// A train step lowered for a target.
pub(crate) struct Lowered {
    experiment: String,
    batch_size: usize,
    seq_len: usize,
    mesh: String,
    mesh_modifiers: Vec<String>,
    mesh_rule: Option<String>,
    compiler_options_rule: Option<String>,
    compiler_options: Vec<CompilerOption>,
    warnings: Vec<String>,
    text: String,
}

/// The experiment's train step as StableHLO for the target's devices.
pub(crate) fn lower_for(run: &RunOptions, target: &Target) -> Result<Lowered, PlanError> {
    let (config, choice) = run
        .resolve_for_devices(target.platform.name(), target.device_kind, target.devices)
        .map_err(|e| {
            let inferring = run.mesh.is_none() && e.to_string().contains("cannot infer the -1 axis");
            hint(
                e.into(),
                inferring,
                format!(
                    "the target's {} devices fit no default rule's mesh: give one with --mesh (e.g. --mesh fsdp={})",
                    target.devices, target.devices
                ),
            )
        })?;
    let mesh = choice.mesh;
    check_mesh_size(&mesh.to_string(), mesh.size(), target)?;
    let model = config.model.build().map_err(RunError::from)?;
    let shape = BatchShape {
        batch_size: config.input.batch_size,
        seq_len: config.input.seq_len,
    };
    if let Some(seq_len) = run.seq_len {
        check_seq_len_used(model.as_ref(), &config.model, &shape, seq_len)?;
    }
    let too_large = |what: String, dtype: DType, dims: &[usize]| PlanError::TooLarge {
        what,
        shape: format!("{dtype:?}{dims:?}"),
        max: i64::MAX,
        batch_size: shape.batch_size,
        seq_len: shape.seq_len,
    };
    for input in model.input_specs(&shape).map_err(RunError::from)? {
        if byte_size(input.dtype, &input.shape).is_none() {
            return Err(too_large(
                format!("input `{}`", input.name),
                input.dtype,
                &input.shape,
            ));
        }
    }
    let step = build_train_step(
        model.as_ref(),
        &config.learner,
        &shape,
        &mesh,
        &config.sharding,
    )
    .map_err(|e| {
        let batch = format!("dim 0 of size {} is not divisible", shape.batch_size);
        let unsplit = e.to_string().contains(&batch);
        hint(
            e.into(),
            unsplit,
            format!(
                "choose a --batch-size the mesh {mesh} splits (a multiple of its batch axes' product), or another --mesh"
            ),
        )
    })?;
    let text = step.function.to_stablehlo();
    if let Some((op, ty)) = first_too_large(step.function.graph()) {
        return Err(too_large(format!("op `{op}` result"), ty.dtype, &ty.dims));
    }
    Ok(Lowered {
        experiment: run
            .experiment
            .clone()
            .unwrap_or_else(|| crate::run::DEFAULT_EXPERIMENT.into()),
        batch_size: shape.batch_size,
        seq_len: shape.seq_len,
        mesh: mesh.to_string(),
        mesh_modifiers: choice.modifiers,
        mesh_rule: match choice.source {
            MeshSource::Rule { pattern, .. } => Some(pattern),
            MeshSource::Explicit => None,
        },
        compiler_options_rule: choice.compiler_options_rule,
        compiler_options: choice.compiler_options,
        warnings: unused_axes(&mesh.to_string(), &text)
            .into_iter()
            .map(|axis| {
                format!("mesh axis `{axis}` shards nothing: no logical axis maps to it, its devices hold copies")
            })
            .collect(),
        text,
    })
}

/// `error` with `hint` where `applies`, else as it is.
fn hint(error: PlanError, applies: bool, hint: String) -> PlanError {
    if applies {
        PlanError::Hint {
            source: Box::new(error),
            hint,
        }
    } else {
        error
    }
}

/// The mesh axes of `mesh` (`pipeline=4,fsdp=2`) that no sharding of the
/// StableHLO `text` names: they shard nothing (no logical rule maps a
/// dimension to them), so their devices hold copies.
pub fn unused_axes(mesh: &str, text: &str) -> Vec<String> {
    mesh.split(',')
        .filter_map(|axis| axis.split('=').next())
        .map(str::trim)
        .filter(|name| text.matches(&format!("\"{name}\"")).count() <= 1)
        .map(str::to_string)
        .collect()
}

/// Refuses `--seq-len` for a model whose inputs do not depend on the
/// sequence length (a ViT's sequence is its patches, an MLP has none): the
/// input specs at `seq_len` and `seq_len + 1` are the same.
///
/// Errors: [`PlanError::SeqLenUnused`] naming the flag and the model kind.
fn check_seq_len_used(
    model: &dyn axle_modules::Model,
    config: &axle_modules::ModelConfig,
    shape: &BatchShape,
    seq_len: usize,
) -> Result<(), PlanError> {
    let longer = BatchShape {
        seq_len: shape.seq_len.saturating_add(1),
        ..*shape
    };
    let specs = |s: &BatchShape| model.input_specs(s).map_err(RunError::from);
    if specs(shape)? != specs(&longer)? {
        return Ok(());
    }
    let kind = serde_json::to_value(config)
        .ok()
        .and_then(|v| v.get("kind")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    Err(PlanError::SeqLenUnused { seq_len, kind })
}

/// A tensor's size in bytes where it fits in i64 (XLA's shape sizes are
/// int64), computed with checked arithmetic; `None` beyond.
pub fn byte_size(dtype: DType, dims: &[usize]) -> Option<i64> {
    let bytes = dims
        .iter()
        .try_fold(dtype.size_bytes(), |n, d| n.checked_mul(*d))?;
    i64::try_from(bytes).ok()
}

/// The first op result, in `graph` or a region inside it, whose size in
/// bytes is beyond i64: the op's name and the result's type.
fn first_too_large(graph: &Graph) -> Option<(String, TensorType)> {
    for op in &graph.ops {
        for v in &op.results {
            let ty = graph.ty(*v);
            if byte_size(ty.dtype, &ty.dims).is_none() {
                return Some((op.kind.name(), ty.clone()));
            }
        }
        let regions: Vec<&Graph> = match &op.kind {
            OpKind::Scan { body, .. } => vec![&body.graph.0],
            OpKind::Remat { body, .. } => vec![&body.0],
            OpKind::While { cond, body, .. } => vec![&cond.0, &body.0],
            _ => vec![],
        };
        if let Some(found) = regions.into_iter().find_map(first_too_large) {
            return Some(found);
        }
    }
    None
}

/// Refuses a mesh of `size` devices on a target with another count: the
/// SPMD program is partitioned over exactly the mesh's devices, so a
/// smaller mesh would leave devices idle (and a plan of a different
/// machine), a larger one cannot be placed.
///
/// Errors: [`PlanError::MeshSize`] naming the mesh, its size and the
/// target's device count.
pub fn check_mesh_size(mesh: &str, size: usize, target: &Target) -> Result<(), PlanError> {
    if size == target.devices {
        return Ok(());
    }
    Err(PlanError::MeshSize {
        mesh: mesh.to_string(),
        size,
        target: target.name.clone(),
        devices: target.devices,
    })
}

/// Checks that the plan JSON can be written to `path` before compiling,
/// without changing anything: an existing file is opened for appending
/// (not truncated), a new one is tried as a temporary file beside it
/// (`.NAME.PID.tmp`) that is removed at once. So a plan that fails
/// later leaves an existing file as it was and creates none.
///
/// Errors: [`PlanError::Json`] naming the file.
pub fn check_json_writable(path: &Path) -> Result<(), PlanError> {
    let json_error = |e: std::io::Error| PlanError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if path.is_dir() {
        return Err(PlanError::Json {
            path: path.to_path_buf(),
            message: "is a directory".into(),
        });
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(json_error);
    }
    let temporary = temporary_path(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(json_error)?;
    std::fs::remove_file(&temporary).map_err(json_error)
}

/// The temporary file the plan JSON is written to before it is renamed
/// onto `path`: in the same directory (a rename within one file system
/// replaces the file atomically), hidden, named after `path` and this
/// process.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "plan.json".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Whether a compiler message is an out-of-memory verdict (XLA's
/// `RESOURCE_EXHAUSTED`, "Ran out of memory").
pub fn is_out_of_memory(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("out of memory") || lower.contains("resource_exhausted")
}

/// The shortfall an out-of-memory message states, in bytes: libtpu's
/// ("the total memory required for HLO temporaries (41.25G) exceeds
/// available HBM (15.75G)") gives the required and available sizes as its
/// last two parenthesised sizes, in XLA's `HumanReadableNumBytes` units
/// (K, M, G, T: powers of 1024). A lower bound: the sizes are those of the
/// temporaries alone, the arguments come on top. `None` without such sizes.
pub fn stated_shortfall(message: &str) -> Option<i64> {
    let sizes: Vec<f64> = message
        .split('(')
        .skip(1)
        .filter_map(|part| parse_size(part.split(')').next()?))
        .collect();
    match sizes.as_slice() {
        [.., required, available] if required > available => Some((required - available) as i64),
        _ => None,
    }
}

/// `41.25G` → bytes (binary units), `None` for other text.
fn parse_size(text: &str) -> Option<f64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let scale = match unit {
        'B' => 1.0,
        'K' => 1024.0,
        'M' => 1024.0 * 1024.0,
        'G' => GIB,
        'T' => GIB * 1024.0,
        _ => return None,
    };
    let number: f64 = text[..text.len() - 1]
        .trim_end_matches(['i', 'B'])
        .parse()
        .ok()?;
    Some(number * scale)
}

/// Writes the report as pretty JSON: to a temporary file beside `path`,
/// then renamed onto it, so `path` holds either its old content or the
/// whole report, never a part.
///
/// Errors: [`PlanError::Json`] naming the file.
pub fn write_json(report: &PlanReport, path: &Path) -> Result<(), PlanError> {
    let json_error = |message: String| PlanError::Json {
        path: path.to_path_buf(),
        message,
    };
    let text = serde_json::to_string_pretty(report).map_err(|e| json_error(e.to_string()))?;
    let temporary = temporary_path(path);
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            json_error(e.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_messages_give_the_shortfall() {
        // libtpu's message for llama2-7b, fsdp=16, batch 16, seq 4096 on
        // v5e:4x4 (docs/benchmarks.md): 41.25 GiB of temporaries, 15.75 GiB
        // of HBM: 25.5 GiB short.
        let message = "PJRT_Compile failed (RESOURCE_EXHAUSTED): Ran out of memory on HBM, the total memory required for HLO temporaries (41.25G) exceeds available HBM (15.75G). HLO module: train_step.";
        assert!(is_out_of_memory(message));
        assert_eq!(stated_shortfall(message), Some((25.5 * GIB) as i64));
        assert!(!is_out_of_memory("INVALID_ARGUMENT: bad program (3G)"));
        assert_eq!(
            stated_shortfall("RESOURCE_EXHAUSTED: no sizes (here)"),
            None
        );
        assert_eq!(parse_size("512M"), Some(512.0 * 1024.0 * 1024.0));
    }

    fn compiled(arguments: i64, outputs: i64, alias: i64, temporaries: i64, peak: i64) -> Compiled {
        Compiled {
            device_kind: "TPU v5 lite".into(),
            devices: 4,
            hosts: 1,
            host_devices: Default::default(),
            memory_limit: None,
            arguments,
            outputs,
            alias,
            temporaries,
            generated_code: 0,
            peak,
            flops: None,
            bytes_accessed: None,
            collectives: Default::default(),
            host_memory_instructions: 0,
            compile_seconds: 0.0,
        }
    }

    #[test]
    fn the_verdict_uses_the_larger_of_the_peak_and_the_buffer_sum() {
        // A plugin peak (5) below the temporaries (8): the buffer sum
        // 4 + 3 - 2 + 8 = 13 is used; against a limit of 10, short by 3.
        let c = compiled(4, 3, 2, 8, 5);
        assert_eq!(c.planned_peak(), 13);
        assert_eq!(
            memory_verdict(&c, Some(10)),
            Verdict::ShortBy {
                bytes: Some(3),
                compiler_message: None
            }
        );
        // A plugin peak above the sum stands.
        let c = compiled(4, 3, 2, 8, 20);
        assert_eq!(memory_verdict(&c, Some(30)), Verdict::Fits { headroom: 10 });
        assert_eq!(memory_verdict(&c, None), Verdict::UnknownLimit);
    }

    #[test]
    fn a_mesh_must_use_exactly_the_targets_devices() {
        let v5e = target("tpu-v5e:2x2").unwrap();
        assert!(check_mesh_size("data=2,fsdp=2", 4, &v5e).is_ok());
        for (mesh, size) in [("fsdp=2", 2), ("fsdp=8", 8), ("data=3", 3)] {
            let err = check_mesh_size(mesh, size, &v5e).unwrap_err().to_string();
            assert!(
                err.contains(mesh)
                    && err.contains(&format!("{size} devices"))
                    && err.contains("tpu-v5e:2x2 has 4"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_compile_error_with_rule_options_names_the_rule_and_the_option() {
        let program = Lowered {
            experiment: "llama-tiny".into(),
            batch_size: 8,
            seq_len: 128,
            mesh: "fsdp=4".into(),
            mesh_modifiers: vec![],
            mesh_rule: Some("tpu-v6e-*".into()),
            compiler_options_rule: Some("tpu-v6e-*".into()),
            compiler_options: vec![
                CompilerOption::new("tpu-v6e-*", "xla_tpu_a", "true").unwrap(),
                CompilerOption::new("tpu-v6e-*", "xla_tpu_b", "1").unwrap(),
            ],
            warnings: vec![],
            text: String::new(),
        };
        let v6e = target("tpu-v6e:2x2").unwrap();
        // libtpu's message for an unknown option (measured).
        let compile = |message: &str| PlanError::Compile {
            target: v6e.name.clone(),
            message: message.into(),
        };
        let err = blame_options(
            compile("PJRT_Compile failed (INVALID_ARGUMENT): No such compile option: 'xla_tpu_b'"),
            &v6e,
            &program,
        )
        .to_string();
        assert!(
            err.contains("mesh rule `tpu-v6e-*`")
                && err.contains("suspect option: xla_tpu_b=1\n")
                && err.contains("No such compile option"),
            "{err}"
        );
        // A crash naming no option is a compiler crash with its stderr
        // (libtpu's for --seq-len 99999999999), the options not blamed.
        let crash = PlanError::CompilerCrashed {
            target: v6e.name.clone(),
            signal: 6,
            stderr: "Check failed: overflow in static extent".into(),
        };
        let err = blame_options(crash, &v6e, &program).to_string();
        assert!(
            err.contains("compiler crashed") && err.contains("overflow in static extent"),
            "{err}"
        );
        assert!(
            !err.contains("xla_tpu_a") && !err.contains("mesh rule"),
            "{err}"
        );
        // A crash naming an option blames it.
        let crash = PlanError::CompilerCrashed {
            target: v6e.name.clone(),
            signal: 6,
            stderr: "bad flag xla_tpu_a".into(),
        };
        let err = blame_options(crash, &v6e, &program).to_string();
        assert!(err.contains("suspect option: xla_tpu_a=true\n"), "{err}");
        // A compile error naming no option is not blamed on them (libtpu's
        // lockfile error, for one).
        assert!(matches!(
            blame_options(compile("libtpu multi-process lockfile"), &v6e, &program),
            PlanError::Compile { .. }
        ));
        // Without rule options an error stays as it is.
        let plain = Lowered {
            compiler_options: vec![],
            ..program
        };
        assert!(matches!(
            blame_options(compile("bad"), &v6e, &plain),
            PlanError::Compile { .. }
        ));
    }

    #[test]
    fn a_mesh_axis_no_sharding_names_is_reported() {
        let text = r#"sdy.mesh @mesh = <["pipeline"=4, "fsdp"=1]> %a {sdy.sharding = #sdy.sharding<@mesh, [{"fsdp"}]>}"#;
        assert_eq!(unused_axes("pipeline=4,fsdp=1", text), ["pipeline"]);
    }

    #[test]
    fn byte_sizes_beyond_i64_are_refused_with_checked_arithmetic() {
        assert_eq!(byte_size(DType::F32, &[8, 128]), Some(4096));
        // 2^31 * 2^31 * 4 bytes = 2^64: wraps to 0 in unchecked usize
        // arithmetic, refused here.
        assert_eq!(byte_size(DType::F32, &[1 << 31, 1 << 31]), None);
        // 2^61 f32 elements are 2^63 bytes, one beyond i64::MAX.
        assert_eq!(byte_size(DType::F32, &[1 << 61]), None);
        assert_eq!(byte_size(DType::F32, &[(1 << 61) - 1]), Some(i64::MAX - 3));
    }

    #[test]
    fn checking_the_json_path_changes_no_file_and_writing_replaces_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("old.json");
        std::fs::write(&existing, "previous plan").unwrap();
        check_json_writable(&existing).unwrap();
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "previous plan");
        let new = dir.path().join("new.json");
        check_json_writable(&new).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["old.json"], "the check created no file");
        let report = PlanReport {
            experiment: "llama-tiny".into(),
            modifiers: vec![],
            overrides: vec![],
            batch_size: 8,
            seq_len: 128,
            target: "tpu-v5e:2x2".into(),
            mesh: "fsdp=4".into(),
            mesh_modifiers: vec![],
            mesh_rule: None,
            compiler_options_rule: None,
            compiler_options: vec![],
            hosts: 1,
            memory_limit: None,
            compiled: None,
            verdict: Verdict::UnknownLimit,
            warnings: vec![],
        };
        write_json(&report, &existing).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&existing).unwrap()).unwrap();
        assert_eq!(back["mesh"], "fsdp=4");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unwritable_json_path_is_named_as_the_plan_json() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_json_writable(&dir.path().join("plan.json")).is_ok());
        for bad in [
            dir.path().join("missing/plan.json"),
            dir.path().to_path_buf(),
        ] {
            let err = check_json_writable(&bad).unwrap_err().to_string();
            assert!(
                err.contains("plan JSON") && err.contains(&bad.display().to_string()),
                "{err}"
            );
        }
    }
}
