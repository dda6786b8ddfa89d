//! The input pipeline: named examples (one row of each model input) from a
//! synthetic task or a file, cut into batches that are deterministic from a
//! seed and resumable from a saved position. Language models read token
//! files ([`TokenFile`], [`LanguageModelSource`]); other models read named
//! arrays ([`ArrayFile`]); every model kind has a synthetic task
//! ([`SyntheticTask`]).
//!
//! Every source is a set of examples addressed by index; a [`Loader`] maps
//! its position (the number of batches already produced) to example indices
//! with a seeded hash, so batch `p` is the same whether the run got there
//! straight or was restored from a checkpoint at any earlier position.

mod arrays;
mod batch;
mod files;
pub(crate) mod mix;
mod synthetic;
mod tasks;

pub use arrays::ArrayFile;
pub use batch::{HostArray, HostBatch, check_batch};
pub use files::TokenFile;
pub use synthetic::Synthetic;
pub use tasks::SyntheticTask;

use axle_modules::{INPUT_IDS, TARGET_LABELS};
use ndarray::{ArrayD, IxDyn};
use std::path::PathBuf;

/// Which part of a source a loader reads: training or held-out evaluation
/// examples. The two never share an example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training examples.
    Train,
    /// Held-out evaluation examples.
    Eval,
}

/// A failure to read or cut the input, naming the file and the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data file could not be opened or read.
    #[error("cannot read data file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The `.npy` file is not a 2-D integer array.
    #[error("cannot read {path} as a 2-D integer .npy array: {message}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A named-array data file does not fit the model's inputs.
    #[error("data file {path}: {message}")]
    Arrays {
        /// The file or directory.
        path: PathBuf,
        /// What does not fit, naming the input.
        message: String,
    },
    /// A synthetic task does not fit the model's inputs.
    #[error("synthetic task `{task}`: {message}")]
    Task {
        /// The task's kind.
        task: String,
        /// What does not fit, naming the input.
        message: String,
    },
    /// A token id is not below the model's vocabulary size.
    #[error("{path}: token {value} at index {index} is outside the vocabulary 0..{vocab}")]
    TokenOutOfRange {
        /// The file.
        path: PathBuf,
        /// The flat index of the token in the file.
        index: usize,
        /// The token id.
        value: i64,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// The data is too short for one example of the requested length.
    #[error(
        "{path}: the {split:?} split has {available} tokens per example at most, but sequences of {needed} (seq + 1) were requested"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The split that is too short.
        split: Split,
        /// Tokens available for one example.
        available: usize,
        /// Tokens needed for one example (`seq + 1`).
        needed: usize,
    },
}

/// A set of named examples, addressed by index: each example is one row of
/// every input of a model (arrays without the batch dimension).
pub trait Source: Send {
    /// Number of distinct examples in `split`; `None` for an unbounded source.
    fn len(&self, split: Split) -> Option<u64>;
    /// Example `index` of `split` (taken modulo the split's length).
    fn example(&self, split: Split, index: u64) -> HostBatch;
}

/// A set of token sequences of a fixed length, addressed by index: what a
/// language model reads.
pub trait TokenSource: Send {
    /// Number of distinct sequences in `split`; `None` for an unbounded source.
    fn len(&self, split: Split) -> Option<u64>;
    /// Writes sequence `index` of `split` (taken modulo the split's length)
    /// into `out`, whose length is the example length `seq + 1`.
    fn example(&self, split: Split, index: u64, out: &mut [i32]);
}

/// Token sequences of `seq + 1` as causal-LM examples: `input_ids` the
/// first `seq` tokens, `target_labels` the last `seq`.
pub struct LanguageModelSource {
    tokens: Box<dyn TokenSource>,
    seq: usize,
}

impl LanguageModelSource {
    /// Examples of `seq` inputs and `seq` next-token targets from `tokens`.
    pub fn new(tokens: Box<dyn TokenSource>, seq: usize) -> Self {
        LanguageModelSource { tokens, seq }
    }
}

impl Source for LanguageModelSource {
    fn len(&self, split: Split) -> Option<u64> {
        self.tokens.len(split)
    }

    fn example(&self, split: Split, index: u64) -> HostBatch {
        let mut row = vec![0; self.seq + 1];
        self.tokens.example(split, index, &mut row);
        let ids = |range: std::ops::Range<usize>| {
            HostArray::I32(
                ArrayD::from_shape_vec(IxDyn(&[self.seq]), row[range].to_vec())
                    .expect("seq tokens"),
            )
        };
        HostBatch::from([
            (INPUT_IDS.to_string(), ids(0..self.seq)),
            (TARGET_LABELS.to_string(), ids(1..self.seq + 1)),
        ])
    }
}

/// Cuts a [`Source`] into batches of named arrays, each with a leading
/// batch dimension.
pub struct Loader<'a> {
    source: &'a dyn Source,
    split: Split,
    batch: usize,
    seed: u64,
    position: u64,
}

impl<'a> Loader<'a> {
    /// A loader at position 0. `seed` picks the order of the examples.
    pub fn new(source: &'a dyn Source, split: Split, batch: usize, seed: u64) -> Self {
        Loader {
            source,
            split,
            batch,
            seed,
            position: 0,
        }
    }

    /// The number of batches produced so far: save it with a checkpoint and
    /// pass it to [`Loader::seek`] to resume.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves to `position`, so the next batch is the one a loader that had
    /// produced `position` batches would produce.
    pub fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> HostBatch {
        let batch = self.batch_at(self.position);
        self.position += 1;
        batch
    }

    /// The batch at `position`, without moving. Panics if the source's
    /// examples do not share their fields' dtypes and shapes (a bug of the
    /// source).
    pub fn batch_at(&self, position: u64) -> HostBatch {
        let examples: Vec<HostBatch> = (0..self.batch)
            .map(|row| {
                let slot = position * self.batch as u64 + row as u64;
                self.source.example(self.split, self.example_index(slot))
            })
            .collect();
        let first = examples.first().cloned().unwrap_or_default();
        first
            .keys()
            .map(|name| {
                let rows: Vec<&HostArray> = examples.iter().map(|e| &e[name]).collect();
                let stacked = HostArray::stack(&rows).unwrap_or_else(|| {
                    panic!("examples of field `{name}` differ in dtype or shape")
                });
                (name.clone(), stacked)
            })
            .collect()
    }

    /// Maps the `slot`-th example drawn to an example index: a seeded
    /// permutation within each pass over a finite source, a seeded hash for
    /// an unbounded one.
    fn example_index(&self, slot: u64) -> u64 {
        let salt = mix::mix(self.seed ^ split_salt(self.split));
        match self.source.len(self.split) {
            None => mix::mix(salt ^ slot),
            Some(n) => {
                let pass = slot / n;
                mix::permute(slot % n, n, mix::mix(salt ^ pass))
            }
        }
    }
}

fn split_salt(split: Split) -> u64 {
    match split {
        Split::Train => 0x5452_4149_4e00_0000,
        Split::Eval => 0x4556_414c_0000_0000,
    }
}
