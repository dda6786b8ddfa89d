//! Multi-layer perceptron regressor: feature vectors through hidden linear layers with a
//! nonlinearity, then a linear layer to one value per example, trained with mean squared error.

use axle_compiler::{DType, Tensor};
use axle_partition::LogicalAxis;
use serde::{Deserialize, Serialize};

use crate::config::required;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::feed_forward::Activation;
use crate::linear::{Linear, LinearConfig};
use crate::model::{BatchShape, InputSpec, Inputs, LossOutput, Model, input};
use crate::module::Module;
use crate::norm::{cast, upcast};
use crate::param::{ParamSpec, ParamTree, nest};

/// Name of the features input, `f32[batch, input_dim]`.
pub const FEATURES: &str = "features";
/// Name of the regression targets input, `f32[batch]`.
pub const TARGETS: &str = "targets";

/// Config of [`MlpRegressor`]: `input_dim -> hidden_dims[0] -> ... -> 1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpRegressorConfig {
    /// Features per example.
    pub input_dim: Option<usize>,
    /// Widths of the hidden layers, in order (none: linear regression); each at least 1.
    pub hidden_dims: Vec<usize>,
    /// Nonlinearity after every hidden layer.
    pub activation: Activation,
    /// Template of the hidden layers (dimensions set here).
    pub linear: LinearConfig,
    /// The output layer `(last width, 1)` (dimensions set here).
    pub output: LinearConfig,
}

impl Default for MlpRegressorConfig {
    /// No hidden layers, GELU, biases on every layer; the output weight is `(embed, _)`: its
    /// single column is not split.
    fn default() -> Self {
        let linear = LinearConfig {
            bias: true,
            ..LinearConfig::default()
        };
        MlpRegressorConfig {
            input_dim: None,
            hidden_dims: Vec::new(),
            activation: Activation::Gelu,
            output: linear.with_roles(LogicalAxis::Embed, LogicalAxis::Replicated),
            linear,
        }
    }
}

crate::config_node!(MlpRegressorConfig, linear, output);

/// An MLP regressor, the root module of a model: children `hidden/{i}` (one per hidden
/// width) and `output`.
#[derive(Clone, Debug)]
pub struct MlpRegressor {
    /// The config.
    pub cfg: MlpRegressorConfig,
    /// Features per example.
    pub input_dim: usize,
    /// The hidden layers, in order.
    pub hidden: Vec<Linear>,
    /// The output layer `(last width, 1)`.
    pub output: Linear,
}

impl MlpRegressor {
    /// Builds the model from a root config (error paths start at the root). Errors on a missing
    /// `input_dim`, a zero width in `input_dim` or `hidden_dims`, or a layer's own error.
    pub fn new(cfg: &MlpRegressorConfig) -> Result<MlpRegressor> {
        let input_dim = required(cfg.input_dim, "", "input_dim")?;
        if input_dim == 0 {
            return Err(Error::Inconsistent {
                path: "input_dim".into(),
                message: "a regressor needs at least one feature".into(),
            });
        }
        if let Some(i) = cfg.hidden_dims.iter().position(|&w| w == 0) {
            return Err(Error::Inconsistent {
                path: "hidden_dims".into(),
                message: format!("hidden layer {i} has width 0"),
            });
        }
        let mut width = input_dim;
        let mut hidden = Vec::new();
        for &next in &cfg.hidden_dims {
            hidden.push(Linear::new(&cfg.linear.with_dims(width, next), "linear")?);
            width = next;
        }
        Ok(MlpRegressor {
            cfg: cfg.clone(),
            input_dim,
            hidden,
            output: Linear::new(&cfg.output.with_dims(width, 1), "output")?,
        })
    }

    /// Predictions `[batch]` for `features` `[batch, input_dim]` (any float dtype; converted
    /// to the parameters' dtype). Errors when the features are not shaped as configured.
    pub fn forward(&self, ctx: &mut Ctx, features: &Tensor) -> Result<Tensor> {
        let b = features.dims().first().copied().unwrap_or(0);
        if features.dims() != [b, self.input_dim] || !features.dtype().is_float() {
            return Err(Error::BadInput {
                path: "<root>".into(),
                name: FEATURES.into(),
                message: format!(
                    "expected floats of shape [batch, {}], got {:?} {:?}",
                    self.input_dim,
                    features.dtype(),
                    features.dims()
                ),
            });
        }
        let (first_path, first) = match self.hidden.first() {
            Some(layer) => ("hidden/0", layer),
            None => ("output", &self.output),
        };
        let dtype = ctx
            .scope(first_path, |c| {
                c.param("weight", &[first.input_dim, first.output_dim])
            })?
            .dtype();
        let mut x = cast(features, dtype);
        for (i, layer) in self.hidden.iter().enumerate() {
            let h = ctx.scope(&format!("hidden/{i}"), |c| layer.forward(c, &x))?;
            x = self.cfg.activation.apply(&h);
        }
        let y = ctx.scope("output", |c| self.output.forward(c, &x))?;
        Ok(y.reshape(&[b]))
    }
}

impl Module for MlpRegressor {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = ParamTree::new();
        for (i, layer) in self.hidden.iter().enumerate() {
            nest(&mut specs, &format!("hidden/{i}"), layer.param_specs());
        }
        nest(&mut specs, "output", self.output.param_specs());
        specs
    }
}

impl Model for MlpRegressor {
    fn kind(&self) -> &str {
        "regressor"
    }

    /// `features` `f32[batch, input_dim]`, roles `(batch, _)`; `targets` `f32[batch]`, role
    /// `(batch)`. The batch's `seq_len` is ignored.
    fn input_specs(&self, shape: &BatchShape) -> Result<Vec<InputSpec>> {
        Ok(vec![
            InputSpec::new(
                FEATURES,
                DType::F32,
                &[shape.batch_size, self.input_dim],
                "(batch, _)",
            ),
            InputSpec::new(TARGETS, DType::F32, &[shape.batch_size], "(batch)"),
        ])
    }

    /// Mean squared error `mean((prediction - target)^2)` over the examples, computed in at
    /// least f32; the weight is the number of examples (f32). Summary: `mse`.
    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> Result<LossOutput> {
        let features = input(inputs, FEATURES)?;
        let targets = input(inputs, TARGETS)?;
        let b = features.dims().first().copied().unwrap_or(0);
        if targets.dims() != [b] || !targets.dtype().is_float() {
            return Err(Error::BadInput {
                path: "<root>".into(),
                name: TARGETS.into(),
                message: format!(
                    "expected floats of shape [{b}], got {:?} {:?}",
                    targets.dtype(),
                    targets.dims()
                ),
            });
        }
        let (predictions, _) = upcast(&self.forward(ctx, features)?);
        let error = &predictions - &cast(targets, predictions.dtype());
        let mse = error.square().mean_all();
        ctx.add_summary("mse", mse.clone());
        Ok(LossOutput {
            loss: mse,
            weight: features.builder().scalar(b as f64, DType::F32),
        })
    }
}
