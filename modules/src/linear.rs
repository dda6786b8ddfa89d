//! Linear (dense) layer: `y = x W (+ b)` over the last axis.

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{join, required};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::module::Module;
use axle_partition::{LogicalAxis, LogicalSpec};

use crate::param::{FanAxes, Initializer, ParamSpec, ParamTree};

/// Config of [`Linear`]. `input_dim` and `output_dim` are normally set by the parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearConfig {
    /// Size of the input's last axis (set by the parent).
    pub input_dim: Option<usize>,
    /// Size of the output's last axis (set by the parent).
    pub output_dim: Option<usize>,
    /// Whether to add a bias.
    pub bias: bool,
    /// Initializer of the weight `(input_dim, output_dim)`.
    pub weight_init: Initializer,
    /// Logical roles of the weight's `(input_dim, output_dim)` dimensions, `(embed, mlp)` by
    /// default; the bias takes the role of the output dimension. A parent's default templates
    /// name the roles of its projections (attention: `(embed, heads)`, `(heads, embed)`); the
    /// experiment's rules map roles to mesh axes.
    #[serde(with = "crate::param::roles_text")]
    pub weight_roles: LogicalSpec,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            input_dim: None,
            output_dim: None,
            bias: false,
            weight_init: Initializer::FanIn {
                scale: 1.0,
                truncated: false,
            },
            weight_roles: LogicalSpec(vec![LogicalAxis::Embed, LogicalAxis::Mlp]),
        }
    }
}

impl LinearConfig {
    /// This config with a bias (`x W + b`).
    pub fn with_bias(&self) -> LinearConfig {
        LinearConfig {
            bias: true,
            ..self.clone()
        }
    }

    /// This config with both dimensions set, as a parent does before building it.
    pub fn with_dims(&self, input_dim: usize, output_dim: usize) -> LinearConfig {
        LinearConfig {
            input_dim: Some(input_dim),
            output_dim: Some(output_dim),
            ..self.clone()
        }
    }

    /// This config with weight roles `(input, output)`, e.g. `(embed, heads)` for an
    /// attention input projection.
    pub fn with_roles(&self, input: LogicalAxis, output: LogicalAxis) -> LinearConfig {
        LinearConfig {
            weight_roles: LogicalSpec(vec![input, output]),
            ..self.clone()
        }
    }

    /// A default config whose weight is `(mlp, embed)`, for layers that project back to the
    /// model dimension (feed-forward down projection; attention sets `(heads, embed)`).
    pub fn output_projection() -> LinearConfig {
        LinearConfig::default().with_roles(LogicalAxis::Mlp, LogicalAxis::Embed)
    }
}

crate::config_node!(LinearConfig);

/// A linear layer with parameters `weight` and optionally `bias`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// The config, with dimensions resolved.
    pub cfg: LinearConfig,
    /// Input size.
    pub input_dim: usize,
    /// Output size.
    pub output_dim: usize,
}

impl Linear {
    /// Builds the layer; `path` is the config's dotted path, for errors.
    pub fn new(cfg: &LinearConfig, path: &str) -> Result<Linear> {
        let input_dim = required(cfg.input_dim, path, "input_dim")?;
        let output_dim = required(cfg.output_dim, path, "output_dim")?;
        if cfg.weight_roles.rank() != 2 {
            return Err(Error::Inconsistent {
                path: join(path, "weight_roles"),
                message: format!(
                    "a linear weight has 2 dimensions, the roles {} have {}",
                    cfg.weight_roles,
                    cfg.weight_roles.rank()
                ),
            });
        }
        Ok(Linear {
            cfg: cfg.clone(),
            input_dim,
            output_dim,
        })
    }
}

impl Module for Linear {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        specs.insert(
            "weight".to_string(),
            ParamSpec {
                shape: vec![self.input_dim, self.output_dim],
                dtype: DType::F32,
                init: self.cfg.weight_init.clone(),
                fan_axes: FanAxes {
                    fan_in: vec![0],
                    fan_out: vec![1],
                    batch: vec![],
                },
                roles: self.cfg.weight_roles.clone(),
            },
        );
        if self.cfg.bias {
            specs.insert(
                "bias".to_string(),
                ParamSpec {
                    shape: vec![self.output_dim],
                    dtype: DType::F32,
                    init: Initializer::Zeros,
                    fan_axes: FanAxes::default(),
                    roles: LogicalSpec(vec![self.cfg.weight_roles.0[1]]),
                },
            );
        }
        specs
    }
}

impl Linear {
    /// `x W (+ b)` over the last axis of `x` `[..., input_dim]`, giving `[..., output_dim]`.
    ///
    /// The leading axes stay as they are (one `dot_general` contracting the last axis, JAX's
    /// form of `x @ W`): XLA's TPU compiler then lays out a projection that is split into heads
    /// without copying the weight, and a sequence split survives the matmul. Position-wise blocks
    /// flatten `[batch, seq]` around it themselves ([`Ctx::position_wise`]).
    pub fn forward(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor> {
        check_last_dim(ctx, "x", x, self.input_dim)?;
        let w = ctx.param("weight", &[self.input_dim, self.output_dim])?;
        let y = x.matmul(&w);
        if self.cfg.bias {
            return Ok(&y + &ctx.param("bias", &[self.output_dim])?);
        }
        Ok(y)
    }
}

/// Checks that `x` has rank at least 1 and last dimension `dim`; the error names the module.
pub(crate) fn check_last_dim(ctx: &Ctx, name: &str, x: &Tensor, dim: usize) -> Result<()> {
    if x.dims().last() != Some(&dim) {
        return Err(Error::BadInput {
            path: ctx.path(""),
            name: name.to_string(),
            message: format!("expected last dimension {dim}, got shape {:?}", x.dims()),
        });
    }
    Ok(())
}
