//! What a checkpoint records about its run (`meta.json`'s `run` map), so
//! that evaluation and resumption rebuild or check the run.

use super::{RunError, RunOptions, Setup};
use crate::checkpoint::{CheckpointError, Meta};
use crate::experiment::ExperimentConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// The experiment name (or the name given to [`super::Setup::new`]).
pub const EXPERIMENT: &str = "experiment";
/// The resolved experiment config, as JSON.
pub const CONFIG: &str = "config";
/// Modifiers, as a JSON list.
pub const MODIFIERS: &str = "modifiers";
/// Overrides, as a JSON list.
pub const OVERRIDES: &str = "overrides";
/// The data file, empty for the synthetic task.
pub const DATA: &str = "data";
/// The mesh.
pub const MESH: &str = "mesh";
/// Batches per evaluation.
pub const EVAL_BATCHES: &str = "eval_batches";

impl RunOptions {
    /// What checkpoints record about this run, so that evaluation and
    /// resumption rebuild it with no other flag.
    pub(super) fn record(&self, setup: &Setup) -> BTreeMap<String, String> {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        let mut run = BTreeMap::from([
            (EXPERIMENT.to_string(), setup.name.clone()),
            (MODIFIERS.to_string(), json(&self.modifiers)),
            (OVERRIDES.to_string(), json(&self.overrides)),
            (
                DATA.to_string(),
                self.data
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
            ),
            (MESH.to_string(), setup.mesh.to_string()),
            (EVAL_BATCHES.to_string(), self.eval_batches.to_string()),
        ]);
        if let Some(config) = &setup.config {
            run.insert(
                CONFIG.to_string(),
                serde_json::to_string(config).expect("configs serialize"),
            );
        }
        run
    }
}

/// The lines of two config dumps that differ, for error messages.
pub(super) fn differences(checkpoint: &ExperimentConfig, run: &ExperimentConfig) -> String {
    let (a, b) = (checkpoint.dump(), run.dump());
    let a_lines: Vec<&str> = a.lines().collect();
    let b_lines: Vec<&str> = b.lines().collect();
    let mut out = Vec::new();
    for line in &a_lines {
        if !b_lines.contains(line) {
            out.push(format!("  checkpoint: {line}"));
        }
    }
    for line in &b_lines {
        if !a_lines.contains(line) {
            out.push(format!("  this run:   {line}"));
        }
    }
    out.join("\n")
}

/// The config a checkpoint recorded, if it recorded one.
pub(super) fn recorded_config(
    meta: &Meta,
    dir: &Path,
) -> Result<Option<ExperimentConfig>, RunError> {
    meta.run
        .get(CONFIG)
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                RunError::Checkpoint(CheckpointError::Corrupt {
                    path: dir.join("meta.json"),
                    message: format!("the recorded config does not parse: {e}"),
                })
            })
        })
        .transpose()
}
