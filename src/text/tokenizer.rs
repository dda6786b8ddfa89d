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

/// A tokenizer and the file it came from (for messages).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads a Hugging Face `tokenizer.json` (any model the `tokenizers`
    /// crate reads: BPE, WordPiece, Unigram, WordLevel).
    pub fn load(path: &Path) -> Result<TextTokenizer, TextError> {
        let inner = Tokenizer::from_file(path).map_err(|e| TextError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Trains a byte-level BPE of `vocab_size` tokens (the 256 byte tokens,
    /// [`END_OF_TEXT`] and the merges learned, most frequent first, from
    /// pairs seen at least twice) on `files`, read line by line. GPT-2's
    /// settings: no normalizer, the byte-level pre-tokenizer with GPT-2's
    /// split regex and no prefix space, and its decoder, so that decoding an
    /// encoding gives the text back byte for byte.
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
            std::fs::metadata(file).map_err(|source| TextError::Io {
                action: "read",
                path: file.clone(),
                source,
            })?;
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
        self.path = path.to_path_buf();
        Ok(())
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
