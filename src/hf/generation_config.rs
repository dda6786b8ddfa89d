//! The end-of-sequence token ids of a Hugging Face model directory, where `transformers`'
//! `generate` finds them: `generation_config.json`'s `eos_token_id` when that file sets it,
//! else `config.json`'s (`GenerationConfig.from_model_config`). The field is an int, a list
//! of ints (Llama 3's `[128001, 128008, 128009]`) or `null`.

use super::{HfError, Result, io};
use serde_json::Value;
use std::path::Path;

/// The files read, in order of precedence.
const FILES: [&str; 2] = ["generation_config.json", "config.json"];

/// The `eos_token_id`s of the model in `dir`: those of the first of `generation_config.json`
/// and `config.json` that sets the field to an id or a list of ids; `None` when neither file
/// is there or sets it (`null` counts as unset, as in `transformers`). Errors:
/// [`HfError::Io`] for a file that exists but cannot be read, [`HfError::Malformed`] for one
/// that is not JSON, [`HfError::Config`] naming the file for a value that is not a
/// non-negative 32-bit id or a list of them.
pub fn eos_token_ids(dir: &Path) -> Result<Option<Vec<u32>>> {
    for name in FILES {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| HfError::Malformed {
            path: path.clone(),
            message: format!("not JSON: {e}"),
        })?;
        let ids = match json.get("eos_token_id") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list.iter().map(token_id).collect::<Option<Vec<_>>>(),
            Some(one) => token_id(one).map(|id| vec![id]),
        };
        return ids.map(Some).ok_or_else(|| HfError::Config {
            path,
            field: "eos_token_id".into(),
            message: format!(
                "expected a token id or a list of token ids, found {}",
                json["eos_token_id"]
            ),
        });
    }
    Ok(None)
}

/// A JSON value as a token id: a non-negative integer below 2^32.
fn token_id(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|id| u32::try_from(id).ok())
}
