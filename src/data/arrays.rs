//! Named arrays read from a file, for models whose inputs are not token
//! streams (classifiers, regressors): a `.safetensors` file, or a
//! directory of `<input>.npy` files, holding one array per model input
//! with the examples along the leading axis. The last tenth of the examples
//! is held out for evaluation.

use super::{DataError, HostArray, HostBatch, Source, Split};
use axle_compiler::DType;
use axle_modules::InputSpec;
use ndarray::{ArrayD, Axis};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Fraction of the examples held out for evaluation.
const EVAL_FRACTION: f64 = 0.1;

/// The arrays of a data file, checked against a model's inputs: every input
/// present, integer or real as the input is, each example shaped like one
/// row of the input, integers inside the input's valid range.
#[derive(Debug)]
pub struct ArrayFile {
    arrays: BTreeMap<String, HostArray>,
    train: u64,
    eval: u64,
}

impl ArrayFile {
    /// Reads `path` (`.safetensors`, or a directory of `.npy` files named
    /// after the inputs) for a model with inputs `inputs`. Integer arrays
    /// (any width) become i32, real arrays (f16, bf16, f32, f64) f32.
    pub fn open(path: &Path, inputs: &[InputSpec]) -> Result<Self, DataError> {
        let error = |message: String| DataError::Arrays {
            path: path.to_path_buf(),
            message,
        };
        let mut arrays = BTreeMap::new();
        for spec in inputs {
            let raw = if path.is_dir() {
                read_npy(&path.join(format!("{}.npy", spec.name)))?
            } else {
                read_safetensors(path, &spec.name)?
            };
            let array =
                convert(raw, spec.dtype).map_err(|m| error(format!("`{}`: {m}", spec.name)))?;
            if array.shape().get(1..) != spec.shape.get(1..) {
                return Err(error(format!(
                    "`{}` is {:?}: examples of shape {:?} expected (the model's input is {:?})",
                    spec.name,
                    array.shape(),
                    &spec.shape[1..],
                    spec.shape
                )));
            }
            if let Some(valid) = &spec.valid
                && let Some(v) = array.first_outside(valid)
            {
                return Err(error(format!(
                    "`{}` holds {v}, outside the valid range {}..{}",
                    spec.name, valid.start, valid.end
                )));
            }
            arrays.insert(spec.name.clone(), array);
        }
        let counts: Vec<usize> = arrays.values().map(|a| a.shape()[0]).collect();
        let n = counts.first().copied().unwrap_or(0);
        if counts.iter().any(|&c| c != n) {
            return Err(error(format!(
                "the arrays hold different numbers of examples: {:?}",
                arrays
                    .iter()
                    .map(|(k, a)| (k, a.shape()[0]))
                    .collect::<Vec<_>>()
            )));
        }
        let eval = ((n as f64) * EVAL_FRACTION).ceil() as u64;
        let train = n as u64 - eval.min(n as u64);
        if train == 0 || eval == 0 {
            return Err(error(format!(
                "{n} examples: at least 2 are needed (the last tenth is held out)"
            )));
        }
        Ok(ArrayFile {
            arrays,
            train,
            eval,
        })
    }
}

impl Source for ArrayFile {
    fn len(&self, split: Split) -> Option<u64> {
        Some(match split {
            Split::Train => self.train,
            Split::Eval => self.eval,
        })
    }

    fn example(&self, split: Split, index: u64) -> HostBatch {
        let row = match split {
            Split::Train => index % self.train,
            Split::Eval => self.train + index % self.eval,
        } as usize;
        self.arrays
            .iter()
            .map(|(name, array)| {
                let one = match array {
                    HostArray::I32(a) => HostArray::I32(a.index_axis(Axis(0), row).to_owned()),
                    HostArray::F32(a) => HostArray::F32(a.index_axis(Axis(0), row).to_owned()),
                };
                (name.clone(), one)
            })
            .collect()
    }
}

/// An array as read, before conversion to the input's dtype.
enum Raw {
    Int(ArrayD<i64>),
    Real(ArrayD<f64>),
}

fn convert(raw: Raw, dtype: DType) -> Result<HostArray, String> {
    match (raw, dtype.is_int()) {
        (Raw::Int(a), true) => {
            if let Some(v) = a.iter().find(|&&v| i32::try_from(v).is_err()) {
                return Err(format!("{v} does not fit in i32"));
            }
            Ok(HostArray::I32(a.mapv(|v| v as i32)))
        }
        (Raw::Real(a), false) => Ok(HostArray::F32(a.mapv(|v| v as f32))),
        (Raw::Int(_), false) => Err(format!("integers given, the model takes {dtype:?}")),
        (Raw::Real(_), true) => Err(format!("real numbers given, the model takes {dtype:?}")),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_safetensors(path: &Path, name: &str) -> Result<Raw, DataError> {
    let error = |message: String| DataError::Arrays {
        path: path.to_path_buf(),
        message,
    };
    let bytes = read_file(path)?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| error(e.to_string()))?;
    let view = file.tensor(name).map_err(|_| {
        error(format!(
            "no tensor `{name}` (the model's input); the file has {}",
            file.names().join(", ")
        ))
    })?;
    let shape = view.shape().to_vec();
    let data = view.data();
    use safetensors::Dtype as D;
    macro_rules! decode {
        ($t:ty, $wrap:ident, $cast:ty) => {{
            let width = std::mem::size_of::<$t>();
            let values: Vec<$cast> = data
                .chunks_exact(width)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk width")) as $cast)
                .collect();
            Raw::$wrap(ArrayD::from_shape_vec(shape, values).map_err(|e| error(e.to_string()))?)
        }};
    }
    Ok(match view.dtype() {
        D::I8 => decode!(i8, Int, i64),
        D::I16 => decode!(i16, Int, i64),
        D::I32 => decode!(i32, Int, i64),
        D::I64 => decode!(i64, Int, i64),
        D::U8 => decode!(u8, Int, i64),
        D::U16 => decode!(u16, Int, i64),
        D::U32 => decode!(u32, Int, i64),
        D::F32 => decode!(f32, Real, f64),
        D::F64 => decode!(f64, Real, f64),
        D::F16 => {
            let values = data
                .chunks_exact(2)
                .map(|c| f64::from(half::f16::from_le_bytes([c[0], c[1]])))
                .collect();
            Raw::Real(ArrayD::from_shape_vec(shape, values).map_err(|e| error(e.to_string()))?)
        }
        D::BF16 => {
            let values = data
                .chunks_exact(2)
                .map(|c| f64::from(half::bf16::from_le_bytes([c[0], c[1]])))
                .collect();
            Raw::Real(ArrayD::from_shape_vec(shape, values).map_err(|e| error(e.to_string()))?)
        }
        other => return Err(error(format!("`{name}` has unsupported dtype {other:?}"))),
    })
}

fn read_npy(path: &Path) -> Result<Raw, DataError> {
    use ndarray_npy::ReadNpyExt;
    let bytes = read_file(path)?;
    macro_rules! try_dtype {
        ($wrap:ident, $cast:ty: $($t:ty),*) => {$(
            if let Ok(a) = ArrayD::<$t>::read_npy(&bytes[..]) {
                return Ok(Raw::$wrap(a.mapv(|v| v as $cast)));
            }
        )*};
    }
    try_dtype!(Int, i64: i64, i32, i16, i8, u8, u16, u32);
    try_dtype!(Real, f64: f32, f64);
    Err(DataError::Npy {
        path: PathBuf::from(path),
        message: "not an integer (i8..i64, u8..u32) or real (f32, f64) array".into(),
    })
}
