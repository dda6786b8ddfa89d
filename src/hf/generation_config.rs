//! The end-of-sequence token ids of a Hugging Face model directory, where `transformers`'
//! `generate` finds them: `generation_config.json`'s `eos_token_id` when that file sets it,
//! else `config.json`'s (`GenerationConfig.from_model_config`). The field is an int, a list
//! of ints (Llama 3's `[128001, 128008, 128009]`) or `null`; an empty list counts as `null`
//! (no id to stop at is what an unset field means too), so the next file is asked.

use super::{HfError, Result, io};
use crate::text::TextTokenizer;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The files read, in order of precedence.
const FILES: [&str; 2] = ["generation_config.json", "config.json"];

/// The `eos_token_id`s of the model in `dir`: those of the first of `generation_config.json`
/// and `config.json` that sets the field to an id or a non-empty list of ids; `None` when
/// neither file is there or sets it (`null` and `[]` count as unset, as `null` does in
/// `transformers`). Errors: [`HfError::Io`] for a file that exists but cannot be read,
/// [`HfError::Malformed`] for one that is a directory, not JSON or not a JSON object,
/// [`HfError::Config`] naming the file for a value that is not a non-negative 32-bit id or a
/// list of them.
pub fn eos_token_ids(dir: &Path) -> Result<Option<Vec<u32>>> {
    Ok(eos_token_ids_with_file(dir)?.map(|(ids, _)| ids))
}

/// [`eos_token_ids`] with the file that set them, for messages.
pub fn eos_token_ids_with_file(dir: &Path) -> Result<Option<(Vec<u32>, PathBuf)>> {
    for name in FILES {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        if path.is_dir() {
            return Err(HfError::Malformed {
                path,
                message: "is a directory, expected a JSON file".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| HfError::Malformed {
            path: path.clone(),
            message: format!("not JSON: {e}"),
        })?;
        if !json.is_object() {
            return Err(HfError::Malformed {
                path,
                message: format!("expected a JSON object, found {json}"),
            });
        }
        let ids = match json.get("eos_token_id") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) if list.is_empty() => continue,
            Some(Value::Array(list)) => list.iter().map(token_id).collect::<Option<Vec<_>>>(),
            Some(one) => token_id(one).map(|id| vec![id]),
        };
        return match ids {
            Some(ids) => Ok(Some((ids, path))),
            None => Err(HfError::Config {
                path,
                field: "eos_token_id".into(),
                message: format!(
                    "expected a token id or a list of token ids, found {}",
                    json["eos_token_id"]
                ),
            }),
        };
    }
    Ok(None)
}

/// The end-of-sequence ids `axle generate` stops at by default for the model in `dir` with
/// `tokenizer`, and where they come from (for messages): [`eos_token_ids`], else the
/// tokenizer's `<|endoftext|>`, else none. `axle generate --hf DIR` and a checkpoint made
/// from `DIR` (`import-hf`, which records them) use this one rule. Errors: those of
/// [`eos_token_ids`].
pub fn default_eos_ids(
    dir: &Path,
    tokenizer: Option<&TextTokenizer>,
) -> Result<(Vec<u32>, String)> {
    if let Some((ids, path)) = eos_token_ids_with_file(dir)? {
        return Ok((ids, path.display().to_string()));
    }
    Ok(
        match tokenizer.and_then(|t| t.end_of_text().map(|id| (id, t))) {
            Some((id, t)) => (
                vec![id],
                format!("the <|endoftext|> of {}", t.path().display()),
            ),
            None => (Vec::new(), String::new()),
        },
    )
}

/// A JSON value as a token id: a non-negative integer below 2^32.
fn token_id(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|id| u32::try_from(id).ok())
}
