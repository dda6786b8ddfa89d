//! Experiments, as AXLearn's `experiments/` are: a named, complete
//! description of a training run (model config, learner, input, mesh
//! rules) that the command line selects with `--experiment NAME`, changes
//! with `--modifier NAME[=ARGS]` (cross-cutting config changes, in order)
//! and `--set path=value` (single fields, after the modifiers). A mesh rule
//! may name modifiers of its own, applied when it is chosen, before the
//! command line's.

mod modifiers;
mod registry;

pub use modifiers::{MODIFIERS, ModifierInfo, apply_modifier};
pub use registry::{EXPERIMENT_NAMES, experiment};

use crate::data::SyntheticTask;
use crate::learner::LearnerConfig;
use axle_modules::{ConfigNode, ModelConfig, config_path};
use axle_partition::{LogicalRules, MeshRules};
use serde::{Deserialize, Serialize};

/// What an experiment trains on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputConfig {
    /// Examples per batch (global).
    pub batch_size: usize,
    /// Tokens per example, for models that read sequences.
    pub seq_len: usize,
    /// The synthetic task used when no data file is given.
    pub synthetic: SyntheticTask,
}

/// The config of an experiment: everything `axle config` prints and
/// `--set` can change (`learner.`, `input.` and `sharding.` paths address
/// the learner, the input and the logical rules, e.g.
/// `sharding.mlp=["model"]`; any other path, with or without a `model.`
/// prefix, the model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    /// The model.
    pub model: ModelConfig,
    /// The learner.
    pub learner: LearnerConfig,
    /// The input.
    pub input: InputConfig,
    /// The logical rules: which mesh axes each role the layers name
    /// (`batch`, `embed`, `mlp`, ...) is split over. Recorded configs
    /// without it take the defaults.
    #[serde(default)]
    pub sharding: LogicalRules,
}

impl ConfigNode for ExperimentConfig {
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn ConfigNode)) {
        f(&mut self.model);
    }
    fn children(&self, f: &mut dyn FnMut(&dyn ConfigNode)) {
        f(&self.model);
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ExperimentConfig {
    /// Applies `path=value` overrides in order; see the type's doc for paths.
    pub fn apply_overrides<S: AsRef<str>>(
        &mut self,
        overrides: &[S],
    ) -> Result<(), axle_modules::Error> {
        for item in overrides {
            let item = item.as_ref();
            let (path, value) = item
                .split_once('=')
                .ok_or_else(|| axle_modules::Error::BadOverride(item.to_string()))?;
            let path = path.trim();
            let full = if ["model", "learner", "input", "sharding"]
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}.")))
            {
                path.to_string()
            } else {
                format!("model.{path}")
            };
            config_path::set(self, &full, value.trim()).map_err(|e| match e {
                axle_modules::Error::InvalidValue {
                    path,
                    value,
                    reason,
                } if path.ends_with(".kind") => axle_modules::Error::InvalidValue {
                    reason: format!(
                        "{reason} (to switch kind, set the whole object with only the fields that \
                         differ from the new kind's defaults: {}={{\"kind\":{value:?}}})",
                        path.trim_end_matches(".kind")
                    ),
                    path,
                    value,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// The stable text form: one `path = value` line per leaf, sorted.
    pub fn dump(&self) -> String {
        config_path::dump(self)
    }
}

/// A registered experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Its name (`llama-tiny`, `bert-tiny`, ...).
    pub name: &'static str,
    /// Model, learner and input.
    pub config: ExperimentConfig,
    /// How it picks a mesh (and modifiers) per hardware.
    pub mesh_rules: MeshRules,
}

/// The config of experiment `name` (`hf:DIR`: the Hugging Face model in
/// `DIR`) after `modifiers` (in order) and
/// `overrides`, without mesh rules (what `axle config` prints).
pub fn resolve_config<S: AsRef<str>>(
    name: &str,
    modifiers: &[S],
    overrides: &[S],
) -> Result<ExperimentConfig, String> {
    let mut config = match name.strip_prefix(crate::hf::HF_PREFIX) {
        Some(dir) => {
            crate::hf::experiment(std::path::Path::new(dir))
                .map_err(|e| e.to_string())?
                .config
        }
        None => experiment(name).map_err(|e| e.to_string())?.config,
    };
    for m in modifiers {
        apply_modifier(&mut config, m.as_ref())?;
    }
    config
        .apply_overrides(overrides)
        .map_err(|e| e.to_string())?;
    Ok(config)
}
