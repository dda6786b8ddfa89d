//! Rotary position embedding (RoPE), a component that attention takes through its config.

use axle_compiler::Tensor;
use serde::{Deserialize, Serialize};

use crate::norm::{cast, compute_dtype};

/// Config of RoPE: pairs `(x[i], x[i + d/2])` of each head are rotated by angle
/// `position * theta^(-2i/d)` (the "rotate half" layout of Llama).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    /// Base of the geometric sequence of wavelengths.
    pub theta: f64,
}

impl Default for RopeConfig {
    fn default() -> Self {
        RopeConfig { theta: 10000.0 }
    }
}

crate::config_node!(RopeConfig);

impl RopeConfig {
    /// Rotates `x` of shape `[batch, seq, heads, head_dim]` by the integer `positions`
    /// `[batch, seq]`.
    pub fn apply(&self, x: &Tensor, positions: &Tensor) -> Tensor {
        let dims = x.dims().to_vec();
        let half = dims[3] / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| self.theta.powf(-2.0 * i as f64 / dims[3] as f64))
            .collect();
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
