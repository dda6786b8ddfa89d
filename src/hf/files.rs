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

/// The element type of written weight files (`axle export-hf --dtype`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightDtype {
    /// IEEE f32, the values as they are.
    #[default]
    F32,
    /// bfloat16: each f32 rounded to the nearest bf16, ties to even (the rounding of
    /// `torch.Tensor.to(torch.bfloat16)`), half the bytes.
    Bf16,
}

impl WeightDtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            WeightDtype::F32 => 4,
            WeightDtype::Bf16 => 2,
        }
    }

    /// The `dtype` (`torch_dtype`) `config.json` records for it: `float32`, `bfloat16`.
    pub fn torch_name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::Bf16 => "bfloat16",
        }
    }
}

impl std::str::FromStr for WeightDtype {
    type Err = String;

    /// `f32`/`float32` or `bf16`/`bfloat16`.
    fn from_str(text: &str) -> std::result::Result<WeightDtype, String> {
        match text {
            "f32" | "float32" => Ok(WeightDtype::F32),
            "bf16" | "bfloat16" => Ok(WeightDtype::Bf16),
            other => Err(format!("unknown weight dtype `{other}`: f32 or bf16")),
        }
    }
}

/// Writes `tensors` (f32) as `dir/model.safetensors` in `dtype` with the `{"format": "pt"}`
/// metadata `transformers` checks for, creating `dir`. Errors name the file.
pub fn write_tensors(dir: &Path, tensors: &Tensors, dtype: WeightDtype) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_file(&dir.join(SINGLE_FILE), tensors, dtype)
}

/// Writes `tensors` (f32) in `dtype` as `transformers`' `save_pretrained(max_shard_size=...)`
/// does: in name order, a new shard is begun when the next tensor would take the current one
/// past `max_shard_bytes` (a tensor larger than that gets a shard of its own, with a warning
/// on stderr, as `transformers` warns), the shards
/// named `model-00001-of-0000N.safetensors` with a `model.safetensors.index.json` whose
/// `weight_map` names each tensor's shard and whose `metadata.total_size` is the bytes of all
/// tensors; all in one shard, `model.safetensors` alone. Creates `dir`; errors name the file.
pub fn write_sharded(
    dir: &Path,
    tensors: &Tensors,
    dtype: WeightDtype,
    max_shard_bytes: u64,
) -> Result<()> {
    let mut shards = vec![Tensors::new()];
    let mut size = 0u64;
    for (name, array) in tensors {
        let bytes = (array.len() * dtype.size()) as u64;
        if bytes > max_shard_bytes {
            eprintln!(
                "warning: tensor {name} ({bytes} bytes) is larger than the shard size \
                 {max_shard_bytes} bytes: it gets a shard of its own"
            );
        }
        if size > 0 && size + bytes > max_shard_bytes {
            shards.push(Tensors::new());
            size = 0;
        }
        let shard = shards.last_mut().expect("one shard at least");
        shard.insert(name.clone(), array.clone());
        size += bytes;
    }
    if shards.len() == 1 {
        return write_tensors(dir, tensors, dtype);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        write_file(&dir.join(&file), shard, dtype)?;
        for name in shard.keys() {
            weight_map.insert(name.clone(), file.clone().into());
        }
    }
    let total: usize = tensors.values().map(|a| a.len() * dtype.size()).sum();
    let index = serde_json::json!({
        "metadata": { "total_size": total },
        "weight_map": weight_map,
    });
    let path = dir.join(INDEX_FILE);
    let text = serde_json::to_string_pretty(&index).expect("JSON values serialize");
    std::fs::write(&path, text + "\n").map_err(io(&path))
}

/// Parses a shard size as `transformers`' `convert_file_size_to_int` does: bytes, or a number
/// with a unit matched without regard to case, `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`,
/// `MB`, `GB` (powers of 1000), or `B`: `5GB`, `60kb`, `2gib`. As there, a decimal unit written with a
/// lowercase final `b` (`5Gb`, `60kb`) means bits: the bytes are an eighth, rounded down.
/// Errors: a message for a text that is not a positive whole number with one of these units,
/// and a distinct one for a size past 2^64 bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let units: [(&str, u64); 7] = [
        ("KIB", 1 << 10),
        ("MIB", 1 << 20),
        ("GIB", 1 << 30),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("B", 1),
    ];
    let upper = text.to_ascii_uppercase();
    let unit = units.iter().find(|(unit, _)| upper.ends_with(unit));
    let (number, scale) = match unit {
        Some((unit, scale)) => (&text[..text.len() - unit.len()], *scale),
        None => (text, 1),
    };
    let bits = unit.is_some_and(|(unit, _)| unit.len() == 2) && text.ends_with('b');
    match number.trim().parse::<u64>() {
        Ok(n) if n > 0 => {
            let size = n
                .checked_mul(scale)
                .ok_or_else(|| format!("size `{text}` overflows: more than {} bytes", u64::MAX))?;
            let size = if bits { size / 8 } else { size };
            if size == 0 {
                return Err(format!("size `{text}` is less than one byte"));
            }
            Ok(size)
        }
        _ => Err(format!(
            "size `{text}`: expected a positive number of bytes, or one with KB, MB, GB, KiB, MiB or GiB"
        )),
    }
}

/// Writes `tensors` (f32) as the safetensors file `path` in `dtype`, with the
/// `{"format": "pt"}` metadata.
fn write_file(path: &Path, tensors: &Tensors, dtype: WeightDtype) -> Result<()> {
    let path = path.to_path_buf();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let out = match dtype {
        WeightDtype::F32 => crate::checkpoint::encode_f32(tensors, Some(metadata)),
        // `half`'s `bf16::from_f32`: round to nearest, ties to even.
        WeightDtype::Bf16 => crate::checkpoint::encode_as(
            tensors,
            Some(metadata),
            safetensors::Dtype::BF16,
            |v, out| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
        ),
    }
    .map_err(|(name, e)| HfError::Malformed {
        path: path.clone(),
        message: format!("tensor {name}: {e}"),
    })?;
    std::fs::write(&path, out).map_err(io(&path))
}
