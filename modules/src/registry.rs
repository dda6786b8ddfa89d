//! Registered models by name: ready-made [`CausalLmConfig`]s with the sequence length and batch
//! size they are trained and benchmarked with.

use crate::attention::AttentionConfig;
use crate::causal_lm::{CausalLmConfig, DecoderConfig};
use crate::embedding::EmbeddingConfig;
use crate::error::{Error, Result};
use crate::feed_forward::{Activation, FeedForwardConfig};
use crate::linear::LinearConfig;
use crate::norm::{LayerNormConfig, NormConfig, RmsNormConfig};
use crate::rope::RopeConfig;
use crate::transformer::{StackConfig, TransformerLayerConfig};
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
            rope: Some(RopeConfig { theta: 10000.0 }),
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

/// The registered model called `name`, or an error listing the registered names.
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

/// The config of any registered model kind.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// A decoder-only causal language model.
    CausalLm(CausalLmConfig),
}

impl crate::ConfigNode for ModelConfig {
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn crate::ConfigNode)) {
        match self {
            ModelConfig::CausalLm(c) => f(c),
        }
    }
    fn children(&self, f: &mut dyn FnMut(&dyn crate::ConfigNode)) {
        match self {
            ModelConfig::CausalLm(c) => f(c),
        }
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ModelConfig {
    /// The model this config describes.
    pub fn build(&self) -> Result<Box<dyn crate::Model>> {
        Ok(match self {
            ModelConfig::CausalLm(c) => Box::new(crate::CausalLm::new(c)?),
        })
    }
}
