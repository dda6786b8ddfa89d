//! `config.json` of a Hugging Face causal LM to and from an axle [`CausalLmConfig`], and the
//! experiment (`--experiment hf:DIR`) that trains such a model.
//!
//! Field names and defaults follow `transformers`' `LlamaConfig`, `MistralConfig`,
//! `Qwen2Config` and `GPT2Config` (`models/*/configuration_*.py`).

use super::{HfError, Result, io};
use crate::data::SyntheticTask;
use crate::experiment::{Experiment, ExperimentConfig, InputConfig};
use crate::learner::LearnerConfig;
use axle_modules::{
    Activation, AttentionConfig, CausalLmConfig, DecoderConfig, EmbeddingConfig, FeedForwardConfig,
    LayerNormConfig, LinearConfig, Llama3RopeScaling, ModelConfig, NormConfig, RmsNormConfig,
    RopeConfig, RopeScaling, StackConfig, TransformerLayerConfig,
};
use axle_partition::{LogicalAxis, LogicalRules, MeshRules};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The model families this converter reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM`: RMSNorm, RoPE (optionally Llama 3 scaled), SwiGLU, GQA.
    Llama,
    /// `MistralForCausalLM`: Llama with a sliding attention window.
    Mistral,
    /// `Qwen2ForCausalLM`: Llama with biases on the q, k and v projections.
    Qwen2,
    /// `GPT2LMHeadModel`: learned positions, LayerNorm with bias, tanh-GELU MLP, fused
    /// `c_attn`, `Conv1D` weights stored `(in, out)`, LM head tied to the token embedding.
    Gpt2,
}

impl Family {
    /// The `architectures` entry of `config.json`.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Llama => "LlamaForCausalLM",
            Family::Mistral => "MistralForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Gpt2 => "GPT2LMHeadModel",
        }
    }

    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
            Family::Gpt2 => "gpt2",
        }
    }

    /// The family of an `architectures` entry or a `model_type`.
    fn parse(name: &str) -> Option<Family> {
        [Family::Llama, Family::Mistral, Family::Qwen2, Family::Gpt2]
            .into_iter()
            .find(|f| name == f.architecture() || name == f.model_type())
    }
}

/// A parsed `config.json`: the family, the axle model config and the longest sequence the
/// model was made for (`max_position_embeddings`, GPT-2's `n_positions`).
#[derive(Clone, Debug, PartialEq)]
pub struct HfModel {
    /// The family.
    pub family: Family,
    /// The equivalent axle model.
    pub config: CausalLmConfig,
    /// The longest sequence of the model.
    pub max_positions: usize,
}

/// The longest training sequence of an `hf:DIR` experiment: the model's own limit when it is
/// shorter.
const DEFAULT_SEQ_LEN: usize = 128;
/// The batch size of an `hf:DIR` experiment (the registered experiments' smallest).
const DEFAULT_BATCH: usize = 8;

/// Reads `dir/config.json`. Errors: [`HfError::Io`], [`HfError::Malformed`],
/// [`HfError::UnknownArchitecture`] naming the architecture, [`HfError::Config`] naming a field
/// that is missing, nonsense (a count of 0, an epsilon or `rope_theta` at or below 0, key/value
/// heads that do not divide the heads) or that axle cannot express (another `rope_scaling` type, Qwen2's per-layer
/// sliding windows, a `head_dim` other than `hidden_size / num_attention_heads`, ...).
pub fn read_config(dir: &Path) -> Result<HfModel> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| HfError::Malformed {
        path: path.clone(),
        message: format!("not JSON: {e}"),
    })?;
    let fields = Fields {
        json: json.as_object().cloned().unwrap_or_default(),
        path,
    };
    let architecture = match fields.json.get("architectures").and_then(Value::as_array) {
        Some(list) => list.first().and_then(Value::as_str).unwrap_or_default(),
        None => fields
            .json
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    }
    .to_string();
    let family = Family::parse(&architecture).ok_or_else(|| HfError::UnknownArchitecture {
        architecture: if architecture.is_empty() {
            "(none: no architectures or model_type)".into()
        } else {
            architecture
        },
        path: fields.path.clone(),
    })?;
    match family {
        Family::Gpt2 => fields.gpt2(),
        _ => fields.llama(family),
    }
}

/// The experiment of the Hugging Face model in `dir` (`--experiment hf:DIR`): its model, the
/// default learner, batches of 8 sequences of at most 128 tokens (the model's own limit when
/// shorter) on the affine-token synthetic task, and the default sharding and mesh rules.
/// Errors: [`HfError::ModelPathIsFile`] when `dir` is a file, [`HfError::ModelDirGone`] when
/// it is not there (a checkpoint of `hf:DIR` whose model was moved), and those of
/// [`read_config`].
pub fn experiment(dir: &Path) -> Result<Experiment> {
    if dir.is_file() {
        return Err(HfError::ModelPathIsFile {
            path: dir.to_path_buf(),
        });
    }
    if !dir.is_dir() {
        return Err(HfError::ModelDirGone {
            dir: dir.to_path_buf(),
        });
    }
    let model = read_config(dir)?;
    Ok(Experiment {
        name: "hf",
        config: ExperimentConfig {
            model: ModelConfig::CausalLm(model.config),
            learner: LearnerConfig::default(),
            input: InputConfig {
                batch_size: DEFAULT_BATCH,
                seq_len: model.max_positions.min(DEFAULT_SEQ_LEN),
                synthetic: SyntheticTask::AffineTokens,
            },
            sharding: LogicalRules::default(),
        },
        mesh_rules: MeshRules::default(),
    })
}

/// The fields of a `config.json`, with the file for errors.
struct Fields {
    json: Map<String, Value>,
    path: PathBuf,
}

impl Fields {
    fn error(&self, field: &str, message: impl Into<String>) -> HfError {
        HfError::Config {
            path: self.path.clone(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.json.get(field).filter(|v| !v.is_null())
    }

    fn usize(&self, field: &str) -> Result<usize> {
        self.usize_or(field, None)
    }

    /// A count (every count of a config.json is at least 1: sizes, heads, layers, positions).
    fn usize_or(&self, field: &str, default: Option<usize>) -> Result<usize> {
        match self.get(field) {
            Some(v) => v
                .as_u64()
                .filter(|&n| n >= 1)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    self.error(field, format!("expected a count of at least 1, got {v}"))
                }),
            None => default.ok_or_else(|| self.error(field, "missing")),
        }
    }

    /// A finite number above 0 (the config.json numbers axle reads are epsilons and RoPE
    /// bases, which are meaningless at or below 0).
    fn positive_f64_or(&self, field: &str, default: f64) -> Result<f64> {
        match self.get(field) {
            Some(v) => positive(v).ok_or_else(|| {
                self.error(field, format!("expected a finite number above 0, got {v}"))
            }),
            None => Ok(default),
        }
    }

    fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.error(field, format!("expected true or false, got {v}"))),
            None => Ok(default),
        }
    }

    fn str_or<'a>(&'a self, field: &str, default: &'a str) -> Result<&'a str> {
        match self.get(field) {
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.error(field, format!("expected a string, got {v}"))),
            None => Ok(default),
        }
    }

    fn activation(&self, field: &str, default: &str) -> Result<Activation> {
        match self.str_or(field, default)? {
            "silu" | "swish" => Ok(Activation::Silu),
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            other => Err(self.error(
                field,
                format!(
                    "activation {other:?} is not one of silu, gelu, gelu_new, gelu_pytorch_tanh"
                ),
            )),
        }
    }

    /// RoPE from `rope_theta` and `rope_scaling` (or the newer `rope_parameters`).
    fn rope(&self) -> Result<RopeConfig> {
        let parameters = self.get("rope_parameters").and_then(Value::as_object);
        let theta = match parameters.and_then(|p| p.get("rope_theta")) {
            Some(v) => positive(v).ok_or_else(|| {
                self.error(
                    "rope_parameters.rope_theta",
                    format!("expected a finite number above 0, got {v}"),
                )
            })?,
            None => self.positive_f64_or("rope_theta", 10000.0)?,
        };
        let (field, scaling) = match (self.get("rope_scaling"), parameters) {
            (Some(s), _) => ("rope_scaling", s.as_object()),
            (None, Some(p)) => ("rope_parameters", Some(p)),
            (None, None) => return Ok(RopeConfig::with_theta(theta)),
        };
        let scaling = scaling.ok_or_else(|| self.error(field, "expected an object"))?;
        let kind = scaling
            .get("rope_type")
            .or_else(|| scaling.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let number = |key: &str| {
            scaling
                .get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| self.error(&format!("{field}.{key}"), "missing or not a number"))
        };
        let scaling = match kind {
            "default" => None,
            "llama3" => Some(RopeScaling::Llama3(Llama3RopeScaling {
                factor: number("factor")?,
                low_freq_factor: number("low_freq_factor")?,
                high_freq_factor: number("high_freq_factor")?,
                original_max_position_embeddings: match number("original_max_position_embeddings")?
                {
                    n if n >= 1.0 && n.fract() == 0.0 => n as usize,
                    n => {
                        return Err(self.error(
                            &format!("{field}.original_max_position_embeddings"),
                            format!("expected a whole number of tokens, got {n}"),
                        ));
                    }
                },
            })),
            other => {
                return Err(self.error(
                    &format!("{field}.rope_type"),
                    format!("RoPE scaling {other:?} is not supported (only \"llama3\")"),
                ));
            }
        };
        Ok(RopeConfig { theta, scaling })
    }

    /// Llama, Mistral and Qwen2 (`LlamaConfig` and its kin).
    fn llama(&self, family: Family) -> Result<HfModel> {
        let dim = self.usize("hidden_size")?;
        let heads = self.usize("num_attention_heads")?;
        let kv_heads = self.usize_or("num_key_value_heads", Some(heads))?;
        if heads == 0 || dim % heads != 0 {
            return Err(self.error(
                "num_attention_heads",
                format!("{heads} heads do not divide hidden_size {dim}"),
            ));
        }
        if heads % kv_heads != 0 {
            return Err(self.error(
                "num_key_value_heads",
                format!(
                    "{kv_heads} key/value heads do not divide num_attention_heads {heads} \
                     (grouped-query attention shares each among a whole group)"
                ),
            ));
        }
        let head_dim = self.usize_or("head_dim", Some(dim / heads))?;
        if head_dim != dim / heads {
            return Err(self.error(
                "head_dim",
                format!(
                    "axle needs hidden_size / num_attention_heads = {}, got {head_dim}",
                    dim / heads
                ),
            ));
        }
        let (qkv_bias, o_bias) = match family {
            Family::Qwen2 => (true, false),
            _ => {
                let bias = self.bool_or("attention_bias", false)?;
                (bias, bias)
            }
        };
        let sliding_window = match family {
            Family::Mistral => self
                .get("sliding_window")
                .map(|_| self.usize("sliding_window"))
                .transpose()?,
            Family::Qwen2 if self.bool_or("use_sliding_window", false)? => {
                return Err(self.error(
                    "use_sliding_window",
                    "Qwen2's per-layer sliding windows (max_window_layers) are not supported",
                ));
            }
            _ => None,
        };
        let mlp_bias = self.bool_or("mlp_bias", false)?;
        let norm = NormConfig::RmsNorm(RmsNormConfig {
            input_dim: None,
            eps: self.positive_f64_or("rms_norm_eps", 1e-6)?,
        });
        let attention = AttentionConfig {
            num_heads: Some(heads),
            num_kv_heads: Some(kv_heads),
            input_linear: LinearConfig {
                bias: qkv_bias,
                ..AttentionConfig::default().input_linear
            },
            output_linear: LinearConfig {
                bias: o_bias,
                ..AttentionConfig::default().output_linear
            },
            rope: Some(self.rope()?),
            sliding_window,
            ..AttentionConfig::default()
        };
        let feed_forward = FeedForwardConfig {
            hidden_dim: Some(self.usize("intermediate_size")?),
            activation: self.activation("hidden_act", "silu")?,
            gated: true,
            input_linear: LinearConfig {
                bias: mlp_bias,
                ..LinearConfig::default()
            },
            output_linear: LinearConfig {
                bias: mlp_bias,
                ..LinearConfig::output_projection()
            },
            ..FeedForwardConfig::default()
        };
        let tied = self.bool_or("tie_word_embeddings", false)?;
        let decoder = DecoderConfig {
            vocab_size: Some(self.usize("vocab_size")?),
            dim: Some(dim),
            transformer: stack(
                self.usize("num_hidden_layers")?,
                norm.clone(),
                attention,
                feed_forward,
            ),
            output_norm: norm,
            lm_head: (!tied).then(|| {
                LinearConfig::default().with_roles(LogicalAxis::Embed, LogicalAxis::Vocab)
            }),
            ..DecoderConfig::default()
        };
        Ok(HfModel {
            family,
            config: CausalLmConfig {
                decoder,
                ..CausalLmConfig::default()
            },
            max_positions: self.usize_or("max_position_embeddings", Some(DEFAULT_SEQ_LEN))?,
        })
    }

    /// GPT-2 (`GPT2Config`).
    fn gpt2(&self) -> Result<HfModel> {
        let dim = self.usize("n_embd")?;
        for (field, wanted) in [
            ("scale_attn_weights", true),
            ("scale_attn_by_inverse_layer_idx", false),
            ("add_cross_attention", false),
        ] {
            if self.bool_or(field, wanted)? != wanted {
                return Err(self.error(field, format!("only {wanted} is supported")));
            }
        }
        if !self.bool_or("tie_word_embeddings", true)? {
            return Err(self.error(
                "tie_word_embeddings",
                "GPT-2's LM head is tied; only true is supported",
            ));
        }
        let norm = NormConfig::LayerNorm(LayerNormConfig {
            input_dim: None,
            eps: self.positive_f64_or("layer_norm_epsilon", 1e-5)?,
            bias: true,
        });
        let heads = self.usize("n_head")?;
        if dim % heads != 0 {
            return Err(self.error(
                "n_head",
                format!("{heads} heads do not divide n_embd {dim}"),
            ));
        }
        let attention = AttentionConfig {
            num_heads: Some(heads),
            input_linear: AttentionConfig::default().input_linear.with_bias(),
            output_linear: AttentionConfig::default().output_linear.with_bias(),
            ..AttentionConfig::default()
        };
        let feed_forward = FeedForwardConfig {
            hidden_dim: Some(self.usize_or("n_inner", Some(4 * dim))?),
            activation: self.activation("activation_function", "gelu_new")?,
            gated: false,
            input_linear: LinearConfig::default().with_bias(),
            output_linear: LinearConfig::output_projection().with_bias(),
            ..FeedForwardConfig::default()
        };
        let positions = self.usize_or("n_positions", Some(1024))?;
        let decoder = DecoderConfig {
            vocab_size: Some(self.usize("vocab_size")?),
            dim: Some(dim),
            position_embedding: Some(EmbeddingConfig {
                num_embeddings: Some(positions),
                ..EmbeddingConfig::default()
            }),
            transformer: stack(
                self.usize("n_layer")?,
                norm.clone(),
                attention,
                feed_forward,
            ),
            output_norm: norm,
            lm_head: None,
            ..DecoderConfig::default()
        };
        Ok(HfModel {
            family: Family::Gpt2,
            config: CausalLmConfig {
                decoder,
                ..CausalLmConfig::default()
            },
            max_positions: positions,
        })
    }
}

/// `v` as a finite number above 0, if it is one.
fn positive(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite() && *x > 0.0)
}

/// An unrolled stack of `layers` identical pre-norm layers.
fn stack(
    layers: usize,
    norm: NormConfig,
    attention: AttentionConfig,
    feed_forward: FeedForwardConfig,
) -> StackConfig {
    StackConfig {
        num_layers: Some(layers),
        layers: vec![TransformerLayerConfig {
            attention_norm: norm.clone(),
            attention,
            ffn_norm: norm,
            feed_forward,
            ..TransformerLayerConfig::default()
        }],
        ..StackConfig::default()
    }
}

/// The family an axle model is exported as, and its `config.json`, written over `base` (the
/// `config.json` the model was imported from, when known, so that fields axle does not model
/// — token ids, ... — survive a round trip; without a base the token ids are `null`).
/// `max_positions` is written as `max_position_embeddings` for RoPE models; dropout is not
/// exported. Errors: [`HfError::Export`] naming the config field that no supported family
/// expresses (a mixed layer pattern, QK-norm, soft-capping, non-causal attention). A scanned
/// stack is exported as the unrolled stack it equals (`export_checkpoint` unstacks it first).
pub fn export_config(
    config: &CausalLmConfig,
    max_positions: usize,
    base: Option<Map<String, Value>>,
) -> Result<(Family, Map<String, Value>)> {
    let d = &config.decoder;
    let unsupported = |what: &str| {
        HfError::Export(format!(
            "decoder.{what} has no Hugging Face equivalent in the supported families"
        ))
    };
    let stack = &d.transformer;
    let [layer] = stack.layers.as_slice() else {
        return Err(unsupported(
            "transformer.layers (a pattern of several layer configs)",
        ));
    };
    let a = &layer.attention;
    if a.qk_norm.is_some() {
        return Err(unsupported("transformer.layers.0.attention.qk_norm"));
    }
    if a.logit_soft_cap.is_some() {
        return Err(unsupported("transformer.layers.0.attention.logit_soft_cap"));
    }
    if !a.causal {
        return Err(unsupported("transformer.layers.0.attention.causal = false"));
    }
    if layer.attention_norm != layer.ffn_norm || layer.attention_norm != d.output_norm {
        return Err(unsupported(
            "transformer.layers.0.ffn_norm (norms that differ)",
        ));
    }
    let f = &layer.feed_forward;
    let vocab = d
        .vocab_size
        .ok_or_else(|| unsupported("vocab_size (unset)"))?;
    let dim = d.dim.ok_or_else(|| unsupported("dim (unset)"))?;
    let heads = a
        .num_heads
        .ok_or_else(|| unsupported("attention.num_heads (unset)"))?;
    let hidden = f
        .hidden_dim
        .ok_or_else(|| unsupported("feed_forward.hidden_dim (unset)"))?;
    let layers = stack
        .num_layers
        .ok_or_else(|| unsupported("transformer.num_layers (unset)"))?;
    let act = match f.activation {
        Activation::Silu => "silu",
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_new",
    };
    let mut out = base.unwrap_or_default();
    let family = match (&layer.attention_norm, &d.position_embedding, &a.rope) {
        (NormConfig::LayerNorm(norm), Some(positions), None) => {
            let gpt2_like = norm.bias
                && !f.gated
                && a.input_linear.bias
                && a.output_linear.bias
                && f.input_linear.bias
                && f.output_linear.bias
                && d.lm_head.is_none()
                && a.num_kv_heads.is_none_or(|kv| kv == heads);
            if !gpt2_like {
                return Err(HfError::Export(
                    "a model with learned positions and LayerNorm exports as GPT-2, which needs biases everywhere, an ungated MLP, multi-head attention and a tied LM head".into(),
                ));
            }
            for (key, value) in [
                ("vocab_size", json!(vocab)),
                ("n_embd", json!(dim)),
                ("n_head", json!(heads)),
                ("n_layer", json!(layers)),
                ("n_inner", json!(hidden)),
                (
                    "n_positions",
                    json!(positions.num_embeddings.unwrap_or(max_positions)),
                ),
                (
                    "n_ctx",
                    json!(positions.num_embeddings.unwrap_or(max_positions)),
                ),
                ("layer_norm_epsilon", json!(norm.eps)),
                ("activation_function", json!(act)),
                ("tie_word_embeddings", json!(true)),
                ("attn_pdrop", json!(0.0)),
                ("embd_pdrop", json!(0.0)),
                ("resid_pdrop", json!(0.0)),
            ] {
                out.insert(key.into(), value);
            }
            Family::Gpt2
        }
        (NormConfig::RmsNorm(norm), None, Some(rope)) => {
            if !f.gated {
                return Err(unsupported(
                    "transformer.layers.0.feed_forward.gated = false with RMSNorm and RoPE",
                ));
            }
            if f.input_linear.bias != f.output_linear.bias {
                return Err(unsupported("feed_forward biases on only some projections"));
            }
            let qkv_bias = a.input_linear.bias;
            let o_bias = a.output_linear.bias;
            let family = match (a.sliding_window, qkv_bias, o_bias) {
                (Some(_), false, false) => Family::Mistral,
                (None, true, false) => Family::Qwen2,
                (None, bias, o) if bias == o => Family::Llama,
                _ => {
                    return Err(HfError::Export(
                        "the attention biases and sliding window match none of Llama, Mistral (window, no biases) and Qwen2 (q/k/v biases only)".into(),
                    ));
                }
            };
            if family != Family::Llama && (rope.scaling.is_some() || f.input_linear.bias) {
                return Err(HfError::Export(format!(
                    "{} has no RoPE scaling or MLP biases in axle's export",
                    family.architecture()
                )));
            }
            for (key, value) in [
                ("vocab_size", json!(vocab)),
                ("hidden_size", json!(dim)),
                ("intermediate_size", json!(hidden)),
                ("num_hidden_layers", json!(layers)),
                ("num_attention_heads", json!(heads)),
                (
                    "num_key_value_heads",
                    json!(a.num_kv_heads.unwrap_or(heads)),
                ),
                ("head_dim", json!(dim / heads)),
                ("rms_norm_eps", json!(norm.eps)),
                ("hidden_act", json!(act)),
                ("rope_theta", json!(rope.theta)),
                ("tie_word_embeddings", json!(d.lm_head.is_none())),
                ("max_position_embeddings", json!(max_positions)),
                ("attention_dropout", json!(0.0)),
            ] {
                out.insert(key.into(), value);
            }
            out.remove("rope_parameters");
            out.insert(
                "rope_scaling".into(),
                match &rope.scaling {
                    Some(RopeScaling::Llama3(s)) => json!({
                        "rope_type": "llama3",
                        "factor": s.factor,
                        "low_freq_factor": s.low_freq_factor,
                        "high_freq_factor": s.high_freq_factor,
                        "original_max_position_embeddings": s.original_max_position_embeddings,
                    }),
                    None => Value::Null,
                },
            );
            match family {
                Family::Llama => {
                    out.insert("attention_bias".into(), json!(qkv_bias));
                    out.insert("mlp_bias".into(), json!(f.input_linear.bias));
                }
                Family::Mistral => {
                    out.insert("sliding_window".into(), json!(a.sliding_window));
                }
                _ => {
                    out.insert("use_sliding_window".into(), json!(false));
                }
            }
            family
        }
        _ => {
            return Err(HfError::Export(
                "only RMSNorm + RoPE (Llama, Mistral, Qwen2) and LayerNorm + learned positions (GPT-2) models export".into(),
            ));
        }
    };
    out.insert("architectures".into(), json!([family.architecture()]));
    out.insert("model_type".into(), json!(family.model_type()));
    out.insert("torch_dtype".into(), json!("float32"));
    out.insert("dtype".into(), json!("float32"));
    for token in ["bos_token_id", "eos_token_id"] {
        out.entry(token).or_insert(Value::Null);
    }
    Ok((family, out))
}
