//! Dotted-path get/set and the text dump of configs, through a `serde_json::Value` round trip:
//! serialize, navigate or edit the JSON (numeric segments index lists), deserialize.
//! Deserialization is the type check, so a wrong value is refused with the field's path and the
//! type serde expected.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

fn to_value<T: Serialize>(cfg: &T) -> Value {
    serde_json::to_value(cfg).expect("config types serialize to JSON without failure")
}

/// Follows `path` from `root`: a segment names a key of an object or, as a number, an entry of
/// a list (`layers.0`). Errors name the first segment that does not exist, and for a list index
/// past the end, the list and its length.
fn navigate<'a>(root: &'a mut Value, path: &str) -> Result<&'a mut Value> {
    let mut node = root;
    let mut walked = String::new();
    for key in path.split('.') {
        let parent = if walked.is_empty() {
            "<root>".to_string()
        } else {
            walked.clone()
        };
        let unknown = |valid: String| Error::UnknownPath {
            path: path.to_string(),
            parent: parent.clone(),
            valid,
        };
        node = match node {
            Value::Object(map) => {
                let valid = map.keys().cloned().collect::<Vec<_>>().join(", ");
                map.get_mut(key).ok_or_else(|| unknown(valid))?
            }
            Value::Array(items) => {
                let len = items.len();
                let index: usize = key.parse().map_err(|_| {
                    unknown(match len {
                        0 => "none (an empty list)".to_string(),
                        _ => format!("the list indices 0 to {}", len - 1),
                    })
                })?;
                items.get_mut(index).ok_or_else(|| Error::IndexOutOfRange {
                    path: path.to_string(),
                    list: parent.clone(),
                    index,
                    len,
                })?
            }
            other => {
                return Err(unknown(format!(
                    "none (`{walked}` is the leaf value {other})"
                )));
            }
        };
        walked = crate::config::join(&walked, key);
    }
    Ok(node)
}

/// The JSON value at `path` in `cfg`.
pub fn get<T: Serialize>(cfg: &T, path: &str) -> Result<Value> {
    let mut root = to_value(cfg);
    navigate(&mut root, path).map(|v| v.take())
}

/// Parses command-line text: JSON if it is JSON, a plain string otherwise.
fn parse_text(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
}

/// Sets the field at `path` of `cfg` from its text form; on error `cfg` is unchanged.
pub fn set<T: Serialize + DeserializeOwned>(cfg: &mut T, path: &str, value: &str) -> Result<()> {
    let mut root = to_value(cfg);
    *navigate(&mut root, path)? = parse_text(value);
    *cfg = serde_json::from_value(root).map_err(|e| Error::InvalidValue {
        path: path.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })?;
    Ok(())
}

fn flatten(prefix: &str, value: &Value, lines: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten(&crate::config::join(prefix, key), child, lines);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                flatten(
                    &crate::config::join(prefix, &index.to_string()),
                    child,
                    lines,
                );
            }
        }
        leaf => lines.push(format!("{prefix} = {leaf}")),
    }
}

/// One `path = value` line per leaf (values as compact JSON), sorted by path, newline terminated.
/// Lists are flattened by index (`decoder.transformer.layers.0.attention.num_heads = 4`), as
/// [`get`] and [`set`] address them; an empty list is the leaf `[]`.
pub fn dump<T: Serialize>(cfg: &T) -> String {
    let mut lines = Vec::new();
    flatten("", &to_value(cfg), &mut lines);
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}
