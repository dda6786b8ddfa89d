//! A synthetic language with learnable structure, for training without data.

use super::mix::mix;
use super::{Split, TokenSource};

/// Number of generating rules; a sequence's rule is visible from its first
/// two tokens, so a model that learns the rules and reads its context
/// predicts every later token exactly.
const RULES: u64 = 4;

/// Sequences `x[t+1] = (a_r * x[t] + b_r) mod vocab` with a random start and
/// one of four rules `r` chosen per sequence. The achievable loss is about
/// `ln(4) / seq` (the second token is a four-way guess, the first is given),
/// against `ln(vocab)` for an untrained model, so a falling loss is easy to
/// read. Examples are unbounded and a pure function of (seed, split, index).
#[derive(Clone, Debug)]
pub struct Synthetic {
    vocab: u64,
    seed: u64,
    rules: [(u64, u64); RULES as usize],
}

impl Synthetic {
    /// The task for a vocabulary of `vocab` tokens; `seed` picks the rules.
    pub fn new(vocab: usize, seed: u64) -> Self {
        let vocab = vocab.max(2) as u64;
        let rules = std::array::from_fn(|r| {
            let h = mix(seed ^ mix(r as u64 + 1));
            let a = 1 + 2 * (h % (vocab / 2).max(1));
            let b = 1 + (h >> 32) % (vocab - 1);
            (a, b)
        });
        Synthetic { vocab, seed, rules }
    }
}

impl TokenSource for Synthetic {
    fn len(&self, _split: Split) -> Option<u64> {
        None
    }

    fn example(&self, split: Split, index: u64, out: &mut [i32]) {
        let salt = match split {
            Split::Train => 0,
            Split::Eval => 1 << 63,
        };
        let h = mix(self.seed ^ mix(index ^ salt));
        let (a, b) = self.rules[(h % RULES) as usize];
        let mut x = (h >> 8) % self.vocab;
        for slot in out.iter_mut() {
            *slot = x as i32;
            x = (a * x + b) % self.vocab;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_one_of_the_rules_and_stays_in_vocab() {
        let task = Synthetic::new(1024, 7);
        let mut out = vec![0; 129];
        for index in 0..50 {
            task.example(Split::Train, index, &mut out);
            assert!(out.iter().all(|&t| (0..1024).contains(&t)));
            let rule = task.rules.iter().find(|(a, b)| {
                out.windows(2)
                    .all(|w| (a * w[0] as u64 + b) % 1024 == w[1] as u64)
            });
            assert!(rule.is_some(), "example {index} follows no rule: {out:?}");
        }
    }

    #[test]
    fn splits_differ() {
        let task = Synthetic::new(1024, 7);
        let (mut train, mut eval) = (vec![0; 17], vec![0; 17]);
        task.example(Split::Train, 3, &mut train);
        task.example(Split::Eval, 3, &mut eval);
        assert_ne!(train, eval);
    }
}
