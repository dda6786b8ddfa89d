//! The `axle plan` command line.

use super::{
    PlanError, PlanOptions, Verdict, check_json_writable, plan, render_report, target, write_json,
};
use crate::run::RunOptions;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Options of `axle plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Registered experiment (`axle config --list`), or `hf:DIR` for the
    /// Hugging Face model whose config.json is in DIR.
    #[arg(long, alias = "model", default_value = "llama-tiny")]
    pub experiment: String,
    /// Target: tpu-v5e:2x2, tpu-v5e:4x4, tpu-v5p:2x2x1, tpu-v6e:2x2, tpu-v6e:8x8,
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
    /// XLA compiler option NAME=VALUE (e.g. xla_tpu_enable_latency_hiding_scheduler=false),
    /// repeatable: replaces the mesh rule's option of that name for the target, or is added.
    #[arg(long = "xla-option", value_name = "NAME=VALUE", value_parser = crate::compiler_options::check_option)]
    pub xla_options: Vec<String>,
    /// Config override path=value, repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Batch size (the experiment's when absent).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Sequence length (the experiment's when absent).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Also write the report as JSON to this file (checked writable before
    /// compiling without changing it; written whole through a temporary
    /// file, so a failed plan leaves an existing file as it was).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Plan every data × fsdp (× model=2) mesh of the target's devices with
    /// 1 and 2 micro-batches and remat none, dots and full (a --modifier
    /// remat=… or --set learner.micro_batches=… is kept, that dimension not
    /// searched), and rank those that fit by the compiler's FLOPs per device
    /// times the micro-batch count (XLA's cost analysis counts the
    /// accumulation loop's body once; remat's recomputation is in the
    /// FLOPs); where it gives no FLOPs, by remat policy (less recomputation
    /// first), then peak bytes. Candidates that failed are listed apart.
    /// Not with --mesh or --json.
    #[arg(long)]
    pub search: bool,
    /// Internal: compile this StableHLO file for --target (the child
    /// process `axle plan` starts without a network).
    #[arg(long, hide = true, requires = "child_report")]
    pub compile_child: Option<PathBuf>,
    /// Internal: where the child writes its result.
    #[arg(long, hide = true)]
    pub child_report: Option<PathBuf>,
    /// Internal: an XLA compiler option NAME=VALUE for the child's compile
    /// (the mesh rule's, repeatable).
    #[arg(long = "compile-child-option", hide = true, value_name = "NAME=VALUE")]
    pub compile_child_options: Vec<String>,
}

/// The exit status of `axle plan` when the step does not fit (or, with
/// `--search`, no candidate fits); 0 when it fits or no limit is known, 1
/// on an error, 2 on a usage error (clap's status for a bad command line,
/// hence 3 here, so scripts can tell the two apart).
pub const SHORT_OF_MEMORY_EXIT: i32 = 3;

/// The exit status for a verdict: [`SHORT_OF_MEMORY_EXIT`] when short of
/// memory, else 0.
pub fn exit_status(verdict: &Verdict) -> i32 {
    match verdict {
        Verdict::ShortBy { .. } => SHORT_OF_MEMORY_EXIT,
        Verdict::Fits { .. } | Verdict::UnknownLimit => 0,
    }
}

/// Runs `axle plan`: prints the report (and writes the JSON), or, as the
/// child, compiles and writes its result. Returns the exit status: 0, or
/// [`SHORT_OF_MEMORY_EXIT`] when short of memory.
///
/// Errors: as [`plan`], and [`PlanError::SearchOption`] for `--search`
/// with `--mesh` or `--json`.
pub fn run_plan(args: PlanArgs) -> Result<i32, PlanError> {
    if let (Some(program), Some(report)) = (&args.compile_child, &args.child_report) {
        super::child::run_child(
            &target(&args.target)?,
            program,
            report,
            &args.compile_child_options,
        )?;
        return Ok(0);
    }
    if args.search && args.mesh.is_some() {
        return Err(PlanError::SearchOption(
            "tries its own meshes: drop --mesh".into(),
        ));
    }
    if args.search && args.json.is_some() {
        return Err(PlanError::SearchOption(
            "prints a table only: drop --json (plan one mesh with --mesh to get its JSON)".into(),
        ));
    }
    if let Some(path) = &args.json {
        check_json_writable(path)?;
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
            xla_options: args.xla_options,
            batch_size: args.batch_size,
            seq_len: args.seq_len,
            ..RunOptions::default()
        },
        target: args.target,
        axle_exe,
    };
    let status = if args.search {
        let search = super::search::search(&options)?;
        print!("{}", super::search::render_search(&options, &search));
        match super::search::search_status(&search.candidates) {
            Some(status) => status,
            None => match search.candidates.into_iter().find_map(|c| c.result.err()) {
                Some(first) => return Err(first),
                None => 1,
            },
        }
    } else {
        let report = plan(&options)?;
        print!("{}", render_report(&report));
        if let Some(path) = &args.json {
            write_json(&report, path)?;
        }
        exit_status(&report.verdict)
    };
    // The caller may exit at once with the status: flush what was printed.
    std::io::stdout().flush().map_err(|e| PlanError::Io {
        path: PathBuf::from("stdout"),
        message: e.to_string(),
    })?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_of_memory_exits_with_3_and_fits_with_0() {
        let short = Verdict::ShortBy {
            bytes: Some(1),
            compiler_message: None,
        };
        assert_eq!(exit_status(&short), 3);
        assert_eq!(exit_status(&Verdict::Fits { headroom: 1 }), 0);
        assert_eq!(exit_status(&Verdict::UnknownLimit), 0);
    }
}
