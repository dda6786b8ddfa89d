//! Token data read from a file: raw bytes (vocabulary 256), a flat uint16
//! token file (the `train.bin` convention) or an `.npy` integer array of
//! shape `[N, seq + 1]`.

use super::{DataError, Split, TokenSource};
use std::path::{Path, PathBuf};

/// Fraction of a file's tokens (or rows) held out for evaluation.
const EVAL_FRACTION: f64 = 0.1;

/// How the tokens of a file are laid out.
#[derive(Debug)]
enum Layout {
    /// One long stream; every window of `seq + 1` tokens is an example.
    Stream { train: Vec<i32>, eval: Vec<i32> },
    /// One example per row.
    Rows {
        width: usize,
        train: Vec<i32>,
        eval: Vec<i32>,
    },
}

/// A token file, validated against the model's vocabulary and cut into a
/// training part and a held-out evaluation part (the last tenth).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    example_len: usize,
    layout: Layout,
}

impl TokenFile {
    /// Reads `path` by its extension: `.npy` → integer rows, `.bin` →
    /// little-endian uint16 tokens, anything else → bytes. Every token must
    /// be below `vocab`, and each split must hold at least one example of
    /// `seq + 1` tokens.
    pub fn open(path: &Path, vocab: usize, seq: usize) -> Result<Self, DataError> {
        let path = path.to_path_buf();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let layout = match ext {
            "npy" => rows_from_npy(&path, vocab)?,
            "bin" => {
                let bytes = read(&path)?;
                let tokens = bytes
                    .chunks_exact(2)
                    .map(|c| i32::from(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                stream(tokens)
            }
            _ => stream(read(&path)?.into_iter().map(i32::from).collect()),
        };
        let file = TokenFile {
            path,
            example_len: seq + 1,
            layout,
        };
        file.check_vocab(vocab)?;
        for split in [Split::Train, Split::Eval] {
            file.check_length(split)?;
        }
        Ok(file)
    }

    fn check_vocab(&self, vocab: usize) -> Result<(), DataError> {
        let (train, eval) = match &self.layout {
            Layout::Stream { train, eval } | Layout::Rows { train, eval, .. } => (train, eval),
        };
        let bad = train
            .iter()
            .chain(eval.iter())
            .enumerate()
            .find(|(_, t)| **t < 0 || **t as usize >= vocab);
        match bad {
            Some((index, &value)) => Err(DataError::TokenOutOfRange {
                path: self.path.clone(),
                index,
                value: i64::from(value),
                vocab,
            }),
            None => Ok(()),
        }
    }

    fn check_length(&self, split: Split) -> Result<(), DataError> {
        let available = match (&self.layout, split) {
            (Layout::Stream { train, .. }, Split::Train) => train.len(),
            (Layout::Stream { eval, .. }, Split::Eval) => eval.len(),
            (Layout::Rows { width, train, .. }, Split::Train) if !train.is_empty() => *width,
            (Layout::Rows { width, eval, .. }, Split::Eval) if !eval.is_empty() => *width,
            (Layout::Rows { .. }, _) => 0,
        };
        let enough = match self.layout {
            Layout::Stream { .. } => available >= self.example_len,
            Layout::Rows { width, .. } => available > 0 && width >= self.example_len,
        };
        if enough {
            Ok(())
        } else {
            Err(DataError::TooShort {
                path: self.path.clone(),
                split,
                available,
                needed: self.example_len,
            })
        }
    }
}

impl TokenSource for TokenFile {
    fn len(&self, split: Split) -> Option<u64> {
        let n = match (&self.layout, split) {
            (Layout::Stream { train, .. }, Split::Train) => train.len() + 1 - self.example_len,
            (Layout::Stream { eval, .. }, Split::Eval) => eval.len() + 1 - self.example_len,
            (Layout::Rows { width, train, .. }, Split::Train) => train.len() / width,
            (Layout::Rows { width, eval, .. }, Split::Eval) => eval.len() / width,
        };
        Some(n as u64)
    }

    fn example(&self, split: Split, index: u64, out: &mut [i32]) {
        let n = self.len(split).unwrap_or(1);
        let i = (index % n) as usize;
        let (tokens, start) = match (&self.layout, split) {
            (Layout::Stream { train, .. }, Split::Train) => (train, i),
            (Layout::Stream { eval, .. }, Split::Eval) => (eval, i),
            (Layout::Rows { width, train, .. }, Split::Train) => (train, i * width),
            (Layout::Rows { width, eval, .. }, Split::Eval) => (eval, i * width),
        };
        out.copy_from_slice(&tokens[start..start + out.len()]);
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn stream(tokens: Vec<i32>) -> Layout {
    let eval_len = ((tokens.len() as f64) * EVAL_FRACTION).ceil() as usize;
    let mut train = tokens;
    let eval = train.split_off(train.len() - eval_len.min(train.len()));
    Layout::Stream { train, eval }
}

fn rows_from_npy(path: &Path, vocab: usize) -> Result<Layout, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let npy_error = |message: String| DataError::Npy {
        path: path.to_path_buf(),
        message,
    };
    let array: ndarray::Array2<i64> = read_npy_as_i64(file).map_err(npy_error)?;
    if let Some((index, &value)) = array
        .iter()
        .enumerate()
        .find(|(_, t)| !(0..vocab as i64).contains(*t))
    {
        return Err(DataError::TokenOutOfRange {
            path: path.to_path_buf(),
            index,
            value,
            vocab,
        });
    }
    let (rows, width) = array.dim();
    let eval_rows = ((rows as f64) * EVAL_FRACTION).ceil() as usize;
    let flat: Vec<i32> = array.iter().map(|&t| t as i32).collect();
    let (train, eval) = flat.split_at((rows - eval_rows.min(rows)) * width);
    Ok(Layout::Rows {
        width,
        train: train.to_vec(),
        eval: eval.to_vec(),
    })
}

/// Reads a 2-D `.npy` of any common integer dtype as i64.
fn read_npy_as_i64(file: std::fs::File) -> Result<ndarray::Array2<i64>, String> {
    use ndarray_npy::ReadNpyExt;
    let bytes = {
        use std::io::Read;
        let mut bytes = Vec::new();
        let mut file = file;
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        bytes
    };
    macro_rules! try_dtype {
        ($($t:ty),*) => {$(
            if let Ok(a) = ndarray::Array2::<$t>::read_npy(&bytes[..]) {
                return Ok(a.mapv(|v| v as i64));
            }
        )*};
    }
    try_dtype!(i64, i32, u16, u32, u8, i16, i8, u64);
    macro_rules! try_rank {
        ($($t:ty),*) => {$(
            if let Ok(a) = ndarray::ArrayD::<$t>::read_npy(&bytes[..]) {
                return Err(format!(
                    "the array has shape {:?}: token rows must be 2-D, [examples, seq + 1]",
                    a.shape()
                ));
            }
        )*};
    }
    try_rank!(i64, i32, u16, u32, u8, i16, i8, u64, f32, f64);
    ndarray::Array2::<i64>::read_npy(&bytes[..])
        .map_err(|e| format!("{e} (integer dtypes i8..i64 and u8..u64 are accepted)"))
}
