//! Choosing the next token from its logits on the host: greedy, or a draw
//! after temperature, top-k and top-p (nucleus) filtering, in the order
//! Hugging Face's `generate` applies them, from a counter-based seeded
//! generator so that a draw depends only on (seed, row, step).

use crate::data::mix::mix;

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits before the softmax; 0 means greedy (the highest
    /// logit, the lowest id among equals), and then `top_k` and `top_p`
    /// must be unset ([`Sampling::validate`] refuses them rather than
    /// silently decode greedily).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (at least 1), if set.
    pub top_k: Option<usize>,
    /// Keep the most likely tokens whose probabilities first sum to at
    /// least `p` (in `(0, 1]`; the most likely one always stays), if set.
    pub top_p: Option<f64>,
    /// Seed of the draws.
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding.
    pub fn greedy() -> Sampling {
        Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }

    /// What is wrong with these settings, if anything: a negative or
    /// non-finite temperature, `top_k` or `top_p` with temperature 0,
    /// `top_k` 0, `top_p` outside `(0, 1]`.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "--temperature must be finite and at least 0, got {}",
                self.temperature
            ));
        }
        if self.temperature == 0.0 && (self.top_k.is_some() || self.top_p.is_some()) {
            return Err(
                "--top-k and --top-p filter a sampled draw, but --temperature is 0 (greedy): \
                 pass --temperature 1 to sample from the model's distribution"
                    .into(),
            );
        }
        if self.top_k == Some(0) {
            return Err("--top-k must be at least 1".into());
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(format!("--top-p must be in (0, 1], got {p}"));
        }
        Ok(())
    }

    /// The token chosen from `logits` (one row's, over the vocabulary) for
    /// `row` at decoding `step`.
    pub fn choose(&self, logits: &[f32], row: u64, step: u64) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order.truncate(self.top_k.unwrap_or(order.len()).max(1));
        let top = f64::from(logits[order[0]]);
        let weights: Vec<f64> = order
            .iter()
            .map(|&i| ((f64::from(logits[i]) - top) / self.temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut keep = weights.len();
        if let Some(p) = self.top_p {
            let mut sum = 0.0;
            keep = weights
                .iter()
                .position(|w| {
                    sum += w / total;
                    sum >= p
                })
                .map_or(weights.len(), |i| i + 1);
        }
        let kept: f64 = weights[..keep].iter().sum();
        let draw = uniform(mix(self.seed ^ mix(row ^ mix(step)))) * kept;
        let mut sum = 0.0;
        for (i, w) in weights[..keep].iter().enumerate() {
            sum += w;
            if draw < sum {
                return order[i] as u32;
            }
        }
        order[keep - 1] as u32
    }
}

/// The index of the largest value (the first among equals).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// A uniform draw in `[0, 1)` from the top 53 bits of `bits`.
fn uniform(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(top_k: Option<usize>, top_p: Option<f64>) -> Sampling {
        Sampling {
            temperature: 1.0,
            top_k,
            top_p,
            seed: 4,
        }
    }

    /// Draws of 2000 steps of row 0, counted per token.
    fn counts(s: &Sampling, logits: &[f32]) -> Vec<usize> {
        let mut counts = vec![0; logits.len()];
        for step in 0..2000 {
            counts[s.choose(logits, 0, step) as usize] += 1;
        }
        counts
    }

    #[test]
    fn filters_keep_the_tokens_hugging_face_keeps() {
        // Probabilities 0.5, 0.3, 0.2 (and 0 for the last, a -inf logit).
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln(), f32::NEG_INFINITY];
        assert_eq!(argmax(&logits), 0);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1, "the first of equals");
        // top-p 0.6: 0.5 < 0.6 <= 0.8 keeps tokens 0 and 1.
        let c = counts(&sampling(None, Some(0.6)), &logits);
        assert!(c[0] > 0 && c[1] > 0 && c[2] == 0 && c[3] == 0, "{c:?}");
        // top-p 0.5 keeps only the most likely token.
        assert_eq!(counts(&sampling(None, Some(0.5)), &logits)[0], 2000);
        // top-k 1 is greedy.
        assert_eq!(counts(&sampling(Some(1), None), &logits)[0], 2000);
        // Unfiltered, frequencies follow the probabilities: 3 standard
        // deviations of a binomial(2000, 0.5) are 67.
        let c = counts(&sampling(None, None), &logits);
        assert!((c[0] as f64 - 1000.0).abs() < 67.0, "{c:?}");
        assert_eq!(c[3], 0);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(
            sampling(Some(0), None)
                .validate()
                .unwrap_err()
                .contains("--top-k")
        );
        assert!(
            sampling(None, Some(1.5))
                .validate()
                .unwrap_err()
                .contains("--top-p")
        );
        let cold = Sampling {
            temperature: -1.0,
            ..Sampling::greedy()
        };
        assert!(cold.validate().unwrap_err().contains("--temperature"));
    }
}
