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

use super::{PlanError, PlanOptions, PlanReport, Verdict, plan};

/// The remat policies tried (the `remat` modifier's values), in order of
/// the recomputation they add: none, the non-matmul ops (`dots` saves the
/// `dot_general` outputs), everything (`full`).
pub const REMAT_POLICIES: [&str; 3] = ["none", "dots", "full"];

/// The layouts tried for `devices` devices: every split of them into
/// `data` × `fsdp` (each axis a divisor), then the same with a `model` axis
/// of 2 when the count is even; each with 1 and 2 micro-batches
/// (`learner.micro_batches`) and each of [`REMAT_POLICIES`]. Meshes as
/// `axle plan --mesh` takes them.
pub fn candidates(devices: usize) -> Vec<(String, usize, &'static str)> {
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
    meshes
        .into_iter()
        .flat_map(|mesh| {
            [1, 2].into_iter().flat_map(move |micro_batches| {
                let mesh = mesh.clone();
                REMAT_POLICIES
                    .into_iter()
                    .map(move |remat| (mesh.clone(), micro_batches, remat))
            })
        })
        .collect()
}

/// One candidate's outcome.
#[derive(Debug)]
pub struct Candidate {
    /// The mesh tried.
    pub mesh: String,
    /// Micro-batches tried.
    pub micro_batches: usize,
    /// The remat policy tried (one of [`REMAT_POLICIES`]).
    pub remat: &'static str,
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

/// Plans every candidate of [`candidates`] for the options' target (its
/// mesh is ignored; the candidate's `remat=POLICY` modifier comes after the
/// options' own modifiers, so it wins) and returns them ranked: those that
/// fit by cost, then the rest in the order tried. Prints a progress line
/// per candidate on stderr (each is a compile of seconds to minutes).
pub fn search(options: &PlanOptions) -> Result<Vec<Candidate>, PlanError> {
    let target = super::target(&options.target)?;
    let all = candidates(target.devices);
    let count = all.len();
    let mut tried: Vec<Candidate> = all
        .into_iter()
        .enumerate()
        .map(|(i, (mesh, micro_batches, remat))| {
            eprintln!(
                "[{}/{count}] planning mesh {mesh}, {micro_batches} micro-batch{}, remat {remat}",
                i + 1,
                if micro_batches == 1 { "" } else { "es" }
            );
            let mut run = options.run.clone();
            run.mesh = Some(mesh.clone());
            run.modifiers.push(format!("remat={remat}"));
            run.overrides
                .push(format!("learner.micro_batches={micro_batches}"));
            let one = PlanOptions {
                run,
                ..options.clone()
            };
            Candidate {
                result: plan(&one),
                mesh,
                micro_batches,
                remat,
            }
        })
        .collect();
    rank(&mut tried);
    Ok(tried)
}

/// Sorts candidates that fit by cost, lowest first, then the rest in their
/// order (a stable sort).
fn rank(tried: &mut [Candidate]) {
    tried.sort_by(|a, b| match (a.cost(), b.cost()) {
        (Some(x), Some(y)) => x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// The ranking as a table under a header naming the experiment, target and
/// ranking figure: mesh, micro-batches, remat policy, peak, the compiler's
/// FLOPs, the step FLOPs estimate, verdict.
pub fn render_search(options: &PlanOptions, candidates: &[Candidate]) -> String {
    let experiment = options
        .run
        .experiment
        .as_deref()
        .unwrap_or(crate::run::DEFAULT_EXPERIMENT);
    let mut out = format!(
        "{experiment} on {}: meshes that fit, ranked by step FLOPs per device \
         (the compiler's FLOPs x micro-batches: its cost analysis counts the \
         accumulation loop's body once; remat's recomputation included), \
         else by remat policy (none, dots, full) and peak\n\n",
        options.target
    );
    out.push_str(
        "| rank | mesh | micro-batches | remat | peak GiB | FLOPs / device (compiler) | step FLOPs / device | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (i, c) in candidates.iter().enumerate() {
        let row = match &c.result {
            Ok(r) => {
                let (peak, flops) =
                    r.compiled
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
                format!("{peak} | {flops} | {step} | {verdict}")
            }
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default().replace('|', "/");
                format!("- | - | - | {first}")
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {row} |\n",
            i + 1,
            c.mesh,
            c.micro_batches,
            c.remat
        ));
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
        };
        Candidate {
            mesh: mesh.into(),
            micro_batches,
            remat,
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
        let meshes: Vec<String> = candidates(4)
            .into_iter()
            .filter(|(_, m, remat)| *m == 1 && *remat == "none")
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
            candidates(4).len(),
            30,
            "each with 1 and 2 micro-batches and 3 remat policies"
        );
        let one: Vec<(usize, &str)> = candidates(1)
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
        let order: Vec<&str> = tried.iter().map(|c| c.remat).collect();
        assert_eq!(order, ["none", "dots", "full"]);
        // GPU (no FLOPs): the same order by policy, not the lower peak;
        // the peak breaks ties between meshes of one policy.
        let mut tried = vec![
            fitting_with("full", "fsdp=4", 1, None, 10),
            fitting_with("none", "data=4", 1, None, 30),
            fitting_with("none", "fsdp=4", 1, None, 20),
        ];
        rank(&mut tried);
        let order: Vec<(&str, &str)> = tried.iter().map(|c| (c.remat, c.mesh.as_str())).collect();
        assert_eq!(
            order,
            [("none", "fsdp=4"), ("none", "data=4"), ("full", "fsdp=4")]
        );
    }
}
