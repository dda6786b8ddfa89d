//! Host-side batches: named arrays of the element types models take as
//! inputs (`i32` ids and labels, `f32` real values), checked against the
//! model's [`InputSpec`]s before they are placed on the devices.

use axle_compiler::DType;
use axle_modules::InputSpec;
use ndarray::{ArrayD, Axis};
use std::collections::BTreeMap;

/// One host array of a batch or an example.
#[derive(Clone, Debug, PartialEq)]
pub enum HostArray {
    /// Integer ids, labels, positions.
    I32(ArrayD<i32>),
    /// Real values (images, features, regression targets).
    F32(ArrayD<f32>),
}

/// Named host arrays: one example (no batch dimension) or one batch
/// (leading batch dimension), by input name.
pub type HostBatch = BTreeMap<String, HostArray>;

impl HostArray {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostArray::I32(_) => DType::I32,
            HostArray::F32(_) => DType::F32,
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        match self {
            HostArray::I32(a) => a.shape(),
            HostArray::F32(a) => a.shape(),
        }
    }

    /// The first integer outside `valid`, if any (never for f32 arrays).
    pub fn first_outside(&self, valid: &std::ops::Range<i64>) -> Option<i64> {
        match self {
            HostArray::I32(a) => a.iter().map(|&v| i64::from(v)).find(|v| !valid.contains(v)),
            HostArray::F32(_) => None,
        }
    }

    /// `examples` stacked along a new leading axis; `None` when they are
    /// empty or do not share a dtype and shape.
    pub fn stack(examples: &[&HostArray]) -> Option<HostArray> {
        fn views<'a, T: 'a>(
            arrays: impl Iterator<Item = Option<&'a ArrayD<T>>>,
        ) -> Option<Vec<ndarray::ArrayViewD<'a, T>>> {
            arrays.map(|a| a.map(ArrayD::view)).collect()
        }
        match examples.first()? {
            HostArray::I32(_) => {
                let v = views(examples.iter().map(|e| match e {
                    HostArray::I32(a) => Some(a),
                    HostArray::F32(_) => None,
                }))?;
                ndarray::stack(Axis(0), &v).ok().map(HostArray::I32)
            }
            HostArray::F32(_) => {
                let v = views(examples.iter().map(|e| match e {
                    HostArray::F32(a) => Some(a),
                    HostArray::I32(_) => None,
                }))?;
                ndarray::stack(Axis(0), &v).ok().map(HostArray::F32)
            }
        }
    }
}

/// What is wrong with a batch for a model's inputs, naming the input.
pub fn check_batch(batch: &HostBatch, inputs: &[InputSpec]) -> Result<(), String> {
    for spec in inputs {
        let array = batch.get(&spec.name).ok_or_else(|| {
            format!(
                "input `{}` is missing; the batch has {}",
                spec.name,
                batch.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        if array.dtype() != spec.dtype || array.shape() != spec.shape.as_slice() {
            return Err(format!(
                "input `{}` is {:?}{:?}, the model expects {:?}{:?}",
                spec.name,
                array.dtype(),
                array.shape(),
                spec.dtype,
                spec.shape
            ));
        }
        if let Some(valid) = &spec.valid
            && let Some(v) = array.first_outside(valid)
        {
            return Err(format!(
                "input `{}` holds {v}, outside the valid range {}..{}",
                spec.name, valid.start, valid.end
            ));
        }
    }
    Ok(())
}
