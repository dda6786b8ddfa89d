//! Packing documents into fixed-length rows of a causal LM batch, and a
//! text input that streams files (never holding more than one document in
//! memory), tokenizes them and packs them, resumable from a saved state.
//!
//! A row has `seq` slots. A document of `n` tokens fills `n - 1` slots:
//! inputs are its tokens but the last, targets its tokens but the first,
//! its segment id is the row's next one (from 1) and its positions count
//! from 0, so attention (which stays within a segment) and RoPE see it as
//! if it were alone. A document longer than the room left is cut; the next
//! piece starts at the last token of the previous one (so no target is
//! lost) and counts its positions from 0 again, in the next row. Unused
//! slots have segment id 0, input 0 and target -1 (masked). This is the
//! packing of T5's and MaxText's input pipelines, without their
//! cross-document mixing of rows.

use super::{TextError, TextTokenizer};
use crate::data::{HostArray, HostBatch, Split};
use axle_modules::{INPUT_IDS, POSITIONS, SEGMENT_IDS, TARGET_LABELS};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

/// The target of an unused slot: negative, so the loss masks it.
const MASKED: i32 = -1;

/// One packed row of `seq` slots.
#[derive(Clone, Debug, Default, PartialEq)]
struct Row {
    input_ids: Vec<i32>,
    target_labels: Vec<i32>,
    segment_ids: Vec<i32>,
    positions: Vec<i32>,
}

/// Fills rows of `seq` slots from documents given one at a time, keeping
/// the rest of a document that did not fit for the next row.
#[derive(Clone, Debug)]
pub struct Packer {
    seq: usize,
    pending: Vec<i32>,
}

impl Packer {
    /// A packer of rows of `seq` slots (at least 1), holding `pending`, the
    /// tokens of a document not yet placed (empty at the start).
    pub fn new(seq: usize, pending: Vec<i32>) -> Packer {
        Packer {
            seq: seq.max(1),
            pending,
        }
    }

    /// The tokens of the current document not yet placed (to save with the
    /// input state).
    pub fn pending(&self) -> &[i32] {
        &self.pending
    }

    /// One row, pulling documents from `next` while it has room; `next`
    /// returning `None` (no more documents) leaves the rest of the row
    /// unused. Documents of fewer than 2 tokens have no target and are
    /// skipped.
    fn fill<E>(&mut self, mut next: impl FnMut() -> Result<Option<Vec<i32>>, E>) -> Result<Row, E> {
        let mut row = Row::default();
        let mut segment = 0;
        while row.input_ids.len() < self.seq {
            if self.pending.len() < 2 {
                match next()? {
                    Some(document) => {
                        self.pending = document;
                        continue;
                    }
                    None => {
                        self.pending.clear();
                        break;
                    }
                }
            }
            let room = self.seq - row.input_ids.len();
            let take = (self.pending.len() - 1).min(room);
            segment += 1;
            row.input_ids.extend_from_slice(&self.pending[..take]);
            row.target_labels
                .extend_from_slice(&self.pending[1..take + 1]);
            row.segment_ids.extend(std::iter::repeat_n(segment, take));
            row.positions.extend(0..take as i32);
            self.pending.drain(..take);
        }
        let unused = self.seq - row.input_ids.len();
        row.input_ids.extend(std::iter::repeat_n(0, unused));
        row.target_labels
            .extend(std::iter::repeat_n(MASKED, unused));
        row.segment_ids.extend(std::iter::repeat_n(0, unused));
        row.positions.extend(std::iter::repeat_n(0, unused));
        Ok(row)
    }
}

/// `documents` packed into as many rows of `seq` slots as they need, as
/// one causal-LM batch `[rows, seq]` of `input_ids`, `target_labels`,
/// `segment_ids` and `positions` (the last row's unused slots masked).
pub fn pack_documents(documents: &[Vec<i32>], seq: usize) -> HostBatch {
    let mut packer = Packer::new(seq, Vec::new());
    let mut documents = documents.iter().cloned();
    let mut rows = Vec::new();
    loop {
        let row = packer
            .fill(|| Ok::<_, std::convert::Infallible>(documents.next()))
            .unwrap_or_else(|never| match never {});
        if row.segment_ids.iter().all(|&s| s == 0) {
            break;
        }
        rows.push(row);
    }
    to_batch(&rows, seq)
}

/// The rows as a batch of the four causal-LM inputs, each `i32[rows, seq]`.
fn to_batch(rows: &[Row], seq: usize) -> HostBatch {
    let field = |get: fn(&Row) -> &Vec<i32>| {
        let flat: Vec<i32> = rows.iter().flat_map(|r| get(r).iter().copied()).collect();
        HostArray::I32(ArrayD::from_shape_vec(IxDyn(&[rows.len(), seq]), flat).expect("rows × seq"))
    };
    HostBatch::from([
        (INPUT_IDS.to_string(), field(|r| &r.input_ids)),
        (TARGET_LABELS.to_string(), field(|r| &r.target_labels)),
        (SEGMENT_IDS.to_string(), field(|r| &r.segment_ids)),
        (POSITIONS.to_string(), field(|r| &r.positions)),
    ])
}

/// Where a [`PackedText`] stands: everything needed to continue exactly
/// where it was (saved with a checkpoint as JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedTextState {
    /// Batches produced so far.
    pub position: u64,
    /// Passes over the files completed.
    pub epoch: u64,
    /// Index of the current file in this epoch's order.
    pub file: usize,
    /// Byte offset of the next document in the current file.
    pub offset: u64,
    /// Tokens of the current document not yet placed in a row.
    pub pending: Vec<i32>,
}

/// Text files as an endless stream of packed causal-LM batches: files in an
/// order drawn from the seed for each pass, documents (runs of lines ended
/// by an empty line or the end of the file) read one at a time, tokenized
/// (by a tokenizer, which also ends each document with [`super::END_OF_TEXT`]
/// when it has that token, or as bytes), and packed into rows of `seq`
/// slots. The batches are a function of the files, the tokenizer, the seed
/// and the position; [`PackedText::state`] and [`PackedText::restore`]
/// continue a stream exactly.
pub struct PackedText {
    files: Vec<PathBuf>,
    part: Split,
    tokenizer: Option<TextTokenizer>,
    vocab: usize,
    batch: usize,
    seed: u64,
    state: PackedTextState,
    packer: Packer,
    reader: Option<BufReader<std::fs::File>>,
    /// Where the current file's part ends: no document starts at or after it.
    end: u64,
}

impl PackedText {
    /// A stream of batches `[batch, seq]` from `part` of `files` (at least
    /// one, each readable), tokenized by `tokenizer` or as bytes when
    /// `None`; every token must be below `vocab` (checked as documents are
    /// read). The training part of a file is the documents that start in
    /// its first nine tenths; the evaluation part, the documents after the
    /// first empty line in its last tenth.
    pub fn new(
        files: Vec<PathBuf>,
        part: Split,
        tokenizer: Option<TextTokenizer>,
        vocab: usize,
        batch: usize,
        seq: usize,
        seed: u64,
    ) -> Result<PackedText, TextError> {
        if files.is_empty() {
            return Err(TextError::Invalid("no text files to read".into()));
        }
        for file in &files {
            std::fs::File::open(file).map_err(|source| TextError::Io {
                action: "read",
                path: file.clone(),
                source,
            })?;
        }
        if let Some(t) = &tokenizer
            && t.vocab_size() > vocab
        {
            return Err(TextError::VocabTooSmall {
                path: t.path().to_path_buf(),
                id: t.vocab_size() as u32 - 1,
                vocab,
                needed: t.vocab_size(),
            });
        }
        Ok(PackedText {
            files,
            part,
            tokenizer,
            vocab,
            batch,
            seed,
            state: PackedTextState::default(),
            packer: Packer::new(seq, Vec::new()),
            reader: None,
            end: u64::MAX,
        })
    }

    /// The state to save with a checkpoint.
    pub fn state(&self) -> PackedTextState {
        PackedTextState {
            pending: self.packer.pending().to_vec(),
            ..self.state.clone()
        }
    }

    /// Continues from `state` (one [`PackedText::state`] returned for the
    /// same files, tokenizer, batch shape and seed).
    pub fn restore(&mut self, state: &PackedTextState) {
        self.packer = Packer::new(self.packer.seq, state.pending.clone());
        self.state = state.clone();
        self.reader = None;
    }

    /// The next batch: `input_ids`, `target_labels`, `segment_ids` and
    /// `positions`, each `i32[batch, seq]`.
    pub fn next_batch(&mut self) -> Result<HostBatch, TextError> {
        let mut rows = Vec::with_capacity(self.batch);
        for _ in 0..self.batch {
            let mut packer = self.packer.clone();
            let row = packer.fill(|| self.next_document().map(Some))?;
            self.packer = packer;
            rows.push(row);
        }
        self.state.position += 1;
        Ok(to_batch(&rows, self.packer.seq))
    }

    /// Up to `max_rows` rows packed from one pass over this part of the
    /// files (a fixed evaluation set; empty when the part holds no
    /// document of 2 tokens or more), and the number of bytes of text they
    /// hold per target (for bits per byte).
    pub fn one_pass_rows(&mut self, max_rows: usize) -> Result<(Vec<HostBatch>, f64), TextError> {
        let mut rows = Vec::new();
        let (mut bytes, mut targets) = (0.0f64, 0usize);
        // Bytes and targets of the last document read, to discount the part
        // of it that did not fit in the last row.
        let mut last = (0.0f64, 1usize);
        let mut packer = self.packer.clone();
        while rows.len() < max_rows {
            let row = packer.fill(|| {
                while self.state.epoch == 0 {
                    if let Some(text) = self.read_document()? {
                        let tokens = self.tokenize(&text)?;
                        if tokens.len() >= 2 {
                            last = (text.len() as f64, tokens.len() - 1);
                            bytes += last.0;
                            return Ok(Some(tokens));
                        }
                    } else {
                        self.next_file();
                    }
                }
                Ok(None)
            })?;
            let live = row.segment_ids.iter().filter(|&&s| s > 0).count();
            if live == 0 {
                break;
            }
            targets += live;
            rows.push(to_batch(std::slice::from_ref(&row), self.packer.seq));
        }
        let unplaced = packer.pending().len().saturating_sub(1);
        bytes -= last.0 * unplaced as f64 / last.1 as f64;
        let examples = rows
            .into_iter()
            .map(|batch| {
                batch
                    .into_iter()
                    .map(|(name, a)| match a {
                        HostArray::I32(a) => {
                            (name, HostArray::I32(a.index_axis_move(ndarray::Axis(0), 0)))
                        }
                        other => (name, other),
                    })
                    .collect()
            })
            .collect();
        Ok((examples, bytes / targets.max(1) as f64))
    }

    /// Moves to the start of the next file, and of the next epoch after the last.
    fn next_file(&mut self) {
        self.reader = None;
        self.state.offset = 0;
        self.state.file += 1;
        if self.state.file == self.files.len() {
            self.state.file = 0;
            self.state.epoch += 1;
        }
    }

    /// The file read at index `i` of the current epoch's order.
    fn file_in_order(&self, i: usize) -> &PathBuf {
        let n = self.files.len() as u64;
        let salt = crate::data::mix::mix(self.seed ^ self.state.epoch.rotate_left(32));
        &self.files[crate::data::mix::permute(i as u64, n, salt) as usize]
    }

    /// The tokens of the next document with at least 2 tokens, moving to
    /// the next file (and the next epoch) at ends of files. An endless
    /// stream: errors if a whole pass finds no such document.
    fn next_document(&mut self) -> Result<Vec<i32>, TextError> {
        let mut files_without_text = 0;
        loop {
            let text = self.read_document()?;
            match text {
                Some(text) => {
                    let tokens = self.tokenize(&text)?;
                    if tokens.len() >= 2 {
                        return Ok(tokens);
                    }
                }
                None => {
                    files_without_text += 1;
                    if files_without_text > self.files.len() {
                        return Err(TextError::Invalid(format!(
                            "the text files hold no document of 2 tokens or more: {}",
                            self.files
                                .iter()
                                .map(|f| f.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    self.next_file();
                }
            }
        }
    }

    /// The next document of the current file (its lines up to an empty line
    /// or the end), or `None` at the end of the file.
    fn read_document(&mut self) -> Result<Option<String>, TextError> {
        let path = self.file_in_order(self.state.file).clone();
        let io = |action, source| TextError::Io {
            action,
            path: path.clone(),
            source,
        };
        if self.reader.is_none() {
            let mut file = std::fs::File::open(&path).map_err(|e| io("read", e))?;
            let len = file.metadata().map_err(|e| io("read", e))?.len();
            let boundary = len / 10 * 9;
            self.end = match self.part {
                Split::Train => boundary,
                Split::Eval => u64::MAX,
            };
            let skip_to_document = self.part == Split::Eval && self.state.offset < boundary;
            if skip_to_document {
                self.state.offset = boundary;
            }
            file.seek(SeekFrom::Start(self.state.offset))
                .map_err(|e| io("seek in", e))?;
            let mut reader = BufReader::new(file);
            if skip_to_document {
                let mut line = String::new();
                loop {
                    line.clear();
                    let read = reader.read_line(&mut line).map_err(|e| io("read", e))?;
                    self.state.offset += read as u64;
                    if read == 0 || line.trim().is_empty() {
                        break;
                    }
                }
            }
            self.reader = Some(reader);
        }
        if self.state.offset >= self.end {
            return Ok(None);
        }
        let reader = self.reader.as_mut().expect("opened above");
        let mut document = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(|e| io("read", e))?;
            self.state.offset += read as u64;
            if read == 0 {
                return Ok((!document.is_empty()).then_some(document));
            }
            if line.trim().is_empty() {
                if !document.is_empty() {
                    return Ok(Some(document));
                }
                continue;
            }
            document.push_str(&line);
        }
    }

    fn tokenize(&self, text: &str) -> Result<Vec<i32>, TextError> {
        let ids: Vec<u32> = match &self.tokenizer {
            Some(t) => {
                let mut ids = t.encode(text)?;
                ids.extend(t.end_of_text());
                ids
            }
            None => text.bytes().map(u32::from).collect(),
        };
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab) {
            return Err(TextError::VocabTooSmall {
                path: self
                    .tokenizer
                    .as_ref()
                    .map_or_else(|| PathBuf::from("<bytes>"), |t| t.path().to_path_buf()),
                id,
                vocab: self.vocab,
                needed: id as usize + 1,
            });
        }
        Ok(ids.into_iter().map(|id| id as i32).collect())
    }
}
