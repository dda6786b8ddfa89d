//! Just enough of XLA's `HloModuleProto` (`xla/service/hlo.proto`) to list the
//! computations and instructions of an optimized program: opcodes and
//! per-device shapes, so tests can find the collectives XLA inserted.

use prost::Message;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// An optimized HLO module as the compiler left it (after SPMD partitioning).
#[derive(Clone, PartialEq, Message)]
pub struct HloModule {
    /// Module name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Name of the entry computation.
    #[prost(string, tag = "2")]
    pub entry_computation_name: String,
    /// Every computation, callees before callers.
    #[prost(message, repeated, tag = "3")]
    pub computations: Vec<HloComputation>,
    /// Parameter and result shapes of the entry computation (per device).
    #[prost(message, optional, tag = "4")]
    pub host_program_shape: Option<ProgramShape>,
}

/// One computation of a module.
#[derive(Clone, PartialEq, Message)]
pub struct HloComputation {
    /// Computation name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Instructions in dependency order.
    #[prost(message, repeated, tag = "2")]
    pub instructions: Vec<HloInstruction>,
}

/// One instruction.
#[derive(Clone, PartialEq, Message)]
pub struct HloInstruction {
    /// Instruction name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Opcode (`all-reduce`, `dot`, `fusion`, ...).
    #[prost(string, tag = "2")]
    pub opcode: String,
    /// Result shape (per device after partitioning).
    #[prost(message, optional, tag = "3")]
    pub shape: Option<Shape>,
}

/// `xla.ShapeProto`: an array shape or a tuple of shapes.
#[derive(Clone, PartialEq, Message)]
pub struct Shape {
    /// XLA `PrimitiveType` number (see [`Shape::dtype`]).
    #[prost(int32, tag = "2")]
    pub element_type: i32,
    /// Dimension sizes.
    #[prost(int64, repeated, tag = "3")]
    pub dimensions: Vec<i64>,
    /// Element shapes of a tuple.
    #[prost(message, repeated, tag = "4")]
    pub tuple_shapes: Vec<Shape>,
    /// Layout of an array shape (absent on tuples and unlaid-out shapes).
    #[prost(message, optional, tag = "5")]
    pub layout: Option<Layout>,
}

/// The part of `xla.LayoutProto` that says where a buffer lives.
#[derive(Clone, PartialEq, Message)]
pub struct Layout {
    /// Memory space of the buffer: 0 is device memory,
    /// [`HOST_MEMORY_SPACE`] host memory (printed `S(5)` in HLO text).
    #[prost(int64, tag = "8")]
    pub memory_space: i64,
}

/// XLA's `Layout::kHostMemorySpace` (`xla/layout.h`): the memory space of
/// buffers placed in host memory by host offloading (TPU and GPU).
pub const HOST_MEMORY_SPACE: i64 = 5;

/// `xla.ProgramShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct ProgramShape {
    /// Parameter shapes.
    #[prost(message, repeated, tag = "1")]
    pub parameters: Vec<Shape>,
    /// Result shape.
    #[prost(message, optional, tag = "2")]
    pub result: Option<Shape>,
}

/// `xla.HloModuleProtoWithConfig`, the `hlo_with_config` program format.
#[derive(Clone, PartialEq, Message)]
struct HloModuleWithConfig {
    #[prost(message, optional, tag = "1")]
    hlo_module: Option<HloModule>,
}

impl HloModule {
    /// Decodes the `hlo_with_config` bytes `PJRT_Executable_OptimizedProgram` returns.
    pub fn decode_with_config(bytes: &[u8]) -> Result<HloModule> {
        HloModuleWithConfig::decode(bytes)
            .map_err(|e| Error::HloDecode(e.to_string()))?
            .hlo_module
            .ok_or_else(|| Error::HloDecode("no hlo_module in the program".into()))
    }

    /// Every instruction of every computation.
    pub fn instructions(&self) -> impl Iterator<Item = &HloInstruction> {
        self.computations.iter().flat_map(|c| c.instructions.iter())
    }

    /// Instructions with the given opcode (`all-reduce`, `all-gather`, ...).
    pub fn find_opcode<'a>(&'a self, opcode: &'a str) -> impl Iterator<Item = &'a HloInstruction> {
        self.instructions().filter(move |i| i.opcode == opcode)
    }

    /// Instructions whose result (or an element of a tuple result) lies in
    /// host memory ([`HOST_MEMORY_SPACE`]): the buffers and copies of
    /// values XLA's host offloader moved off the device.
    pub fn host_memory_instructions(&self) -> impl Iterator<Item = &HloInstruction> {
        self.instructions()
            .filter(|i| i.shape.as_ref().is_some_and(Shape::touches_host_memory))
    }

    /// The entry computation, if present.
    pub fn entry(&self) -> Option<&HloComputation> {
        self.computations
            .iter()
            .find(|c| c.name == self.entry_computation_name)
    }

    /// Per-device parameter shapes of the entry computation, in parameter order.
    pub fn parameter_shapes(&self) -> Vec<Shape> {
        self.host_program_shape
            .as_ref()
            .map(|p| p.parameters.clone())
            .unwrap_or_default()
    }
}

impl Shape {
    /// The element type, when it is one the runtime handles.
    pub fn dtype(&self) -> Option<DType> {
        DType::from_xla_primitive(self.element_type)
    }

    /// The layout's memory space (0, device memory, when there is no layout).
    pub fn memory_space(&self) -> i64 {
        self.layout.as_ref().map_or(0, |l| l.memory_space)
    }

    /// True when this shape, or any element of a tuple, lies in
    /// [`HOST_MEMORY_SPACE`].
    pub fn touches_host_memory(&self) -> bool {
        self.memory_space() == HOST_MEMORY_SPACE
            || self.tuple_shapes.iter().any(Shape::touches_host_memory)
    }

    /// Dimension sizes as `usize`.
    pub fn dims(&self) -> Vec<usize> {
        self.dimensions.iter().map(|&d| d as usize).collect()
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.tuple_shapes.is_empty() {
            let parts: Vec<String> = self.tuple_shapes.iter().map(|s| s.to_string()).collect();
            return write!(f, "({})", parts.join(", "));
        }
        match self.dtype() {
            Some(d) => write!(f, "{d}{:?}", self.dimensions),
            None => write!(f, "type{}{:?}", self.element_type, self.dimensions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `ShapeProto` written by hand in protobuf wire format (field 2
    /// element type F32 = 11, field 3 dimension 4, field 5 a layout whose
    /// field 8 is memory space 5) decodes as lying in host memory; the
    /// same shape without a layout, and a tuple holding only it, do not.
    #[test]
    fn memory_space_five_is_host_memory() {
        let host = [0x10, 11, 0x18, 4, 0x2a, 2, 0x40, 5];
        let shape = Shape::decode(&host[..]).unwrap();
        assert_eq!((shape.element_type, shape.dims()), (11, vec![4]));
        assert_eq!(shape.memory_space(), HOST_MEMORY_SPACE);
        assert!(shape.touches_host_memory());
        let device = Shape::decode(&host[..4]).unwrap();
        assert_eq!(device.memory_space(), 0);
        let tuple = |element: &[u8]| {
            let mut bytes = vec![0x22, element.len() as u8];
            bytes.extend_from_slice(element);
            Shape::decode(&bytes[..]).unwrap()
        };
        assert!(tuple(&host).touches_host_memory());
        assert!(!tuple(&host[..4]).touches_host_memory());
    }
}
