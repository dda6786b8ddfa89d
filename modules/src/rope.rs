//! Rotary position embedding (RoPE), a component that attention takes through its config.

use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

use crate::norm::{cast, compute_dtype};

/// Config of RoPE: pairs `(x[i], x[i + d/2])` of each head are rotated by angle
/// `position * theta^(-2i/d)` (the "rotate half" layout of Llama, the one Hugging Face's
/// `rotate_half` uses, so Hugging Face q/k weights need no permutation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    /// Base of the geometric sequence of wavelengths.
    pub theta: f64,
    /// A rescaling of the frequencies for longer contexts, if any (Llama 3.1's). Absent from
    /// the config text when unset, so configs recorded before it existed still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<RopeScaling>,
}

impl Default for RopeConfig {
    fn default() -> Self {
        RopeConfig {
            theta: 10000.0,
            scaling: None,
        }
    }
}

crate::config_node!(RopeConfig);

impl RopeConfig {
    /// RoPE with base `theta` and no frequency scaling.
    pub fn with_theta(theta: f64) -> RopeConfig {
        RopeConfig {
            theta,
            scaling: None,
        }
    }
}

/// A rescaling of RoPE's frequencies, tagged by Hugging Face's `rope_type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Llama 3.1's scaling (`rope_type = "llama3"`).
    Llama3(Llama3RopeScaling),
}

/// Llama 3.1's frequency scaling, as Hugging Face's `_compute_llama3_parameters`
/// (`transformers/modeling_rope_utils.py`) computes it: with wavelength `w = 2π / f` of each
/// frequency `f`, `low = original_max_position_embeddings / low_freq_factor` and
/// `high = original_max_position_embeddings / high_freq_factor`, frequencies of `w < high` are
/// kept, those of `w > low` are divided by `factor`, and those between are interpolated:
/// `(1 - s) f / factor + s f` with `s = (original_max_position_embeddings / w - low_freq_factor)
/// / (high_freq_factor - low_freq_factor)`. The cos/sin are not rescaled (attention factor 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    /// Divisor of the low frequencies (8 in Llama 3.1).
    pub factor: f64,
    /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
    pub low_freq_factor: f64,
    /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// Context length of pre-training, in tokens (8192 in Llama 3.1).
    pub original_max_position_embeddings: usize,
}

impl RopeScaling {
    /// The scaled frequency of one frequency `freq` (radians per position).
    fn scale(&self, freq: f64) -> f64 {
        match self {
            RopeScaling::Llama3(s) => {
                let wavelength = 2.0 * std::f64::consts::PI / freq;
                let context = s.original_max_position_embeddings as f64;
                let (low, high) = (context / s.low_freq_factor, context / s.high_freq_factor);
                if wavelength < high {
                    freq
                } else if wavelength > low {
                    freq / s.factor
                } else {
                    let smooth = (context / wavelength - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * freq / s.factor + smooth * freq
                }
            }
        }
    }
}

impl RopeConfig {
    /// The `head_dim / 2` rotation frequencies `theta^(-2i/head_dim)`, scaled if configured.
    pub fn frequencies(&self, head_dim: usize) -> Vec<f64> {
        (0..head_dim / 2)
            .map(|i| {
                let freq = self.theta.powf(-2.0 * i as f64 / head_dim as f64);
                self.scaling.as_ref().map_or(freq, |s| s.scale(freq))
            })
            .collect()
    }

    /// Rotates `x` of shape `[batch, seq, heads, head_dim]` by the integer `positions`
    /// `[batch, seq]`.
    pub fn apply(&self, x: &Tensor, positions: &Tensor) -> Tensor {
        let dims = x.dims().to_vec();
        let half = dims[3] / 2;
        let inv_freq = self.frequencies(dims[3]);
        // Angles in at least f32: positions in the thousands are not exact in bf16.
        let dtype = compute_dtype(x.dtype());
        let inv_freq = cast(&x.builder().constant(&inv_freq, &[half]), dtype);
        let angles = &positions.convert(dtype).expand_dims(-1) * &inv_freq;
        let angles = angles.expand_dims(2);
        let (cos, sin) = (
            cast(&angles.cos(), x.dtype()),
            cast(&angles.sin(), x.dtype()),
        );
        let (x1, x2) = (x.narrow(-1, 0, half), x.narrow(-1, half, half));
        Tensor::concatenate(
            &[
                &(&(&x1 * &cos) - &(&x2 * &sin)),
                &(&(&x2 * &cos) + &(&x1 * &sin)),
            ],
            -1,
        )
    }
}
