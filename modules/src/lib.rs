//! axle-modules: where models are written, AXLearn-style.
//!
//! - Configs ([`Config`], [`ConfigNode`]): typed serde structs with defaults and required
//!   (`Option`) fields; parents fill in their children's dimensions when instantiating; dotted
//!   path get/set for the command line; a visitor ([`for_each_mut`]) that finds, edits or
//!   replaces every config of a type anywhere in a tree; a stable text dump for golden files.
//! - Modules ([`Module`]): built from a config by `new(cfg, path)`, they declare
//!   [`ParamSpec`]s (shape, dtype, initializer, fan axes, partition spec) under stable paths
//!   (`decoder/transformer/layers/3/attention/q_proj/weight`); [`init_params`] draws values
//!   from a seed, independently of the device count.
//! - Forward: each layer's `forward(&self, ctx, inputs...)` traces into compiler [`axle_compiler::Tensor`]s,
//!   reading parameters from a [`Ctx`] by path.
//! - Models ([`Model`]): the interface the step and the trainer see: parameter specs, named
//!   inputs for a batch shape ([`InputSpec`]), and a traced loss with its weight; summaries
//!   recorded on the [`Ctx`]. [`trace_loss`], [`loss_function`] and [`loss_and_grad_function`]
//!   turn any model into a compiler function. The models: [`CausalLm`], the BERT-style
//!   [`EncoderClassifier`], the vision transformer [`Vit`] and the [`MlpRegressor`].
//! - Layers, the models and their losses; the [`registry`] of named configs ([`ModelConfig`]
//!   holds any kind); [`modifiers`].

pub mod attention;
pub mod causal_lm;
pub mod classifier;
pub mod config;
pub mod config_path;
pub mod context;
pub mod dropout;
pub mod embedding;
pub mod encoder;
pub mod error;
pub mod feed_forward;
pub mod init;
pub mod kv_cache;
pub mod linear;
pub mod loss;
pub mod model;
pub mod modifiers;
pub mod module;
pub mod norm;
pub mod param;
pub mod registry;
pub mod regressor;
pub mod remat;
pub mod rope;
pub mod trace;
pub mod transformer;
pub mod vit;

pub use attention::{Attention, AttentionConfig};
pub use causal_lm::{
    Batch, CausalLm, CausalLmConfig, Decoder, DecoderConfig, INPUT_IDS, POSITIONS, SEGMENT_IDS,
    TARGET_LABELS,
};
pub use classifier::{EncoderClassifier, EncoderClassifierConfig};
pub use config::{Config, ConfigNode, find_all, for_each_mut, visit, visit_mut};
pub use context::Ctx;
pub use dropout::DropoutConfig;
pub use embedding::{Embedding, EmbeddingConfig};
pub use encoder::{EncoderTrunk, LABELS, Pooling};
pub use error::{Error, Result};
pub use feed_forward::{Activation, FeedForward, FeedForwardConfig};
pub use init::{init_param, init_params};
pub use kv_cache::KvCache;
pub use linear::{Linear, LinearConfig};
pub use loss::{CrossEntropyConfig, LossTerms, cross_entropy};
pub use model::{BatchShape, InputSpec, Inputs, LossOutput, Model, input};
pub use module::Module;
pub use norm::{LayerNormConfig, Norm, NormConfig, RmsNormConfig};
pub use param::{FanAxes, Initializer, ParamSpec, ParamTree, count_params};
pub use registry::{
    CONFIG_NAMES, MODEL_NAMES, ModelConfig, RegisteredConfig, RegisteredModel, registered_config,
    registered_model,
};
pub use regressor::{FEATURES, MlpRegressor, MlpRegressorConfig, TARGETS};
pub use remat::RematSpec;
pub use rope::{Llama3RopeScaling, RopeConfig, RopeScaling};
pub use trace::{
    LOSS, LOSS_WEIGHT, LossSignature, RNG_KEY, TracedLoss, declare_batch, declare_inputs,
    declare_params, loss_and_grad_function, loss_function, trace_loss,
};
pub use transformer::{Stack, StackConfig, TransformerLayer, TransformerLayerConfig};
pub use vit::{IMAGE, Vit, VitConfig};
