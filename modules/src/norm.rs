//! Normalization layers: RMSNorm and LayerNorm, and the [`NormConfig`] slot that holds either,
//! so that a modifier can swap one for the other anywhere in a model.

use std::any::Any;

use axle_compiler::{DType, Tensor};
use axle_partition::LogicalSpec;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigNode, required};
use crate::context::Ctx;
use crate::error::Result;
use crate::linear::check_last_dim;
use crate::module::Module;
use crate::param::{FanAxes, Initializer, ParamSpec, ParamTree};

/// Config of RMSNorm: `x / sqrt(mean(x^2) + eps) * scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsNormConfig {
    /// Size of the normalized (last) axis, set by the parent.
    pub input_dim: Option<usize>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl Default for RmsNormConfig {
    fn default() -> Self {
        RmsNormConfig {
            input_dim: None,
            eps: 1e-6,
        }
    }
}

crate::config_node!(RmsNormConfig);

/// Config of LayerNorm: `(x - mean) / sqrt(var + eps) * scale (+ bias)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNormConfig {
    /// Size of the normalized (last) axis, set by the parent.
    pub input_dim: Option<usize>,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Whether to add a learned bias after scaling.
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            input_dim: None,
            eps: 1e-5,
            bias: true,
        }
    }
}

crate::config_node!(LayerNormConfig);

/// A normalization slot: RMSNorm or LayerNorm. Serialized with a `kind` tag
/// (`attention_norm.kind = "rms_norm"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NormConfig {
    /// RMSNorm.
    RmsNorm(RmsNormConfig),
    /// LayerNorm.
    LayerNorm(LayerNormConfig),
}

impl Default for NormConfig {
    fn default() -> Self {
        NormConfig::RmsNorm(RmsNormConfig::default())
    }
}

impl From<RmsNormConfig> for LayerNormConfig {
    /// The LayerNorm (with bias) of the same dimension and eps.
    fn from(c: RmsNormConfig) -> LayerNormConfig {
        LayerNormConfig {
            input_dim: c.input_dim,
            eps: c.eps,
            bias: true,
        }
    }
}

impl From<LayerNormConfig> for RmsNormConfig {
    /// The RMSNorm of the same dimension and eps (a bias is dropped).
    fn from(c: LayerNormConfig) -> RmsNormConfig {
        RmsNormConfig {
            input_dim: c.input_dim,
            eps: c.eps,
        }
    }
}

impl NormConfig {
    /// This config with the normalized dimension set, as a parent does before building it.
    pub fn with_input_dim(&self, dim: usize) -> NormConfig {
        let mut cfg = self.clone();
        match &mut cfg {
            NormConfig::RmsNorm(c) => c.input_dim = Some(dim),
            NormConfig::LayerNorm(c) => c.input_dim = Some(dim),
        }
        cfg
    }
}

impl ConfigNode for NormConfig {
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn ConfigNode)) {
        match self {
            NormConfig::RmsNorm(c) => f(c),
            NormConfig::LayerNorm(c) => f(c),
        }
    }
    fn children(&self, f: &mut dyn FnMut(&dyn ConfigNode)) {
        match self {
            NormConfig::RmsNorm(c) => f(c),
            NormConfig::LayerNorm(c) => f(c),
        }
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A normalization layer over the last axis, with parameter `scale` (and `bias` for a LayerNorm
/// with bias).
#[derive(Clone, Debug)]
pub struct Norm {
    /// The config, with the dimension resolved.
    pub cfg: NormConfig,
    /// Size of the normalized axis.
    pub dim: usize,
}

impl Norm {
    /// Builds the layer; `path` is the config's dotted path, for errors.
    pub fn new(cfg: &NormConfig, path: &str) -> Result<Norm> {
        let input_dim = match cfg {
            NormConfig::RmsNorm(c) => c.input_dim,
            NormConfig::LayerNorm(c) => c.input_dim,
        };
        Ok(Norm {
            cfg: cfg.clone(),
            dim: required(input_dim, path, "input_dim")?,
        })
    }

    fn vector_spec(&self, init: Initializer) -> ParamSpec {
        ParamSpec {
            shape: vec![self.dim],
            dtype: DType::F32,
            init,
            fan_axes: FanAxes::default(),
            roles: LogicalSpec::replicated(1),
        }
    }
}

impl Module for Norm {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        specs.insert("scale".into(), self.vector_spec(Initializer::Ones));
        if let NormConfig::LayerNorm(LayerNormConfig { bias: true, .. }) = self.cfg {
            specs.insert("bias".into(), self.vector_spec(Initializer::Zeros));
        }
        specs
    }
}

/// The dtype normalizers, softmax and RoPE angles are computed in: at least f32.
pub(crate) fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        other => other,
    }
}

/// `x` converted to `dtype`, recording no op when it already has it.
pub(crate) fn cast(x: &Tensor, dtype: DType) -> Tensor {
    if x.dtype() == dtype {
        x.clone()
    } else {
        x.convert(dtype)
    }
}

/// `x` converted to its [`compute_dtype`], and its own dtype to convert results back to.
pub(crate) fn upcast(x: &Tensor) -> (Tensor, DType) {
    (cast(x, compute_dtype(x.dtype())), x.dtype())
}

impl Norm {
    /// Normalizes the last axis of `x` (computed in at least f32).
    pub fn forward(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor> {
        check_last_dim(ctx, "x", x, self.dim)?;
        let (h, dtype) = upcast(x);
        let scale = cast(&ctx.param("scale", &[self.dim])?, h.dtype());
        let y = match &self.cfg {
            NormConfig::RmsNorm(c) => {
                &h * &(&h.square().mean(&[-1], true) + c.eps).rsqrt() * &scale
            }
            NormConfig::LayerNorm(c) => {
                let centered = &h - &h.mean(&[-1], true);
                let var = centered.square().mean(&[-1], true);
                let y = &centered * &(&var + c.eps).rsqrt() * &scale;
                if c.bias {
                    &y + &cast(&ctx.param("bias", &[self.dim])?, h.dtype())
                } else {
                    y
                }
            }
        };
        Ok(cast(&y, dtype))
    }
}
