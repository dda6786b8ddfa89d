//! The `axle` command: list devices, lower a train step to StableHLO, train,
//! evaluate, benchmark and plot.

use axle::bench::{BenchOptions, render_table, run_bench};
use axle::metrics::Record;
use axle::run::{RunOptions, evaluate, train};
use axle::train_step::build_train_step;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Train sharded models on XLA, AXLearn-style.
#[derive(Parser)]
#[command(name = "axle", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the plugin's platform, version and devices.
    Devices {
        /// PJRT plugin: cpu, cuda, tpu or a path to a plugin .so.
        #[arg(long, default_value = "cpu")]
        plugin: String,
        /// Virtual CPU devices.
        #[arg(long)]
        cpu_devices: Option<usize>,
    },
    /// Write the training step's StableHLO for a model and mesh.
    Lower {
        #[command(flatten)]
        model: ModelArgs,
        /// Output file (stdout when absent).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Train a model.
    Train {
        #[command(flatten)]
        model: ModelArgs,
        /// Train until this many steps are done.
        #[arg(long, default_value_t = 300)]
        steps: u64,
        /// Directory for checkpoints (none written when absent).
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        /// Save a checkpoint every N steps (and at the end).
        #[arg(long, default_value_t = 100)]
        checkpoint_every: u64,
        /// Checkpoints to keep.
        #[arg(long, default_value_t = 3)]
        keep: usize,
        /// Continue from the newest checkpoint in --checkpoint-dir.
        #[arg(long)]
        resume: bool,
        /// Evaluate every N steps (0: never).
        #[arg(long, default_value_t = 50)]
        eval_every: u64,
        /// Batches per evaluation.
        #[arg(long, default_value_t = 4)]
        eval_batches: u64,
        /// Metrics file (JSON lines).
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// Peak FLOP/s of one device, for MFU (known GPUs/TPUs have a table).
        #[arg(long)]
        peak_flops: Option<f64>,
    },
    /// Evaluate the newest checkpoint on held-out data.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Directory holding the checkpoints.
        #[arg(long)]
        checkpoint_dir: PathBuf,
        /// Batches to evaluate.
        #[arg(long, default_value_t = 8)]
        eval_batches: u64,
    },
    /// Time tracing, emission, compilation and steps of a model on meshes.
    Bench {
        #[command(flatten)]
        bench: BenchArgs,
    },
    /// Plot loss curves from metrics files into a PNG.
    Plot {
        /// Metrics files (JSON lines written by `axle train --metrics`).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output PNG.
        #[arg(long, short, default_value = "loss.png")]
        out: PathBuf,
    },
}

/// Options of `axle bench`.
#[derive(Args)]
struct BenchArgs {
    /// Registered model: llama-tiny, gpt2-tiny, llama-small, llama2-7b, llama2-70b.
    #[arg(long, default_value = "llama-tiny")]
    model: String,
    /// Config override path=value, repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
    /// Mesh to benchmark, repeatable (e.g. --mesh data=1 --mesh fsdp=4).
    #[arg(long = "mesh", default_value = "data=1")]
    meshes: Vec<String>,
    /// PJRT plugin: cpu, cuda, tpu or a path to a plugin .so.
    #[arg(long, default_value = "cpu")]
    plugin: String,
    /// Virtual CPU devices (cpu_device_count).
    #[arg(long)]
    cpu_devices: Option<usize>,
    /// Batch size (the model's registered one when absent).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Sequence length (the model's registered one when absent).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Seed of initialisation and data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Timed steps per mesh.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps per mesh.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Peak FLOP/s of one device, for MFU (known GPUs have a table).
    #[arg(long)]
    peak_flops: Option<f64>,
    /// Side of the f32 matmul reference (0: skip it).
    #[arg(long, default_value_t = 2048)]
    matmul: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write initial parameters, batches and shardings here (for the JAX reference).
    #[arg(long)]
    export: Option<PathBuf>,
}

/// Options shared by the commands that build a model.
#[derive(Args)]
struct ModelArgs {
    /// Registered model: llama-tiny, gpt2-tiny, llama-small, llama2-7b, llama2-70b.
    #[arg(long, default_value = "llama-tiny")]
    model: String,
    /// Config override path=value, repeatable (e.g. decoder.transformer.num_layers=2,
    /// learner.schedule.lr=3e-3).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
    /// Mesh such as data=2,fsdp=4 (-1 infers one size); mesh rules choose when absent.
    #[arg(long)]
    mesh: Option<String>,
    /// PJRT plugin: cpu, cuda, tpu or a path to a plugin .so.
    #[arg(long, default_value = "cpu")]
    plugin: String,
    /// Virtual CPU devices (cpu_device_count).
    #[arg(long)]
    cpu_devices: Option<usize>,
    /// Data: .txt (bytes), .bin (uint16 tokens) or .npy [N, seq+1]; synthetic when absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Batch size (the model's registered one when absent).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Sequence length (the model's registered one when absent).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Seed of initialisation, data order and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ModelArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            model: self.model.clone(),
            overrides: self.overrides.clone(),
            mesh: self.mesh.clone(),
            plugin: self.plugin.clone(),
            cpu_devices: self.cpu_devices,
            data: self.data.clone(),
            batch_size: self.batch_size,
            seq_len: self.seq_len,
            seed: self.seed,
            ..RunOptions::default()
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Devices {
            plugin,
            cpu_devices,
        } => {
            let options = RunOptions {
                plugin,
                cpu_devices,
                ..RunOptions::default()
            };
            let client = options.client()?;
            println!("plugin:   {}", client.plugin().path().display());
            let (major, minor) = client.plugin().api_version();
            println!("api:      {major}.{minor}");
            println!(
                "platform: {} {}",
                client.platform_name()?,
                client.platform_version()?
            );
            for d in client.devices()? {
                println!(
                    "device {}: {} (process {}, {})",
                    d.id, d.kind, d.process_index, d.description
                );
            }
        }
        Command::Lower { model, out } => {
            let setup = model.options().setup()?;
            let step = build_train_step(
                &setup.model,
                &setup.learner,
                setup.batch_size,
                setup.seq_len,
                &setup.mesh,
            )?;
            let text = step.function.to_stablehlo();
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                None => print!("{text}"),
            }
        }
        Command::Train {
            model,
            steps,
            checkpoint_dir,
            checkpoint_every,
            keep,
            resume,
            eval_every,
            eval_batches,
            metrics,
            peak_flops,
        } => {
            let options = RunOptions {
                steps,
                checkpoint_dir,
                checkpoint_every,
                keep,
                resume,
                eval_every,
                eval_batches,
                metrics,
                peak_flops,
                ..model.options()
            };
            eprintln!(
                "training {} for {} steps (compiling the step first)",
                options.model, options.steps
            );
            let bar = progress_bar(steps);
            let summary = train(&options, |record| report(&bar, record))?;
            bar.finish_and_clear();
            let last = summary.losses.last().map_or(f32::NAN, |l| l.1);
            println!(
                "done: {} steps on mesh {}, final loss {last:.4}",
                summary.steps_done, summary.mesh
            );
            if let Some((step, loss)) = summary.eval_losses.last() {
                println!("eval loss {loss:.4} after step {step}");
            }
        }
        Command::Eval {
            model,
            checkpoint_dir,
            eval_batches,
        } => {
            let options = RunOptions {
                checkpoint_dir: Some(checkpoint_dir),
                eval_batches,
                ..model.options()
            };
            let (loss, dir) = evaluate(&options)?;
            println!(
                "eval loss {loss:.4} ({} batches, checkpoint {})",
                eval_batches.max(1),
                dir.display()
            );
        }
        Command::Bench { bench } => {
            let options = BenchOptions {
                run: RunOptions {
                    model: bench.model,
                    overrides: bench.overrides,
                    plugin: bench.plugin,
                    cpu_devices: bench.cpu_devices,
                    batch_size: bench.batch_size,
                    seq_len: bench.seq_len,
                    seed: bench.seed,
                    peak_flops: bench.peak_flops,
                    ..RunOptions::default()
                },
                meshes: bench.meshes,
                steps: bench.steps,
                warmup: bench.warmup,
                matmul_size: bench.matmul,
                export_dir: bench.export,
            };
            let report = run_bench(&options)?;
            print!("{}", render_table(&report));
            if let Some(path) = bench.json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
        Command::Plot { runs, out } => {
            axle::plot::plot_losses(&runs, &out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

/// A progress bar on a terminal; hidden otherwise (plain lines are printed).
fn progress_bar(steps: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed} < {eta}]")
            .expect("valid template"),
    );
    bar
}

fn report(bar: &ProgressBar, record: &Record) {
    let line = match record {
        Record::Train {
            step,
            loss,
            grad_norm,
            step_time_s,
            tokens_per_s,
            ..
        } => {
            bar.set_position(*step);
            bar.set_message(format!("loss {loss:.4}"));
            format!(
                "step {step:>5}  loss {loss:.4}  grad_norm {grad_norm:.3}  {step_time_s:.3} s/step  {tokens_per_s:.0} tok/s"
            )
        }
        Record::Eval { step, loss } => format!("step {step:>5}  eval loss {loss:.4}"),
    };
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
