//! Reading and writing Hugging Face weight files: one `model.safetensors`, or the shards a
//! `model.safetensors.index.json` lists (its `weight_map` names the file of each tensor).

use super::{HfError, Result, io};
use crate::checkpoint::Tensors;
use half::{bf16, f16};
use ndarray::ArrayD;
use std::collections::HashMap;
use std::path::{Component, Path};

/// The single-file weights of a model directory.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded model's weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Every tensor of the model in `dir`, converted to f32 (files may hold f32, f16, bf16 or
/// f64), from the shards `model.safetensors.index.json` lists when it exists, else from
/// `model.safetensors`. Errors name the file: [`HfError::Io`], and [`HfError::Malformed`] for
/// a bad index, a `weight_map` file that is not a plain name inside `dir` (`../x`, an
/// absolute path), a tensor found in a shard other than the one the index names or in none,
/// a tensor the index does not list, a tensor in two files, or a dtype that is not a float.
pub fn read_tensors(dir: &Path) -> Result<Tensors> {
    let index = dir.join(INDEX_FILE);
    if !index.exists() {
        return Ok(read_files(dir, &[SINGLE_FILE.to_string()])?.0);
    }
    let text = std::fs::read_to_string(&index).map_err(io(&index))?;
    let malformed = |message: String| HfError::Malformed {
        path: index.clone(),
        message,
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| malformed("no weight_map object".into()))?;
    let mut named = HashMap::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| malformed(format!("weight_map value {file} is not a file name")))?;
        let inside = Path::new(file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if file.is_empty() || !inside {
            return Err(malformed(format!(
                "weight_map puts {name} in {file}, which is not a file inside {}",
                dir.display()
            )));
        }
        named.insert(name.as_str(), file.to_string());
    }
    let mut files: Vec<String> = named.values().cloned().collect();
    files.sort();
    files.dedup();
    let (tensors, origins) = read_files(dir, &files)?;
    for (name, file) in &named {
        match origins.get(*name) {
            Some(found) if found == file => {}
            Some(found) => {
                return Err(malformed(format!(
                    "weight_map puts {name} in {file}, but it is in {found}"
                )));
            }
            None => {
                return Err(malformed(format!(
                    "weight_map lists {name} in {file}, which does not hold it"
                )));
            }
        }
    }
    if let Some((name, file)) = origins
        .iter()
        .find(|(n, _)| !named.contains_key(n.as_str()))
    {
        return Err(malformed(format!(
            "{file} holds {name}, which weight_map does not list"
        )));
    }
    Ok(tensors)
}

/// The tensors of `files` in `dir` and the file each came from.
fn read_files(dir: &Path, files: &[String]) -> Result<(Tensors, HashMap<String, String>)> {
    let mut tensors = Tensors::new();
    let mut origins = HashMap::new();
    for file in files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let malformed = |message: String| HfError::Malformed {
            path: path.clone(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| malformed(format!("not a safetensors file: {e}")))?;
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                safetensors::Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                safetensors::Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(malformed(format!(
                        "tensor {name} has dtype {other:?}; only F32, F16, BF16 and F64 are read"
                    )));
                }
            };
            let array = ArrayD::from_shape_vec(view.shape().to_vec(), values)
                .map_err(|e| malformed(format!("tensor {name}: {e}")))?;
            if tensors.insert(name.clone(), array).is_some() {
                return Err(malformed(format!("tensor {name} is also in another file")));
            }
            origins.insert(name, file.clone());
        }
    }
    Ok((tensors, origins))
}

/// Writes `tensors` (f32) as `dir/model.safetensors` with the `{"format": "pt"}` metadata
/// `transformers` checks for, creating `dir`.
pub fn write_tensors(dir: &Path, tensors: &Tensors) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(SINGLE_FILE);
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let out = crate::checkpoint::encode_f32(tensors, Some(metadata)).map_err(|(name, e)| {
        HfError::Malformed {
            path: path.clone(),
            message: format!("tensor {name}: {e}"),
        }
    })?;
    std::fs::write(&path, out).map_err(io(&path))
}
