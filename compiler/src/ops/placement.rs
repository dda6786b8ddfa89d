//! Memory placement (JAX's `device_put` to a memory kind inside `jit`): the
//! same value, asked to live in another memory of the device, such as
//! pinned host memory. This is how host offloading is expressed to XLA.
//!
//! Lowered as JAX lowers it (`jax/_src/interpreters/mlir.py`,
//! `wrap_with_memory_kind`): a side-effecting
//! `stablehlo.custom_call @annotate_device_placement` carrying the memory
//! kind in the frontend attribute `_xla_buffer_placement`. XLA turns the
//! annotations into `MoveToHost`/`MoveToDevice` and its host offloader
//! places the buffers between them in host memory (memory space `S(5)`).
//! Targets without host memory ignore them: XLA CPU compiles the custom
//! call away and computes the same numbers; the CUDA plugin's deviceless
//! compile (checked for H100) drops it too.

use crate::emit::Emitter;
use crate::ir::{MemoryKind, OpKind};
use crate::shape::TensorType;
use crate::tensor::Tensor;
use std::panic::Location;

impl Tensor {
    /// The same value, placed in memory `kind` (JAX's
    /// `jax.device_put(x, TransferToMemoryKind(kind))` under `jit`). Any
    /// shape and dtype. Its gradient is the incoming cotangent, where it
    /// is (an identity VJP).
    #[track_caller]
    pub fn to_memory_kind(&self, kind: MemoryKind) -> Tensor {
        self.b
            .record1("memory_placement", Location::caller(), &[self], |t| {
                Ok((OpKind::MemoryPlacement { kind }, vec![t[0].clone()]))
            })
    }
}

/// Lowers a placement of `arg` (of type `ty`) to the
/// `annotate_device_placement` custom call and returns its result.
pub(crate) fn lower_memory_placement(
    e: &mut Emitter,
    ind: usize,
    kind: MemoryKind,
    arg: &str,
    ty: &TensorType,
) -> String {
    let r = e.fresh();
    let ty = ty.mlir();
    e.line(
        ind,
        &format!(
            "{r} = stablehlo.custom_call @annotate_device_placement({arg}) {{has_side_effect = true, \
             mhlo.frontend_attributes = {{_xla_buffer_placement = \"{}\"}}}} : ({ty}) -> {ty}",
            kind.as_str()
        ),
    );
    r
}
