//! The `axle plan` command line.

use super::{PlanError, PlanOptions, plan, render_report, target, write_json};
use crate::run::RunOptions;
use clap::Args;
use std::path::PathBuf;

/// Options of `axle plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Registered experiment (`axle config --list`).
    #[arg(long, alias = "model", default_value = "llama-tiny")]
    pub experiment: String,
    /// Target: tpu-v5e:2x2, tpu-v5e:4x4, tpu-v5p:2x2x1, tpu-v6e:8x8,
    /// tpu-v4:2x2x1, gpu-h100:N, gpu-h200:N, gpu-a100:N, or
    /// gpu-KIND:HOSTSxN (hosts × GPUs per host).
    #[arg(long)]
    pub target: String,
    /// Mesh such as fsdp=16 (-1 infers one size); the mesh rules choose for
    /// the target's devices when absent.
    #[arg(long)]
    pub mesh: Option<String>,
    /// Modifier NAME[=ARGS], repeatable, applied in order.
    #[arg(long = "modifier", value_name = "NAME[=ARGS]")]
    pub modifiers: Vec<String>,
    /// Config override path=value, repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Batch size (the experiment's when absent).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Sequence length (the experiment's when absent).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Plan every data × fsdp (× model=2) mesh of the target's devices with
    /// 1 and 2 micro-batches and rank those that fit by the compiler's
    /// FLOPs (peak bytes where it gives none); --mesh and --json are ignored.
    #[arg(long)]
    pub search: bool,
    /// Internal: compile this StableHLO file for --target (the child
    /// process `axle plan` starts without a network).
    #[arg(long, hide = true, requires = "child_report")]
    pub compile_child: Option<PathBuf>,
    /// Internal: where the child writes its result.
    #[arg(long, hide = true)]
    pub child_report: Option<PathBuf>,
}

/// Runs `axle plan`: prints the report (and writes the JSON), or, as the
/// child, compiles and writes its result.
pub fn run_plan(args: PlanArgs) -> Result<(), PlanError> {
    if let (Some(program), Some(report)) = (&args.compile_child, &args.child_report) {
        return super::child::run_child(&target(&args.target)?, program, report);
    }
    let axle_exe = std::env::current_exe().map_err(|e| PlanError::Io {
        path: PathBuf::from("/proc/self/exe"),
        message: e.to_string(),
    })?;
    let options = PlanOptions {
        run: RunOptions {
            experiment: Some(args.experiment),
            modifiers: args.modifiers,
            overrides: args.overrides,
            mesh: args.mesh,
            batch_size: args.batch_size,
            seq_len: args.seq_len,
            ..RunOptions::default()
        },
        target: args.target,
        axle_exe,
    };
    if args.search {
        let ranked = super::search::search(&options)?;
        print!("{}", super::search::render_search(&ranked));
        return Ok(());
    }
    let report = plan(&options)?;
    print!("{}", render_report(&report));
    if let Some(path) = &args.json {
        write_json(&report, path)?;
    }
    Ok(())
}
