//! Tokenizers through the `tokenizers` crate (Hugging Face's): load a
//! `tokenizer.json`, or train a byte-level BPE (GPT-2's scheme: every byte
//! is a base token, so any text encodes, and decoding gives it back).

use super::TextError;
use std::path::{Path, PathBuf};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::{AddedToken, Tokenizer};

/// The special token a trained BPE reserves for the end of a document
/// (GPT-2's name). It is never produced from text by [`TextTokenizer::encode`].
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A tokenizer, the file it came from (for messages) and the CRC-32 of
/// that file's bytes (which checkpoints record, so that a tokenizer
/// retrained at the same path is noticed).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    crc32: Option<u32>,
}

impl TextTokenizer {
    /// Loads a Hugging Face `tokenizer.json` (any model the `tokenizers`
    /// crate reads: BPE, WordPiece, Unigram, WordLevel).
    /// Errors: [`TextError::Io`] for a file that cannot be read (a
    /// directory), [`TextError::Tokenizer`] for one that is not a
    /// `tokenizer.json`; both name the file.
    pub fn load(path: &Path) -> Result<TextTokenizer, TextError> {
        let bytes = std::fs::read(path).map_err(|source| TextError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| TextError::Tokenizer {
            path: path.to_path_buf(),
            message: format!("not a Hugging Face tokenizer.json: {e}"),
        })?;
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
            crc32: Some(crc32fast::hash(&bytes)),
        })
    }

    /// Trains a byte-level BPE of `vocab_size` tokens (the 256 byte tokens,
    /// [`END_OF_TEXT`] and the merges learned, most frequent first, from
    /// pairs seen at least twice) on `files`, read line by line. GPT-2's
    /// settings: no normalizer, the byte-level pre-tokenizer with GPT-2's
    /// split regex and no prefix space, and its decoder, so that decoding an
    /// encoding gives the text back byte for byte. The result may hold fewer
    /// than `vocab_size` tokens when the text has fewer mergeable pairs
    /// ([`TextTokenizer::vocab_size`] says how many). Errors name a file that
    /// is a directory, unreadable or not UTF-8.
    pub fn train_bpe(files: &[PathBuf], vocab_size: usize) -> Result<TextTokenizer, TextError> {
        let base = ByteLevel::alphabet().len() + 1;
        if vocab_size < base {
            return Err(TextError::Invalid(format!(
                "a byte-level BPE needs a vocabulary of at least {base} (256 bytes and {END_OF_TEXT}), got {vocab_size}"
            )));
        }
        if files.is_empty() {
            return Err(TextError::Invalid(
                "no text files to train the tokenizer on".into(),
            ));
        }
        for file in files {
            if file.is_dir() {
                return Err(TextError::Invalid(format!(
                    "{} is a directory: give the text files to train on",
                    file.display()
                )));
            }
            let bytes = std::fs::read(file).map_err(|source| TextError::Io {
                action: "read",
                path: file.clone(),
                source,
            })?;
            if let Err(e) = std::str::from_utf8(&bytes) {
                return Err(TextError::Invalid(format!(
                    "{} is not UTF-8 text (invalid byte at offset {}): a tokenizer trains on text files",
                    file.display(),
                    e.valid_up_to()
                )));
            }
        }
        let training = || PathBuf::from("<training>");
        let byte_level = ByteLevel::new(false, true, true);
        let mut inner = Tokenizer::new(BPE::default());
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level));
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainerBuilder::new()
                .vocab_size(vocab_size)
                .min_frequency(2)
                .show_progress(false)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
                .build(),
        );
        let names = files.iter().map(|f| f.display().to_string()).collect();
        inner
            .train_from_files(&mut trainer, names)
            .map_err(|e| TextError::Tokenizer {
                path: training(),
                message: e.to_string(),
            })?;
        Ok(TextTokenizer {
            inner,
            path: training(),
            crc32: None,
        })
    }

    /// Writes the tokenizer as a Hugging Face `tokenizer.json` (which
    /// `transformers`' `PreTrainedTokenizerFast(tokenizer_file=...)` reads).
    pub fn save(&mut self, path: &Path) -> Result<(), TextError> {
        self.inner
            .save(path, true)
            .map_err(|e| TextError::Tokenizer {
                path: path.to_path_buf(),
                message: format!("cannot write it: {e}"),
            })?;
        let bytes = std::fs::read(path).map_err(|source| TextError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        self.path = path.to_path_buf();
        self.crc32 = Some(crc32fast::hash(&bytes));
        Ok(())
    }

    /// The CRC-32 (IEEE, as `crc32fast` computes it) of the bytes of the
    /// file the tokenizer was loaded from or saved to, as 8 hex digits;
    /// `None` for one trained and not yet saved.
    pub fn crc32(&self) -> Option<String> {
        self.crc32.map(|c| format!("{c:08x}"))
    }

    /// Checks that this tokenizer's file has the CRC-32 `recorded` (what a
    /// checkpoint recorded of the tokenizer it was trained with). Errors:
    /// [`TextError::TokenizerChanged`] naming the file and both checksums.
    pub fn check_crc32(&self, recorded: &str) -> Result<(), TextError> {
        match self.crc32() {
            Some(found) if found != recorded => Err(TextError::TokenizerChanged {
                path: self.path.clone(),
                recorded: recorded.to_string(),
                found,
            }),
            _ => Ok(()),
        }
    }

    /// The number of token ids, special tokens included: ids are below it.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of [`END_OF_TEXT`], if the tokenizer has that token.
    pub fn end_of_text(&self) -> Option<u32> {
        self.inner.token_to_id(END_OF_TEXT)
    }

    /// The file the tokenizer was loaded from or saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token ids of `text`, without special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| self.error(format!("cannot encode a text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of token `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TextError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| self.error(format!("cannot decode ids: {e}")))
    }

    fn error(&self, message: String) -> TextError {
        TextError::Tokenizer {
            path: self.path.clone(),
            message,
        }
    }
}
