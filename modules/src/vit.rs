//! Vision transformer classifier (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words:
//! Transformers for Image Recognition at Scale"): square images cut into non-overlapping
//! `patch_size x patch_size` patches, each flattened and projected linearly to the model
//! dimension, learned position embeddings, a bidirectional transformer stack, a final norm,
//! pooling over the patches and a linear head, trained with softmax cross-entropy.
//!
//! Differences from the paper: no class token; the patches are mean-pooled by default (the
//! paper's "global average pooling" variant, its appendix D.4), see [`Pooling`].

use axle_compiler::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::required;
use crate::context::Ctx;
use crate::embedding::EmbeddingConfig;
use crate::encoder::{
    EncoderTrunk, LABELS, Pooling, bidirectional_stack, check_num_classes, classification_loss,
    encoder_flops, labels_spec,
};
use crate::error::{Error, Result};
use crate::linear::{Linear, LinearConfig};
use crate::model::{BatchShape, InputSpec, Inputs, LossOutput, Model, input};
use crate::module::Module;
use crate::norm::{NormConfig, cast};
use crate::param::{ParamSpec, ParamTree, nest};
use crate::transformer::StackConfig;

/// Name of the images input, `f32[batch, image_size, image_size, channels]` (channels last).
pub const IMAGE: &str = "image";

/// Config of [`Vit`]. The image geometry, `dim` and `num_classes` are set here and passed
/// down to every child.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Height and width of the (square) images.
    pub image_size: Option<usize>,
    /// Height and width of a patch; must divide `image_size`.
    pub patch_size: Option<usize>,
    /// Channels per pixel (1 for grayscale, 3 for RGB).
    pub channels: Option<usize>,
    /// Model dimension.
    pub dim: Option<usize>,
    /// Number of classes, at least 1: labels are in `0..num_classes`.
    pub num_classes: Option<usize>,
    /// Projection of a flattened patch `(patch_size^2 * channels, dim)` (dimensions set here).
    pub patch_embedding: LinearConfig,
    /// Learned position embedding, one row per patch (`num_embeddings` and `dim` set here).
    pub position_embedding: Option<EmbeddingConfig>,
    /// The transformer stack (`input_dim` set here); every attention in it must have
    /// `causal = false`.
    pub transformer: StackConfig,
    /// Norm after the stack (`input_dim` set here).
    pub output_norm: NormConfig,
    /// Reduction of the patches to one vector per image.
    pub pooling: Pooling,
    /// Classification head `(dim, num_classes)` (dimensions set here).
    pub head: LinearConfig,
}

impl Default for VitConfig {
    /// Required fields unset, no position embedding, a default stack made bidirectional,
    /// RMSNorm, mean pooling, default patch projection and head.
    fn default() -> Self {
        VitConfig {
            image_size: None,
            patch_size: None,
            channels: None,
            dim: None,
            num_classes: None,
            patch_embedding: LinearConfig::default(),
            position_embedding: None,
            transformer: bidirectional_stack(),
            output_norm: NormConfig::default(),
            pooling: Pooling::default(),
            head: LinearConfig::default(),
        }
    }
}

crate::config_node!(
    VitConfig,
    patch_embedding,
    position_embedding,
    transformer,
    output_norm,
    head
);

/// A vision transformer classifier, the root module of a model: children `patch_embedding`,
/// `position_embedding` (if configured), `transformer`, `output_norm`, `head`.
#[derive(Clone, Debug)]
pub struct Vit {
    /// The config.
    pub cfg: VitConfig,
    /// Image height and width.
    pub image_size: usize,
    /// Patch height and width.
    pub patch_size: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// Model dimension.
    pub dim: usize,
    /// Patch projection `(patch_size^2 * channels, dim)`.
    pub patch_embedding: Linear,
    /// Positions, stack, norm, pooling and head.
    pub trunk: EncoderTrunk,
}

impl Vit {
    /// Builds the model from a root config (error paths start at the root: `patch_size`,
    /// `transformer.num_layers`, ...). Errors on a missing required field, a zero or
    /// non-dividing `patch_size`, zero channels or classes, a causal attention in the stack, or
    /// any child's own error.
    pub fn new(cfg: &VitConfig) -> Result<Vit> {
        let image_size = required(cfg.image_size, "", "image_size")?;
        let patch_size = required(cfg.patch_size, "", "patch_size")?;
        let channels = required(cfg.channels, "", "channels")?;
        let dim = required(cfg.dim, "", "dim")?;
        let num_classes = check_num_classes(cfg.num_classes, "")?;
        if patch_size == 0 || image_size % patch_size != 0 {
            return Err(Error::Inconsistent {
                path: "patch_size".into(),
                message: format!(
                    "patches of {patch_size} pixels do not tile images of {image_size} pixels"
                ),
            });
        }
        if channels == 0 {
            return Err(Error::Inconsistent {
                path: "channels".into(),
                message: "images need at least one channel".into(),
            });
        }
        let num_patches = (image_size / patch_size).pow(2);
        let position = cfg.position_embedding.clone().map(|mut position| {
            position.num_embeddings = Some(num_patches);
            position
        });
        let patch_dim = patch_size * patch_size * channels;
        Ok(Vit {
            cfg: cfg.clone(),
            image_size,
            patch_size,
            channels,
            dim,
            patch_embedding: Linear::new(
                &cfg.patch_embedding.with_dims(patch_dim, dim),
                "patch_embedding",
            )?,
            trunk: EncoderTrunk::new(
                position,
                &cfg.transformer,
                &cfg.output_norm,
                cfg.pooling,
                &cfg.head,
                dim,
                num_classes,
            )?,
        })
    }

    /// Patches per image, `(image_size / patch_size)^2`: the sequence length of the stack.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// `images` `[batch, H, W, C]` cut into patches `[batch, (H/p) * (W/p), p * p * C]`: patches
    /// in row-major order over the grid, each flattened row by row, channels innermost
    /// (einops `b (h p1) (w p2) c -> b (h w) (p1 p2 c)`, as in the ViT reference code).
    pub fn patchify(&self, images: &Tensor) -> Tensor {
        let b = images.dims()[0];
        let (p, g, c) = (
            self.patch_size,
            self.image_size / self.patch_size,
            self.channels,
        );
        images
            .reshape(&[b, g, p, g, p, c])
            .transpose(&[0, 1, 3, 2, 4, 5])
            .reshape(&[b, g * g, p * p * c])
    }

    /// Class logits `[batch, num_classes]` of `images` `[batch, image_size, image_size,
    /// channels]` (any float dtype; converted to the parameters' dtype). Errors when the images
    /// are not shaped as configured.
    pub fn forward(&self, ctx: &mut Ctx, images: &Tensor) -> Result<Tensor> {
        let (s, c) = (self.image_size, self.channels);
        let b = images.dims().first().copied().unwrap_or(0);
        if images.dims() != [b, s, s, c] || !images.dtype().is_float() {
            return Err(Error::BadInput {
                path: "<root>".into(),
                name: IMAGE.into(),
                message: format!(
                    "expected floats of shape [batch, {s}, {s}, {c}], got {:?} {:?}",
                    images.dtype(),
                    images.dims()
                ),
            });
        }
        let dtype = ctx
            .scope("patch_embedding", |c| {
                c.param("weight", &[self.patch_embedding.input_dim, self.dim])
            })?
            .dtype();
        let patches = self.patchify(&cast(images, dtype));
        let x = ctx.scope("patch_embedding", |c| {
            self.patch_embedding.forward(c, &patches)
        })?;
        self.trunk.forward(ctx, &x)
    }
}

impl Module for Vit {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        let mut specs = self.trunk.param_specs();
        nest(
            &mut specs,
            "patch_embedding",
            self.patch_embedding.param_specs(),
        );
        specs
    }
}

impl Model for Vit {
    fn kind(&self) -> &str {
        "classifier"
    }

    /// `image` `f32[batch, image_size, image_size, channels]`, roles `(batch, _, _, _)`;
    /// `labels` `i32[batch]`, role `(batch)`, values in `0..num_classes`. The batch's
    /// `seq_len` is ignored (the sequence is the patches).
    fn input_specs(&self, shape: &BatchShape) -> Result<Vec<InputSpec>> {
        let (s, c) = (self.image_size, self.channels);
        Ok(vec![
            InputSpec::new(
                IMAGE,
                DType::F32,
                &[shape.batch_size, s, s, c],
                "(batch, _, _, _)",
            ),
            labels_spec(shape.batch_size, self.trunk.num_classes()),
        ])
    }

    /// Softmax cross-entropy of the pooled logits, averaged over the images; the weight is the
    /// number of images. Summaries: `accuracy`, `loss/cross_entropy`, `loss/num_targets`.
    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> Result<LossOutput> {
        let images = input(inputs, IMAGE)?;
        let labels = input(inputs, LABELS)?;
        let logits = self.forward(ctx, images)?;
        classification_loss(ctx, &logits, labels)
    }

    /// The PaLM estimate (appendix B) with the patches as tokens:
    /// `(6 * params + 12 * layers * dim * patches) * batch * patches`.
    fn train_flops(&self, shape: &BatchShape) -> f64 {
        encoder_flops(
            self.num_params(),
            self.trunk.transformer.num_layers,
            self.dim,
            shape.batch_size,
            self.num_patches(),
        )
    }
}
