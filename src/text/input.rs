//! The input of a text run (`axle train --tokenizer F --data TEXT`): the
//! training stream of packed rows, a fixed held-out set of packed rows for
//! evaluation, and the model adapter that declares the packed inputs
//! (segment ids and positions) to the step.

use super::{PackedText, TextError, TextTokenizer};
use crate::data::{HostBatch, Source, Split};
use axle_compiler::DType;
use axle_modules::{
    BatchShape, Ctx, INPUT_IDS, InputSpec, Inputs, LossOutput, Model, Module, POSITIONS, ParamSpec,
    ParamTree, Result as ModelResult, SEGMENT_IDS,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Text files and the tokenizer that turns them into packed batches.
pub struct TextInput {
    files: Vec<PathBuf>,
    tokenizer: TextTokenizer,
    vocab: usize,
    batch: usize,
    seq: usize,
}

impl TextInput {
    /// The text of `data` (a file, or every file of a directory, sorted by
    /// name) tokenized by the `tokenizer.json` at `tokenizer`, for a model
    /// of `vocab` tokens (at least the tokenizer's) and batches of `batch`
    /// rows of `seq` slots.
    pub fn open(
        data: &Path,
        tokenizer: &Path,
        vocab: usize,
        batch: usize,
        seq: usize,
    ) -> Result<TextInput, TextError> {
        let io = |source| TextError::Io {
            action: "read",
            path: data.to_path_buf(),
            source,
        };
        let files = if data.is_dir() {
            let mut files = std::fs::read_dir(data)
                .map_err(io)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(io)?;
            files.retain(|f| f.is_file());
            files.sort();
            if files.is_empty() {
                return Err(TextError::Invalid(format!(
                    "the data directory {} holds no files to train on",
                    data.display()
                )));
            }
            files
        } else {
            vec![data.to_path_buf()]
        };
        let tokenizer = TextTokenizer::load(tokenizer)?;
        if tokenizer.vocab_size() > vocab {
            return Err(TextError::VocabTooSmall {
                path: tokenizer.path().to_path_buf(),
                id: tokenizer.vocab_size() as u32 - 1,
                vocab,
                needed: tokenizer.vocab_size(),
            });
        }
        Ok(TextInput {
            files,
            tokenizer,
            vocab,
            batch,
            seq,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The training stream (the first nine tenths of each file), its files
    /// in an order drawn from `seed` on each pass.
    pub fn train_stream(&self, seed: u64) -> Result<PackedText, TextError> {
        self.stream(Split::Train, seed)
    }

    /// Up to `rows` held-out rows (the documents of each file's last tenth,
    /// packed the same way), as a [`Source`] for evaluation. Errors when
    /// that part holds no document, naming the files.
    pub fn held_out(&self, rows: usize) -> Result<HeldOut, TextError> {
        let (rows, bytes_per_target) = self.stream(Split::Eval, 0)?.one_pass_rows(rows.max(1))?;
        if rows.is_empty() {
            return Err(TextError::Invalid(format!(
                "the last tenth of {} holds no document (documents are separated by empty lines) to evaluate on",
                self.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(HeldOut {
            rows,
            bytes_per_target,
        })
    }

    fn stream(&self, part: Split, seed: u64) -> Result<PackedText, TextError> {
        PackedText::new(
            self.files.clone(),
            part,
            Some(self.tokenizer.clone()),
            self.vocab,
            self.batch,
            self.seq,
            seed,
        )
    }
}

/// A fixed set of packed held-out rows (one example each: the four
/// packed inputs of one row).
pub struct HeldOut {
    rows: Vec<HostBatch>,
    bytes_per_target: f64,
}

impl HeldOut {
    /// Bytes of text per target token in these rows: bits per byte is the
    /// cross-entropy in bits divided by it.
    pub fn bytes_per_target(&self) -> f64 {
        self.bytes_per_target
    }
}

impl Source for HeldOut {
    fn len(&self, _split: Split) -> Option<u64> {
        Some(self.rows.len() as u64)
    }

    fn example(&self, _split: Split, index: u64) -> HostBatch {
        self.rows[(index % self.rows.len() as u64) as usize].clone()
    }
}

/// A causal LM reading packed rows: the model's inputs plus
/// [`SEGMENT_IDS`] and [`POSITIONS`] (`i32[batch, seq]`, roles
/// `(batch, seq)`), which its loss uses when present; with bits per byte
/// among the evaluation metrics.
pub struct PackedInputs {
    model: Box<dyn Model>,
    bytes_per_target: f64,
}

impl PackedInputs {
    /// `model` (a causal LM) reading packed rows; `bytes_per_target` of the
    /// held-out rows turns cross-entropy into bits per byte.
    pub fn new(model: Box<dyn Model>, bytes_per_target: f64) -> PackedInputs {
        PackedInputs {
            model,
            bytes_per_target,
        }
    }
}

impl Module for PackedInputs {
    fn param_specs(&self) -> ParamTree<ParamSpec> {
        self.model.param_specs()
    }
}

impl Model for PackedInputs {
    fn kind(&self) -> &str {
        self.model.kind()
    }

    fn input_specs(&self, shape: &BatchShape) -> ModelResult<Vec<InputSpec>> {
        let mut specs = self.model.input_specs(shape)?;
        let dims = [shape.batch_size, shape.seq_len];
        if !specs.iter().any(|s| s.name == INPUT_IDS) {
            return Err(axle_modules::Error::BadInput {
                path: "<root>".into(),
                name: INPUT_IDS.into(),
                message: format!(
                    "a {} model does not read token ids: packed text feeds causal LMs",
                    self.model.kind()
                ),
            });
        }
        specs.push(
            InputSpec::new(SEGMENT_IDS, DType::I32, &dims, "(batch, seq)")
                .with_valid(0..i64::from(i32::MAX)),
        );
        specs.push(
            InputSpec::new(POSITIONS, DType::I32, &dims, "(batch, seq)")
                .with_valid(0..shape.seq_len as i64),
        );
        Ok(specs)
    }

    fn loss(&self, ctx: &mut Ctx, inputs: &Inputs) -> ModelResult<LossOutput> {
        self.model.loss(ctx, inputs)
    }

    /// The model's metrics, and `bits_per_byte`: the cross-entropy in bits
    /// over the bytes of text per target.
    fn eval_metrics(&self, loss: f64, summaries: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
        let mut metrics = self.model.eval_metrics(loss, summaries);
        let cross_entropy = summaries.get("loss/cross_entropy").copied().unwrap_or(loss);
        metrics.push((
            "bits_per_byte".into(),
            cross_entropy / std::f64::consts::LN_2 / self.bytes_per_target,
        ));
        metrics
    }

    fn train_flops(&self, shape: &BatchShape) -> f64 {
        self.model.train_flops(shape)
    }
}
