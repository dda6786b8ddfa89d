//! Registered models by name: ready-made configs with the sequence length and batch size they
//! are trained and benchmarked with. [`ModelConfig`] holds the config of any model kind and
//! builds it as a [`Model`]; [`registered_config`] serves every registered name,
//! [`registered_model`] the causal LMs.

use std::any::Any;

use serde::{Deserialize, Serialize};

use crate::attention::AttentionConfig;
use crate::causal_lm::{CausalLm, CausalLmConfig, DecoderConfig};
use crate::classifier::{EncoderClassifier, EncoderClassifierConfig};
use crate::config::ConfigNode;
use crate::embedding::EmbeddingConfig;
use crate::error::{Error, Result};
use crate::feed_forward::{Activation, FeedForwardConfig};
use crate::linear::LinearConfig;
use crate::model::Model;
use crate::norm::{LayerNormConfig, NormConfig, RmsNormConfig};
use crate::param::Initializer;
use crate::regressor::{MlpRegressor, MlpRegressorConfig};
use crate::rope::RopeConfig;
use crate::transformer::{StackConfig, TransformerLayerConfig};
use crate::vit::{Vit, VitConfig};
use axle_partition::LogicalAxis;

/// A registered model: its config and the training shape it is used with.
#[derive(Clone, Debug)]
pub struct RegisteredModel {
    /// The registry name (`llama-tiny`, ...).
    pub name: &'static str,
    /// The model config.
    pub config: CausalLmConfig,
    /// Training sequence length.
    pub seq_len: usize,
    /// Training batch size.
    pub batch_size: usize,
}

/// The names of all registered models, in registry order.
pub const MODEL_NAMES: [&str; 5] = [
    "llama-tiny",
    "gpt2-tiny",
    "llama-small",
    "llama2-7b",
    "llama2-70b",
];

/// The shape of a Llama-family model.
struct LlamaShape {
    vocab: usize,
    dim: usize,
    layers: usize,
    heads: usize,
    kv_heads: Option<usize>,
    hidden: usize,
    norm_eps: f64,
}

/// Llama: RMSNorm, RoPE (theta 10000), SwiGLU, no biases, untied LM head.
fn llama(shape: LlamaShape) -> CausalLmConfig {
    let norm = NormConfig::RmsNorm(RmsNormConfig {
        input_dim: None,
        eps: shape.norm_eps,
    });
    let layer = TransformerLayerConfig {
        attention_norm: norm.clone(),
        attention: AttentionConfig {
            num_heads: Some(shape.heads),
            num_kv_heads: shape.kv_heads,
            rope: Some(RopeConfig::with_theta(10000.0)),
            ..AttentionConfig::default()
        },
        ffn_norm: norm.clone(),
        feed_forward: FeedForwardConfig {
            hidden_dim: Some(shape.hidden),
            activation: Activation::Silu,
            gated: true,
            ..FeedForwardConfig::default()
        },
        ..TransformerLayerConfig::default()
    };
    CausalLmConfig {
        decoder: DecoderConfig {
            vocab_size: Some(shape.vocab),
            dim: Some(shape.dim),
            transformer: StackConfig {
                num_layers: Some(shape.layers),
                layers: vec![layer],
                ..StackConfig::default()
            },
            output_norm: norm,
            lm_head: Some(
                LinearConfig::default().with_roles(LogicalAxis::Embed, LogicalAxis::Vocab),
            ),
            ..DecoderConfig::default()
        },
        ..CausalLmConfig::default()
    }
}

/// GPT-2 style: learned positions, LayerNorm with bias, tanh-GELU MLP, biases, tied embeddings.
fn gpt2_tiny() -> CausalLmConfig {
    let norm = NormConfig::LayerNorm(LayerNormConfig::default());
    let linear = LinearConfig {
        bias: true,
        ..LinearConfig::default()
    };
    let output_linear = LinearConfig {
        bias: true,
        ..LinearConfig::output_projection()
    };
    let layer = TransformerLayerConfig {
        attention_norm: norm.clone(),
        attention: AttentionConfig {
            num_heads: Some(4),
            input_linear: AttentionConfig::default().input_linear.with_bias(),
            output_linear: AttentionConfig::default().output_linear.with_bias(),
            ..AttentionConfig::default()
        },
        ffn_norm: norm.clone(),
        feed_forward: FeedForwardConfig {
            hidden_dim: Some(1024),
            activation: Activation::GeluTanh,
            gated: false,
            input_linear: linear,
            output_linear,
            ..FeedForwardConfig::default()
        },
        ..TransformerLayerConfig::default()
    };
    CausalLmConfig {
        decoder: DecoderConfig {
            vocab_size: Some(1024),
            dim: Some(256),
            position_embedding: Some(EmbeddingConfig {
                num_embeddings: Some(128),
                ..EmbeddingConfig::default()
            }),
            transformer: StackConfig {
                num_layers: Some(4),
                layers: vec![layer],
                ..StackConfig::default()
            },
            output_norm: norm,
            lm_head: None,
            ..DecoderConfig::default()
        },
        ..CausalLmConfig::default()
    }
}

/// The registered causal LM called `name`, or an error: naming [`registered_config`] for a
/// registered model of another kind, listing the causal LMs otherwise.
pub fn registered_model(name: &str) -> Result<RegisteredModel> {
    let (config, seq_len, batch_size) = match name {
        "llama-tiny" => (
            llama(LlamaShape {
                vocab: 1024,
                dim: 256,
                layers: 4,
                heads: 4,
                kv_heads: None,
                hidden: 704,
                norm_eps: 1e-6,
            }),
            128,
            8,
        ),
        "gpt2-tiny" => (gpt2_tiny(), 128, 8),
        "llama-small" => (
            llama(LlamaShape {
                vocab: 8192,
                dim: 640,
                layers: 8,
                heads: 10,
                kv_heads: None,
                hidden: 1728,
                norm_eps: 1e-6,
            }),
            256,
            8,
        ),
        "llama2-7b" => (
            llama(LlamaShape {
                vocab: 32000,
                dim: 4096,
                layers: 32,
                heads: 32,
                kv_heads: None,
                hidden: 11008,
                norm_eps: 1e-5,
            }),
            4096,
            1,
        ),
        "llama2-70b" => (
            llama(LlamaShape {
                vocab: 32000,
                dim: 8192,
                layers: 80,
                heads: 64,
                kv_heads: Some(8),
                hidden: 28672,
                norm_eps: 1e-5,
            }),
            4096,
            1,
        ),
        _ if CONFIG_NAMES.contains(&name) => {
            return Err(Error::Inconsistent {
                path: "kind".into(),
                message: format!(
                    "`{name}` is not a causal LM; `registered_config` serves every model kind"
                ),
            });
        }
        _ => {
            return Err(Error::UnknownModel {
                name: name.to_string(),
                known: MODEL_NAMES.join(", "),
            });
        }
    };
    let name = MODEL_NAMES
        .into_iter()
        .find(|n| *n == name)
        .expect("every matched name is registered");
    Ok(RegisteredModel {
        name,
        config,
        seq_len,
        batch_size,
    })
}

/// The config of a model of any kind. Serialized with a `kind` tag next to the inner config's
/// fields (`kind = "vit"`, `patch_size = 4`), so dotted paths are those of the inner config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// A decoder-only causal language model.
    CausalLm(CausalLmConfig),
    /// A BERT-style text classifier.
    EncoderClassifier(EncoderClassifierConfig),
    /// A vision transformer classifier.
    Vit(VitConfig),
    /// An MLP regressor.
    MlpRegressor(MlpRegressorConfig),
}

impl ModelConfig {
    /// Builds the model; errors name the config path at fault.
    pub fn build(&self) -> Result<Box<dyn Model>> {
        Ok(match self {
            ModelConfig::CausalLm(c) => Box::new(CausalLm::new(c)?),
            ModelConfig::EncoderClassifier(c) => Box::new(EncoderClassifier::new(c)?),
            ModelConfig::Vit(c) => Box::new(Vit::new(c)?),
            ModelConfig::MlpRegressor(c) => Box::new(MlpRegressor::new(c)?),
        })
    }
}

impl ConfigNode for ModelConfig {
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn ConfigNode)) {
        match self {
            ModelConfig::CausalLm(c) => f(c),
            ModelConfig::EncoderClassifier(c) => f(c),
            ModelConfig::Vit(c) => f(c),
            ModelConfig::MlpRegressor(c) => f(c),
        }
    }
    fn children(&self, f: &mut dyn FnMut(&dyn ConfigNode)) {
        match self {
            ModelConfig::CausalLm(c) => f(c),
            ModelConfig::EncoderClassifier(c) => f(c),
            ModelConfig::Vit(c) => f(c),
            ModelConfig::MlpRegressor(c) => f(c),
        }
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A registered config of any model kind and the training shape it is used with.
#[derive(Clone, Debug)]
pub struct RegisteredConfig {
    /// The registry name (`bert-tiny`, ...).
    pub name: &'static str,
    /// The model config.
    pub config: ModelConfig,
    /// Training batch size.
    pub batch_size: usize,
    /// Training sequence length: tokens per example for sequence models, patches per image for
    /// the ViT, 1 for the regressor (models of fixed-size inputs ignore it; it scales
    /// tokens-per-second figures).
    pub seq_len: usize,
}

/// The names of every registered config, causal LMs ([`MODEL_NAMES`]) first.
pub const CONFIG_NAMES: [&str; 8] = [
    "llama-tiny",
    "gpt2-tiny",
    "llama-small",
    "llama2-7b",
    "llama2-70b",
    "bert-tiny",
    "vit-tiny",
    "mlp-regressor",
];

/// The registered config called `name`, of any kind, or an error listing the registered names.
pub fn registered_config(name: &str) -> Result<RegisteredConfig> {
    let (config, batch_size, seq_len) = match name {
        "bert-tiny" => (ModelConfig::EncoderClassifier(bert_tiny()), 32, 32),
        "vit-tiny" => (ModelConfig::Vit(vit_tiny()), 32, 16),
        "mlp-regressor" => (ModelConfig::MlpRegressor(mlp_regressor()), 64, 1),
        _ if MODEL_NAMES.contains(&name) => {
            let lm = registered_model(name)?;
            (ModelConfig::CausalLm(lm.config), lm.batch_size, lm.seq_len)
        }
        _ => {
            return Err(Error::UnknownModel {
                name: name.to_string(),
                known: CONFIG_NAMES.join(", "),
            });
        }
    };
    let name = CONFIG_NAMES
        .into_iter()
        .find(|n| *n == name)
        .expect("every matched name is registered");
    Ok(RegisteredConfig {
        name,
        config,
        batch_size,
        seq_len,
    })
}

/// A stack of `num_layers` layers configured as `layer`: the one place the configs below
/// build a [`StackConfig`].
fn stack(num_layers: usize, layer: TransformerLayerConfig) -> StackConfig {
    StackConfig {
        num_layers: Some(num_layers),
        layers: vec![layer],
        ..StackConfig::default()
    }
}

/// The encoder layer of BERT and ViT (pre-norm here): LayerNorm with bias, bidirectional
/// attention with biased projections, exact-GELU MLP of width `hidden` with biases.
fn encoder_layer(heads: usize, hidden: usize) -> TransformerLayerConfig {
    let norm = NormConfig::LayerNorm(LayerNormConfig::default());
    TransformerLayerConfig {
        attention_norm: norm.clone(),
        attention: AttentionConfig {
            num_heads: Some(heads),
            causal: false,
            input_linear: AttentionConfig::default().input_linear.with_bias(),
            output_linear: AttentionConfig::default().output_linear.with_bias(),
            ..AttentionConfig::default()
        },
        ffn_norm: norm,
        feed_forward: FeedForwardConfig {
            hidden_dim: Some(hidden),
            activation: Activation::Gelu,
            gated: false,
            input_linear: LinearConfig::default().with_bias(),
            output_linear: LinearConfig::output_projection().with_bias(),
            ..FeedForwardConfig::default()
        },
        ..TransformerLayerConfig::default()
    }
}

/// A classification head with bias whose weights start at `init`, `(embed, _)`: the few
/// classes are not split.
fn head(init: Initializer) -> LinearConfig {
    LinearConfig {
        bias: true,
        weight_init: init,
        ..LinearConfig::default()
    }
    .with_roles(LogicalAxis::Embed, LogicalAxis::Replicated)
}

/// bert-tiny: vocabulary 64, dim 64, 2 layers of 4 heads and MLP 256, 32 learned positions,
/// 4 classes, mean pooling; head initialized N(0, 0.02) as in BERT.
fn bert_tiny() -> EncoderClassifierConfig {
    EncoderClassifierConfig {
        vocab_size: Some(64),
        dim: Some(64),
        num_classes: Some(4),
        position_embedding: Some(EmbeddingConfig {
            num_embeddings: Some(32),
            ..EmbeddingConfig::default()
        }),
        transformer: stack(2, encoder_layer(4, 256)),
        output_norm: NormConfig::LayerNorm(LayerNormConfig::default()),
        head: head(Initializer::Normal { std: 0.02 }),
        ..EncoderClassifierConfig::default()
    }
}

/// vit-tiny: 16x16 grayscale images in 4x4 patches (16 patches), dim 64, 2 layers of 4 heads
/// and MLP 256, learned positions, 4 classes, mean pooling; zero-initialized head as in ViT.
fn vit_tiny() -> VitConfig {
    VitConfig {
        image_size: Some(16),
        patch_size: Some(4),
        channels: Some(1),
        dim: Some(64),
        num_classes: Some(4),
        patch_embedding: LinearConfig {
            bias: true,
            ..LinearConfig::default()
        },
        position_embedding: Some(EmbeddingConfig::default()),
        transformer: stack(2, encoder_layer(4, 256)),
        output_norm: NormConfig::LayerNorm(LayerNormConfig::default()),
        head: head(Initializer::Zeros),
        ..VitConfig::default()
    }
}

/// mlp-regressor: 16 features, 2 hidden layers of 64 with SiLU, biases.
fn mlp_regressor() -> MlpRegressorConfig {
    MlpRegressorConfig {
        input_dim: Some(16),
        hidden_dims: vec![64, 64],
        activation: Activation::Silu,
        ..MlpRegressorConfig::default()
    }
}
