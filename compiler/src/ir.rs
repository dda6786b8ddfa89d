//! The IR: a typed SSA graph with values and ops stored in arenas and
//! addressed by typed ids (after Cranelift's `ir`).
//!
//! A [`Graph`] is a function body: parameters, ops in program order, and
//! results. Loop bodies (scan, while) are graphs of their own, held by the op.

use crate::shape::TensorType;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::rc::Rc;

/// Id of a value (parameter or op result) in a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Id of an op in a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u32);

impl ValueId {
    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl OpId {
    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The n-th parameter of the graph.
    Param(usize),
    /// The n-th result of an op.
    Op(OpId, usize),
}

/// A value record: its type and its definition.
#[derive(Clone, Debug)]
pub struct Value {
    /// Static type.
    pub ty: TensorType,
    /// Defining parameter or op.
    pub def: ValueDef,
}

/// Unary elementwise primitives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `sign(x)` in {-1, 0, 1}
    Sign,
    /// `e^x`
    Exp,
    /// natural log
    Log,
    /// `log(1 + x)`
    Log1p,
    /// hyperbolic tangent
    Tanh,
    /// `1 / (1 + e^-x)`
    Logistic,
    /// square root
    Sqrt,
    /// `1 / sqrt(x)`
    Rsqrt,
    /// Gauss error function (lowered to `chlo.erf`)
    Erf,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// round toward -inf
    Floor,
    /// logical / bitwise not
    Not,
    /// `e^x - 1`, accurate near 0
    Expm1,
    /// round toward +inf
    Ceil,
    /// round to the nearest integer, ties to even
    RoundNearestEven,
    /// round to the nearest integer, ties away from zero
    RoundNearestAfz,
    /// `isfinite(x)`: pred, false for inf and NaN
    IsFinite,
    /// number of set bits (population count)
    PopCnt,
}

impl UnaryOp {
    /// The op's name in the IR printer, errors and the op table.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Logistic => "logistic",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Erf => "erf",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Floor => "floor",
            UnaryOp::Not => "not",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Ceil => "ceil",
            UnaryOp::RoundNearestEven => "round_nearest_even",
            UnaryOp::RoundNearestAfz => "round_nearest_afz",
            UnaryOp::IsFinite => "is_finite",
            UnaryOp::PopCnt => "popcnt",
        }
    }
}

/// Binary elementwise primitives (operands of identical type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b`
    Pow,
    /// elementwise maximum
    Max,
    /// elementwise minimum
    Min,
    /// logical / bitwise and
    And,
    /// logical / bitwise or
    Or,
    /// logical shift right (zeros shifted in)
    ShiftRightLogical,
    /// logical / bitwise exclusive or
    Xor,
    /// remainder of truncated division, with the sign of `a` (C's `fmod`, `%`)
    Rem,
    /// `atan2(a, b)`: the angle of the point `(b, a)`, in `[-pi, pi]`
    Atan2,
    /// shift left (zeros shifted in; a shift of the bit width or more gives 0)
    ShiftLeft,
    /// arithmetic shift right (sign bit shifted in)
    ShiftRightArithmetic,
}

impl BinaryOp {
    /// The op's name in the IR printer, errors and the op table.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::ShiftRightLogical => "shift_right_logical",
            BinaryOp::Xor => "xor",
            BinaryOp::Rem => "rem",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::ShiftLeft => "shift_left",
            BinaryOp::ShiftRightArithmetic => "shift_right_arithmetic",
        }
    }
}

/// `stablehlo.dot_general`'s `precision_config` value for one operand: how
/// many passes of a lower-precision unit (e.g. bf16 on TPU) a float
/// product may use. CPU computes in the operand type whatever the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// The backend's fastest (one bf16 pass on TPU).
    Default,
    /// Three bf16 passes on TPU (about bf16x3).
    High,
    /// Full operand precision (f32 on TPU: six bf16 passes).
    Highest,
}

impl Precision {
    /// The StableHLO spelling: `DEFAULT`, `HIGH`, `HIGHEST`.
    pub fn mlir(self) -> &'static str {
        match self {
            Precision::Default => "DEFAULT",
            Precision::High => "HIGH",
            Precision::Highest => "HIGHEST",
        }
    }
}

/// Comparison directions of `stablehlo.compare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpDir {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A memory kind of a device, as JAX names them (`jax.sharding`'s
/// `memory_kind`) and XLA reads them from `_xla_buffer_placement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// The device's own memory (HBM).
    Device,
    /// Page-locked host memory the device reads and writes by DMA
    /// (`pinned_host`; TPU and GPU have it).
    PinnedHost,
}

impl MemoryKind {
    /// JAX's and XLA's name of the memory kind (`device`, `pinned_host`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Device => "device",
            MemoryKind::PinnedHost => "pinned_host",
        }
    }
}

/// Reduction monoids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// sum, init 0
    Sum,
    /// max, init -inf (or the type's minimum)
    Max,
    /// min, init +inf (or the type's maximum)
    Min,
}

/// `stablehlo.dot_general` dimension numbers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DotDims {
    /// Batch dims of the left operand.
    pub lhs_batch: Vec<usize>,
    /// Batch dims of the right operand (paired with `lhs_batch`).
    pub rhs_batch: Vec<usize>,
    /// Contracted dims of the left operand.
    pub lhs_contract: Vec<usize>,
    /// Contracted dims of the right operand (paired with `lhs_contract`).
    pub rhs_contract: Vec<usize>,
}

/// The windows of `reduce_window` and `select_and_scatter`: size, stride
/// and (low, high) padding per dim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Window size per dim.
    pub dims: Vec<usize>,
    /// Step between windows per dim.
    pub strides: Vec<usize>,
    /// (low, high) padding per dim.
    pub padding: Vec<(i64, i64)>,
}

/// Convolution dimension numbers (JAX's `ConvDimensionNumbers`): the
/// positions of each operand's dims by role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvDims {
    /// Input: batch dim, feature dim, then the spatial dims.
    pub lhs: Vec<usize>,
    /// Kernel: output feature dim, input feature dim, then the spatial dims.
    pub rhs: Vec<usize>,
    /// Output: batch dim, feature dim, then the spatial dims.
    pub out: Vec<usize>,
}

/// The attributes of `stablehlo.convolution` (`lax.conv_general_dilated`);
/// per-spatial-dim lists are in the order of `dims`' spatial dims.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvConfig {
    /// Step of the window over the (dilated, padded) input.
    pub window_strides: Vec<usize>,
    /// (low, high) zero padding of the dilated input; negative crops.
    pub padding: Vec<(i64, i64)>,
    /// Input dilation: `k - 1` zeros between input elements (a transposed
    /// convolution when `k > 1`).
    pub lhs_dilation: Vec<usize>,
    /// Kernel dilation (atrous convolution).
    pub rhs_dilation: Vec<usize>,
    /// Dimension numbers.
    pub dims: ConvDims,
    /// Input features split into this many groups, each convolved with its
    /// share of the output features (depthwise: the input feature count).
    pub feature_group_count: usize,
    /// Batch split into groups, each giving its share of the output
    /// features (used by the kernel gradient of grouped convolutions).
    pub batch_group_count: usize,
}

/// `stablehlo.gather` dimension numbers. `Default` is all empty (index
/// vector dim 0), for filling the batching dims with `..Default::default()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GatherDims {
    /// Output dims that hold the slice (offset) dims.
    pub offset_dims: Vec<usize>,
    /// Operand dims whose slice size is 1 and that are dropped.
    pub collapsed_slice_dims: Vec<usize>,
    /// Which operand dim each index component addresses.
    pub start_index_map: Vec<usize>,
    /// The indices dim that holds index vectors.
    pub index_vector_dim: usize,
    /// Slice size per operand dim.
    pub slice_sizes: Vec<usize>,
    /// Operand dims indexed by the batch position itself (slice size 1,
    /// dropped from the result), each paired with an indices dim of
    /// `start_indices_batching_dims`: a per-example gather without iotas.
    pub operand_batching_dims: Vec<usize>,
    /// Indices dims paired with `operand_batching_dims` (equal sizes).
    pub start_indices_batching_dims: Vec<usize>,
}

/// `stablehlo.scatter` dimension numbers; the update computation is always
/// addition. `Default` is all empty (index vector dim 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScatterDims {
    /// Update dims that hold the window.
    pub update_window_dims: Vec<usize>,
    /// Operand dims of size-1 windows that the updates omit.
    pub inserted_window_dims: Vec<usize>,
    /// Which operand dim each index component addresses.
    pub scatter_dims_to_operand_dims: Vec<usize>,
    /// The indices dim that holds index vectors.
    pub index_vector_dim: usize,
    /// Operand dims addressed by the batch position itself (omitted from
    /// the updates' windows), paired with `scatter_indices_batching_dims`.
    pub input_batching_dims: Vec<usize>,
    /// Indices dims paired with `input_batching_dims` (equal sizes).
    pub scatter_indices_batching_dims: Vec<usize>,
}

/// A shared sub-graph (loop body or condition). Compared and hashed by
/// identity, so ops holding the same traced body are equal.
#[derive(Clone, Debug)]
pub struct Region(pub Rc<Graph>);

impl Region {
    /// Wraps a finished graph.
    pub fn new(g: Graph) -> Self {
        Region(Rc::new(g))
    }
}

impl Deref for Region {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.0
    }
}

impl PartialEq for Region {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Region {}

impl Hash for Region {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Rc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// A loop body traced once: `num_carry` carried values, `num_xs` per-step
/// slices of the stacked inputs, then captured outer values as parameters;
/// results are the new carries followed by the per-step outputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScanBody {
    /// The body graph.
    pub graph: Region,
    /// Number of carried values.
    pub num_carry: usize,
    /// Number of stacked inputs.
    pub num_xs: usize,
}

/// The kind of an op, with its attributes. One primitive per variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A constant; `bytes` holds one element when `splat`, else all, little-endian.
    Constant {
        /// Raw element bytes.
        bytes: Vec<u8>,
        /// True when one element fills the whole tensor.
        splat: bool,
    },
    /// `stablehlo.iota` along a dim.
    Iota {
        /// The counting dim.
        dim: usize,
    },
    /// Unary elementwise.
    Unary(UnaryOp),
    /// Binary elementwise on operands of identical type.
    Binary(BinaryOp),
    /// Elementwise comparison giving `pred`.
    Compare(CmpDir),
    /// `select(pred, on_true, on_false)`.
    Select,
    /// `clamp(min, x, max)` with all operands of the same shape.
    Clamp,
    /// Element type conversion.
    Convert,
    /// The same bits read as another element type of the same width.
    BitcastConvert,
    /// Rounds floats to a narrower format (`exponent_bits`,
    /// `mantissa_bits`) and back, keeping the element type.
    ReducePrecision {
        /// Exponent bits of the emulated format (bf16: 8, f16: 5).
        exponent_bits: u32,
        /// Mantissa bits of the emulated format (bf16: 7, f16: 10).
        mantissa_bits: u32,
    },
    /// `broadcast_in_dim`: operand dim i goes to result dim `dims[i]`.
    BroadcastInDim {
        /// Result dim of each operand dim.
        dims: Vec<usize>,
    },
    /// Same elements, new dims.
    Reshape,
    /// Dim permutation: result dim i is operand dim `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Reverses the element order along `dims`.
    Reverse {
        /// The reversed dims.
        dims: Vec<usize>,
    },
    /// Static strided slice.
    Slice {
        /// Start per dim.
        start: Vec<usize>,
        /// Exclusive end per dim.
        limit: Vec<usize>,
        /// Stride per dim.
        stride: Vec<usize>,
    },
    /// Slice at runtime start indices (scalar integer operands after the first).
    DynamicSlice {
        /// Slice size per dim.
        sizes: Vec<usize>,
    },
    /// Writes operand 1 into operand 0 at runtime start indices (operands 2..).
    DynamicUpdateSlice,
    /// Joins operands along a dim.
    Concatenate {
        /// The joined dim.
        dim: usize,
    },
    /// Pads operand 0 with the scalar operand 1; negative edge padding
    /// removes elements.
    Pad {
        /// Padding before each dim (negative: elements removed).
        low: Vec<i64>,
        /// Padding after each dim (negative: elements removed).
        high: Vec<i64>,
        /// Padding between elements of each dim.
        interior: Vec<usize>,
    },
    /// Generalized (batched) matrix product; the result element type may
    /// differ from the operands' (f32 x f32 -> f64, bf16 x bf16 -> f32).
    DotGeneral {
        /// Dimension numbers.
        dims: DotDims,
        /// `precision_config` for (lhs, rhs); `None` leaves it to the backend.
        precision: Option<[Precision; 2]>,
    },
    /// `stablehlo.convolution` (lhs, rhs); boxed to keep `OpKind` small.
    Convolution(Box<ConvConfig>),
    /// Reduction over axes with a monoid.
    Reduce {
        /// The monoid.
        kind: ReduceKind,
        /// Reduced axes, sorted.
        axes: Vec<usize>,
    },
    /// Reduction of every window (pooling).
    ReduceWindow {
        /// The monoid.
        kind: ReduceKind,
        /// The windows.
        window: Window,
    },
    /// Operands (x, source): adds each source element at the element its
    /// window of `x` selects (first max for `Max`, first min for `Min`),
    /// into zeros. Made only by the VJP of max and min `ReduceWindow`.
    SelectAndScatter {
        /// `Max` or `Min`.
        kind: ReduceKind,
        /// The windows.
        window: Window,
    },
    /// Index of the largest element along an axis (`i32`; first on ties).
    Argmax {
        /// Reduced axis.
        axis: usize,
    },
    /// `stablehlo.gather` (operand, indices).
    Gather(GatherDims),
    /// `stablehlo.scatter` with addition (operand, indices, updates).
    ScatterAdd(ScatterDims),
    /// `stablehlo.sort` along `dim`, stable, ordered by operand 0; the last
    /// operand is an `i32` iota along `dim`, so the last result is the
    /// permutation applied.
    Sort {
        /// The sorted dim.
        dim: usize,
        /// Largest first.
        descending: bool,
    },
    /// `stablehlo.rng_bit_generator` (THREE_FRY): state in, (state, bits) out.
    RngBitGenerator,
    /// Identity for values, zero for gradients.
    StopGradient,
    /// `sdy.sharding_constraint` with an opaque `<@mesh, [...]>` string.
    ShardingConstraint {
        /// The sharding, e.g. `<@mesh, [{"data"}, {?}]>`.
        sharding: String,
    },
    /// `stablehlo.optimization_barrier` over all operands.
    OptimizationBarrier,
    /// A scan over the leading dim of the stacked inputs (see [`ScanBody`]).
    /// Operands: carries, stacked xs, captures. Results: final carries,
    /// stacked ys, then (when `save_carries`) the carry entering each step,
    /// stacked.
    Scan {
        /// The body.
        body: ScanBody,
        /// Number of steps.
        length: usize,
        /// Iterate from the last step to the first.
        reverse: bool,
        /// Also output the stacked per-step input carries (for autodiff).
        save_carries: bool,
    },
    /// A rematerialized region (see [`crate::ops::remat`]): lowered inline;
    /// its VJP recomputes the body. Operands: inputs, then captures.
    /// Results: the `num_outputs` outputs, then the values the policy saves.
    Remat {
        /// The body; its results are the outputs followed by the saved values.
        body: Region,
        /// How many results are the region's outputs.
        num_outputs: usize,
        /// The saved values wait for the backward pass in host memory
        /// ([`crate::RematPolicy::Offload`]).
        offload: bool,
    },
    /// The same value, placed in a memory kind (JAX's `device_put` with a
    /// `TransferToMemoryKind`); lowered to XLA's
    /// `annotate_device_placement` custom call.
    MemoryPlacement {
        /// Where the value goes.
        kind: MemoryKind,
    },
    /// Identity tagged with a name for remat policies (`checkpoint_name`).
    CheckpointName {
        /// The tag.
        name: String,
    },
    /// `stablehlo.while`. Operands: loop state, then captures of `cond`,
    /// then captures of `body`. Results: final loop state.
    While {
        /// Condition graph: state + its captures -> scalar pred.
        cond: Region,
        /// Body graph: state + its captures -> new state.
        body: Region,
        /// Number of loop-state values.
        num_state: usize,
    },
}

impl OpKind {
    /// Short name used in the IR printer and error messages.
    pub fn name(&self) -> String {
        match self {
            OpKind::Constant { .. } => "constant".into(),
            OpKind::Iota { .. } => "iota".into(),
            OpKind::Unary(u) => u.name().into(),
            OpKind::Binary(b) => b.name().into(),
            OpKind::Compare(c) => format!("compare_{c:?}").to_lowercase(),
            OpKind::Select => "select".into(),
            OpKind::Clamp => "clamp".into(),
            OpKind::Convert => "convert".into(),
            OpKind::BitcastConvert => "bitcast_convert".into(),
            OpKind::ReducePrecision { .. } => "reduce_precision".into(),
            OpKind::BroadcastInDim { .. } => "broadcast_in_dim".into(),
            OpKind::Reshape => "reshape".into(),
            OpKind::Transpose { .. } => "transpose".into(),
            OpKind::Reverse { .. } => "reverse".into(),
            OpKind::Slice { .. } => "slice".into(),
            OpKind::DynamicSlice { .. } => "dynamic_slice".into(),
            OpKind::DynamicUpdateSlice => "dynamic_update_slice".into(),
            OpKind::Concatenate { .. } => "concatenate".into(),
            OpKind::Pad { .. } => "pad".into(),
            OpKind::DotGeneral { .. } => "dot_general".into(),
            OpKind::Convolution(_) => "convolution".into(),
            OpKind::Reduce { kind, .. } => format!("reduce_{kind:?}").to_lowercase(),
            OpKind::ReduceWindow { .. } => "reduce_window".into(),
            OpKind::SelectAndScatter { .. } => "select_and_scatter".into(),
            OpKind::Argmax { .. } => "argmax".into(),
            OpKind::Gather(_) => "gather".into(),
            OpKind::ScatterAdd(_) => "scatter_add".into(),
            OpKind::Sort { .. } => "sort".into(),
            OpKind::RngBitGenerator => "rng_bit_generator".into(),
            OpKind::StopGradient => "stop_gradient".into(),
            OpKind::ShardingConstraint { .. } => "sharding_constraint".into(),
            OpKind::OptimizationBarrier => "optimization_barrier".into(),
            OpKind::Scan { .. } => "scan".into(),
            OpKind::Remat { .. } => "remat".into(),
            OpKind::CheckpointName { .. } => "checkpoint_name".into(),
            OpKind::MemoryPlacement { .. } => "memory_placement".into(),
            OpKind::While { .. } => "while".into(),
        }
    }

    /// True for ops that hold sub-graphs.
    pub fn has_regions(&self) -> bool {
        matches!(
            self,
            OpKind::Scan { .. } | OpKind::While { .. } | OpKind::Remat { .. }
        )
    }
}

/// One op: kind with attributes, operands and results (ids into the value arena).
#[derive(Clone, Debug)]
pub struct Op {
    /// What it computes.
    pub kind: OpKind,
    /// Inputs.
    pub operands: Vec<ValueId>,
    /// Outputs.
    pub results: Vec<ValueId>,
}

/// A function body: arenas of values and ops, parameters and results.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Value arena.
    pub values: Vec<Value>,
    /// Op arena, in program order (operands always defined earlier).
    pub ops: Vec<Op>,
    /// Parameter values, in order.
    pub params: Vec<ValueId>,
    /// Result values, in order.
    pub results: Vec<ValueId>,
}

impl Graph {
    /// The type of a value.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        &self.values[v.index()].ty
    }

    /// Adds a parameter of the given type.
    pub fn add_param(&mut self, ty: TensorType) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value {
            ty,
            def: ValueDef::Param(self.params.len()),
        });
        self.params.push(id);
        id
    }

    /// Appends an op and returns its result values.
    pub fn add_op(
        &mut self,
        kind: OpKind,
        operands: Vec<ValueId>,
        result_types: Vec<TensorType>,
    ) -> Vec<ValueId> {
        let op = OpId(self.ops.len() as u32);
        let mut results = Vec::with_capacity(result_types.len());
        for (i, ty) in result_types.into_iter().enumerate() {
            let id = ValueId(self.values.len() as u32);
            self.values.push(Value {
                ty,
                def: ValueDef::Op(op, i),
            });
            results.push(id);
        }
        self.ops.push(Op {
            kind,
            operands,
            results: results.clone(),
        });
        results
    }

    /// The op defining a value, if it is an op result.
    pub fn producer(&self, v: ValueId) -> Option<OpId> {
        match self.values[v.index()].def {
            ValueDef::Op(op, _) => Some(op),
            ValueDef::Param(_) => None,
        }
    }

    fn fmt_indented(&self, f: &mut fmt::Formatter<'_>, indent: usize) -> fmt::Result {
        let pad = " ".repeat(indent);
        for op in &self.ops {
            write!(f, "{pad}")?;
            for (i, r) in op.results.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "%{}", r.0)?;
            }
            write!(f, " = {}(", op.kind.name())?;
            for (i, a) in op.operands.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "%{}", a.0)?;
            }
            f.write_str(")")?;
            let attrs = attrs_text(&op.kind);
            if !attrs.is_empty() {
                write!(f, " {{{attrs}}}")?;
            }
            f.write_str(" : ")?;
            for (i, r) in op.results.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}", self.ty(*r))?;
            }
            f.write_str("\n")?;
            match &op.kind {
                OpKind::Scan { body, .. } => {
                    body.graph.fmt_region(f, "body", indent + 2)?;
                }
                OpKind::Remat { body, .. } => {
                    body.fmt_region(f, "body", indent + 2)?;
                }
                OpKind::While { cond, body, .. } => {
                    cond.fmt_region(f, "cond", indent + 2)?;
                    body.fmt_region(f, "body", indent + 2)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn fmt_region(&self, f: &mut fmt::Formatter<'_>, label: &str, indent: usize) -> fmt::Result {
        let pad = " ".repeat(indent);
        write!(f, "{pad}{label}(")?;
        self.fmt_params(f)?;
        f.write_str(") {\n")?;
        self.fmt_indented(f, indent + 2)?;
        write!(f, "{pad}  return")?;
        for (i, r) in self.results.iter().enumerate() {
            write!(f, "{} %{}", if i == 0 { "" } else { "," }, r.0)?;
        }
        writeln!(f, "\n{pad}}}")
    }

    fn fmt_params(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "%{}: {}", p.0, self.ty(*p))?;
        }
        Ok(())
    }
}

fn bare<T: ToString>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(","))
}

fn list<T: ToString>(name: &str, v: &[T]) -> String {
    format!("{name}={}", bare(v))
}

/// ` batching=[0]x[0]` for gathers and scatters with batching dims, else empty.
fn batching(operand: &[usize], indices: &[usize]) -> String {
    if operand.is_empty() {
        String::new()
    } else {
        format!(" batching={}x{}", bare(operand), bare(indices))
    }
}

/// The attributes of an op as `key=value` text for the printer (empty if none).
fn attrs_text(kind: &OpKind) -> String {
    match kind {
        OpKind::Constant { bytes, splat } => {
            format!(
                "{} bytes{}",
                bytes.len(),
                if *splat { ", splat" } else { "" }
            )
        }
        OpKind::Iota { dim } => format!("dim={dim}"),
        OpKind::BroadcastInDim { dims } => list("dims", dims),
        OpKind::Transpose { perm } => list("perm", perm),
        OpKind::Reverse { dims } => list("dims", dims),
        OpKind::Slice {
            start,
            limit,
            stride,
        } => format!(
            "{} {} {}",
            list("start", start),
            list("limit", limit),
            list("stride", stride)
        ),
        OpKind::DynamicSlice { sizes } => list("sizes", sizes),
        OpKind::Concatenate { dim } => format!("dim={dim}"),
        OpKind::Pad {
            low,
            high,
            interior,
        } => format!(
            "{} {} {}",
            list("low", low),
            list("high", high),
            list("interior", interior)
        ),
        OpKind::ReducePrecision {
            exponent_bits,
            mantissa_bits,
        } => format!("exponent_bits={exponent_bits} mantissa_bits={mantissa_bits}"),
        OpKind::DotGeneral { dims: d, precision } => format!(
            "batch={}x{} contract={}x{}{}",
            bare(&d.lhs_batch),
            bare(&d.rhs_batch),
            bare(&d.lhs_contract),
            bare(&d.rhs_contract),
            precision.map_or(String::new(), |[l, r]| format!(
                " precision={}x{}",
                l.mlir(),
                r.mlir()
            ))
        ),
        OpKind::Convolution(c) => {
            let pads: Vec<String> = c
                .padding
                .iter()
                .map(|(lo, hi)| format!("({lo},{hi})"))
                .collect();
            format!(
                "{} {} {} {} {} padding=[{}] groups={}x{}",
                list("lhs", &c.dims.lhs),
                list("rhs", &c.dims.rhs),
                list("out", &c.dims.out),
                list("strides", &c.window_strides),
                list(
                    "dilation",
                    &[c.lhs_dilation.clone(), c.rhs_dilation.clone()].concat()
                ),
                pads.join(","),
                c.feature_group_count,
                c.batch_group_count
            )
        }
        OpKind::Reduce { axes, .. } => list("axes", axes),
        OpKind::Argmax { axis } => format!("axis={axis}"),
        OpKind::ReduceWindow { kind, window } | OpKind::SelectAndScatter { kind, window } => {
            let pads: Vec<String> = window
                .padding
                .iter()
                .map(|(lo, hi)| format!("({lo},{hi})"))
                .collect();
            format!(
                "{kind:?} {} {} padding=[{}]",
                list("window", &window.dims),
                list("strides", &window.strides),
                pads.join(",")
            )
        }
        OpKind::Gather(g) => format!(
            "{} {} {} {}{}",
            list("offset", &g.offset_dims),
            list("collapsed", &g.collapsed_slice_dims),
            list("map", &g.start_index_map),
            list("sizes", &g.slice_sizes),
            batching(&g.operand_batching_dims, &g.start_indices_batching_dims)
        ),
        OpKind::ScatterAdd(s) => format!(
            "{} {} {}{}",
            list("window", &s.update_window_dims),
            list("inserted", &s.inserted_window_dims),
            list("map", &s.scatter_dims_to_operand_dims),
            batching(&s.input_batching_dims, &s.scatter_indices_batching_dims)
        ),
        OpKind::Sort { dim, descending } => format!("dim={dim} descending={descending}"),
        OpKind::ShardingConstraint { sharding } => sharding.clone(),
        OpKind::CheckpointName { name } => name.clone(),
        OpKind::MemoryPlacement { kind } => kind.as_str().into(),
        OpKind::Remat { offload: true, .. } => "offload".into(),
        OpKind::Scan {
            length, reverse, ..
        } => format!("length={length} reverse={reverse}"),
        _ => String::new(),
    }
}

impl fmt::Display for Graph {
    /// One op per line: `%5 = add(%3, %4) {} : f32[4,8]`, regions indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        self.fmt_params(f)?;
        f.write_str(") {\n")?;
        self.fmt_indented(f, 2)?;
        f.write_str("  return")?;
        for (i, r) in self.results.iter().enumerate() {
            write!(f, "{} %{}", if i == 0 { "" } else { "," }, r.0)?;
        }
        f.write_str("\n}\n")
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, FunctionBuilder};

    #[test]
    fn printer_shows_one_op_per_line_with_types() {
        let b = FunctionBuilder::new("f");
        let x = b.param("x", DType::F32, &[4, 8]);
        let w = b.param("w", DType::F32, &[8, 3]);
        let y = x.matmul(&w).tanh();
        let f = b.build(&[("y", &y)]).unwrap();
        let text = f.to_string();
        let want = "function f
  param %0 = x
  param %1 = w
  result y = %3
(%0: f32[4,8], %1: f32[8,3]) {
  %2 = dot_general(%0, %1) {batch=[]x[] contract=[1]x[0]} : f32[4,3]
  %3 = tanh(%2) : f32[4,3]
  return %3
}
";
        assert_eq!(text, want);
    }
}
