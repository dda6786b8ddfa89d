//! `Tensor`: a handle to a traced value, with operator overloading.

use crate::builder::FunctionBuilder;
use crate::dtype::DType;
use crate::ir::{BinaryOp, ValueId};
use crate::shape::TensorType;
use std::fmt;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// A value of a function under construction. Cloning is cheap; ops on it
/// record into its [`FunctionBuilder`].
#[derive(Clone)]
pub struct Tensor {
    pub(crate) b: FunctionBuilder,
    pub(crate) id: ValueId,
    pub(crate) ty: TensorType,
}

const PLACEHOLDER: ValueId = ValueId(u32::MAX);

impl Tensor {
    pub(crate) fn new(b: FunctionBuilder, id: ValueId, ty: TensorType) -> Self {
        Tensor { b, id, ty }
    }

    /// A stand-in returned after an error; it never reaches the graph.
    pub(crate) fn placeholder(b: FunctionBuilder, ty: TensorType) -> Self {
        Tensor {
            b,
            id: PLACEHOLDER,
            ty,
        }
    }

    pub(crate) fn is_placeholder(&self) -> bool {
        self.id == PLACEHOLDER
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.ty.dtype
    }

    /// Dimension sizes.
    pub fn dims(&self) -> &[usize] {
        &self.ty.dims
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.ty.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.ty.numel()
    }

    /// The full static type.
    pub fn ty(&self) -> &TensorType {
        &self.ty
    }

    /// The builder this tensor records into.
    pub fn builder(&self) -> &FunctionBuilder {
        &self.b
    }

    /// The IR value id (meaningful only inside its builder's graph).
    pub fn id(&self) -> ValueId {
        self.id
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor(%{} : {})", self.id.0, self.ty)
    }
}

macro_rules! binop {
    ($trait:ident, $method:ident, $op:expr) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($op, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($op, &rhs)
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                self.binary($op, &self.splat_like(rhs))
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                self.binary($op, &self.splat_like(rhs))
            }
        }
        impl $trait<&Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                rhs.splat_like(self).binary($op, rhs)
            }
        }
        impl $trait<Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                rhs.splat_like(self).binary($op, &rhs)
            }
        }
    };
}

binop!(Add, add, BinaryOp::Add);
binop!(Sub, sub, BinaryOp::Sub);
binop!(Mul, mul, BinaryOp::Mul);
binop!(Div, div, BinaryOp::Div);

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        self.unary(crate::ir::UnaryOp::Neg)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        self.unary(crate::ir::UnaryOp::Neg)
    }
}
