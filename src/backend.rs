//! Embedding API: use axle as a compilation backend from another Rust
//! program. Trace a [`Function`] with `axle_compiler`, then [`compile`] it
//! on an `axle_runtime` [`Client`] of the plugin you chose and [`Program::run`]
//! it on ndarray inputs. This is the only place that knows both the
//! compiler (which knows nothing of PJRT) and the runtime.
//!
//! ```no_run
//! use axle::backend::{compile, HostTensor};
//! use axle::compiler::{DType, FunctionBuilder};
//! use axle::runtime::Client;
//! use ndarray::ArrayD;
//!
//! let b = FunctionBuilder::new("affine");
//! let x = b.param("x", DType::F32, &[2, 3]);
//! let w = b.param("w", DType::F32, &[3, 2]);
//! let f = b.build(&[("y", &x.matmul(&w).tanh())])?;
//! let program = compile(&Client::cpu(1)?, &f)?;
//! let out = program.run(&[
//!     ArrayD::<f32>::ones(vec![2, 3]).into(),
//!     ArrayD::<f32>::ones(vec![3, 2]).into(),
//! ])?;
//! let y: ArrayD<f32> = out[0].clone().try_into()?;
//! # Ok::<(), axle::backend::BackendError>(())
//! ```

use axle_compiler::{DType, Function, TensorType, TraceError};
use axle_runtime::{Buffer, Client, CompileOptions, Executable};
use ndarray::ArrayD;
use thiserror::Error;

/// What can go wrong between a traced function and its outputs.
#[derive(Debug, Error)]
pub enum BackendError {
    /// Tracing failed (shape, dtype, axis error in model code).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The plugin refused to compile or run.
    #[error(transparent)]
    Runtime(#[from] axle_runtime::Error),
    /// Wrong number of inputs.
    #[error("function `{function}` takes {expected} inputs ({names}), got {got}")]
    ArgCount {
        /// Function name.
        function: String,
        /// Parameter count.
        expected: usize,
        /// Comma-separated parameter names.
        names: String,
        /// Inputs given.
        got: usize,
    },
    /// An input of the wrong dtype or shape.
    #[error("function `{function}` parameter `{param}` is {expected}, got {got}")]
    ArgType {
        /// Function name.
        function: String,
        /// Parameter name.
        param: String,
        /// Declared type.
        expected: TensorType,
        /// Given type.
        got: TensorType,
    },
    /// A host array of a dtype this glue does not move (e.g. `u64`, `bf16`).
    #[error("{what} has dtype {dtype}, which host transfer does not support")]
    UnsupportedDType {
        /// The input or output.
        what: String,
        /// Its dtype.
        dtype: String,
    },
}

/// A host array of one of the supported element types.
#[derive(Clone, Debug, PartialEq)]
pub enum HostTensor {
    /// f32 data.
    F32(ArrayD<f32>),
    /// f64 data.
    F64(ArrayD<f64>),
    /// i32 data.
    I32(ArrayD<i32>),
    /// i64 data.
    I64(ArrayD<i64>),
    /// u32 data.
    U32(ArrayD<u32>),
    /// u8 data.
    U8(ArrayD<u8>),
    /// Boolean data.
    Pred(ArrayD<bool>),
}

macro_rules! host_variants {
    ($($t:ty => $v:ident),*) => {
        $(
            impl From<ArrayD<$t>> for HostTensor {
                fn from(a: ArrayD<$t>) -> Self {
                    HostTensor::$v(a)
                }
            }
            impl TryFrom<HostTensor> for ArrayD<$t> {
                type Error = BackendError;
                fn try_from(h: HostTensor) -> Result<Self, BackendError> {
                    match h {
                        HostTensor::$v(a) => Ok(a),
                        other => Err(BackendError::UnsupportedDType {
                            what: format!("conversion to ArrayD<{}>", stringify!($t)),
                            dtype: other.dtype().to_string(),
                        }),
                    }
                }
            }
        )*
        impl HostTensor {
            /// The element type.
            pub fn dtype(&self) -> DType {
                match self { $(HostTensor::$v(_) => DType::$v,)* }
            }
            /// The dims.
            pub fn dims(&self) -> &[usize] {
                match self { $(HostTensor::$v(a) => a.shape(),)* }
            }
            fn to_buffer(&self, client: &Client) -> Result<Buffer, axle_runtime::Error> {
                match self { $(HostTensor::$v(a) => client.buffer_from_array(a, 0),)* }
            }
            fn from_buffer(b: &Buffer, dtype: DType, what: &str) -> Result<HostTensor, BackendError> {
                Ok(match dtype {
                    $(DType::$v => HostTensor::$v(b.to_array()?),)*
                    other => {
                        return Err(BackendError::UnsupportedDType {
                            what: what.to_string(),
                            dtype: other.to_string(),
                        })
                    }
                })
            }
        }
    };
}

host_variants!(f32 => F32, f64 => F64, i32 => I32, i64 => I64, u32 => U32, u8 => U8, bool => Pred);

/// A function compiled for one device of a client.
pub struct Program {
    exe: Executable,
    client: Client,
    name: String,
    param_names: Vec<String>,
    param_types: Vec<TensorType>,
    result_names: Vec<String>,
    result_types: Vec<TensorType>,
}

/// Lowers `f` to StableHLO and compiles it on `client` (single device).
pub fn compile(client: &Client, f: &Function) -> Result<Program, BackendError> {
    let exe = client.compile(&f.to_stablehlo(), &CompileOptions::single_device())?;
    Ok(Program {
        exe,
        client: client.clone(),
        name: f.name().to_string(),
        param_names: f.param_names().to_vec(),
        param_types: f.param_types(),
        result_names: f.result_names().to_vec(),
        result_types: f.result_types(),
    })
}

impl Program {
    /// Runs on host inputs (in parameter order, types checked against the
    /// function's parameters) and returns the results in result order.
    pub fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, BackendError> {
        if inputs.len() != self.param_types.len() {
            return Err(BackendError::ArgCount {
                function: self.name.clone(),
                expected: self.param_types.len(),
                names: self.param_names.join(", "),
                got: inputs.len(),
            });
        }
        let mut buffers = Vec::with_capacity(inputs.len());
        for ((x, ty), name) in inputs.iter().zip(&self.param_types).zip(&self.param_names) {
            let got = TensorType::new(x.dtype(), x.dims());
            if &got != ty {
                return Err(BackendError::ArgType {
                    function: self.name.clone(),
                    param: name.clone(),
                    expected: ty.clone(),
                    got,
                });
            }
            buffers.push(x.to_buffer(&self.client)?);
        }
        let refs: Vec<&Buffer> = buffers.iter().collect();
        let outs = self.exe.execute_one(&refs)?;
        outs.iter()
            .zip(&self.result_types)
            .zip(&self.result_names)
            .map(|((b, ty), name)| {
                HostTensor::from_buffer(b, ty.dtype, &format!("result `{name}`"))
            })
            .collect()
    }

    /// Result names, in output order.
    pub fn result_names(&self) -> &[String] {
        &self.result_names
    }
}
