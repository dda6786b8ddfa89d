//! The input pipeline: token examples of length `seq + 1` from a synthetic
//! task or a file, cut into batches that are deterministic from a seed and
//! resumable from a saved position.
//!
//! Every source is a set of examples addressed by index; a [`Loader`] maps
//! its position (the number of batches already produced) to example indices
//! with a seeded hash, so batch `p` is the same whether the run got there
//! straight or was restored from a checkpoint at any earlier position.

mod files;
mod mix;
mod synthetic;

pub use files::TokenFile;
pub use synthetic::Synthetic;

use ndarray::Array2;
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
    /// A token id is not below the model's vocabulary size.
    #[error("{path}: token {value} at index {index} is not below the vocabulary size {vocab}")]
    TokenOutOfRange {
        /// The file.
        path: PathBuf,
        /// The flat index of the token in the file.
        index: usize,
        /// The token id.
        value: u64,
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

/// A set of token examples of a fixed length, addressed by index.
pub trait Source: Send {
    /// Number of distinct examples in `split`; `None` for an unbounded source.
    fn len(&self, split: Split) -> Option<u64>;
    /// Writes example `index` of `split` (taken modulo the split's length)
    /// into `out`, whose length is the example length `seq + 1`.
    fn example(&self, split: Split, index: u64, out: &mut [i32]);
}

/// Cuts a [`Source`] into batches `[batch, seq + 1]` of token ids; inputs are
/// `[:, :seq]` and targets `[:, 1:]`.
pub struct Loader<'a> {
    source: &'a dyn Source,
    split: Split,
    batch: usize,
    seq: usize,
    seed: u64,
    position: u64,
}

impl<'a> Loader<'a> {
    /// A loader at position 0. `seed` picks the order of the examples.
    pub fn new(source: &'a dyn Source, split: Split, batch: usize, seq: usize, seed: u64) -> Self {
        Loader {
            source,
            split,
            batch,
            seq,
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

    /// The next batch, `[batch, seq + 1]`.
    pub fn next_batch(&mut self) -> Array2<i32> {
        let batch = self.batch_at(self.position);
        self.position += 1;
        batch
    }

    /// The batch at `position`, without moving.
    pub fn batch_at(&self, position: u64) -> Array2<i32> {
        let width = self.seq + 1;
        let mut out = Array2::zeros((self.batch, width));
        for (row, mut line) in out.rows_mut().into_iter().enumerate() {
            let slot = position * self.batch as u64 + row as u64;
            let index = self.example_index(slot);
            let line = line
                .as_slice_mut()
                .expect("rows of a standard-layout array are contiguous");
            self.source.example(self.split, index, line);
        }
        out
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
