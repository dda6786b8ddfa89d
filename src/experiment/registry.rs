//! The registered experiments: every registered model with the learner,
//! input and mesh rules it is trained with.

use super::{Experiment, ExperimentConfig, InputConfig};
use crate::data::SyntheticTask;
use crate::learner::LearnerConfig;
use axle_modules::{MODEL_NAMES, ModelConfig, registered_model};
use axle_partition::{LogicalRules, MeshRules};

/// Names of the registered experiments, in registry order.
pub const EXPERIMENT_NAMES: [&str; 5] = MODEL_NAMES;

/// The smallest global batch of a registered experiment: the default mesh
/// rules split the batch up to 8 ways (`data=2,fsdp=4` on 8 CPU devices).
const MIN_BATCH: usize = 8;

/// The experiment called `name`, or an error listing the registered names.
pub fn experiment(name: &str) -> Result<Experiment, axle_modules::Error> {
    let registered = registered_model(name)?;
    Ok(Experiment {
        name: registered.name,
        config: ExperimentConfig {
            model: ModelConfig::CausalLm(registered.config),
            learner: LearnerConfig::default(),
            input: InputConfig {
                batch_size: registered.batch_size.max(MIN_BATCH),
                seq_len: registered.seq_len,
                synthetic: SyntheticTask::AffineTokens,
            },
            sharding: LogicalRules::default(),
        },
        mesh_rules: MeshRules::default(),
    })
}
