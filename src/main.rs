//! The `axle` command: list devices, print configs, lower a train step to
//! StableHLO, train, evaluate, verify checkpoints, benchmark and plot.

use axle::bench::{BenchOptions, render_table, run_bench};
use axle::experiment::{EXPERIMENT_NAMES, MODIFIERS};
use axle::metrics::Record;
use axle::run::{RunOptions, evaluate, train};
use axle::train_step::build_train_step;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Train sharded models on XLA, AXLearn-style.
#[derive(Parser)]
#[command(name = "axle", version, about)]
struct Cli {
    /// Show XLA's own log lines (info and warnings); by default only its
    /// errors are shown.
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

/// The environment variable XLA's logging reads for its minimum level
/// (0 info, 1 warnings, 2 errors, 3 fatal only).
const XLA_LOG_LEVEL: &str = "TF_CPP_MIN_LOG_LEVEL";

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
    /// Print an experiment's resolved config (model, learner, input) after
    /// its modifiers and overrides, one `path = value` line per field.
    Config {
        /// Registered experiment.
        #[arg(long, alias = "model", default_value = "llama-tiny")]
        experiment: String,
        /// Modifier NAME[=ARGS], repeatable, applied in order.
        #[arg(long = "modifier", value_name = "NAME[=ARGS]")]
        modifiers: Vec<String>,
        /// Config override path=value, repeatable, applied after the modifiers.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// List the experiments and modifiers instead.
        #[arg(long)]
        list: bool,
    },
    /// Write the training step's StableHLO for a model and mesh.
    Lower {
        #[command(flatten)]
        model: ModelArgs,
        /// Output file (stdout when absent).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Train a model. SIGTERM or SIGINT (Ctrl-C) stops it at the next step
    /// boundary, saving a checkpoint there (with --checkpoint-dir), and
    /// exits 0; a second signal exits at once (status 130).
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
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_every: u64,
        /// Checkpoints to keep.
        #[arg(long, default_value_t = 3, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        keep: usize,
        /// Continue from the newest checkpoint in --checkpoint-dir.
        #[arg(long, requires = "checkpoint_dir")]
        resume: bool,
        /// Start afresh where an earlier run left checkpoints (removed once
        /// the step compiles) and a metrics file (emptied).
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// Write each checkpoint before the next step instead of in the
        /// background.
        #[arg(long)]
        sync_checkpoints: bool,
        /// A step, evaluation or checkpoint copy that runs longer than this
        /// many seconds ends the run with status 124 (a hang); one ten times
        /// slower than the median is reported before.
        #[arg(long, default_value_t = 3600.0, value_parser = positive_seconds)]
        step_timeout: f64,
        /// Evaluate every N steps (0: never).
        #[arg(long, default_value_t = 50)]
        eval_every: u64,
        /// Batches per evaluation.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
        eval_batches: u64,
        /// Metrics file (JSON lines).
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// Directory for TensorBoard event files (`tensorboard --logdir DIR`).
        #[arg(long)]
        summaries: Option<PathBuf>,
        /// Peak FLOP/s of one device, for MFU (known GPUs/TPUs have a table).
        #[arg(long)]
        peak_flops: Option<f64>,
        /// Start from a Hugging Face model's weights: hf:DIR (the experiment
        /// is hf:DIR unless --experiment names it).
        #[arg(long, value_name = "hf:DIR")]
        init_from: Option<String>,
    },
    /// Evaluate the newest checkpoint on held-out data. The checkpoint
    /// records its experiment, modifiers, overrides, data and mesh; options
    /// add to that run, and a changed config or data is refused.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Directory holding the checkpoints.
        #[arg(long)]
        checkpoint_dir: PathBuf,
        /// Batches to evaluate (the number the run used when absent).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        eval_batches: Option<u64>,
    },
    /// Time tracing, emission, compilation and steps of a model on meshes.
    Bench {
        #[command(flatten)]
        bench: BenchArgs,
    },
    /// List the checkpoints in a directory, verifying each one's files
    /// against its checksums; exits non-zero if any is damaged.
    Checkpoints {
        /// Directory holding the checkpoints.
        #[arg(long)]
        checkpoint_dir: PathBuf,
    },
    /// Import a Hugging Face model directory (config.json and
    /// model.safetensors or a sharded index) as an axle checkpoint at
    /// step 0 of the experiment hf:DIR.
    ImportHf {
        /// The Hugging Face model directory.
        dir: PathBuf,
        /// The checkpoint directory to write; it must hold no checkpoint yet.
        #[arg(long)]
        checkpoint_dir: PathBuf,
    },
    /// Export the newest checkpoint of a causal LM as a Hugging Face model
    /// directory (config.json and model.safetensors) for `transformers`.
    ExportHf {
        /// Directory holding the checkpoints.
        #[arg(long)]
        checkpoint_dir: PathBuf,
        /// The model directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Weight dtype: f32, or bf16 (rounded to nearest even).
        #[arg(long, default_value = "f32")]
        dtype: axle::hf::WeightDtype,
        /// Split the weights into shards of at most this size (bytes, or
        /// 5GB, 500MB, 2GiB ...) with model.safetensors.index.json.
        #[arg(long, value_parser = axle::hf::parse_size)]
        max_shard_size: Option<u64>,
    },
    /// Train a tokenizer: `axle tokenizer train --vocab-size N --out tokenizer.json FILES...`.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
    /// Generate continuations of prompts from the newest checkpoint of a
    /// causal LM (prefill, then a one-token decode program with the
    /// key/value cache donated between calls); prints each continuation
    /// and the decode throughput.
    Generate(GenerateArgs),
    /// Compile the training step ahead of time for a TPU slice or GPU
    /// machine (no hardware needed) and report per-device memory, FLOPs,
    /// collectives and whether it fits. Exit status: 0 when it fits, 3 when
    /// it is short of memory, 1 on an error, 2 on a usage error.
    Plan(axle::plan::cli::PlanArgs),
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

/// `axle tokenizer` commands.
#[derive(Subcommand)]
enum TokenizerCommand {
    /// Train a byte-level BPE (GPT-2's scheme) on text files and write it
    /// as a Hugging Face `tokenizer.json`.
    Train {
        /// Vocabulary size: 256 bytes, `<|endoftext|>` and the merges (at
        /// most; a warning says when the text yields fewer).
        #[arg(long)]
        vocab_size: usize,
        /// Output `tokenizer.json`.
        #[arg(long)]
        out: PathBuf,
        /// Text files to learn the merges from.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Options of `axle generate`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("model").required(true).args(["checkpoint_dir", "hf"])))]
struct GenerateArgs {
    /// Directory of the run's checkpoints (the newest is used).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// A Hugging Face model directory (config.json, safetensors; its
    /// tokenizer.json by default), read without an import step.
    #[arg(long)]
    hf: Option<PathBuf>,
    /// One prompt.
    #[arg(long, conflicts_with = "prompts")]
    prompt: Option<String>,
    /// A prompt as comma-separated token ids (`1,17,42`), repeatable;
    /// generated after the text prompts, in the same batch.
    #[arg(long)]
    prompt_ids: Vec<String>,
    /// A file of prompts, one per non-empty line, generated as one batch.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Tokens to generate after each prompt, at most (a row stops at its
    /// first end-of-sequence id); prompt plus these may not exceed the
    /// model's positions.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// An end-of-sequence token id, repeatable (default: the Hugging Face
    /// model's eos_token_id, else its tokenizer's <|endoftext|>).
    #[arg(long = "eos-id")]
    eos_ids: Vec<u32>,
    /// Never stop before --max-new-tokens.
    #[arg(long, conflicts_with = "eos_ids")]
    ignore_eos: bool,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sample among the K most likely tokens only (needs --temperature > 0).
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample among the most likely tokens whose probabilities first reach P
    /// (needs --temperature > 0).
    #[arg(long)]
    top_p: Option<f64>,
    /// Seed of the sampling draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the token ids of each continuation as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// A `tokenizer.json` (the run's recorded one when absent; bytes when it recorded none).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Mesh such as model=4 (tensor-parallel decoding); one device when absent.
    #[arg(long)]
    mesh: Option<String>,
    /// XLA compiler option NAME=VALUE (e.g. xla_tpu_enable_latency_hiding_scheduler=false),
    /// repeatable: replaces the mesh rule's option of that name for the hardware, or is added.
    #[arg(long = "xla-option", value_name = "NAME=VALUE", value_parser = axle::compiler_options::check_option)]
    xla_options: Vec<String>,
    /// PJRT plugin: cpu, cuda, tpu or a path to a plugin .so.
    #[arg(long, default_value = "cpu")]
    plugin: String,
    /// Virtual CPU devices (cpu_device_count).
    #[arg(long)]
    cpu_devices: Option<usize>,
}

/// Options of `axle bench`.
#[derive(Args)]
struct BenchArgs {
    /// Registered experiment (`axle config --list` lists them).
    #[arg(long, alias = "model", default_value = "llama-tiny")]
    experiment: String,
    /// Modifier NAME[=ARGS], repeatable, applied in order.
    #[arg(long = "modifier", value_name = "NAME[=ARGS]")]
    modifiers: Vec<String>,
    /// Config override path=value, repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
    /// Mesh to benchmark, repeatable (e.g. --mesh data=1 --mesh fsdp=4).
    #[arg(long = "mesh", default_value = "data=1")]
    meshes: Vec<String>,
    /// Remat policy to compare, repeatable (e.g. --remat none --remat
    /// full): each is benchmarked on every mesh as a last remat=POLICY
    /// modifier.
    #[arg(long = "remat", value_name = "POLICY")]
    remat: Vec<String>,
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
    /// Registered experiment (`axle config --list` lists them; llama-tiny
    /// when absent, the checkpoint's for `eval`). `--model` is an alias.
    #[arg(long, alias = "model")]
    experiment: Option<String>,
    /// Modifier NAME[=ARGS], repeatable, applied in order (after the mesh
    /// rule's): `axle config --list` lists them.
    #[arg(long = "modifier", value_name = "NAME[=ARGS]")]
    modifiers: Vec<String>,
    /// Config override path=value, repeatable, applied after the modifiers
    /// (e.g. decoder.transformer.num_layers=2, learner.schedule.lr=3e-3,
    /// input.batch_size=16).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
    /// Mesh such as data=2,fsdp=4 (-1 infers one size); mesh rules choose when absent.
    #[arg(long)]
    mesh: Option<String>,
    /// XLA compiler option NAME=VALUE (e.g. xla_tpu_enable_latency_hiding_scheduler=false),
    /// repeatable: replaces the mesh rule's option of that name for the hardware, or is added.
    #[arg(long = "xla-option", value_name = "NAME=VALUE", value_parser = axle::compiler_options::check_option)]
    xla_options: Vec<String>,
    /// PJRT plugin: cpu, cuda, tpu or a path to a plugin .so.
    #[arg(long, default_value = "cpu")]
    plugin: String,
    /// Virtual CPU devices (cpu_device_count).
    #[arg(long)]
    cpu_devices: Option<usize>,
    /// Data. Language models: .bin (uint16 tokens), .npy rows [N, seq+1], any other file as
    /// bytes. Other models: a .safetensors file or a directory of <input>.npy files, one array
    /// per model input. The experiment's synthetic task when absent; a resume uses the
    /// recorded data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A tokenizer.json: --data (a file, or a directory of files) is then text, streamed,
    /// tokenized and packed into rows with per-document segment ids and positions; documents
    /// are separated by empty lines, the last tenth of each file is held out. A resume uses
    /// the recorded tokenizer.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Batch size (the experiment's input.batch_size when absent).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Sequence length (the experiment's input.seq_len when absent).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Seed of initialisation, data order and dropout (0 when absent; a resume or
    /// evaluation takes the checkpoint's, and refuses another).
    #[arg(long)]
    seed: Option<u64>,
}

impl ModelArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            experiment: self.experiment.clone(),
            modifiers: self.modifiers.clone(),
            overrides: self.overrides.clone(),
            mesh: self.mesh.clone(),
            xla_options: self.xla_options.clone(),
            plugin: self.plugin.clone(),
            cpu_devices: self.cpu_devices,
            data: self.data.clone(),
            tokenizer: self.tokenizer.clone(),
            batch_size: self.batch_size,
            seq_len: self.seq_len,
            seed: self.seed,
            ..RunOptions::default()
        }
    }
}

impl GenerateArgs {
    fn options(&self) -> Result<axle::generate::GenerateOptions, String> {
        let prompts = match (&self.prompt, &self.prompts) {
            (Some(p), _) => vec![p.clone()],
            (None, Some(file)) => {
                let prompts: Vec<String> = std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read prompts file {}: {e}", file.display()))?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect();
                if prompts.is_empty() {
                    return Err(format!("prompts file {} holds no prompt", file.display()));
                }
                prompts
            }
            (None, None) if self.prompt_ids.is_empty() => {
                return Err(
                    "give the prompts: one of --prompt, --prompts FILE or --prompt-ids".into(),
                );
            }
            (None, None) => Vec::new(),
        };
        let source = match (&self.checkpoint_dir, &self.hf) {
            (Some(dir), _) => axle::generate::ModelSource::Checkpoint(dir.clone()),
            (None, Some(dir)) => axle::generate::ModelSource::Hf(dir.clone()),
            (None, None) => return Err("give --checkpoint-dir or --hf".into()),
        };
        Ok(axle::generate::GenerateOptions {
            source,
            prompts,
            prompt_ids: self
                .prompt_ids
                .iter()
                .map(|ids| token_ids(ids))
                .collect::<Result<_, _>>()?,
            max_new_tokens: self.max_new_tokens,
            eos_ids: match (self.ignore_eos, self.eos_ids.is_empty()) {
                (true, _) => Some(Vec::new()),
                (false, true) => None,
                (false, false) => Some(self.eos_ids.clone()),
            },
            sampling: axle::generate::Sampling {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                seed: self.seed,
            },
            tokenizer: self.tokenizer.clone(),
            mesh: self.mesh.clone(),
            xla_options: self.xla_options.clone(),
            plugin: self.plugin.clone(),
            cpu_devices: self.cpu_devices,
        })
    }
}

fn main() -> ExitCode {
    // Die quietly, as Unix tools do, when the reader of stdout or stderr
    // goes away (`axle … | head`), instead of panicking on the write.
    // SAFETY: setting a signal's disposition to its default before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if !cli.verbose && std::env::var_os(XLA_LOG_LEVEL).is_none() {
        // SAFETY: set before any plugin is loaded or thread started, while
        // this process has a single thread.
        unsafe { std::env::set_var(XLA_LOG_LEVEL, "2") };
    }
    match run(cli) {
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
        Command::Config {
            experiment,
            modifiers,
            overrides,
            list,
        } => {
            if list {
                println!("experiments: {}", EXPERIMENT_NAMES.join(", "));
                println!("modifiers:");
                for m in MODIFIERS {
                    let name = match m.arg {
                        Some(arg) => format!("{}={arg}", m.name),
                        None => m.name.to_string(),
                    };
                    println!("  {name:<28} {}", m.help);
                }
                return Ok(());
            }
            let config = axle::experiment::resolve_config(&experiment, &modifiers, &overrides)?;
            print!("{}", config.dump());
        }
        Command::Lower { model, out } => {
            if !model.xla_options.is_empty() {
                return Err(
                    "axle lower writes StableHLO and compiles nothing: --xla-option \
                     applies to train, eval, generate and plan"
                        .into(),
                );
            }
            let setup = model.options().setup()?;
            let step = build_train_step(
                setup.model.as_ref(),
                &setup.learner,
                &setup.shape,
                &setup.mesh,
                &setup.rules,
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
            overwrite,
            sync_checkpoints,
            step_timeout,
            eval_every,
            eval_batches,
            metrics,
            summaries,
            peak_flops,
            init_from,
        } => {
            let init_from = axle::hf::init_from_arg(init_from.as_deref())?;
            let mut model = model;
            if let Some(dir) = &init_from {
                model
                    .experiment
                    .get_or_insert_with(|| format!("hf:{}", dir.display()));
            }
            let options = RunOptions {
                overwrite,
                async_checkpoints: !sync_checkpoints,
                step_timeout: Some(std::time::Duration::from_secs_f64(step_timeout)),
                init_from,
                summaries,
                steps,
                checkpoint_dir,
                checkpoint_every,
                keep,
                resume,
                eval_every,
                eval_batches,
                metrics,
                peak_flops,
                stop: Some(stop_on_signals()?),
                ..model.options()
            };
            let what = match (&options.experiment, options.resume) {
                (Some(name), _) => name.as_str(),
                (None, true) => "the run recorded in the checkpoint directory",
                (None, false) => axle::run::DEFAULT_EXPERIMENT,
            };
            eprintln!(
                "training {what} until step {} (compiling or loading the step)",
                options.steps
            );
            let bar = progress_bar(steps);
            let summary = train(&options, |record| report(&bar, record))?;
            bar.finish_and_clear();
            if summary.interrupted {
                let saved = match &options.checkpoint_dir {
                    Some(dir) => format!(
                        "checkpoint saved in {}; continue with --resume",
                        dir.display()
                    ),
                    None => "no checkpoint directory, nothing saved".into(),
                };
                eprintln!(
                    "stopped by a signal after step {}: {saved}",
                    summary.steps_done
                );
                return Ok(());
            }
            match summary.losses.last() {
                Some((_, last)) => println!(
                    "done: {} steps on mesh {}, final loss {last:.4}",
                    summary.steps_done, summary.mesh
                ),
                None => println!(
                    "nothing to do: {} steps were already done (--steps {})",
                    summary.steps_done, steps
                ),
            }
            if let Some((step, loss)) = summary.eval_losses.last() {
                println!("eval loss {loss:.4} after step {step}");
                print_metrics(&summary.eval_metrics);
            }
        }
        Command::Eval {
            model,
            checkpoint_dir,
            eval_batches,
        } => {
            let options = RunOptions {
                checkpoint_dir: Some(checkpoint_dir),
                ..model.options()
            };
            let result = evaluate(&options, eval_batches)?;
            println!(
                "eval loss {:.6} ({} at step {}, checkpoint {})",
                result.report.loss,
                result.experiment,
                result.step,
                result.checkpoint.display()
            );
            print_metrics(&result.report.metrics);
        }
        Command::Bench { bench } => {
            let options = BenchOptions {
                run: RunOptions {
                    experiment: Some(bench.experiment),
                    modifiers: bench.modifiers,
                    overrides: bench.overrides,
                    plugin: bench.plugin,
                    cpu_devices: bench.cpu_devices,
                    batch_size: bench.batch_size,
                    seq_len: bench.seq_len,
                    seed: Some(bench.seed),
                    peak_flops: bench.peak_flops,
                    ..RunOptions::default()
                },
                meshes: bench.meshes,
                remat: bench.remat,
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
        Command::Checkpoints { checkpoint_dir } => {
            let saver = axle::checkpoint::Checkpointer::new(&checkpoint_dir, 1);
            let mut damaged = 0;
            if !checkpoint_dir.exists() {
                return Err(format!("{} does not exist", checkpoint_dir.display()).into());
            }
            let found = saver.list()?;
            if found.is_empty() {
                return Err(format!(
                    "no checkpoint in {} (checkpoints are its step_* directories)",
                    checkpoint_dir.display()
                )
                .into());
            }
            for (step, path) in found {
                match axle::checkpoint::verify(&path) {
                    Ok(axle::checkpoint::Contents::Complete) => {
                        println!("{}  step {step}  ok", path.display())
                    }
                    Ok(axle::checkpoint::Contents::ParamsOnly) => println!(
                        "{}  step {step}  ok, parameters only (evaluates, does not resume)",
                        path.display()
                    ),
                    Err(e) => {
                        damaged += 1;
                        println!("{}  step {step}  DAMAGED: {e}", path.display());
                    }
                }
            }
            if damaged > 0 {
                return Err(format!(
                    "{damaged} damaged checkpoint(s) in {}",
                    checkpoint_dir.display()
                )
                .into());
            }
        }
        Command::ImportHf {
            dir,
            checkpoint_dir,
        } => {
            let saved = axle::hf::import_to_checkpoint(&dir, &checkpoint_dir)?;
            println!("imported {} as {}", dir.display(), saved.display());
        }
        Command::ExportHf {
            checkpoint_dir,
            out,
            dtype,
            max_shard_size,
        } => {
            let family = axle::hf::export_checkpoint(&checkpoint_dir, &out, dtype, max_shard_size)?;
            println!(
                "exported {} as {} to {}",
                checkpoint_dir.display(),
                family.architecture(),
                out.display()
            );
        }
        Command::Tokenizer {
            command:
                TokenizerCommand::Train {
                    vocab_size,
                    out,
                    files,
                },
        } => {
            let mut tokenizer = axle::text::TextTokenizer::train_bpe(&files, vocab_size)?;
            tokenizer.save(&out)?;
            if tokenizer.vocab_size() < vocab_size {
                eprintln!(
                    "warning: --vocab-size {vocab_size}, but the text yields only {} tokens (too few pairs seen twice): wrote {} with {} tokens",
                    tokenizer.vocab_size(),
                    out.display(),
                    tokenizer.vocab_size()
                );
            }
            println!(
                "wrote {} ({} tokens)",
                out.display(),
                tokenizer.vocab_size()
            );
        }
        Command::Generate(args) => {
            let options = args.options()?;
            let report = axle::generate::run(&options)?;
            let g = &report.generation;
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            if args.json {
                let lengths: Vec<usize> = g.tokens.iter().map(Vec::len).collect();
                let json = serde_json::json!({
                    "continuations": g.tokens,
                    "lengths": lengths,
                    "eos_ids": report.eos_ids,
                    "prefill_s": g.prefill_s,
                    "decode_s": g.decode_s,
                    "decode_calls": g.decode_calls,
                    "decode_tokens_per_s": g.decode_tokens_per_s,
                });
                println!("{json}");
            } else {
                print!(
                    "{}",
                    axle::generate::continuations_text(&options.labels(), &report.texts)
                );
            }
            eprintln!(
                "{} prompts from {}: prefill {:.3} s, decode {:.1} tokens/s",
                g.tokens.len(),
                report.model.display(),
                g.prefill_s,
                g.decode_tokens_per_s
            );
        }
        Command::Plan(args) => match axle::plan::cli::run_plan(args)? {
            0 => {}
            status => std::process::exit(status),
        },
        Command::Plot { runs, out } => {
            axle::plot::plot_losses(&runs, &out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

/// Parses comma-separated token ids (`1,17,42`).
fn token_ids(text: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(|id| {
            id.trim()
                .parse::<u32>()
                .map_err(|e| format!("token id `{id}` in `{text}`: {e}"))
        })
        .collect()
}

/// Parses a positive, finite number of seconds.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && std::time::Duration::try_from_secs_f64(s).is_ok() => Ok(s),
        _ => Err(format!(
            "expected a positive number of seconds that fits a duration, got {text}"
        )),
    }
}

/// A flag that SIGTERM and SIGINT set, asking the run to stop at the next
/// step boundary; a second signal, with the flag already set, exits at
/// once with status 130.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Registered first, so the first signal finds the flag unset.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Prints evaluation metrics, one per line.
fn print_metrics(metrics: &std::collections::BTreeMap<String, f64>) {
    for (name, value) in metrics {
        println!("  {name} {value:.6}");
    }
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
            skipped,
            step_time_s,
            tokens_per_s,
            ..
        } => {
            bar.set_position(*step);
            bar.set_message(format!("loss {loss:.4}"));
            let skipped = if *skipped { "  skipped" } else { "" };
            format!(
                "step {step:>5}  loss {loss:.4}  grad_norm {grad_norm:.3}  {step_time_s:.3} s/step  {tokens_per_s:.0} tok/s{skipped}"
            )
        }
        Record::Eval {
            step,
            loss,
            metrics,
        } => {
            let extra: Vec<String> = metrics
                .iter()
                .filter(|(name, _)| !name.contains('/'))
                .map(|(name, v)| format!("  {name} {v:.4}"))
                .collect();
            format!("step {step:>5}  eval loss {loss:.4}{}", extra.join(""))
        }
    };
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
