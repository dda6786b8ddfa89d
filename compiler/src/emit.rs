//! StableHLO text emission. Ops are written in MLIR's generic form
//! (`%3 = "stablehlo.add"(%1, %2) : (...) -> ...`), which every StableHLO
//! version parses; Shardy constraints use their pretty form. Deterministic:
//! the same function gives byte-identical text.

use crate::ir::{Graph, Op, OpKind, Precision};
use crate::ops::constant::dense_attr;
use crate::ops::{
    control, convolution, elementwise, indexing, placement, reduce, remat, sort, window,
};
use crate::shape::TensorType;
use std::fmt::Write;

/// `array<i64: 1, 2>`.
pub(crate) fn i64_array(v: &[usize]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    if s.is_empty() {
        "array<i64>".to_string()
    } else {
        format!("array<i64: {}>", s.join(", "))
    }
}

/// `array<i64: -1, 2>` from signed values.
pub(crate) fn i64_array_signed(v: &[i64]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    if s.is_empty() {
        "array<i64>".to_string()
    } else {
        format!("array<i64: {}>", s.join(", "))
    }
}

/// Text being written plus the SSA name counter (unique across regions).
#[derive(Default)]
pub(crate) struct Emitter {
    pub(crate) out: String,
    next: usize,
}

impl Emitter {
    /// A fresh SSA name `%N`.
    pub(crate) fn fresh(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("%{n}")
    }

    /// Writes one indented line.
    pub(crate) fn line(&mut self, ind: usize, text: &str) {
        for _ in 0..ind {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Writes a single-result op in generic form and returns its name.
    pub(crate) fn op<A: AsRef<str>>(
        &mut self,
        ind: usize,
        name: &str,
        args: &[A],
        attrs: &str,
        arg_tys: &[&TensorType],
        res: &TensorType,
    ) -> String {
        let r = self.fresh();
        let text = format!("{r} = {}", generic(name, args, attrs, arg_tys, &res.mlir()));
        self.line(ind, &text);
        r
    }

    /// Writes a multi-result op in generic form and returns `%N#i` names.
    fn op_multi<A: AsRef<str>>(
        &mut self,
        ind: usize,
        name: &str,
        args: &[A],
        attrs: &str,
        arg_tys: &[&TensorType],
        res: &[&TensorType],
    ) -> Vec<String> {
        let r = self.fresh();
        let tys: Vec<String> = res.iter().map(|t| t.mlir()).collect();
        let text = format!(
            "{r}:{} = {}",
            res.len(),
            generic(name, args, attrs, arg_tys, &format!("({})", tys.join(", ")))
        );
        self.line(ind, &text);
        (0..res.len()).map(|i| format!("{r}#{i}")).collect()
    }

    /// Writes a constant and returns its name.
    pub(crate) fn constant(
        &mut self,
        ind: usize,
        bytes: &[u8],
        splat: bool,
        ty: &TensorType,
    ) -> String {
        let attrs = format!("value = {} : {}", dense_attr(bytes, splat, ty), ty.mlir());
        self.op::<&str>(ind, "stablehlo.constant", &[], &attrs, &[], ty)
    }

    /// Writes a region's `stablehlo.return`.
    pub(crate) fn ret(&mut self, ind: usize, vals: &[(&str, &TensorType)]) {
        let names: Vec<&str> = vals.iter().map(|v| v.0).collect();
        let tys: Vec<String> = vals.iter().map(|v| v.1.mlir()).collect();
        self.line(
            ind,
            &format!(
                "\"stablehlo.return\"({}) : ({}) -> ()",
                names.join(", "),
                tys.join(", ")
            ),
        );
    }

    /// Writes a block header `^bb0(%a: t, ...):` and returns the arg names.
    pub(crate) fn block_args(&mut self, ind: usize, tys: &[TensorType]) -> Vec<String> {
        let names: Vec<String> = tys.iter().map(|_| self.fresh()).collect();
        let parts: Vec<String> = names
            .iter()
            .zip(tys)
            .map(|(n, t)| format!("{n}: {}", t.mlir()))
            .collect();
        self.line(ind, &format!("^bb0({}):", parts.join(", ")));
        names
    }
}

fn generic<A: AsRef<str>>(
    name: &str,
    args: &[A],
    attrs: &str,
    arg_tys: &[&TensorType],
    res: &str,
) -> String {
    let a: Vec<&str> = args.iter().map(|x| x.as_ref()).collect();
    let t: Vec<String> = arg_tys.iter().map(|x| x.mlir()).collect();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" {{{attrs}}}")
    };
    format!(
        "\"{name}\"({}){attrs} : ({}) -> {res}",
        a.join(", "),
        t.join(", ")
    )
}

/// Emits the ops of `g` with its parameters named `args`; returns the names
/// of its results.
pub(crate) fn emit_graph(e: &mut Emitter, g: &Graph, ind: usize, args: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec![String::new(); g.values.len()];
    for (p, a) in g.params.iter().zip(args) {
        names[p.index()] = a.clone();
    }
    for op in &g.ops {
        let a: Vec<String> = op
            .operands
            .iter()
            .map(|v| names[v.index()].clone())
            .collect();
        let at: Vec<&TensorType> = op.operands.iter().map(|v| g.ty(*v)).collect();
        let rt: Vec<&TensorType> = op.results.iter().map(|v| g.ty(*v)).collect();
        let outs = lower_op(e, ind, op, &a, &at, &rt);
        for (r, n) in op.results.iter().zip(outs) {
            names[r.index()] = n;
        }
    }
    g.results.iter().map(|r| names[r.index()].clone()).collect()
}

fn dot_attr(d: &crate::ir::DotDims, precision: Option<[Precision; 2]>) -> String {
    let f = |name: &str, v: &[usize]| {
        (!v.is_empty()).then(|| {
            let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            format!("{name} = [{}]", s.join(", "))
        })
    };
    let parts: Vec<String> = [
        f("lhs_batching_dimensions", &d.lhs_batch),
        f("rhs_batching_dimensions", &d.rhs_batch),
        f("lhs_contracting_dimensions", &d.lhs_contract),
        f("rhs_contracting_dimensions", &d.rhs_contract),
    ]
    .into_iter()
    .flatten()
    .collect();
    let dims = format!(
        "dot_dimension_numbers = #stablehlo.dot<{}>",
        parts.join(", ")
    );
    match precision {
        None => dims,
        Some([l, r]) => format!(
            "{dims}, precision_config = [#stablehlo<precision {}>, #stablehlo<precision {}>]",
            l.mlir(),
            r.mlir()
        ),
    }
}

/// The lowering table: one StableHLO rendering per primitive.
fn lower_op(
    e: &mut Emitter,
    ind: usize,
    op: &Op,
    a: &[String],
    at: &[&TensorType],
    rt: &[&TensorType],
) -> Vec<String> {
    let one = |e: &mut Emitter, name: &str, attrs: &str| vec![e.op(ind, name, a, attrs, at, rt[0])];
    match &op.kind {
        OpKind::Constant { bytes, splat } => vec![e.constant(ind, bytes, *splat, rt[0])],
        OpKind::Iota { dim } => one(
            e,
            "stablehlo.iota",
            &format!("iota_dimension = {dim} : i64"),
        ),
        OpKind::Unary(u) => one(e, elementwise::unary_mlir(*u), ""),
        OpKind::Binary(b) => one(e, elementwise::binary_mlir(*b), ""),
        OpKind::Compare(d) => one(
            e,
            "stablehlo.compare",
            &elementwise::compare_attrs(*d, at[0]),
        ),
        OpKind::Select => one(e, "stablehlo.select", ""),
        OpKind::Clamp => one(e, "stablehlo.clamp", ""),
        OpKind::Convert => one(e, "stablehlo.convert", ""),
        OpKind::BitcastConvert => one(e, "stablehlo.bitcast_convert", ""),
        OpKind::ReducePrecision {
            exponent_bits,
            mantissa_bits,
        } => one(
            e,
            "stablehlo.reduce_precision",
            &format!(
                "exponent_bits = {exponent_bits} : i32, mantissa_bits = {mantissa_bits} : i32"
            ),
        ),
        OpKind::BroadcastInDim { dims } => one(
            e,
            "stablehlo.broadcast_in_dim",
            &format!("broadcast_dimensions = {}", i64_array(dims)),
        ),
        OpKind::Reshape => one(e, "stablehlo.reshape", ""),
        OpKind::Transpose { perm } => one(
            e,
            "stablehlo.transpose",
            &format!("permutation = {}", i64_array(perm)),
        ),
        OpKind::Reverse { dims } => one(
            e,
            "stablehlo.reverse",
            &format!("dimensions = {}", i64_array(dims)),
        ),
        OpKind::Slice {
            start,
            limit,
            stride,
        } => one(
            e,
            "stablehlo.slice",
            &format!(
                "limit_indices = {}, start_indices = {}, strides = {}",
                i64_array(limit),
                i64_array(start),
                i64_array(stride)
            ),
        ),
        OpKind::DynamicSlice { sizes } => one(
            e,
            "stablehlo.dynamic_slice",
            &format!("slice_sizes = {}", i64_array(sizes)),
        ),
        OpKind::DynamicUpdateSlice => one(e, "stablehlo.dynamic_update_slice", ""),
        OpKind::Concatenate { dim } => one(
            e,
            "stablehlo.concatenate",
            &format!("dimension = {dim} : i64"),
        ),
        OpKind::Pad {
            low,
            high,
            interior,
        } => one(
            e,
            "stablehlo.pad",
            &format!(
                "edge_padding_high = {}, edge_padding_low = {}, interior_padding = {}",
                i64_array_signed(high),
                i64_array_signed(low),
                i64_array(interior)
            ),
        ),
        OpKind::DotGeneral { dims, precision } => {
            one(e, "stablehlo.dot_general", &dot_attr(dims, *precision))
        }
        OpKind::Convolution(c) => one(e, "stablehlo.convolution", &convolution::conv_attrs(c)),
        OpKind::Reduce { kind, axes } => {
            vec![reduce::lower_reduce(
                e, ind, *kind, axes, &a[0], at[0], rt[0],
            )]
        }
        OpKind::ReduceWindow { kind, window: w } => vec![window::lower_reduce_window(
            e, ind, *kind, w, &a[0], at[0], rt[0],
        )],
        OpKind::SelectAndScatter { kind, window: w } => {
            vec![window::lower_select_and_scatter(e, ind, *kind, w, a, at)]
        }
        OpKind::Argmax { axis } => vec![reduce::lower_argmax(e, ind, *axis, &a[0], at[0], rt[0])],
        OpKind::Gather(g) => one(e, "stablehlo.gather", &indexing::gather_attrs(g)),
        OpKind::ScatterAdd(s) => {
            let r = e.fresh();
            e.line(
                ind,
                &format!("{r} = \"stablehlo.scatter\"({}) ({{", a.join(", ")),
            );
            let sc = TensorType::new(at[0].dtype, &[]);
            let b = e.block_args(ind, &[sc.clone(), sc.clone()]);
            let s2 = e.op(ind + 2, "stablehlo.add", &b, "", &[&sc, &sc], &sc);
            e.ret(ind + 2, &[(&s2, &sc)]);
            let tys: Vec<String> = at.iter().map(|t| t.mlir()).collect();
            e.line(
                ind,
                &format!(
                    "}}) {{{}}} : ({}) -> {}",
                    indexing::scatter_attrs(s),
                    tys.join(", "),
                    rt[0].mlir()
                ),
            );
            vec![r]
        }
        OpKind::Sort { dim, descending } => sort::lower_sort(e, ind, *dim, *descending, a, at),
        OpKind::RngBitGenerator => e.op_multi(
            ind,
            "stablehlo.rng_bit_generator",
            a,
            "rng_algorithm = #stablehlo<rng_algorithm THREE_FRY>",
            at,
            rt,
        ),
        OpKind::StopGradient | OpKind::CheckpointName { .. } => vec![a[0].clone()],
        OpKind::Remat { body, .. } => remat::lower_remat(e, ind, body, a),
        OpKind::MemoryPlacement { kind } => {
            vec![placement::lower_memory_placement(
                e, ind, *kind, &a[0], rt[0],
            )]
        }
        OpKind::ShardingConstraint { sharding } => {
            let r = e.fresh();
            e.line(
                ind,
                &format!(
                    "{r} = sdy.sharding_constraint {} {sharding} : {}",
                    a[0],
                    rt[0].mlir()
                ),
            );
            vec![r]
        }
        OpKind::OptimizationBarrier => {
            e.op_multi(ind, "stablehlo.optimization_barrier", a, "", at, rt)
        }
        OpKind::Scan {
            body,
            length,
            reverse,
            save_carries,
        } => control::lower_scan(e, ind, body, *length, *reverse, *save_carries, a, at, rt),
        OpKind::While {
            cond,
            body,
            num_state,
        } => control::lower_while(e, ind, cond, body, *num_state, a, at),
    }
}

/// Per-argument / per-result attributes and module settings of a function.
pub(crate) struct ModuleSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) graph: &'a Graph,
    pub(crate) param_names: &'a [String],
    pub(crate) result_names: &'a [String],
    pub(crate) param_attrs: Vec<Vec<String>>,
    pub(crate) result_attrs: Vec<Vec<String>>,
    pub(crate) meshes: &'a [String],
    pub(crate) num_partitions: usize,
    pub(crate) num_replicas: usize,
}

/// Emits a whole module with `func.func public @main`.
pub(crate) fn emit_module(m: &ModuleSpec<'_>) -> String {
    let mut e = Emitter::default();
    let g = m.graph;
    let args: Vec<String> = (0..g.params.len()).map(|i| format!("%arg{i}")).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "module @{} attributes {{mhlo.num_partitions = {} : i32, mhlo.num_replicas = {} : i32}} {{",
        sanitize(m.name),
        m.num_partitions,
        m.num_replicas
    );
    for mesh in m.meshes {
        let _ = writeln!(s, "  {mesh}");
    }
    let _ = writeln!(s, "  // params: {}", m.param_names.join(", "));
    let _ = writeln!(s, "  // results: {}", m.result_names.join(", "));
    let params: Vec<String> = g
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}: {}{}",
                args[i],
                g.ty(*p).mlir(),
                attr_dict(&m.param_attrs[i])
            )
        })
        .collect();
    let results: Vec<String> = g
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}{}", g.ty(*r).mlir(), attr_dict(&m.result_attrs[i])))
        .collect();
    let _ = writeln!(
        s,
        "  func.func public @main({}) -> ({}) {{",
        params.join(", "),
        results.join(", ")
    );
    let outs = emit_graph(&mut e, g, 4, &args);
    s.push_str(&e.out);
    let tys: Vec<String> = g.results.iter().map(|r| g.ty(*r).mlir()).collect();
    if outs.is_empty() {
        s.push_str("    return\n");
    } else {
        let _ = writeln!(s, "    return {} : {}", outs.join(", "), tys.join(", "));
    }
    s.push_str("  }\n}\n");
    s
}

fn attr_dict(attrs: &[String]) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        format!(" {{{}}}", attrs.join(", "))
    }
}

/// A symbol name made of `[A-Za-z0-9_]` only.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "main".into() } else { s }
}
