//! `axle plan --search`: plan several layouts of the same experiment on a
//! target (meshes × micro-batch counts × remat policies) and rank those that
//! fit by the compiler's cost estimate, as MaxText's estimator searches
//! batch × remat by AOT compiles.
//!
//! A remat policy trades memory for recomputation: the backward pass
//! replays the forward ops the policy does not save, and the compiler's
//! FLOPs count the replay, so where two policies both fit, the one that
//! recomputes less ranks first.
//!
//! Gradient accumulation is a `scan` (`stablehlo.while`) over the
//! micro-batches, and XLA's cost analysis counts a loop body once: with
//! `k` micro-batches it reports about `1/k` of the step's forward and
//! backward FLOPs. The ranking therefore uses the reported FLOPs times `k`,
//! an estimate of the step's FLOPs that does not shrink with `k` (it
//! overcounts the optimizer update, outside the loop, `k` times: a small
//! share of a step).

use super::{Lowered, PlanError, PlanOptions, PlanReport, Verdict, compile_lowered, lower_for};
use crate::run::RunOptions;

/// The remat policies tried (the `remat` modifier's values), in order of
/// the recomputation they add: none, the non-matmul ops (`dots` saves the
/// `dot_general` outputs), everything (`full`).
pub const REMAT_POLICIES: [&str; 3] = ["none", "dots", "full"];

/// The micro-batch counts (`learner.micro_batches`) tried.
pub const MICRO_BATCHES: [usize; 2] = [1, 2];

/// The config path of the micro-batch count.
const MICRO_BATCHES_PATH: &str = "learner.micro_batches";

/// The layouts tried for `devices` devices: every split of them into
/// `data` × `fsdp` (each axis a divisor), then the same with a `model` axis
/// of 2 when the count is even; each with every count of `micro_batches`
/// and every policy of `remats`. Meshes as `axle plan --mesh` takes them.
pub fn candidates(devices: usize, micro_batches: &[usize], remats: &[String]) -> Vec<Layout> {
    let mut meshes = Vec::new();
    for model in [1, 2] {
        if !devices.is_multiple_of(model) {
            continue;
        }
        let rest = devices / model;
        for data in (1..=rest).filter(|d| rest.is_multiple_of(*d)) {
            let fsdp = rest / data;
            let mut axes = Vec::new();
            for (name, size) in [("data", data), ("fsdp", fsdp), ("model", model)] {
                if size > 1 {
                    axes.push(format!("{name}={size}"));
                }
            }
            if axes.is_empty() {
                axes.push("data=1".into());
            }
            meshes.push(axes.join(","));
        }
    }
    let mut all = Vec::new();
    for mesh in meshes {
        for m in micro_batches {
            for remat in remats {
                all.push((mesh.clone(), *m, remat.clone()));
            }
        }
    }
    all
}

/// One candidate layout: mesh, micro-batch count, remat policy.
pub type Layout = (String, usize, String);

/// The search dimensions the command line fixed: a `remat=…` modifier or a
/// `learner.micro_batches=…` override is kept as given (the last one where
/// repeated) and that dimension is not searched.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    /// The remat policy of the user's `remat` modifier.
    pub remat: Option<String>,
    /// The user's micro-batch count.
    pub micro_batches: Option<usize>,
}

impl Fixed {
    /// The fixed dimensions of `run`.
    ///
    /// Errors: [`PlanError::SearchOption`] for a `learner.micro_batches`
    /// override that is not a positive count.
    pub fn of(run: &RunOptions) -> Result<Fixed, PlanError> {
        let remat = run
            .modifiers
            .iter()
            .filter_map(|m| m.strip_prefix("remat="))
            .next_back()
            .map(str::to_string);
        let micro_batches = run
            .overrides
            .iter()
            .filter_map(|o| o.strip_prefix(MICRO_BATCHES_PATH)?.strip_prefix('='))
            .next_back()
            .map(|v| match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(PlanError::SearchOption(format!(
                    "keeps {MICRO_BATCHES_PATH} as given, but `{v}` is not a positive count"
                ))),
            })
            .transpose()?;
        Ok(Fixed {
            remat,
            micro_batches,
        })
    }
}

/// One candidate's outcome.
#[derive(Debug)]
pub struct Candidate {
    /// The mesh tried.
    pub mesh: String,
    /// Micro-batches tried.
    pub micro_batches: usize,
    /// The remat policy tried (one of [`REMAT_POLICIES`], or the user's).
    pub remat: String,
    /// The plan, or why it could not be made (a batch that does not split,
    /// a compiler error).
    pub result: Result<PlanReport, PlanError>,
}

impl Candidate {
    /// The step's per-device FLOPs estimate: the compiler's FLOPs times
    /// the micro-batch count (see the module's doc), `None` where the
    /// compiler gives none.
    pub fn step_flops(&self) -> Option<f64> {
        let flops = self.result.as_ref().ok()?.compiled.as_ref()?.flops?;
        Some(flops * self.micro_batches as f64)
    }

    /// The ranking figures where it fits, compared in order, lower is
    /// better: the step FLOPs estimate (recomputation included); where the
    /// compiler gives no FLOPs (the CUDA plugin without a GPU), the remat
    /// policy's place in [`REMAT_POLICIES`] (less recomputation first),
    /// then the peak bytes.
    fn cost(&self) -> Option<(f64, f64)> {
        let report = self.result.as_ref().ok()?;
        if !matches!(report.verdict, Verdict::Fits { .. }) {
            return None;
        }
        let compiled = report.compiled.as_ref()?;
        let peak = compiled.planned_peak() as f64;
        Some(match self.step_flops() {
            Some(flops) => (flops, peak),
            None => {
                let recompute = REMAT_POLICIES.iter().position(|p| *p == self.remat);
                (recompute.unwrap_or(REMAT_POLICIES.len()) as f64, peak)
            }
        })
    }
}

/// What every candidate of a search shares, for the table's header.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The dimensions the command line fixed.
    pub fixed: Fixed,
    /// The global batch size.
    pub batch_size: usize,
    /// The sequence length.
    pub seq_len: usize,
    /// The mesh rule whose compiler options apply.
    pub compiler_options_rule: Option<String>,
    /// The XLA options, `name=value`.
    pub compiler_options: Vec<String>,
}

/// The outcome of [`search`].
#[derive(Debug)]
pub struct Search {
    /// What every candidate shares.
    pub settings: Settings,
    /// The candidates, ranked: those that fit by cost, then those short of
    /// memory, then those that failed, each in the order tried.
    pub candidates: Vec<Candidate>,
}

/// Plans every candidate of [`candidates`] for the options' target (its
/// mesh is ignored; a dimension the options fix, see [`Fixed`], is kept)
/// and returns them ranked. Every candidate is traced first, without
/// compiling: an input error they all hit (a batch that no mesh splits) is
/// returned at once. Prints a progress line per compile on stderr (each
/// takes seconds to minutes).
///
/// Errors: the first candidate's where every candidate fails to build;
/// [`PlanError::SearchOption`] as [`Fixed::of`].
pub fn search(options: &PlanOptions) -> Result<Search, PlanError> {
    let target = super::target(&options.target)?;
    let fixed = Fixed::of(&options.run)?;
    let micro_batches = fixed
        .micro_batches
        .map_or(MICRO_BATCHES.to_vec(), |m| vec![m]);
    let remats: Vec<String> = fixed
        .remat
        .clone()
        .map_or_else(|| REMAT_POLICIES.map(String::from).to_vec(), |r| vec![r]);
    let lowered: Vec<(Layout, Result<Lowered, PlanError>)> =
        candidates(target.devices, &micro_batches, &remats)
            .into_iter()
            .map(|layout| {
                let run = candidate_run(&options.run, &fixed, &layout);
                let program = lower_for(&run, &target);
                (layout, program)
            })
            .collect();
    let Some(first) = lowered.iter().find_map(|(_, p)| p.as_ref().ok()) else {
        let first_error = lowered.into_iter().find_map(|(_, p)| p.err());
        return Err(first_error.unwrap_or_else(|| {
            PlanError::SearchOption(format!("found no mesh for {} devices", target.devices))
        }));
    };
    let settings = Settings {
        fixed: fixed.clone(),
        batch_size: first.batch_size,
        seq_len: first.seq_len,
        compiler_options_rule: first.compiler_options_rule.clone(),
        compiler_options: first
            .compiler_options
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    let count = lowered.iter().filter(|(_, p)| p.is_ok()).count();
    let mut compiled = 0;
    let mut tried: Vec<Candidate> = Vec::new();
    for (layout, program) in lowered {
        let run = candidate_run(&options.run, &fixed, &layout);
        let (mesh, micro_batches, remat) = layout;
        let result = program.and_then(|program| {
            compiled += 1;
            eprintln!(
                "[{compiled}/{count}] compiling mesh {mesh}, {micro_batches} micro-batch{}, remat {remat}",
                if micro_batches == 1 { "" } else { "es" }
            );
            let one = PlanOptions {
                run,
                ..options.clone()
            };
            compile_lowered(&one, &target, program)
        });
        // Every candidate compiles with the same options: one the compiler refuses fails them all.
        if let Err(e @ PlanError::CompilerOption { .. }) = result {
            return Err(e);
        }
        tried.push(Candidate {
            mesh,
            micro_batches,
            remat,
            result,
        });
    }
    rank(&mut tried);
    Ok(Search {
        settings,
        candidates: tried,
    })
}

/// The run options of one candidate: its mesh, and its remat modifier and
/// micro-batch override where the options do not fix them.
fn candidate_run(run: &RunOptions, fixed: &Fixed, layout: &Layout) -> RunOptions {
    let (mesh, micro_batches, remat) = layout;
    let mut run = run.clone();
    run.mesh = Some(mesh.clone());
    if fixed.remat.is_none() {
        run.modifiers.push(format!("remat={remat}"));
    }
    if fixed.micro_batches.is_none() {
        run.overrides
            .push(format!("{MICRO_BATCHES_PATH}={micro_batches}"));
    }
    run
}

/// Where a candidate sorts: fits (by cost), short of memory (or no
/// verdict), failed.
fn group(c: &Candidate) -> u8 {
    match (&c.result, c.cost()) {
        (Ok(_), Some(_)) => 0,
        (Ok(_), None) => 1,
        (Err(_), _) => 2,
    }
}

/// Sorts candidates that fit by cost, lowest first, then those short of
/// memory, then those that failed, each in their order (a stable sort).
fn rank(tried: &mut [Candidate]) {
    tried.sort_by(|a, b| match (a.cost(), b.cost()) {
        (Some(x), Some(y)) => x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)),
        _ => group(a).cmp(&group(b)),
    });
}

/// The exit status of a search: 0 when a candidate fits (or no memory size
/// is known), [`super::cli::SHORT_OF_MEMORY_EXIT`] when every candidate
/// that compiled is short; `None` when none compiled (the caller reports
/// the first error).
pub fn search_status(candidates: &[Candidate]) -> Option<i32> {
    let verdicts: Vec<&Verdict> = candidates
        .iter()
        .filter_map(|c| c.result.as_ref().ok().map(|r| &r.verdict))
        .collect();
    if verdicts.is_empty() {
        return None;
    }
    Some(
        if verdicts
            .iter()
            .any(|v| !matches!(v, Verdict::ShortBy { .. }))
        {
            0
        } else {
            super::cli::SHORT_OF_MEMORY_EXIT
        },
    )
}

/// The ranking as text: a header naming the experiment, target, the
/// settings every candidate shares and the ranking figure; a table of the
/// candidates that compiled (mesh, micro-batches, remat policy, peak, the
/// compiler's FLOPs, the step FLOPs estimate, verdict: fits first, ranked);
/// then a table of those that failed, with the first line of the error.
pub fn render_search(options: &PlanOptions, search: &Search) -> String {
    let experiment = options
        .run
        .experiment
        .as_deref()
        .unwrap_or(crate::run::DEFAULT_EXPERIMENT);
    let settings = &search.settings;
    let none_or = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(" ")
        }
    };
    let mut out = format!(
        "{experiment} on {}: batch size {}, seq len {}, modifiers: {}, overrides: {}, \
         compiler options{}: {}\n",
        options.target,
        settings.batch_size,
        settings.seq_len,
        none_or(&options.run.modifiers),
        none_or(&options.run.overrides),
        settings
            .compiler_options_rule
            .as_deref()
            .map_or(String::new(), |r| format!(" of rule `{r}`")),
        none_or(&settings.compiler_options),
    );
    out.push_str(&format!(
        "searched: meshes; micro-batches {}; remat {}\n",
        settings
            .fixed
            .micro_batches
            .map_or("1, 2".to_string(), |m| format!("{m} (fixed by --set)")),
        settings
            .fixed
            .remat
            .as_deref()
            .map_or("none, dots, full".to_string(), |r| format!(
                "{r} (fixed by --modifier)"
            )),
    ));
    out.push_str(
        "ranked by step FLOPs per device (the compiler's FLOPs x micro-batches: \
         its cost analysis counts the accumulation loop's body once; remat's \
         recomputation included), else by remat policy (none, dots, full) and peak\n\n",
    );
    out.push_str(
        "| rank | mesh | micro-batches | remat | peak GiB | FLOPs / device (compiler) | step FLOPs / device | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    let (ok, failed): (Vec<&Candidate>, Vec<&Candidate>) =
        search.candidates.iter().partition(|c| c.result.is_ok());
    for (i, c) in ok.iter().enumerate() {
        let Ok(r) = &c.result else { continue };
        let (peak, flops) = r
            .compiled
            .as_ref()
            .map_or(("-".to_string(), "-".to_string()), |c| {
                (
                    format!("{:.3}", c.planned_peak() as f64 / super::GIB),
                    c.flops.map_or("-".into(), |f| format!("{f:.4e}")),
                )
            });
        let verdict = match &r.verdict {
            Verdict::Fits { .. } => "fits".to_string(),
            Verdict::ShortBy { bytes: Some(b), .. } => {
                format!("short by {:.2} GiB", *b as f64 / super::GIB)
            }
            Verdict::ShortBy { bytes: None, .. } => "short".to_string(),
            Verdict::UnknownLimit => "no limit known".to_string(),
        };
        let step = c.step_flops().map_or("-".into(), |f| format!("{f:.4e}"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {peak} | {flops} | {step} | {verdict} |\n",
            i + 1,
            c.mesh,
            c.micro_batches,
            c.remat
        ));
    }
    if !failed.is_empty() {
        out.push_str("\nfailed:\n\n| mesh | micro-batches | remat | error |\n|---|---|---|---|\n");
        for c in failed {
            let Err(e) = &c.result else { continue };
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default().replace('|', "/");
            out.push_str(&format!(
                "| {} | {} | {} | {first} |\n",
                c.mesh, c.micro_batches, c.remat
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Compiled;

    /// A candidate that compiled and fits, with the compiler's `flops`.
    fn fitting(mesh: &str, micro_batches: usize, flops: f64) -> Candidate {
        fitting_with("none", mesh, micro_batches, Some(flops), 20)
    }

    /// A candidate with `remat` that compiled and fits, with the compiler's
    /// `flops` (none on GPU) and `peak` bytes.
    fn fitting_with(
        remat: &'static str,
        mesh: &str,
        micro_batches: usize,
        flops: Option<f64>,
        peak: i64,
    ) -> Candidate {
        let compiled = Compiled {
            device_kind: "TPU v5 lite".into(),
            devices: 4,
            hosts: 1,
            host_devices: Default::default(),
            memory_limit: Some(100),
            arguments: 10,
            outputs: 10,
            alias: 10,
            temporaries: 10,
            generated_code: 0,
            peak,
            flops,
            bytes_accessed: None,
            collectives: Default::default(),
            host_memory_instructions: 0,
            compile_seconds: 0.0,
        };
        let report = PlanReport {
            experiment: "llama-tiny".into(),
            modifiers: vec![],
            overrides: vec![],
            batch_size: 8,
            seq_len: 16,
            target: "tpu-v5e:2x2".into(),
            mesh: mesh.into(),
            mesh_modifiers: vec![],
            mesh_rule: None,
            compiler_options_rule: None,
            compiler_options: vec![],
            hosts: 1,
            memory_limit: Some(100),
            compiled: Some(compiled),
            verdict: Verdict::Fits { headroom: 80 },
            warnings: vec![],
        };
        Candidate {
            mesh: mesh.into(),
            micro_batches,
            remat: remat.into(),
            result: Ok(report),
        }
    }

    #[test]
    fn two_micro_batches_do_not_win_by_the_loop_body_counted_once() {
        // The compiler's figures as XLA counts a scan: the 2-micro-batch
        // step reports its loop body (half the forward and backward, 45)
        // once plus the update (10): 55 against 100. Scaled by the
        // micro-batch count, 110 > 100: the 1-micro-batch step ranks first,
        // and the mesh with fewer FLOPs (fsdp=4, 90) before both.
        let mut tried = vec![
            fitting("data=4", 2, 55.0),
            fitting("data=4", 1, 100.0),
            fitting("fsdp=4", 1, 90.0),
        ];
        rank(&mut tried);
        let order: Vec<(&str, usize)> = tried
            .iter()
            .map(|c| (c.mesh.as_str(), c.micro_batches))
            .collect();
        assert_eq!(order, [("fsdp=4", 1), ("data=4", 1), ("data=4", 2)]);
        assert_eq!(tried[2].step_flops(), Some(110.0));
    }

    #[test]
    fn four_devices_give_every_data_fsdp_split_and_two_with_a_model_axis() {
        let remats = REMAT_POLICIES.map(String::from);
        let meshes: Vec<String> = candidates(4, &MICRO_BATCHES, &remats)
            .into_iter()
            .filter(|(_, m, remat)| *m == 1 && remat == "none")
            .map(|(mesh, _, _)| mesh)
            .collect();
        assert_eq!(
            meshes,
            [
                "fsdp=4",
                "data=2,fsdp=2",
                "data=4",
                "fsdp=2,model=2",
                "data=2,model=2"
            ]
        );
        assert_eq!(
            candidates(4, &MICRO_BATCHES, &remats).len(),
            30,
            "each with 1 and 2 micro-batches and 3 remat policies"
        );
        let one: Vec<(usize, String)> = candidates(1, &MICRO_BATCHES, &remats)
            .into_iter()
            .map(|(mesh, m, remat)| {
                assert_eq!(mesh, "data=1");
                (m, remat)
            })
            .collect();
        assert_eq!(
            one,
            [
                (1, "none"),
                (1, "dots"),
                (1, "full"),
                (2, "none"),
                (2, "dots"),
                (2, "full")
            ]
            .map(|(m, r)| (m, r.to_string()))
        );
    }

    #[test]
    fn remat_ranks_by_its_recompute_flops_or_after_no_remat_without_flops() {
        // TPU: the FLOPs include the replayed forward (full > dots > none),
        // so where all fit, less recomputation ranks first although its
        // peak is higher.
        let mut tried = vec![
            fitting_with("full", "fsdp=4", 1, Some(133.0), 10),
            fitting_with("dots", "fsdp=4", 1, Some(110.0), 15),
            fitting_with("none", "fsdp=4", 1, Some(100.0), 20),
        ];
        rank(&mut tried);
        let order: Vec<&str> = tried.iter().map(|c| c.remat.as_str()).collect();
        assert_eq!(order, ["none", "dots", "full"]);
        // GPU (no FLOPs): the same order by policy, not the lower peak;
        // the peak breaks ties between meshes of one policy.
        let mut tried = vec![
            fitting_with("full", "fsdp=4", 1, None, 10),
            fitting_with("none", "data=4", 1, None, 30),
            fitting_with("none", "fsdp=4", 1, None, 20),
        ];
        rank(&mut tried);
        let order: Vec<(&str, &str)> = tried
            .iter()
            .map(|c| (c.remat.as_str(), c.mesh.as_str()))
            .collect();
        assert_eq!(
            order,
            [("none", "fsdp=4"), ("none", "data=4"), ("full", "fsdp=4")]
        );
    }

    #[test]
    fn a_users_remat_and_micro_batches_are_kept_and_not_searched() {
        let run = RunOptions {
            modifiers: vec!["remat=dots".into(), "remat=full".into()],
            overrides: vec!["learner.micro_batches=4".into()],
            ..RunOptions::default()
        };
        let fixed = Fixed::of(&run).unwrap();
        assert_eq!(fixed.remat.as_deref(), Some("full"));
        assert_eq!(fixed.micro_batches, Some(4));
        let layout = ("fsdp=4".to_string(), 4, "full".to_string());
        let one = candidate_run(&run, &fixed, &layout);
        assert_eq!(one.modifiers, run.modifiers, "no remat modifier added");
        assert_eq!(
            one.overrides, run.overrides,
            "no micro-batch override added"
        );
        assert_eq!(one.mesh.as_deref(), Some("fsdp=4"));
        let free = Fixed::of(&RunOptions::default()).unwrap();
        let other = candidate_run(&RunOptions::default(), &free, &layout);
        assert_eq!(other.modifiers, ["remat=full"]);
        assert_eq!(other.overrides, ["learner.micro_batches=4"]);
        let bad = RunOptions {
            overrides: vec!["learner.micro_batches=two".into()],
            ..RunOptions::default()
        };
        let e = Fixed::of(&bad).unwrap_err().to_string();
        assert!(
            e.contains("learner.micro_batches") && e.contains("`two`"),
            "{e}"
        );
    }

    #[test]
    fn failed_candidates_rank_last_in_their_own_table_and_set_no_status() {
        let failed = |mesh: &str| Candidate {
            mesh: mesh.into(),
            micro_batches: 1,
            remat: "none".into(),
            result: Err(PlanError::SearchOption("batch 6 does not split".into())),
        };
        let mut short = fitting("data=2,fsdp=2", 1, 1.0);
        if let Ok(r) = &mut short.result {
            r.verdict = Verdict::ShortBy {
                bytes: Some(1 << 30),
                compiler_message: None,
            };
        }
        let mut tried = vec![failed("data=4"), short, fitting("fsdp=4", 1, 5.0)];
        rank(&mut tried);
        let order: Vec<&str> = tried.iter().map(|c| c.mesh.as_str()).collect();
        assert_eq!(order, ["fsdp=4", "data=2,fsdp=2", "data=4"]);
        assert_eq!(search_status(&tried), Some(0));
        assert_eq!(
            search_status(&tried[1..]),
            Some(crate::plan::cli::SHORT_OF_MEMORY_EXIT)
        );
        assert_eq!(search_status(&tried[2..]), None, "none compiled");
        let options = PlanOptions {
            run: RunOptions::default(),
            target: "tpu-v5e:2x2".into(),
            axle_exe: "axle".into(),
        };
        let search = Search {
            settings: Settings {
                fixed: Fixed {
                    remat: None,
                    micro_batches: None,
                },
                batch_size: 8,
                seq_len: 128,
                compiler_options_rule: None,
                compiler_options: vec![],
            },
            candidates: tried,
        };
        let text = render_search(&options, &search);
        let (ranked, failed) = text.split_once("failed:").unwrap();
        assert!(ranked.contains("| 1 | fsdp=4 |") && ranked.contains("| 2 | data=2,fsdp=2 |"));
        assert!(!ranked.contains("data=4 |"), "{text}");
        assert!(failed.contains("| data=4 | 1 | none | axle plan --search batch 6"));
        assert!(text.contains("batch size 8, seq len 128"), "{text}");
    }
}
