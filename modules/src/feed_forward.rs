//! Position-wise feed-forward block: GELU MLP, or gated (SwiGLU: `silu(x Wg) * (x Wu)`).

use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

use crate::config::{join, required};
use crate::context::Ctx;
use crate::error::Result;
use crate::linear::{Linear, LinearConfig};
use crate::module::Module;
use crate::param::{ParamSpec, ParamTree, nest};

/// The nonlinearity of the hidden layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU, `x * Φ(x)` (with erf).
    Gelu,
    /// GELU with the tanh approximation (GPT-2).
    GeluTanh,
    /// SiLU (swish), `x * sigmoid(x)`; gated, this is SwiGLU.
    Silu,
}

/// Config of [`FeedForward`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedForwardConfig {
    /// Model dimension of input and output (set by the parent).
    pub input_dim: Option<usize>,
    /// Width of the hidden layer.
    pub hidden_dim: Option<usize>,
    /// Nonlinearity of the hidden layer.
    pub activation: Activation,
    /// Multiply the activation by a second (gate) projection of the input, as SwiGLU does.
    pub gated: bool,
    /// Template of the up (and gate) projections (dimensions set by this layer); weight roles
    /// `(embed, mlp)` by default.
    pub input_linear: LinearConfig,
    /// Template of the down projection (dimensions set by this layer); weight roles
    /// `(mlp, embed)` by default.
    pub output_linear: LinearConfig,
}

impl Default for FeedForwardConfig {
    fn default() -> Self {
        FeedForwardConfig {
            input_dim: None,
            hidden_dim: None,
            activation: Activation::Silu,
            gated: true,
            input_linear: LinearConfig::default(),
            output_linear: LinearConfig::output_projection(),
        }
    }
}

crate::config_node!(FeedForwardConfig, input_linear, output_linear);

/// Feed-forward block with children `up_proj`, `gate_proj` (if gated) and `down_proj`.
#[derive(Clone, Debug)]
pub struct FeedForward {
    /// The config, with dimensions resolved.
    pub cfg: FeedForwardConfig,
    /// Input projection to the hidden width.
    pub up_proj: Linear,
    /// Gate projection to the hidden width, if gated.
    pub gate_proj: Option<Linear>,
    /// Projection back to the model dimension.
    pub down_proj: Linear,
}

impl FeedForward {
    /// Builds the block; `path` is the config's dotted path, for errors.
    pub fn new(cfg: &FeedForwardConfig, path: &str) -> Result<FeedForward> {
        let dim = required(cfg.input_dim, path, "input_dim")?;
        let hidden = required(cfg.hidden_dim, path, "hidden_dim")?;
        let input = join(path, "input_linear");
        let up = cfg.input_linear.with_dims(dim, hidden);
        Ok(FeedForward {
            cfg: cfg.clone(),
            up_proj: Linear::new(&up, &input)?,
            gate_proj: if cfg.gated {
                Some(Linear::new(&up, &input)?)
            } else {
                None
            },
            down_proj: Linear::new(
                &cfg.output_linear.with_dims(hidden, dim),
                &join(path, "output_linear"),
            )?,
        })
    }
}

impl Module for FeedForward {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        nest(&mut specs, "up_proj", self.up_proj.param_specs());
        if let Some(gate) = &self.gate_proj {
            nest(&mut specs, "gate_proj", gate.param_specs());
        }
        nest(&mut specs, "down_proj", self.down_proj.param_specs());
        specs
    }
}

impl Activation {
    /// Applies the nonlinearity elementwise.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Gelu => &(x * 0.5) * &(&(x * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0),
            Activation::GeluTanh => {
                let inner = &(x + &(&x.powf(3.0) * 0.044715)) * (2.0 / std::f64::consts::PI).sqrt();
                &(x * 0.5) * &(&inner.tanh() + 1.0)
            }
            Activation::Silu => x * &x.logistic(),
        }
    }
}

impl FeedForward {
    /// `down(act(up(x)))`, or `down(act(gate(x)) * up(x))` when gated, of `x` `[..., dim]`,
    /// run on its positions flattened into one axis ([`Ctx::position_wise`]).
    pub fn forward(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor> {
        ctx.position_wise(x, |ctx, x| self.forward_rows(ctx, x))
    }

    fn forward_rows(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor> {
        let up = ctx.scope("up_proj", |c| self.up_proj.forward(c, x))?;
        let hidden = match &self.gate_proj {
            Some(gate) => {
                &self
                    .cfg
                    .activation
                    .apply(&ctx.scope("gate_proj", |c| gate.forward(c, x))?)
                    * &up
            }
            None => self.cfg.activation.apply(&up),
        };
        ctx.scope("down_proj", |c| self.down_proj.forward(c, &hidden))
    }
}
