//! `axle plan --search`: plan several layouts of the same experiment on a
//! target and rank those that fit by the compiler's cost estimate, as
//! MaxText's estimator searches batch × remat by AOT compiles.

use super::{PlanError, PlanOptions, PlanReport, Verdict, plan};

/// The layouts tried for `devices` devices: every split of them into
/// `data` × `fsdp` (each axis a divisor), then the same with a `model` axis
/// of 2 when the count is even; each with 1 and 2 micro-batches
/// (`learner.micro_batches`). Meshes as `axle plan --mesh` takes them.
pub fn candidates(devices: usize) -> Vec<(String, usize)> {
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
        .flat_map(|mesh| [(mesh.clone(), 1), (mesh, 2)])
        .collect()
}

/// One candidate's outcome.
#[derive(Debug)]
pub struct Candidate {
    /// The mesh tried.
    pub mesh: String,
    /// Micro-batches tried.
    pub micro_batches: usize,
    /// The plan, or why it could not be made (a batch that does not split,
    /// a compiler error).
    pub result: Result<PlanReport, PlanError>,
}

impl Candidate {
    /// The compiler's per-device FLOPs where it fits, for ranking: lower is
    /// better; where the compiler gives no FLOPs (the CUDA plugin without a
    /// GPU), the peak bytes stand in.
    fn cost(&self) -> Option<f64> {
        let report = self.result.as_ref().ok()?;
        if !matches!(report.verdict, Verdict::Fits { .. }) {
            return None;
        }
        let compiled = report.compiled.as_ref()?;
        Some(compiled.flops.unwrap_or(compiled.peak as f64))
    }
}

/// Plans every candidate of [`candidates`] for the options' target (its
/// mesh is ignored) and returns them ranked: those that fit by cost, then
/// the rest in the order tried.
pub fn search(options: &PlanOptions) -> Result<Vec<Candidate>, PlanError> {
    let target = super::target(&options.target)?;
    let mut tried: Vec<Candidate> = candidates(target.devices)
        .into_iter()
        .map(|(mesh, micro_batches)| {
            let mut run = options.run.clone();
            run.mesh = Some(mesh.clone());
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
            }
        })
        .collect();
    tried.sort_by(|a, b| match (a.cost(), b.cost()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    Ok(tried)
}

/// The ranking as a table: mesh, micro-batches, peak, FLOPs, verdict.
pub fn render_search(candidates: &[Candidate]) -> String {
    let mut out = String::from(
        "| rank | mesh | micro-batches | peak GiB | FLOPs / device | verdict |\n|---|---|---|---|---|---|\n",
    );
    for (i, c) in candidates.iter().enumerate() {
        let row = match &c.result {
            Ok(r) => {
                let (peak, flops) =
                    r.compiled
                        .as_ref()
                        .map_or(("-".to_string(), "-".to_string()), |c| {
                            (
                                format!("{:.3}", c.peak as f64 / super::GIB),
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
                format!("{peak} | {flops} | {verdict}")
            }
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default().replace('|', "/");
                format!("- | - | {first}")
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {row} |\n",
            i + 1,
            c.mesh,
            c.micro_batches
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_devices_give_every_data_fsdp_split_and_two_with_a_model_axis() {
        let meshes: Vec<String> = candidates(4)
            .into_iter()
            .filter(|(_, m)| *m == 1)
            .map(|(mesh, _)| mesh)
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
        assert_eq!(candidates(4).len(), 10, "each with 1 and 2 micro-batches");
        assert_eq!(
            candidates(1),
            [("data=1".to_string(), 1), ("data=1".to_string(), 2)]
        );
    }
}
