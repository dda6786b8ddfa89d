//! Text for language models: tokenizers (Hugging Face `tokenizer.json`
//! files, and byte-level BPE training) and text files streamed, tokenized
//! and packed into fixed-length rows with per-document segment ids and
//! positions.

mod input;
mod packing;
mod tokenizer;

pub use input::{HeldOut, PackedInputs, TextInput};
pub use packing::{PackedText, PackedTextState, Packer, pack_documents};
pub use tokenizer::{END_OF_TEXT, TextTokenizer};

use std::path::PathBuf;

/// A failure to read, train, save or apply a tokenizer, or to stream text,
/// naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A text or tokenizer file could not be opened, read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `seek in`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The `tokenizers` crate refused a file, a training run or a text.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file (or `<training>` while training one).
        path: PathBuf,
        /// The crate's message.
        message: String,
    },
    /// An option that cannot work (no files, a vocabulary too small).
    #[error("{0}")]
    Invalid(String),
    /// A tokenizer file's bytes differ from those a checkpoint recorded
    /// (it was retrained or edited since).
    #[error(
        "tokenizer {path} has changed since the checkpoint was written (CRC-32 recorded {recorded}, now {found}): use the tokenizer the run was trained with"
    )]
    TokenizerChanged {
        /// The tokenizer file.
        path: PathBuf,
        /// The CRC-32 the checkpoint recorded (8 hex digits).
        recorded: String,
        /// The CRC-32 of the file now.
        found: String,
    },
    /// A token id is not below the model's vocabulary size.
    #[error(
        "tokenizer {path} gives token id {id}, outside the model's vocabulary 0..{vocab}: set decoder.vocab_size to at least {needed}"
    )]
    VocabTooSmall {
        /// The tokenizer file.
        path: PathBuf,
        /// The offending id.
        id: u32,
        /// The model's vocabulary size.
        vocab: usize,
        /// The tokenizer's vocabulary size.
        needed: usize,
    },
}
