//! `axle bench`: how fast a model's training step traces, emits, compiles
//! and runs on each of several meshes of one plugin, with an f32 matmul on
//! the same plugin as the yardstick for achieved FLOP/s, and XLA's memory
//! per device. Several rematerialization policies can be compared side by
//! side (`--remat`, one row per policy and mesh). The report is JSON (for
//! scripts such as `benches/jax_reference/`) and a readable table.

use crate::checkpoint::{CheckpointError, Checkpointer, Meta};
use crate::data::{HostArray, HostBatch, Loader, Split};
use crate::metrics::peak_flops;
use crate::run::{RunError, RunOptions, Setup};
use crate::train_step::{StepError, build_train_step};
use crate::trainer::{TrainError, Trainer, compile_options};
use axle_compiler::{DType, FunctionBuilder};
use axle_modules::{INPUT_IDS, TARGET_LABELS, count_params};
use axle_partition::Mesh;
use axle_runtime::{Buffer, Client, CompileOptions, Executable};
use ndarray::{Array2, Array3, Axis};
use ndarray_npy::WriteNpyExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Tracing and emission are repeated this many times and the median kept:
/// each takes milliseconds, so one run would mostly measure the scheduler.
pub const TRACE_REPEATS: usize = 5;

/// What to benchmark: a model (with the run options that define it), the
/// meshes to run it on, and how many steps to time.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Model, overrides, plugin, device count, batch shape, seed and peak
    /// FLOP/s per device (`mesh`, `data` and the checkpoint options are
    /// not used).
    pub run: RunOptions,
    /// Meshes such as `data=1` or `fsdp=4`, benchmarked in this order.
    pub meshes: Vec<String>,
    /// Remat policies to compare (`none`, `full`, `dots`, `names:A,B`,
    /// `offload:A,B`): each is applied as a last `remat=POLICY` modifier
    /// and benchmarked on every mesh. Empty: the model as configured.
    pub remat: Vec<String>,
    /// Timed steps per mesh.
    pub steps: usize,
    /// Untimed steps before them (the first step pays one-off costs).
    pub warmup: usize,
    /// Side of the square f32 matmul reference (0: none).
    pub matmul_size: usize,
    /// Where to write the initial parameters, the batches and the argument
    /// shardings, so another system can run the same computation.
    pub export_dir: Option<PathBuf>,
}

/// A benchmark failed; the message names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model, plugin or mesh could not be set up.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The step could not be built.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The step could not be compiled or run.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The plugin failed outside the trainer (the matmul reference).
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// A mesh text is wrong or does not fit the client.
    #[error("mesh `{mesh}`: {message}")]
    Mesh {
        /// The mesh as given.
        mesh: String,
        /// What is wrong with it.
        message: String,
    },
    /// Nothing to time.
    #[error("--steps must be at least 1 and at least one --mesh is needed")]
    Empty,
    /// The export could not be written.
    #[error("export to {path}: {message}")]
    Export {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The initial checkpoint could not be written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Order statistics of a list of durations, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// 10th percentile (nearest rank).
    pub p10: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
}

impl Spread {
    /// The statistics of `seconds`, or `None` when it is empty.
    pub fn of(seconds: &[f64]) -> Option<Spread> {
        if seconds.is_empty() {
            return None;
        }
        let mut s = seconds.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: s[0],
            max: s[n - 1],
            p10: rank(0.1),
            p90: rank(0.9),
        })
    }
}

/// XLA's per-device memory estimate of a compiled step, in bytes
/// (`PJRT_Executable_GetCompiledMemoryStats`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Arguments (parameters, optimizer state, batch).
    pub arguments: i64,
    /// Outputs.
    pub outputs: i64,
    /// Output bytes that reuse donated arguments.
    pub alias: i64,
    /// Temporaries.
    pub temp: i64,
    /// Generated code.
    pub generated_code: i64,
    /// Peak of live buffers: arguments + outputs - alias + temp.
    pub peak: i64,
}

/// The figures of one mesh.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeshReport {
    /// The mesh, sizes resolved (`fsdp=4`).
    pub mesh: String,
    /// The remat policy of this row (`None` unless policies are compared).
    pub remat: Option<String>,
    /// Devices it spans.
    pub devices: usize,
    /// Seconds to trace forward, loss, gradients and update
    /// ([`build_train_step`]), median of [`TRACE_REPEATS`].
    pub trace_s: f64,
    /// Seconds to print the StableHLO text, median of [`TRACE_REPEATS`].
    pub emit_s: f64,
    /// Bytes of StableHLO text.
    pub stablehlo_bytes: usize,
    /// Seconds the plugin took to compile the text.
    pub compile_s: f64,
    /// Step time over the timed steps (host to host: batch in, scalars out).
    pub step_s: Spread,
    /// Tokens per second at the median step time.
    pub tokens_per_s: f64,
    /// Model FLOP/s at the median step time.
    pub achieved_flops: f64,
    /// Achieved FLOP/s over the peak of the devices, when the peak is known.
    pub mfu: Option<f64>,
    /// FLOP/s of the matmul reference timed right after each of this
    /// mesh's timed steps (median), so both see the same machine load.
    pub matmul_flops: Option<f64>,
    /// Achieved FLOP/s over `matmul_flops`.
    pub vs_matmul: Option<f64>,
    /// XLA's memory estimate, where the plugin reports it.
    pub memory: Option<Memory>,
    /// Loss of every step, warm-up included, in order.
    pub losses: Vec<f32>,
}

/// The f32 matmul reference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatmulReport {
    /// Side of the square matrices.
    pub size: usize,
    /// Time of one matmul, over every run of the benchmark.
    pub seconds: Spread,
    /// `2 n^3` over the median time.
    pub flops: f64,
}

/// Everything `axle bench` measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// Model name.
    pub model: String,
    /// Config modifiers applied (`--modifier`; a row's `--remat` policy
    /// comes after them).
    pub modifiers: Vec<String>,
    /// Config overrides applied.
    pub overrides: Vec<String>,
    /// The plugin file.
    pub plugin: String,
    /// Platform name and version.
    pub platform: String,
    /// Kind of the first device.
    pub device_kind: String,
    /// Parameters of the model.
    pub params: u64,
    /// Batch size.
    pub batch_size: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Model FLOPs of one training step (the model's
    /// [`axle_modules::Model::train_flops`]).
    pub flops_per_step: f64,
    /// Peak FLOP/s of one device used for MFU, if known.
    pub peak_flops_per_device: Option<f64>,
    /// Warm-up and timed steps per mesh.
    pub warmup: usize,
    /// Timed steps per mesh.
    pub steps: usize,
    /// `/proc/loadavg` when the run started and ended.
    pub load_average: [String; 2],
    /// One entry per mesh, in the order asked.
    pub meshes: Vec<MeshReport>,
    /// The matmul reference, if asked for.
    pub matmul: Option<MatmulReport>,
}

/// Runs the benchmark: each remat policy (or the model as configured) on
/// each mesh in turn, with the matmul reference timed after each timed step.
pub fn run_bench(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    if options.steps == 0 || options.meshes.is_empty() {
        return Err(BenchError::Empty);
    }
    let load_before = load_average();
    let variant = |remat: Option<&String>| {
        let mut run = RunOptions {
            mesh: Some(options.meshes[0].clone()),
            ..options.run.clone()
        };
        run.modifiers.extend(remat.map(|p| format!("remat={p}")));
        run
    };
    let setup = variant(options.remat.first()).setup()?;
    let client = &setup.client;
    let devices = client.addressable_devices()?;
    let device_kind = devices.first().map_or(String::new(), |d| d.kind.clone());
    let specs = setup.model.param_specs();
    let params = count_params(&specs);
    let (batch, seq) = (setup.shape.batch_size, setup.shape.seq_len);
    let flops_per_step = setup.model.train_flops(&setup.shape);
    let peak = options
        .run
        .peak_flops
        .or_else(|| peak_flops(&device_kind, "f32"));
    let meshes: Vec<Mesh> = options
        .meshes
        .iter()
        .map(|text| {
            Mesh::parse(text, devices.len()).map_err(|e| BenchError::Mesh {
                mesh: text.clone(),
                message: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    let probe = match options.matmul_size {
        0 => None,
        n => Some(MatmulProbe::new(client, n)?),
    };
    let total = options.warmup + options.steps;
    let mut loader = Loader::new(
        setup.source.as_ref(),
        Split::Train,
        batch,
        options.run.seed(),
    );
    let batches: Vec<HostBatch> = (0..total).map(|_| loader.next_batch()).collect();
    let mut bench = MeshBench {
        options,
        batches: &batches,
        probe: probe.as_ref(),
        matmul_times: Vec::new(),
        flops_per_step,
        peak,
        tokens: batch * seq,
        exported: false,
    };
    let mut reports = Vec::new();
    let policies: Vec<Option<&String>> = match options.remat.len() {
        0 => vec![None],
        _ => options.remat.iter().map(Some).collect(),
    };
    for (k, policy) in policies.into_iter().enumerate() {
        let other;
        let current = if k == 0 {
            &setup
        } else {
            other = variant(policy).setup()?;
            &other
        };
        for mesh in &meshes {
            let mut report = bench.mesh(current, mesh)?;
            report.remat = policy.cloned();
            reports.push(report);
        }
    }
    let matmul_times = bench.matmul_times;
    Ok(BenchReport {
        model: setup.name.clone(),
        modifiers: options.run.modifiers.clone(),
        overrides: options.run.overrides.clone(),
        plugin: client.plugin().path().display().to_string(),
        platform: format!("{} {}", client.platform_name()?, client.platform_version()?),
        device_kind,
        params,
        batch_size: batch,
        seq_len: seq,
        flops_per_step,
        peak_flops_per_device: peak,
        warmup: options.warmup,
        steps: options.steps,
        load_average: [load_before, load_average()],
        meshes: reports,
        matmul: probe.and_then(|p| p.report(&matmul_times)),
    })
}

/// What every row of one benchmark shares: the batches, the matmul
/// reference and the model's FLOPs.
struct MeshBench<'a> {
    options: &'a BenchOptions,
    batches: &'a [HostBatch],
    probe: Option<&'a MatmulProbe>,
    matmul_times: Vec<f64>,
    flops_per_step: f64,
    peak: Option<f64>,
    tokens: usize,
    exported: bool,
}

impl MeshBench<'_> {
    /// Traces, emits, compiles and runs the step of `setup`'s model on
    /// `mesh`; the row's `remat` is left `None`.
    fn mesh(&mut self, setup: &Setup, mesh: &Mesh) -> Result<MeshReport, BenchError> {
        let options = self.options;
        let client = &setup.client;
        let (mut traces, mut emits) = (Vec::new(), Vec::new());
        let mut built = None;
        for _ in 0..TRACE_REPEATS {
            let start = Instant::now();
            let step = build_train_step(
                setup.model.as_ref(),
                &setup.learner,
                &setup.shape,
                mesh,
                &setup.rules,
            )?;
            traces.push(start.elapsed().as_secs_f64());
            let start = Instant::now();
            let text = step.function.to_stablehlo();
            emits.push(start.elapsed().as_secs_f64());
            built = Some((step, text));
        }
        let (step, text) = built.expect("traced at least once");
        let trace_s = Spread::of(&traces).ok_or(BenchError::Empty)?.median;
        let emit_s = Spread::of(&emits).ok_or(BenchError::Empty)?.median;
        let start = Instant::now();
        let train = client.compile(&text, &compile_options(mesh))?;
        let compile_s = start.elapsed().as_secs_f64();
        let memory = train.memory_stats()?.map(|m| Memory {
            arguments: m.arguments,
            outputs: m.outputs,
            alias: m.alias,
            temp: m.temp,
            generated_code: m.generated_code,
            peak: m.arguments + m.outputs - m.alias + m.temp,
        });
        let mut trainer = Trainer::from_compiled(
            client,
            setup.model.as_ref(),
            step,
            train,
            options.run.seed(),
        )?;
        if let Some(dir) = &options.export_dir {
            export(
                dir,
                &trainer,
                self.batches,
                !self.exported,
                options.run.seed(),
            )?;
            self.exported = true;
        }
        let mut losses = Vec::new();
        let mut times = Vec::new();
        let mut matmuls = Vec::new();
        for (n, host) in self.batches.iter().enumerate() {
            let start = Instant::now();
            let metrics = trainer.step(host, options.run.seed())?;
            if n >= options.warmup {
                times.push(start.elapsed().as_secs_f64());
                if let Some(probe) = self.probe {
                    matmuls.push(probe.time()?);
                }
            }
            losses.push(metrics.loss);
        }
        let step_s = Spread::of(&times).ok_or(BenchError::Empty)?;
        let achieved_flops = self.flops_per_step / step_s.median;
        let matmul_flops = self.probe.and_then(|p| p.report(&matmuls)).map(|m| m.flops);
        self.matmul_times.extend(matmuls);
        Ok(MeshReport {
            mesh: mesh.to_string(),
            remat: None,
            devices: mesh.size(),
            trace_s,
            emit_s,
            stablehlo_bytes: text.len(),
            compile_s,
            tokens_per_s: self.tokens as f64 / step_s.median,
            achieved_flops,
            mfu: self.peak.map(|p| achieved_flops / (p * mesh.size() as f64)),
            matmul_flops,
            vs_matmul: matmul_flops.map(|m| achieved_flops / m),
            step_s,
            memory,
            losses,
        })
    }
}

/// An `n x n` f32 matmul compiled for the client's first device, with its
/// inputs already there: the yardstick for achieved FLOP/s.
pub struct MatmulProbe {
    size: usize,
    exe: Executable,
    x: Buffer,
    y: Buffer,
}

impl MatmulProbe {
    /// Compiles the matmul, places its inputs and runs it twice untimed.
    pub fn new(client: &Client, n: usize) -> Result<MatmulProbe, BenchError> {
        let b = FunctionBuilder::new("matmul");
        let x = b.param("x", DType::F32, &[n, n]);
        let y = b.param("y", DType::F32, &[n, n]);
        let function = b.build(&[("xy", &x.matmul(&y))]).map_err(StepError::from)?;
        let exe = client.compile(&function.to_stablehlo(), &CompileOptions::single_device())?;
        let values: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.125).collect();
        let probe = MatmulProbe {
            size: n,
            exe,
            x: client.buffer_from_slice(&values, &[n, n], 0)?,
            y: client.buffer_from_slice(&values, &[n, n], 0)?,
        };
        probe.time()?;
        probe.time()?;
        Ok(probe)
    }

    /// Seconds of one matmul, until its result is ready.
    pub fn time(&self) -> Result<f64, BenchError> {
        let start = Instant::now();
        let out = self.exe.execute_one(&[&self.x, &self.y])?;
        out[0].ready()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// The report of these timings, `None` when there are none.
    pub fn report(&self, seconds: &[f64]) -> Option<MatmulReport> {
        let seconds = Spread::of(seconds)?;
        Some(MatmulReport {
            size: self.size,
            flops: 2.0 * (self.size as f64).powi(3) / seconds.median,
            seconds,
        })
    }
}

/// Writes what another system needs to run the same computation: the
/// initial parameters as an axle checkpoint (`step_*/params.safetensors`)
/// and the batches (`batches.npy`, int32 `[steps, batch, seq + 1]`) when
/// `tensors`, and each argument's sharding on the trainer's mesh
/// (`shardings/<mesh>.json`: mesh axes per dimension).
fn export(
    dir: &Path,
    trainer: &Trainer,
    batches: &[HostBatch],
    tensors: bool,
    seed: u64,
) -> Result<(), BenchError> {
    let error = |path: &Path, e: &dyn std::fmt::Display| BenchError::Export {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mesh = &trainer.train_step().mesh;
    let path = dir.join("shardings");
    std::fs::create_dir_all(&path).map_err(|e| error(&path, &e))?;
    let shardings: BTreeMap<&str, Vec<&[String]>> = trainer
        .train_step()
        .args
        .iter()
        .map(|a| {
            let dims = a.partition.dims().iter().map(|d| d.axes()).collect();
            (a.name.as_str(), dims)
        })
        .collect();
    let path = path.join(format!("{mesh}.json"));
    let json = serde_json::json!({ "mesh": mesh.to_string(), "args": shardings });
    std::fs::write(&path, json.to_string()).map_err(|e| error(&path, &e))?;
    if !tensors {
        return Ok(());
    }
    let meta = Meta {
        input_position: 0,
        rng_state: seed,
        run: BTreeMap::from([("exported_by".to_string(), "axle bench".to_string())]),
    };
    Checkpointer::new(dir, 1).save(&trainer.checkpoint(meta)?)?;
    let tokens: Vec<Array2<i32>> = batches
        .iter()
        .map(token_rows)
        .collect::<Option<_>>()
        .ok_or_else(|| {
            error(
                dir,
                &"only causal LMs (input_ids, target_labels) export batches",
            )
        })?;
    let views: Vec<_> = tokens.iter().map(|b| b.view()).collect();
    let stacked: Array3<i32> = ndarray::stack(Axis(0), &views).map_err(|e| error(dir, &e))?;
    let path = dir.join("batches.npy");
    let file = std::fs::File::create(&path).map_err(|e| error(&path, &e))?;
    stacked.write_npy(file).map_err(|e| error(&path, &e))
}

/// The `[batch, seq + 1]` token rows of a causal-LM batch: the inputs and
/// the last target of each row.
fn token_rows(batch: &HostBatch) -> Option<Array2<i32>> {
    let (Some(HostArray::I32(ids)), Some(HostArray::I32(labels))) =
        (batch.get(INPUT_IDS), batch.get(TARGET_LABELS))
    else {
        return None;
    };
    let ids = ids.view().into_dimensionality::<ndarray::Ix2>().ok()?;
    let labels = labels.view().into_dimensionality::<ndarray::Ix2>().ok()?;
    let last = labels.slice(ndarray::s![.., -1..]);
    ndarray::concatenate(Axis(1), &[ids, last]).ok()
}

/// The system's load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "unknown".to_string(), |s| s.trim().to_string())
}

/// The report as a text table, one row per mesh, with the run's context.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = format!(
        "{} ({} params, batch {} x seq {}, {:.3} GFLOP/step) on {} [{}]\n\
         plugin {}\nwarm-up {} + {} timed steps; load average before: {}, after: {}\n",
        report.model,
        report.params,
        report.batch_size,
        report.seq_len,
        report.flops_per_step / 1e9,
        report.platform,
        report.device_kind,
        report.plugin,
        report.warmup,
        report.steps,
        report.load_average[0],
        report.load_average[1],
    );
    if !report.modifiers.is_empty() || !report.overrides.is_empty() {
        out += &format!(
            "modifiers: {}; overrides: {}\n",
            list_or_none(&report.modifiers),
            list_or_none(&report.overrides)
        );
    }
    if let Some(m) = &report.matmul {
        out += &format!(
            "f32 matmul {0}x{0} after each timed step: median {1:.4} s (min {2:.4}, max {3:.4}), {4:.2} GFLOP/s\n",
            m.size,
            m.seconds.median,
            m.seconds.min,
            m.seconds.max,
            m.flops / 1e9
        );
    }
    let label = |m: &MeshReport| match &m.remat {
        Some(policy) => format!("{} remat={policy}", m.mesh),
        None => m.mesh.clone(),
    };
    let width = report
        .meshes
        .iter()
        .map(|m| label(m).len())
        .fold(16, usize::max);
    out += &format!(
        "{:<width$} {:>8} {:>8} {:>9} {:>9} {:>15} {:>9} {:>8} {:>10} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9}\n",
        "mesh",
        "trace s",
        "emit s",
        "compile s",
        "step s",
        "step min/max",
        "tok/s",
        "GFLOP/s",
        "mm GFLOP/s",
        "/matmul",
        "MFU",
        "args MiB",
        "out MiB",
        "temp MiB",
        "peak MiB"
    );
    let optional = |v: Option<f64>, scale: f64, digits: usize| {
        v.map_or("-".to_string(), |v| format!("{:.*}", digits, v * scale))
    };
    let mib = |m: &MeshReport, f: fn(&Memory) -> i64| {
        optional(m.memory.as_ref().map(|x| f(x) as f64), 1.0 / 1048576.0, 1)
    };
    for m in &report.meshes {
        out += &format!(
            "{:<width$} {:>8.4} {:>8.4} {:>9.2} {:>9.4} {:>15} {:>9.0} {:>8.2} {:>10} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9}\n",
            label(m),
            m.trace_s,
            m.emit_s,
            m.compile_s,
            m.step_s.median,
            format!("{:.3}/{:.3}", m.step_s.min, m.step_s.max),
            m.tokens_per_s,
            m.achieved_flops / 1e9,
            optional(m.matmul_flops, 1e-9, 2),
            m.vs_matmul
                .map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0)),
            optional(m.mfu, 100.0, 1),
            mib(m, |x| x.arguments),
            mib(m, |x| x.outputs),
            mib(m, |x| x.temp),
            mib(m, |x| x.peak),
        );
    }
    out
}

/// `a, b` or `none`.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn spread_of_known_lists() {
        let s = Spread::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert_eq!((s.p10, s.p90), (1.0, 5.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Spread::of(&ten).unwrap();
        assert_eq!((s.median, s.p10, s.p90), (5.5, 1.0, 9.0));
        assert!(Spread::of(&[]).is_none());
    }
}
