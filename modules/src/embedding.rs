//! Embedding table lookup: token ids (or positions) to vectors.

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{join, required};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::linear::check_last_dim;
use crate::module::Module;
use axle_partition::{LogicalAxis, LogicalSpec};

use crate::param::{FanAxes, Initializer, ParamSpec, ParamTree};

/// Config of [`Embedding`]. `dim` is normally set by the parent; `num_embeddings` is the vocabulary
/// size (set by the decoder) or the number of learned positions (set by the user).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingConfig {
    /// Number of rows of the table.
    pub num_embeddings: Option<usize>,
    /// Width of each row.
    pub dim: Option<usize>,
    /// Initializer of the table.
    pub init: Initializer,
    /// Logical roles of the table's `(num_embeddings, dim)` dimensions,
    /// `(table_vocab, table_embed)` by default (by the default rules: rows over `fsdp`, width
    /// over `model`).
    #[serde(with = "crate::param::roles_text")]
    pub weight_roles: LogicalSpec,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            num_embeddings: None,
            dim: None,
            init: Initializer::Normal { std: 0.02 },
            weight_roles: LogicalSpec(vec![LogicalAxis::TableVocab, LogicalAxis::TableEmbed]),
        }
    }
}

crate::config_node!(EmbeddingConfig);

/// An embedding table with parameter `weight` of shape `(num_embeddings, dim)`.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// The config, with dimensions resolved.
    pub cfg: EmbeddingConfig,
    /// Number of rows.
    pub num_embeddings: usize,
    /// Row width.
    pub dim: usize,
}

impl Embedding {
    /// Builds the table; `path` is the config's dotted path, for errors.
    pub fn new(cfg: &EmbeddingConfig, path: &str) -> Result<Embedding> {
        if cfg.weight_roles.rank() != 2 {
            return Err(Error::Inconsistent {
                path: join(path, "weight_roles"),
                message: format!(
                    "an embedding table has 2 dimensions, the roles {} have {}",
                    cfg.weight_roles,
                    cfg.weight_roles.rank()
                ),
            });
        }
        Ok(Embedding {
            cfg: cfg.clone(),
            num_embeddings: required(cfg.num_embeddings, path, "num_embeddings")?,
            dim: required(cfg.dim, path, "dim")?,
        })
    }
}

impl Module for Embedding {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        ParamTree::from([(
            "weight".to_string(),
            ParamSpec {
                shape: vec![self.num_embeddings, self.dim],
                dtype: DType::F32,
                init: self.cfg.init.clone(),
                fan_axes: FanAxes {
                    fan_in: vec![],
                    fan_out: vec![1],
                    batch: vec![0],
                },
                roles: self.cfg.weight_roles.clone(),
            },
        )])
    }
}

impl Embedding {
    /// Rows of the table picked by integer `ids` of any shape: shape `ids ++ [dim]`.
    /// An id outside `[0, num_embeddings)` is clipped to the first or last row, which also gets
    /// its gradient (`IndexMode::Clip`, the compiler's default for `take`); the trainer refuses
    /// such ids on the host before the step. In bf16 the table's gradient accumulates in f32.
    pub fn forward(&self, ctx: &mut Ctx, ids: &Tensor) -> Result<Tensor> {
        if !ids.dtype().is_int() {
            return Err(Error::BadInput {
                path: ctx.path(""),
                name: "ids".into(),
                message: format!("expected integer ids, got {:?}", ids.dtype()),
            });
        }
        let w = ctx.param("weight", &[self.num_embeddings, self.dim])?;
        Ok(w.take(ids, 0))
    }

    /// Scores `[..., num_embeddings]` of `x` `[..., dim]` against every row: `x E^T`, the tied
    /// LM head (one matmul contracting the last axis with the table's `dim`).
    pub fn attend(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor> {
        check_last_dim(ctx, "x", x, self.dim)?;
        let w = ctx.param("weight", &[self.num_embeddings, self.dim])?;
        Ok(x.matmul(&w.t()))
    }
}
