//! Dropout: zeroes each element with probability `rate` in training and scales the rest by
//! `1 / (1 - rate)`; the identity in evaluation.

use serde::{Deserialize, Serialize};

use crate::config::join;
use crate::error::{Error, Result};

/// Config of dropout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DropoutConfig {
    /// Probability of dropping an element, in `[0, 1)`.
    pub rate: f64,
}

crate::config_node!(DropoutConfig);

impl DropoutConfig {
    /// Checks that the rate is in `[0, 1)`; `path` is the config's dotted path.
    pub fn validate(&self, path: &str) -> Result<()> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::Inconsistent {
                path: join(path, "rate"),
                message: format!("dropout rate {} is not in [0, 1)", self.rate),
            });
        }
        Ok(())
    }
}
