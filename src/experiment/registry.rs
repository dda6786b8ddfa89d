//! The registered experiments: every registered model config with the
//! learner, input (batch shape and synthetic task) and mesh rules it is
//! trained with.

use super::{Experiment, ExperimentConfig, InputConfig};
use crate::data::SyntheticTask;
use crate::learner::LearnerConfig;
use axle_modules::{CONFIG_NAMES, ModelConfig, registered_config};
use axle_partition::{LogicalRules, MeshRules};

/// Names of the registered experiments, in registry order.
pub const EXPERIMENT_NAMES: [&str; 8] = CONFIG_NAMES;

/// The smallest global batch of a registered experiment: the default mesh
/// rules split the batch up to 8 ways (`data=2,fsdp=4` on 8 CPU devices).
const MIN_BATCH: usize = 8;

/// The experiment called `name`, or an error listing the registered names.
pub fn experiment(name: &str) -> Result<Experiment, axle_modules::Error> {
    let registered = registered_config(name)?;
    let (synthetic, learner) = match &registered.config {
        ModelConfig::CausalLm(_) => (SyntheticTask::AffineTokens, LearnerConfig::default()),
        // The small non-LM models learn their tasks in a few hundred steps
        // at higher rates than the LMs' 1e-3 (the regressor's MSE falls 100x
        // in 300 steps at 1e-2, 30x at 3e-3).
        ModelConfig::EncoderClassifier(_) => (
            SyntheticTask::MarkerClassification,
            LearnerConfig::default().with_lr(3e-3),
        ),
        ModelConfig::Vit(_) => (
            SyntheticTask::OrientedStripes { noise: 1.0 },
            LearnerConfig::default().with_lr(3e-3),
        ),
        ModelConfig::MlpRegressor(_) => (
            SyntheticTask::TeacherRegression { noise: 0.0 },
            LearnerConfig::default().with_lr(1e-2),
        ),
    };
    Ok(Experiment {
        name: registered.name,
        config: ExperimentConfig {
            model: registered.config,
            learner,
            input: InputConfig {
                batch_size: registered.batch_size.max(MIN_BATCH),
                seq_len: registered.seq_len,
                synthetic,
            },
            sharding: LogicalRules::default(),
        },
        mesh_rules: MeshRules::default(),
    })
}
